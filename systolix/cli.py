"""The ``systolix`` command: inspect, quantize, simulate, compile, synth, demo.

Exit codes: 0 success (and bit-exact, for ``simulate``; fits the device, for ``synth``), 1 a mismatch
against onnxruntime (or a design that does not fit), 2 bad input (one line on stderr, nothing
half-written), 3 a bug in systolix (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import SystolixError
from .outputs import check_build_folder, check_output_file, check_output_folder, temporary_beside, write_atomic

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "keras_mnist"


def _console() -> Console:
    return Console(width=max(100, Console().width))


__all__ = ["build_parser", "main", "write_atomic"]


# -- inspect ------------------------------------------------------------------------------------------
def cmd_inspect(args: argparse.Namespace) -> int:
    from .compiler.where import runs_on
    from .frontend.importer import import_model
    from .frontend.inspect import inspect_table, layer_rows

    if args.json:
        check_output_file(args.json, "--json", inputs=(args.model,))
    imported = import_model(args.model)
    console = _console()
    for line in imported.normalized:
        console.print(f"normalised: {line}", markup=False)
    where = runs_on(imported.ir)
    console.print(inspect_table(imported.ir, where))
    for line in imported.ir.host_ops:
        console.print(f"host: {line}")
    for line in imported.ir.converted:
        console.print(f"converted to integer: {line}")
    if args.json:
        ir = imported.ir
        write_atomic(args.json, json.dumps({"model": ir.name, "quantized": ir.quantized, "params": ir.params,
                                            "macs": ir.macs, "layers": layer_rows(ir, where)}, indent=2))
    return 0


# -- quantize -----------------------------------------------------------------------------------------
def cmd_quantize(args: argparse.Namespace) -> int:
    _quantize(args)
    return 0


def _quantize(args: argparse.Namespace):
    """Quantize, print the summary and the float vs int8 agreement table; return the agreement.

    The output path, the float model and the evaluation data are checked before quantizing; the model is
    written under a temporary name beside the output and renamed only when everything succeeded.
    """
    from .frontend.importer import import_model
    from .quantize.datasets import load_inputs
    from .quantize.ptq import QuantizationWarning, agreement, agreement_table, model_input, quantize_model

    eval_path = args.eval or args.calib
    check_output_file(args.output, "-o", inputs=(args.model, args.calib, args.eval))
    import_model(args.model)  # refuses what systolix cannot run (shapes, ops, weights) before any work
    spec = model_input(args.model)
    x, y = load_inputs(eval_path, spec.name, spec.shape, "float32")
    console = _console()
    with temporary_beside(args.output) as tmp:
        with console.status(f"calibrating ({args.method}) and quantizing {args.model}"), warnings.catch_warnings():
            warnings.simplefilter("ignore", QuantizationWarning)  # printed below as a note
            result = quantize_model(args.model, args.calib, tmp, method=args.method,
                                    per_channel=not args.per_tensor, quant_format=args.format,
                                    activation_type=args.activation_type, max_calib_samples=args.max_calib)
        with console.status(f"float vs int8 on {eval_path}"):
            agree = agreement(args.model, tmp, x, y)
    console.print(f"wrote {args.output}: {result.calib_samples} calibration samples, {result.method}, "
                  f"{result.activation_type} activations x {result.weight_type} "
                  f"{'per-channel' if result.per_channel else 'per-tensor'} weights, {result.quant_format}, "
                  f"{result.seconds:.1f} s")
    console.print("ops: " + ", ".join(f"{op} x{n}" for op, n in result.op_counts.items()))
    console.print("integer-exact on any x86 CPU: " + ("yes" if result.exact_on_any_x86 else "NO"),
                  style=None if result.exact_on_any_x86 else "red")
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(agreement_table(agree, title=f"float vs int8 on {eval_path}"))
    return agree


# -- simulate -----------------------------------------------------------------------------------------
def _progress(console: Console):
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, transient=True)
    tasks: dict[str, int] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = bar.add_task(stage, total=total)
        bar.update(tasks[stage], completed=done)

    return bar, update


def summary_table(result) -> Table:
    cmp = result.comparison
    table = Table(title=f"{result.model}: {result.backend} vs onnxruntime")
    table.add_column("tensor")
    table.add_column("op")
    table.add_column("elements", justify="right")
    table.add_column("mismatches", justify="right")
    for layer in cmp.layers:
        style = "red" if layer.mismatches else None
        table.add_row(layer.name, layer.op, f"{layer.elements:,}", f"{layer.mismatches:,}", style=style)
    table.add_section()
    verdict = "BIT-EXACT" if result.bit_exact else "MISMATCH"
    table.add_row(f"{cmp.samples} samples", verdict, f"{cmp.elements:,}", f"{cmp.mismatches:,}",
                  style="bold green" if result.bit_exact else "bold red")
    return table


def _short(name: str) -> str:
    """TFLite-converted names join several op names with ';': show the last one."""
    return name.split(";")[-1]


def float_execution_table(result) -> Table:
    """Layers onnxruntime leaves in float in the original graph, and how far that is from the integer form."""
    table = Table(title="layers onnxruntime computes in float32 in the original graph (converted to their "
                        "integer meaning here); onnxruntime on the original vs on the integer form")
    table.add_column("tensor")
    table.add_column("op")
    table.add_column("float in original")
    table.add_column("elements", justify="right")
    table.add_column("differing", justify="right")
    table.add_column("max |diff|", justify="right")
    for d in result.float_execution:
        if d.differing or d.float_in_original or d.op == "graph output":
            table.add_row(_short(d.node or d.name), d.op, "yes" if d.float_in_original else "", f"{d.elements:,}",
                          f"{d.differing:,}", f"{d.max_abs_diff:g}")
    return table


def _config(args: argparse.Namespace, default: str | None = "8x8"):
    """The accelerator configuration from ``--array NAME`` or ``--config FILE`` (else the preset ``default``)."""
    from .arch.config import AcceleratorConfig

    if getattr(args, "config", None):
        return AcceleratorConfig.from_file(args.config)
    name = getattr(args, "array", None) or default
    return None if name is None else AcceleratorConfig.preset(name)


def _latency_text(hw: dict) -> str:
    """Latency at the measured Fmax (or the given clock), or how to measure it."""
    if hw.get("latency_ms") is None:
        return ("latency: no Fmax measured for this design (systolix synth BUILD --device ecp5-85f, or give "
                "--clock-mhz)")
    source = "given clock" if hw.get("clock_source") == "given" else f"Fmax: {hw.get('clock_source')}"
    return f"latency {hw['latency_ms']:.3f} ms per inference at {hw['clock_mhz']:.1f} MHz ({source})"


def hardware_table(result) -> Table:
    hw = result.hardware
    table = Table(title=f"measured on {result.backend}: {hw['config']['rows']}x{hw['config']['cols']} array")
    for col in ("layer", "op", "MACs", "cycles", "predicted", "utilization"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for layer in hw["hardware_layers"]:
        table.add_row(_short(layer["name"]), layer["op"], f"{layer['macs']:,}", f"{layer['cycles']:,.0f}",
                      f"{layer['predicted_cycles']:,}", f"{layer['utilization']:.1%}")
    table.add_section()
    table.add_row("total", "", f"{sum(x['macs'] for x in hw['hardware_layers']):,}", f"{hw['cycles']:,.0f}",
                  f"{hw['predicted_cycles']:,}", f"{hw['utilization']:.1%}", style="bold")
    table.caption = f"{_latency_text(hw)}; simulated {hw['simulated_cycles_per_second']:,.0f} cycles/s, " \
                    f"{hw['samples_per_second']:.3g} samples/s"
    return table


def cmd_simulate(args: argparse.Namespace) -> int:
    from .sim.simulate import simulate

    for option in ("json", "waveform"):
        if getattr(args, option, None):
            check_output_file(getattr(args, option), f"--{option}", inputs=(args.model, args.inputs))
    console = _console()
    bar, update = _progress(console)
    with bar:
        result = simulate(args.model, inputs=args.inputs, random=args.random, backend=args.backend,
                          layers=args.layers, seed=args.seed, progress=update, config=_config(args, None),
                          clock_mhz=getattr(args, "clock_mhz", None), waveform=getattr(args, "waveform", None),
                          trace_sample=getattr(args, "trace_sample", None))
    return _report(console, result, args.json)


def _report(console: Console, result, json_path, extra: dict | None = None) -> int:
    """Print a simulation result (tables, accuracy, first mismatch, times), write ``json_path``; the exit code."""
    for line in result.normalized:
        console.print(f"normalised: {line}", markup=False)
    console.print(summary_table(result))
    if result.hardware is not None and any(layer["cycles"] for layer in result.hardware["hardware_layers"]):
        console.print(hardware_table(result))
    elif result.hardware is not None:
        console.print(f"cycles per inference: {result.hardware['cycles']:,.0f} (predicted "
                      f"{result.hardware['predicted_cycles']:,}); {_latency_text(result.hardware)}")
    for line in result.host_ops:
        console.print(f"host: {line}")
    if result.converted:
        console.print(float_execution_table(result))
    for who, acc in result.accuracy.items():
        console.print(f"accuracy ({who}): {acc:.2%}")
    first = result.comparison.first_mismatch
    if first is not None:
        console.print(f"first mismatch: layer {first.layer} ({first.op}), tensor {first.tensor}, sample "
                      f"{first.sample}, index {first.index}: {result.backend} {first.backend}, onnxruntime "
                      f"{first.reference} {first.note}".rstrip(), style="red")
    console.print("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))
    if json_path:
        write_atomic(json_path, json.dumps({**result.to_json(), **(extra or {})}, indent=2))
    return 0 if result.bit_exact else 1


# -- run ---------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .run import link_text, run_build

    if args.json:
        check_output_file(args.json, "--json", inputs=(args.build, args.inputs))
    console = _console()
    bar, update = _progress(console)
    with bar:
        result, figures = run_build(args.build, port=args.port, inputs=args.inputs, random=args.random,
                                    seed=args.seed, layers=args.layers, divisor=args.divisor, baud=args.baud,
                                    clock_mhz=args.clock_mhz, progress=update)
    code = _report(console, result, args.json, {"link": figures})
    console.print(link_text(figures), markup=False, highlight=False)
    return code


def cmd_board(args: argparse.Namespace) -> int:
    from .board import build_board

    check_output_folder(args.output, "-o")
    console = _console()
    with console.status(f"building the {args.board} bitstream for {args.build} (yosys, nextpnr: minutes)"):
        record = build_board(args.board, args.build, args.output, clock_mhz=args.clock_mhz, baud=args.baud,
                             seed=args.seed)
    fmax = f"{record['fmax_mhz']:.1f} MHz" if record["fmax_mhz"] else "not reported"
    console.print(f"wrote {record['bitstream']}: {record['clock_mhz']:g} MHz (Fmax {fmax}), UART {record['baud']:,} "
                  f"baud (divisor {record['divisor']}), {record['seconds']:.0f} s", markup=False, highlight=False)
    return 0 if record["fmax_mhz"] is None or record["fmax_mhz"] >= record["clock_mhz"] else 1


# -- compile ------------------------------------------------------------------------------------------
def cmd_compile(args: argparse.Namespace) -> int:
    from .compiler.build import build

    check_build_folder(args.output, "-o")
    console = _console()
    config = _config(args)
    with console.status(f"compiling {args.model} for {config.rows}x{config.cols}"):
        result = build(args.model, args.output, config, calib=args.calib)
    report = result.report
    table = Table(title=f"{args.model} on a {config.rows}x{config.cols} array")
    for col in ("layer", "op", "instr", "MACs", "predicted cycles", "act rows", "wgt rows"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    for layer in report["layers"]:
        table.add_row(_short(layer["name"]), layer["op"], ",".join(map(str, layer["instructions"])),
                      f"{layer['macs']:,}", f"{layer['cycles']:,}", f"{layer['act_rows']:,}", f"{layer['wgt_rows']:,}")
    console.print(table)
    console.print(f"predicted {report['predicted_cycles']:,} cycles per inference; wrote {result.folder}/: "
                  + ", ".join(sorted(p.name for p in result.folder.iterdir())))
    if args.synth:  # the old yosys-only check, now the whole flow of `systolix synth`
        console.print(f"--synth: systolix synth {result.folder} --device ecp5-85f", markup=False, highlight=False)
        return _synth(console, result.folder, "ecp5-85f")
    return 0


# -- synth -------------------------------------------------------------------------------------------
def _synth(console: Console, build, device: str, *, seed: int = 1, freq: float | None = None, force: bool = False,
           json_path=None) -> int:
    from .synth import DEFAULT_FREQ_MHZ, result_table, result_text, synth_build

    with console.status(f"synthesising {build} for {device}") as status:
        result = synth_build(build, device, seed=seed, freq_mhz=freq or DEFAULT_FREQ_MHZ, force=force,
                             progress=lambda line: status.update(f"{line}: {build} for {device}"))
    if console.is_terminal:
        console.print(result_table(result))
    else:
        console.print(result_text(result), end="", markup=False, highlight=False)
    console.print(f"wrote {result.folder / 'synth.json'}", markup=False, highlight=False)
    if json_path:
        write_atomic(json_path, json.dumps(result.to_json(), indent=2) + "\n")
    return 0 if result.fits else 1


def cmd_synth(args: argparse.Namespace) -> int:
    return _synth(_console(), args.build, args.device, seed=args.seed, freq=args.freq, force=args.force,
                  json_path=args.json)


# -- demo ---------------------------------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the bundled example: inspect, quantize, compile for 8x8, simulate the whole test set on
    the accelerator RTL (Verilator; the golden model if Verilator is not available), bit-exactly."""

    out = check_output_folder(args.out, "--out")
    out.mkdir(parents=True, exist_ok=True)
    model, calib, test = EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", EXAMPLE / "test.npz"
    quantized, build_dir = out / "model_int8.onnx", out / f"build_{args.array}"
    console = _console()
    console.rule("1. inspect the float model")
    cmd_inspect(argparse.Namespace(model=model, json=None))
    console.rule("2. quantize to int8 (calibration set)")
    agree = _quantize(argparse.Namespace(model=model, calib=calib, output=quantized, method="minmax",
                                         per_tensor=False, format="qoperator", activation_type="int8", max_calib=None,
                                         eval=test))
    console.rule(f"3. compile for the {args.array} accelerator")
    cmd_compile(argparse.Namespace(model=quantized, calib=None, array=args.array, config=None, output=build_dir,
                                   synth=False))
    console.rule("4. the whole test set on the accelerator vs onnxruntime, every layer")
    code = cmd_simulate(argparse.Namespace(model=build_dir, inputs=test, random=None, backend=args.backend,
                                           layers=True, seed=0, json=out / "simulate.json", array=None, config=None,
                                           clock_mhz=args.clock_mhz, waveform=None, trace_sample=None))
    report = json.loads((out / "simulate.json").read_text())
    table = Table(title="bundled example: summary")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("test images", str(report["samples"]))
    table.add_row("float accuracy (onnxruntime)", f"{agree.float_correct / agree.samples:.2%}")
    table.add_row("int8 accuracy (onnxruntime)", f"{report['accuracy']['onnxruntime']:.2%}")
    table.add_row(f"hardware accuracy ({report['backend']})", f"{report['accuracy'][report['backend']]:.2%}")
    table.add_row("mismatches vs onnxruntime", f"{report['mismatches']:,} of {report['compared_elements']:,}")
    if "cycles" in report:
        table.add_row("cycles per inference", f"{report['cycles']:,.0f} (predicted {report['predicted_cycles']:,})")
        table.add_row("MAC utilisation", f"{report['utilization']:.1%}")
        table.add_row("latency", _latency_text(report).removeprefix("latency: ").removeprefix("latency "))
        table.add_row("simulation speed", f"{report['simulated_cycles_per_second']:,.0f} cycles/s, "
                                          f"{report['samples_per_second']:.1f} images/s")
    console.print(table)
    return code


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``systolix: error: ...``, exit code 2, no usage block), and ``--debug``
    accepted before or after the command (subcommand parsers are made of this class too)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="show the traceback of an unexpected error (a bug) instead of one line")

    def error(self, message: str):
        print(f"systolix: error: {_one_line(message)} (see {self.prog} --help)", file=sys.stderr)
        self.exit(2)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="systolix", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("inspect", help="per-layer shapes, geometry, parameters and MACs")
    p.add_argument("model")
    p.add_argument("--json", help="also write the table as JSON")
    p.set_defaults(func=cmd_inspect)

    p = sub.add_parser("quantize", help="int8 post-training quantization with onnxruntime's quantize_static")
    p.add_argument("model")
    p.add_argument("--calib", required=True, help="calibration samples (.npz or .npy)")
    p.add_argument("-o", "--output", required=True, help="the quantized .onnx to write")
    p.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"])
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per channel)")
    p.add_argument("--format", default="qoperator", choices=["qoperator", "qdq"])
    p.add_argument("--activation-type", default="int8", choices=["int8", "uint8"])
    p.add_argument("--max-calib", type=int, default=None, help="use at most this many calibration samples")
    p.add_argument("--eval", help="samples (with labels y) for the float vs int8 agreement (default: --calib)")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("simulate", help="run a backend and onnxruntime, compare every element")
    p.add_argument("model", help="a quantized .onnx, or a folder written by systolix compile")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", help="samples (.npz/.npy); float samples go through the input quantization")
    src.add_argument("--random", type=int, help="N random integer input samples")
    p.add_argument("--backend", default="auto", choices=["auto", "golden", "amaranth", "verilator"],
                   help="auto (default): verilator when Verilator and a C++ compiler are available, else golden")
    p.add_argument("--array", help="accelerator preset for hardware backends: 4x4, 8x8 (default), 16x16")
    p.add_argument("--config", help="accelerator configuration JSON file (instead of --array)")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="clock for the latency figure (default: the Fmax nextpnr measured for this design)")
    p.add_argument("--waveform", help="verilator: write the waveform (.fst, or .vcd) of the first mismatching "
                                      "sample (or of --trace-sample) to this file")
    p.add_argument("--trace-sample", type=int, help="the sample --waveform records (default: first mismatch, else 0)")
    p.add_argument("--layers", action="store_true", help="compare every intermediate tensor too")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed for --random")
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("run", help="run a build folder through the UART host link (a board, or --port sim), "
                                   "compare every element with onnxruntime")
    p.add_argument("build", help="a folder written by systolix compile")
    p.add_argument("--port", default="sim", help="sim (the link top on Verilator, default) or a serial device")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", help="samples (.npz/.npy); float samples go through the input quantization")
    src.add_argument("--random", type=int, help="N random integer input samples")
    p.add_argument("--layers", action="store_true", help="step mode: compare every layer, time every instruction")
    p.add_argument("--divisor", type=int, default=10, help="--port sim: clocks per bit (default 10)")
    p.add_argument("--baud", type=int, default=3_000_000, help="serial baud rate and of the figures (3000000)")
    p.add_argument("--clock-mhz", type=float, default=None, help="clock of the figures (default 30)")
    p.add_argument("--json", help="write the report as JSON")
    p.add_argument("--seed", type=int, default=0, help="seed for --random")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("board", help="a bitstream of the UART link top for a board (ulx3s-85f), YoWASP tools")
    p.add_argument("board", help="ulx3s-85f or ulx3s-25f")
    p.add_argument("build", help="a folder written by systolix compile (its accelerator.v is used)")
    p.add_argument("-o", "--output", required=True, help="the folder for the bitstream and the logs")
    p.add_argument("--clock-mhz", type=float, default=30.0, help="PLL output from the 25 MHz oscillator (30)")
    p.add_argument("--baud", type=int, default=3_000_000, help="UART baud rate (3000000)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    p.set_defaults(func=cmd_board)

    p = sub.add_parser("compile", help="compile a model for the accelerator: Verilog, program, memory images")
    p.add_argument("model")
    p.add_argument("--calib", help="calibration data, to quantize a float model first")
    p.add_argument("--array", help="preset: 4x4, 8x8 (default), 16x16")
    p.add_argument("--config", help="accelerator configuration JSON file (instead of --array)")
    p.add_argument("-o", "--output", required=True, help="the build folder to write")
    p.add_argument("--synth", action="store_true",
                   help="then run `systolix synth BUILD --device ecp5-85f` (yosys + nextpnr, minutes)")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("synth", help="synthesise and place & route a build for an FPGA: resources, Fmax, "
                                     "critical path, latency")
    p.add_argument("build", help="a folder written by systolix compile")
    p.add_argument("--device", required=True, help="ecp5-85f, ecp5-25f or up5k")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--freq", type=float, help="nextpnr timing target in MHz (default 50)")
    p.add_argument("--force", action="store_true", help="run even if the configuration is estimated not to fit")
    p.add_argument("--json", help="also write the report (synth.json) to this file")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("demo", help="the whole flow on the bundled example model")
    p.add_argument("--out", default="out/demo", help="folder for the quantized model, the build and reports")
    p.add_argument("--array", default="8x8", help="accelerator preset (default 8x8)")
    p.add_argument("--backend", default="auto", choices=["auto", "golden", "amaranth", "verilator"])
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="clock for the latency (default: the Fmax nextpnr measured for this design)")
    p.set_defaults(func=cmd_demo)
    return parser


def _quiet_onnxruntime() -> None:
    """onnxruntime logs warnings and errors to stderr itself ([W:onnxruntime...], [E:onnxruntime...]); its
    errors reach systolix as exceptions and become one line, so only fatal messages are let through."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)


def _where(exc: BaseException) -> str:
    """``module.function`` of the innermost frame of ``exc``'s traceback."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return "?"
    frame = tb.tb_frame
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}"


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2, one line already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    debug = getattr(args, "debug", False)
    try:
        _quiet_onnxruntime()
        # A float overflow or invalid value (Inf, NaN) is an error, not a NumPy warning printed on the way.
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            return args.func(args)
    except SystolixError as exc:
        if debug:
            raise
        print(f"systolix: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("systolix: interrupted", file=sys.stderr)
        return 130
    except FloatingPointError as exc:
        if debug:
            raise
        print(f"systolix: error: {args.command}: numerical error ({_one_line(exc)} in {_where(exc)}): a weight or "
              "sample too large for float32 arithmetic? (rerun with --debug for the traceback)", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(f"systolix: error: {args.command}: internal error, a bug in systolix ({type(exc).__name__}: "
              f"{_one_line(exc)[:300]} in {_where(exc)}); rerun with --debug for the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
