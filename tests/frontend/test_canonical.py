"""The integer canonical form: QDQ and QOperator models -> onnxruntime integer operators.

References are onnxruntime itself (running the original model) and values recomputed here from the
original model's own initializers; nothing is copied from the code under test.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from systolix.errors import SystolixError
from systolix.frontend.canonical import canonicalize, float_execution_report
from systolix.frontend.reference import add_outputs, reference_session

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MODELS = SHARED / "models"
needs_shared = pytest.mark.skipif(not MODELS.is_dir(), reason="../shared is not beside the checkout")

# What the canonical form may contain (written independently of the implementation's own tables).
INTEGER_OPS = {
    "QLinearConv", "QLinearMatMul", "QGemm", "QLinearAdd", "QLinearMul", "QLinearAveragePool",
    "QLinearGlobalAveragePool", "QLinearConcat", "QLinearLeakyRelu", "QLinearSigmoid",
}  # fmt: skip
INT_LAYOUT_OPS = {"MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity"}
TABLE_OPS = {
    "Tanh",
    "Sigmoid",
    "LeakyRelu",
    "Relu",
    "Clip",
    "Elu",
    "HardSigmoid",
    "Softplus",
    "Exp",
    "Identity",
}


def assert_canonical(model: onnx.ModelProto) -> None:
    """Every node is an integer op, a layout op on int8/uint8, or part of DQ -> unary -> Q."""
    g = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in (*g.input, *g.value_info, *g.output)}
    types.update({t.name: t.data_type for t in g.initializer})
    producer = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    for n in g.node:
        if n.op_type in INTEGER_OPS:
            assert types[n.output[0]] in (TensorProto.INT8, TensorProto.UINT8), n.name
        elif n.op_type in INT_LAYOUT_OPS and types.get(n.input[0]) in (TensorProto.INT8, TensorProto.UINT8):
            assert types[n.output[0]] == types[n.input[0]]
        elif n.op_type == "DequantizeLinear":
            assert all(c.op_type in TABLE_OPS for c in consumers[n.output[0]]), n.name
        elif n.op_type in TABLE_OPS:
            assert producer[n.input[0]].op_type == "DequantizeLinear", n.name
            assert [c.op_type for c in consumers[n.output[0]]] == ["QuantizeLinear"], n.name
        elif n.op_type == "QuantizeLinear":
            assert producer[n.input[0]].op_type in TABLE_OPS, n.name
        else:
            raise AssertionError(f"{n.op_type} node {n.name!r} is not in canonical form")


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = reference_session(model)
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def random_inputs(canon, n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in canon.model.graph.input:
        dtype = helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
        shape = [d.dim_value if d.HasField("dim_value") else n for d in vi.type.tensor_type.shape.dim]
        info = np.iinfo(dtype)
        feeds[vi.name] = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return feeds


# -- models quantized by onnxruntime's quantize_static ------------------------------------------------
def float_model(batch: int = 1) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name, *shape, scale=0.3):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [
        init("w1", 8, 3, 3, 3), init("b1", 8, scale=0.1), init("w2", 8, 8, 3, 3, scale=0.15),
        init("b2", 8, scale=0.1), init("wg", 16, 10), init("bg", 10, scale=0.1), init("wm", 16, 10),
        init("bm", 10, scale=0.1),
    ]  # fmt: skip
    node = helper.make_node
    nodes = [
        node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], ["r1"], name="relu1"),
        node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        node("Conv", ["p1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1]),
        node("Add", ["c2", "p1"], ["a"], name="add"),
        node("Relu", ["a"], ["r2"], name="relu2"),
        node("AveragePool", ["r2"], ["ap"], name="avgpool", kernel_shape=[2, 2], strides=[2, 2]),
        node("Sigmoid", ["ap"], ["sg"], name="sigmoid"),
        node("Concat", ["ap", "sg"], ["cat"], name="concat", axis=1),
        node("GlobalAveragePool", ["cat"], ["gap"], name="gap"),
        node("Flatten", ["gap"], ["f"], name="flatten"),
        node("Gemm", ["f", "wg", "bg"], ["y1"], name="gemm"),
        node("MatMul", ["f", "wm"], ["mm"], name="matmul"),
        node("Add", ["mm", "bm"], ["mmb"], name="bias"),
        node("Softmax", ["mmb"], ["y2"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "small",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [
            helper.make_tensor_value_info("y1", TensorProto.FLOAT, [batch, 10]),
            helper.make_tensor_value_info("y2", TensorProto.FLOAT, [batch, 10]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


class _Calibration(CalibrationDataReader):
    def __init__(self) -> None:
        rng = np.random.default_rng(1)
        self.data = iter([{"x": rng.standard_normal((1, 3, 16, 16)).astype(np.float32)} for _ in range(8)])

    def get_next(self):
        return next(self.data, None)


@pytest.fixture(scope="module")
def quantized(tmp_path_factory):
    """quantize_static of the small float model, by (format, activation type, per channel)."""
    tmp = tmp_path_factory.mktemp("ptq")
    src = tmp / "float.onnx"
    onnx.save(float_model(), src)
    cache: dict[tuple, onnx.ModelProto] = {}

    def make(fmt: str, act: str, per_channel: bool) -> onnx.ModelProto:
        key = (fmt, act, per_channel)
        if key not in cache:
            dst = tmp / f"{fmt}_{act}_{per_channel}.onnx"
            quantize_static(
                str(src),
                str(dst),
                _Calibration(),
                quant_format=QuantFormat.QDQ if fmt == "qdq" else QuantFormat.QOperator,
                activation_type=QuantType.QInt8 if act == "s8" else QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=per_channel,
            )
            cache[key] = onnx.load(dst)
        return cache[key]

    return make


def float_feeds(original: onnx.ModelProto, canon, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Float inputs of the original model that its leading QuantizeLinear maps back to ``feeds``."""
    out = {}
    inits = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    for name, value in feeds.items():
        q = next(n for n in original.graph.node if n.output[0] == name)
        scale, zp = inits[q.input[1]], inits[q.input[2]]
        out[canon.input_map[name]] = (value.astype(np.int32) - zp).astype(np.float32) * scale
    return out


