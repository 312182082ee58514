"""Bad input tried as a new user would: each gives one clear line on stderr and exit code 2."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.cli import main
from tests.conftest import EXAMPLE


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("systolix: error: ")
    for needle in needles:
        assert needle in err, err


def test_missing_file(capsys, tmp_path):
    _assert_one_line(*_run(capsys, "inspect", str(tmp_path / "nope.onnx")), "no such file")


def test_truncated_model(capsys, tmp_path):
    data = (EXAMPLE / "model.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "truncated.onnx")


def test_text_file_renamed(capsys, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a model\n" * 20)
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "notes.onnx", "not")


def test_empty_file(capsys, tmp_path):
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "empty")


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


def _model(nodes, x_shape, inits=(), x_type=TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_unsupported_op_names_node_and_op(capsys, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("LpNormalization", ["c"], ["y"], name="weird_norm")]
    path = _save(_model(nodes, [1, 1, 8, 8], [w]), tmp_path / "m.onnx")
    _assert_one_line(*_run(capsys, "inspect", path), "weird_norm", "LpNormalization", "supported:", "Conv")


def test_dynamic_spatial_shape(capsys, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = _save(_model(nodes, ["N", 1, "H", 8], [w]), tmp_path / "m.onnx")
    _assert_one_line(*_run(capsys, "inspect", path), "dynamic dimension 'H'", "axis 2")


def test_external_data_outside_folder_refused(capsys, tmp_path):
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "72")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = tmp_path / "m.onnx"
    path.write_bytes(_model(nodes, [1, 1, 8, 8], [w]).SerializeToString())
    _assert_one_line(*_run(capsys, "inspect", str(path)), "external data", "refusing")


def test_simulate_float_model_asks_to_quantize(capsys):
    _assert_one_line(*_run(capsys, "simulate", str(EXAMPLE / "model.onnx"), "--random", "2"),
                     "float model", "systolix quantize")


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> str:
    """A one-layer QLinearConv model with an int8 input [N, 1, 6, 6]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.float32(0.05), "xs"), numpy_helper.from_array(np.int8(3), "xz"),
        numpy_helper.from_array(rng.integers(-100, 100, (2, 1, 3, 3)).astype(np.int8), "w"),
        numpy_helper.from_array(np.float32(0.01), "ws"), numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(0.2), "ys"), numpy_helper.from_array(np.int8(-5), "yz"),
    ]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qconv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, ["N", 2, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return _save(model, tmp_path_factory.mktemp("m") / "int8.onnx")


def test_npz_wrong_shape(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 7, 6), np.int8))
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "shape", "(4, 1, 7, 6)")


def test_npz_wrong_dtype(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 6, 6), np.float32))
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "float32")


def test_npz_not_an_npz(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    data.write_text("1,2,3\n")
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "x.npz")


def test_simulate_tiny_int8_model_is_bit_exact(tmp_path, int8_model):
    report = tmp_path / "r.json"
    assert main(["simulate", int8_model, "--random", "20", "--layers", "--json", str(report)]) == 0
    import json

    data = json.loads(report.read_text())
    assert data["bit_exact"] is True and data["mismatches"] == 0 and data["samples"] == 20
    assert data["first_mismatch"] is None
    assert [layer["name"] for layer in data["layers"]] == ["qconv"]


def test_json_not_written_on_error(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 7, 6), np.int8))
    report = tmp_path / "r.json"
    code, _ = _run(capsys, "simulate", int8_model, "--inputs", str(data), "--json", str(report))
    assert code == 2 and not report.exists()
