"""The HTML report (systolix.html_report, ``--html``): its numbers against the JSON reports, a mismatch with its
heat map, a synthesis result, the command-line paths, and the page as a headless Chromium renders it.

The bundled example is compiled once for a 4x4 array (module fixture). Numbers are read from the page's table
cells (each carries its exact JSON value in ``data-value``) and compared with the JSON reports the same run
wrote, and with ``systolix inspect --json``; the mismatch case runs the golden model with a few elements of one
tensor changed (a wrong backend, compared with the real onnxruntime).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import systolix
from systolix import html_report
from systolix.cli import main
from systolix.sim.backends import GoldenBackend
from tests.conftest import EXAMPLE

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (/usr/bin/chromium; "
                                                             "apt-get install -y chromium, as .ci/run does)")
needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")


# -- reading the page back ---------------------------------------------------------------------------------
class Page(HTMLParser):
    """The tables (by id: rows of cells ``(text, data-value or None)``, body and foot apart), the elements
    with an id (tag, attributes, text), and every ``href``/``src`` value of an HTML page."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: dict[str, dict[str, list[list[tuple[str, str | None]]]]] = {}
        self.ids: dict[str, tuple[str, dict[str, str | None], list[str]]] = {}
        self.links: list[str] = []
        self.all_ids: list[str] = []
        self.tags: dict[str, int] = {}
        self._table: str | None = None
        self._part = "body"
        self._cell: list | None = None
        self._open: list[tuple[str, list[str]]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.links += [v for k, v in attrs if k in ("href", "src", "xlink:href") and v]
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = {"head": [], "body": [], "foot": []}
        elif tag in ("thead", "tbody", "tfoot"):
            self._part = {"thead": "head", "tbody": "body", "tfoot": "foot"}[tag]
        elif tag == "tr" and self._table:
            self.tables[self._table][self._part].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = ["", a.get("data-value")]
        if a.get("id"):
            self.all_ids.append(a["id"])
            text: list[str] = []
            self.ids[a["id"]] = (tag, a, text)
            self._open.append((tag, text))

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][self._part][-1].append((self._cell[0].strip(), self._cell[1]))
            self._cell = None
        elif tag == "table":
            self._table = None
        if self._open and self._open[-1][0] == tag:
            self._open.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[0] += data
        for _, text in self._open:
            text.append(data)

    def text(self, id: str) -> str:
        return " ".join("".join(self.ids[id][2]).split())

    def column(self, table: str, name: str, part: str = "body") -> list[tuple[str, str | None]]:
        head = [text for text, _ in self.tables[table]["head"][0]]
        return [row[head.index(name)] for row in self.tables[table][part]]


def _values(cells) -> list:
    return [None if v is None else json.loads(v) for _, v in cells]


def _self_contained(text: str, page: Page) -> None:
    """Nothing the page would fetch: no script, stylesheet link or frame; every link inside the page."""
    assert page.tags.get("script", 0) == 0 and page.tags.get("link", 0) == 0 and page.tags.get("iframe", 0) == 0
    assert all(v.startswith(("#", "data:")) for v in page.links), sorted(set(page.links))[:5]
    assert "url(http" not in text and "@import" not in text
    assert len(set(page.all_ids)) == len(page.all_ids), "an id used twice"
    local = {link[1:] for link in page.links if link.startswith("#")}
    local |= {ref for ref in re.findall(r"url\(#([^)]+)\)", text)}
    assert local <= set(page.all_ids), sorted(local - set(page.all_ids))[:5]  # every reference resolves


# -- fixtures ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    """The bundled example compiled for a 4x4 array, and its layers as ``systolix inspect --json`` writes them."""
    folder = tmp_path_factory.mktemp("html")
    assert main(["compile", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"), "--array", "4x4",
                 "-o", str(folder / "b4")]) == 0
    assert main(["inspect", str(folder / "b4" / "model.onnx"), "--json", str(folder / "inspect.json")]) == 0
    return folder / "b4"


def _inspect(build: Path) -> dict:
    return json.loads((build.parent / "inspect.json").read_text())


