"""Element-by-element comparison of a backend's tensors against onnxruntime's: no tolerance."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass(frozen=True)
class Mismatch:
    """The first differing element: where it is and both values."""

    layer: str
    op: str
    tensor: str
    sample: int
    index: tuple[int, ...]
    backend: int | float | None
    reference: int | float | None
    note: str = ""


@dataclass
class LayerComparison:
    """How one tensor compared over all samples."""

    name: str
    op: str
    tensor: str
    elements: int = 0
    mismatches: int = 0


@dataclass
class Comparison:
    """Totals over all compared tensors and samples."""

    samples: int
    layers: list[LayerComparison] = field(default_factory=list)
    first_mismatch: Mismatch | None = None

    @property
    def mismatches(self) -> int:
        return sum(layer.mismatches for layer in self.layers)

    @property
    def elements(self) -> int:
        return sum(layer.elements for layer in self.layers)

    @property
    def bit_exact(self) -> bool:
        return self.mismatches == 0 and self.elements > 0

    def to_json(self) -> dict:
        return {
            "samples": self.samples,
            "bit_exact": self.bit_exact,
            "mismatches": self.mismatches,
            "compared_elements": self.elements,
            "layers": [asdict(layer) for layer in self.layers],
            "first_mismatch": None if self.first_mismatch is None else {
                **asdict(self.first_mismatch), "index": list(self.first_mismatch.index)},
        }


def _scalar(value: np.generic) -> int | float:
    return value.item()


def compare_tensors(comparison: Comparison, name: str, op: str, tensor: str, backend: np.ndarray | None,
                    reference: np.ndarray) -> LayerComparison:
    """Compare one tensor (batched on axis 0) and record it in ``comparison``."""
    result = LayerComparison(name, op, tensor, elements=int(reference.size))
    comparison.layers.append(result)
    if backend is None or backend.shape != reference.shape or backend.dtype != reference.dtype:
        result.mismatches = int(reference.size)
        if comparison.first_mismatch is None:
            got = "missing" if backend is None else f"{backend.dtype} {backend.shape}"
            comparison.first_mismatch = Mismatch(name, op, tensor, 0, (), None, None,
                                                 note=f"backend gave {got}, onnxruntime {reference.dtype} "
                                                      f"{reference.shape}")
        return result
    differ = backend != reference
    result.mismatches = int(np.count_nonzero(differ))
    if result.mismatches and comparison.first_mismatch is None:
        where = np.unravel_index(int(np.flatnonzero(differ)[0]), differ.shape)
        comparison.first_mismatch = Mismatch(name, op, tensor, int(where[0]), tuple(int(i) for i in where[1:]),
                                             _scalar(backend[where]), _scalar(reference[where]))
    return result
