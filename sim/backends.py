"""Simulation backends: each runs an integer model on batched samples and returns its tensors.

``golden`` is the NumPy integer golden model. The RTL backends (Amaranth's simulator, Verilator) plug in
here with the same interface, so ``systolix simulate`` compares them against onnxruntime the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from systolix.errors import SystolixError
from systolix.frontend.ir import Model


class Backend(Protocol):
    """Runs a model on samples (batched on axis 0) and returns every tensor it computed, by name."""

    name: str

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]: ...


class GoldenBackend:
    """The NumPy integer golden model, in chunks of samples (memory stays bounded on big data sets)."""

    name = "golden"

    def __init__(self, chunk: int = 256) -> None:
        self.chunk = chunk

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        from systolix.quantize.golden_model import run_golden

        n = len(next(iter(inputs.values())))
        parts: dict[str, list[np.ndarray]] = {}
        for start in range(0, n, self.chunk):
            out = run_golden(model, {k: v[start:start + self.chunk] for k, v in inputs.items()})
            for name, value in out.items():
                parts.setdefault(name, []).append(value)
            if progress is not None:
                progress(min(start + self.chunk, n))
        return {name: np.concatenate(values, axis=0) for name, values in parts.items()}


def _amaranth(config=None, layers: bool = True, **options) -> Backend:
    from .amaranth_backend import AmaranthBackend

    return AmaranthBackend(config, layers=layers, **options)


def _verilator(config=None, layers: bool = True, **options) -> Backend:
    from .verilator_backend import VerilatorBackend

    return VerilatorBackend(config, layers=layers, **options)


def _golden(config=None, layers: bool = True, **options) -> Backend:
    return GoldenBackend()


BACKENDS: dict[str, Callable[..., Backend]] = {"golden": _golden, "amaranth": _amaranth, "verilator": _verilator}


def default_backend() -> str:
    """``verilator`` when Verilator, perl, make and a C++ compiler are there, else ``golden``."""
    try:
        from .verilator_backend import _tools

        _tools()
    except SystolixError:
        return "golden"
    return "verilator"


def get_backend(name: str, config=None, layers: bool = True, **options) -> Backend:
    """The backend ``name``; hardware backends build the accelerator for ``config`` (default: 4x4)."""
    if name == "auto":
        name = default_backend()
    if name not in BACKENDS:
        raise SystolixError(f"unknown backend {name!r}; available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name](config, layers, **options)
