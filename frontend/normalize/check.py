"""Does a rewrite change what onnxruntime computes? Both graphs run on the same random inputs.

Quantized graphs must give identical outputs (their integer inputs are drawn over the whole code range);
for float graphs the largest absolute difference is reported. A graph onnxruntime cannot load (an IR
version newer than it reads, say) is not compared, and the report says so. A quantized graph that loads only
without ``session.x64quantprecision`` (tf2onnx's TFLite exports) is compared op by op, without fusion.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx

from systolix.errors import SystolixError

__all__ = ["Verdict", "compare"]

_SAMPLES = 4


@dataclasses.dataclass(frozen=True)
class Verdict:
    differs: bool
    text: str


def _feeds(model: onnx.ModelProto, rng: np.random.Generator) -> dict[str, np.ndarray] | None:
    inits = {i.name for i in model.graph.initializer}
    feeds = {}
    for value in model.graph.input:
        if value.name in inits:
            continue
        tt = value.type.tensor_type
        dims = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                dims.append(int(d.dim_value))
            elif axis == 0:
                dims.append(_SAMPLES)
            else:
                return None
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            feeds[value.name] = rng.integers(info.min, info.max + 1, dims).astype(dtype)
        elif dtype == np.float32:
            feeds[value.name] = rng.normal(0, 1, dims).astype(np.float32)
        else:
            return None
    return feeds


def _unfused_session(model: onnx.ModelProto):
    import onnxruntime as ort

    from systolix.frontend.reference import session_options

    options = session_options(exact=False)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def compare(before: onnx.ModelProto, after: onnx.ModelProto, *, quantized: bool) -> Verdict:
    """Run both graphs in onnxruntime (the exact session) on random inputs and compare every output."""
    from systolix.frontend.reference import reference_session, run_session

    feeds = _feeds(before, np.random.default_rng(0))
    if feeds is None:
        return Verdict(False, "not compared: an input has a dynamic non-batch dimension")
    session = reference_session
    try:
        first = run_session(session(before), None, feeds)
    except (SystolixError, Exception):
        # some QDQ graphs (tf2onnx's TFLite exports) load only without session.x64quantprecision: both graphs
        # are then run op by op as the ONNX graph defines them (no fusion: which QDQ groups onnxruntime fuses
        # depends on the layout ops around them, and the canonical form states its own integer meaning anyway)
        session = _unfused_session
        try:
            first = run_session(session(before), None, feeds)
        except Exception:
            return Verdict(False, "the original does not load in onnxruntime: not compared")
    try:
        second = run_session(session(after), None, feeds)
    except (SystolixError, Exception) as exc:
        return Verdict(True, f"the rewritten graph does not run in onnxruntime: {str(exc).splitlines()[0][:80]}")
    differing, largest = 0, 0.0
    for a, b in zip(first, second, strict=True):
        if a.shape != b.shape:
            return Verdict(True, f"output shape {list(a.shape)} became {list(b.shape)}")
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        differing += int(np.count_nonzero(diff))
        largest = max(largest, float(diff.max(initial=0.0)))
    n = len(next(iter(feeds.values())))
    if quantized:
        return Verdict(differing > 0, f"onnxruntime on {n} random inputs: {differing} output elements differ")
    return Verdict(False, f"onnxruntime on {n} random inputs: max |difference| {largest:g}")
