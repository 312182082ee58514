"""The Python API: the whole flow of the ``systolix`` command, as objects for scripts and notebooks.

A float ONNX model is loaded, quantized to int8, compiled for the accelerator into a build folder and
simulated, and every output element is compared with onnxruntime::

    import systolix

    model = systolix.load("model.onnx")           # what `systolix inspect` shows: model.summary()
    q = model.quantize("calib.npz", out="model_int8.onnx")
    build = q.compile(config="4x4", out="build_4x4")
    result = build.simulate(inputs="test.npz", backend="verilator", layers=True)
    assert result.bit_exact, result.first_mismatch
    print(result.cycles, result.report["utilization"])

The command-line interface (:mod:`systolix.cli`) is a thin layer over these functions: each command
calls one of them and prints what it returns.

Nothing here prints. A user error (a bad model, bad data, a bad option, an output path that cannot be
written, a layer that does not fit) raises :class:`systolix.SystolixError` with a one-line message, and
leaves no half-written file behind; any other exception is a bug in systolix. Every output path is
checked before any work and written under a temporary name, renamed on success
(:mod:`systolix.outputs`).

Samples (calibration data, evaluation data, simulation inputs) are given as an ``.npz``/``.npy`` file
(see :mod:`systolix.quantize.datasets` for the rules), a NumPy array of samples (batch first), or a pair
``(x, y)`` of samples and integer labels.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from .arch.config import PRESETS, AcceleratorConfig
from .errors import SystolixError, raised_in
from .outputs import check_build_folder, check_output_file, temporary_beside

if TYPE_CHECKING:
    from rich.table import Table

    from .frontend.importer import Imported
    from .frontend.ir import Model as IRModel
    from .quantize.ptq import Agreement, QuantizeResult
    from .sim.simulate import SimulationResult
    from .synth import SynthResult

__all__ = ["Build", "Model", "Quantization", "Simulation", "build", "load", "open_build", "quantize", "simulate",
           "synth"]

#: Samples: an ``.npz``/``.npy`` file, an array of samples (batch first), or ``(samples, labels)``.
Samples = str | os.PathLike | np.ndarray | tuple[np.ndarray, np.ndarray]
#: An accelerator configuration: a preset name (``"4x4"``, ``"8x8"``, ``"16x16"``), a JSON file (a
#: :class:`pathlib.Path`, or a string ending in ``.json``), or an :class:`~systolix.arch.config.AcceleratorConfig`.
ConfigLike = str | os.PathLike | AcceleratorConfig
Backend = Literal["auto", "golden", "amaranth", "verilator"]
#: ``progress(stage, done, total)``: called as samples complete (simulation).
SampleProgress = Callable[[str, int, int], None]
#: ``progress(message)``: called when a stage starts (quantization, synthesis).
StageProgress = Callable[[str], None]


# -- helpers -------------------------------------------------------------------------------------------
def _numerics(function: Callable) -> Callable:
    """Run an API function with NumPy float errors raised, and turned into a one-line :class:`SystolixError`: an
    overflow or invalid value in a user's weights or samples is bad input, not a warning printed on the way."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with np.errstate(divide="raise", over="raise", invalid="raise"):
                return function(*args, **kwargs)
        except FloatingPointError as exc:
            raise SystolixError(f"{function.__name__}: numerical error ({exc} in {raised_in(exc)}): a weight or "
                                "sample too large for float32 arithmetic?") from exc

    return wrapper


def _text(*renderables: Any, width: int = 120) -> str:
    """Plain text of rich renderables (tables, lines), as the command prints them without colours."""
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, force_terminal=False, highlight=False)
    for item in renderables:
        console.print(item, markup=False) if isinstance(item, str) else console.print(item)
    return buffer.getvalue()


