"""QLinearAdd (com.microsoft) as onnxruntime computes it: in float32, in one of two ways.

onnxruntime picks its kernel by instruction set. With ``ra = f32(a_s / c_s)``, ``rb = f32(b_s / c_s)``:

- ``"avx2"`` (``core/mlas/lib/intrinsics/avx2/qladd_avx2.cpp``, compiled with FMA contraction)::

      fixed = f32(c_zp - fma(ra, a_zp, f32(rb * b_zp)))
      q = saturate(RNE(fma(a, ra, fma(b, rb, fixed))))

- ``"sse2"`` (``core/mlas/lib/qladd.cpp``)::

      fixed = f32(c_zp - f32(f32(ra * a_zp) + f32(rb * b_zp)))
      q = saturate(RNE(f32(f32(fixed + f32(a * ra)) + f32(b * rb))))

When broadcasting makes one operand constant along the innermost (non-unit) axis, onnxruntime
calls the kernel's *scalar-B* form per span, folding that operand into the fixed part first. In
sse2 that is ``fixed' = f32(fixed + f32(b * rb))``, ``q = RNE(f32(fixed' + f32(a * ra)))`` -- a
different rounding order; in avx2 the fold is contracted to ``fma(b, rb, fixed)``, the same as the
general form (measured: 0 differences from onnxruntime on 6.5M exhaustive broadcast pairs, while
the unfused fold differs). When it is the *first* input that is constant, or the output has a
single element, the two operands (with their scales and zero points) are swapped before the call,
which matters in both variants (the fixed part and the FMA nesting are not symmetric). This module
reproduces all of that; :func:`probe_qlinear_add_variant` asks the local onnxruntime which kernel
it runs. Only the avx2 variant could be checked against onnxruntime here (an AVX-512 machine); the
sse2 variant follows the source of ``qladd.cpp``.

``fma`` is emulated exactly: the float64 product of two float32 values is exact; the float64 sum
with the third is made *round-to-odd* with a TwoSum error term (an inexact sum whose last bit is
even is moved one ulp towards the exact value); rounding that to float32 is then the correctly
rounded single rounding of ``a * b + c``, because float64 carries more than 24 + 2 bits.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from systolix.errors import SystolixError

__all__ = ["cvtps_epi32", "fma_f32", "probe_qlinear_add_variant", "qlinear_add", "qlinear_add_kernel"]

_F32 = np.float32
_VARIANTS = ("avx2", "sse2")


def fma_f32(a: ArrayLike, b: ArrayLike, c: ArrayLike) -> np.ndarray:
    """Fused multiply-add of float32 values, ``f32(a * b + c)`` with a single rounding (RNE).

    Parameters
    ----------
    a, b, c : array_like
        float32 operands (broadcast together); finite, without float64 overflow.

    Returns
    -------
    numpy.ndarray
        float32 results.
    """
    with np.errstate(all="ignore"):  # infinities and NaNs propagate as in IEEE arithmetic
        p = np.asarray(a, dtype=_F32).astype(np.float64) * np.asarray(b, dtype=_F32).astype(np.float64)
        c64 = np.asarray(c, dtype=_F32).astype(np.float64)
        s = p + c64
        # TwoSum (Knuth): s + err == p + c exactly.
        bb = s - p
        err = (p - (s - bb)) + (c64 - bb)
        even = (s.view(np.int64) & 1) == 0
        fix = (err != 0) & even & np.isfinite(s)
        if np.any(fix):
            s = np.where(fix, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
        return s.astype(_F32)


def _mul(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (np.asarray(x, dtype=_F32) * np.asarray(y, dtype=_F32)).astype(_F32)


def _add(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        return (np.asarray(x, dtype=_F32) + np.asarray(y, dtype=_F32)).astype(_F32)


def _div(x: np.ndarray, y: np.ndarray) -> np.float32:
    with np.errstate(all="ignore"):
        return _F32(_F32(x) / _F32(y))


def cvtps_epi32(r: ArrayLike) -> np.ndarray:
    """x86 ``cvtps2dq`` (round half to even): NaN and anything outside ``[-2**31, 2**31)`` give ``-2**31``.

    onnxruntime's vector QLinearAdd kernels convert with it and saturate only afterwards (``packs``),
    so a sum too large for int32 -- of either sign -- comes out as the output type's *minimum*.

    Parameters
    ----------
    r : array_like
        float32 values.

    Returns
    -------
    numpy.ndarray
        int64 values in ``[-2**31, 2**31)``.
    """
    r = np.asarray(r, dtype=_F32)
    inside = (r >= -(2.0**31)) & (r < 2.0**31)  # False for NaN
    with np.errstate(invalid="ignore"):
        q = np.rint(np.where(inside, r, 0)).astype(np.int64)
    return np.where(inside, q, -(2**31))


def qlinear_add_kernel(
    a: ArrayLike,
    a_scale: float,
    a_zp: int,
    b: ArrayLike,
    b_scale: float,
    b_zp: int,
    c_scale: float,
    c_zp: int,
    qmin: int,
    qmax: int,
    *,
    variant: str,
    scalar_b: bool = False,
) -> np.ndarray:
    """One MLAS QLinearAdd kernel call (no broadcasting logic): the float32 sequence of ``variant``.

    Parameters
    ----------
    a, b : array_like
        Codes of equal shape (``b`` broadcast against ``a``; with ``scalar_b`` one value per span,
        shaped to broadcast).
    a_scale, a_zp, b_scale, b_zp, c_scale, c_zp : float, int
        Quantization parameters.
    qmin, qmax : int
        Saturation range of the output type.
    variant : {"avx2", "sse2"}
        Which kernel.
    scalar_b : bool
        Use the kernel's scalar-B form (``b`` folded into the fixed part).

    Returns
    -------
    numpy.ndarray
        int32 codes, the broadcast shape of ``a`` and ``b``.
    """
    if variant not in _VARIANTS:
        raise SystolixError(f"QLinearAdd variant must be one of {_VARIANTS}, not {variant!r}")
    af = np.asarray(a).astype(np.int64).astype(_F32)
    bf = np.asarray(b).astype(np.int64).astype(_F32)
    ra = _div(a_scale, c_scale)
    rb = _div(b_scale, c_scale)
    azf, bzf, czf = _F32(a_zp), _F32(b_zp), _F32(c_zp)
    if variant == "avx2":
        fixed = _add(czf, -fma_f32(ra, azf, _mul(rb, bzf)))
        # The scalar-B fold ``fixed + b * rb`` is contracted to an FMA too, so both forms agree.
        r = fma_f32(af, ra, fma_f32(bf, rb, fixed))
    else:
        fixed = _add(czf, -_add(_mul(ra, azf), _mul(rb, bzf)))
        if scalar_b:
            r = _add(_add(fixed, _mul(bf, rb)), _mul(af, ra))
        else:
            r = _add(_add(fixed, _mul(af, ra)), _mul(bf, rb))
    r = np.broadcast_to(r, np.broadcast_shapes(af.shape, bf.shape))
    return np.clip(cvtps_epi32(r), qmin, qmax).astype(np.int32)


def _broadcast_kind(shape_a: tuple[int, ...], shape_b: tuple[int, ...]) -> str:
    """onnxruntime's span kind: "a_scalar", "b_scalar" or "general" (:func:`ort_span_kind`)."""
    from systolix.frontend.reference import ort_span_kind

    return ort_span_kind(tuple(shape_a), tuple(shape_b))


