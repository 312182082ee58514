"""Helpers for the golden-model tests: run one onnxruntime node built with onnx.helper."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper


def _elem_type(dtype: np.dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def run_node(
    op_type: str,
    inputs: Sequence[tuple[str, np.ndarray | None, bool]],
    outputs: Sequence[tuple[str, np.dtype]],
    *,
    domain: str = "",
    x64quantprecision: bool = True,
    **attrs,
) -> list[np.ndarray]:
    """Run a single-node model on onnxruntime (exact-on-any-x86 session config).

    ``inputs`` lists (name, value, constant): constants become initializers, others graph inputs;
    a value of None leaves that optional input empty. ``x64quantprecision=False`` leaves out the
    session config entry: onnxruntime 1.31.1 cannot create a QLinearConv session for int8 activations
    with it when some |w| > 64 (it converts the weights to uint8, for which no int8-activation NHWC
    kernel exists); S8S8 QOperator is exact on x64 without it.
    """
    names, graph_inputs, inits, feeds = [], [], [], {}
    for name, value, constant in inputs:
        if value is None:
            names.append("")
            continue
        names.append(name)
        value = np.asarray(value)
        if constant:
            inits.append(numpy_helper.from_array(value, name))
        else:
            graph_inputs.append(helper.make_tensor_value_info(name, _elem_type(value.dtype), value.shape))
            feeds[name] = value
    outs = [helper.make_tensor_value_info(n, _elem_type(t), None) for n, t in outputs]
    node = helper.make_node(op_type, names, [n for n, _ in outputs], domain=domain or None, **attrs)
    graph = helper.make_graph([node], "g", graph_inputs, outs, initializer=inits)
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    so = ort.SessionOptions()
    if x64quantprecision:
        so.add_session_config_entry("session.x64quantprecision", "1")
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


@pytest.fixture
def ort_node() -> Callable[..., list[np.ndarray]]:
    """The :func:`run_node` helper."""
    return run_node


def assert_same(actual: np.ndarray, expected: np.ndarray) -> None:
    """Shape and values equal; values compared as integers (dtype checked by the caller's cast)."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    np.testing.assert_array_equal(actual.astype(np.int64), expected.astype(np.int64))
