"""The Python API (systolix.api): the objects, their errors, agreement with the CLI, and the quickstart example;
and the command line's basics (--version, help texts, --array/--config exclusive)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import systolix
import systolix.api
from systolix import SystolixError
from systolix.cli import COMMANDS, build_parser, main
from tests.conftest import REPO

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


def _float_model(path: Path) -> Path:
    """A float Conv + Relu + MaxPool model, input [N, 1, 8, 8]."""
    w = np.random.default_rng(0).standard_normal((4, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 4, 4])],
                              [numpy_helper.from_array(w, "w")])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


def _samples(n: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, systolix.Model]:
    """The float model and its quantized version (quantized through the API with array calibration data)."""
    folder = tmp_path_factory.mktemp("tiny")
    path = _float_model(folder / "tiny.onnx")
    labels = np.arange(16) % 4
    q = systolix.load(path).quantize((_samples(16), labels), out=folder / "tiny_int8.onnx")
    return path, q


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- the objects -----------------------------------------------------------------------------------------
def test_load_shows_what_inspect_shows(tiny):
    path, _ = tiny
    model = systolix.load(path)
    assert not model.quantized and model.name == "tiny.onnx" and model.path == path
    assert [(row["name"], row["op"], row["output"]) for row in model.layers] == [
        ("conv", "Conv", [1, 4, 8, 8]), ("relu", "Relu", [1, 4, 8, 8]), ("pool", "MaxPool", [1, 4, 4, 4])]
    assert model.macs == 4 * 64 * 9 and model.params == 36
    assert {row["runs_on"] for row in model.layers} <= {"array", "vector (max)", "vector (table, once quantized)"}
    text = model.summary()
    assert "tiny.onnx: float model" in text and "conv" in text and "MaxPool" in text
    assert model.to_json() == {"model": "tiny.onnx", "quantized": False, "params": 36, "macs": model.macs,
                               "layers": model.layers}
    assert "float" in repr(model)


def test_quantize_returns_the_loaded_quantized_model_and_its_summary(tiny):
    path, q = tiny
    assert isinstance(q, systolix.Model) and q.quantized and q.path.is_file()
    summary = q.quantization
    assert summary.result.out_path == q.path and summary.result.calib_samples == 16
    assert summary.result.method == "minmax" and summary.result.quant_format == "qoperator"
    assert summary.exact_on_any_x86
    assert summary.agreement.samples == 16 and summary.agreement.float_correct is not None
    assert summary.evaluated_on == "arrays"
    text = summary.summary()
    assert text.startswith(f"wrote {q.path}: 16 calibration samples") and "top-1 agreement" in text
    assert [row["op"] for row in q.layers] == ["QLinearConv", "MaxPool"]


def test_golden_simulation_of_a_quantized_model(tiny):
    _, q = tiny
    result = q.simulate(random=6, layers=True)
    assert isinstance(result, systolix.Simulation)
    assert result.bit_exact and result.mismatches == 0 and result.samples == 6 and result.backend == "golden"
    assert result.first_mismatch is None and result.cycles is None
    assert result.report["bit_exact"] is True and result.report["compared_elements"] == result.compared_elements
    assert [layer["name"] for layer in result.layers] == ["input quantization", "conv", "pool"][1:]
    labelled = q.simulate((_samples(5, seed=3), np.arange(5) % 4))
    assert labelled.bit_exact and set(labelled.accuracy) == {"onnxruntime", "golden"}
    assert "input quantization" in [layer["name"] for layer in labelled.layers]


def test_compile_open_and_simulate_a_build(tiny, tmp_path):
    _, q = tiny
    build = q.compile(config="4x4", out=tmp_path / "b")
    assert isinstance(build, systolix.Build) and build.folder == tmp_path / "b"
    assert build.config.rows == 4 and build.predicted_cycles > 0
    assert {"accelerator.v", "program.json", "report.json", "model.onnx"} <= set(build.files)
    assert [layer["name"] for layer in build.layers] == ["conv", "pool"]
    opened = systolix.open_build(tmp_path / "b")
    assert opened.report == build.report
    result = opened.simulate(random=3, backend="golden")
    assert result.bit_exact and result.samples == 3
    page = opened.write_html(tmp_path / "b.html", result).read_text()
    assert page.startswith("<!DOCTYPE html>") and "BIT-EXACT" in page and "conv" in page
    with pytest.raises(SystolixError, match="missing does not exist"):
        opened.write_html(tmp_path / "missing" / "b.html")
    # a configuration object, and a configuration file, are taken as well as a preset name
    config = systolix.AcceleratorConfig.preset("4x4")
    assert q.compile(config=config, out=tmp_path / "c").report["config"] == build.report["config"]
    (tmp_path / "cfg.json").write_text(config.to_json())
    assert systolix.build(q.path, tmp_path / "d", str(tmp_path / "cfg.json")).report["config"] == \
        build.report["config"]


def test_compiling_a_float_model_keeps_its_quantization_summary_and_name(tiny, tmp_path, capsys):
    path, _ = tiny
    build = systolix.build(path, tmp_path / "b", "4x4", calib=_samples(16))
    assert build.report["model"] == str(path) and build.report["model_file"] == "model.onnx"
    summary = build.quantization
    assert summary is not None and summary.result.out_path == build.folder / "model.onnx"
    assert summary.result.calib_samples == 16 and summary.agreement is not None
    assert systolix.open_build(build.folder).quantization is None  # only known when it was quantized here
    title = systolix.open_build(build.folder).simulate(random=2, backend="golden").report["model"]
    assert title == f"{path} (build b)"
    # the CLI shows what `systolix quantize` shows
    np.savez(tmp_path / "calib.npz", x=_samples(16))
    assert main(["compile", str(path), "--calib", str(tmp_path / "calib.npz"), "--array", "4x4",
                 "-o", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'c' / 'model.onnx'}: 16 calibration samples" in " ".join(out.split())
    assert "float vs int8" in out and "top-1 agreement" in out


# -- errors are SystolixError, with nothing written ------------------------------------------------------------
def test_errors_are_systolix_errors(tiny, tmp_path):
    path, q = tiny
    with pytest.raises(SystolixError, match="no such file"):
        systolix.load(tmp_path / "nope.onnx")
    with pytest.raises(SystolixError, match="float model"):
        systolix.load(path).simulate(random=2)
    with pytest.raises(SystolixError, match="unknown accelerator preset '3x3'"):
        q.compile(config="3x3", out=tmp_path / "b")
    with pytest.raises(SystolixError, match="float model: give --calib"):
        systolix.load(path).compile(config="4x4", out=tmp_path / "b")
    with pytest.raises(SystolixError, match="not a systolix build folder"):
        systolix.open_build(tmp_path)
    with pytest.raises(SystolixError, match="exactly one of"):
        q.simulate(_samples(2), random=2)
    with pytest.raises(SystolixError, match="not list"):
        q.simulate([1, 2, 3])
    with pytest.raises(SystolixError, match="already quantized"):
        q.quantize(_samples(4), out=tmp_path / "qq.onnx")
    folder = tmp_path / "out"
    folder.mkdir()
    with pytest.raises(SystolixError, match="is a folder; out takes a file name"):
        systolix.load(path).quantize(_samples(4), out=folder)
    with pytest.raises(SystolixError, match="shape"):
        systolix.api.quantize(path, np.zeros((4, 1, 7, 8), np.float32), tmp_path / "q.onnx")
    assert _listing(tmp_path) == ["out"] and _listing(folder) == []


def test_changed_build_is_refused(tiny, tmp_path):
    _, q = tiny
    build = q.compile(config="4x4", out=tmp_path / "b")
    with (build.folder / "wgt.hex").open("a") as f:
        f.write("00\n")
    with pytest.raises(SystolixError, match="differs from the file systolix compile wrote"):
        build.simulate(random=1, backend="golden")
    with pytest.raises(SystolixError, match="differs"):
        build.check()


def test_api_functions_never_print(tiny, tmp_path, capfd):
    path, q = tiny
    model = systolix.load(path)
    model.summary()
    q.simulate(random=2)
    q.compile(config="4x4", out=tmp_path / "b").simulate(random=1, backend="golden")
    assert capfd.readouterr() == ("", "")


# -- the API and the CLI agree ---------------------------------------------------------------------------------
def _without_times(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("seconds", "simulated_cycles_per_second",
                                                          "samples_per_second")}


def test_cli_and_api_give_the_same_reports(tiny, tmp_path, capsys):
    path, q = tiny
    inspect_json = tmp_path / "inspect.json"
    assert main(["inspect", str(q.path), "--json", str(inspect_json)]) == 0
    assert json.loads(inspect_json.read_text()) == json.loads(json.dumps(systolix.load(q.path).to_json()))

    data = tmp_path / "x.npz"
    np.savez(data, x=_samples(7, seed=5), y=np.arange(7) % 4)
    report = tmp_path / "r.json"
    assert main(["simulate", str(q.path), "--inputs", str(data), "--layers", "--backend", "golden", "--json",
                 str(report)]) == 0
    cli = json.loads(report.read_text())
    for inputs in (data, (np.load(data)["x"], np.load(data)["y"])):
        api = systolix.simulate(q.path, inputs, layers=True, backend="golden").report
        assert _without_times(json.loads(json.dumps(api))) == _without_times(cli)

    assert main(["compile", str(q.path), "--array", "4x4", "-o", str(tmp_path / "cli_build")]) == 0
    api_build = systolix.build(q.path, tmp_path / "api_build", "4x4")
    assert json.loads((tmp_path / "cli_build" / "report.json").read_text()) == api_build.report

    out = tmp_path / "cli_q.onnx"
    calib = tmp_path / "calib.npy"
    np.save(calib, _samples(16))
    assert main(["quantize", str(path), "--calib", str(calib), "-o", str(out)]) == 0
    api_q = systolix.api.quantize(path, calib, tmp_path / "api_q.onnx")
    assert out.read_bytes() == api_q.path.read_bytes()
    capsys.readouterr()


# -- the quickstart example ---------------------------------------------------------------------------------------
@needs_verilator
def test_quickstart_example_runs(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    run = subprocess.run([sys.executable, str(REPO / "examples" / "api_quickstart.py"), str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=900, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "bit_exact: True" in run.stdout and "mismatches: 0 of" in run.stdout
    cycles = [line for line in run.stdout.splitlines() if line.startswith("cycles: ")]
    assert len(cycles) == 1 and "per inference (predicted" in cycles[0]
    assert run.stderr == ""
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["build_4x4", "model_int8.onnx"]


# -- the command line's basics ------------------------------------------------------------------------------------
def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"systolix {systolix.__version__}"


def test_top_level_help_lists_every_command_exit_codes_and_examples(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert set(COMMANDS) == {"inspect", "quantize", "simulate", "compile", "synth", "demo", "run", "board"}
    for name, line in COMMANDS.items():
        assert "`" not in line and "\n" not in line and line
        assert any(row.split() == [name, *line.split()] for row in text.splitlines()), (name, text)
    assert "exit codes:" in text and "examples:" in text
    for code in "0123":
        assert f"\n  {code}  " in text
    examples = text.split("examples:")[1].strip().splitlines()
    assert 2 <= len(examples) <= 3 and all(e.strip().startswith("systolix ") for e in examples)


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_argument_has_a_help_string():
    parsers = {"systolix": build_parser(), **_subparsers()}
    assert set(parsers) == {"systolix", *COMMANDS}
    for name, parser in parsers.items():
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help and action.help != argparse.SUPPRESS, (name, action.dest)
            assert "`" not in action.help, (name, action.dest)


@pytest.mark.parametrize("command", ["compile", "simulate"])
def test_array_and_config_are_mutually_exclusive(capsys, command, tmp_path):
    argv = [command, "m.onnx", "--array", "4x4", "--config", "c.json"]
    argv += ["-o", str(tmp_path / "b")] if command == "compile" else ["--random", "2"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"systolix: error: argument --config: not allowed with argument --array (see systolix {command} " \
                  "--help)"
    assert _listing(tmp_path) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help_has_a_description_and_examples(capsys, command):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert "examples:\n  systolix " + command in text and "`" not in text


def test_demo_calls_the_api_not_other_commands():
    import ast
    import inspect
    import textwrap

    from systolix import cli

    tree = ast.parse(textwrap.dedent(inspect.getsource(cli.cmd_demo)))
    called = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not {name for name in called if "Namespace" in name or name.startswith("cmd_")}, called
    assert {"api.load", "_quantize", "_compile", "_simulate"} <= called, called


def test_every_public_api_object_is_documented_and_typed():
    import inspect

    import systolix.api as api

    for name in api.__all__:
        obj = getattr(api, name)
        assert inspect.getdoc(obj), name
        members = [(f"{name}.{m}", v) for m, v in vars(obj).items() if not m.startswith("_")] if isinstance(
            obj, type) else [(name, obj)]
        for label, member in members:
            target = member.fget if isinstance(member, property) else member
            if not callable(target):
                continue
            assert inspect.getdoc(target), label
            assert "return" in inspect.get_annotations(target) or label.endswith("__init__"), label
    for name in ("Build", "Model", "Quantization", "Simulation", "build", "load", "open_build", "simulate"):
        assert getattr(systolix, name) is getattr(api, name)


@needs_verilator
def test_readme_python_example_runs_as_written(tmp_path):
    """The README's notebook-style example, copied out of README.md and run in a fresh folder."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Python API"):]
    code = section[section.index("```python\n") + len("```python\n"):section.index("\n```", section.index("```python"))]
    (tmp_path / "examples").symlink_to(REPO / "examples")
    (tmp_path / "example.py").write_text(code)
    run = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                         env={**os.environ, "PYTHONWARNINGS": "error"})
    assert run.returncode == 0, run.stderr[-2000:]
    last = run.stdout.strip().splitlines()[-1].split()
    assert last[:2] == ["True", "0"] and float(last[2]) > 0  # bit_exact, mismatches, cycles
    assert (tmp_path / "build_4x4" / "accelerator.v").is_file()
