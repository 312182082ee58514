"""onnxruntime as the reference: sessions configured to be integer-exact on any x86 CPU, and access to
intermediate tensors.

``session.x64quantprecision = "1"`` makes onnxruntime avoid the saturating ``vpmaddubsw`` path of its
U8S8 kernels on x86 CPUs without VNNI (see ``docs/ort-integer-semantics.md``), so an integer model gives
the same result on every x86 machine. It does so by rewriting every int8 weight of QLinearConv,
QLinearMatMul and QGemm to uint8 (x ^ 0x80, zero point + 128), whatever the activation type. In
onnxruntime 1.31 that breaks two kinds of models: an int8 weight zero point shared by two such nodes
("Attempt to replace the existing tensor"), and QGemm with int8 activations (no int8 x uint8 kernel).
S8 x S8 QOperator kernels are exact on any x86 CPU without the setting, so :func:`reference_session`
leaves it off for models whose integer matrix ops all read int8 activations.
"""

from __future__ import annotations

import os
import re

import onnx
import onnxruntime as ort
from onnx import TensorProto

from systolix.errors import SystolixError
from systolix.frontend.canonical_graph import GraphView, elem_types

__all__ = ["add_outputs", "fixed_batch", "needs_x64_precision", "ort_span_kind", "reference_session", "run_session",
           "session_options"]

_state = ort.capi.onnxruntime_pybind11_state
#: What onnxruntime raises when it cannot load a model.
ORT_ERRORS = (
    _state.Fail,
    _state.InvalidGraph,
    _state.InvalidArgument,
    _state.NotImplemented,
    _state.RuntimeException,
    _state.NoSuchFile,
    _state.InvalidProtobuf,
)


def session_options(
    *, intra_op_threads: int = 1, exact: bool = True, optimized_model_path: str | None = None
) -> ort.SessionOptions:
    """SessionOptions at ``ORT_ENABLE_ALL`` with warnings silenced.

    Parameters
    ----------
    intra_op_threads : int
        Threads per operator.
    exact : bool
        Set ``session.x64quantprecision`` to ``"1"`` (some QDQ graphs fail to load with it).
    optimized_model_path : str, optional
        Where onnxruntime saves the graph it actually executes.
    """
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = intra_op_threads
    options.log_severity_level = 4  # load errors are raised as exceptions anyway
    if exact:
        options.add_session_config_entry("session.x64quantprecision", "1")
    if optimized_model_path is not None:
        options.optimized_model_filepath = optimized_model_path
    return options


_MATRIX_QOPS = ("QLinearConv", "QLinearMatMul", "QGemm")
_FLOAT_MATRIX_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def _load(model: onnx.ModelProto | bytes | str) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, bytes):
        return onnx.load_from_string(model)
    if isinstance(model, str | os.PathLike):
        try:
            return onnx.load(os.fspath(model))
        except OSError as exc:
            raise SystolixError(f"cannot read the model {model!r}: {exc}") from exc
    raise SystolixError(f"a model must be an onnx.ModelProto, bytes or a path, not {type(model).__name__}")


def needs_x64_precision(model: onnx.ModelProto) -> bool:
    """False when every integer matrix op is QOperator with int8 activations (exact on any x86 CPU as is).

    Float Conv/MatMul/Gemm nodes (QDQ groups onnxruntime may fuse into U8S8 kernels) or any uint8 (or
    unknown) activation of QLinearConv/QLinearMatMul/QGemm make the setting necessary.
    """
    if any(n.op_type in _FLOAT_MATRIX_OPS for n in model.graph.node):
        return True
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    types = elem_types(GraphView(copy))
    return any(
        types.get(n.input[0]) != TensorProto.INT8 for n in model.graph.node if n.op_type in _MATRIX_QOPS
    )


