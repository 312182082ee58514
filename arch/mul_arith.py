"""QLinearMul in integers: the MUL unit's constants and its bit-exact NumPy model.

onnxruntime's x86 QLinearMul (``quantize/golden/qlinear_mul.py``) is, per element::

    p = (a - a_zp) * (b - b_zp)                   # exact integer, |p| <= 255 * 255
    q = sat(RNE(f32(c_zp + f32(p * ratio))))      # ratio = f32(f32(a_s * b_s) / c_s)

That is the ADD unit's sse2 form (``systolix.arch.add_arith``) with a constant table value ``T = c_zp``
and a product operand ``p`` of 17 bits instead of a code: the MUL unit forms ``|p| * M`` (``ratio =
M * 2**E``, ``M`` 24 bits with the hidden bit), rounds it to 24 significant bits (RNE: the float32
multiply; ``f32(p)`` is exact), shifts it into the fixed-point window of ``2**-32`` units by
``sh = E + 32`` (left, or right into a sticky bit), negates it when ``p < 0`` (floor and sticky), adds
``c_zp * 2**32`` and rounds the sum exactly as the ADD unit does (:func:`~systolix.arch.add_arith.
round_window_sum`: 24 significant bits, then an integer, both RNE; ``|sum| >= 512`` saturates), then
clamps to the output type and adds the storage offset.

*Why the window is exact.* ``c_zp`` is an integer, so only the product can have bits below ``2**-32``;
the ADD unit's argument for one sticky bit applies unchanged. A ratio so small that ``|p| * ratio``
would be a float32 denormal (``< 2**-126``) is far below the window: it only sets the sticky bit, and a
denormal product would too.

*Range.* Window values are 47-bit two's complement (``|value| < 2**14``). A product of magnitude ``>= 2**10``
is clamped to ``2**10``: ``c_zp`` lies within 255 of 0, so the sum saturates the output with the product's
sign either way. onnxruntime's ``cvtps2dq`` gives the type's *minimum* for ``|f32(v + c_zp)| >= 2**31``
whatever the sign; the compiler refuses a ratio with ``max|p| * ratio + 256 >= 2**30`` (``max|p|`` from the zero
points, at most 65025: ratios above ~16,500), far from any real model.

Hardware codes are int8 storage codes (uint8 tensors are stored as code - 128): the unit adds
``a_bias = 128 - a_zp`` (uint8) or ``-a_zp`` (int8) to the storage code to get ``a - a_zp``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError
from systolix.quantize.golden.qlinear_mul import mul_ratio

from .add_arith import FRAC_BITS, VALUE_BITS, round_window_sum

__all__ = [
    "MUL_PARAM_BITS",
    "MUL_PARAM_FIELDS",
    "MUL_SHIFT_MIN",
    "PRODUCT_CLAMP_BITS",
    "MulParams",
    "mul_param_layout",
    "mul_params",
    "pack_mul_params",
    "qmul_model",
    "unpack_mul_params",
]

#: Right shifts of more than 48 keep only the sticky bit (|p| * M < 2**41).
MUL_SHIFT_MIN = -48
#: Products of magnitude ``>= 2**10`` (in window units: ``2**42``) are clamped to it: with ``|c_zp| <= 255`` the sum
#: is then beyond 512 either way, so the output saturates with the product's sign.
PRODUCT_CLAMP_BITS = FRAC_BITS + 10
#: onnxruntime converts ``f32(v + c_zp)`` with ``cvtps2dq``: beyond ``2**31`` that gives the type's minimum whatever
#: the sign, which a clamp does not reproduce; ratios that can get near it are refused.
_OVERFLOW_MARGIN = 2.0**30

#: (field, bits, signed), LSB first: the MUL constants, in bits [0, 96) of the MUL's ``prm`` row.
MUL_PARAM_FIELDS: tuple[tuple[str, int, bool], ...] = (
    ("m", 24, False),        # significand of ratio = m * 2**(sh - 32) (hidden bit set; 0 for a zero ratio)
    ("sh", 8, True),         # left shift of R24(|p| * m) into the window (negative: right, into the sticky bit)
    ("a_bias", 10, True),    # added to A's storage code: a - a_zp
    ("b_bias", 10, True),
    ("c_zp", 10, True),      # the output zero point, added in the window before rounding
    ("lo", 10, True),        # output saturation range, in codes of the output type
    ("hi", 10, True),
    ("out_off", 9, True),    # added to the saturated code: -128 for uint8 outputs (storage form), else 0
    ("pad", 5, False),
)
MUL_PARAM_BITS = sum(b for _, b, _ in MUL_PARAM_FIELDS)
assert MUL_PARAM_BITS == 96


@dataclasses.dataclass(frozen=True)
class MulParams:
    """The MUL constants (see :data:`MUL_PARAM_FIELDS`)."""

    m: int
    sh: int
    a_bias: int
    b_bias: int
    c_zp: int
    lo: int
    hi: int
    out_off: int
    pad: int = 0

    def __post_init__(self) -> None:
        for name, bits, signed in MUL_PARAM_FIELDS:
            v = int(getattr(self, name))
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if not lo <= v <= hi:
                raise SystolixError(f"MUL parameter {name}={v} does not fit {bits} bits")


def pack_mul_params(p: MulParams) -> int:
    """The MUL constants as an integer of :data:`MUL_PARAM_BITS` bits (a ``prm`` row's low bits)."""
    word, shift = 0, 0
    for name, bits, _ in MUL_PARAM_FIELDS:
        word |= (int(getattr(p, name)) & ((1 << bits) - 1)) << shift
        shift += bits
    return word


def unpack_mul_params(word: int) -> MulParams:
    """Inverse of :func:`pack_mul_params` (bits above :data:`MUL_PARAM_BITS` are ignored)."""
    values, shift = {}, 0
    for name, bits, signed in MUL_PARAM_FIELDS:
        v = (word >> shift) & ((1 << bits) - 1)
        if signed and v >= 1 << (bits - 1):
            v -= 1 << bits
        values[name] = v
        shift += bits
    return MulParams(**values)


def mul_param_layout():
    """Amaranth ``StructLayout`` of the MUL constants (same bit positions as :func:`pack_mul_params`)."""
    from amaranth.hdl import signed, unsigned
    from amaranth.lib import data

    return data.StructLayout({name: (signed(b) if s else unsigned(b)) for name, b, s in MUL_PARAM_FIELDS})


def _max_distance(q) -> int:
    zp = int(np.asarray(q.zero_point).reshape(()))
    return max(zp - q.qmin, q.qmax - zp)


def mul_params(a_quant, b_quant, y_quant) -> MulParams:
    """The MUL constants of one QLinearMul of two activations.

    Parameters
    ----------
    a_quant, b_quant, y_quant : QuantParams
        Per-tensor quantization of A, B and the output (``systolix.frontend.ir.QuantParams``, or anything
        with ``scale``, ``zero_point``, ``dtype``, ``qmin``, ``qmax``), int8 or uint8.

    Returns
    -------
    MulParams

    Raises
    ------
    SystolixError
        Per-channel quantization, another type, or a scale ratio out of the unit's range.
    """
    for name, q in (("A", a_quant), ("B", b_quant), ("output", y_quant)):
        if np.asarray(q.scale).size != 1 or q.dtype not in ("int8", "uint8"):
            raise SystolixError(f"QLinearMul: {name} must be per-tensor int8 or uint8")
    a_s, b_s, c_s = (float(np.asarray(q.scale).reshape(())) for q in (a_quant, b_quant, y_quant))
    ratio = mul_ratio(a_s, b_s, c_s)
    if not (np.isfinite(ratio) and ratio >= 0):
        raise SystolixError(f"QLinearMul: the scale ratio a_scale * b_scale / c_scale = {float(ratio):.6g} is not "
                            "a finite non-negative float32; the MUL unit cannot compute it")
    if ratio == 0:
        m, sh = 0, MUL_SHIFT_MIN
    else:
        fraction, exponent = np.frexp(np.float64(ratio))
        m, sh = int(fraction * 2.0**24), max(MUL_SHIFT_MIN, int(exponent) - 24 + FRAC_BITS)
    p_max = _max_distance(a_quant) * _max_distance(b_quant)
    limit = _OVERFLOW_MARGIN / p_max
    # R24(p_max * m) <= p_max * m * (1 + 2**-24), times 2**(sh - 32): the largest |v| onnxruntime can form.
    if p_max * m * (1 + 2.0**-23) * 2.0 ** (sh - FRAC_BITS) + 256 >= _OVERFLOW_MARGIN or sh > 31:
        raise SystolixError(f"QLinearMul: the scale ratio a_scale * b_scale / c_scale = {float(ratio):.6g} is too "
                            f"large for the MUL unit (at most {limit:.4g} with these zero points: beyond, "
                            "onnxruntime's int32 conversion overflows)")
    y_zp = int(np.asarray(y_quant.zero_point).reshape(()))
    bias = {"uint8": 128, "int8": 0}
    return MulParams(m=m, sh=sh,
                     a_bias=bias[a_quant.dtype] - int(np.asarray(a_quant.zero_point).reshape(())),
                     b_bias=bias[b_quant.dtype] - int(np.asarray(b_quant.zero_point).reshape(())),
                     c_zp=y_zp, lo=y_quant.qmin, hi=y_quant.qmax, out_off=-128 if y_quant.dtype == "uint8" else 0)


def _round_significand(p: np.ndarray, bits: int) -> np.ndarray:
    """``p >= 0`` rounded to ``bits`` significant bits, RNE (the value, not the significand)."""
    length = np.zeros(p.shape, dtype=np.int64)
    for t in range(bits, 64):
        length += p >= (1 << t)
    k = np.maximum(length, 1)
    q = p >> k
    rem = p - (q << k)
    half = np.left_shift(1, k - 1)
    up = (rem > half) | ((rem == half) & ((q & 1) == 1))
    return np.where(length > 0, (q + up) << k, p)


def qmul_model(a: ArrayLike, b: ArrayLike, params: MulParams) -> np.ndarray:
    """The MUL unit, in integers: storage codes of A and B -> storage codes of the product.

    Parameters
    ----------
    a, b : array_like
        int8 storage codes (uint8 tensors: code - 128) of the two operands (numpy broadcasting).
    params : MulParams
        From :func:`mul_params`.

    Returns
    -------
    numpy.ndarray
        int8 storage codes of the output.
    """
    p = params
    prod = (np.asarray(a).astype(np.int64) + p.a_bias) * (np.asarray(b).astype(np.int64) + p.b_bias)
    mag = _round_significand(np.abs(prod) * p.m, 24)
    if p.sh >= 0:  # clamped at 2**PRODUCT_CLAMP_BITS: the output saturates whatever c_zp
        big = mag >= 1 << max(PRODUCT_CLAMP_BITS - p.sh, 0)
        x, xs = np.where(big, 1 << PRODUCT_CLAMP_BITS, np.where(big, 0, mag) << p.sh), np.zeros_like(mag)
    else:
        k = -p.sh
        x, xs = mag >> k, ((mag & ((1 << k) - 1)) != 0).astype(np.int64)
    assert np.all(x <= 1 << PRODUCT_CLAMP_BITS) and PRODUCT_CLAMP_BITS < VALUE_BITS - 1
    x = np.where(prod < 0, np.where(xs != 0, ~x, -x), x)
    r = round_window_sum((p.c_zp << FRAC_BITS) + x, xs)
    return (np.clip(r, p.lo, p.hi) + p.out_off).astype(np.int8)
