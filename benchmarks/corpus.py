"""Real exporters' models through the whole flow: import, quantize, compile, simulate on Verilator, compare.

For every model of the corpus (``examples/corpus/``: PyTorch's ``torch.onnx.export`` at opset 13 and 17,
onnxruntime's ``quantize_static`` called directly, ``systolix quantize`` variants, old-style ``onnx.helper``
files, the fixtures committed under ``tests/corpus/``):

1. import it and print the normaliser's rewrites;
2. quantize it if it is float (``systolix quantize``; calibration: 64 fixed-seed random-normal samples);
3. compile it for the 8x8 preset (the 4x4 one if it does not fit);
4. simulate the build folder on N fixed-seed random-normal samples (default 20) with every layer compared,
   on the golden model and on Verilator (``simulate BUILD --backend verilator --layers``);

then print one row per model: layers and where they run (array / vector / alias / host), samples and
mismatches of both backends, cycles per inference and MAC utilisation. A model refused at any step gets a
row with the one-line reason. Exit code 1 if any comparison mismatches, else 0.

Usage: ``python benchmarks/corpus.py [--samples N] [--only SUBSTRING ...] [--out DIR] [--no-torch] [--no-tf]
[--quick] [--torch-python PY] [--tf-python PY] [--markdown FILE]`` (``--quick``: the fixtures and old-style files
only, plus the opset-13 PyTorch exports; ``--torch-python``/``--tf-python``: run the exporters with the python of
another environment, e.g. ``/tmp/w/torchenv/bin/python``, when torch or tensorflow are not installed beside
systolix; ``--markdown``: also write the table as markdown).
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples" / "corpus"))

from make_corpus import Entry, build_corpus  # noqa: E402

PRESETS = ("8x8", "4x4")
CALIB_SAMPLES = 64


@dataclass
class Row:
    """What happened to one corpus model."""

    entry: Entry
    normalized: list[str] = field(default_factory=list)
    layers: int | None = None
    where: dict[str, int] = field(default_factory=dict)
    array: str = ""
    golden: tuple[int, int, int] | None = None  # samples, mismatches, elements compared
    verilator: tuple[int, int, int] | None = None
    cycles: float | None = None
    utilization: float | None = None
    refused: str = ""
    stage: str = ""
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def mismatch(self) -> bool:
        return any(r is not None and r[1] for r in (self.golden, self.verilator))


def _data(path: Path, shape: tuple[int, ...], n: int, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    np.savez(path, x=rng.normal(0.0, 1.0, (n, *shape)).astype(np.float32))
    return path


def _where_counts(ir) -> dict[str, int]:
    from systolix.compiler.where import runs_on

    counts: collections.Counter = collections.Counter()
    for where in runs_on(ir).values():
        counts[where.split(" ", 1)[0].rstrip(":")] += 1
    # the host's steps at the outputs; a host input prefix is counted by its ops (runs_on), not its summary line
    counts["host"] += len(ir.host_ops) - (1 if ir.input_prefix else 0)
    return dict(counts)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def run_entry(entry: Entry, work: Path, samples: int, log) -> Row:
    """import -> quantize (float) -> compile (8x8, else 4x4) -> golden and Verilator simulate of the build."""
    from systolix.arch.config import AcceleratorConfig
    from systolix.compiler.build import build
    from systolix.errors import SystolixError
    from systolix.frontend.importer import import_model
    from systolix.quantize.ptq import quantize_model
    from systolix.sim.simulate import simulate

    row = Row(entry)
    started = time.perf_counter()
    folder = work / entry.name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        row.stage = "import"
        imported = import_model(entry.path)
        row.normalized = list(imported.normalized)
        shape = tuple(imported.ir.inputs[0].shape[1:])
        model = entry.path
        if entry.quantize is not None:
            row.stage = "quantize"
            fmt, act = entry.quantize
            calib = _data(folder / "calib.npz", shape, CALIB_SAMPLES, seed=1)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                result = quantize_model(entry.path, calib, folder / "int8.onnx", quant_format=fmt,
                                        activation_type=act)
            seen = [str(w.message) for w in caught]
            row.notes += [f"quantize: {n}" for n in dict.fromkeys(seen + list(result.notes))
                          if not n.startswith("normalised:")  # printed at import already
                          and not any(n != other and other.endswith(n) for other in seen)]
            model = folder / "int8.onnx"
            imported = import_model(model)
            row.normalized += [f"(quantized) {line}" for line in imported.normalized]
        ir = imported.ir
        row.layers = len(ir.layers)
        row.where = _where_counts(ir)
        row.stage = "compile"
        errors = []
        for preset in PRESETS:
            try:
                build(model, folder / f"build_{preset}", AcceleratorConfig.preset(preset))
                row.array = preset
                break
            except SystolixError as exc:
                errors.append(f"{preset}: {_one_line(exc)}")
        if not row.array:
            raise SystolixError("; ".join(errors))
        if errors:
            row.notes.append(f"does not fit {errors[0]}")
        build_dir = folder / f"build_{row.array}"
        inputs = _data(folder / "inputs.npz", shape, samples, seed=2)
        row.stage = "golden"
        gold = simulate(build_dir, inputs=inputs, backend="golden", layers=True)
        row.golden = (gold.comparison.samples, gold.comparison.mismatches, gold.comparison.elements)
        if gold.comparison.first_mismatch is not None:
            row.notes.append(f"golden first mismatch: {gold.comparison.first_mismatch}")
        row.stage = "verilator"
        hw = simulate(build_dir, inputs=inputs, backend="verilator", layers=True)
        row.verilator = (hw.comparison.samples, hw.comparison.mismatches, hw.comparison.elements)
        if hw.comparison.first_mismatch is not None:
            row.notes.append(f"verilator first mismatch: {hw.comparison.first_mismatch}")
        row.cycles = hw.hardware["cycles"]
        row.utilization = hw.hardware["utilization"]
        row.stage = "done"
    except SystolixError as exc:
        row.refused = _one_line(exc)
    except Exception as exc:  # a bug, not a refusal: one line here, the traceback in the log
        row.refused = f"internal error ({type(exc).__name__}): {_one_line(exc)}"
        log.write(f"== {entry.name} ({row.stage})\n{traceback.format_exc()}\n")
        log.flush()
    row.seconds = time.perf_counter() - started
    return row


def table(rows: list[Row], samples: int) -> Table:
    t = Table(title=f"corpus: every layer compared with onnxruntime on {samples} random samples "
                    "(golden model and Verilator)")
    for col in ("model", "exporter", "layers", "array/vector/alias/host", "preset", "golden", "verilator",
                "cycles/inference", "utilisation", "s"):
        t.add_column(col, justify="left" if col in ("model", "exporter", "array/vector/alias/host", "preset")
                     else "right", overflow="fold")
    for row in rows:
        w = row.where
        where = (f"{w.get('array', 0)}/{w.get('vector', 0)}/{w.get('alias', 0)}/{w.get('host', 0)}"
                 if row.layers is not None else "")
        extra = "".join(f"; {k} {v}" for k, v in w.items() if k not in ("array", "vector", "alias", "host"))

        def sim(r):
            return "" if r is None else f"{r[0]} samples, {r[2]:,} elements: {r[1]:,} mism."

        if row.refused:
            t.add_row(row.entry.name, row.entry.exporter, "" if row.layers is None else str(row.layers),
                      where + extra, row.array, f"refused at {row.stage}: {row.refused}", "", "", "",
                      f"{row.seconds:.0f}", style="yellow")
            continue
        t.add_row(row.entry.name, row.entry.exporter, str(row.layers), where + extra, row.array, sim(row.golden),
                  sim(row.verilator), f"{row.cycles:,.0f}", f"{row.utilization:.1%}", f"{row.seconds:.0f}",
                  style="red" if row.mismatch else None)
    return t


def _where_text(row: Row) -> str:
    if row.layers is None:
        return ""
    w = row.where
    extra = "".join(f"; {k} {v}" for k, v in w.items() if k not in ("array", "vector", "alias", "host"))
    return f"{w.get('array', 0)}/{w.get('vector', 0)}/{w.get('alias', 0)}/{w.get('host', 0)}{extra}"


def markdown(rows: list[Row], samples: int) -> str:
    """The table as markdown (README-ready): one row per model."""

    def sim(r):
        return "" if r is None else f"{r[0]}: {r[1]:,} of {r[2]:,}"

    lines = [f"Every layer compared with onnxruntime on {samples} random samples per model "
             "(golden model and Verilator: samples: mismatching elements of the elements compared).", "",
             "| model | exporter | layers | array/vector/alias/host | preset | golden | Verilator | cycles/inference "
             "| utilisation |", "|---|---|--:|---|---|--:|--:|--:|--:|"]
    for row in rows:
        name = row.entry.name
        if name.startswith("fixture:"):
            name = f"{name.removeprefix('fixture:')} (fixture)"
        if row.refused:
            reason = row.refused.replace("|", "\\|")
            lines.append(f"| {name} | {row.entry.exporter} | {row.layers or ''} | {_where_text(row)} | {row.array} "
                         f"| refused at {row.stage}: {reason} | | | |")
            continue
        lines.append(f"| {name} | {row.entry.exporter} | {row.layers} | {_where_text(row)} | {row.array} "
                     f"| {sim(row.golden)} | {sim(row.verilator)} | {row.cycles:,.0f} | {row.utilization:.1%} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20, help="samples per model (default 20)")
    parser.add_argument("--only", nargs="*", default=None, help="run only models whose name contains one of these")
    parser.add_argument("--out", default=None, help="work folder (default: a new temporary folder)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch exports")
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow (tf2onnx) exports")
    parser.add_argument("--torch-python", default=None,
                        help="the python of an environment with torch: the PyTorch exports run there")
    parser.add_argument("--tf-python", default=None,
                        help="the python of an environment with tensorflow and tf2onnx: the Keras exports run there")
    parser.add_argument("--markdown", default=None, help="also write the table as markdown to this file")
    parser.add_argument("--quick", action="store_true", help="fixtures, old-style files and opset-13 PyTorch only")
    args = parser.parse_args(argv)
    console = Console(width=max(200, Console().width))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="systolix-corpus-"))
    notes: list[str] = []
    with console.status("writing the corpus (exporting, quantizing with onnxruntime)"):
        entries = build_corpus(out / "models", with_torch=not args.no_torch, with_tf=not args.no_tf,
                               notes=notes, torch_python=args.torch_python, tf_python=args.tf_python)
    if args.quick:
        entries = [e for e in entries if "_op17" not in e.name and "_ort" not in e.name]
    if args.only:
        entries = [e for e in entries if any(s in e.name for s in args.only)]
    for note in notes:
        console.print(f"note: {note}")
    console.print(f"{len(entries)} models; work folder {out}")
    rows = []
    log_path = out / "errors.log"
    with open(log_path, "w") as log, Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                              TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("corpus", total=len(entries))
        for entry in entries:
            bar.update(task, description=entry.name)
            row = run_entry(entry, out / "work", args.samples, log)
            rows.append(row)
            for line in row.normalized:
                bar.console.print(f"{entry.name}: normalised: {line}", markup=False, highlight=False)
            for line in row.notes:
                bar.console.print(f"{entry.name}: {line}", markup=False, highlight=False)
            bar.advance(task)
    console.print(table(rows, args.samples))
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows, args.samples))
    ran = [r for r in rows if r.verilator is not None]
    refused = [r for r in rows if r.refused]
    mismatched = [r for r in rows if r.mismatch]
    elements = sum(r.verilator[2] for r in ran)
    console.print(f"Verilator: {sum(r.verilator[0] for r in ran):,} samples, {elements:,} elements compared, "
                  f"{sum(r.verilator[1] for r in ran):,} mismatches; golden: "
                  f"{sum(r.golden[2] for r in rows if r.golden is not None):,} elements, "
                  f"{sum(r.golden[1] for r in rows if r.golden is not None):,} mismatches")
    console.print(f"{len(rows)} models: {len(ran)} simulated on Verilator, {len(mismatched)} with mismatches, "
                  f"{len(refused)} refused; tracebacks of internal errors (if any) in {log_path}")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
