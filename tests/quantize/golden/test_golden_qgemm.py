"""QGemm (com.microsoft) and QLinearMatMul golden model against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from systolix.quantize.golden import qgemm
from systolix.quantize.requant import output_scale, qgemm_output_scale

INFO = {np.int8: (-128, 127), np.uint8: (0, 255)}


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_qgemm_matches_onnxruntime(ort_node, xdt) -> None:
    """40 random QGemm cases: transB, alpha, per-tensor/per-column B, bias [M], [N, M] or none."""
    rng = np.random.default_rng(21 if xdt is np.int8 else 22)
    lo, hi = INFO[xdt]
    for index in range(40):
        n, k, m = (int(v) for v in rng.integers(1, 40, 3))
        a = rng.integers(lo, hi + 1, (n, k)).astype(xdt)
        trans_b = index % 2
        b = rng.integers(-128, 128, (m, k) if trans_b else (k, m)).astype(np.int8)
        per_col = index % 3 == 0
        b_scale = rng.uniform(1e-3, 2e-2, m if per_col else ()).astype(np.float32)
        b_zp = np.zeros(m, np.int8) if per_col else np.int8(rng.integers(-5, 6))
        bias = [None, rng.integers(-30000, 30000, m), rng.integers(-30000, 30000, (n, m))][index % 3]
        bias = None if bias is None else bias.astype(np.int32)
        alpha = float(np.float32(rng.uniform(0.25, 2.0)))
        a_scale, y_scale = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.05, 0.5))
        a_zp, y_zp = xdt(rng.integers(lo, hi + 1)), xdt(rng.integers(lo, hi + 1))
        inputs = [
            ("a", a, False),
            ("as", a_scale, True),
            ("az", a_zp, True),
            ("b", b, True),
            ("bs", b_scale, True),
            ("bz", b_zp, True),
            ("c", bias, True),
            ("ys", y_scale, True),
            ("yz", y_zp, True),
        ]
        want = ort_node(
            "QGemm",
            inputs,
            [("y", xdt)],
            domain="com.microsoft",
            alpha=alpha,
            transB=trans_b,
            x64quantprecision=xdt is np.uint8,
        )[0]
        scale = qgemm_output_scale(alpha, a_scale, b_scale, y_scale)
        got = qgemm(a, int(a_zp), b.T if trans_b else b, b_zp, bias, scale, int(y_zp), lo, hi, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_qlinear_matmul_matches_onnxruntime(ort_node, xdt) -> None:
    """30 random QLinearMatMul cases, 2-D and batched 3-D, per-tensor and per-column weights."""
    rng = np.random.default_rng(23 if xdt is np.int8 else 24)
    lo, hi = INFO[xdt]
    for index in range(30):
        n, k, m = (int(v) for v in rng.integers(1, 30, 3))
        lead = (int(rng.integers(1, 4)),) if index % 2 else ()
        a = rng.integers(lo, hi + 1, (*lead, n, k)).astype(xdt)
        b = rng.integers(-128, 128, (k, m)).astype(np.int8)
        per_col = index % 3 == 0
        b_scale = rng.uniform(1e-3, 2e-2, m if per_col else ()).astype(np.float32)
        b_zp = np.zeros(m, np.int8) if per_col else np.int8(rng.integers(-5, 6))
        a_scale, y_scale = np.float32(rng.uniform(0.01, 0.1)), np.float32(rng.uniform(0.05, 0.5))
        a_zp, y_zp = xdt(rng.integers(lo, hi + 1)), xdt(rng.integers(lo, hi + 1))
        # uint8 x int8 QLinearMatMul saturates in onnxruntime on x86 CPUs without VNNI, with or without
        # x64quantprecision; the canonical form hands it the same weights + 128 as uint8 (U8U8: exact on
        # every x86), which is what onnxruntime is compared with here.
        b_ort, b_zp_ort = (b, b_zp) if xdt is np.int8 else ((b.astype(np.int16) + 128).astype(np.uint8),
                                                             (np.asarray(b_zp).astype(np.int16) + 128).astype(np.uint8))
        inputs = [
            ("a", a, False),
            ("as", a_scale, True),
            ("az", a_zp, True),
            ("b", b_ort, True),
            ("bs", b_scale, True),
            ("bz", b_zp_ort, True),
            ("ys", y_scale, True),
            ("yz", y_zp, True),
        ]
        want = ort_node("QLinearMatMul", inputs, [("y", xdt)])[0]
        scale = output_scale(a_scale, b_scale, y_scale)
        got = qgemm(a, int(a_zp), b, b_zp, None, scale, int(y_zp), lo, hi, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
