"""Per-channel lookup tables as the requantizer of a 1x1 depthwise pass: ``table[c][x] = requantize(w*(x - x_zp) + b)``.

A QLinearAdd / QLinearMul by a per-channel constant gives every channel its own 256-entry table (computed by
onnxruntime). The lookup unit reads one table for all lanes, but the MATMUL engine's depthwise mode has a
weight per channel and, per channel, a bias and a float32 requantization scale: if each channel's table is
the integer requantization (:func:`.requant.requantize`) of ``w * (x - x_zp) + b`` -- a rounded affine map of
the code, which is what adding or multiplying by a constant is -- the layer runs there, exactly.

:func:`fit_affine_tables` searches, per channel, a weight ``w`` (the sign of the map, then growing
magnitudes for a finer bias), float32 scales around ``|slope| / |w|``, and the integer biases the table
allows (every non-saturated code bounds ``b`` from both sides), and accepts a triple only when it reproduces
all 256 entries. A multiplication by a constant fits with ``w = +-1``; an addition needs a bias finer than one
output step, so a larger ``w``: above 127 the weight is split over several taps that all read the same pixel (a
window of dilation 0), one pass over the tensor per tap. The check is exhaustive, so a returned fit is
exact; the search may miss a fit that exists, and then the channel is reported.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from systolix.errors import SystolixError

from .requant import requantize

__all__ = ["AffineFit", "fit_affine_tables"]

_F32 = np.float32
#: Total weights tried, smallest first; above 127 the weight is split over several taps that read the same pixel.
_WEIGHTS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 127, 254, 381, 508, 762, 1016, 1524, 2032, 3048, 4064)
#: Most taps of one channel (4064 = 32 * 127).
MAX_TAPS = 32


@dataclasses.dataclass(frozen=True)
class AffineFit:
    """Per channel: int8 weights ``[C, taps]`` (all taps read the same code; ``w`` is their sum), int32 bias and
    float32 scale: ``requantize(w*(x - x_zp) + b, scale)`` is the table."""

    weight: np.ndarray
    bias: np.ndarray
    scale: np.ndarray

    @property
    def taps(self) -> int:
        return int(self.weight.shape[1])


def _scales(magnitude: float, w: int) -> list[np.float32]:
    centre = _F32(magnitude / abs(w))
    out, up, down = [centre], centre, centre
    for _ in range(3):
        up, down = np.nextafter(up, _F32(np.inf)), np.nextafter(down, _F32(0))
        out += [up, down]
    return [s for s in out if 0 < float(s) < 2.0**24]


def _fit_channel(target: np.ndarray, u: np.ndarray, slope: float, y_zp: int, qmin: int, qmax: int
                 ) -> tuple[int, int, np.float32] | None:
    if np.all(target == target[0]):
        return 0, int(target[0]) - y_zp, _F32(1.0)
    diffs = np.diff(target)
    signs = [s for s, ok in ((1, np.all(diffs >= 0)), (-1, np.all(diffs <= 0))) if ok]
    if not signs:
        return None  # not monotone: no affine map
    t = target.astype(np.float64) - y_zp
    lo, hi = qmin - y_zp, qmax - y_zp
    magnitude = abs(slope)
    if not 0 < magnitude < 2.0**100:  # no usable hint (zero, inf, nan): the table's own slope
        span = np.flatnonzero(diffs)
        magnitude = abs(float(t[span[-1] + 1] - t[span[0]]) / float(u[span[-1] + 1] - u[span[0]]))
    for sign in signs:
        for mag in _WEIGHTS:
            w = sign * mag
            for s in _scales(magnitude, w):
                sf = float(s)
                base = -w * u.astype(np.float64)
                lower = np.where(t > lo, (t - 0.5) / sf + base, -np.inf)
                upper = np.where(t < hi, (t + 0.5) / sf + base, np.inf)
                b_lo, b_hi = float(np.max(lower)), float(np.min(upper))
                if not b_lo <= b_hi + 1 or not np.isfinite(b_lo + b_hi):
                    continue
                first, last = int(np.ceil(b_lo)), int(np.floor(b_hi))
                for b in dict.fromkeys([(first + last) // 2, first, last, first - 1, last + 1]):
                    if abs(b) >= 1 << 31:
                        continue
                    got = requantize(w * u + b, s, y_zp, qmin, qmax, channel_axis=0)
                    if np.array_equal(got, target):
                        return w, b, s
    return None


def fit_affine_tables(tables: np.ndarray, x_zp: int, x_range: tuple[int, int], slope: np.ndarray, y_zp: int,
                      y_range: tuple[int, int], *, layer: str = "layer") -> AffineFit:
    """Weights, biases and scales that make the requantizer reproduce every per-channel table exactly.

    Parameters
    ----------
    tables : numpy.ndarray
        ``[C, 256]`` output codes, entry ``i`` for input code ``x_range[0] + i``.
    x_zp : int
        Input zero point.
    x_range, y_range : (int, int)
        Input and output code ranges.
    slope : numpy.ndarray
        ``[C]``, the ideal output codes per input code (a starting point of the scale search).
    y_zp : int
        Output zero point (one for all channels: the requantizer's).
    layer : str, optional
        Named in the error message.

    Returns
    -------
    AffineFit

    Raises
    ------
    SystolixError
        Naming the first channel whose table no searched (w, b, scale) reproduces.
    """
    u = np.arange(int(x_range[0]), int(x_range[1]) + 1, dtype=np.int64) - int(x_zp)
    totals, biases, scales = [], [], []
    for c, table in enumerate(np.asarray(tables, dtype=np.int64)):
        found = _fit_channel(table, u, float(slope[c]), int(y_zp), int(y_range[0]), int(y_range[1]))
        if found is None:
            kind = "is not monotone" if not (np.all(np.diff(table) >= 0) or np.all(np.diff(table) <= 0)) else \
                f"is not reproduced by any searched weight (up to {MAX_TAPS} taps of 127), bias and scale"
            raise SystolixError(
                f"{layer}: the 256-entry table of channel {c} {kind}, so it cannot run as a requantized 1x1 "
                "depthwise pass")
        totals.append(found[0])
        biases.append(found[1])
        scales.append(found[2])
    taps = max(1, max(-(-abs(w) // 127) for w in totals))
    weights = np.zeros((len(totals), taps), np.int64)
    for c, w in enumerate(totals):  # split |w| as evenly as possible, every part <= 127
        parts = np.full(taps, abs(w) // taps) + (np.arange(taps) < abs(w) % taps)
        weights[c] = np.sign(w) * parts
    return AffineFit(weights, np.array(biases, np.int64), np.array(scales, _F32))
