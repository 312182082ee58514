"""``systolix compile``: the build folder, clear errors for layers that do not fit, and (slow) synthesis."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import INSTRUCTION_BITS
from systolix.arch.memory import unpack_lanes
from systolix.cli import main
from systolix.compiler.build import ARTIFACTS, build, load_build, read_hex, verilog_for
from systolix.compiler.compile import compile_model
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from tests.compiler.test_networks import net2d, quantized_net
from tests.conftest import EXAMPLE, SHARED, needs_shared

EXPECTED = {*ARTIFACTS, "report.json"}


@pytest.fixture(scope="module")
def net2d_int8(tmp_path_factory) -> object:
    return quantized_net(tmp_path_factory.mktemp("net2d"), net2d, seed=2)


@pytest.mark.parametrize("preset", ["4x4", "8x8", "16x16"])
def test_every_artifact_loads_back_as_compiled(tmp_path, net2d_int8, preset):
    """The hex files, images.npz and program.json of a build folder hold exactly the compiler's images and
    program, at every lane count (16 lanes: 128-bit wgt words, the lanes 8-15 that int64 packing lost)."""
    config = AcceleratorConfig.preset(preset)
    out = tmp_path / "build"
    build(net2d_int8, out, config)
    loaded = load_build(out)
    program = compile_model(import_model(out / "model.onnx").ir, config)
    want, got = program.images, loaded.program.images
    for name in ("wgt", "lut", "addtab"):
        w, g = np.asarray(getattr(want, name)), np.asarray(getattr(got, name))
        assert g.shape == w.shape and g.dtype == w.dtype, name
        np.testing.assert_array_equal(g, w, err_msg=name)
    assert got.prm == want.prm and got.prog == want.prog
    assert want.lut.size and want.addtab.size and want.prm  # net2d uses every memory
    npz = np.load(out / "images.npz", allow_pickle=False)
    for name in ("wgt", "lut", "addtab"):
        np.testing.assert_array_equal(npz[name], getattr(want, name), err_msg=name)
    assert [int(w) for w in npz["prm"]] == want.prm and [int(w) for w in npz["prog"]] == want.prog
    lanes = config.rows
    rows = unpack_lanes(read_hex(out / "wgt.hex", 8 * lanes, config.weight_buffer_depth), lanes)
    np.testing.assert_array_equal(rows, want.wgt[: rows.shape[0]])
    assert rows.shape[0] == want.used()["wgt"] and np.any(rows[:, lanes // 2:] != 0)
    assert loaded.program.instructions == program.instructions
    assert loaded.program.tensors == program.tensors and loaded.program.readable == program.readable
    assert loaded.program.input_transform == program.input_transform
    assert loaded.program.layers == program.layers and loaded.program.outputs == program.outputs
    assert loaded.config == program.config and loaded.config.add_variant in ("avx2", "sse2")
    assert loaded.verilog == verilog_for(config)


def test_wgt_hex_keeps_lanes_8_to_15():
    """Regression: rows were packed with int64 shifts, so lanes 8-15 of 16-lane words came out as zeros."""
    from systolix.arch.memory import pack_lanes
    from systolix.compiler.build import _hex_lines

    rows = np.arange(-8, 8, dtype=np.int8)[None].repeat(2, 0)
    line = _hex_lines(pack_lanes(rows), 128).splitlines()[0]
    assert line == "0706050403020100fffefdfcfbfaf9f8"


def test_same_configuration_same_verilog(tmp_path, net2d_int8):
    """Two models compiled for one configuration get byte-identical accelerator.v files."""
    config = AcceleratorConfig.preset("4x4")
    build(net2d_int8, tmp_path / "a", config)
    build(EXAMPLE / "model.onnx", tmp_path / "b", config, calib=EXAMPLE / "calib.npz")
    assert (tmp_path / "a" / "accelerator.v").read_bytes() == (tmp_path / "b" / "accelerator.v").read_bytes()
    assert (tmp_path / "a" / "wgt.hex").read_bytes() != (tmp_path / "b" / "wgt.hex").read_bytes()


@pytest.mark.parametrize("name,edit", [
    ("accelerator.v", lambda t: t.replace("module accelerator", "module accelerator ", 1)),
    ("wgt.hex", lambda t: ("1" if t[0] == "0" else "0") + t[1:]),
    ("program.json", lambda t: t + " "),
    ("config.json", lambda t: t.replace('"rows": 4', '"rows": 4 ')),
    ("model.onnx", None)])
def test_tampered_build_folder_is_refused(tmp_path, net2d_int8, capsys, name, edit):
    out = tmp_path / "build"
    build(net2d_int8, out, AcceleratorConfig.preset("4x4"))
    path = out / name
    if edit is None:
        path.unlink()
        message = f"systolix: error: {out}: {name} is missing"
    else:
        path.write_text(edit(path.read_text()))
        message = (f"systolix: error: {path} differs from the file systolix compile wrote (SHA-256 in report.json); "
                   "compile again rather than editing a build folder")
    assert main(["simulate", str(out), "--random", "1", "--backend", "golden"]) == 2
    assert capsys.readouterr().err.strip() == message


def test_build_folder_of_another_format_is_refused(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps({"model": "x.onnx", "config": {}}))
    with pytest.raises(SystolixError, match="a build folder of another format"):
        load_build(tmp_path)


def test_hex_file_checked(tmp_path):
    (tmp_path / "prog.hex").write_text("12345\nxyz\n")
    with pytest.raises(SystolixError, match=rf"prog.hex:1: not a {INSTRUCTION_BITS}-bit hexadecimal word"):
        read_hex(tmp_path / "prog.hex", INSTRUCTION_BITS, 16)


def test_program_must_match_its_image(tmp_path, net2d_int8):
    from systolix.compiler.compile import Program

    out = tmp_path / "build"
    build(net2d_int8, out, AcceleratorConfig.preset("4x4"))
    loaded = load_build(out)
    data = json.loads((out / "program.json").read_text())
    other = dataclasses.replace(loaded.program.images, prog=loaded.program.images.prog[1:])
    with pytest.raises(SystolixError, match="^the program's instructions differ from the program memory image$"):
        Program.from_json(data, other)


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
    assert len(err.splitlines()) == 1 and err.startswith("systolix: error: the model needs ")
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


def test_build_folder_follows_the_umask(tmp_path, net2d_int8):
    import os
    import stat

    old = os.umask(0o022)
    try:
        build(net2d_int8, tmp_path / "b", AcceleratorConfig.preset("4x4"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "b").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "b" / "wgt.hex").stat().st_mode) == 0o644
