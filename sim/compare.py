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


#: The largest mismatch map kept: rows (channels) and columns (positions); bigger tensors are binned.
MAP_ROWS, MAP_COLUMNS = 64, 256


@dataclass(frozen=True)
class MismatchMap:
    """Where the first mismatching tensor differs: counts of differing elements per channel x position.

    A sample's tensor (batch axis dropped) is seen as channels x positions: axis 0 is the channel, the
    other axes are flattened row-major into the position (a vector, or a scalar, is one channel). Channels and positions
    are summed in bins of ``channels_per_row`` and ``positions_per_column`` so the map has at most
    :data:`MAP_ROWS` x :data:`MAP_COLUMNS` cells.

    Attributes
    ----------
    layer, op, tensor : str
        The first mismatching layer and its tensor.
    sample : int
        The first sample in which it differs.
    shape : tuple of int
        The tensor's shape per sample.
    channels_per_row, positions_per_column : int
        The bin sizes (1: one channel per row, one position per column).
    first_sample : numpy.ndarray
        Differing elements in ``sample``, per cell (int64, rows x columns).
    all_samples : numpy.ndarray
        Differing elements over all samples, per cell.
    """

    layer: str
    op: str
    tensor: str
    sample: int
    shape: tuple[int, ...]
    channels_per_row: int
    positions_per_column: int
    first_sample: np.ndarray
    all_samples: np.ndarray

    def to_json(self) -> dict:
        return {"layer": self.layer, "op": self.op, "tensor": self.tensor, "sample": self.sample,
                "shape": list(self.shape), "channels_per_row": self.channels_per_row,
                "positions_per_column": self.positions_per_column,
                "first_sample": self.first_sample.tolist(), "all_samples": self.all_samples.tolist()}


def _binned(counts: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """Sum a channels x positions array of counts in bins of ``rows`` x ``columns`` (the last bins may be short)."""
    c, p = counts.shape
    padded = np.zeros((-(-c // rows) * rows, -(-p // columns) * columns), dtype=np.int64)
    padded[:c, :p] = counts
    return padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // columns, columns).sum(axis=(1, 3))


def mismatch_map(name: str, op: str, tensor: str, differ: np.ndarray) -> MismatchMap:
    """The :class:`MismatchMap` of a tensor from its element-wise ``differ`` mask (batched on axis 0)."""
    n = differ.shape[0]
    shape = tuple(int(d) for d in differ.shape[1:])
    per_sample = differ.reshape(n, shape[0] if len(shape) > 1 else 1, -1).astype(np.int64)
    sample = int(np.flatnonzero(per_sample.reshape(n, -1).any(axis=1))[0])
    c, p = per_sample.shape[1:]
    rows, columns = -(-c // MAP_ROWS), -(-p // MAP_COLUMNS)
    return MismatchMap(name, op, tensor, sample, shape, rows, columns, _binned(per_sample[sample], rows, columns),
                       _binned(per_sample.sum(axis=0), rows, columns))


@dataclass
class Comparison:
    """Totals over all compared tensors and samples."""

    samples: int
    layers: list[LayerComparison] = field(default_factory=list)
    first_mismatch: Mismatch | None = None
    #: Where the first mismatching tensor differs (None when the first mismatch is a missing or misshapen tensor).
    mismatch_map: MismatchMap | None = None

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
            "mismatch_map": None if self.mismatch_map is None else self.mismatch_map.to_json(),
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
        comparison.mismatch_map = mismatch_map(name, op, tensor, differ)
    return result
