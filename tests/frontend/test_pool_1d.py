"""``pool-1d``: an average pool over a height of 1 (tf2onnx's ``AveragePooling1D``) as a 1-D pool.

The reference is onnxruntime on the model before the rewrite; models are written here with ``onnx.helper``.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.compiler.where import runs_on
from systolix.frontend.importer import import_model
from systolix.frontend.normalize import normalize
from systolix.frontend.normalize.pool_1d import AveragePoolAs1d


def _pool_model(pads: list[int], qdq: bool, kernel: int = 3, stride: int = 2, width: int = 13) -> onnx.ModelProto:
    out_w = (width + pads[1] + pads[3] - kernel) // stride + 1
    attrs = {"kernel_shape": [1, kernel], "strides": [1, stride], "pads": pads, "count_include_pad": 0}
    inits, nodes = [], []
    src, dst = "x", "y"
    if qdq:
        inits = [numpy_helper.from_array(np.float32(0.05), "s"), numpy_helper.from_array(np.int8(-3), "z"),
                 numpy_helper.from_array(np.float32(0.04), "s_out"), numpy_helper.from_array(np.int8(2), "z_out")]
        nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
                 helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xf"], name="dq")]
        src, dst = "xf", "p"
    nodes.append(helper.make_node("AveragePool", [src], [dst], name="pool", **attrs))
    if qdq:
        nodes += [helper.make_node("QuantizeLinear", ["p", "s_out", "z_out"], ["pq"], name="q_out"),
                  helper.make_node("DequantizeLinear", ["pq", "s_out", "z_out"], ["y"], name="dq_out")]
    graph = helper.make_graph(nodes, "pool1d", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["N", 4, 1, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 1, out_w])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("qdq", [False, True])
@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [0, 1, 0, 1], [0, 2, 0, 0]])
def test_same_windows_same_result(pads, qdq):
    model = _pool_model(pads, qdq)
    result = AveragePoolAs1d().apply(model)
    if qdq:  # onnxruntime's quantized 1-D and 2-D pools differ: quantized graphs keep theirs
        assert result is None
        return
    assert result is not None
    rewritten, detail = result
    assert detail.startswith("1 average pool(s) over a height of 1 as 1-D pools")
    (pool,) = [n for n in rewritten.graph.node if n.op_type == "AveragePool"]
    attrs = {a.name: helper.get_attribute_value(a) for a in pool.attribute}
    assert attrs["kernel_shape"] == [3] and attrs["strides"] == [2] and attrs["pads"] == [pads[1], pads[3]]
    assert [n.op_type for n in rewritten.graph.node] == ["Squeeze", "AveragePool", "Unsqueeze"]
    x = np.random.default_rng(0).normal(0, 1, (5, 4, 1, 13)).astype(np.float32)
    want, got = _run(model, x), _run(rewritten, x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_pool_padded_along_the_width_no_longer_refused_for_its_layout():
    model = _pool_model([0, 1, 0, 1], qdq=False)
    normalized = normalize(model, quantized=False)
    assert [f.name for f in normalized.fired if f.applied] == ["pool-1d"]
    (where,) = [w for name, w in runs_on(import_model(normalized.model).ir).items() if name == "pool"]
    assert where == "array (window sums; exactness checked once quantized)"


@pytest.mark.parametrize("height,attrs", [(2, {"kernel_shape": [2, 3], "pads": [0, 0, 0, 0]}),  # a real 2-D pool
                                          (1, {"kernel_shape": [1, 3], "pads": [1, 0, 1, 0]}),  # padded in height
                                          (1, {"kernel_shape": [1, 3], "auto_pad": "SAME_UPPER"})])
def test_other_pools_are_left_alone(height, attrs):
    node = helper.make_node("AveragePool", ["x"], ["y"], name="pool", **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                          ["N", 4, height, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert AveragePoolAs1d().apply(model) is None
