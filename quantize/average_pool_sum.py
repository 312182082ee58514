"""When onnxruntime's float32 average pool is an integer window sum times one float32 scale.

onnxruntime computes QLinearAveragePool in float32 (:mod:`systolix.quantize.golden.qlinear_average_pool`):
every code is dequantized, ``t = f32(x_s * (x - x_zp))``, the valid cells of the window are summed in
float32 (rows outer, columns inner), ``s = f32(s / d)`` with the divisor ``d`` (the kernel area with
``count_include_pad``, else the number of valid cells), then ``q = clamp(RNE(f32(f32(s / y_s) + y_zp)))``.
The accelerator can form the exact integer sum ``K = sum(x - x_zp)`` (a depthwise pass with all-ones
weights) and requantize it with one float32 scale per divisor. That is exact only if onnxruntime's result
depends on ``K`` alone, and equals the requantizer's, for **every** window -- which this module decides.

For each pair (``n`` valid cells, divisor ``d``) that occurs and each reachable sum ``K``:

1. Bound the float32 sum: ``|s - x_s*K| <= eps``, with ``eps`` = the rounding of the ``n`` terms (their
   largest error over all codes, times ``n``) plus ``n - 1`` float32 additions each rounding by at most
   ``2**-24`` of a partial sum no larger than ``j * max|t|``.
2. Every later step (the divisions by positive constants, the addition of the zero point, RNE, the clamp)
   is monotone, so onnxruntime's code lies between the codes of the two float32 ends of that interval.
   When both ends give the same code, it is onnxruntime's code for every window with that sum.
3. Otherwise the sum lies within rounding error of a rounding boundary. For windows of up to
   ``MAX_EXACT_CELLS`` cells, every (integer sum, float32 running sum) pair any ordered window reaches is
   enumerated (a dynamic programme over the cells, deduplicating pairs): either every window with that sum
   gives one code, or some give different codes -- then no integer sum reproduces onnxruntime and the layer
   is refused, naming the sum and the codes. Larger windows are refused as not provable.
4. A float32 scale is searched (``f32(x_s / f32(y_s * d))``, ``f32(f32(x_s / d) / y_s)``, the float32 nearest
   to ``x_s / (d * y_s)`` and its neighbours) whose integer requantization (:func:`.requant.requantize`)
   gives onnxruntime's code for every reachable ``K``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import numpy as np

from systolix.errors import SystolixError

from .requant import requantize

__all__ = ["average_pool_scales", "ort_average_codes"]

_F32 = np.float32
_U = 2.0**-24
#: Windows up to this many cells are searched exhaustively when the bound cannot decide (16: about 15 s).
MAX_EXACT_CELLS = 16


def _average_values(s: np.ndarray, divisor: int, y_scale: float, y_zp: int) -> np.ndarray:
    v = (np.asarray(s, dtype=_F32) / _F32(divisor)).astype(_F32)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        return ((v / _F32(y_scale)).astype(_F32) + _F32(y_zp)).astype(_F32)


def ort_average_codes(s: np.ndarray, divisor: int, y_scale: float, y_zp: int, qmin: int, qmax: int) -> np.ndarray:
    """onnxruntime's steps after the float32 window sum ``s``: divide, divide by ``y_s``, add ``y_zp``, convert
    to int32 (NaN or outside the int32 range: INT32_MIN), saturate -- as the golden model does."""
    v = _average_values(s, divisor, y_scale, y_zp)
    inside = (v >= -(2.0**31)) & (v < 2.0**31)
    return np.clip(np.where(inside, np.rint(np.where(inside, v, 0)), -(2.0**31)).astype(np.int64), qmin, qmax)


def _float32_below(v: np.ndarray) -> np.ndarray:
    f = v.astype(_F32)
    return np.where(f.astype(np.float64) > v, np.nextafter(f, _F32(-np.inf)), f)


def _float32_above(v: np.ndarray) -> np.ndarray:
    f = v.astype(_F32)
    return np.where(f.astype(np.float64) < v, np.nextafter(f, _F32(np.inf)), f)


def _terms(x_scale: float, kmin: int, kmax: int) -> np.ndarray:
    k = np.arange(kmin, kmax + 1)
    with np.errstate(over="ignore", invalid="ignore"):
        return (_F32(x_scale) * k.astype(_F32)).astype(_F32)


@functools.lru_cache(maxsize=8)
def _reachable_sums(x_scale: float, kmin: int, kmax: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (integer sum, float32 running sum) pair some ordered window of ``n`` codes reaches (sorted, unique).

    A dynamic programme over the cells: the pairs after ``j + 1`` cells are those after ``j`` cells with each
    code's term added in float32, deduplicated; tens of thousands of pairs for a 3x3 window.
    """
    k = np.arange(kmin, kmax + 1, dtype=np.int64)
    terms = _terms(x_scale, kmin, kmax)
    sums, floats = k, terms
    for _ in range(n - 1):
        sums2 = (sums[:, None] + k[None, :]).reshape(-1)
        floats2 = (floats[:, None] + terms[None, :]).astype(_F32).reshape(-1)
        key = np.unique((sums2 << 32) | floats2.view(np.uint32).astype(np.int64))
        sums, floats = key >> 32, (key & 0xFFFFFFFF).astype(np.uint32).view(_F32)
    return sums, floats


