"""``hoist-transpose`` on a quantized graph: whole QDQ groups with per-channel constants between two layout changes.

tf2onnx's TFLite export of a BatchNormalization after an activation: ``Q -> Transpose(NCHW->NHWC) -> DQ -> Mul(c) ->
Q -> DQ -> Add(c) -> Q -> Transpose(NHWC->NCHW)``, with ``c`` int8 constants read through DequantizeLinear. The
reference is onnxruntime on the graph before the rewrites; the model is written here with ``onnx.helper``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from systolix.frontend.importer import import_model
from systolix.frontend.normalize import normalize


def _model(to_input: bool = False) -> onnx.ModelProto:
    c = 4
    inits = [numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(-2), "z"),
             numpy_helper.from_array(np.array([30, -70, 127, 55], np.int8), "k"),
             numpy_helper.from_array(np.float32(0.02), "s_k"),
             numpy_helper.from_array(np.array([-100, 20, 0, 90], np.int8), "b"),
             numpy_helper.from_array(np.float32(0.01), "s_b"), numpy_helper.from_array(np.int8(0), "z0"),
             numpy_helper.from_array(np.float32(0.03), "s1"), numpy_helper.from_array(np.int8(4), "z1"),
             numpy_helper.from_array(np.float32(0.04), "s2"), numpy_helper.from_array(np.int8(-7), "z2")]
    head = "xq"  # NHWC: read as it is when the input is NHWC, else after the Transpose from NCHW
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in")]
    if not to_input:
        nodes.append(helper.make_node("Transpose", ["xq"], ["xt"], name="to_nhwc", perm=[0, 2, 3, 1]))
        head = "xt"
    nodes += [
        helper.make_node("DequantizeLinear", [head, "s", "z"], ["xf"], name="dq"),
        helper.make_node("DequantizeLinear", ["k", "s_k", "z0"], ["kf"], name="dq_k"),
        helper.make_node("Mul", ["xf", "kf"], ["m"], name="bn_mul"),
        helper.make_node("QuantizeLinear", ["m", "s1", "z1"], ["mq"], name="q_mul"),
        helper.make_node("DequantizeLinear", ["mq", "s1", "z1"], ["mf"], name="dq_mul"),
        helper.make_node("DequantizeLinear", ["b", "s_b", "z0"], ["bf"], name="dq_b"),
        helper.make_node("Add", ["mf", "bf"], ["a"], name="bn_add"),
        helper.make_node("QuantizeLinear", ["a", "s2", "z2"], ["aq"], name="q_add"),
        helper.make_node("Transpose", ["aq"], ["at"], name="to_nchw", perm=[0, 3, 1, 2]),
        helper.make_node("DequantizeLinear", ["at", "s2", "z2"], ["y"], name="dq_out"),
    ]
    shape = ["N", 5, 6, c] if to_input else ["N", c, 5, 6]
    graph = helper.make_graph(nodes, "bn_nhwc", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", c, 5, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]


def test_transpose_round_trip_around_qdq_groups_goes():
    model = _model()
    normalized = normalize(model, quantized=True)
    fired = [(f.name, f.applied) for f in normalized.fired]
    assert fired == [("hoist-transpose", True), ("cancel-layout-round-trips", True)]
    assert all("0 output elements differ" in f.check for f in normalized.fired)
    ops = [n.op_type for n in normalized.model.graph.node]
    assert "Transpose" not in ops
    x = np.random.default_rng(0).normal(0, 2, (6, 4, 5, 6)).astype(np.float32)
    got, want = _run(normalized.model, x), _run(model, x)
    assert got.shape == want.shape == (6, 4, 5, 6)
    np.testing.assert_array_equal(got, want)
    # the per-channel constants are now on axis 1: the accelerator's per-channel tables
    kinds = [layer.op for layer in import_model(model).ir.layers]
    assert kinds == ["QLinearMul", "QLinearAdd"]


def test_not_hoisted_up_to_a_float_graph_input():
    """A chain that starts at the float input stays: the input is the host's (quantized or a host prefix)."""
    normalized = normalize(_model(to_input=True), quantized=True)
    assert "hoist-transpose" not in [f.name for f in normalized.fired]