@contextlib.contextmanager
def _as_file(data: Samples | None, what: str) -> Iterator[Path | None]:
    """A file for ``data``: the path itself, or arrays written to a temporary ``.npz`` (removed afterwards)."""
    if data is None or isinstance(data, str | os.PathLike):
        yield None if data is None else Path(data)
        return
    if isinstance(data, tuple) and len(data) == 2:
        arrays = {"x": np.asarray(data[0]), "y": np.asarray(data[1])}
    elif isinstance(data, np.ndarray):
        arrays = {"x": data}
    else:
        raise SystolixError(f"{what}: give a .npz/.npy file, an array of samples or a pair (samples, labels), "
                            f"not {type(data).__name__}")
    with tempfile.TemporaryDirectory(prefix="systolix-") as folder:
        path = Path(folder) / f"{what}.npz"
        np.savez(path, **arrays)
        yield path


def _config(config: ConfigLike | None, default: str | None = "8x8") -> AcceleratorConfig | None:
    """An :class:`AcceleratorConfig` from a preset name, a JSON file or a configuration (``None``: ``default``)."""
    if config is None:
        return None if default is None else AcceleratorConfig.preset(default)
    if isinstance(config, AcceleratorConfig):
        return config
    if isinstance(config, os.PathLike) or (isinstance(config, str) and config not in PRESETS
                                           and (config.endswith(".json") or Path(config).is_file())):
        return AcceleratorConfig.from_file(config)
    if isinstance(config, str):
        return AcceleratorConfig.preset(config)
    raise SystolixError(f"config: give a preset name ({', '.join(PRESETS)}), a JSON file or an AcceleratorConfig, "
                        f"not {type(config).__name__}")


# -- models --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Quantization:
    """What :meth:`Model.quantize` did: onnxruntime's quantization and the float vs int8 agreement.

    Attributes
    ----------
    result : systolix.quantize.ptq.QuantizeResult
        The configuration used (method, format, types, per-channel), calibration samples, time, op counts,
        whether onnxruntime computes it exactly on any x86 CPU, and notes.
    agreement : systolix.quantize.ptq.Agreement or None
        Top-1 agreement (and accuracies, with labels) of the float and the quantized model on the
        evaluation data; ``None`` when it was not asked for.
    evaluated_on : str or None
        The evaluation data (a file name, or ``"arrays"``).
    """

    result: QuantizeResult
    agreement: Agreement | None = None
    evaluated_on: str | None = None

    @property
    def exact_on_any_x86(self) -> bool:
        """onnxruntime computes every quantized node with exact integer sums on any x86 CPU."""
        return self.result.exact_on_any_x86

    @property
    def notes(self) -> tuple[str, ...]:
        """Remarks (float layers left, precision caveats), one line each."""
        return self.result.notes

    def lines(self) -> list[str]:
        """The summary lines ``systolix quantize`` prints before the agreement table."""
        r = self.result
        return [f"wrote {r.out_path}: {r.calib_samples} calibration samples, {r.method}, {r.activation_type} "
                f"activations x {r.weight_type} {'per-channel' if r.per_channel else 'per-tensor'} weights, "
                f"{r.quant_format}, {r.seconds:.1f} s",
                "ops: " + ", ".join(f"{op} x{n}" for op, n in r.op_counts.items()),
                "integer-exact on any x86 CPU: " + ("yes" if r.exact_on_any_x86 else "NO"),
                *(f"note: {note}" for note in r.notes)]

    def table(self) -> Table | None:
        """The float vs int8 agreement as a rich table (``None`` without an agreement)."""
        from .quantize.ptq import agreement_table

        if self.agreement is None:
            return None
        return agreement_table(self.agreement, title=f"float vs int8 on {self.evaluated_on}")

    def summary(self) -> str:
        """What ``systolix quantize`` prints, as plain text."""
        table = self.table()
        return _text(*self.lines(), *([] if table is None else [table]))