@functools.lru_cache(maxsize=256)
def _scales(x_scale: float, kmin: int, kmax: int, y_scale: float, y_zp: int, qmin: int, qmax: int,
            windows: tuple[tuple[int, int], ...], layer: str) -> tuple[tuple[int, float], ...]:
    terms = _terms(x_scale, kmin, kmax)
    k = np.arange(kmin, kmax + 1)
    biggest_sum = float(np.max(np.abs(terms.astype(np.float64)))) * max(n for n, _ in windows)
    if not np.isfinite(biggest_sum) or biggest_sum >= float(np.finfo(_F32).max) / 2:
        raise SystolixError(f"{layer}: the dequantized input (scale {x_scale!r}) or its window sums overflow float32 "
                            "in onnxruntime's average; the requantizer does not reproduce infinities")
    term_error = float(np.max(np.abs(terms.astype(np.float64) - float(_F32(x_scale)) * k)))
    biggest = float(np.max(np.abs(terms.astype(np.float64))))
    out = (y_scale, y_zp, qmin, qmax)
    codes: dict[int, dict[int, int]] = {}  # divisor -> K -> code
    for n, divisor in sorted(set(windows)):
        sums = np.arange(n * kmin, n * kmax + 1)
        eps = n * term_error + _U * (1 + 2.0**-20) * biggest * sum(range(2, n + 1))
        exact = float(_F32(x_scale)) * sums.astype(np.float64)
        ends = np.concatenate([_average_values(_float32_below(exact - 2 * eps), divisor, y_scale, y_zp),
                               _average_values(_float32_above(exact + 2 * eps), divisor, y_scale, y_zp)])
        if not np.all((ends > -(2.0**31)) & (ends < 2.0**31)):
            raise SystolixError(f"{layer}: the float32 average reaches the int32 range's end or is not a number "
                                f"(output scale {y_scale!r}); onnxruntime's conversion then gives INT32_MIN, not "
                                "the saturated value, which the requantizer does not reproduce")
        lo = ort_average_codes(_float32_below(exact - 2 * eps), divisor, *out)
        hi = ort_average_codes(_float32_above(exact + 2 * eps), divisor, *out)
        table = codes.setdefault(divisor, {})
        for total, a, b in zip(sums.tolist(), lo.tolist(), hi.tolist(), strict=True):
            if a == b:
                table[total] = a
                continue
            if n > MAX_EXACT_CELLS:
                ideal = float(_F32(x_scale)) * total / (divisor * float(_F32(y_scale))) + y_zp
                raise SystolixError(
                    f"{layer}: onnxruntime averages in float32, and for a window sum of {total} over {n} cells "
                    f"(divisor {divisor}) the exact average {ideal!r} lies within float32 rounding error of a "
                    "rounding boundary, so its output may depend on the individual values, not only on their sum; "
                    f"windows of more than {MAX_EXACT_CELLS} cells are not searched exhaustively, so the "
                    "accelerator's integer window sum cannot be proved to reproduce it (the golden model runs it)")
            reach_sums, reach_floats = _reachable_sums(x_scale, kmin, kmax, n)
            at = np.searchsorted(reach_sums, [total, total + 1])
            found = np.unique(ort_average_codes(reach_floats[at[0]:at[1]], divisor, *out))
            if len(found) > 1:
                raise SystolixError(
                    f"{layer}: onnxruntime averages in float32, and windows of {n} cells with the same integer sum "
                    f"{total} of codes minus the zero point (divisor {divisor}) give different outputs "
                    f"({', '.join(str(int(q)) for q in found)}): the float32 rounding of the individual values decides "
                    "a rounding tie, so no integer window sum followed by a requantization reproduces it (the golden "
                    "model does)")
            table[total] = int(found[0])

    result = []
    for divisor, table in sorted(codes.items()):
        sums = np.array(sorted(table), dtype=np.int64)
        want = np.array([table[s] for s in sums.tolist()], dtype=np.int64)
        ratio = float(_F32(x_scale)) / (divisor * float(_F32(y_scale)))
        nearest = _F32(ratio)
        candidates = [(_F32(x_scale) / (_F32(y_scale) * _F32(divisor))).astype(_F32),
                      ((_F32(x_scale) / _F32(divisor)).astype(_F32) / _F32(y_scale)).astype(_F32)]
        up = down = nearest
        candidates.append(nearest)
        for _ in range(4):
            up, down = np.nextafter(up, _F32(np.inf)), np.nextafter(down, _F32(0))
            candidates += [up, down]
        for scale in candidates:
            if not 0 < float(scale) < 2.0**24:
                continue
            got = requantize(sums, _F32(scale), y_zp, qmin, qmax, channel_axis=0)
            if np.array_equal(got, want):
                result.append((divisor, float(scale)))
                break
        else:
            raise SystolixError(f"{layer}: no float32 scale near {ratio!r} makes the integer requantization of the "
                                f"window sums over {divisor} cells equal onnxruntime's float32 average")
    return tuple(result)