def qlinear_add(
    a: ArrayLike,
    a_scale: float,
    a_zp: int,
    b: ArrayLike,
    b_scale: float,
    b_zp: int,
    c_scale: float,
    c_zp: int,
    qmin: int,
    qmax: int,
    *,
    variant: str | None = None,
    out_dtype: DTypeLike | None = None,
    span_shapes: tuple[tuple[int, ...], tuple[int, ...]] | None = None,
) -> np.ndarray:
    """QLinearAdd with ONNX (numpy) broadcasting, bit-exact with onnxruntime's ``variant`` kernel.

    Parameters
    ----------
    a, b : array_like
        Codes (same 8-bit type), broadcastable.
    a_scale, a_zp, b_scale, b_zp, c_scale, c_zp : float, int
        Quantization parameters of A, B and the output C.
    qmin, qmax : int
        Output code range (onnxruntime saturates to the full type range).
    variant : {"avx2", "sse2"}, optional
        The kernel to reproduce; by default the one the local onnxruntime uses
        (:func:`probe_qlinear_add_variant`).
    out_dtype : dtype, optional
        Cast the result to this type (default: int32 values).
    span_shapes : (shape, shape), optional
        The shapes onnxruntime sees, which choose its kernel form (default: those of ``a`` and ``b``).
        A batch computed sample by sample passes the per-sample shapes with a batch of 1.

    Returns
    -------
    numpy.ndarray
        Codes of the broadcast shape.
    """
    if variant is None:
        variant = probe_qlinear_add_variant()
    a = np.asarray(a)
    b = np.asarray(b)
    kind = _broadcast_kind(*(span_shapes or (a.shape, b.shape)))
    if kind == "a_scalar":  # onnxruntime swaps the operands
        q = qlinear_add_kernel(
            b, b_scale, b_zp, a, a_scale, a_zp, c_scale, c_zp, qmin, qmax, variant=variant, scalar_b=True
        )
    else:
        q = qlinear_add_kernel(
            a,
            a_scale,
            a_zp,
            b,
            b_scale,
            b_zp,
            c_scale,
            c_zp,
            qmin,
            qmax,
            variant=variant,
            scalar_b=kind == "b_scalar",
        )
    q = np.broadcast_to(q, np.broadcast_shapes(a.shape, b.shape))
    return np.ascontiguousarray(q) if out_dtype is None else q.astype(out_dtype)