class Model:
    """An ONNX model as systolix imports it (float, or quantized in its integer canonical form).

    Made by :func:`load` (or returned by :meth:`quantize`); not constructed directly.

    Attributes
    ----------
    path : pathlib.Path
        The ONNX file.
    quantization : Quantization or None
        For a model returned by :meth:`quantize`: what the quantization did.
    """

    def __init__(self, path: str | os.PathLike, imported: Imported | None = None,
                 quantization: Quantization | None = None) -> None:
        self.path = Path(path)
        self._imported = imported
        self._where: dict[str, str] | None = None
        self.quantization = quantization

    def __repr__(self) -> str:
        kind = "quantized" if self.quantized else "float"
        return f"<systolix.Model {self.name!r}: {kind}, {len(self.ir.layers)} layers, {self.macs:,} MACs>"

    # the import ---------------------------------------------------------------------------------------
    @property
    def imported(self) -> Imported:
        """The import (:class:`systolix.frontend.importer.Imported`): the layer IR and the reference model."""
        if self._imported is None:
            from .frontend.importer import import_model

            self._imported = import_model(self.path)
        return self._imported

    @property
    def ir(self) -> IRModel:
        """The typed layer IR (:class:`systolix.frontend.ir.Model`)."""
        return self.imported.ir

    @property
    def name(self) -> str:
        """The model's name (its file name)."""
        return self.ir.name

    @property
    def quantized(self) -> bool:
        """True for a quantized model (QDQ or QOperator), shown in its integer canonical form."""
        return self.ir.quantized

    @property
    def params(self) -> int:
        """Parameters (weights and biases) of all layers."""
        return self.ir.params

    @property
    def macs(self) -> int:
        """Multiply-accumulates per inference."""
        return self.ir.macs

    @property
    def runs_on(self) -> dict[str, str]:
        """Layer name -> where it runs (``"array"``, ``"vector (...)"``, ``"host (...)"``, ``"refused: why"``)."""
        if self._where is None:
            from .compiler.where import runs_on

            self._where = runs_on(self.ir)
        return self._where

    @property
    def layers(self) -> list[dict]:
        """One dict per layer, the rows ``systolix inspect`` shows: ``runs_on``, ``name``, ``op``, ``kind``,
        ``input``, ``output``, ``geometry``, ``params``, ``macs``, ``host``."""
        from .frontend.inspect import layer_rows

        return layer_rows(self.ir, self.runs_on)

    @property
    def normalized(self) -> tuple[str, ...]:
        """What the normaliser changed before import (opset upgrades, ...), one line each."""
        return self.imported.normalized

    @property
    def host_ops(self) -> tuple[str, ...]:
        """Operations left to the host (input quantization, output dequantization and Softmax)."""
        return self.ir.host_ops

    @property
    def converted(self) -> tuple[str, ...]:
        """Layers onnxruntime runs in float, converted to their integer meaning (quantized models)."""
        return self.ir.converted

    @property
    def converted_lines(self) -> list[str]:
        """:attr:`converted` for a reader: one line per reason, the layers' short unique names."""
        from .frontend.inspect import converted_lines

        return converted_lines(self.ir)

    def table(self) -> Table:
        """The ``systolix inspect`` table (a :class:`rich.table.Table`)."""
        from .frontend.inspect import inspect_table

        return inspect_table(self.ir, self.runs_on)

    def summary(self) -> str:
        """What ``systolix inspect`` shows, as plain text: normaliser notes, the layer table, host and
        converted layers."""
        return _text(*(f"normalised: {line}" for line in self.normalized), self.table(),
                     *(f"host: {line}" for line in self.host_ops),
                     *(f"converted to integer: {line}" for line in self.converted_lines))

    def to_json(self) -> dict:
        """The report ``systolix inspect --json`` writes: ``model``, ``quantized``, ``params``, ``macs``,
        ``layers``."""
        return {"model": self.name, "quantized": self.quantized, "params": self.params, "macs": self.macs,
                "layers": self.layers}

    # the flow -----------------------------------------------------------------------------------------
    def quantize(self, calib: Samples, out: str | os.PathLike, **options: Any) -> Model:
        """Quantize this float model to int8 with onnxruntime; see :func:`quantize` for the options.

        Returns
        -------
        Model
            The quantized model (written to ``out``), with :attr:`quantization` set.
        """
        return quantize(self, calib, out, **options)

    def compile(self, config: ConfigLike = "8x8", out: str | os.PathLike | None = None, *,
                calib: Samples | None = None) -> Build:
        """Compile this model for the accelerator into the build folder ``out``; see :func:`build`."""
        if out is None:
            raise SystolixError("compile: give out=, the build folder to write")
        return build(self, out, config, calib=calib)

    def simulate(self, inputs: Samples | None = None, *, random: int | None = None, backend: Backend = "golden",
                 layers: bool = False, seed: int = 0, config: ConfigLike | None = None,
                 progress: SampleProgress | None = None) -> Simulation:
        """Run this quantized model on a backend (default: the golden model) and onnxruntime, compare every
        element; see :func:`simulate`. Hardware backends compile it in memory for ``config`` (default 8x8)."""
        return simulate(self, inputs, random=random, backend=backend, layers=layers, seed=seed, config=config,
                        progress=progress)


