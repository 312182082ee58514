"""How far onnxruntime's execution of the original quantized graph is from the canonical integer model.

onnxruntime fuses some ``DQ -> op -> Q`` groups into integer kernels and computes the others in float32
(:func:`ort_executed_tensors` shows which, from the graph it saves with ``optimized_model_filepath``).
:func:`float_execution_report` runs both models on the same integer inputs and counts, for every integer
tensor they share by name, the elements that differ.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto

from systolix.errors import SystolixError
from systolix.frontend.reference import (
    ORT_ERRORS,
    add_outputs,
    fixed_batch,
    reference_session,
    run_session,
    session_options,
)

if TYPE_CHECKING:
    from systolix.frontend.canonical import CanonicalModel

_INT_TYPES = (TensorProto.INT8, TensorProto.UINT8)


@dataclass(frozen=True)
class LayerDisagreement:
    """Disagreement on one integer tensor between onnxruntime on the original and on the canonical model.

    Attributes
    ----------
    name : str
        Tensor name (shared by both models).
    elements : int
        Number of elements compared (all samples).
    differing : int
        Elements that differ.
    max_abs_diff : float
        Largest absolute difference (0 when none differ; an integer value for integer tensors).
    node : str
        Canonical node writing the tensor (empty for a graph output of the original model).
    op : str
        Its op type (``"graph output"`` for an original graph output).
    float_in_original : bool
        onnxruntime computes the group writing this tensor in float32 in the original graph.
    differing_local : int
        Elements that differ in samples where every integer input of the layer agreed: the layer's own
        disagreement, not one inherited from an earlier layer.
    """

    name: str
    elements: int
    differing: int
    max_abs_diff: float
    node: str = ""
    op: str = ""
    float_in_original: bool = False
    differing_local: int = 0


def original_session(model: onnx.ModelProto, optimized_model_path: str | None = None) -> ort.InferenceSession:
    """onnxruntime on an original (QDQ) model: exact settings when it loads with them, else the defaults.

    Some QDQ graphs (the MLPerf Tiny ResNet-8) fail to load with ``session.x64quantprecision``.
    """
    try:
        return reference_session(model, optimized_model_path=optimized_model_path)
    except SystolixError:
        options = session_options(exact=False, optimized_model_path=optimized_model_path)
        try:
            return ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )
        except ORT_ERRORS as exc:
            raise SystolixError(
                f"onnxruntime cannot load the original model: {str(exc).splitlines()[0]}"
            ) from exc


def ort_executed_tensors(model: onnx.ModelProto) -> set[str] | None:
    """Names of the tensors onnxruntime's optimized graph computes (None if onnxruntime cannot load it).

    A QDQ group whose float intermediate tensors survive there is computed in float32.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "optimized.onnx")
        try:
            original_session(model, path)
        except SystolixError:
            return None
        optimized = onnx.load(path)
    return {t for node in optimized.graph.node for t in node.output if t}


def _float_in_original(original: onnx.ModelProto, executed: set[str] | None, tensor: str) -> bool:
    """True when the float tensors inside the group writing ``tensor`` survive in onnxruntime's graph."""
    if executed is None:
        return False
    producer = {o: n for n in original.graph.node for o in n.output}
    q = producer.get(tensor)
    if q is None or q.op_type != "QuantizeLinear":
        return False
    internal, todo = [], [q.input[0]]
    while todo and len(internal) < 4:  # op, bias Add, Relu: at most a few float tensors deep
        name = todo.pop()
        node = producer.get(name)
        if node is None or node.op_type in ("DequantizeLinear", "QuantizeLinear", "Constant"):
            continue
        internal.append(name)
        todo.extend(node.input)
    return any(t in executed for t in internal)


def _int_sources(canonical: onnx.ModelProto, tensor: str, stop: set[str]) -> set[str]:
    """The compared (or input) integer tensors the canonical layer writing ``tensor`` reads."""
    producer = {o: n for n in canonical.graph.node for o in n.output}
    consts = {t.name for t in canonical.graph.initializer}
    found: set[str] = set()
    todo = [i for i in producer[tensor].input if i] if tensor in producer else []
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in consts:
            continue
        seen.add(name)
        if name in stop:
            found.add(name)
        elif name in producer and producer[name].op_type != "Constant":
            todo.extend(i for i in producer[name].input if i)
    return found


def with_host_ops(original: onnx.ModelProto, canon: CanonicalModel) -> onnx.ModelProto:
    """The canonical model followed by the original nodes it left to the host, with the original outputs."""
    model = onnx.ModelProto()
    model.CopyFrom(canon.model)
    g = model.graph
    stop = set(canon.output_map) | {i.name for i in g.input}
    producer = {o: n for n in original.graph.node for o in n.output}
    tail, live = [], [o.name for o in original.graph.output]
    seen: set[str] = set()
    while live:
        name = live.pop()
        if name in seen or name in stop or name not in producer:
            continue
        seen.add(name)
        node = producer[name]
        if node not in tail:
            tail.append(node)
            live.extend(i for i in node.input if i)
    order = {id(n): k for k, n in enumerate(original.graph.node)}
    tail.sort(key=lambda n: order[id(n)])
    have = {t.name for t in g.initializer}
    used = {i for n in tail for i in n.input}
    g.initializer.extend(t for t in original.graph.initializer if t.name in used and t.name not in have)
    g.node.extend(tail)
    del g.output[:]
    g.output.extend(original.graph.output)
    return model


