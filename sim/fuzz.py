"""The fuzzer: random models through the whole flow, every layer compared with onnxruntime.

A case is one seed. :func:`run_case` builds the model of that seed (:mod:`.fuzz_models`), quantizes
it with onnxruntime's quantizer if it is a float model, runs it on a backend with every layer
compared, and classifies the result:

- ``"exact"``: zero mismatches on every compared element;
- ``"mismatch"``: any element differs from onnxruntime (a defect);
- ``"refused"``: a :class:`~systolix.errors.SystolixError`, the clean one-line refusal a user sees
  (exit 2), for instance a layer the accelerator does not run;
- ``"crash"``: anything else, including a NumPy ``RuntimeWarning`` that would reach the user's
  terminal (a defect).

Failing cases (mismatch, crash) are saved with the model, its data and the commands that reproduce
them (:func:`save_failure`). :func:`campaign` runs many seeds and counts the outcomes.
"""

from __future__ import annotations

import dataclasses
import shlex
import shutil
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import onnx

from systolix.errors import SystolixError

from .fuzz_models import RandomModel, random_model

__all__ = ["OUTCOMES", "CaseResult", "campaign", "run_case", "save_failure"]

OUTCOMES = ("exact", "mismatch", "refused", "crash")


@dataclasses.dataclass
class CaseResult:
    """What one fuzz case did.

    Attributes
    ----------
    seed : int
        The case.
    kind : str
        ``"qoperator"`` or ``"float"`` (:class:`~systolix.sim.fuzz_models.RandomModel`).
    outcome : str
        One of :data:`OUTCOMES`.
    layers : list of str
        The generated layers.
    detail : str
        The refusal message, first mismatch or traceback.
    elements : int
        Elements compared.
    seconds : float
        Wall time of the case.
    """

    seed: int
    kind: str
    outcome: str
    layers: list[str]
    detail: str = ""
    elements: int = 0
    seconds: float = 0.0


def _float_inputs(rng: np.random.Generator, shape: tuple[int, ...], scale: float | None, n: int) -> np.ndarray:
    """Samples around the calibration range, a quarter of them exact rounding ties of the input scale."""
    x = rng.standard_normal((n, *shape)).astype(np.float32)
    if scale is not None and np.isfinite(scale) and scale > 0:
        ties = ((rng.integers(-140, 140, x.shape) + 0.5) * np.float64(scale)).astype(np.float32)
        x = np.where(rng.random(x.shape) < 0.25, ties, x)
    return x


def _sample_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    dims = model.graph.input[0].type.tensor_type.shape.dim
    return tuple(int(d.dim_value) for d in dims[1:])


def _prepare(case: RandomModel, folder: Path, samples: int) -> tuple[Path, dict, list[str]]:
    """Write the case's files; return (model to simulate, simulate keyword arguments, CLI commands)."""
    path = folder / "model.onnx"
    onnx.save(case.model, path)
    if case.kind != "float":
        return path, {"random": samples, "seed": case.seed}, [
            f"systolix simulate {path.name} --random {samples} --seed {case.seed} --layers"]
    from systolix.frontend.importer import import_model
    from systolix.quantize.ptq import quantize_model

    rng = np.random.default_rng(case.seed + 1)
    shape = _sample_shape(case.model)
    calib = folder / "calib.npz"
    np.savez(calib, x=rng.standard_normal((16, *shape)).astype(np.float32))
    quantized = folder / "model_int8.onnx"
    quantize_model(path, calib, quantized, **case.quant)
    q = import_model(quantized).ir.input_quant.get("x")
    scale = float(np.asarray(q.scale).reshape(-1)[0]) if q is not None else None
    inputs = folder / "inputs.npz"
    np.savez(inputs, x=_float_inputs(rng, shape, scale, samples))
    opts = case.quant
    quantize = (f"systolix quantize {path.name} --calib {calib.name} -o {quantized.name} --format "
                f"{opts['quant_format']} --activation-type {opts['activation_type']}"
                + ("" if opts["per_channel"] else " --per-tensor"))
    return quantized, {"inputs": inputs}, [quantize, f"systolix simulate {quantized.name} --inputs {inputs.name} "
                                                      "--layers"]