@_numerics
def load(path: str | os.PathLike) -> Model:
    """Load and import an ONNX model, as ``systolix inspect`` does.

    Parameters
    ----------
    path
        A float or quantized (QDQ, QOperator) ``.onnx`` file.

    Returns
    -------
    Model
        ``.layers`` and ``.summary()`` show what ``systolix inspect`` shows; ``.quantized`` says which kind.

    Raises
    ------
    SystolixError
        A missing or unreadable file, an unsupported op (named), a dynamic shape, non-finite weights, ...
    """
    from .frontend.importer import import_model

    return Model(path, import_model(path))


@_numerics
def quantize(model: str | os.PathLike | Model, calib: Samples, out: str | os.PathLike, *,
             method: Literal["minmax", "entropy", "percentile"] = "minmax", per_channel: bool = True,
             format: Literal["qoperator", "qdq"] = "qoperator", activation_type: Literal["int8", "uint8"] = "int8",
             max_calib: int | None = None, eval_data: Samples | None = None, evaluate: bool = True,
             progress: StageProgress | None = None) -> Model:
    """Quantize a float model to int8 with onnxruntime's ``quantize_static``, as ``systolix quantize`` does.

    The output path and the model are checked, and the evaluation data read, before quantizing; the model
    is written under a temporary name beside ``out`` and renamed only when everything succeeded.

    Parameters
    ----------
    model
        The float model: a path or a :class:`Model`.
    calib
        Calibration samples (float32): a file, an array or ``(samples, labels)``.
    out
        The quantized ``.onnx`` to write (not one of the inputs).
    method
        Calibration: ``"minmax"``, ``"entropy"`` or ``"percentile"``.
    per_channel
        One weight scale per output channel (default); ``False``: per tensor.
    format
        ``"qoperator"`` (default, integer-exact on any x86 CPU) or ``"qdq"``.
    activation_type
        ``"int8"`` (default) or ``"uint8"``.
    max_calib
        Use at most this many calibration samples.
    eval_data
        Samples (with labels, for accuracies) for the float vs int8 agreement; default: ``calib``.
    evaluate
        Compute the agreement (default); ``False`` skips it.
    progress
        Called with a message as each stage starts.

    Returns
    -------
    Model
        The quantized model, its :attr:`Model.quantization` holding the summary and the agreement.

    Raises
    ------
    SystolixError
        An output path that cannot be written, a model systolix cannot import, bad data or options, or a
        model onnxruntime cannot quantize.

    Warns
    -----
    systolix.quantize.ptq.QuantizationWarning
        When onnxruntime would not compute the result exactly on every x86 CPU (QDQ, uint8 caveats).
    """
    from .quantize.ptq import agreement, model_input, quantize_model

    source = model.path if isinstance(model, Model) else Path(model)
    file_inputs = [d for d in (source, calib, eval_data) if isinstance(d, str | os.PathLike)]
    out = check_output_file(out, "out", inputs=file_inputs)
    if not isinstance(model, Model):
        from .frontend.importer import import_model

        import_model(source)  # refuses what systolix cannot run (shapes, ops, weights) before any work
    elif model.quantized:
        raise SystolixError(f"{model.name} is already quantized")
    step = progress or (lambda message: None)
    evaluated = calib if eval_data is None else eval_data
    evaluated_on = None
    if evaluate:
        evaluated_on = os.fspath(evaluated) if isinstance(evaluated, str | os.PathLike) else "arrays"
    shown = os.fspath(model.path if isinstance(model, Model) else model)
    with _as_file(calib, "calib") as calib_path, _as_file(eval_data, "eval") as eval_path:
        if evaluate:
            from .frontend.loader import load_onnx
            from .frontend.normalize import normalize
            from .quantize.datasets import load_inputs

            spec = model_input(normalize(load_onnx(source), quantized=False).model)
            x, y = load_inputs(eval_path or calib_path, spec.name, spec.shape, "float32")
        with temporary_beside(out) as tmp:
            step(f"calibrating ({method}) and quantizing {shown}")
            result = quantize_model(source, calib_path, tmp, method=method, per_channel=per_channel,
                                    quant_format=format, activation_type=activation_type,
                                    max_calib_samples=max_calib)
            agree = None
            if evaluate:
                step(f"float vs int8 on {evaluated_on}")
                agree = agreement(source, tmp, x, y)
    result = dataclasses.replace(result, out_path=out)
    return Model(out, quantization=Quantization(result, agree, evaluated_on))


