"""QLinearConv golden model against onnxruntime, and its accumulator against a direct loop."""

from __future__ import annotations

import numpy as np
import pytest

from systolix.quantize.golden import conv_accumulate, qlinear_conv
from systolix.quantize.requant import output_scale

INFO = {np.int8: (-128, 127), np.uint8: (0, 255)}


def _random_case(rng: np.random.Generator, index: int) -> dict:
    nsp = 1 + index % 2
    xdt = np.int8 if index % 3 else np.uint8
    kind = ["plain", "grouped", "depthwise"][index % 3 if index % 5 else 0]
    c = int(rng.integers(1, 6))
    if kind == "plain":
        group, m = 1, int(rng.integers(1, 7))
    elif kind == "grouped":
        group = int(rng.integers(2, 4))
        c, m = c * group, group * int(rng.integers(1, 3))
    else:
        group = c = m = int(rng.integers(2, 6))
    kernel = [int(k) for k in rng.integers(1, 4, nsp)]
    dil = [int(d) for d in rng.integers(1, 3, nsp)]
    strides = [int(s) for s in rng.integers(1, 4, nsp)]
    pads = [int(p) for p in rng.integers(0, 3, 2 * nsp)]
    size = [int(s) + d * (k - 1) for s, d, k in zip(rng.integers(1, 10, nsp), dil, kernel, strict=True)]
    lo, hi = INFO[xdt]
    per_channel = bool(rng.integers(0, 2))
    return dict(
        x=rng.integers(lo, hi + 1, (int(rng.integers(1, 3)), c, *size)).astype(xdt),
        x_zp=xdt(rng.integers(lo, hi + 1)),
        w=rng.integers(-127, 128, (m, c // group, *kernel)).astype(np.int8),
        w_zp=np.zeros(m, np.int8) if per_channel else np.int8(rng.integers(-10, 11)),
        w_scale=rng.uniform(1e-3, 2e-2, m if per_channel else 1)
        .astype(np.float32)
        .reshape(-1 if per_channel else ()),
        bias=rng.integers(-20000, 20000, m).astype(np.int32) if rng.integers(0, 2) else None,
        x_scale=np.float32(rng.uniform(0.005, 0.1)),
        y_scale=np.float32(rng.uniform(0.05, 0.5)),
        y_zp=xdt(rng.integers(lo, hi + 1)),
        attrs=dict(strides=strides, pads=pads, dilations=dil, group=group, kernel_shape=kernel),
        xdt=xdt,
    )


@pytest.mark.parametrize("seed", range(6))
def test_qlinear_conv_matches_onnxruntime(ort_node, seed: int) -> None:
    """20 random parameter sets per seed, 120 in all: 1-D/2-D, strides 1-3, asymmetric pads,
    dilation 1-2, groups and depthwise, per-tensor and per-channel, u8 and s8, with and without bias."""
    rng = np.random.default_rng(seed)
    for index in range(20):
        case = _random_case(rng, seed * 20 + index)
        xdt = case["xdt"]
        inputs = [
            ("x", case["x"], False),
            ("xs", case["x_scale"], True),
            ("xz", case["x_zp"], True),
            ("w", case["w"], True),
            ("ws", case["w_scale"], True),
            ("wz", case["w_zp"], True),
            ("ys", case["y_scale"], True),
            ("yz", case["y_zp"], True),
            ("b", case["bias"], True),
        ]
        # onnxruntime 1.31.1 refuses x64quantprecision for int8 activations with |w| > 64 (see conftest).
        want = ort_node(
            "QLinearConv", inputs, [("y", xdt)], x64quantprecision=xdt is np.uint8, **case["attrs"]
        )[0]
        attrs = {k: v for k, v in case["attrs"].items() if k != "kernel_shape"}
        scale = output_scale(case["x_scale"], case["w_scale"], case["y_scale"])
        got = qlinear_conv(
            case["x"],
            int(case["x_zp"]),
            case["w"],
            case["w_zp"],
            case["bias"],
            scale,
            int(case["y_zp"]),
            *INFO[xdt],
            out_dtype=xdt,
            **attrs,
        )
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _direct_conv(x, x_zp, w, w_zp, bias, strides, pads, dilations, group):
    """A plain loop over output positions and taps, Python ints, int32 wrap at the end (2-D only)."""
    n, c, h, wd = x.shape
    m, cg, kh, kw = w.shape
    ho = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.zeros((n, m, ho, wo), dtype=np.int64)
    mg = m // group
    for b in range(n):
        for o in range(m):
            g = o // mg
            for i in range(ho):
                for j in range(wo):
                    total = 0 if bias is None else int(bias[o])
                    for ci in range(cg):
                        for u in range(kh):
                            for v in range(kw):
                                y = i * strides[0] - pads[0] + u * dilations[0]
                                z = j * strides[1] - pads[1] + v * dilations[1]
                                if 0 <= y < h and 0 <= z < wd:
                                    xv = int(x[b, g * cg + ci, y, z]) - x_zp
                                    total += xv * (
                                        int(w[o, ci, u, v]) - int(np.reshape(w_zp, -1)[o % np.size(w_zp)])
                                    )
                    out[b, o, i, j] = (total + 2**31) % 2**32 - 2**31
    return out


def test_conv_accumulate_against_direct_loop() -> None:
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, (1, 4, 6, 5)).astype(np.uint8)
    w = rng.integers(-128, 128, (4, 2, 3, 2)).astype(np.int8)
    w_zp = np.array([0, 3, -5, 1], np.int8)
    bias = np.array([2**31 - 1, -(2**31), 7, -3], dtype=np.int64).astype(np.int32)  # forces int32 wrap
    kw = dict(strides=[2, 1], pads=[1, 0, 2, 1], dilations=[1, 2], group=2)
    got = conv_accumulate(x, 131, w, w_zp, bias, **kw)
    want = _direct_conv(x, 131, w, w_zp, bias, **kw)
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_conv_1d_equals_2d_with_unit_height() -> None:
    rng = np.random.default_rng(12)
    x = rng.integers(-128, 128, (2, 3, 11)).astype(np.int8)
    w = rng.integers(-128, 128, (5, 3, 3)).astype(np.int8)
    one = conv_accumulate(x, 4, w, 0, None, strides=[2], pads=[2, 1], dilations=[2])
    two = conv_accumulate(
        x[:, :, None], 4, w[:, :, None], 0, None, strides=[1, 2], pads=[0, 2, 0, 1], dilations=[1, 2]
    )
    np.testing.assert_array_equal(one, two[:, :, 0])
