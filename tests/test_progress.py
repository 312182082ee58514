"""Progress outside a terminal: plain lines on stdout (CI logs, files), the error alone on stderr."""

from __future__ import annotations

import io
import json

import pytest
from rich.console import Console

from systolix.cli import main
from systolix.progress import PlainProgress, PlainStatus, sample_progress, stage_status
from tests.test_cli_errors import int8_model  # noqa: F401  (fixture)


def test_plain_progress_prints_first_every_tenth_and_last() -> None:
    out = io.StringIO()
    bar = PlainProgress(stream=out)
    for done in range(1, 101):
        bar.update("golden", done, 100)
    lines = out.getvalue().splitlines()
    counts = [line.split("golden: ")[1] for line in lines]
    assert counts == [f"{n}/100 samples" for n in (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100)]


def test_plain_status_prints_new_stages_not_every_second_of_one() -> None:
    out = io.StringIO()
    status = PlainStatus("synthesising b", stream=out)
    for second in range(5):
        status.update(f"yosys ({second} s)")
    status.update("nextpnr (0 s)")
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == ["synthesising b", "yosys (0 s)", "nextpnr (0 s)"]


def test_a_terminal_gets_rich_displays_a_file_gets_plain_ones() -> None:
    plain = Console(file=io.StringIO(), force_terminal=False)
    assert isinstance(stage_status(plain, "x"), PlainStatus)
    assert isinstance(sample_progress(plain), PlainProgress)
    terminal = Console(file=io.StringIO(), force_terminal=True)
    assert not isinstance(stage_status(terminal, "x"), PlainStatus)
    assert not isinstance(sample_progress(terminal), PlainProgress)


def test_simulate_in_a_log_prints_progress_and_times_apart(capsys, tmp_path, int8_model) -> None:  # noqa: F811
    report = tmp_path / "r.json"
    assert main(["simulate", int8_model, "--random", "20", "--backend", "golden", "--json", str(report)]) == 0
    captured = capsys.readouterr()
    assert "onnxruntime: 20/20 samples" in captured.out and "golden: 20/20 samples" in captured.out
    assert captured.err == ""
    seconds = json.loads(report.read_text())["seconds"]
    assert {"import", "onnxruntime", "golden", "compare", "total"} <= set(seconds)


@pytest.mark.parametrize("backend", ["verilator"])
def test_hardware_backend_reports_its_build_apart(capsys, tmp_path, int8_model, backend) -> None:  # noqa: F811
    report = tmp_path / "r.json"
    assert main(["simulate", int8_model, "--random", "3", "--backend", backend, "--array", "4x4",
                 "--json", str(report)]) == 0
    seconds = json.loads(report.read_text())["seconds"]
    assert f"{backend} build" in seconds and backend in seconds
    assert seconds[f"{backend} build"] + seconds[backend] <= seconds["total"]
    assert "verilator: 3/3 samples" in capsys.readouterr().out