# -- builds --------------------------------------------------------------------------------------------
class Build:
    """A build folder written by :func:`build` (``systolix compile``): Verilog, program, memory images.

    Made by :func:`build`, :meth:`Model.compile` or :func:`open_build`; not constructed directly.

    Attributes
    ----------
    folder : pathlib.Path
        The build folder.
    report : dict
        Its ``report.json``: ``model`` (the model given), ``config``, ``memory_use``, ``predicted_cycles``,
        ``layers`` (per-layer MACs, predicted cycles, memory rows), ``add_variant``, the SHA-256 of every file.
    quantization : Quantization or None
        When :func:`build` quantized a float model first (``calib``): what :func:`quantize` reports.
    """

    def __init__(self, folder: str | os.PathLike, report: dict, quantization: Quantization | None = None) -> None:
        self.folder = Path(folder)
        self.report = report
        self.quantization = quantization

    def __repr__(self) -> str:
        return f"<systolix.Build {str(self.folder)!r}: {self.predicted_cycles:,} predicted cycles per inference>"

    @property
    def predicted_cycles(self) -> int:
        """Cycles per inference the compiler predicts."""
        return self.report["predicted_cycles"]

    @property
    def layers(self) -> list[dict]:
        """Per-layer plan: ``name``, ``op``, ``instructions``, ``macs``, ``cycles`` (predicted), ``act_rows``,
        ``wgt_rows``."""
        return self.report["layers"]

    @property
    def config(self) -> AcceleratorConfig:
        """The configuration (``config.json``)."""
        from .arch.config import AcceleratorConfig

        return AcceleratorConfig.from_file(self.folder / "config.json")

    @property
    def files(self) -> list[str]:
        """The names of the files in the folder."""
        return sorted(p.name for p in self.folder.iterdir())

    def table(self, title: str | None = None) -> Table:
        """The per-layer table ``systolix compile`` prints."""
        from rich.table import Table

        config = self.report.get("config") or {}
        table = Table(title=title or f"{self.folder} on a {config.get('rows')}x{config.get('cols')} array")
        for col in ("layer", "op", "instr", "MACs", "predicted cycles", "act rows", "wgt rows"):
            table.add_column(col, justify="left" if col in ("layer", "op") else "right")
        for layer in self.layers:
            table.add_row(layer["name"].split(";")[-1], layer["op"], ",".join(map(str, layer["instructions"])),
                          f"{layer['macs']:,}", f"{layer['cycles']:,}", f"{layer['act_rows']:,}",
                          f"{layer['wgt_rows']:,}")
        return table

    def summary(self) -> str:
        """What ``systolix compile`` prints, as plain text."""
        return _text(self.table(), f"predicted {self.predicted_cycles:,} cycles per inference; {self.folder}/: "
                                   + ", ".join(self.files))

    def check(self) -> Build:
        """Check every file against the SHA-256 ``report.json`` records (as ``simulate`` does first).

        Raises
        ------
        SystolixError
            A missing or changed file, named.
        """
        from .compiler.build import load_build

        load_build(self.folder)
        return self

    def simulate(self, inputs: Samples | None = None, *, random: int | None = None, backend: Backend = "auto",
                 layers: bool = False, seed: int = 0, clock_mhz: float | None = None,
                 waveform: str | os.PathLike | None = None, trace_sample: int | None = None,
                 trace_layer: str | None = None, trace_depth: int | None = None,
                 progress: SampleProgress | None = None) -> Simulation:
        """Run exactly what this folder holds on ``backend`` and onnxruntime; see :func:`simulate`.

        ``backend="auto"`` (default) is Verilator when it is available, else the golden model.
        """
        return simulate(self, inputs, random=random, backend=backend, layers=layers, seed=seed, clock_mhz=clock_mhz,
                        waveform=waveform, trace_sample=trace_sample, trace_layer=trace_layer,
                        trace_depth=trace_depth, progress=progress)

    def write_html(self, path: str | os.PathLike, simulation: Simulation | None = None) -> Path:
        """Write this build's HTML report (``systolix compile --html``; with ``simulation``, what ``systolix
        simulate --html`` writes): one self-contained file. Returns its path.

        Raises
        ------
        SystolixError
            A bad output path (checked before any work).
        """
        from .html_report import for_build, write_html

        check_output_file(path, "path", inputs=[self.folder])
        write_html(path, for_build(self.folder, simulation=None if simulation is None else simulation.report))
        return Path(path)

    def synth(self, device: str = "ecp5-85f", *, seed: int = 1, freq: float | None = None, force: bool = False,
              progress: StageProgress | None = None) -> SynthResult:
        """Synthesise and place & route this build for ``device``; see :func:`synth`."""
        return synth(self, device, seed=seed, freq=freq, force=force, progress=progress)