def run_case(seed: int, *, backend: str = "golden", config=None, samples: int = 3, float_share: float = 0.1,
             folder: str | Path | None = None) -> tuple[CaseResult, list[str]]:
    """Build, (quantize,) simulate and classify the case ``seed``.

    Parameters
    ----------
    seed : int
        The case.
    backend : {"golden", "verilator", "amaranth"}
        Where the model runs; hardware backends compile it for ``config`` first.
    config : AcceleratorConfig, optional
        Hardware configuration (default: the 8x8 preset).
    samples : int
        Samples per case.
    float_share : float
        Share of float models (quantized by onnxruntime) among the seeds.
    folder : path, optional
        Where to write the case's files (default: a temporary folder, removed afterwards).

    Returns
    -------
    (CaseResult, list of str)
        The result and the CLI commands that reproduce it (run in the case's folder).
    """
    from .simulate import simulate

    t0 = time.perf_counter()
    case = random_model(seed, float_share=float_share)
    own = folder is None
    where = Path(tempfile.mkdtemp(prefix="systolix-fuzz-")) if own else Path(folder)
    commands: list[str] = []
    result = CaseResult(seed, case.kind, "crash", case.layers)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            warnings.filterwarnings("error", category=RuntimeWarning)  # NumPy's would reach the terminal
            try:
                model, kwargs, commands = _prepare(case, where, samples)
                commands[-1] += f" --backend {backend}" + ("" if config is None else " --config config.json")
                sim = simulate(model, backend=backend, layers=True, config=config, **kwargs)
                cmp = sim.comparison
                result.elements = cmp.elements
                result.outcome = "exact" if cmp.mismatches == 0 else "mismatch"
                if cmp.first_mismatch is not None:
                    fm = cmp.first_mismatch
                    result.detail = f"{cmp.mismatches} mismatches; first: {fm}"
            except SystolixError as e:
                result.outcome, result.detail = "refused", str(e)
            except Exception:  # anything else is the defect the fuzzer looks for
                result.outcome, result.detail = "crash", traceback.format_exc(limit=12)
    finally:
        result.seconds = time.perf_counter() - t0
        if own:
            shutil.rmtree(where, ignore_errors=True)
    return result, commands


def save_failure(result: CaseResult, out: str | Path, *, backend: str, config=None, samples: int = 3,
                 float_share: float = 0.1) -> Path:
    """Re-run a failing case into ``out/case-SEED/`` with its model, data and a ``repro.sh``."""
    folder = Path(out) / f"case-{result.seed}"
    folder.mkdir(parents=True, exist_ok=True)
    again, commands = run_case(result.seed, backend=backend, config=config, samples=samples,
                               float_share=float_share, folder=folder)
    if config is not None:
        (folder / "config.json").write_text(config.to_json() if hasattr(config, "to_json") else str(config))
    script = ["#!/bin/sh", f"# fuzz case {result.seed}: {again.outcome}", *(f"# {line}" for line in again.layers),
              "set -e", f"cd {shlex.quote(str(folder.resolve()))}", *commands]
    (folder / "repro.sh").write_text("\n".join(script) + "\n")
    (folder / "detail.txt").write_text(again.detail + "\n")
    return folder


def campaign(seeds: Iterable[int], *, backend: str = "golden", config=None, samples: int = 3,
             float_share: float = 0.1, failures: str | Path | None = None,
             progress: Callable[[CaseResult], None] | None = None) -> tuple[Counter, list[CaseResult]]:
    """Run every seed; return the outcome counts and the failing (mismatch, crash) results.

    Failing cases are saved under ``failures`` when it is given (:func:`save_failure`).
    """
    counts: Counter = Counter({o: 0 for o in OUTCOMES})
    failed: list[CaseResult] = []
    for seed in seeds:
        result, _ = run_case(seed, backend=backend, config=config, samples=samples, float_share=float_share)
        counts[result.outcome] += 1
        counts[f"{result.kind}:{result.outcome}"] += 1
        if result.outcome in ("mismatch", "crash"):
            failed.append(result)
            if failures is not None:
                save_failure(result, failures, backend=backend, config=config, samples=samples,
                             float_share=float_share)
        if progress is not None:
            progress(result)
    return counts, failed
