"""The host input prefix: elementwise preprocessing at a float input that the accelerator cannot run.

The reference for the prefix is onnxruntime running the *original* model with the prefix's last tensor made a
graph output; the cut-off prefix model must give the same integers. The synthetic models are written here with
``onnx.helper``; the real one is the committed tf2onnx TFLite-int8 export of a Keras model with ``Rescaling`` and
``Normalization`` layers (``examples/corpus/tf_export.py``, ``keras_prefix``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.build import build, load_build
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.frontend.reference import add_outputs
from systolix.sim.simulate import run_input_prefix, simulate

FIXTURE = Path(__file__).resolve().parents[1] / "corpus" / "tf_keras_prefix_tflite_int8.onnx"


def _original_at(model: onnx.ModelProto, tensor: str, feed: str, x: np.ndarray) -> np.ndarray:
    """onnxruntime, as a user runs it (default session options), on the original model, ``tensor`` read out."""
    session = ort.InferenceSession(add_outputs(model, [tensor]).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    return session.run([tensor], {feed: x})[0]


def test_tflite_preprocessing_goes_to_the_host():
    imported = import_model(FIXTURE)
    canon = imported.canonical
    (name, prefix), = canon.input_prefix.items()
    assert [op for _, op, _ in prefix.steps] == ["Mul", "Sub", "Mul"]  # Rescaling; Normalization's (x - mean) / std
    (original_input,) = [i.name for i in imported.original.graph.input]
    assert prefix.input == original_input and canon.input_map[name] == original_input
    assert name not in canon.input_quant
    # the accelerator's input is the int8 NHWC tensor after the prefix
    (info,) = imported.ir.inputs
    assert (info.name, info.dtype, info.shape) == (name, "int8", (1, 24, 24, 3))
    assert not any(n.op_type in ("Sub", "Mul", "QuantizeLinear") for n in canon.model.graph.node)
    where = runs_on(imported.ir)
    assert [where[step.name] for step in imported.ir.input_prefix] == ["host (input)"] * 3
    assert [step.op for step in imported.ir.input_prefix] == ["Mul", "Sub", "Mul"]


def test_prefix_gives_the_original_graphs_integers():
    imported = import_model(FIXTURE)
    (name, prefix), = imported.canonical.input_prefix.items()
    x = np.random.default_rng(3).uniform(0, 255, (16, 24, 24, 3)).astype(np.float32)  # pixels
    x[0] = 0.0
    x[1, :, :, 0] = 1e6  # saturates
    x[2] = np.round(x[2])
    got = run_input_prefix(prefix.model, x)
    want = _original_at(imported.original, name, prefix.input, x)
    assert got.dtype == want.dtype == np.int8 and got.shape == want.shape == x.shape
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(got)) > 50  # not a degenerate constant


def _qdq_model(op: str, constant: np.ndarray, channels: int = 3) -> onnx.ModelProto:
    """x (float) -> Q -> DQ -> op(constant) -> Q -> DQ -> Conv 1x1 -> Q -> DQ: the elementwise step at the input."""
    rng = np.random.default_rng(0)
    scale_c = float(np.abs(constant).max()) / 100  # the constant as exporters write it: int8 and a DequantizeLinear
    w = rng.integers(-60, 60, (4, channels, 1, 1)).astype(np.int8)
    inits = [
        numpy_helper.from_array(np.float32(0.02), "s_in"), numpy_helper.from_array(np.int8(3), "z_in"),
        numpy_helper.from_array(np.round(constant / scale_c).astype(np.int8), "cq"),
        numpy_helper.from_array(np.float32(scale_c), "s_c"), numpy_helper.from_array(np.int8(0), "z_c"),
        numpy_helper.from_array(np.float32(0.03), "s_mid"), numpy_helper.from_array(np.int8(-5), "z_mid"),
        numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.float32(0.01), "s_w"),
        numpy_helper.from_array(np.int8(0), "z_w"),
        numpy_helper.from_array(np.float32(0.05), "s_out"), numpy_helper.from_array(np.int8(1), "z_out"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_in", "z_in"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "s_in", "z_in"], ["xf"], name="dq_in"),
        helper.make_node("DequantizeLinear", ["cq", "s_c", "z_c"], ["c"], name="dq_c"),
        helper.make_node(op, ["xf", "c"], ["pre"], name="pre"),
        helper.make_node("QuantizeLinear", ["pre", "s_mid", "z_mid"], ["preq"], name="q_pre"),
        helper.make_node("DequantizeLinear", ["preq", "s_mid", "z_mid"], ["pref"], name="dq_pre"),
        helper.make_node("DequantizeLinear", ["w", "s_w", "z_w"], ["wf"], name="dq_w"),
        helper.make_node("Conv", ["pref", "wf"], ["y"], name="conv"),
        helper.make_node("QuantizeLinear", ["y", "s_out", "z_out"], ["yq"], name="q_out"),
        helper.make_node("DequantizeLinear", ["yq", "s_out", "z_out"], ["out"], name="dq_out"),
    ]
    graph = helper.make_graph(nodes, "prefix", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                              ["N", channels, 5, 6])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 5, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("op,constant", [("Sub", np.array(0.7)), ("Div", np.array(1.9)),
                                         ("Mul", np.linspace(0.5, 2.0, 6).reshape(1, 1, 1, 6))])  # along W
def test_ops_the_accelerator_cannot_run_go_to_the_host(op, constant, tmp_path):
    model = _qdq_model(op, constant)
    imported = import_model(model)
    assert list(imported.canonical.input_prefix) == ["preq"]
    assert [step.op for step in imported.ir.input_prefix] == [op]
    assert [layer.op for layer in imported.ir.layers] == ["QLinearConv"]
    # bit-exact through the golden model, the prefix run on the host
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(1).normal(0, 1, (6, 3, 5, 6)).astype(np.float32))
    result = simulate(tmp_path / "m.onnx", inputs=tmp_path / "x.npz", backend="golden", layers=True)
    assert result.comparison.samples == 6 and result.comparison.elements == 6 * 4 * 5 * 6
    assert result.comparison.mismatches == 0
    x = np.load(tmp_path / "x.npz")["x"]
    np.testing.assert_array_equal(run_input_prefix(imported.canonical.input_prefix["preq"].model, x),
                                  _original_at(model, "preq", "x", x))


@pytest.mark.parametrize("constant", [np.array(1.5), np.array([0.5, 2.0, -1.0]).reshape(1, 3, 1, 1)])
def test_steps_the_accelerator_runs_stay_on_it(constant):
    imported = import_model(_qdq_model("Mul", constant))
    assert imported.canonical.input_prefix == {} and imported.ir.input_prefix == ()
    assert list(imported.canonical.input_quant) == ["xq"]
    assert [layer.op for layer in imported.ir.layers] == ["QLinearMul", "QLinearConv"]


def test_build_records_and_checks_the_prefix(tmp_path):
    result = build(FIXTURE, tmp_path / "b", AcceleratorConfig.preset("8x8"))
    folder = result.folder
    report = json.loads((folder / "report.json").read_text())
    assert "input_prefix.onnx" in report["artifacts"]
    loaded = load_build(folder)
    assert loaded.input_prefix == folder / "input_prefix.onnx"
    prefix = onnx.load(str(loaded.input_prefix))
    assert [n.op_type for n in prefix.graph.node if n.op_type in ("Mul", "Sub")] == ["Mul", "Sub", "Mul"]
    # the prefix is part of what the folder proves: an edited one is refused
    prefix.graph.node[0].name = "edited"
    onnx.save(prefix, str(folder / "input_prefix.onnx"))
    with pytest.raises(SystolixError, match=r"input_prefix\.onnx differs from the file systolix compile wrote"):
        load_build(folder)


def test_build_without_its_prefix_is_refused(tmp_path):
    folder = build(FIXTURE, tmp_path / "b", AcceleratorConfig.preset("8x8")).folder
    (folder / "input_prefix.onnx").unlink()
    with pytest.raises(SystolixError, match=r"input_prefix\.onnx is missing"):
        load_build(folder)


def test_drop_in_model_runs_the_prefix_in_front():
    from systolix.quantize.drop_in import with_host_edges

    imported = import_model(FIXTURE)
    canon = imported.canonical
    drop_in = with_host_edges(canon, imported.original)
    (original_input,) = [i.name for i in imported.original.graph.input]
    assert [i.name for i in drop_in.graph.input] == [original_input]
    out = canon.model.graph.output[0].name  # the integer output, before the host's DequantizeLinear
    x = np.random.default_rng(5).uniform(0, 255, (4, 24, 24, 3)).astype(np.float32)
    got = ort.InferenceSession(add_outputs(drop_in, [out]).SerializeToString(),
                               providers=["CPUExecutionProvider"]).run([out], {original_input: x})[0]
    (name, prefix), = canon.input_prefix.items()
    codes = run_input_prefix(prefix.model, x)
    want = ort.InferenceSession(canon.model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run([out], {name: codes})[0]
    np.testing.assert_array_equal(got, want)
