"""The HTML report: one self-contained file a person reads (``--html`` of ``simulate`` and ``compile``; ``demo``).

The report is made of the same data as the console tables and the JSON reports: the ``inspect`` rows of the
model (:func:`systolix.frontend.inspect.layer_rows`), the build folder's ``report.json`` (or the program
compiled in memory for a model file on a hardware backend), the ``simulate --json`` report, and the
``synth.json`` that ``systolix synth`` left in the build folder. :class:`HtmlReport` holds them;
:func:`render` turns it into one HTML page with nothing outside it: inline CSS, no script, the layer graph
as an SVG drawn here and the plots as inline SVG drawn by matplotlib (``Figure`` objects on the Agg
canvas, saved as SVG into a string: no pyplot, no file, no GUI). Numbers in table cells carry their exact
JSON value in a ``data-value`` attribute, so a reader (or a test) can check the page against the JSON.
"""

from __future__ import annotations

import contextlib
import datetime
import html
import io
import json
import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .outputs import write_atomic

if TYPE_CHECKING:
    from .frontend.ir import Model

__all__ = ["HtmlReport", "for_build", "for_model", "model_layers", "render", "synth_reports", "write_html"]


# -- the data ------------------------------------------------------------------------------------------
@dataclass
class HtmlReport:
    """Everything an HTML report shows, as plain JSON data.

    Attributes
    ----------
    model : str
        The model's name.
    layers : list of dict
        One row per layer as ``systolix inspect --json`` writes them (``name``, ``op``, ``input``, ``output``,
        ``geometry``, ``params``, ``macs``, ``runs_on``), each with ``inputs``: the layers (or graph inputs)
        its inputs come from.
    config : dict or None
        The accelerator configuration (``AcceleratorConfig.to_dict()``); None for the golden model of a model
        file.
    build : dict or None
        The build's ``report.json`` (or the same fields of a program compiled in memory): ``memory_use``,
        ``predicted_cycles``, ``layers`` (the compiler's plan per layer).
    simulation : dict or None
        The ``systolix simulate --json`` report.
    synth : dict of str to dict
        Device name -> ``synth.json`` of the build (``systolix synth``).
    quantization : dict or None
        ``lines`` (what ``systolix quantize`` prints) and ``agreement`` (float vs int8: ``samples``,
        ``agree``, ``float_correct``, ``int8_correct``, ``max_abs_diff``), ``evaluated_on``.
    summary : list of (str, str)
        Extra measure/value rows (the summary ``systolix demo`` prints).
    notes : list of str
        Extra lines the command printed (normaliser notes, host operations, the device line of
        ``compile --device``).
    build_folder : str or None
        The build folder, and ``files``: its files.
    version, created : str
        systolix's version and the UTC time the report was made.
    """

    model: str
    layers: list[dict]
    config: dict | None = None
    build: dict | None = None
    simulation: dict | None = None
    synth: dict[str, dict] = field(default_factory=dict)
    quantization: dict | None = None
    summary: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    build_folder: str | None = None
    files: list[str] = field(default_factory=list)
    version: str = ""
    created: str = ""

    def __post_init__(self) -> None:
        if not self.version:
            from . import __version__

            self.version = __version__
        if not self.created:
            self.created = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def model_layers(ir: Model) -> list[dict]:
    """The ``inspect`` rows of a model's IR, each with ``inputs``: the layer (or ``input NAME``) each input
    tensor comes from."""
    from .compiler.where import runs_on
    from .frontend.inspect import layer_rows

    producer = {t.name: f"input {t.name}" for t in ir.inputs}
    rows = layer_rows(ir, runs_on(ir))
    for row, layer in zip(rows, ir.layers, strict=True):
        row["inputs"] = [producer.get(name, name) for name in layer.inputs]
        producer[layer.output] = layer.name
    return rows


