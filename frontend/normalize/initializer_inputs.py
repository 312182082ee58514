"""``drop-initializer-inputs``: initializers also listed as graph inputs (IR < 4 files, old exporters).

onnxruntime treats such an input as overridable and does not fold it as a constant; the importer would see
an extra model input. The initializer stays; its entry in the graph inputs goes.
"""

from __future__ import annotations

import onnx

from .base import copy_model

__all__ = ["DropInitializerInputs"]


class DropInitializerInputs:
    name = "drop-initializer-inputs"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        inits = {i.name for i in model.graph.initializer}
        listed = [i.name for i in model.graph.input if i.name in inits]
        if not listed:
            return None
        out = copy_model(model)
        keep = [i for i in out.graph.input if i.name not in inits]
        del out.graph.input[:]
        out.graph.input.extend(keep)
        if out.ir_version < 4:
            out.ir_version = 4  # IR 3 requires every initializer to be an input
        return out, f"{len(listed)} initializer(s) removed from the graph inputs"
