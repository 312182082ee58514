"""``fold-shape-computation``: a Reshape target computed from ``Shape`` at run time becomes a constant.

tf2onnx writes a Keras ``Flatten`` (Keras 3, symbolic batch) as ``Shape -> Slice -> Cast -> Concat -> Reshape``
and torch.onnx.export writes ``x.view(x.size(0), -1)`` as ``Shape -> Gather -> Unsqueeze -> Concat ->
Reshape``: the target is computed from the tensor's own shape on every run. Every other dimension is static,
so the target is the same for every input except its batch entry. The shape computation is run by
onnxruntime at two batch sizes (1 and 3): entries equal in both are constants, and the one entry that follows
the batch (1, then 3) becomes ``-1``, or ``0`` ("copy the input's") when the target already has a ``-1`` and
the input's dimension there is the batch too. The Reshape reads that constant, and the nodes that computed
it are removed. A target that varies otherwise, or a computation that reads an activation other than
through ``Shape``, is left as it is (the importer then names the op it cannot read).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from systolix.errors import SystolixError

from .base import copy_model

__all__ = ["FoldShapeComputation"]

_BATCHES = (1, 3)


def _closure(model: onnx.ModelProto, tensor: str, producers: dict, constants: set) -> list[onnx.NodeProto] | None:
    """The nodes computing ``tensor`` from constants and ``Shape`` of activations, or None if it reads another
    activation."""
    nodes, stack, seen = [], [tensor], set()
    while stack:
        name = stack.pop()
        if name in seen or name in constants or not name:
            continue
        seen.add(name)
        node = producers.get(name)
        if node is None:
            return None  # a graph input
        nodes.append(node)
        if node.op_type == "Shape":
            continue
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            return None
        stack.extend(node.input)
    return nodes


def _run(model: onnx.ModelProto, outputs: list[str], batch: int, data: list[str]) -> list[np.ndarray] | None:
    """The int64 tensors ``outputs``, then the shapes of the tensors ``data``, at this batch size."""
    from systolix.frontend.reference import reference_session, run_session

    probe = copy_model(model)
    del probe.graph.output[:]
    for i, name in enumerate(data):
        probe.graph.node.append(helper.make_node("Shape", [name], [f"__probe_shape_{i}"]))
    outputs = [*outputs, *(f"__probe_shape_{i}" for i in range(len(data)))]
    probe.graph.output.extend(helper.make_tensor_value_info(name, onnx.TensorProto.INT64, None) for name in outputs)
    inits = {i.name for i in probe.graph.initializer}
    feeds = {}
    rng = np.random.default_rng(0)
    for value in probe.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else (batch if i == 0 else None)
                for i, d in enumerate(tt.shape.dim)]
        if None in dims or tt.elem_type != onnx.TensorProto.FLOAT:
            return None
        feeds[value.name] = rng.normal(0, 1, dims).astype(np.float32)
    try:
        try:
            session = reference_session(probe)
        except SystolixError:  # some quantized graphs load only without session.x64quantprecision: shapes do not
            import onnxruntime as ort  # depend on it

            from systolix.frontend.reference import session_options

            session = ort.InferenceSession(probe.SerializeToString(), session_options(exact=False),
                                           providers=["CPUExecutionProvider"])
        return [np.asarray(r) for r in run_session(session, outputs, feeds)]
    except Exception:
        return None


class FoldShapeComputation:
    name = "fold-shape-computation"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        graph = model.graph
        producers = {o: n for n in graph.node for o in n.output}
        constants = {i.name for i in graph.initializer}
        constants |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
        targets, data = {}, {}
        for node in graph.node:
            if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] not in constants:
                closure = _closure(model, node.input[1], producers, constants)
                if closure is not None and node.input[1] not in targets:
                    targets[node.input[1]] = closure
                    data[node.input[1]] = node.input[0]
        if not targets:
            return None
        names = list(targets)
        runs = [_run(model, names, batch, [data[n] for n in names]) for batch in _BATCHES]
        if any(r is None for r in runs):
            return None
        folded = {}
        for i, name in enumerate(names):
            small, large = runs[0][i], runs[1][i]
            in_small, in_large = runs[0][len(names) + i], runs[1][len(names) + i]
            if small.ndim != 1 or small.shape != large.shape:
                continue
            differ = np.flatnonzero(small != large)
            if len(differ) == 0:
                folded[name] = small
                continue
            k = int(differ[0])
            if len(differ) != 1 or (small[k], large[k]) != _BATCHES:
                continue
            target = small.copy()
            if -1 not in small:
                target[k] = -1
            elif k < len(in_small) and (in_small[k], in_large[k]) == _BATCHES:
                target[k] = 0  # the input's dimension k, the batch
            else:
                continue
            folded[name] = target
        if not folded:
            return None
        out = copy_model(model)
        for node in out.graph.node:
            if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in folded:
                constant = f"{node.input[1]}_folded"
                if constant not in {i.name for i in out.graph.initializer}:
                    out.graph.initializer.append(
                        numpy_helper.from_array(folded[node.input[1]].astype(np.int64), constant))
                node.input[1] = constant
        removed = 0
        candidates = {id(n) for name in folded for n in targets[name]}
        while True:  # drop the shape computation nodes nothing reads any more
            read = {i for n in out.graph.node for i in n.input} | {o.name for o in out.graph.output}
            dead = [i for i, n in enumerate(out.graph.node)
                    if not any(o in read for o in n.output)
                    and (n.op_type == "Constant" or any(o in producers and id(producers[o]) in candidates
                                                        for o in n.output))]
            if not dead:
                break
            for i in reversed(dead):
                del out.graph.node[i]
            removed += len(dead)
        return out, (f"{len(folded)} Reshape target(s) computed from Shape at run time folded to constants "
                     f"({', '.join(str(folded[n].tolist()) for n in folded)}; {removed} node(s) removed)")