def _run(session: ort.InferenceSession, feeds: dict[str, np.ndarray], batch: int | None) -> dict[str, np.ndarray]:
    """Every output of ``session`` on ``feeds``, run ``batch`` samples at a time (all at once if None)."""
    names = [o.name for o in session.get_outputs()]
    n = next(iter(feeds.values())).shape[0] if feeds else 0
    if batch is None or n <= batch:
        return dict(zip(names, run_session(session, None, feeds), strict=True))
    chunks = [run_session(session, None, {k: v[i : i + batch] for k, v in feeds.items()}) for i in range(0, n, batch)]
    return {
        name: np.concatenate([np.asarray(c[k]) for c in chunks], axis=0)
        for k, name in enumerate(names)
    }


def _compare(a: np.ndarray, b: np.ndarray, name: str, n_samples: int) -> np.ndarray:
    """Absolute differences, one row per sample (one row in all when the tensor has no batch axis)."""
    if a.shape != b.shape:
        raise SystolixError(
            f"tensor {name!r} has shape {a.shape} in the original and {b.shape} in the canonical model"
        )
    if a.dtype.kind == "f" or b.dtype.kind == "f":
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    else:
        diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return diff.reshape(n_samples, -1) if diff.ndim and diff.shape[0] == n_samples else diff.reshape(1, -1)


def float_execution_report(
    original: onnx.ModelProto, canon: CanonicalModel, inputs: dict[str, np.ndarray],
    float_inputs: dict[str, np.ndarray] | None = None,
) -> list[LayerDisagreement]:
    """Compare onnxruntime on the original graph with onnxruntime on the canonical model, tensor by tensor.

    Parameters
    ----------
    original : onnx.ModelProto
        The model given to :func:`~systolix.frontend.canonical.canonicalize`.
    canon : CanonicalModel
        Its canonical form.
    inputs : dict[str, numpy.ndarray]
        Integer inputs of the canonical model, by canonical input name. An original float input
        replaced by a quantized one is fed ``DequantizeLinear`` of it, which quantizes back exactly.
    float_inputs : dict[str, numpy.ndarray], optional
        For a canonical input after a host input prefix (``canon.input_prefix``): the float samples the prefix
        turned into ``inputs[name]``, fed to the original graph (which runs the prefix itself).

    Returns
    -------
    list[LayerDisagreement]
        One entry per integer tensor shared by name, in canonical graph order, then one per original
        graph output (original graph vs canonical model followed by the host's ops).

    Notes
    -----
    Reading an intermediate tensor means making it a graph output, and that changes which groups
    onnxruntime fuses (a QuantizeLinear whose output leaves the graph is no longer converted to uint8,
    so its neighbours stay in float). The intermediate entries therefore describe the original graph
    *with those outputs added*, and their ``float_in_original`` comes from that graph; the final
    graph-output entries come from the untouched original graph.
    """
    cgraph = canon.model.graph
    types = {
        v.name: v.type.tensor_type.elem_type for v in (*cgraph.value_info, *cgraph.output, *cgraph.input)
    }
    original_names = {t for n in original.graph.node for t in n.output}
    shared: list[tuple[str, onnx.NodeProto]] = []
    for node in cgraph.node:
        for name in node.output:
            if name and types.get(name) in _INT_TYPES and name in original_names:
                shared.append((name, node))
    names = [n for n, _ in shared]

    feeds_original: dict[str, np.ndarray] = {}
    for name, value in inputs.items():
        if name in getattr(canon, "input_prefix", {}):
            if float_inputs is None or name not in float_inputs:
                raise ValueError(f"input {name!r} comes after a host input prefix: give its float samples")
            feeds_original[canon.input_map[name]] = float_inputs[name]
        elif name in canon.input_quant:
            scale, zp, _ = canon.input_quant[name]
            feeds_original[canon.input_map[name]] = (value.astype(np.int32) - zp).astype(np.float32) * scale
        else:
            feeds_original[name] = value
    # A model with a fixed batch (often 1) is run that many samples at a time.
    batch_original, batch_canon = fixed_batch(original), fixed_batch(canon.model)
    orig_model = add_outputs(original, names)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "optimized.onnx")
        session = original_session(orig_model, path)
        executed = {t for node in onnx.load(path).graph.node for t in node.output if t}
    got_original = _run(session, feeds_original, batch_original)
    got_canon = _run(reference_session(add_outputs(canon.model, names)), inputs, batch_canon)

    n_samples = next(iter(inputs.values())).shape[0] if inputs else 1
    stop = set(names) | {i.name for i in cgraph.input}
    agree: dict[str, np.ndarray] = {}
    report = []
    for name, node in shared:
        diff = _compare(got_original[name], got_canon[name], name, n_samples)
        agree[name] = (diff == 0).all(axis=1)
        ok_inputs = np.ones(diff.shape[0], bool)
        for src in _int_sources(canon.model, name, stop):
            if src in agree and agree[src].shape == ok_inputs.shape:
                ok_inputs &= agree[src]
        report.append(
            LayerDisagreement(
                name=name,
                elements=int(diff.size),
                differing=int(np.count_nonzero(diff)),
                max_abs_diff=int(diff.max()) if diff.size else 0,
                node=node.name,
                op=node.op_type,
                float_in_original=_float_in_original(original, executed, name),
                differing_local=int(np.count_nonzero(diff[ok_inputs])),
            )
        )
    # The original graph as onnxruntime runs it untouched, against the canonical model + host ops.
    final_original = _run(original_session(original), feeds_original, batch_original)
    final_canon = _run(reference_session(with_host_ops(original, canon)), inputs, batch_canon)
    for out, value in final_original.items():
        diff = _compare(value, final_canon[out], out, n_samples)
        differing = int(np.count_nonzero(diff))
        report.append(
            LayerDisagreement(
                out,
                int(diff.size),
                differing,
                diff.max().item() if diff.size else 0,
                "",
                "graph output",
                False,
                differing,
            )
        )
    return report
