"""QLinearConcat (com.microsoft) as onnxruntime computes it.

``contrib_ops/cpu/quantization/qlinear_concat.cc``: an input whose scale and zero point equal the
output's (float ``==`` on the scales) is copied; any other input goes through a 256-entry table
``QuantizeLinear(f32(x_s * (i - x_zp)), y_s, y_zp)`` over the full range of the type.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError
from systolix.quantize.golden.lookup import lookup
from systolix.quantize.golden.table import unary_table

__all__ = ["qlinear_concat"]


def qlinear_concat(
    xs: Sequence[ArrayLike],
    params: Sequence[tuple[float, int]],
    y_scale: float,
    y_zp: int,
    qmin: int,
    qmax: int,
    *,
    axis: int,
) -> np.ndarray:
    """Concatenate quantized tensors, re-expressing each in the output's scale and zero point.

    Parameters
    ----------
    xs : sequence of array_like
        The input codes (all int8 or all uint8).
    params : sequence of (scale, zero_point)
        Quantization parameters of each input.
    y_scale, y_zp : float, int
        Output quantization parameters.
    qmin, qmax : int
        Range of the re-quantization tables; onnxruntime uses the full range of the type.
    axis : int
        Concatenation axis (negative counts from the end).

    Returns
    -------
    numpy.ndarray
        Concatenated codes, the inputs' dtype.
    """
    if not xs or len(xs) != len(params):
        raise SystolixError(
            f"QLinearConcat needs one (scale, zero_point) per input: {len(xs)} inputs, {len(params)}"
        )
    arrays = [np.asarray(x) for x in xs]
    dtypes = {a.dtype for a in arrays}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (np.dtype(np.int8), np.dtype(np.uint8)):
        raise SystolixError(
            f"QLinearConcat inputs must all be int8 or all uint8, not {sorted(map(str, dtypes))}"
        )
    dtype = dtypes.pop()
    code0 = int(np.iinfo(dtype).min)
    parts = []
    for x, (xs_, xz) in zip(arrays, params, strict=True):
        if np.float32(xs_) == np.float32(y_scale) and int(xz) == int(y_zp):
            parts.append(x)
        else:
            table = unary_table(xs_, xz, y_scale, y_zp, lambda v: v, dtype, qmin=qmin, qmax=qmax)
            parts.append(lookup(x, table, code0))
    return np.concatenate(parts, axis=axis)