def _check_layers_against_json(page: Page, build: Path, report: dict | None, inspect: dict) -> None:
    """The layer table against ``inspect --json``, the build's report.json and the simulation report."""
    layers = inspect["layers"]
    plan = json.loads((build / "report.json").read_text())
    names = [v for _, v in page.column("layers-table", "layer")]
    rows = page.tables["layers-table"]["body"]
    assert len(rows) == len(layers) == len(plan["layers"])
    assert [row[0][0] for row in rows] == [x["name"] for x in layers]
    assert _values(page.column("layers-table", "MACs")) == [x["macs"] for x in layers]
    assert _values(page.column("layers-table", "params")) == [x["params"] for x in layers]
    assert [t for t, _ in page.column("layers-table", "runs on")] == [x["runs_on"] for x in layers]
    assert [t for t, _ in page.column("layers-table", "op")] == [x["op"] for x in layers]
    assert _values(page.column("layers-table", "predicted cycles")) == [x["cycles"] for x in plan["layers"]]
    assert _values(page.column("layers-table", "act rows")) == [x["act_rows"] for x in plan["layers"]]
    assert _values(page.column("layers-table", "wgt rows")) == [x["wgt_rows"] for x in plan["layers"]]
    assert [t for t, _ in page.column("layers-table", "MACs")] == [f"{x['macs']:,}" for x in layers]
    total = page.tables["layers-table"]["foot"][0]
    assert json.loads(total[5][1]) == inspect["macs"] and json.loads(total[4][1]) == inspect["params"]
    assert json.loads(total[8][1]) == plan["predicted_cycles"]
    assert names  # one row per layer, checked above
    use = plan["memory_use"]
    buffers = {t: (json.loads(u), json.loads(d)) for (t, _), (_, u), (_, d), *_ in page.tables["buffers-table"]["body"]}
    assert buffers["activation buffer (rows)"] == (use["act_rows"], use["act_depth"])
    assert buffers["weight buffer (rows)"] == (use["wgt_rows"], use["wgt_depth"])
    assert buffers["parameter memory (rows)"] == (use["prm_rows"], use["prm_depth"])
    assert buffers["program (instructions)"] == (use["instructions"], use["prog_depth"])
    config = json.loads((build / "config.json").read_text())
    settings = {t: v for (t, _), (_, v) in page.tables["config-table"]["body"]}
    assert json.loads(settings["activation buffer depth (rows)"]) == config["act_buffer_depth"]
    assert json.loads(settings["weight buffer depth (rows)"]) == config["weight_buffer_depth"]
    assert page.tables["config-table"]["body"][0][1][0] == f"{config['rows']}x{config['cols']}"
    if report is None:
        return
    by_name = {x["name"]: x for x in report["layers"]}
    assert _values(page.column("layers-table", "mismatches")) == [by_name[x["name"]]["mismatches"] for x in layers]


def _check_comparison_against_json(page: Page, report: dict) -> None:
    rows = page.tables["comparison-table"]["body"]
    assert [(r[0][0], r[1][0], r[2][0]) for r in rows] == [(x["name"], x["op"], x["tensor"]) for x in report["layers"]]
    assert _values(page.column("comparison-table", "elements")) == [x["elements"] for x in report["layers"]]
    assert _values(page.column("comparison-table", "mismatches")) == [x["mismatches"] for x in report["layers"]]
    foot = page.tables["comparison-table"]["foot"][0]
    assert foot[0][0] == f"{report['samples']} samples"
    assert foot[1][0] == ("BIT-EXACT" if report["bit_exact"] else "MISMATCH")
    assert (json.loads(foot[3][1]), json.loads(foot[4][1])) == (report["compared_elements"], report["mismatches"])
    verdict = page.text("verdict")
    assert verdict.startswith("BIT-EXACT: 0 mismatches" if report["bit_exact"] else "MISMATCH: ")
    assert f"{report['compared_elements']:,} compared elements" in verdict
    accuracy = {t: json.loads(v) for (t, _), (_, v), _ in page.tables["accuracy-table"]["body"]}
    assert accuracy["int8 model (onnxruntime)"] == report["accuracy"]["onnxruntime"]
    assert accuracy[f"int8 on the accelerator ({report['backend']})"] == report["accuracy"][report["backend"]]
    time = page.text("time")
    assert all(f"{k} {v:.2f}s" in time for k, v in report["seconds"].items())