def average_pool_scales(x_scale: float, x_zp: int, x_range: tuple[int, int], y_scale: float, y_zp: int,
                        y_range: tuple[int, int], windows: Iterable[tuple[int, int]], *,
                        layer: str = "average pool") -> dict[int, np.float32]:
    """The requantization scale of each divisor that makes ``requantize(sum(x - x_zp), scale)`` onnxruntime's code.

    Parameters
    ----------
    x_scale, x_zp : float, int
        Input quantization.
    x_range : (int, int)
        Input code range (``qmin``, ``qmax`` of its type).
    y_scale, y_zp : float, int
        Output quantization.
    y_range : (int, int)
        Output code range (onnxruntime saturates to the full type range).
    windows : iterable of (int, int)
        Every (valid cells, divisor) pair of the layer's output positions.
    layer : str, optional
        Named in the error message.

    Returns
    -------
    dict
        Divisor -> float32 scale, exact for every window of every listed pair (module docstring).

    Raises
    ------
    SystolixError
        When onnxruntime's output is not a function of the window sum (two windows shown), cannot be proved
        to be, or no float32 scale reproduces it.
    """
    kmin, kmax = int(x_range[0]) - int(x_zp), int(x_range[1]) - int(x_zp)
    pairs = tuple(sorted({(int(n), int(d)) for n, d in windows}))
    result = _scales(float(_F32(x_scale)), kmin, kmax, float(_F32(y_scale)), int(y_zp), int(y_range[0]),
                     int(y_range[1]), pairs, layer)
    return {d: _F32(s) for d, s in result}
