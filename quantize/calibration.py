"""Feeding an array of samples to onnxruntime's calibrators.

onnxruntime's ``quantize_static`` pulls input feeds from a ``CalibrationDataReader`` until it returns
``None``. :class:`ArrayDataReader` serves consecutive slices of one array. A model whose batch is fixed
(``[1, 1, 28, 28]``) must get exactly that many samples per run, so the batch size is taken from the
model's input; a symbolic batch gets ``batch_size`` samples per run (the last slice may be shorter).
MinMax ranges do not depend on the batching; histogram methods (entropy, percentile) may, slightly.
"""

from __future__ import annotations

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

__all__ = ["ArrayDataReader"]


class ArrayDataReader(CalibrationDataReader):
    """A calibration data reader over an in-memory array.

    Parameters
    ----------
    input_name
        The model input each feed is keyed by.
    x
        Samples, batch first, already of the model input's type and shape.
    batch_size
        Samples per feed; must divide ``len(x)`` when ``fixed_batch`` is true.
    fixed_batch
        The model's batch dimension is fixed at ``batch_size``: refuse a count that is not a multiple.

    Notes
    -----
    Supports ``len()`` (number of feeds), ``set_range`` (used by onnxruntime's strided MinMax) and
    :meth:`rewind`, so one reader can be consumed more than once.
    """

    def __init__(
        self, input_name: str, x: np.ndarray, batch_size: int = 32, *, fixed_batch: bool = False
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, not {batch_size}")
        if x.ndim == 0 or x.shape[0] == 0:
            raise ValueError("x must hold at least one sample, batch first")
        if fixed_batch and x.shape[0] % batch_size != 0:
            raise ValueError(f"{x.shape[0]} samples are not a multiple of the fixed batch {batch_size}")
        self.input_name = input_name
        self.x = x
        self.batch_size = batch_size
        self._starts = list(range(0, x.shape[0], batch_size))
        self._range = (0, len(self._starts))
        self._next = 0

    def __len__(self) -> int:
        return len(self._starts)

    def set_range(self, start_index: int, end_index: int) -> None:
        """Restrict the reader to feeds ``start_index`` .. ``end_index - 1`` and rewind."""
        self._range = (max(0, start_index), min(len(self._starts), end_index))
        self._next = self._range[0]

    def rewind(self) -> None:
        """Start again from the first feed of the current range."""
        self._next = self._range[0]

    def get_next(self) -> dict[str, np.ndarray] | None:
        """Return the next feed ``{input_name: batch}``, or ``None`` when exhausted."""
        if self._next < self._range[0]:
            self._next = self._range[0]
        if self._next >= self._range[1]:
            return None
        start = self._starts[self._next]
        self._next += 1
        return {self.input_name: self.x[start : start + self.batch_size]}