@_numerics
def build(model: str | os.PathLike | Model, out: str | os.PathLike, config: ConfigLike | None = "8x8", *,
          calib: Samples | None = None, device: str | None = None) -> Build:
    """Compile a model for the accelerator into a build folder, as ``systolix compile`` does.

    Parameters
    ----------
    model
        A quantized model (path or :class:`Model`), or a float one with ``calib``.
    out
        The build folder: absent, empty, or an earlier build (replaced). Written into a temporary folder
        and renamed at the end.
    config
        A preset (``"4x4"``, ``"8x8"``, ``"16x16"``), a configuration JSON file, or an
        :class:`~systolix.arch.config.AcceleratorConfig`.
    calib
        Calibration samples, to quantize a float model first (with the default options).
    device
        ``"ecp5-85f"``, ``"ecp5-25f"`` or ``"up5k"``: instead of ``config``, the largest array whose logic fits
        that FPGA with memories sized to the model (:func:`systolix.compiler.device_fit.config_for_device`);
        refused, naming the array, the memories, the layers and the budget, only when the model exceeds it.

    Returns
    -------
    Build

    Raises
    ------
    SystolixError
        A bad output folder or configuration, a float model without ``calib``, an op the accelerator does
        not run, or a layer that does not fit the configuration (named, with the size that would fit).
    """
    from .compiler.build import build as write_build

    out = check_build_folder(out, "out")
    resolved = None if device is not None else _config(config)
    path = model.path if isinstance(model, Model) else Path(model)
    if calib is None:
        result = write_build(path, out, resolved, device=device)
        return Build(result.folder, result.report)
    source = model if isinstance(model, Model) else load(model)
    if source.quantized:
        result = write_build(path, out, resolved, device=device)
        return Build(result.folder, result.report)
    # a float model: quantized first by quantize() (its summary and float vs int8 agreement kept on the Build)
    with tempfile.TemporaryDirectory(prefix="systolix-build-") as tmp:
        quantized = quantize(source, calib, Path(tmp) / "model_int8.onnx")
        result = write_build(quantized.path, out, resolved, device=device, source_name=str(source.path))
    summary = quantized.quantization
    written = dataclasses.replace(summary.result, out_path=result.folder / "model.onnx")  # where it lives now
    return Build(result.folder, result.report, dataclasses.replace(summary, result=written))


