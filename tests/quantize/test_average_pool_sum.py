"""The average-pool analysis (:mod:`systolix.quantize.average_pool_sum`) against onnxruntime's float32 arithmetic.

The float32 steps are the golden model's (:mod:`systolix.quantize.golden.qlinear_average_pool`, itself checked
against onnxruntime in ``tests/quantize/golden``). Every ordered window of two cells (all 65,536) is run: when
the analysis returns a scale, the integer requantization of each window's sum equals the float32 average;
when it refuses, two windows with the same sum really give different codes.
"""

from __future__ import annotations

import numpy as np
import pytest

from systolix.errors import SystolixError
from systolix.quantize.average_pool_sum import average_pool_scales
from systolix.quantize.golden import qlinear_average_pool
from systolix.quantize.requant import requantize

_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def _all_windows(n: int, lo: int, hi: int) -> np.ndarray:
    grids = np.meshgrid(*([np.arange(lo, hi + 1)] * n), indexing="ij")
    return np.stack([g.reshape(-1) for g in grids])  # [n, windows]


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_every_two_cell_window(dtype: str) -> None:
    rng = np.random.default_rng(7 if dtype == "int8" else 8)
    lo, hi = _RANGE[dtype]
    codes = _all_windows(2, lo, hi)
    proved = refused = 0
    for _ in range(24):
        x_s = np.float32(rng.uniform(0.002, 0.08))
        y_s = np.float32(x_s * rng.uniform(0.2, 1.2))
        x_zp, y_zp = (int(v) for v in rng.integers(lo, hi + 1, 2))
        x = codes.reshape(1, 1, 2, -1)
        want = qlinear_average_pool(x, x_s, x_zp, y_s, y_zp, lo, hi, kernel=[2, 1]).reshape(-1)
        sums = (codes - x_zp).sum(axis=0)
        try:
            scales = average_pool_scales(x_s, x_zp, (lo, hi), y_s, y_zp, (lo, hi), [(2, 2)])
        except SystolixError as error:
            message = str(error)
            assert "give different outputs" in message, message
            total = int(message.split("integer sum ")[1].split()[0])
            assert np.unique(want[sums == total]).size > 1
            refused += 1
            continue
        np.testing.assert_array_equal(requantize(sums, scales[2], y_zp, lo, hi, channel_axis=0), want)
        proved += 1
    assert proved >= 18


def test_same_scale_two_by_two_is_refused_with_a_real_tie() -> None:
    """Output scale = input scale (TFLite's rule for average pools): the tie at sums 2 mod 4 is decided by the
    float32 rounding of each value; the sum named has windows with both codes."""
    x_s, zp = np.float32(0.0235), 3
    with pytest.raises(SystolixError, match="give different outputs") as info:
        average_pool_scales(x_s, zp, (-128, 127), x_s, zp, (-128, 127), [(4, 4)])
    total = int(str(info.value).split("integer sum ")[1].split()[0])
    rng = np.random.default_rng(0)
    windows = rng.integers(-128, 128, (4, 400_000))
    windows[3] = total + 4 * zp - windows[:3].sum(axis=0)
    windows = windows[:, (windows[3] >= -128) & (windows[3] <= 127)]
    got = qlinear_average_pool(windows.reshape(1, 1, 4, -1), x_s, zp, x_s, zp, -128, 127, kernel=[4, 1])
    assert np.unique(got).size > 1


def test_three_by_three_with_border_windows() -> None:
    """A 3x3 pool with count_include_pad (4, 6 and 9 valid cells, divisor 9): checked on random windows."""
    x_s, y_s, x_zp, y_zp = np.float32(0.0173), np.float32(0.0119), -5, 7
    scales = average_pool_scales(x_s, x_zp, (-128, 127), y_s, y_zp, (-128, 127), [(4, 9), (6, 9), (9, 9)])
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (64, 3, 10, 11))
    want = qlinear_average_pool(x, x_s, x_zp, y_s, y_zp, -128, 127, kernel=[3, 3], pads=[1, 1, 1, 1],
                                count_include_pad=True)
    padded = np.pad(x - x_zp, ((0, 0), (0, 0), (1, 1), (1, 1)))
    sums = sum(padded[:, :, i : i + 10, j : j + 11] for i in range(3) for j in range(3))
    np.testing.assert_array_equal(requantize(sums, scales[9], y_zp, -128, 127), want)


def test_overflowing_input_scale_is_refused() -> None:
    """A scale whose dequantized values (or their window sums) overflow float32: refused, no NumPy warning
    (fuzz case 20004)."""
    with pytest.raises(SystolixError, match=r"overflow float32 in onnxruntime's average"):
        average_pool_scales(np.float32(3e36), 0, (-128, 127), np.float32(1.0), 0, (-128, 127), [(3, 3)])
