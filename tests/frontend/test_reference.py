"""onnxruntime reference sessions and exposing intermediate tensors."""

from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.errors import SystolixError
from systolix.frontend.reference import add_outputs, needs_x64_precision, reference_session


def _model(nodes, inputs, outputs, inits=(), ms=False) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def float_chain() -> onnx.ModelProto:
    return _model(
        [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Neg", ["r"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )


def qlinear_add(dtype: int) -> onnx.ModelProto:
    """a + b with com.microsoft QLinearAdd: onnx shape inference does not know its output type."""
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    inits = [
        numpy_helper.from_array(np.float32(0.1), "s"),
        numpy_helper.from_array(np.array(0, np_type), "zp"),
    ]
    nodes = [
        helper.make_node(
            "QLinearAdd", ["a", "s", "zp", "b", "s", "zp", "s", "zp"], ["c"], domain="com.microsoft"
        ),
        helper.make_node("Identity", ["c"], ["y"]),
    ]
    value = [helper.make_tensor_value_info(n, dtype, [4]) for n in ("a", "b")]
    return _model(nodes, value, [helper.make_tensor_value_info("y", dtype, [4])], inits, ms=True)


def qlinear_matmul(dtype: int) -> onnx.ModelProto:
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    inits = [
        numpy_helper.from_array(np.float32(0.1), "s"),
        numpy_helper.from_array(np.array(0, np_type), "zp"),
        numpy_helper.from_array(np.full((4, 2), 100, np.int8), "w"),
        numpy_helper.from_array(np.int8(0), "wzp"),
    ]
    node = helper.make_node("QLinearMatMul", ["a", "s", "zp", "w", "s", "wzp", "s", "zp"], ["y"])
    return _model(
        [node],
        [helper.make_tensor_value_info("a", dtype, [1, 4])],
        [helper.make_tensor_value_info("y", dtype, [1, 2])],
        inits,
    )


def test_session_is_cpu_at_enable_all_with_x64_precision(tmp_path):
    model = qlinear_matmul(TensorProto.UINT8)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    a = np.arange(4, dtype=np.uint8).reshape(1, 4)
    results = []
    for source in (model, model.SerializeToString(), str(path)):
        session = reference_session(source)
        options = session.get_session_options()
        assert session.get_providers() == ["CPUExecutionProvider"]
        assert options.get_session_config_entry("session.x64quantprecision") == "1"
        assert options.graph_optimization_level.name == "ORT_ENABLE_ALL"
        assert options.intra_op_num_threads == 1
        results.append(session.run(None, {"a": a})[0])
    # Independent: (a * 100 * 0.1 * 0.1) / 0.1 = a * 10 per output, summed over 4 inputs.
    want = np.clip(np.rint(np.full((1, 2), a.astype(np.int64).sum() * 100 * 0.1)), 0, 255).astype(np.uint8)
    for got in results:
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_int8_qoperator_needs_no_x64_precision():
    assert needs_x64_precision(qlinear_matmul(TensorProto.UINT8))
    assert not needs_x64_precision(qlinear_matmul(TensorProto.INT8))
    options = reference_session(qlinear_matmul(TensorProto.INT8)).get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration with key"):
        options.get_session_config_entry("session.x64quantprecision")
    # A float Conv (a QDQ group onnxruntime may fuse into U8S8 kernels) needs it.
    conv = _model(
        [helper.make_node("Conv", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])],
        [numpy_helper.from_array(np.ones((1, 1, 1, 1), np.float32), "w")],
    )
    assert needs_x64_precision(conv)


def test_unloadable_model_is_a_systolix_error():
    model = float_chain()
    model.graph.node[1].op_type = "NoSuchOp"
    with pytest.raises(SystolixError, match=r"^onnxruntime cannot load the model: "):
        reference_session(model)


def test_add_outputs_exposes_an_intermediate_tensor():
    model = add_outputs(float_chain(), ["r", "y"])
    assert [o.name for o in model.graph.output] == ["y", "r"]
    assert [o.name for o in float_chain().graph.output] == ["y"]  # the input is not modified
    x = np.array([[-1.5, 0.0, 2.0], [3.0, -0.25, 1.0]], np.float32)
    y, r = reference_session(model).run(None, {"x": x})
    assert r.dtype == np.float32 and r.shape == (2, 3)
    np.testing.assert_array_equal(r, np.maximum(x, 0))


@pytest.mark.parametrize("dtype", [TensorProto.INT8, TensorProto.UINT8])
def test_add_outputs_types_contrib_op_outputs(dtype):
    model = add_outputs(qlinear_add(dtype), ["c"])
    assert model.graph.output[1].type.tensor_type.elem_type == dtype
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    a = np.array([1, 2, 3, 4], np_type)
    y, c = reference_session(model).run(None, {"a": a, "b": a})
    assert c.dtype == np_type
    np.testing.assert_array_equal(c, 2 * a)


def test_add_outputs_errors():
    with pytest.raises(SystolixError, match=r"^tensor 'nope' is not in the graph$"):
        add_outputs(float_chain(), ["nope"])
    # An op of an unknown domain: neither shape inference nor value_info gives its output type.
    model = float_chain()
    model.graph.node.insert(0, helper.make_node("NoSuchOp", ["x"], ["u"], domain="custom"))
    message = "cannot expose tensor 'u': its type is unknown (not in shape inference or value_info)"
    with pytest.raises(SystolixError, match=f"^{re.escape(message)}$"):
        add_outputs(model, ["u"])
