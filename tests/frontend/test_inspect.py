"""Inspect figures against hand-computed shapes, parameters and MACs, and against onnxruntime's shapes."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.cli import main
from systolix.frontend.importer import import_model
from systolix.frontend.ir import window_output_size
from tests.conftest import EXAMPLE, SHARED, needs_shared


def test_bundled_example_by_hand():
    ir = import_model(EXAMPLE / "model.onnx").ir
    rows = {layer.name: layer for layer in ir.layers}
    # Hand-computed: 28-5+1=24, 24-3+1=22, 22/2=11, 11-3+1=9, floor(9/2)=4, 16*4*4=256.
    expect = {
        "conv1": ((1, 4, 24, 24), 4 * 25 + 4, 4 * 24 * 24 * 25),
        "conv2": ((1, 8, 22, 22), 8 * 4 * 9 + 8, 8 * 22 * 22 * 4 * 9),
        "pool1": ((1, 8, 11, 11), 0, 0),
        "conv3": ((1, 16, 9, 9), 16 * 8 * 9 + 16, 16 * 9 * 9 * 8 * 9),
        "pool2": ((1, 16, 4, 4), 0, 0),
        "flatten": ((1, 256), 0, 0),
        "fc1": ((1, 128), 256 * 128 + 128, 256 * 128),
        "fc2": ((1, 10), 128 * 10 + 10, 128 * 10),
    }
    for name, (shape, params, macs) in expect.items():
        assert rows[name].out_shape == shape, name
        assert rows[name].params == params, name
        assert rows[name].macs == macs, name
    assert ir.params == sum(p for _, p, _ in expect.values())
    assert rows["softmax"].host


@pytest.mark.parametrize("size,k,s,pb,pe,d", [(28, 5, 1, 0, 0, 1), (32, 3, 2, 0, 1, 1), (10, 3, 3, 1, 1, 2),
                                              (7, 2, 2, 0, 0, 1), (9, 2, 2, 0, 0, 1), (5, 5, 1, 2, 2, 1)])
def test_output_size_formula(size, k, s, pb, pe, d):
    assert window_output_size(size, k, s, pb, pe, d) == (size + pb + pe - d * (k - 1) - 1) // s + 1


def _conv_model(in_shape, w_shape, **attrs) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal(w_shape).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(w_shape[0]).astype(np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, b])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


CONV_CASES = [
    ((1, 3, 17, 13), (8, 3, 3, 3), dict(strides=[2, 3], pads=[1, 0, 2, 1])),
    ((1, 4, 15, 15), (4, 1, 3, 3), dict(group=4, dilations=[2, 2], pads=[2, 1, 2, 3])),
    ((1, 6, 11, 9), (6, 2, 5, 3), dict(group=3, auto_pad="SAME_LOWER", strides=[3, 2])),
    ((1, 2, 19), (5, 2, 4), dict(strides=[3], pads=[2, 1], dilations=[2])),
    ((1, 3, 8, 8), (2, 3, 1, 1), dict(auto_pad="VALID")),
]


@pytest.mark.parametrize("in_shape,w_shape,attrs", CONV_CASES)
def test_conv_shapes_match_onnxruntime(in_shape, w_shape, attrs):
    model = _conv_model(in_shape, w_shape, **attrs)
    layer = import_model(model).ir.layers[0]
    (y,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": np.zeros(in_shape, np.float32)})
    assert layer.out_shape == y.shape
    c_in, group = in_shape[1], attrs.get("group", 1)
    assert layer.params == int(np.prod(w_shape)) + w_shape[0]
    assert layer.macs == int(np.prod(y.shape[1:])) * (c_in // group) * int(np.prod(w_shape[2:]))


def test_batchnorm_is_folded_into_conv():
    rng = np.random.default_rng(1)
    model = _conv_model((1, 3, 8, 8), (4, 3, 3, 3))
    graph = model.graph
    graph.node[0].output[0] = "c"
    stats = [rng.uniform(0.5, 2, 4), rng.standard_normal(4), rng.standard_normal(4), rng.uniform(0.5, 2, 4)]
    for name, v in zip(("g", "be", "m", "v"), stats, strict=True):
        graph.initializer.append(numpy_helper.from_array(v.astype(np.float32), name))
    graph.node.append(helper.make_node("BatchNormalization", ["c", "g", "be", "m", "v"], ["y"], name="bn"))
    ir = import_model(model).ir
    assert [layer.kind for layer in ir.layers] == ["conv"]
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    (want,) = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    conv = ir.layers[0]
    # Float check of the folded weights through onnxruntime (tolerance only on this float path).
    folded = _conv_model((1, 3, 8, 8), conv.weight.shape)
    folded.graph.initializer[0].CopyFrom(numpy_helper.from_array(conv.weight, "w"))
    folded.graph.initializer[1].CopyFrom(numpy_helper.from_array(conv.bias, "b"))
    (got,) = ort.InferenceSession(folded.SerializeToString()).run(None, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@needs_shared
@pytest.mark.parametrize("name", ["mnist_cnn_2018.onnx", "mlperf_tiny_resnet8_float.onnx",
                                  "mlperf_tiny_resnet8_int8.onnx", "mlperf_tiny_kws_dscnn_int8.onnx"])
def test_inspect_shared_models(name, tmp_path, capsys):
    report = tmp_path / "inspect.json"
    assert main(["inspect", str(SHARED / "models" / name), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["layers"] and data["macs"] > 0 and data["params"] > 0


@needs_shared
def test_inspect_mnist_cnn_2018_by_hand():
    ir = import_model(SHARED / "models" / "mnist_cnn_2018.onnx").ir
    convs = [layer for layer in ir.layers if layer.kind == "conv"]
    # SAME_UPPER 5x5: 28 -> 28 (8 filters), pool 2 -> 14, 14 -> 14 (16 filters), pool 3 -> 4.
    assert [c.out_shape for c in convs] == [(1, 8, 28, 28), (1, 16, 14, 14)]
    assert [c.params for c in convs] == [8 * 25 + 8, 16 * 8 * 25 + 16]
    assert [c.macs for c in convs] == [8 * 28 * 28 * 25, 16 * 14 * 14 * 8 * 25]
    dense = ir.layers[-1]
    assert dense.kind == "dense" and dense.params == 256 * 10 + 10 and dense.macs == 2560


def _gated_model(gate: str, *, second_input: bool = False) -> onnx.ModelProto:
    """Conv -> x * gate(x) (torch.onnx.export's SiLU, and HardSwish before opset 14) -> Flatten -> Gemm."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.normal(0, 0.3, (3, 4 * 6 * 6)).astype(np.float32), "fc")]
    attrs = {"alpha": 1 / 6} if gate == "HardSigmoid" else {}
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), helper.make_node(gate, ["c"], ["g"], **attrs),
             helper.make_node("Mul", ["g" if second_input else "c", "c" if second_input else "g"], ["m"]),
             helper.make_node("Flatten", ["m"], ["f"]), helper.make_node("Gemm", ["f", "fc"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "gated", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


@pytest.mark.parametrize("gate,second", [("Sigmoid", False), ("HardSigmoid", True)])
def test_float_x_times_f_of_x_is_one_activation(gate, second):
    # torch.onnx.export writes SiLU as x * Sigmoid(x) (and HardSwish as x * HardSigmoid(x) before opset 14):
    # a float model with it must import (inspect, and systolix quantize's float vs int8 agreement).
    from systolix.compiler.where import runs_on

    ir = import_model(_gated_model(gate, second_input=second)).ir
    assert [layer.op for layer in ir.layers] == ["Conv", "Mul", "Flatten", "Gemm"]
    gated = ir.layers[1]
    assert gated.inputs == (ir.layers[0].output,) and gated.func == f"x*{'hard_' if second else ''}sigmoid"
    assert gated.geometry().startswith(f"x * {gated.func[2:]}(x)")
    assert runs_on(ir)[gated.name] == "vector (table, once quantized)"


def test_float_product_of_two_activations_is_a_mul_layer():
    from systolix.compiler.where import runs_on
    from systolix.frontend.ir import Mul

    model = _gated_model("Sigmoid")
    # c * Sigmoid(Relu(c)): the gate is a function of another activation, not of c: a product of two activations
    model.graph.node.insert(1, helper.make_node("Relu", ["c"], ["r"]))
    model.graph.node[2].input[0] = "r"
    ir = import_model(model).ir
    (mul,) = [layer for layer in ir.layers if layer.op == "Mul"]
    assert isinstance(mul, Mul) and mul.in_shapes[0] == mul.in_shapes[1]
    assert runs_on(ir)[mul.name] == "vector (mul)"


@pytest.mark.parametrize("shape", [(1, 4, 1, 1), (4, 1, 1), (1,)])
def test_float_mul_by_channel_constant_folds_into_conv(shape):
    # tf2onnx writes a BatchNormalization after a DepthwiseConv2D as Mul and Add by (1, C, 1, 1) constants.
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    k = rng.uniform(0.5, 1.5, shape).astype(np.float32)
    b = rng.normal(0, 0.3, (1, 4, 1, 1)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "k"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Relu", ["a"], ["y"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 6, 6])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(k, "k"),
                               numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    conv, relu = import_model(model).ir.layers
    np.testing.assert_allclose(conv.weight, w * k.reshape(-1, 1, 1, 1), rtol=1e-6)
    np.testing.assert_allclose(conv.bias, b.reshape(-1), rtol=1e-6)
    assert relu.inputs == (conv.output,)


def test_float_mul_by_a_vector_over_the_last_axis_is_refused():
    from systolix.errors import SystolixError

    w = np.ones((4, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=4), helper.make_node("Mul", ["c", "k"], ["y"])]
    graph = helper.make_graph(nodes, "bn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 4])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.ones(4, np.float32), "k")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    with pytest.raises(SystolixError, match=r"\(Mul\): multiplying by a constant of shape \[4\] is supported as a "
                       r"scale of each output channel of the Conv/Gemm/MatMul right before it, or with one value or "
                       r"one value per channel"):
        import_model(model)


def test_float_add_and_mul_by_per_channel_constants_after_a_pool():
    """Not foldable into a Conv (a MaxPool in between): a layer of its own, a table per channel once quantized."""
    from systolix.compiler.where import runs_on

    w = np.ones((4, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], group=4),
             helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2]),
             helper.make_node("Mul", ["k", "p"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])]
    graph = helper.make_graph(nodes, "chan", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3, 3])],
                              [numpy_helper.from_array(w, "w"),
                               numpy_helper.from_array(np.arange(1, 5, dtype=np.float32).reshape(4, 1, 1), "k"),
                               numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    ir_model = import_model(model).ir
    _, _, mul, add = ir_model.layers
    assert (mul.kind, mul.geometry(), add.geometry()) == ("channel_constant", "mul 4 values (one per channel)",
                                                          "add one value")
    where = runs_on(ir_model)
    assert where[mul.name] == "array (per-channel tables, once quantized)"
    assert where[add.name] == "vector (table, once quantized)"