def _find_distinguishing(rng: np.random.Generator, wanted: int = 4, tries: int = 3000):
    """Parameter sets with the (a, b) pairs on which the avx2 and sse2 kernels disagree."""
    codes = np.arange(-128, 128, dtype=np.int64)
    a = np.repeat(codes, 256)
    b = np.tile(codes, 256)
    found = []
    for _ in range(tries):
        s = rng.uniform(0.001, 0.1, 3).astype(_F32)
        zp = rng.integers(-128, 128, 3)
        args = (float(s[0]), int(zp[0]), float(s[1]), int(zp[1]), float(s[2]), int(zp[2]))
        q = {v: qlinear_add_kernel(a, *args[:2], b, *args[2:], -128, 127, variant=v) for v in _VARIANTS}
        diff = np.nonzero(q["avx2"] != q["sse2"])[0]
        if diff.size:
            # Repeat to 64 elements: a one-element add would take onnxruntime's scalar path.
            diff = np.resize(diff, 64)
            found.append(
                (args, a[diff].astype(np.int8), b[diff].astype(np.int8), {v: q[v][diff] for v in _VARIANTS})
            )
            if len(found) == wanted:
                return found
    raise SystolixError("could not find QLinearAdd inputs that tell the avx2 and sse2 kernels apart")


def _run_ort_add(args: tuple, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Run one int8 QLinearAdd node on the local onnxruntime."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    names = ["as", "az", "bs", "bz", "cs", "cz"]
    types = [_F32, np.int8, _F32, np.int8, _F32, np.int8]
    inits = [numpy_helper.from_array(np.array(v, t), n) for v, t, n in zip(args, types, names, strict=True)]
    n = a.size
    node = helper.make_node(
        "QLinearAdd", ["a", "as", "az", "b", "bs", "bz", "cs", "cz"], ["c"], domain="com.microsoft"
    )
    graph = helper.make_graph(
        [node],
        "probe",
        [
            helper.make_tensor_value_info("a", TensorProto.INT8, [n]),
            helper.make_tensor_value_info("b", TensorProto.INT8, [n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.INT8, [n])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": a, "b": b})[0].astype(np.int64)


@functools.cache
def probe_qlinear_add_variant() -> str:
    """Which QLinearAdd kernel the local onnxruntime runs: ``"avx2"`` or ``"sse2"`` (cached).

    Finds parameter sets and inputs on which the two kernels disagree (a few per 100 random
    parameter sets have any), runs one-node int8 QLinearAdd models on onnxruntime, and returns the
    variant whose results it reproduces on all of them.

    Raises
    ------
    SystolixError
        If onnxruntime agrees with neither variant.
    """
    matches = set(_VARIANTS)
    for args, a, b, expected in _find_distinguishing(np.random.default_rng(20240601)):
        got = _run_ort_add(args, a, b)
        matches &= {v for v in _VARIANTS if np.array_equal(got, expected[v])}
    if len(matches) != 1:
        raise SystolixError(
            "the local onnxruntime's QLinearAdd matches neither the avx2 nor the sse2 kernel; "
            "QLinearAdd cannot be made bit-exact on this machine"
        )
    return matches.pop()
