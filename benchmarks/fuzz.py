"""Fuzz campaign: random models through golden or the RTL, every layer compared with onnxruntime.

Usage::

    python benchmarks/fuzz.py --cases 100000 --backend golden
    python benchmarks/fuzz.py --cases 1000 --backend verilator --array 4x4
    python benchmarks/fuzz.py --seeds 8 58 242 --backend verilator   # re-run given cases

Seeds run from ``--start``; each case is one seed (``systolix.sim.fuzz_models.random_model``), so any
case is reproduced by its seed. Prints the counts (exact / mismatch / refused / crash, per model kind),
the most frequent refusals, and saves each failing case (mismatch or crash) under ``--failures`` with
its model, data and a ``repro.sh`` holding the CLI commands that reproduce it. Exit status 1 when any
case failed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def main(argv: list[str] | None = None) -> int:
    from systolix.arch.config import AcceleratorConfig
    from systolix.sim.fuzz import OUTCOMES, campaign

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="number of cases (seeds --start ...)")
    parser.add_argument("--start", type=int, default=0, help="first seed")
    parser.add_argument("--seeds", type=int, nargs="*", help="run exactly these seeds instead")
    parser.add_argument("--backend", default="golden", choices=["golden", "verilator", "amaranth"])
    parser.add_argument("--array", default="4x4", help="preset for hardware backends (default 4x4)")
    parser.add_argument("--samples", type=int, default=3, help="samples per case")
    parser.add_argument("--float-share", type=float, default=0.1, help="share of float models (quantized first)")
    parser.add_argument("--failures", default="fuzz-failures", help="folder for failing cases")
    parser.add_argument("--json", help="write the counts to this file")
    args = parser.parse_args(argv)
    console = Console()
    config = None if args.backend == "golden" else AcceleratorConfig.preset(args.array)
    seeds = list(args.seeds) if args.seeds else list(range(args.start, args.start + args.cases))
    refusals: Counter = Counter()
    seconds = 0.0
    t0 = time.perf_counter()
    with Progress(TextColumn("fuzz {task.fields[backend]}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[status]}"), TimeRemainingColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("fuzz", total=len(seeds), backend=args.backend, status="")
        seen: Counter = Counter()

        def step(result) -> None:
            nonlocal seconds
            seconds += result.seconds
            seen[result.outcome] += 1
            if result.outcome == "refused":
                refusals[_refusal_kind(result.detail)] += 1
            elif result.outcome != "exact":
                console.print(f"[red]seed {result.seed}: {result.outcome}[/red] {result.detail.splitlines()[-1][:200]}")
            progress.update(task, advance=1, status=" ".join(f"{k} {seen[k]}" for k in OUTCOMES if seen[k]))

        counts, failed = campaign(seeds, backend=args.backend, config=config, samples=args.samples,
                                  float_share=args.float_share, failures=args.failures, progress=step)
    wall = time.perf_counter() - t0
    table = Table(title=f"fuzz: {len(seeds):,} cases, backend {args.backend}"
                        + ("" if config is None else f" ({args.array})") + f", {args.samples} samples each")
    table.add_column("kind")
    for outcome in OUTCOMES:
        table.add_column(outcome, justify="right")
    for kind in ("qoperator", "float"):
        table.add_row(kind, *(f"{counts[f'{kind}:{o}']:,}" for o in OUTCOMES))
    table.add_row("all", *(f"{counts[o]:,}" for o in OUTCOMES), style="bold")
    console.print(table)
    console.print(f"{wall:,.0f} s wall, {1000 * seconds / max(1, len(seeds)):.1f} ms per case")
    if refusals:
        console.print("most frequent refusals:")
        for text, n in refusals.most_common(8):
            console.print(f"  {n:6,}  {text}")
    if failed:
        console.print(f"[red]{len(failed)} failing case(s) saved under {args.failures}/[/red]")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "cases": len(seeds), "start": seeds[0] if seeds else None, "backend": args.backend,
            "array": None if config is None else args.array, "samples": args.samples,
            "counts": dict(counts), "wall_seconds": wall, "failed_seeds": [r.seed for r in failed],
            "refusals": dict(refusals.most_common(20))}, indent=1))
    return 1 if failed else 0


def _refusal_kind(detail: str) -> str:
    """A refusal message without its node names and numbers, to group alike refusals."""
    import re

    text = re.sub(r"'[^']*'", "'…'", detail.splitlines()[0] if detail else "")
    text = re.sub(r"\b(layer|node) \S+", r"\1 …", text)
    return re.sub(r"-?\d[\d,.e+-]*", "#", text)[:110]


if __name__ == "__main__":
    sys.exit(main())