@_numerics
def open_build(folder: str | os.PathLike) -> Build:
    """Open a build folder written by ``systolix compile``, checking every file's SHA-256.

    Raises
    ------
    SystolixError
        Not a build folder, or a missing or changed file.
    """
    from .compiler.build import load_build

    return Build(folder, load_build(folder).report)


@_numerics
def synth(build: str | os.PathLike | Build, device: str = "ecp5-85f", *, seed: int = 1, freq: float | None = None,
          force: bool = False, progress: StageProgress | None = None) -> SynthResult:
    """Synthesise (yosys) and place & route (nextpnr) a build folder, as ``systolix synth`` does.

    Takes minutes (a 4x4 build 10-15 on a 2-core machine). Everything goes to ``BUILD/synth-<device>/``.

    Parameters
    ----------
    build
        A build folder (path or :class:`Build`).
    device
        ``"ecp5-85f"``, ``"ecp5-25f"`` or ``"up5k"``.
    seed
        nextpnr's placer seed.
    freq
        nextpnr's timing target in MHz (default 50).
    force
        Run even when the configuration is estimated not to fit the device.
    progress
        Called with the name of each tool as it starts.

    Returns
    -------
    systolix.synth.SynthResult
        Resources, Fmax, critical path, latency; ``.fits`` says whether it fits the device.

    Raises
    ------
    SystolixError
        An unknown device, not a build folder, a configuration that cannot fit (without ``force``), a tool
        failing (its log kept).
    """
    from . import synth as synth_module

    folder = build.folder if isinstance(build, Build) else build
    return synth_module.synth_build(folder, device, seed=seed, freq_mhz=freq or synth_module.DEFAULT_FREQ_MHZ,
                                    force=force, progress=progress)


# -- simulation ----------------------------------------------------------------------------------------
class Simulation:
    """What a simulation found: every compared tensor, the verdict, and on hardware backends the cycles.

    Attributes
    ----------
    result : systolix.sim.simulate.SimulationResult
        The full result (comparison, accuracy, float-execution report, hardware measurements).
    report : dict
        The report ``systolix simulate --json`` writes.
    """

    def __init__(self, result: SimulationResult) -> None:
        self.result = result
        self.report: dict = result.to_json()

    def __repr__(self) -> str:
        verdict = "bit-exact" if self.bit_exact else f"{self.mismatches:,} mismatches"
        cycles = "" if self.cycles is None else f", {self.cycles:,.0f} cycles/inference"
        return f"<systolix.Simulation {self.backend} vs onnxruntime, {self.samples} samples: {verdict}{cycles}>"

    @property
    def bit_exact(self) -> bool:
        """Every compared element equals onnxruntime's (and at least one was compared)."""
        return self.result.bit_exact

    @property
    def mismatches(self) -> int:
        """Number of compared elements that differ from onnxruntime's."""
        return self.report["mismatches"]

    @property
    def compared_elements(self) -> int:
        """Number of elements compared (all samples, all compared tensors)."""
        return self.report["compared_elements"]

    @property
    def first_mismatch(self) -> dict | None:
        """The first differing element (``layer``, ``op``, ``tensor``, ``sample``, ``index``, both values)."""
        return self.report["first_mismatch"]

    @property
    def samples(self) -> int:
        """Number of samples run."""
        return self.report["samples"]

    @property
    def backend(self) -> str:
        """The backend that ran (``"auto"`` resolved)."""
        return self.report["backend"]

    @property
    def layers(self) -> list[dict]:
        """Per compared tensor: ``name``, ``op``, ``tensor``, ``elements``, ``mismatches`` (and on hardware
        backends ``cycles``, ``predicted_cycles``, ``macs``, ``utilization``)."""
        return self.report["layers"]

    @property
    def accuracy(self) -> dict[str, float]:
        """Top-1 accuracy of onnxruntime and of the backend, when the inputs have labels."""
        return self.report["accuracy"]

    @property
    def cycles(self) -> float | None:
        """Measured cycles per inference (hardware backends; ``None`` on the golden model)."""
        return self.report.get("cycles")

    @property
    def predicted_cycles(self) -> int | None:
        """The compiler's predicted cycles per inference (hardware backends)."""
        return self.report.get("predicted_cycles")

    @property
    def latency_ms(self) -> float | None:
        """Latency per inference at the measured Fmax (or the given clock); ``None`` without one."""
        return self.report.get("latency_ms")


