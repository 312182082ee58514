"""Table lookup on 8-bit codes (QLinearLeakyRelu, QLinearSigmoid, QLinearConcat requantization, ...).

Convention (ours, used by every table in systolix): a 256-entry table is in code order, indexed by
``code - qmin`` where ``qmin`` is the smallest code of the type -- ``x + 128`` for int8 codes, ``x``
for uint8 codes -- so entry 0 belongs to the smallest code. (onnxruntime indexes by the raw byte
instead, which for int8 puts codes 0..127 first; the tables here are built in code order.)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError

__all__ = ["code_offset", "lookup"]


def code_offset(signed: bool) -> int:
    """The table index of code 0: 128 for int8 codes, 0 for uint8 codes."""
    return 128 if signed else 0


def lookup(
    x: ArrayLike, table: ArrayLike, qmin: int | None = None, *, signed: bool | None = None
) -> np.ndarray:
    """Map each code through a 256-entry table.

    Parameters
    ----------
    x : array_like
        Integer codes.
    table : array_like
        256 output codes; entry ``i`` belongs to code ``qmin + i`` (module docstring).
    qmin : int, optional
        The code of entry 0 (-128 for int8 tables, 0 for uint8 ones). By default it is taken from
        ``signed``, or from ``x.dtype`` (int8 or uint8).
    signed : bool, optional
        Alternative to ``qmin``: whether the codes are int8.

    Returns
    -------
    numpy.ndarray
        ``table[x - qmin]``, with the table's dtype and ``x``'s shape.
    """
    x = np.asarray(x)
    table = np.asarray(table)
    if table.shape != (256,):
        raise SystolixError(f"lookup table must have 256 entries, not shape {list(table.shape)}")
    if qmin is None:
        if signed is None:
            if x.dtype == np.int8:
                signed = True
            elif x.dtype == np.uint8:
                signed = False
            else:
                raise SystolixError(
                    f"lookup codes must be int8 or uint8 (or say qmin= or signed=), not {x.dtype}"
                )
        qmin = -code_offset(signed)
    idx = x.astype(np.int64) - int(qmin)
    if idx.size and (idx.min() < 0 or idx.max() > 255):
        raise SystolixError(f"lookup code out of the table's range [{qmin}, {int(qmin) + 255}]")
    return table[idx]
