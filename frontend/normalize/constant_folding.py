"""``fold-constants``: nodes that compute only from constants become initializers.

Exporters leave arithmetic on weights in the graph: a ``Transpose`` of a MatMul's weight (CNTK, older Keras and
torch exports), ``Cast``/``Unsqueeze``/``Reshape`` of constants, ``Identity`` of an initializer, ``Sqrt(var +
eps)`` of an unfolded normalisation, ``Constant`` nodes. onnxruntime folds them itself when it loads the model;
the importer wants them as initializers. Each such node is run once by onnxruntime (the reference) and its
outputs become initializers with the same names; nodes left without a consumer disappear.

Not folded: ``QuantizeLinear``/``DequantizeLinear`` (a quantized weight stays as the quantizer wrote it, the
importer reads its scale and zero point), ops with a random or sequence result, subgraphs, and a node whose
result would be larger than :data:`MAX_ELEMENTS` (folding must not blow up the file).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import copy_model

__all__ = ["MAX_ELEMENTS", "FoldConstants"]

#: Largest folded tensor (elements); a constant expanded beyond this stays a node.
MAX_ELEMENTS = 1 << 22

_KEEP = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "RandomNormal", "RandomUniform",
                   "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli", "If", "Loop", "Scan",
                   "SequenceConstruct", "SequenceEmpty", "SplitToSequence", "ConcatFromSequence", "Shape", "Size"})


def _foldable(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Nodes (in graph order) whose every input is a constant or the output of another foldable node."""
    graph = model.graph
    constant = {i.name for i in graph.initializer} | {""}
    constant -= {i.name for i in graph.input}  # an initializer listed as input can be overridden: not constant
    nodes = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type in _KEEP:
            continue
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            continue
        if all(name in constant for name in node.input):
            nodes.append(node)
            constant.update(node.output)
    return nodes


def _evaluate(model: onnx.ModelProto, nodes: list[onnx.NodeProto]) -> dict[str, np.ndarray] | None:
    """The outputs of ``nodes``, computed by onnxruntime from the model's initializers."""
    from systolix.frontend.reference import reference_session, run_session

    outputs = [o for node in nodes for o in node.output if o]
    needed = {name for node in nodes for name in node.input}
    graph = helper.make_graph(list(nodes), "fold", [],
                              [helper.make_value_info(name, onnx.TypeProto()) for name in outputs],
                              [i for i in model.graph.initializer if i.name in needed])
    probe = helper.make_model(graph, opset_imports=model.opset_import, ir_version=model.ir_version)
    try:
        values = run_session(reference_session(probe), outputs, {})
    except Exception:
        return None
    return dict(zip(outputs, (np.asarray(v) for v in values), strict=True))


class FoldConstants:
    name = "fold-constants"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        nodes = _foldable(model)
        # a Constant node read directly by an op is already what the importer takes; fold only real computation
        if not any(node.op_type != "Constant" for node in nodes):
            return None
        values = _evaluate(model, nodes)
        if values is None or any(v.dtype == object or v.size > MAX_ELEMENTS for v in values.values()):
            return None
        out = copy_model(model)
        folded = {id(n) for n in nodes}
        keep = [n for n in model.graph.node if id(n) not in folded]
        del out.graph.node[:]
        out.graph.node.extend(keep)
        used = {name for node in keep for name in node.input} | {o.name for o in model.graph.output}
        existing = {i.name for i in out.graph.initializer}
        for name, value in values.items():
            if name in used and name not in existing:
                out.graph.initializer.append(numpy_helper.from_array(value, name))
        # initializers only the folded nodes read are gone with them
        inputs = {i.name for i in out.graph.input}
        kept = [i for i in out.graph.initializer if i.name in used or i.name in inputs]
        del out.graph.initializer[:]
        out.graph.initializer.extend(kept)
        ops = sorted({n.op_type for n in nodes})
        return out, f"{len(nodes)} node(s) computing only from constants folded into initializers ({', '.join(ops)})"
