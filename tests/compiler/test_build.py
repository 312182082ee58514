"""``systolix compile``: the build folder, clear errors for layers that do not fit, and (slow) synthesis."""

from __future__ import annotations

import json

import pytest

from systolix.cli import main
from systolix.hdl.config import AcceleratorConfig
from tests.conftest import EXAMPLE, SHARED, needs_shared

EXPECTED = {"accelerator.v", "model.onnx", "reference.onnx", "program.json", "images.npz", "wgt.hex", "prm.hex",
            "prog.hex", "config.json", "report.json"}


def test_compile_bundled_example_writes_build(tmp_path):
    out = tmp_path / "build"
    assert main(["compile", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"), "--array", "4x4",
                 "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= EXPECTED
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["rows"] == 4
    convs = [layer for layer in report["layers"] if layer["op"] == "QLinearConv"]
    assert [c["macs"] for c in convs] == [4 * 24 * 24 * 25, 8 * 22 * 22 * 4 * 9, 16 * 9 * 9 * 8 * 9]
    assert report["predicted_cycles"] > sum(c["macs"] for c in convs) // 16
    assert "module accelerator" in (out / "accelerator.v").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".build.")]


def test_layer_that_does_not_fit_names_it(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(AcceleratorConfig(rows=4, cols=4, act_buffer_depth=256, weight_buffer_depth=64).to_json())
    out = tmp_path / "build"
    code = main(["compile", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"), "--config",
                 str(config), "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("systolix: error: layer ")
    assert "act_buffer_depth" in err or "weight_buffer_depth" in err
    assert not out.exists() and not list(tmp_path.glob(".build.*"))


def test_float_model_without_calibration_is_refused(tmp_path, capsys):
    code = main(["compile", str(EXAMPLE / "model.onnx"), "-o", str(tmp_path / "b")])
    assert code == 2 and "--calib" in capsys.readouterr().err


@needs_shared
@pytest.mark.parametrize("name", ["mlperf_tiny_resnet8_int8.onnx", "mlperf_tiny_kws_dscnn_int8.onnx"])
def test_compile_mlperf_models_8x8(tmp_path, name):
    out = tmp_path / "build"
    assert main(["compile", str(SHARED / "models" / name), "--array", "8x8", "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= EXPECTED


@pytest.mark.slow
def test_verilog_synthesizes_for_ecp5(tmp_path):
    out = tmp_path / "build"
    assert main(["compile", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"), "--array", "4x4",
                 "-o", str(out), "--synth"]) == 0
    resources = json.loads((out / "synth-ecp5-85f" / "synth.json").read_text())["resources"]
    assert resources["DSP"]["used"] >= 16 and resources["BRAM"]["used"] > 0 and resources["LUT4"]["used"] > 0


@needs_shared
def test_compile_mnist_cnn_2018_8x8(tmp_path):
    import numpy as np

    data = np.load(SHARED / "data" / "mnist5k.npz", allow_pickle=False)
    calib = tmp_path / "calib.npz"
    np.savez(calib, x=data["x"][::25, None].astype(np.float32))  # 200 images, every class
    out = tmp_path / "build"
    assert main(["compile", str(SHARED / "models" / "mnist_cnn_2018.onnx"), "--calib", str(calib), "--array", "8x8",
                 "-o", str(out)]) == 0
    assert {p.name for p in out.iterdir()} >= EXPECTED