@_numerics
def simulate(target: str | os.PathLike | Model | Build, inputs: Samples | None = None, *, random: int | None = None,
             backend: Backend = "auto", layers: bool = False, seed: int = 0, config: ConfigLike | None = None,
             clock_mhz: float | None = None, waveform: str | os.PathLike | None = None,
             trace_sample: int | None = None, trace_layer: str | None = None, trace_depth: int | None = None,
             progress: SampleProgress | None = None) -> Simulation:
    """Run a backend and onnxruntime on the same samples and compare every element, as ``systolix simulate``.

    Parameters
    ----------
    target
        A quantized model (path or :class:`Model`), or a build folder (path or :class:`Build`: exactly the
        files ``compile`` wrote, each checked against its SHA-256 first).
    inputs
        Samples (a file, an array, or ``(samples, labels)``); float samples go through the model's input
        quantization. Exactly one of ``inputs`` and ``random``.
    random
        This many random integer input samples (seeded by ``seed``).
    backend
        ``"golden"`` (the NumPy integer model), ``"verilator"``, ``"amaranth"``, or ``"auto"``: Verilator
        when it and a C++ compiler are available, else golden.
    layers
        Compare every intermediate tensor too (hardware backends run in step mode).
    seed
        Seed of ``random``.
    config
        For a model file on a hardware backend: the configuration (default 8x8). Not for a build folder.
    clock_mhz
        Clock for the latency (default: the Fmax nextpnr measured for the design).
    waveform
        Verilator: write the waveform (``.fst`` or ``.vcd``) of the first mismatching sample (or of
        ``trace_sample``) to this file.
    trace_sample
        The sample ``waveform`` records.
    trace_layer
        Record only the cycles of this layer's instructions (a layer name of the model).
    trace_depth
        Record only this many levels of the module hierarchy (1: the accelerator's top level).
    progress
        ``progress(stage, done, total)`` as samples complete.

    Returns
    -------
    Simulation
        ``.bit_exact``, ``.mismatches``, ``.report`` (the ``--json`` report), ``.cycles``, ...

    Raises
    ------
    SystolixError
        A float model, bad samples, a changed build folder, an option that does not apply, an unavailable
        backend.
    """
    from .sim import simulate as sim_module

    if isinstance(target, Build):
        path: Path = target.folder
    elif isinstance(target, Model):
        path = target.path
    else:
        path = Path(target)
    if waveform is not None:
        check_output_file(waveform, "waveform", inputs=[path, *([inputs] if isinstance(inputs, str | os.PathLike)
                                                                  else [])])
    resolved = _config(config, None)
    with _as_file(inputs, "inputs") as inputs_path:
        result = sim_module.simulate(path, inputs=inputs_path, random=random, backend=backend, layers=layers,
                                     seed=seed, progress=progress, config=resolved, clock_mhz=clock_mhz,
                                     waveform=waveform, trace_sample=trace_sample, trace_layer=trace_layer,
                                     trace_depth=trace_depth)
    return Simulation(result)