@pytest.mark.parametrize("per_channel", [False, True])
def test_qdq_uint8_matches_onnxruntime_on_the_original(quantized, per_channel):
    original = quantized("qdq", "u8", per_channel)
    canon = canonicalize(original)
    assert_canonical(canon.model)
    onnx.checker.check_model(canon.model)
    # onnxruntime fuses every group of a U8S8 QDQ model itself: nothing differs from it.
    assert canon.converted == []
    ops = {n.name: n.op_type for n in canon.model.graph.node}
    assert ops["conv1"] == ops["conv2"] == "QLinearConv"
    assert ops["gemm"] == ops["matmul"] == "QGemm"
    assert (ops["add"], ops["bias"]) == ("QLinearAdd", "QLinearAdd")
    assert (ops["avgpool"], ops["gap"], ops["concat"]) == (
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearConcat",
    )
    assert (ops["pool1"], ops["flatten"]) == ("MaxPool", "Flatten")
    # Names preserved: each canonical tensor written by a rewritten node exists in the original.
    original_tensors = {o for n in original.graph.node for o in n.output}
    assert {o for n in canon.model.graph.node for o in n.output} <= original_tensors
    # The float input became the QuantizeLinear's integer output.
    q = next(n for n in original.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x")
    inits = {t.name: numpy_helper.to_array(t) for t in original.graph.initializer}
    assert canon.input_map == {q.output[0]: "x"}
    scale, zp, dtype = canon.input_quant[q.output[0]]
    assert scale.view(np.int32) == inits[q.input[1]].view(np.int32)
    assert (zp, dtype) == (int(inits[q.input[2]]), np.dtype(np.uint8))
    # Trailing DequantizeLinear and DQ -> Softmax -> Q -> DQ are left to the host.
    assert sorted(canon.output_map.values()) == ["y1", "y2"]
    assert len(canon.host_ops) == 2 and any("Softmax" in h and "'y2'" in h for h in canon.host_ops)

    feeds = random_inputs(canon, 1)
    for seed in range(20):
        feeds = random_inputs(canon, 1, seed)
        report = float_execution_report(original, canon, feeds)
        assert [r for r in report if r.differing] == []


def test_qdq_int8_differs_only_where_onnxruntime_computes_in_float(quantized):
    original = quantized("qdq", "s8", True)
    canon = canonicalize(original)
    assert_canonical(canon.model)
    # onnxruntime fuses S8 QDQ only after turning int8 activations into uint8, which it cannot do for
    # groups reading the graph input directly: those stay in float.
    assert {c.name for c in canon.converted} >= {"conv2", "add", "gemm", "matmul"}
    assert all("onnxruntime leaves" in c.why for c in canon.converted)
    for seed in range(20):
        report = float_execution_report(original, canon, random_inputs(canon, 1, seed))
        own = [r for r in report if r.differing_local and r.op != "graph output"]
        assert all(r.float_in_original for r in own), own


@pytest.mark.parametrize(("act", "per_channel"), [("u8", True), ("s8", False)])
def test_qoperator_passes_through(quantized, act, per_channel):
    original = quantized("qop", act, per_channel)
    canon = canonicalize(original)
    assert_canonical(canon.model)
    kept = [n.op_type for n in original.graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert [n.op_type for n in canon.model.graph.node] == [op for op in kept if op != "QLinearSoftmax"]
    assert canon.converted == [] and canon.rewritten == []
    assert any(h.startswith("QLinearSoftmax(") for h in canon.host_ops)
    feeds = random_inputs(canon, 1)
    got = run(canon.model, feeds)
    names = list(canon.output_map)
    exposed = add_outputs(original, names)
    session = reference_session(exposed)  # exact: uint8 x int8 saturates on CPUs without VNNI otherwise
    want = dict(zip(names, session.run(names, float_feeds(original, canon, feeds)), strict=True))
    for name in names:
        assert got[name].dtype == want[name].dtype and got[name].shape == want[name].shape
        np.testing.assert_array_equal(got[name], want[name])


# -- hand-built QDQ groups ----------------------------------------------------------------------------
def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def conv_group(bias_scale_factor: float = 1.0, act: str | None = None, y_zp: int = -128, clip=(0.0, 6.0)):
    """int8 x -> DQ -> Conv(DQ(w), DQ(b)) -> [act] -> Q, one group, per-channel weights."""
    rng = np.random.default_rng(3)
    x_s, y_s = np.float32(0.05), np.float32(0.08)
    w = rng.integers(-127, 128, size=(4, 2, 3, 3)).astype(np.int8)
    w_s = (rng.random(4) * 0.01 + 0.002).astype(np.float32)
    b_s = (x_s * w_s * np.float32(bias_scale_factor)).astype(np.float32)
    b = rng.integers(-2000, 2000, size=4).astype(np.int32)
    inits = [
        _const("x_s", x_s), _const("x_zp", np.int8(3)), _const("w", w), _const("w_s", w_s),
        _const("w_zp", np.zeros(4, np.int8)), _const("b", b), _const("b_s", b_s),
        _const("b_zp", np.zeros(4, np.int32)), _const("y_s", y_s), _const("y_zp", np.int8(y_zp)),
    ]  # fmt: skip
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "x_s", "x_zp"], ["xf"], name="dq_x"),
        helper.make_node("DequantizeLinear", ["w", "w_s", "w_zp"], ["wf"], name="dq_w", axis=0),
        helper.make_node("DequantizeLinear", ["b", "b_s", "b_zp"], ["bf"], name="dq_b", axis=0),
        helper.make_node("Conv", ["xf", "wf", "bf"], ["c"], name="conv", pads=[1, 1, 1, 1]),
    ]
    last = "c"
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["a"], name="act"))
        last = "a"
    elif act == "Clip":
        inits += [_const("lo", np.float32(clip[0])), _const("hi", np.float32(clip[1]))]
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["a"], name="act"))
        last = "a"
    nodes.append(helper.make_node("QuantizeLinear", [last, "y_s", "y_zp"], ["y"], name="q"))
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.INT8, ["n", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, ["n", 4, 6, 6])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _qlinear_conv_of(canon) -> onnx.NodeProto:
    (node,) = [n for n in canon.model.graph.node if n.op_type == "QLinearConv"]
    return node


