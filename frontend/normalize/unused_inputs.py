"""``drop-unused-inputs``: graph inputs that no node reads.

tf2onnx's ``from_function`` on a Keras model with a ``Normalization`` layer lists the layer's captured mean and
variance as extra graph inputs after folding them into constants: nothing reads them, yet onnxruntime asks for
them and the importer sees a model with three inputs. An input no node reads (and that is not a graph output)
cannot change any result; it goes.
"""

from __future__ import annotations

import onnx

from .base import copy_model

__all__ = ["DropUnusedInputs"]


class DropUnusedInputs:
    name = "drop-unused-inputs"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        read = {name for node in model.graph.node for name in node.input}
        read |= {o.name for o in model.graph.output}
        unused = [i.name for i in model.graph.input if i.name not in read]
        if not unused or len(unused) == len(model.graph.input):
            return None
        out = copy_model(model)
        keep = [i for i in out.graph.input if i.name in read]
        del out.graph.input[:]
        out.graph.input.extend(keep)
        return out, f"{len(unused)} graph input(s) no node reads removed ({', '.join(unused)})"
