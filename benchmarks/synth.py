"""Synthesis and place & route of real builds: resources, Fmax, critical path, latency, tool times.

For the bundled example and MLPerf Tiny ResNet-8 int8 (from ../shared, skipped with a message when it is
absent), at 4x4 and 8x8: ``systolix compile`` then ``systolix synth`` (yosys + nextpnr, one run at a time),
and one table: yosys and nextpnr wall times, LUT4 / FF / DSP / BRAM use and % of the device, Fmax, the
critical path's units and its routing share, latency per inference at that Fmax, fit verdict. A model
that does not compile for an array size is listed with the compiler's reason.

One accelerator per configuration: two builds whose ``accelerator.v`` is the same file (same SHA-256: the
keras_mnist and ResNet-8 builds of one array size) share one place and route. The second reuses the
first's result (resources, Fmax, critical path, tool times; ``reused_from`` names it) and takes its latency
from its own predicted cycles at that Fmax.

Usage: ``python benchmarks/synth.py [--device ecp5-85f] [--only keras_mnist-4x4 ...] [--out DIR] [--reuse]``.
Each 4x4 run takes about 5-10 minutes on a 2-core machine, each 8x8 run 10-30.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "keras_mnist"
ARRAYS = ("4x4", "8x8")


def _cases(console: Console) -> list[tuple[str, Path, Path | None]]:
    """``(name, model, calibration data or None)``."""
    cases = [("keras_mnist", EXAMPLE / "model.onnx", EXAMPLE / "calib.npz")]
    resnet = SHARED / "models" / "mlperf_tiny_resnet8_int8.onnx"
    if resnet.is_file():
        cases.append(("resnet8", resnet, None))
    else:
        console.print(f"skipping MLPerf Tiny ResNet-8: {resnet} is absent (../shared is not beside the checkout)")
    return cases


def main(argv: list[str] | None = None) -> int:
    from systolix.arch.config import AcceleratorConfig
    from systolix.compiler.build import build
    from systolix.errors import SystolixError
    from systolix.synth import synth_build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="ecp5-85f", help="ecp5-85f (default), ecp5-25f or up5k")
    parser.add_argument("--only", nargs="*", help="cases to run, as NAME-ARRAY (keras_mnist-4x4, resnet8-8x8, ...)")
    parser.add_argument("--out", help="folder for the builds (default: a new temporary folder)")
    parser.add_argument("--reuse", action="store_true", help="reuse builds and synth.json already in --out")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", help="write all results to this file")
    args = parser.parse_args(argv)
    console = Console(width=max(160, Console().width))
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="systolix-synth-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    placed: dict[str, dict] = {}  # sha256 of accelerator.v -> the row that placed and routed it
    for name, model, calib in _cases(console):
        for array in ARRAYS:
            case = f"{name}-{array}"
            if args.only and case not in args.only:
                continue
            folder = out / case
            row: dict = {"case": case, "model": str(model), "array": array}
            rows.append(row)
            try:
                if not (args.reuse and (folder / "report.json").is_file()):
                    with console.status(f"compiling {case}"):
                        build(model, folder, AcceleratorConfig.preset(array), calib=calib)
                done = folder / f"synth-{args.device}" / "synth.json"
                design = hashlib.sha256((folder / "accelerator.v").read_bytes()).hexdigest()
                if design in placed:
                    row.update(_reused(placed[design], folder))
                elif args.reuse and done.is_file():
                    row.update(json.loads(done.read_text()))
                else:
                    with console.status(f"{case} on {args.device}") as status:
                        result = synth_build(folder, args.device, seed=args.seed, force=True,
                                             progress=lambda line, c=case, s=status: s.update(f"{c}: {line}"))
                    row.update(result.to_json())
                placed.setdefault(design, row)
            except SystolixError as error:
                row["skipped"] = str(error)
                console.print(f"{case}: {error}", markup=False, highlight=False)
                continue
            tools = (f"the place and route of {row['reused_from']} (same accelerator.v)" if "reused_from" in row
                     else f"yosys {row['yosys_seconds']:.0f} s, nextpnr {row['nextpnr_seconds']:.0f} s")
            console.print(f"{case}: Fmax {row['fmax_mhz'] or 0:.2f} MHz, {tools}, "
                          f"{'fits' if row['fits'] else 'DOES NOT FIT'}")
            if args.json:  # after every case: an interrupted run keeps what it measured
                Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    console.print(_table(rows, args.device))
    return 0


def _reused(first: dict, folder: Path) -> dict:
    """The result of ``first``'s place and route for the build in ``folder`` (the same ``accelerator.v``): its
    own predicted cycles and the latency they take at the measured Fmax."""
    cycles = json.loads((folder / "report.json").read_text()).get("predicted_cycles")
    fmax = first.get("fmax_mhz")
    return {**{k: v for k, v in first.items() if k not in ("case", "model", "array", "design", "folder")},
            "reused_from": first["case"], "predicted_cycles": cycles,
            "latency_ms": cycles / (fmax * 1e3) if cycles is not None and fmax else None}


def _use(row: dict, resource: str) -> str:
    r = row.get("resources", {}).get(resource)
    return "" if r is None else f"{r['used']:,} ({r['percent']:.0f}%)"


def _table(rows: list[dict], device: str) -> Table:
    table = Table(title=f"synthesis and place & route on {device} (yosys 0.69, nextpnr 0.11.1, seed 1)")
    for col in ("case", "yosys s", "nextpnr s", "LUT4", "FF", "DSP", "BRAM", "Fmax MHz", "latency ms",
                "critical path (routing)", "fits"):
        table.add_column(col, justify="left" if col in ("case", "critical path (routing)") else "right")
    for row in rows:
        if "skipped" in row:
            table.add_row(row["case"], "", "", "", "", "", "", "", "", f"not built: {row['skipped'][:60]}", "")
            continue
        path = row.get("critical_path") or {}
        where = (f"{path['start_unit']} -> {path['end_unit']} ({path['routing_share']:.0%})" if path else "")
        times = ((f"= {row['reused_from']}", "") if "reused_from" in row
                 else (f"{row['yosys_seconds']:.0f}", f"{row['nextpnr_seconds']:.0f}"))
        table.add_row(row["case"], *times, _use(row, "LUT4"),
                      _use(row, "FF"), _use(row, "DSP"), _use(row, "BRAM"),
                      f"{row['fmax_mhz']:.2f}" if row.get("fmax_mhz") else "",
                      f"{row['latency_ms']:.3f}" if row.get("latency_ms") else "", where,
                      "yes" if row["fits"] else "NO", style=None if row["fits"] else "red")
    return table


if __name__ == "__main__":
    sys.exit(main())