def synth_reports(folder: str | Path) -> dict[str, dict]:
    """Device -> ``synth.json`` for each ``synth-<device>/synth.json`` in a build folder (unreadable ones are
    left out)."""
    found = {}
    for path in sorted(Path(folder).glob("synth-*/synth.json")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            found[path.parent.name.removeprefix("synth-")] = data
    return found


def for_build(folder: str | Path, *, simulation: dict | None = None, ir: Model | None = None,
              **extra: Any) -> HtmlReport:
    """The report of a build folder (already checked by ``load_build``/``open_build``): its ``report.json``,
    its model's layers, its synthesis results, and ``simulation`` (the ``simulate --json`` report) if given.
    ``ir``: the model's IR when the caller has it (else the build's ``model.onnx`` is imported)."""
    folder = Path(folder)
    build = json.loads((folder / "report.json").read_text())
    if ir is None:
        from .frontend.importer import import_model

        ir = import_model(folder / "model.onnx").ir
    name = (simulation or {}).get("model") or str(build.get("model") or ir.name)  # the model the user compiled
    return HtmlReport(model=name, layers=model_layers(ir), config=build.get("config"), build=build,
                      simulation=simulation, synth=synth_reports(folder), build_folder=str(folder),
                      files=sorted(p.name for p in folder.iterdir() if p.is_file()), **extra)


def for_model(path: str | Path, simulation: dict, **extra: Any) -> HtmlReport:
    """The report of ``simulate`` on a model file: its layers, the simulation and, on a hardware backend,
    the program the simulation compiled in memory for its configuration (its plan and memory use)."""
    from .frontend.importer import import_model

    ir = import_model(path).ir
    config = simulation.get("config")
    build = None
    if config is not None:
        from .arch.config import AcceleratorConfig
        from .compiler.compile import compile_model

        program = compile_model(ir, AcceleratorConfig.from_dict(config)).to_json()
        build = {k: program[k] for k in ("config", "memory_use", "predicted_cycles", "layers", "add_variant")}
    return HtmlReport(model=ir.name, layers=model_layers(ir), config=config, build=build, simulation=simulation,
                      **extra)


def write_html(path: str | Path, report: HtmlReport) -> None:
    """Render ``report`` and write it to ``path`` atomically (the user's umask)."""
    write_atomic(path, render(report))


# -- small HTML helpers -------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _short(name: str) -> str:
    """TFLite-converted names join several op names with ';': show the last one (as the console does)."""
    return name.split(";")[-1]


def _num(value: Any, text: str | None = None, cls: str = "num") -> str:
    """A table cell for a number: shown as ``text`` (default ``f"{value:,}"``), the exact value in
    ``data-value``."""
    if value is None:
        return f'<td class="{cls} none">&ndash;</td>'
    shown = text if text is not None else f"{value:,}"
    return f'<td class="{cls}" data-value="{_e(json.dumps(value))}">{_e(shown)}</td>'


def _td(text: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{_e(text)}</td>' if cls else f"<td>{_e(text)}</td>"


def _table(head: Sequence[str], rows: Iterable[str], *, id: str, caption: str | None = None,
           foot: Iterable[str] = ()) -> str:
    cap = f"<caption>{_e(caption)}</caption>" if caption else ""
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join(rows)
    tfoot = "".join(foot)
    return (f'<div class="wide"><table id="{_e(id)}">{cap}<thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
            + (f"<tfoot>{tfoot}</tfoot>" if tfoot else "") + "</table></div>")


def _bar(fraction: float | None, label: str | None = None, cls: str = "") -> str:
    """A horizontal bar (CSS) for a fraction, with its label."""
    if fraction is None:
        return '<td class="none">&ndash;</td>'
    width = max(0.0, min(1.0, fraction)) * 100
    text = label if label is not None else f"{fraction:.1%}"
    return (f'<td class="barcell" data-value="{_e(json.dumps(fraction))}"><div class="bar {cls}">'
            f'<span style="width:{width:.1f}%"></span></div><span class="barlabel">{_e(text)}</span></td>')


def _section(id: str, title: str, body: str) -> str:
    return f'<section id="{_e(id)}"><h2>{_e(title)}</h2>{body}</section>'


# -- plots (matplotlib, as SVG text) ---------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_matplotlib() -> Iterator[None]:
    """matplotlib logs (to stderr) when it first builds its font cache or cannot write its configuration
    folder: not the user's concern while a report is written."""
    logger = logging.getLogger("matplotlib")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _svg(figure, name: str) -> str:
    """A matplotlib figure as an inline ``<svg>`` element: text kept as text, every id (and every reference
    to one) prefixed by ``name``, so the figures of one page share no id."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)
    buffer = io.StringIO()
    with _quiet_matplotlib(), matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata={"Date": None}, bbox_inches="tight")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    text = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{name}-{m[1]}"', text)
    text = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{name}-{m[1]})", text)
    text = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{name}-{m[1]}"', text)
    return f'<figure id="{_e(name)}" class="plot">{text}</figure>'


def _figure(width: float, height: float):
    with _quiet_matplotlib():
        from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=96)
    figure.set_layout_engine("constrained")
    return figure


def _cycles_plot(rows: list[tuple[str, float | None, int]]) -> str:
    """Measured vs predicted cycles per layer (horizontal bars); ``rows``: (layer, measured, predicted)."""
    import numpy as np

    rows = [r for r in rows if (r[1] or 0) > 0 or r[2] > 0]
    figure = _figure(8, 0.8 + 0.32 * len(rows))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    measured = any(r[1] is not None for r in rows)
    half = 0.2 if measured else 0.0
    ax.barh(y - half, [r[2] for r in rows], height=0.4 if measured else 0.6, label="predicted", color="#9ecae1")
    if measured:
        ax.barh(y + half, [r[1] or 0 for r in rows], height=0.4, label="measured", color="#3182bd")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("cycles per inference")
    ax.legend(loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _svg(figure, "cycles-plot")


def _fraction_plot(name: str, rows: list[tuple[str, float]], xlabel: str) -> str:
    """Horizontal bars of fractions (0..1, shown in percent) with a 100% line."""
    import numpy as np

    figure = _figure(8, 0.8 + 0.32 * len(rows))
    ax = figure.add_subplot()
    y = np.arange(len(rows))
    values = [100 * v for _, v in rows]
    colors = ["#de2d26" if v > 100 else "#31a354" for v in values]
    ax.barh(y, values, color=colors)
    for yi, v in zip(y, values, strict=True):
        ax.text(v + 1, yi, f"{v:.1f}%", va="center", fontsize=8)
    ax.axvline(100, color="#555", lw=1, ls="--")
    ax.set_yticks(y, [r[0] for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, max(110, max(values, default=0) + 15))
    ax.set_xlabel(xlabel)
    return _svg(figure, name)


def _heatmap(name: str, counts, title: str, mm: dict) -> str:
    """A channel x position heat map of mismatch counts."""
    import numpy as np

    counts = np.asarray(counts)
    figure = _figure(8, 1.6 + min(4.0, 0.12 * counts.shape[0]))
    ax = figure.add_subplot()
    image = ax.imshow(counts, aspect="auto", interpolation="nearest", cmap="Reds", vmin=0,
                      vmax=max(1, int(counts.max())))
    from matplotlib.ticker import MaxNLocator

    per_row, per_col, shape = mm["channels_per_row"], mm["positions_per_column"], mm["shape"]
    position = "position" + (f" (row-major over {'x'.join(map(str, shape[1:]))})" if len(shape) > 2 else "")
    ax.set_ylabel("channel" + (f" (bins of {per_row})" if per_row > 1 else ""))
    ax.set_xlabel(position + (f", bins of {per_col}" if per_col > 1 else ""))
    ax.set_title(title, fontsize=10)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bar = figure.colorbar(image, ax=ax, label="differing elements")
    bar.locator = MaxNLocator(integer=True)
    bar.update_ticks()
    return _svg(figure, name)


# -- the layer graph (SVG drawn here) --------------------------------------------------------------------
_COLOURS = {"array": "#c6dbef", "vector": "#c7e9c0", "alias": "#f0f0f0", "host": "#e0e0e0", "refused": "#fcbba1"}


def _unit(runs_on: str) -> str:
    return next((k for k in _COLOURS if runs_on.startswith(k)), "host")


def _graph_svg(layers: list[dict]) -> str:
    """The layers top to bottom, one box each (coloured by where it runs), an arrow from each layer its
    input comes from; an input from further up is an arc on the right."""
    labels = [f"{_short(row['name'])}  ·  {row['op']}  ·  {'x'.join(map(str, row['output'][1:] or row['output']))}"
              for row in layers]
    step, box_h, x0, top = 38, 26, 20, 46
    box_w = max(300, 20 + 7 * max(map(len, labels), default=0))  # about 7 pixels a character at 12 px
    index = {row["name"]: i for i, row in enumerate(layers)}
    arcs = sum(1 for i, row in enumerate(layers) for src in row["inputs"] if index.get(src, -1) not in (i - 1, -1))
    width = x0 + box_w + 40 + 14 * max(1, arcs) + 170
    height = top + step * len(layers) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="layer graph">',
             '<defs><marker id="graph-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker>'
             '</defs>']
    cx = x0 + box_w / 2
    inputs = sorted({src for row in layers for src in row["inputs"] if src not in index})
    parts.append(f'<text x="{cx}" y="16" text-anchor="middle" class="gin">{_e(", ".join(inputs))}</text>')
    arc = 0
    for i, row in enumerate(layers):
        y = top + i * step
        for src in row["inputs"]:
            j = index.get(src)
            if j is None or j == i - 1:  # from the graph input above, or from the layer just above
                y_from = 22 if j is None and i == 0 else top + (i - 1) * step + box_h
                if j is not None or i == 0:
                    parts.append(f'<line x1="{cx}" y1="{y_from}" x2="{cx}" y2="{y - 1}" stroke="#555" '
                                 'marker-end="url(#graph-arrow)"/>')
                continue
            arc += 1
            xr, y1, y2 = x0 + box_w, top + j * step + box_h / 2, y + box_h / 2
            bulge = xr + 16 + 14 * arc
            parts.append(f'<path d="M{xr},{y1} C{bulge},{y1} {bulge},{y2} {xr + 1},{y2}" fill="none" '
                         'stroke="#555" marker-end="url(#graph-arrow)"/>')
        colour = _COLOURS[_unit(row.get("runs_on", ""))]
        label = labels[i]
        parts.append(f'<g class="node"><title>{_e(row["name"])}: {_e(row.get("runs_on", ""))}</title>'
                     f'<rect x="{x0}" y="{y}" width="{box_w}" height="{box_h}" rx="5" fill="{colour}" '
                     f'stroke="#777"/><text x="{x0 + 10}" y="{y + 17}">{_e(label)}</text></g>')
    lx = width - 160
    for k, (unit, colour) in enumerate(_COLOURS.items()):
        ly = top + k * 22
        parts.append(f'<rect x="{lx}" y="{ly}" width="14" height="14" fill="{colour}" stroke="#777"/>'
                     f'<text x="{lx + 20}" y="{ly + 12}">{_e(unit)}</text>')
    parts.append("</svg>")
    return f'<figure id="layer-graph" class="graph">{"".join(parts)}</figure>'


# -- sections ----------------------------------------------------------------------------------------------
def _latency_text(hw: dict) -> str:
    from .sim.simulate import latency_text

    return latency_text(hw)


def _header(r: HtmlReport) -> str:
    sim = r.simulation
    rows = [("model", r.model), ("systolix", r.version), ("created", r.created)]
    if r.build_folder:
        rows.append(("build folder", r.build_folder))
    if r.config:
        rows.append(("array", f"{r.config['rows']}x{r.config['cols']}"))
    if sim is not None:
        rows += [("backend", f"{sim['backend']} vs onnxruntime"), ("samples", f"{sim['samples']:,}")]
    meta = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    verdict = ""
    if sim is not None:
        ok = sim["bit_exact"]
        verdict = (f'<p id="verdict" class="verdict {"ok" if ok else "bad"}">'
                   f'{"BIT-EXACT" if ok else "MISMATCH"}: <span data-value="{sim["mismatches"]}">'
                   f'{sim["mismatches"]:,}</span> mismatches in <span data-value="{sim["compared_elements"]}">'
                   f'{sim["compared_elements"]:,}</span> compared elements ({sim["samples"]:,} samples, '
                   f'{_e(sim["backend"])} vs onnxruntime)</p>')
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    return (f"<header><h1>systolix report: {_e(r.model)}</h1>{verdict}"
            f'<table id="meta" class="meta">{meta}</table>'
            + (f'<ul id="notes" class="notes">{notes}</ul>' if notes else "") + "</header>")


def _config_section(r: HtmlReport) -> str:
    if not r.config:
        return _section("config", "accelerator configuration",
                        "<p>golden model of a model file: no accelerator configuration (simulate a build folder, or "
                        "use a hardware backend).</p>")
    c = r.config
    rows = [("array (rows x columns)", f"{c['rows']}x{c['cols']}", None)]
    names = {"data_width": "data width (bits)", "acc_width": "accumulator width (bits)",
             "act_buffer_depth": "activation buffer depth (rows)", "weight_buffer_depth": "weight buffer depth (rows)",
             "acc_memory_depth": "accumulator memory depth", "param_memory_depth": "parameter memory depth (rows)",
             "program_memory_depth": "program memory depth (instructions)",
             "lut_memory_depth": "lookup table memory depth", "add_table_depth": "add table depth"}
    body = [f"<tr><td>{_e(k)}</td><td class=\"num\">{_e(v)}</td></tr>" for k, v, _ in rows]
    for key, label in names.items():
        if key in c:
            body.append(f"<tr><td>{_e(label)}</td>{_num(c[key])}</tr>")
    for key in c:
        if key not in names and key not in ("rows", "cols"):
            body.append(f"<tr><td>{_e(key)}</td><td class=\"num\">{_e(c[key])}</td></tr>")
    return _section("config", "accelerator configuration", _table(["setting", "value"], body, id="config-table"))


def _layers_section(r: HtmlReport) -> str:
    sim = r.simulation or {}
    hw = {row["name"]: row for row in sim.get("hardware_layers", [])}
    if not any(row["cycles"] for row in hw.values()):  # not in step mode: only the total was measured
        hw = {}
    plans = {row["name"]: row for row in (r.build or {}).get("layers", [])}
    compared = {row["name"]: row for row in sim.get("layers", [])}
    head = ["layer", "op", "input -> output", "kernel/stride/pad/dil/groups", "params", "MACs", "runs on",
            "instr", "predicted cycles", "measured cycles", "utilisation", "act rows", "wgt rows", "mismatches"]
    body = []
    for row in r.layers:
        name = row["name"]
        plan, meas, cmp_ = plans.get(name), hw.get(name), compared.get(name)
        shapes = " + ".join("x".join(map(str, s[1:] or s)) for s in row["input"])
        out = "x".join(map(str, row["output"][1:] or row["output"]))
        op = row["op"] + (" (host)" if row.get("host") else "")
        bad = cmp_ is not None and cmp_["mismatches"]
        cells = [_td(_short(name), "name"), _td(op), _td(f"{shapes} -> {out}", "shape"), _td(row.get("geometry", "")),
                 _num(row["params"]), _num(row["macs"]), _td(row.get("runs_on", ""))]
        if plan is not None:
            cells += [_td(",".join(map(str, plan["instructions"]))), _num(plan["cycles"])]
        else:
            cells += [_td(""), _num(None)]
        cells.append(_num(meas["cycles"], f"{meas['cycles']:,.0f}") if meas else _num(None))
        cells.append(_bar(meas["utilization"]) if meas else _bar(None))
        cells += ([_num(plan["act_rows"]), _num(plan["wgt_rows"])] if plan is not None else [_num(None), _num(None)])
        cells.append(_num(cmp_["mismatches"]) if cmp_ else _num(None))
        cls = ' class="bad"' if bad else ""
        body.append(f'<tr data-layer="{_e(name)}"{cls}>{"".join(cells)}</tr>')
    total = [_td("total"), _td(""), _td(""), _td(""), _num(sum(x["params"] for x in r.layers)),
             _num(sum(x["macs"] for x in r.layers)), _td(""), _td("")]
    total.append(_num(r.build["predicted_cycles"]) if r.build else _num(None))
    total.append(_num(sim["cycles"], f"{sim['cycles']:,.0f}") if "cycles" in sim else _num(None))
    total.append(_bar(sim["utilization"]) if "utilization" in sim else _bar(None))
    total += [_td(""), _td(""), _num(sim["mismatches"]) if sim else _num(None)]
    foot = [f'<tr class="total">{"".join(total)}</tr>']
    table = _table(head, body, id="layers-table", foot=foot,
                   caption="every layer: what the model computes, where it runs, the compiler's plan and (simulated) "
                           "what the hardware measured; utilisation = MACs / (measured cycles x array PEs)")
    parts = [table]
    if r.build:
        rows = [(_short(p["name"]), hw[p["name"]]["cycles"] if p["name"] in hw else None, p["cycles"])
                for p in r.build["layers"]]
        if any(c for _, _, c in rows):
            parts.append("<h3>cycles per layer: measured vs predicted</h3>" + _cycles_plot(rows))
    return _section("layers", "layers", _graph_svg(r.layers) + "".join(parts))


def _comparison_section(sim: dict) -> str:
    body = []
    for row in sim["layers"]:
        cls = ' class="bad"' if row["mismatches"] else ""
        body.append(f"<tr{cls}>{_td(_short(row['name']), 'name')}{_td(row['op'])}{_td(row['tensor'], 'name')}"
                    f"{_num(row['elements'])}{_num(row['mismatches'])}</tr>")
    verdict = "BIT-EXACT" if sim["bit_exact"] else "MISMATCH"
    samples = f"{sim['samples']} samples"
    foot = [f'<tr class="total {"ok" if sim["bit_exact"] else "bad"}">{_td(samples)}'
            f"{_td(verdict)}{_td('')}{_num(sim['compared_elements'])}{_num(sim['mismatches'])}</tr>"]
    table = _table(["tensor", "op", "onnx tensor", "elements", "mismatches"], body, id="comparison-table", foot=foot,
                   caption=f"{sim['model']}: {sim['backend']} vs onnxruntime, every element of every compared tensor "
                           "over all samples")
    return _section("comparison", "comparison with onnxruntime", table)


def _hardware_section(sim: dict) -> str:
    if "cycles" not in sim:
        return ""
    rows = [("cycles per inference (measured)", _num(sim["cycles"], f"{sim['cycles']:,.0f}")),
            ("cycles per inference (predicted)", _num(sim["predicted_cycles"])),
            ("MAC utilisation", _bar(sim["utilization"])),
            ("clock", _num(sim.get("clock_mhz"), None if sim.get("clock_mhz") is None
                           else f"{sim['clock_mhz']:.1f} MHz")),
            ("latency per inference", _num(sim.get("latency_ms"), None if sim.get("latency_ms") is None
                                           else f"{sim['latency_ms']:.3f} ms")),
            ("simulated cycles per second", _num(sim["simulated_cycles_per_second"],
                                                 f"{sim['simulated_cycles_per_second']:,.0f}")),
            ("simulated samples per second", _num(sim["samples_per_second"], f"{sim['samples_per_second']:.3g}"))]
    body = [f"<tr>{_td(k)}{v}</tr>" for k, v in rows]
    return _section("hardware", f"measured on {sim['backend']}",
                    _table(["measure", "value"], body, id="hardware-table", caption=_latency_text(sim)))


def _buffers_section(r: HtmlReport) -> str:
    if not r.build or "memory_use" not in r.build:
        return ""
    use, c = r.build["memory_use"], r.config or {}
    items = [("activation buffer (rows)", use.get("act_rows"), use.get("act_depth")),
             ("weight buffer (rows)", use.get("wgt_rows"), use.get("wgt_depth")),
             ("parameter memory (rows)", use.get("prm_rows"), use.get("prm_depth")),
             ("lookup tables (rows)", use.get("lut_rows"), c.get("lut_memory_depth")),
             ("add table (entries)", use.get("addtab_entries"), c.get("add_table_depth")),
             ("program (instructions)", use.get("instructions"), use.get("prog_depth"))]
    items = [i for i in items if i[1] is not None and i[2]]
    body = [f"<tr>{_td(name)}{_num(used)}{_num(depth)}{_bar(used / depth)}</tr>" for name, used, depth in items]
    extra = ""
    if "act_rows_keep_all" in use:
        extra = (f'<p class="note">activation rows with buffer reuse: <span data-value="{use["act_rows_reuse"]}">'
                 f'{use["act_rows_reuse"]:,}</span>; keeping every tensor: <span data-value="'
                 f'{use["act_rows_keep_all"]}">{use["act_rows_keep_all"]:,}</span></p>')
    plot = _fraction_plot("buffers-plot", [(name, used / depth) for name, used, depth in items],
                          "use of the configured depth (%)")
    return _section("buffers", "buffer use", _table(["memory", "used", "depth", "use"], body, id="buffers-table")
                    + extra + plot)


def _synth_section(r: HtmlReport) -> str:
    if not r.synth:
        return _section("synth", "FPGA resources and Fmax",
                        "<p>no synthesis result in the build folder (systolix synth BUILD --device ecp5-85f).</p>"
                        if r.build_folder else "<p>not a build folder: no synthesis result.</p>")
    parts = []
    for device, s in r.synth.items():
        res = s.get("resources", {})
        body = [f"<tr>{_td(name)}{_td(v.get('cell', ''))}{_num(v['used'])}{_num(v['available'])}"
                f"{_bar(v['used'] / v['available'] if v.get('available') else None, format(v['percent'], '.1f') + '%')}"
                f"{_td(v.get('source', ''))}</tr>" for name, v in res.items()]
        table = _table(["resource", "cell", "used", "available", "use", "counted by"], body,
                       id=f"synth-{device}-resources")
        fmax, target = s.get("fmax_mhz"), s.get("target_mhz")
        path = s.get("critical_path") or {}
        verdict = "FITS" if s.get("fits") else "DOES NOT FIT: " + "; ".join(s.get("problems", []))
        rows = [("part", _td(s.get("part", ""))), ("placer seed", _num(s.get("seed"))),
                ("verdict", _td(verdict, "" if s.get("fits") else "bad")),
                ("Fmax" + (f" ({s['clock']})" if s.get("clock") else ""),
                 _num(fmax, None if fmax is None else f"{fmax:.2f} MHz")),
                ("timing target", _num(target, f"{target:g} MHz" if target is not None else None)),
                ("meets the target", _td({True: "yes", False: "no", None: "-"}[s.get("meets_target")])),
                ("predicted cycles", _num(s.get("predicted_cycles"))),
                ("latency per inference at Fmax", _num(s.get("latency_ms"), None if s.get("latency_ms") is None
                                                       else f"{s['latency_ms']:.3f} ms"))]
        if path:
            rows += [("critical path", _td(f"{path['delay_ns']:.2f} ns: logic {path['logic_ns']:.2f} ns, routing "
                                           f"{path['routing_ns']:.2f} ns ({path['routing_share']:.0%}), "
                                           f"{path['segments']} segments")),
                     ("  from", _td(f"{path['start_unit']}: {path['start_signal']}  (cell {path['start']})", "name")),
                     ("  to", _td(f"{path['end_unit']}: {path['end_signal']}  (cell {path['end']})", "name")),
                     ("  through", _td(" -> ".join(path.get("units", [])) or "?"))]
        rows += [("yosys", _num(s.get("yosys_seconds"), f"{s.get('yosys_seconds')} s")),
                 (f"nextpnr-{s.get('family', '')}", _num(s.get("nextpnr_seconds"), f"{s.get('nextpnr_seconds')} s"))]
        summary = _table(["measure", "value"], (f"<tr>{_td(k)}{v}</tr>" for k, v in rows), id=f"synth-{device}",
                         caption=f"{s.get('design')} on {device} ({s.get('part')}), seed {s.get('seed')}")
        plot = _fraction_plot(f"synth-{device}-plot", [(name, v["used"] / v["available"]) for name, v in res.items()
                                                       if v.get("available")], f"use of the {device} (%)")
        parts.append(f"<h3>{_e(device)}</h3>{summary}{table}{plot}")
    return _section("synth", "FPGA resources and Fmax", "".join(parts))


def _accuracy_section(r: HtmlReport) -> str:
    sim = r.simulation or {}
    rows = []
    agreement = (r.quantization or {}).get("agreement")
    if agreement and agreement.get("float_correct") is not None:
        rows.append(("float model (onnxruntime)", agreement["float_correct"] / agreement["samples"]))
    for who, value in sim.get("accuracy", {}).items():
        label = "int8 model (onnxruntime)" if who == "onnxruntime" else f"int8 on the accelerator ({who})"
        rows.append((label, value))
    parts = []
    if rows:
        body = [f"<tr>{_td(k)}{_num(v, f'{v:.2%}')}{_bar(v, f'{v:.2%}')}</tr>" for k, v in rows]
        parts.append(_table(["top-1 accuracy", "value", ""], body, id="accuracy-table"))
    if r.quantization:
        parts.append("<ul>" + "".join(f"<li>{_e(line)}</li>" for line in r.quantization.get("lines", [])) + "</ul>")
        if agreement:
            n = agreement["samples"]
            arows = [("samples", _num(n)),
                     ("top-1 agreement", _num(agreement["agree"], f"{agreement['agree']}/{n} "
                                                                  f"({100 * agreement['agree'] / n:.2f}%)"))]
            for key, label in (("float_correct", "float accuracy"), ("int8_correct", "int8 accuracy")):
                if agreement.get(key) is not None:
                    arows.append((label, _num(agreement[key], f"{agreement[key]}/{n} "
                                                             f"({100 * agreement[key] / n:.2f}%)")))
            if agreement.get("max_abs_diff") is not None:
                arows.append(("max |float - int8| output", _num(agreement["max_abs_diff"],
                                                                f"{agreement['max_abs_diff']:.6g}")))
            parts.append(_table(["measure", "value"], (f"<tr>{_td(k)}{v}</tr>" for k, v in arows),
                                id="agreement-table",
                                caption=f"float vs int8 on {r.quantization.get('evaluated_on')}"))
    if not parts:
        return ""
    return _section("accuracy", "accuracy", "".join(parts))


def _mismatch_section(sim: dict) -> str:
    first = sim.get("first_mismatch")
    if first is None:
        return ""
    failing = [row for row in sim["layers"] if row["mismatches"]]
    text = (f"first mismatch: layer {first['layer']} ({first['op']}), tensor {first['tensor']}, sample "
            f"{first['sample']}, index {first['index']}: {sim['backend']} {first['backend']}, onnxruntime "
            f"{first['reference']} {first.get('note', '')}").rstrip()
    body = [f'<p id="first-mismatch" class="bad" data-layer="{_e(first["layer"])}">{_e(text)}</p>',
            f'<p>mismatching tensors: <span data-value="{len(failing)}">{len(failing)}</span>; first mismatching layer '
            f'<b>{_e(first["layer"])}</b> with <span id="first-layer-mismatches" data-value="'
            f'{failing[0]["mismatches"] if failing else 0}">{failing[0]["mismatches"] if failing else 0:,}</span> '
            f'differing elements over all samples.</p>']
    mm = sim.get("mismatch_map")
    if mm is not None:
        shape = "x".join(map(str, mm["shape"]))
        body.append(_heatmap("heatmap-first-sample", mm["first_sample"],
                             f"{_short(mm['layer'])} ({shape}), sample {mm['sample']}: differing elements", mm))
        body.append(_heatmap("heatmap-all-samples", mm["all_samples"],
                             f"{_short(mm['layer'])} ({shape}), all {sim['samples']} samples: differing elements", mm))
    return _section("mismatch", "mismatch", "".join(body))


def _float_execution_section(sim: dict) -> str:
    rows = [d for d in sim.get("float_execution", []) if d["differing"] or d["float_in_original"]
            or d["op"] == "graph output"]
    if not sim.get("converted_layers"):
        return ""
    body = [f"<tr>{_td(_short(d['node'] or d['name']), 'name')}{_td(d['op'])}"
            f"{_td('yes' if d['float_in_original'] else '')}{_num(d['elements'])}{_num(d['differing'])}"
            f"{_num(d['max_abs_diff'], format(d['max_abs_diff'], 'g'))}</tr>"
            for d in rows]
    table = _table(["tensor", "op", "float in original", "elements", "differing", "max |diff|"], body,
                   id="float-execution-table",
                   caption="layers onnxruntime computes in float32 in the original graph (converted to their integer "
                           "meaning here); onnxruntime on the original vs on the integer form")
    return _section("float-execution", "float execution in the original graph", table)


def _details_section(r: HtmlReport) -> str:
    sim = r.simulation or {}
    items = [f"normalised: {x}" for x in sim.get("normalized", [])]
    items += [f"host: {x}" for x in sim.get("host_ops", [])]
    items += [f"converted to integer: {x}" for x in sim.get("converted_layers", [])]
    parts = []
    if items:
        parts.append("<ul>" + "".join(f"<li>{_e(x)}</li>" for x in items) + "</ul>")
    if sim.get("seconds"):
        parts.append('<p id="time">time: ' + _e(", ".join(f"{k} {v:.2f}s" for k, v in sim["seconds"].items()))
                     + "</p>")
    if r.build:
        parts.append(f'<p>predicted <span data-value="{r.build["predicted_cycles"]}">'
                     f'{r.build["predicted_cycles"]:,}</span> cycles per inference'
                     + (f"; {_e(r.build_folder)}/: {_e(', '.join(r.files))}" if r.build_folder else "") + "</p>")
    if r.summary:
        parts.append(_table(["measure", "value"], (f"<tr>{_td(k)}{_td(v, 'num')}</tr>" for k, v in r.summary),
                            id="summary-table", caption="summary"))
    return _section("details", "details", "".join(parts)) if parts else ""


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;max-width:1280px;
color:#222;padding:0 16px;font-size:14px;line-height:1.4}
h1{font-size:22px;margin:0 0 8px}h2{font-size:18px;border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:28px}
h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:middle}
thead th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
caption{caption-side:top;text-align:left;color:#555;padding:4px 0;font-size:12px}
td.shape{white-space:nowrap}td.name{min-width:140px;max-width:320px;overflow-wrap:anywhere}
div.wide{overflow-x:auto;max-width:100%}li,p{overflow-wrap:anywhere}td.num{text-align:right;font-variant-numeric:tabular-nums}td.none{color:#aaa;text-align:center}
tr.total td{font-weight:bold;background:#f3f3f3}tr.bad td,.bad{color:#b00}
table.meta th{background:#f3f3f3;text-align:left}
.verdict{font-size:18px;font-weight:bold;padding:8px 12px;border-radius:6px;display:inline-block}
.verdict.ok{background:#e5f5e0;color:#006d2c}.verdict.bad{background:#fee0d2;color:#a50f15}
.barcell{min-width:150px;white-space:nowrap}
.bar{display:inline-block;width:100px;height:10px;background:#eee;border:1px solid #ccc;vertical-align:middle;
margin-right:6px}
.bar span{display:block;height:100%;background:#3182bd}
figure{margin:8px 0}figure svg{max-width:100%;height:auto}
.graph text{font:12px system-ui,"DejaVu Sans",sans-serif}.graph .gin{fill:#555}
.note{color:#555}ul.notes{color:#555}
"""


def render(report: HtmlReport) -> str:
    """The HTML page of ``report``: one self-contained document (inline CSS and SVG, no script)."""
    sim = report.simulation
    sections = [_header(report)]
    if sim is not None:  # a mismatch first: it is what the reader needs
        sections.append(_mismatch_section(sim))
    sections += [_config_section(report), _layers_section(report)]
    if sim is not None:
        sections += [_comparison_section(sim), _hardware_section(sim)]
    sections += [_buffers_section(report), _synth_section(report), _accuracy_section(report)]
    if sim is not None:
        sections.append(_float_execution_section(sim))
    sections.append(_details_section(report))
    body = "\n".join(s for s in sections if s)
    title = f"systolix report: {report.model}"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="generator" content="systolix {_e(report.version)}"><style>{_CSS}</style></head>'
            f"<body>\n{body}\n<footer><p class=\"note\">systolix {_e(report.version)}, {_e(report.created)}</p>"
            "</footer></body></html>\n")