def ort_span_kind(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> str:
    """Which kernel form onnxruntime's binary broadcaster calls for inputs of these shapes.

    ``"a_scalar"``, ``"b_scalar"`` or ``"general"``: ``Broadcaster`` (``element_wise_ops.h``) walks the
    shapes from the innermost axis; trailing axes of size 1 are skipped only while both shapes still
    have axes there (within the shorter rank), and the first axis it keeps decides: an input of size 1
    on it is the per-span scalar, input 0 first. So ``[N, C, H, 1] + [1]`` is *input-0-scalar* (one
    element per span), while ``[N, C, H, 1] + [1, 1, 1, 1]`` is *input-1-scalar*. The kernels round
    differently in the three forms (QLinearAdd, QLinearMul), so golden models and tables must ask.
    """
    a, b = list(shape_a), list(shape_b)
    if not a or not b:
        if not a and not b:
            return "a_scalar"
        last = (b or a)[-1]
        if not a:
            return "a_scalar"
        return "b_scalar" if last > 1 else "a_scalar"
    dmin = min(len(a), len(b))
    for index in range(dmin):
        x, y = a[-1 - index], b[-1 - index]
        if max(x, y) == 1 and index + 1 < dmin:
            continue
        if x <= 1:
            return "a_scalar"
        return "b_scalar" if y <= 1 else "general"
    raise AssertionError("unreachable")


def run_session(session: ort.InferenceSession, outputs: list[str] | None, feeds: dict) -> list:
    """``session.run`` with onnxruntime's run-time refusals as one-line :class:`SystolixError` s.

    onnxruntime checks some parameters only when a node runs (QLinearGlobalAveragePool's scale
    range, for instance); such a model is one onnxruntime itself refuses, so it is bad input.
    """
    try:
        return session.run(outputs, feeds)
    except ORT_ERRORS as e:
        text = re.sub(r"^(\[ONNXRuntimeError\] : )?\d+ : [A-Z_]+ : ", "", str(e).strip()).splitlines()[0]
        raise SystolixError(f"onnxruntime refuses to run the model: {text}") from None


def reference_session(
    model: onnx.ModelProto | bytes | str | os.PathLike,
    *,
    intra_op_threads: int = 1,
    optimized_model_path: str | None = None,
) -> ort.InferenceSession:
    """An onnxruntime CPU session that is integer-exact on any x86 CPU.

    Parameters
    ----------
    model : onnx.ModelProto or bytes or str
        The model, its serialized bytes, or a path to an ``.onnx`` file.
    intra_op_threads : int
        Threads per operator (1 by default: results do not depend on it, speed of small models does).
    optimized_model_path : str, optional
        Save the graph onnxruntime executes there (to see which groups it fused).

    Returns
    -------
    onnxruntime.InferenceSession
        With ``session.x64quantprecision = "1"`` (unless :func:`needs_x64_precision` says it is not
        needed), ``ORT_ENABLE_ALL`` and the CPU provider.

    Raises
    ------
    SystolixError
        If onnxruntime cannot load the model.
    """
    proto = _load(model)
    exact = needs_x64_precision(proto)
    options = session_options(
        intra_op_threads=intra_op_threads, exact=exact, optimized_model_path=optimized_model_path
    )
    try:
        return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise SystolixError(f"onnxruntime cannot load the model: {str(exc).splitlines()[0]}") from exc


def add_outputs(model: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """A copy of ``model`` whose graph also outputs the tensors ``names`` (to read intermediate values).

    Types come from onnx shape inference, else from the model's ``value_info``, graph inputs or
    initializers, else from element-type propagation through the onnxruntime integer operators (the
    output then has a type but no shape, which onnxruntime accepts). Names that already are graph
    outputs are skipped.

    Raises
    ------
    SystolixError
        If a tensor does not exist in the graph or its type cannot be found.
    """
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    known = {o.name for o in g.output}
    wanted = [n for n in dict.fromkeys(names) if n not in known]
    if not wanted:
        return out
    produced = (
        {t for node in g.node for t in node.output}
        | {i.name for i in g.input}
        | {t.name for t in g.initializer}
    )
    missing = [n for n in wanted if n not in produced]
    if missing:
        raise SystolixError(f"tensor {missing[0]!r} is not in the graph")
    try:
        inferred = onnx.shape_inference.infer_shapes(model).graph.value_info
    except Exception:
        inferred = []
    types: dict[str, onnx.ValueInfoProto] = {}
    for vi in (*g.input, *g.value_info, *inferred):
        if vi.type.tensor_type.elem_type:
            types[vi.name] = vi
    for t in g.initializer:
        types.setdefault(t.name, onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    if any(n not in types for n in wanted):
        # onnx does not know the com.microsoft operators: propagate element types through them.
        for name, elem in elem_types(GraphView(out)).items():
            if name not in types and elem:
                vi = onnx.ValueInfoProto()
                vi.name = name
                vi.type.tensor_type.elem_type = elem
                types[name] = vi
    for name in wanted:
        if name not in types:
            raise SystolixError(
                f"cannot expose tensor {name!r}: its type is unknown (not in shape inference or value_info)"
            )
        vi = onnx.ValueInfoProto()
        vi.CopyFrom(types[name])
        g.output.append(vi)
    return out


def fixed_batch(model: onnx.ModelProto) -> int | None:
    """The fixed batch of a model's first (non-initializer) input, or None when it is symbolic: onnxruntime
    then runs such a model that many samples at a time."""
    inits = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in inits:
            continue
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value > 0:
            return int(dims[0].dim_value)
        return None
    return None
