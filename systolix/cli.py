"""The ``systolix`` command: inspect, quantize, simulate, compile, synth, demo.

Exit codes: 0 success (and bit-exact, for ``simulate``; fits the device, for ``synth``), 1 a mismatch
against onnxruntime (or a design that does not fit), 2 bad input (one line on stderr, nothing
half-written), 3 a bug in systolix (one line; ``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from .errors import SystolixError, raised_in
from .outputs import check_build_folder, check_output_file, check_output_folder, write_atomic
from .progress import sample_progress, stage_status

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "keras_mnist"


def _console() -> Console:
    return Console(width=max(100, Console().width))


__all__ = ["build_parser", "main", "write_atomic"]


# -- inspect ------------------------------------------------------------------------------------------
def _show_model(console: Console, model) -> None:
    """What ``inspect`` prints for an :class:`~systolix.api.Model`."""
    for line in model.normalized:
        console.print(f"normalised: {line}", markup=False)
    console.print(model.table())
    for line in model.host_ops:
        console.print(f"host: {line}")
    for line in model.converted_lines:
        console.print(f"converted to integer: {line}", markup=False, highlight=False)


def cmd_inspect(args: argparse.Namespace) -> int:
    from . import api

    if args.json:
        check_output_file(args.json, "--json", inputs=(args.model,))
    model = api.load(args.model)
    _show_model(_console(), model)
    if args.json:
        write_atomic(args.json, json.dumps(model.to_json(), indent=2))
    return 0


# -- quantize -----------------------------------------------------------------------------------------
def cmd_quantize(args: argparse.Namespace) -> int:
    _quantize(_console(), args.model, args.calib, args.output, method=args.method, per_channel=not args.per_tensor,
              format=args.format, activation_type=args.activation_type, max_calib=args.max_calib, eval_data=args.eval)
    return 0


def _quantize(console: Console, model, calib, output, **options):
    """Quantize (:func:`systolix.api.quantize`), print the summary and the float vs int8 agreement table; return
    the quantized :class:`~systolix.api.Model`.

    The output path is checked before anything else (with the command's option name in the message).
    """
    from . import api
    from .quantize.ptq import QuantizationWarning

    check_output_file(output, "-o", inputs=(getattr(model, "path", model), calib, options.get("eval_data")))
    with stage_status(console, f"quantizing {getattr(model, 'path', model)}") as status, warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # printed below as a note
        quantized = api.quantize(model, calib, output, progress=status.update, **options)
    _show_quantization(console, quantized.quantization)
    return quantized


def _show_quantization(console: Console, summary) -> None:
    """The quantization summary lines and the float vs int8 table of a :class:`~systolix.api.Quantization`."""
    for line in summary.lines():
        red = line == "integer-exact on any x86 CPU: NO"
        console.print(line, style="red" if red else None)
    if summary.table() is not None:
        console.print(summary.table())


# -- simulate -----------------------------------------------------------------------------------------
def summary_table(result) -> Table:
    cmp = result.comparison
    table = Table(title=f"{result.model}: {result.backend} vs onnxruntime")
    table.add_column("tensor")
    table.add_column("op")
    table.add_column("elements", justify="right")
    table.add_column("mismatches", justify="right")
    table.columns[0].overflow = "fold"
    short = _short_names(result)
    for layer in cmp.layers:
        style = "red" if layer.mismatches else None
        table.add_row(short.get(layer.name, layer.name), layer.op, f"{layer.elements:,}", f"{layer.mismatches:,}",
                      style=style)
    table.add_section()
    verdict = "BIT-EXACT" if result.bit_exact else "MISMATCH"
    table.add_row(f"{cmp.samples} samples", verdict, f"{cmp.elements:,}", f"{cmp.mismatches:,}",
                  style="bold green" if result.bit_exact else "bold red")
    return table


def _short_names(result) -> dict[str, str]:
    """Short unique names (:func:`~systolix.frontend.names.short_names`) for every name a simulation's tables
    show; the JSON report keeps the full ones."""
    from .frontend.names import short_names

    names = [layer.name for layer in result.comparison.layers]
    names += [d.node or d.name for d in result.float_execution]
    if result.hardware is not None:
        names += [layer["name"] for layer in result.hardware["hardware_layers"]]
    return short_names(names)


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
    table.columns[0].overflow = "fold"
    short = _short_names(result)
    for d in result.float_execution:
        if d.differing or d.float_in_original or d.op == "graph output":
            table.add_row(short[d.node or d.name], d.op, "yes" if d.float_in_original else "", f"{d.elements:,}",
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
    from .sim.simulate import latency_text

    return latency_text(hw)


def hardware_table(result) -> Table:
    hw = result.hardware
    table = Table(title=f"measured on {result.backend}: {hw['config']['rows']}x{hw['config']['cols']} array")
    for col in ("layer", "op", "MACs", "cycles", "predicted", "utilization"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    table.columns[0].overflow = "fold"
    short = _short_names(result)
    for layer in hw["hardware_layers"]:
        table.add_row(short[layer["name"]], layer["op"], f"{layer['macs']:,}", f"{layer['cycles']:,.0f}",
                      f"{layer['predicted_cycles']:,}", f"{layer['utilization']:.1%}")
    table.add_section()
    table.add_row("total", "", f"{sum(x['macs'] for x in hw['hardware_layers']):,}", f"{hw['cycles']:,.0f}",
                  f"{hw['predicted_cycles']:,}", f"{hw['utilization']:.1%}", style="bold")
    table.caption = f"{_latency_text(hw)}; simulated {hw['simulated_cycles_per_second']:,.0f} cycles/s, " \
                    f"{hw['samples_per_second']:.3g} samples/s"
    return table


def _show_simulation(console: Console, result) -> None:
    """What ``simulate`` prints for a :class:`~systolix.sim.simulate.SimulationResult`."""
    for line in result.normalized:
        console.print(f"normalised: {line}", markup=False)
    for line in result.input_notes:
        console.print(f"inputs: {line}", markup=False, highlight=False)
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
    wave = result.waveform
    if wave is not None:
        what = f"layer {wave['layer']}" if wave["layer"] else "the whole inference"
        depth = f", {wave['depth']} hierarchy level(s)" if wave["depth"] else ""
        console.print(f"waveform: {wave['path']} ({wave['bytes'] / 1e6:,.1f} MB): sample {wave['sample']}, {what}"
                      f"{depth}", markup=False, highlight=False)
        if wave["bytes"] > 100e6 and not (wave["layer"] and wave["depth"]):
            console.print("waveform: large; --trace-layer NAME and --trace-depth N record less", markup=False,
                          highlight=False)
    console.print("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))


def _simulate(console: Console, target, *, json_path=None, waveform=None, inputs=None, html_path=None,
              html_extra: dict | None = None, **options):
    """Simulate (:func:`systolix.api.simulate`) with a progress bar, print the tables, write the JSON report
    and the HTML report (with ``html_extra``: :class:`~systolix.html_report.HtmlReport` fields); return the
    :class:`~systolix.api.Simulation`. Output paths are checked first."""
    from . import api

    for option, path in (("json", json_path), ("waveform", waveform), ("html", html_path)):
        if path:
            check_output_file(path, f"--{option}", inputs=(getattr(target, "folder", target), inputs))
    with sample_progress(console) as bar:
        simulation = api.simulate(target, inputs, waveform=waveform, progress=bar.update, **options)
    _show_simulation(console, simulation.result)
    if json_path:
        write_atomic(json_path, json.dumps(simulation.report, indent=2))
    if html_path:
        _write_html(html_path, target, simulation.report, **(html_extra or {}))
    return simulation


def _write_html(path, target, simulation: dict | None = None, **extra) -> None:
    """Write the HTML report of a build folder or a model file (:mod:`systolix.html_report`)."""
    from .html_report import for_build, for_model, write_html

    folder = getattr(target, "folder", None)
    if folder is None and not hasattr(target, "path") and Path(target).is_dir():
        folder = Path(target)
    if folder is not None:
        report = for_build(folder, simulation=simulation, **extra)
    else:
        report = for_model(getattr(target, "path", target), simulation, **extra)
    write_html(path, report)


def cmd_simulate(args: argparse.Namespace) -> int:
    console = _console()
    for option in ("json", "waveform", "html"):  # before reading a configuration file
        if getattr(args, option, None):
            check_output_file(getattr(args, option), f"--{option}", inputs=(args.model, args.inputs))
    simulation = _simulate(console, args.model, json_path=args.json, waveform=args.waveform, inputs=args.inputs,
                           html_path=args.html,
                           random=args.random, backend=args.backend, layers=args.layers, seed=args.seed,
                           config=_config(args, None), clock_mhz=args.clock_mhz, trace_sample=args.trace_sample,
                           trace_layer=args.trace_layer, trace_depth=args.trace_depth)
    return 0 if simulation.bit_exact else 1


def _report(console: Console, result, json_path, extra: dict | None = None) -> int:
    """Print a simulation result as ``simulate`` does, write ``json_path`` (with ``extra``); the exit code."""
    _show_simulation(console, result)
    if json_path:
        write_atomic(json_path, json.dumps({**result.to_json(), **(extra or {})}, indent=2))
    return 0 if result.bit_exact else 1


# -- run ---------------------------------------------------------------------------------------------
def cmd_run(args: argparse.Namespace) -> int:
    from .run import link_text, run_build

    if args.json:
        check_output_file(args.json, "--json", inputs=(args.build, args.inputs))
    console = _console()
    with sample_progress(console) as bar:
        result, figures = run_build(args.build, port=args.port, inputs=args.inputs, random=args.random,
                                    seed=args.seed, layers=args.layers, divisor=args.divisor, baud=args.baud,
                                    clock_mhz=args.clock_mhz, progress=bar.update)
    code = _report(console, result, args.json, {"link": figures})
    console.print(link_text(figures), markup=False, highlight=False)
    return code


def cmd_board(args: argparse.Namespace) -> int:
    from .board import build_board, get_board

    get_board(args.board)  # an unknown board before anything else
    check_output_folder(args.output, "-o")
    console = _console()
    with stage_status(console, f"building the {args.board} bitstream for {args.build} (yosys, nextpnr: minutes)"):
        record = build_board(args.board, args.build, args.output, clock_mhz=args.clock_mhz, baud=args.baud,
                             seed=args.seed, force=args.force)
    fmax = f"{record['fmax_mhz']:.1f} MHz" if record["fmax_mhz"] else "not reported"
    used = ", ".join(f"{name} {r['used']:,}/{r['available']:,}" for name, r in record["resources"].items())
    console.print(f"wrote {record['bitstream']}: {record['clock_mhz']:g} MHz (Fmax {fmax}), UART {record['baud']:,} "
                  f"baud (divisor {record['divisor']}), {used}, {record['seconds']:.0f} s", markup=False,
                  highlight=False)
    if not record["meets_clock"]:
        console.print(f"timing not met: the clock is {record['clock_mhz']:g} MHz, nextpnr reports Fmax {fmax} "
                      "(lower --clock-mhz)", markup=False, highlight=False)
        return 1
    console.print(f"program: {record['program']}", markup=False, highlight=False)
    return 0


# -- compile ------------------------------------------------------------------------------------------
def _compile(console: Console, model, output, config, *, calib=None, device: str | None = None,
             notes: list[str] | None = None):
    """Compile (:func:`systolix.api.build`) and print the per-layer table; return the :class:`~systolix.api.Build`.
    With ``device`` the configuration is sized to that FPGA (one line says which, also appended to ``notes``)."""
    from . import api

    check_build_folder(output, "-o")
    label = getattr(model, "path", model)
    what = device if device is not None else f"{config.rows}x{config.cols}"
    with stage_status(console, f"compiling {label} for {what}"):
        build = api.build(model, output, config, calib=calib, device=device)
    if build.quantization is not None:  # quantized first: the summary `systolix quantize` prints
        _show_quantization(console, build.quantization)
    if device is not None:
        from .arch.config import AcceleratorConfig
        from .compiler.device_fit import describe

        config = AcceleratorConfig.from_file(build.folder / "config.json")
        line = describe(config, device)
        console.print(line, markup=False, highlight=False)
        if notes is not None:
            notes.append(line)
    console.print(build.table(title=f"{label} on a {config.rows}x{config.cols} array"))
    console.print(f"predicted {build.predicted_cycles:,} cycles per inference; wrote {build.folder}/: "
                  + ", ".join(build.files))
    return build


def cmd_compile(args: argparse.Namespace) -> int:
    check_build_folder(args.output, "-o")
    if args.html:
        check_output_file(args.html, "--html", inputs=(args.model, args.calib))
    console = _console()
    device = getattr(args, "device", None)
    if device is not None and (args.array or args.config):
        raise SystolixError("--device sizes the configuration to the FPGA: it cannot be combined with --array or "
                            "--config")
    config = None if device is not None else _config(args)
    notes: list[str] = []
    build = _compile(console, args.model, args.output, config, calib=args.calib, device=device, notes=notes)
    code = 0
    if args.synth:  # the old yosys-only check, now the whole flow of `systolix synth`
        target = device or "ecp5-85f"
        console.print(f"--synth: systolix synth {build.folder} --device {target}", markup=False, highlight=False)
        code = _synth(console, build.folder, target)
    if args.html:  # after --synth, so the report shows its resources and Fmax
        _write_html(args.html, build, notes=notes)
    return code


# -- synth -------------------------------------------------------------------------------------------
def _synth(console: Console, build, device: str, *, seed: int = 1, freq: float | None = None, force: bool = False,
           json_path=None) -> int:
    from . import api
    from .synth import result_table, result_text

    if json_path:
        check_output_file(json_path, "--json")
    with stage_status(console, f"synthesising {build} for {device}") as status:
        result = api.synth(build, device, seed=seed, freq=freq, force=force,
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
    from . import api

    out = check_output_folder(args.out, "--out")
    config = _config(args)
    model_path, calib, test = EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", EXAMPLE / "test.npz"
    quantized_path, build_dir, report_path = out / "model_int8.onnx", out / f"build_{args.array}", out / "simulate.json"
    html_path = out / "simulate.html"
    out.mkdir(parents=True, exist_ok=True)
    for path in (quantized_path, report_path, html_path):  # every output, before any work
        check_output_file(path, "--out")
    check_build_folder(build_dir, "--out")
    console = _console()
    console.rule("1. inspect the float model")
    model = api.load(model_path)
    _show_model(console, model)
    console.rule("2. quantize to int8 (calibration set)")
    quantized = _quantize(console, model, calib, quantized_path, eval_data=test)
    console.rule(f"3. compile for the {args.array} accelerator")
    build = _compile(console, quantized, build_dir, config)
    console.rule("4. the whole test set on the accelerator vs onnxruntime, every layer")
    simulation = _simulate(console, build, json_path=report_path, inputs=test, backend=args.backend, layers=True,
                           clock_mhz=args.clock_mhz)
    agree, report = quantized.quantization.agreement, simulation.report
    rows = _demo_summary(agree, report)
    table = Table(title="bundled example: summary")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    q = quantized.quantization
    _write_html(html_path, build, report, summary=rows,
                quantization={"lines": q.lines(), "agreement": dataclasses.asdict(agree),
                              "evaluated_on": q.evaluated_on})
    console.print(f"wrote {report_path} and {html_path}", markup=False, highlight=False)
    return 0 if simulation.bit_exact else 1


def _demo_summary(agree, report: dict) -> list[tuple[str, str]]:
    """The rows of the demo's summary table (measure, value)."""
    rows = [("test images", str(report["samples"])),
            ("float accuracy (onnxruntime)", f"{agree.float_correct / agree.samples:.2%}"),
            ("int8 accuracy (onnxruntime)", f"{report['accuracy']['onnxruntime']:.2%}"),
            (f"hardware accuracy ({report['backend']})", f"{report['accuracy'][report['backend']]:.2%}"),
            ("mismatches vs onnxruntime", f"{report['mismatches']:,} of {report['compared_elements']:,}")]
    if "cycles" in report:
        rows += [("cycles per inference", f"{report['cycles']:,.0f} (predicted {report['predicted_cycles']:,})"),
                 ("MAC utilisation", f"{report['utilization']:.1%}"),
                 ("latency", _latency_text(report).removeprefix("latency: ").removeprefix("latency ")),
                 ("simulation speed", f"{report['simulated_cycles_per_second']:,.0f} cycles/s, "
                                      f"{report['samples_per_second']:.1f} images/s")]
    return rows


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


#: One plain-text line per command (fits the 80-column ``systolix --help``).
COMMANDS = {
    "inspect": "show each layer: shapes, geometry, parameters, MACs",
    "quantize": "int8 post-training quantization with onnxruntime",
    "simulate": "run a backend and onnxruntime, compare every element",
    "compile": "compile for the accelerator: Verilog, program, images",
    "synth": "synthesise, place & route: resources, Fmax, latency",
    "demo": "the whole flow on the bundled example model",
    "run": "run a build over the UART link: a board or --port sim",
    "board": "a bitstream for ULX3S, OrangeCrab or iCEBreaker",
}

#: The description at the top of each command's --help.
DESCRIPTIONS = {
    "inspect": "Show every layer of an ONNX model: shapes, kernel geometry, parameters, MACs and where it runs.",
    "quantize": "Quantize a float ONNX model to int8 with onnxruntime's quantize_static and a calibration set, and\n"
                "compare the float and int8 models' top-1 results.",
    "simulate": "Run a quantized model, or exactly what a build folder holds, on a backend and onnxruntime, and\n"
                "compare every output element (every layer's with --layers). Exit code 1 on any mismatch.",
    "compile": "Compile a quantized model (or a float one with --calib) for the accelerator into a build folder:\n"
               "Verilog, program, memory images, report.",
    "synth": "Synthesise (yosys) and place & route (nextpnr) a build folder for an FPGA: resources, Fmax,\n"
             "critical path, latency per inference. Exit code 1 when it does not fit.",
    "demo": "The whole flow on the bundled example model: inspect, quantize, compile, simulate the test set\n"
            "on the accelerator's RTL, every layer compared with onnxruntime.",
    "run": "Run a build folder through the UART host link: load it, run every sample, read the outputs and\n"
           "cycle counter, compare every element with onnxruntime as simulate does. --port sim drives the\n"
           "link top on Verilator through a simulated UART.",
    "board": "Build a bitstream of the UART link top around a build folder's accelerator for a board\n"
             "(amaranth-boards platform, PLL, YoWASP yosys/nextpnr/ecppack or icepack) and print how to program\n"
             "it. A configuration estimated not to fit the board's FPGA is refused (exit code 2). Exit code 1\n"
             "when the PLL clock is above the Fmax after routing.",
}

EPILOG = """\
exit codes:
  0  success (simulate: bit-exact with onnxruntime; synth: the design fits the device)
  1  simulate: a mismatch against onnxruntime; synth: the design does not fit
  2  bad input: one line on stderr, nothing half-written
  3  an internal error, a bug in systolix (--debug shows the traceback)

examples:
  systolix quantize model.onnx --calib calib.npz -o model_int8.onnx
  systolix compile model_int8.onnx --array 8x8 -o build_8x8
  systolix simulate build_8x8 --inputs test.npz --layers --json report.json
"""

#: A few examples per command, in its --help.
EXAMPLES = {
    "inspect": ["systolix inspect model.onnx", "systolix inspect model_int8.onnx --json layers.json"],
    "quantize": ["systolix quantize model.onnx --calib calib.npz -o model_int8.onnx",
                 "systolix quantize model.onnx --calib calib.npz --method entropy --eval test.npz -o q.onnx"],
    "simulate": ["systolix simulate build_8x8 --inputs test.npz --layers",
                 "systolix simulate model_int8.onnx --random 20 --backend golden --json report.json",
                 "systolix simulate build_8x8 --inputs test.npz --layers --html report.html"],
    "compile": ["systolix compile model_int8.onnx --array 8x8 -o build_8x8",
                "systolix compile model.onnx --calib calib.npz --config my_config.json -o build",
                "systolix compile model_int8.onnx --array 4x4 -o build_4x4 --html build_4x4.html"],
    "synth": ["systolix synth build_8x8 --device ecp5-85f"],
    "demo": ["systolix demo", "systolix demo --array 4x4 --out out/demo4"],
    "run": ["systolix run build_4x4 --port sim --inputs test.npz", "systolix run build_8x8 --port /dev/ttyUSB0 "
            "--random 10"],
    "board": ["systolix board ulx3s-85f build_4x4 -o board_4x4",
              "systolix board orangecrab-25f build_25f -o board_25f --baud 1000000"],
}

BACKENDS = ["auto", "golden", "amaranth", "verilator"]
BACKEND_HELP = ("auto (default): verilator when Verilator and a C++ compiler are available, else golden; golden: the "
                "NumPy integer model; amaranth: the RTL on Amaranth's simulator (slow); verilator: the RTL compiled "
                "by Verilator")


def _command(sub, name: str, func) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "".join(f"  {line}\n" for line in EXAMPLES[name])
    parser = sub.add_parser(name, help=COMMANDS[name], description=DESCRIPTIONS[name], epilog=epilog,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(func=func)
    return parser


def _configuration(parser: argparse.ArgumentParser, array_help: str) -> None:
    """``--array NAME`` or ``--config FILE``, not both."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--array", metavar="PRESET", help=array_help)
    group.add_argument("--config", metavar="FILE", help="accelerator configuration JSON file (instead of --array)")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = _Parser(prog="systolix", description="Turn a trained ONNX CNN into an int8 systolic-array accelerator "
                                                  "for small FPGAs,\nand prove by simulation that it computes exactly "
                                                  "what onnxruntime computes.",
                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"systolix {__version__}",
                        help="show the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, title="commands")

    p = _command(sub, "inspect", cmd_inspect)
    p.add_argument("model", help="the ONNX model (float, or quantized: QDQ or QOperator)")
    p.add_argument("--json", metavar="FILE", help="also write the table as JSON")

    p = _command(sub, "quantize", cmd_quantize)
    p.add_argument("model", help="the float32 ONNX model (one input)")
    p.add_argument("--calib", required=True, metavar="DATA", help="calibration samples (.npz or .npy)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.onnx", help="the quantized .onnx to write")
    p.add_argument("--method", default="minmax", choices=["minmax", "entropy", "percentile"],
                   help="calibration: minmax (default), entropy (histogram + KL divergence) or percentile")
    p.add_argument("--per-tensor", action="store_true", help="per-tensor weight scales (default per channel)")
    p.add_argument("--format", default="qoperator", choices=["qoperator", "qdq"],
                   help="qoperator (default: QLinearConv, QGemm, ..., integer-exact on any x86 CPU) or qdq "
                        "(QuantizeLinear/DequantizeLinear pairs around float ops)")
    p.add_argument("--activation-type", default="int8", choices=["int8", "uint8"],
                   help="activation type: int8 (default, exact on any x86 CPU) or uint8")
    p.add_argument("--max-calib", type=int, default=None, metavar="N",
                   help="use at most this many calibration samples")
    p.add_argument("--eval", metavar="DATA",
                   help="samples (with labels y) for the float vs int8 agreement (default: --calib)")

    p = _command(sub, "simulate", cmd_simulate)
    p.add_argument("model", help="a quantized .onnx, or a folder written by systolix compile")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--inputs", metavar="DATA",
                     help="samples (.npz/.npy); float samples go through the input quantization")
    src.add_argument("--random", type=int, metavar="N", help="N random integer input samples")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    _configuration(p, "accelerator preset for hardware backends: 4x4, 8x8 (default), 16x16 (not for a build folder)")
    p.add_argument("--clock-mhz", type=float, default=None, metavar="F",
                   help="clock for the latency figure (default: the Fmax nextpnr measured for this design)")
    p.add_argument("--waveform", metavar="FILE", help="verilator: write the waveform (.fst, or .vcd) of the first "
                                                      "mismatching sample (or of --trace-sample) to this file")
    p.add_argument("--trace-sample", type=int, metavar="K",
                   help="the sample --waveform records (default: first mismatch, else 0)")
    p.add_argument("--trace-layer", metavar="NAME",
                   help="--waveform records only the cycles of this layer (a name from systolix inspect)")
    p.add_argument("--trace-depth", type=int, metavar="N",
                   help="--waveform records only N levels of the module hierarchy (1: the top level)")
    p.add_argument("--layers", action="store_true", help="compare every intermediate tensor too")
    p.add_argument("--json", metavar="FILE", help="write the report as JSON")
    p.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML page (tables, "
                                                  "plots, the layer graph; a mismatch heat map)")
    p.add_argument("--seed", type=int, default=0, help="seed for --random (default 0)")

    p = _command(sub, "run", cmd_run)
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

    p = _command(sub, "board", cmd_board)
    p.add_argument("board", help="ulx3s-85f, ulx3s-25f, orangecrab-25f, orangecrab-85f or icebreaker")
    p.add_argument("build", help="a folder written by systolix compile (its accelerator.v is used)")
    p.add_argument("-o", "--output", required=True, help="the folder for the bitstream and the logs")
    p.add_argument("--clock-mhz", type=float, default=None,
                   help="PLL output from the board's oscillator (default 30; icebreaker 24)")
    p.add_argument("--baud", type=int, default=3_000_000, help="UART baud rate (3000000)")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed")
    p.add_argument("--force", action="store_true", help="build even if the configuration is estimated not to fit")

    p = _command(sub, "compile", cmd_compile)
    p.add_argument("model", help="a quantized ONNX model, or a float one with --calib")
    p.add_argument("--calib", metavar="DATA", help="calibration data, to quantize a float model first")
    _configuration(p, "accelerator preset: 4x4, 8x8 (default), 16x16")
    p.add_argument("--device", metavar="FPGA", help="ecp5-85f, ecp5-25f or up5k: the largest array whose logic fits "
                   "the FPGA, memories sized to the model (refused only when the model exceeds the device)")
    p.add_argument("-o", "--output", required=True, metavar="BUILD", help="the build folder to write")
    p.add_argument("--synth", action="store_true",
                   help="then run systolix synth BUILD --device ecp5-85f, or --device (yosys + nextpnr, minutes)")
    p.add_argument("--html", metavar="FILE", help="write the build's report as one self-contained HTML page "
                                                  "(layers, the compiler's plan, buffer use, synthesis results)")

    p = _command(sub, "synth", cmd_synth)
    p.add_argument("build", help="a folder written by systolix compile")
    p.add_argument("--device", required=True, help="ecp5-85f, ecp5-25f or up5k")
    p.add_argument("--seed", type=int, default=1, help="nextpnr placer seed (default 1)")
    p.add_argument("--freq", type=float, metavar="MHZ", help="nextpnr timing target in MHz (default 50)")
    p.add_argument("--force", action="store_true", help="run even if the configuration is estimated not to fit")
    p.add_argument("--json", metavar="FILE", help="also write the report (synth.json) to this file")

    p = _command(sub, "demo", cmd_demo)
    p.add_argument("--out", default="out/demo", metavar="FOLDER",
                   help="folder for the quantized model, the build and the reports: simulate.json, "
                        "simulate.html (default out/demo)")
    p.add_argument("--array", default="8x8", metavar="PRESET", help="accelerator preset: 4x4, 8x8 (default), 16x16")
    p.add_argument("--backend", default="auto", choices=BACKENDS, help=BACKEND_HELP)
    p.add_argument("--clock-mhz", type=float, default=None, metavar="F",
                   help="clock for the latency (default: the Fmax nextpnr measured for this design)")
    return parser


def _quiet_onnxruntime() -> None:
    """onnxruntime logs warnings and errors to stderr itself ([W:onnxruntime...], [E:onnxruntime...]); its
    errors reach systolix as exceptions and become one line, so only fatal messages are let through."""
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)


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
        print(f"systolix: error: {args.command}: numerical error ({_one_line(exc)} in {raised_in(exc)}): a weight or "
              "sample too large for float32 arithmetic? (rerun with --debug for the traceback)", file=sys.stderr)
        return 2
    except Exception as exc:
        if debug:
            raise
        print(f"systolix: error: {args.command}: internal error, a bug in systolix ({type(exc).__name__}: "
              f"{_one_line(exc)[:300]} in {raised_in(exc)}); rerun with --debug for the traceback", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