# -- golden model on the build --------------------------------------------------------------------------------
def test_golden_report_numbers_equal_the_json(build, tmp_path, capsys):
    out_json, out_html = tmp_path / "sim.json", tmp_path / "sim.html"
    assert main(["simulate", str(build), "--inputs", str(EXAMPLE / "test.npz"), "--backend", "golden", "--layers",
                 "--json", str(out_json), "--html", str(out_html)]) == 0
    console = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    text = out_html.read_text()
    page = Page(text)
    _self_contained(text, page)
    _check_layers_against_json(page, build, report, _inspect(build))
    _check_comparison_against_json(page, report)
    assert "accuracy (onnxruntime): 95.00%" in console and "95.00%" in page.text("accuracy")
    meta = dict((row[0][0], row[1][0]) for row in page.tables["meta"]["body"])
    assert meta["model"] == report["model"] and meta["systolix"] == systolix.__version__
    assert meta["backend"] == "golden vs onnxruntime" and meta["samples"] == "500"
    assert meta["created"].endswith(" UTC") and meta["build folder"] == str(build)
    assert "layer-graph" in page.ids and "cycles-plot" in page.ids and "buffers-plot" in page.ids
    assert "mismatch" not in page.ids and "heatmap-first-sample" not in page.ids and "hardware" not in page.ids
    graph = text[text.index('id="layer-graph"'):]
    graph = graph[:graph.index("</figure>")]
    assert graph.count('class="node"') == len(_inspect(build)["layers"])
    assert "no synthesis result in the build folder" in page.text("synth")
    assert report["host_ops"] and all(f"host: {line}" in page.text("details") for line in report["host_ops"])
    umask = os.umask(0)
    os.umask(umask)
    assert out_html.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.html", "sim.json"]  # nothing else left behind


# -- a mismatch -------------------------------------------------------------------------------------------------
class _Tampered(GoldenBackend):
    """The golden model with a few elements of one tensor changed (+-1): a backend that is wrong there."""

    name = "tampered"

    def __init__(self, tensor: str, where: list[tuple[int, ...]]) -> None:
        super().__init__()
        self.tensor, self.where = tensor, where

    def run(self, model, inputs, progress=None):
        out = super().run(model, inputs, progress)
        value = out[self.tensor].copy()
        for index in self.where:
            value[index] ^= 1
        out[self.tensor] = value
        return out