def test_float_execution_report_runs_a_fixed_batch_sample_by_sample():
    # The original input is [1, 2, 6, 6]: onnxruntime refused 8 samples at once ("Got: 8 Expected: 1").
    model = conv_group()
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    canon = canonicalize(model)
    assert [c.name for c in canon.converted] == ["conv"]
    feeds = {"x": np.random.default_rng(5).integers(-128, 128, size=(8, 2, 6, 6)).astype(np.int8)}
    report = float_execution_report(model, canon, feeds)
    singles = [float_execution_report(model, canon, {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(8)]
    assert [r.name for r in report] == ["y", "y"] and [r.op for r in report] == ["QLinearConv", "graph output"]
    for k, entry in enumerate(report):
        assert entry.elements == 8 * 4 * 6 * 6
        assert entry.differing == sum(s[k].differing for s in singles)
        assert entry.max_abs_diff == max(s[k].max_abs_diff for s in singles)


def test_conv_group_keeps_a_matching_int32_bias():
    model = conv_group()
    canon = canonicalize(model)
    node = _qlinear_conv_of(canon)
    assert node.name == "conv" and list(node.output) == ["y"]
    assert node.input[8] == "b"
    assert canon.converted == [] or all("bias" not in c.why for c in canon.converted)


def test_conv_group_requantizes_a_mismatched_bias_like_onnxruntime():
    model = conv_group(bias_scale_factor=1.5)
    canon = canonicalize(model)
    node = _qlinear_conv_of(canon)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    got = {t.name: numpy_helper.to_array(t) for t in canon.model.graph.initializer}[node.input[8]]
    real = (inits["b"].astype(np.float32) * inits["b_s"]).astype(np.float32)
    scale = (inits["x_s"] * inits["w_s"]).astype(np.float32)
    want = np.rint(real.astype(np.float64) / scale.astype(np.float64)).astype(np.int32)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    (layer,) = [c for c in canon.converted if c.name == "conv"]
    assert "bias re-quantized" in layer.why and layer.tensor == "y"


def _float_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime on the QDQ graph with graph optimizations off: DQ -> float Conv -> act -> Q."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("act", "y_zp", "clip", "fused"),
    [
        ("Relu", -128, None, True),
        ("Relu", -20, None, False),
        ("Clip", -128, (-1.0, 100.0), True),
        ("Clip", -128, (0.0, 3.0), False),
    ],
)
def test_conv_activation_fused_or_kept_as_table(act, y_zp, clip, fused):
    model = conv_group(act=act, y_zp=y_zp, clip=clip or (0.0, 6.0))
    canon = canonicalize(model)
    assert_canonical(canon.model)
    ops = [n.op_type for n in canon.model.graph.node]
    assert ops == (["QLinearConv"] if fused else ["QLinearConv", "DequantizeLinear", act, "QuantizeLinear"])
    # Against the float execution: equal except where float32 conv and integer requantization round
    # differently (rare, off by one).
    x = np.random.default_rng(5).integers(-128, 128, size=(16, 2, 6, 6)).astype(np.int8)
    got = run(canon.model, {"x": x})["y"]
    want = _float_reference(model, x)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    assert np.count_nonzero(got != want) <= got.size // 100
    if not fused:
        low = y_zp if act == "Relu" else int(np.rint(np.float32(clip[0]) / np.float32(0.08))) + y_zp
        assert got.min() >= low and (got == low).any()


def _layout_model(out_scale: float) -> onnx.ModelProto:
    inits = [_const("s", np.float32(0.1)), _const("zp", np.int8(0)), _const("s2", np.float32(out_scale))]
    nodes = [
        helper.make_node("DequantizeLinear", ["x", "s", "zp"], ["xf"], name="dq"),
        helper.make_node("MaxPool", ["xf"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("QuantizeLinear", ["p", "s2", "zp"], ["y"], name="q"),
    ]
    graph = helper.make_graph(
        nodes,
        "pool",
        [helper.make_tensor_value_info("x", TensorProto.INT8, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [1, 2, 2, 2])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_layout_op_runs_on_integers_when_parameters_agree():
    canon = canonicalize(_layout_model(0.1))
    assert [(n.op_type, n.name, list(n.input), list(n.output)) for n in canon.model.graph.node] == [
        ("MaxPool", "pool", ["x"], ["y"])
    ]
    x = np.random.default_rng(0).integers(-128, 128, size=(1, 2, 4, 4)).astype(np.int8)
    np.testing.assert_array_equal(
        run(canon.model, {"x": x})["y"], x.reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    )


def test_layout_op_with_different_parameters_is_requantized_by_a_table():
    """MaxPool on the integers, then DQ -> Identity -> Q: equal to onnxruntime's float execution."""
    original = _layout_model(0.2)
    canon = canonicalize(original)
    ops = [n.op_type for n in canon.model.graph.node]
    assert ops == ["MaxPool", "DequantizeLinear", "Identity", "QuantizeLinear"]
    x = np.random.default_rng(0).integers(-128, 128, (1, 2, 4, 4)).astype(np.int8)
    for value in range(-128, 128, 8):  # every code range, one sample at a time (fixed batch)
        x.flat[:8] = np.arange(value, value + 8)
        (want,) = reference_session(original).run(None, {"x": x})
        (got,) = reference_session(canon.model).run(None, {"x": x})
        np.testing.assert_array_equal(got, want)


def test_unsupported_op_is_named():
    model = _layout_model(0.1)
    model.graph.node[1].CopyFrom(helper.make_node("Softmax", ["xf"], ["p"], name="sm"))
    # Not at the output (a trailing DQ -> Softmax -> Q is left to the host): a Flatten group follows.
    model.graph.node.extend(
        [
            helper.make_node("DequantizeLinear", ["y", "s", "zp"], ["yf"], name="dq2"),
            helper.make_node("Flatten", ["yf"], ["ff"], name="flat"),
            helper.make_node("QuantizeLinear", ["ff", "s", "zp"], ["z"], name="q2"),
        ]
    )
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("z", TensorProto.INT8, [1, 8]))
    with pytest.raises(
        SystolixError, match=r"^Softmax node 'sm' before QuantizeLinear node 'q' is not supported; "
    ):
        canonicalize(model)


def test_float_input_read_by_a_float_op_is_an_error():
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"], name="r")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    message = (
        "graph input 'x' is float and read by Relu node 'r'; a float input must be read only by one "
        "QuantizeLinear (the host quantizes it)"
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    with pytest.raises(SystolixError, match=f"^{re.escape(message)}$"):
        canonicalize(model)


# -- the MLPerf Tiny models (tf2onnx QDQ from TFLite) ---------------------------------------------------
MLPERF = ["mlperf_tiny_resnet8_int8.onnx", "mlperf_tiny_kws_dscnn_int8.onnx"]


def _ort_float_nodes(model: onnx.ModelProto, tmp_path) -> set[str]:
    """Names of the original compute nodes onnxruntime still runs in float (by node name this time)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "opt.onnx")
    options.log_severity_level = 4
    ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    executed = {
        n.name for n in onnx.load(tmp_path / "opt.onnx").graph.node if not n.op_type.startswith("QLinear")
    }
    compute = [
        n.name for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm", "Add", "AveragePool")
    ]
    return {
        name
        for name in compute
        if name in executed or f"{name}_nchwc" in executed or f"{name}/MatMulAddFusion" in executed
    }


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_canonical_form(name, tmp_path):
    original = onnx.load(MODELS / name)
    canon = canonicalize(original)
    assert_canonical(canon.model)
    onnx.checker.check_model(canon.model)
    assert canon.input_quant == {}
    assert list(canon.output_map.values()) == [o.name for o in original.graph.output]
    assert len(canon.host_ops) == 1 and "Softmax" in canon.host_ops[0]
    # `converted` is what onnxruntime leaves in float (a MatMul + bias Add is named after the MatMul).
    float_nodes = _ort_float_nodes(original, tmp_path)
    bias_adds = {
        n.name for n in original.graph.node if n.op_type == "Add" and n.input[0].endswith("_prequant")
    }
    matmuls = {n.name for n in original.graph.node if n.op_type == "MatMul"}
    want = (float_nodes - bias_adds) | ({m for m in matmuls} if float_nodes & bias_adds else set())
    assert {c.name for c in canon.converted} == want
    assert all("bias" not in c.why for c in canon.converted)  # tf2onnx biases have scale x_s * w_s


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_differs_only_in_float_layers(name):
    original = onnx.load(MODELS / name)
    canon = canonicalize(original)
    report = float_execution_report(original, canon, random_inputs(canon, 30))
    layers = [r for r in report if r.op != "graph output"]
    assert layers and all(r.elements for r in layers)
    # A layer that disagrees with its inputs agreeing is one onnxruntime computes in float.
    own = [r.name for r in layers if r.differing_local and not r.float_in_original]
    assert own == []
    # Layout ops between identical parameters never introduce a difference of their own.
    assert all(r.differing_local == 0 for r in layers if r.op in ("Reshape", "Transpose"))


@needs_shared
@pytest.mark.shared
@pytest.mark.slow
@pytest.mark.parametrize("name", MLPERF)
def test_mlperf_disagreement_200_inputs(name, capsys):
    original = onnx.load(MODELS / name)
    canon = canonicalize(original)
    report = float_execution_report(original, canon, random_inputs(canon, 200, seed=7))
    with capsys.disabled():
        print(f"\n{name}: converted {[(c.name, c.op) for c in canon.converted]}")
        for r in report:
            print(
                f"  {r.op:26s} float={r.float_in_original!s:5} {r.differing:6d}/{r.elements:8d} "
                f"local={r.differing_local:5d} max={r.max_abs_diff} {r.name}"
            )
    assert not [r for r in report if r.op != "graph output" and r.differing_local and not r.float_in_original]


def test_uint8_qlinear_matmul_is_exact_in_the_reference(tmp_path):
    """uint8 x int8 QLinearMatMul saturates in onnxruntime on CPUs without VNNI even with x64quantprecision: the
    canonical form gives it uint8 weights (+128), and onnxruntime then equals the golden model on every x86."""
    from systolix.frontend.importer import import_model
    from systolix.quantize.golden_model import run_golden

    rng = np.random.default_rng(11)
    w = rng.integers(-128, 128, (40, 9)).astype(np.int8)
    consts = [_const("as", np.float32(0.05)), _const("az", np.uint8(7)), _const("w", w),
              _const("ws", np.float32(0.01)), _const("wz", np.int8(0)), _const("ys", np.float32(0.4)),
              _const("yz", np.uint8(120))]
    node = helper.make_node("QLinearMatMul", ["x", "as", "az", "w", "ws", "wz", "ys", "yz"], ["y"], name="mm")
    graph = helper.make_graph([node], "mm", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 40])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, ["N", 9])], consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    canon = canonicalize(model)
    (mm,) = [n for n in canon.model.graph.node if n.op_type == "QLinearMatMul"]
    inits = {t.name: numpy_helper.to_array(t) for t in canon.model.graph.initializer}
    assert inits[mm.input[3]].dtype == np.uint8 and inits[mm.input[5]].dtype == np.uint8
    np.testing.assert_array_equal(inits[mm.input[3]].astype(np.int16) - inits[mm.input[5]].astype(np.int16), w)
    path = tmp_path / "mm.onnx"
    onnx.save(model, str(path))
    x = rng.integers(0, 256, (64, 40)).astype(np.uint8)
    imported = import_model(path)
    (want,) = reference_session(imported.reference).run(["y"], {"x": x})
    got = run_golden(imported.ir, {"x": x})["y"]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