def test_mismatch_shows_the_first_failing_layer_and_a_heat_map(build, tmp_path):
    from systolix.sim.simulate import simulate

    plan = json.loads((build / "report.json").read_text())
    conv2 = next(x for x in plan["layers"] if x["name"] == "conv2")
    where = [(3, 2, 5, 7), (3, 2, 5, 8), (3, 6, 0, 0), (7, 2, 5, 7)]  # conv2's output is N x 8 x 22 x 22
    result = simulate(build, inputs=EXAMPLE / "test.npz", layers=True, runner=_Tampered(conv2["output"], where))
    report = result.to_json()
    assert not report["bit_exact"] and report["mismatches"] == 4
    assert report["first_mismatch"]["layer"] == "conv2" and report["first_mismatch"]["sample"] == 3

    # the map: 8 channels x 484 positions, positions in bins of 2 (at most 256 columns), counted independently
    first, every = np.zeros((8, 242), dtype=int), np.zeros((8, 242), dtype=int)
    for n, c, h, w in where:
        every[c, (h * 22 + w) // 2] += 1
        if n == 3:
            first[c, (h * 22 + w) // 2] += 1
    mm = report["mismatch_map"]
    assert (mm["layer"], mm["sample"], mm["shape"], mm["channels_per_row"], mm["positions_per_column"]) == (
        "conv2", 3, [8, 22, 22], 1, 2)
    np.testing.assert_array_equal(np.array(mm["first_sample"]), first)
    np.testing.assert_array_equal(np.array(mm["all_samples"]), every)

    path = tmp_path / "bad.html"
    html_report.write_html(path, html_report.for_build(build, simulation=report))
    text = path.read_text()
    page = Page(text)
    _self_contained(text, page)
    _check_comparison_against_json(page, report)
    _check_layers_against_json(page, build, report, _inspect(build))
    assert page.ids["first-mismatch"][1]["data-layer"] == "conv2"
    assert page.text("first-mismatch").startswith("first mismatch: layer conv2 (QLinearConv), tensor "
                                                  f"{conv2['output']}, sample 3, index [2, 5, 7]: tampered ")
    assert json.loads(page.ids["first-layer-mismatches"][1]["data-value"]) == 4
    assert "MISMATCH: 4 mismatches" in page.text("verdict")
    bad = [row[0][0] for row in page.tables["layers-table"]["body"] if row[-1][1] not in (None, "0")]
    assert bad == ["conv2"]
    for name in ("heatmap-first-sample", "heatmap-all-samples"):
        assert page.ids[name][0] == "figure"
        figure = text[text.index(f'id="{name}"'):]
        figure = figure[:figure.index("</figure>")]
        assert "<image" in figure and "data:image/png;base64," in figure  # the map itself
        assert "differing elements" in figure and "conv2 (8x22x22)" in figure


# -- a synthesis result and the hardware figures (Verilator) ------------------------------------------------------
@needs_verilator
def test_verilator_report_with_a_synthesis_result(build, tmp_path, capsys):
    """A synthesis result in the build folder (made by the real flow, on a copy of the build whose accelerator.v
    is a tiny stand-in design, so it takes seconds), then Verilator: resources, Fmax and latency, cycles."""
    from tests.test_synth import _tiny_verilog

    stand_in = tmp_path / "stand_in"
    shutil.copytree(build, stand_in)
    (stand_in / "accelerator.v").write_text(_tiny_verilog("accelerator"))
    synth = systolix.api.synth(stand_in, "ecp5-85f")
    assert synth.fmax_mhz
    with_synth = tmp_path / "b4"
    shutil.copytree(build, with_synth)
    shutil.copytree(stand_in / "synth-ecp5-85f", with_synth / "synth-ecp5-85f")
    synth_json = json.loads((with_synth / "synth-ecp5-85f" / "synth.json").read_text())

    out_json, out_html = tmp_path / "sim.json", tmp_path / "sim.html"
    assert main(["simulate", str(with_synth), "--random", "3", "--backend", "verilator", "--layers",
                 "--json", str(out_json), "--html", str(out_html)]) == 0
    console = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    page = Page(out_html.read_text())
    _check_layers_against_json(page, with_synth, report, _inspect(build))
    hw = {x["name"]: x for x in report["hardware_layers"]}
    names = [x["name"] for x in _inspect(build)["layers"]]
    assert _values(page.column("layers-table", "measured cycles")) == [hw[n]["cycles"] for n in names]
    assert _values(page.column("layers-table", "utilisation")) == [hw[n]["utilization"] for n in names]
    shown = [t for t, _ in page.column("layers-table", "utilisation")]
    assert shown == [f"{hw[n]['utilization']:.1%}" for n in names]
    assert all(f"{hw[n]['utilization']:.1%}" in console for n in names)
    figures = {t: json.loads(v) for (t, _), (_, v) in page.tables["hardware-table"]["body"] if v is not None}
    assert figures["cycles per inference (measured)"] == report["cycles"]
    assert figures["cycles per inference (predicted)"] == report["predicted_cycles"]
    assert figures["latency per inference"] == report["latency_ms"] == report["cycles"] / (synth.fmax_mhz * 1e3)
    assert figures["clock"] == synth.fmax_mhz and figures["MAC utilisation"] == report["utilization"]
    assert f"latency {report['latency_ms']:.3f} ms per inference at {synth.fmax_mhz:.1f} MHz" in console
    assert page.tables["hardware-table"]  # caption: the same latency line
    resources = {row[0][0]: (json.loads(row[2][1]), json.loads(row[3][1]))
                 for row in page.tables["synth-ecp5-85f-resources"]["body"]}
    assert resources == {k: (v["used"], v["available"]) for k, v in synth_json["resources"].items()}
    summary = {row[0][0]: row[1] for row in page.tables["synth-ecp5-85f"]["body"]}
    assert json.loads(summary["Fmax (clk)"][1]) == synth_json["fmax_mhz"]
    assert summary["Fmax (clk)"][0] == f"{synth.fmax_mhz:.2f} MHz"
    assert json.loads(summary["latency per inference at Fmax"][1]) == synth_json["latency_ms"]
    assert summary["verdict"][0] == "FITS" and summary["yosys"][0] == f"{synth_json['yosys_seconds']} s"
    path = synth_json["critical_path"]
    assert summary["critical path"][0].startswith(f"{path['delay_ns']:.2f} ns: logic {path['logic_ns']:.2f} ns")
    assert json.loads(summary["predicted cycles"][1]) == synth_json["predicted_cycles"]
    assert "synth-ecp5-85f-plot" in page.ids and "cycles-plot" in page.ids


# -- the command line -------------------------------------------------------------------------------------------
def test_compile_html_shows_the_plan_and_buffers(build, tmp_path):
    out = tmp_path / "b8.html"
    assert main(["compile", str(build / "model.onnx"), "--array", "8x8", "-o", str(tmp_path / "b8"),
                 "--html", str(out)]) == 0
    page = Page(out.read_text())
    plan = json.loads((tmp_path / "b8" / "report.json").read_text())
    assert _values(page.column("layers-table", "predicted cycles")) == [x["cycles"] for x in plan["layers"]]
    assert _values(page.column("layers-table", "measured cycles")) == [None] * len(plan["layers"])
    assert "comparison-table" not in page.tables and "verdict" not in page.ids
    assert page.tables["config-table"]["body"][0][1][0] == "8x8"
    assert "buffers-plot" in page.ids and "layer-graph" in page.ids


@pytest.mark.parametrize("command", ["simulate", "compile"])
def test_bad_html_path_is_one_line_before_any_work(build, tmp_path, capsys, command):
    argv = (["simulate", str(build), "--random", "2", "--backend", "golden"] if command == "simulate" else
            ["compile", str(build / "model.onnx"), "--array", "4x4", "-o", str(tmp_path / "new")])
    assert main([*argv, "--html", str(tmp_path)]) == 2
    assert capsys.readouterr().err == f"systolix: error: {tmp_path}: is a folder; --html takes a file name\n"
    assert main([*argv, "--html", str(tmp_path / "no" / "r.html")]) == 2
    assert capsys.readouterr().err == (f"systolix: error: {tmp_path / 'no' / 'r.html'}: folder {tmp_path / 'no'} "
                                       "does not exist\n")
    assert list(tmp_path.iterdir()) == []


def test_demo_writes_the_html_next_to_its_json(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--array", "4x4", "--backend", "golden", "--out", str(out)]) == 0
    console = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["build_4x4", "model_int8.onnx", "simulate.html",
                                                     "simulate.json"]
    report = json.loads((out / "simulate.json").read_text())
    page = Page((out / "simulate.html").read_text())
    _check_comparison_against_json(page, report)
    summary = {row[0][0]: row[1][0] for row in page.tables["summary-table"]["body"]}
    for measure, value in summary.items():  # every row of the console's summary table, with its value
        assert any(line.strip("│ ").startswith(measure) and line.rstrip(" │").endswith(value)
                   for line in console.splitlines()), (measure, value)
    accuracy = {t: json.loads(v) for (t, _), (_, v), _ in page.tables["accuracy-table"]["body"]}
    float_line = next(line for line in console.splitlines() if "float accuracy" in line and "/" in line)
    correct, total = float_line.split("│")[2].split("(")[0].strip().split("/")
    assert accuracy["float model (onnxruntime)"] == int(correct) / int(total)
    assert page.tables["agreement-table"]["body"][0] == [("samples", None), ("500", "500")]


# -- the page in a browser -------------------------------------------------------------------------------------
def _chromium(tmp_path: Path, page: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp_path / 'profile'}", *options, page.as_uri()],
                          capture_output=True, text=True, timeout=180, check=False)


@needs_chromium
def test_headless_chromium_renders_the_tables_and_figures(build, tmp_path):
    from systolix.sim.simulate import simulate

    plan = json.loads((build / "report.json").read_text())
    conv3 = next(x for x in plan["layers"] if x["name"] == "conv3")
    result = simulate(build, inputs=EXAMPLE / "test.npz", layers=True,
                      runner=_Tampered(conv3["output"], [(0, 1, 2, 3)]))
    report = result.to_json()
    path = tmp_path / "report.html"
    html_report.write_html(path, html_report.for_build(build, simulation=report))
    source = Page(path.read_text())

    run = _chromium(tmp_path, path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    dom = Page(run.stdout)
    assert set(source.tables) <= set(dom.tables) and len(source.tables) >= 6
    for name, table in source.tables.items():  # every table, every cell, as the browser parsed the page
        assert dom.tables[name] == table, name
    for name in ("layer-graph", "cycles-plot", "buffers-plot", "heatmap-first-sample", "heatmap-all-samples"):
        assert dom.ids[name][0] == "figure", name
    assert dom.tags.get("svg", 0) >= 5 and dom.text("first-mismatch").startswith("first mismatch: layer conv3 ")
    assert dom.text("verdict").startswith("MISMATCH: 1 mismatches in ")

    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, path, "--window-size=1300,2600", f"--screenshot={shot}")
    assert run.returncode == 0, run.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")) == (1300, 2600)
    if os.environ.get("SYSTOLIX_KEEP_SCREENSHOT"):
        shutil.copy(shot, os.environ["SYSTOLIX_KEEP_SCREENSHOT"])


def test_simulate_html_of_a_model_file(build, tmp_path):
    """A model file: on the golden model no accelerator figures; on Verilator the program compiled for the
    configuration (the same plan and memory use as the build) and the measured cycles."""
    golden = tmp_path / "golden.html"
    assert main(["simulate", str(build / "model.onnx"), "--random", "2", "--backend", "golden", "--html",
                 str(golden)]) == 0
    page = Page(golden.read_text())
    assert "golden model of a model file: no accelerator configuration" in page.text("config")
    assert _values(page.column("layers-table", "predicted cycles")) == [None] * len(_inspect(build)["layers"])
    assert "buffers-table" not in page.tables and "hardware-table" not in page.tables
    assert "not a build folder: no synthesis result." in page.text("synth")
    if shutil.which("make") is None or shutil.which("perl") is None or shutil.which("g++") is None:
        pytest.skip("the Verilator half needs make, perl and g++")
    out_json, out_html = tmp_path / "v.json", tmp_path / "v.html"
    assert main(["simulate", str(build / "model.onnx"), "--array", "4x4", "--random", "2", "--backend", "verilator",
                 "--json", str(out_json), "--html", str(out_html)]) == 0
    report = json.loads(out_json.read_text())
    page = Page(out_html.read_text())
    plan = json.loads((build / "report.json").read_text())
    assert _values(page.column("layers-table", "predicted cycles")) == [x["cycles"] for x in plan["layers"]]
    hw = {x["name"]: x["cycles"] for x in report["hardware_layers"]}
    assert _values(page.column("layers-table", "measured cycles")) == [hw[x["name"]] for x in plan["layers"]]
    used = {t: json.loads(u) for (t, _), (_, u), *_ in page.tables["buffers-table"]["body"]}
    assert used["activation buffer (rows)"] == plan["memory_use"]["act_rows"]
    assert used["weight buffer (rows)"] == plan["memory_use"]["wgt_rows"]
    figures = {t: json.loads(v) for (t, _), (_, v) in page.tables["hardware-table"]["body"] if v is not None}
    assert figures["cycles per inference (measured)"] == report["cycles"]
    assert figures["cycles per inference (predicted)"] == report["predicted_cycles"] == plan["predicted_cycles"]
