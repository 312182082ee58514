"""QLinearAdd in integers: the ADD unit's tables and constants, and its bit-exact NumPy model.

onnxruntime computes QLinearAdd in float32, in one of two ways (``quantize/golden/qlinear_add.py``).
For two same-shape tensors both are *one table value plus one product, rounded once*:

- ``"avx2"``: ``q = sat(RNE(fma(a, ra, T[b])))`` with ``T[b] = fma(b, rb, fixed)``: the exact sum
  ``a * ra + T[b]`` rounded once to float32. (When the output has a single element onnxruntime swaps
  the operands: then ``T`` is indexed by ``a`` and ``b * rb`` is the product.)
- ``"sse2"``: ``q = sat(RNE(f32(TA[a] + f32(b * rb))))`` with ``TA[a] = f32(fixed + f32(a * ra))``:
  the exact sum of a table value and the product ``b * rb`` *rounded to float32*, rounded once.
  (The single-element swap gives the same formula.)

So per element the hardware forms ``S = T[u] + X(v)`` (``u`` the table operand's code, ``v`` the other
one, ``X(v) = v * r`` exact, or rounded to 24 significant bits for sse2), rounds ``S`` to 24
significant bits (RNE), then to an integer (RNE), and saturates. In integers:

*Fixed-point window.* Every value is held in units of ``2**-32`` (``FRAC_BITS``): the floor of the
value and a *sticky* bit that says whether anything was dropped below the window. ``T`` comes from the
table already in that form (the compiler converts the float32 table exactly); ``X`` is
``|v| * M`` (``r = M * 2**E``, ``M`` 24 bits) -- for sse2 rounded to 24 significant bits -- shifted by
the constant ``sh = E + 32``, left, or right into the sticky bit. A negative value with sticky set is
``-(mag + f) = ~mag + (1 - f)``: its floor is ``~mag`` and the sticky stays set. Then
``S = T + X`` exactly, sticky = either sticky.

*Why one sticky bit is enough.* Only one operand can lose bits below ``2**-32`` unless the output is
0. A product has bits there only if ``E <= -33`` (or, for sse2, its rounded form's lowest bit is that
low, which needs ``E <= -33`` too), so ``|X| <= 255 * 2**24 * 2**-33 = 1/2 - 2**-9``; a float32 table
value with bits there has an ulp ``<= 2**-33``, so ``|T| < 2**-9``. Both at once: ``|S| < 1/2`` and the
true output is 0; the computed sum (the floors of both, plus "something") is within ``2**-31`` of
``S``, and every magnitude below ``1/2 + 2**-26`` rounds to at most ``1/2`` in float32 and then to 0,
so the computed output is 0 too.

*Range.* Values are 47-bit two's complement (``|value| < 2**14``, ``VALUE_BITS``). The compiler
checks ``max |X| + 512 < 2**14`` (so ``r < ~62``: a ratio of scales this large saturates almost every
output anyway) and *clamps* table entries with ``|T| >= max|X| + 512`` to ``sign(T) * (max|X| + 512)``:
such an entry saturates the output whatever the product, before and after the clamp. A zero or
denormal ratio is fine (its products only reach the sticky bit). Entries that are not finite or are
beyond ``2**31`` (plus the largest product and a margin) become ``-bound``: onnxruntime's
``cvtps2dq`` turns such sums into ``-2**31``, so the output is the type's minimum whatever the sign;
an entry within that margin of ``2**31`` is refused.

*Rounding.* ``|S| >= 512`` saturates; ``|S| < 1/2`` gives 0 (float32 rounding cannot carry it past
``1/2``, and ``RNE(1/2) = 0``). In between, the leading one of the magnitude (in units, bit
``j``, 31 <= j <= 40) sets the float32 rounding position ``k = j - 23``: the magnitude is rounded RNE
at bit ``k`` with the sticky bit below (exact: the sticky can only make a tie into "above"), then the
result, a 25-bit significand times ``2**(k - 32)``, is rounded RNE to an integer. Sign, clamp to the
output type's range, add the storage offset (-128 for uint8 outputs).

Hardware codes are int8 storage codes (``architecture.md``: uint8 tensors are stored as code - 128):
the table is indexed by ``u + 128`` (= the code's index in its type), the product uses
``v + v_off`` (``v_off`` = 128 for uint8 inputs).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError
from systolix.quantize.golden.qlinear_add import fma_f32

__all__ = [
    "ADD_PARAM_BITS",
    "ADD_PARAM_FIELDS",
    "FRAC_BITS",
    "SUM_BITS",
    "TABLE_BITS",
    "VALUE_BITS",
    "AddImages",
    "AddParams",
    "add_images",
    "add_param_layout",
    "add_table_layout",
    "pack_add_params",
    "qadd_model",
    "round_window_sum",
    "unpack_add_params",
]

FRAC_BITS = 32          # the window's LSB is 2**-32
VALUE_BITS = 47         # table values and products: two's complement, |value| < 2**14
TABLE_BITS = VALUE_BITS + 1  # table word: value (LSBs) and sticky (MSB)
SUM_BITS = VALUE_BITS + 1
SHIFT_MIN = -40         # products shifted right by more than 33 keep only their sticky bit
_LIMIT = 1 << (VALUE_BITS - 1)
_SAT = 512 << FRAC_BITS
_HALF = 1 << (FRAC_BITS - 1)

#: (field, bits, signed), LSB first: the ADD constants, in bits [0, 96) of the ADD's ``prm`` row.
ADD_PARAM_FIELDS: tuple[tuple[str, int, bool], ...] = (
    ("m", 24, False),            # significand of the product's ratio r = m * 2**(sh - 32) (hidden bit set)
    ("sh", 8, True),             # left shift of |v| * m into the window (negative: right, into the sticky bit)
    ("v_off", 9, True),          # added to the product operand's storage code (128 for uint8, else 0)
    ("table_on_a", 1, False),    # 1: the table is indexed by a (first operand), the product is b's
    ("round_product", 1, False),  # 1 (sse2): round |v| * m to 24 significant bits first
    ("lo", 10, True),            # output saturation range, in codes of the output type
    ("hi", 10, True),
    ("out_off", 9, True),        # added to the saturated code: -128 for uint8 outputs (storage form), else 0
    ("pad", 24, False),
)
ADD_PARAM_BITS = sum(b for _, b, _ in ADD_PARAM_FIELDS)
assert ADD_PARAM_BITS == 96


@dataclasses.dataclass(frozen=True)
class AddParams:
    """The ADD constants (see :data:`ADD_PARAM_FIELDS`)."""

    m: int
    sh: int
    v_off: int
    table_on_a: int
    round_product: int
    lo: int
    hi: int
    out_off: int
    pad: int = 0

    def __post_init__(self) -> None:
        for name, bits, signed in ADD_PARAM_FIELDS:
            v = int(getattr(self, name))
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if not lo <= v <= hi:
                raise SystolixError(f"ADD parameter {name}={v} does not fit {bits} bits")


def pack_add_params(p: AddParams) -> int:
    """The ADD constants as an integer of :data:`ADD_PARAM_BITS` bits (a ``prm`` row's low bits)."""
    word, shift = 0, 0
    for name, bits, _ in ADD_PARAM_FIELDS:
        word |= (int(getattr(p, name)) & ((1 << bits) - 1)) << shift
        shift += bits
    return word


def unpack_add_params(word: int) -> AddParams:
    """Inverse of :func:`pack_add_params` (bits above :data:`ADD_PARAM_BITS` are ignored)."""
    values, shift = {}, 0
    for name, bits, signed in ADD_PARAM_FIELDS:
        v = (word >> shift) & ((1 << bits) - 1)
        if signed and v >= 1 << (bits - 1):
            v -= 1 << bits
        values[name] = v
        shift += bits
    return AddParams(**values)


def add_param_layout():
    """Amaranth ``StructLayout`` of the ADD constants (same bit positions as :func:`pack_add_params`)."""
    from amaranth.hdl import signed, unsigned
    from amaranth.lib import data

    return data.StructLayout({name: (signed(b) if s else unsigned(b)) for name, b, s in ADD_PARAM_FIELDS})


def add_table_layout():
    """Amaranth ``StructLayout`` of one ADD table word: ``value`` (window units) and ``sticky``."""
    from amaranth.hdl import signed
    from amaranth.lib import data

    return data.StructLayout({"value": signed(VALUE_BITS), "sticky": 1})


@dataclasses.dataclass(frozen=True)
class AddImages:
    """What one ADD layer needs in memory.

    Attributes
    ----------
    params : AddParams
        The constants.
    prm_row : int
        The ``prm`` row (the constants in its low :data:`ADD_PARAM_BITS` bits).
    value : numpy.ndarray
        int64 [256]: table entry ``i`` (operand code ``i + qmin``) in units of ``2**-32``, floored.
    sticky : numpy.ndarray
        int64 [256], 0 or 1: the entry has bits below ``2**-32``.
    table : numpy.ndarray
        int64 [256]: the table words, ``(value mod 2**47) | sticky << 47`` (:func:`add_table_layout`).
    """

    params: AddParams
    prm_row: int
    value: np.ndarray
    sticky: np.ndarray
    table: np.ndarray


def _f32(x) -> np.float32:
    return np.float32(x)


def _window(x: float) -> tuple[int, int]:
    """Exact ``(floor(x * 2**32), sticky)`` of a finite float."""
    scaled = Fraction(x) * (1 << FRAC_BITS)
    floor = scaled.numerator // scaled.denominator
    return floor, int(floor != scaled)


def _significand(r: np.float32, what: str) -> tuple[int, int]:
    """``r = m * 2**e`` with ``2**23 <= m < 2**24`` (``m = 0`` for zero) for a finite float32 ``r >= 0``.

    Denormal ratios are exact in float64, so they split like normal ones (their products land in the
    sticky bit).
    """
    if not (np.isfinite(r) and r >= 0):
        raise SystolixError(f"QLinearAdd: the scale ratio {what} = {float(r):.6g} overflows float32; the ADD "
                            "unit cannot compute it")
    if r == 0:
        return 0, SHIFT_MIN - FRAC_BITS
    fraction, exponent = np.frexp(np.float64(r))
    return int(fraction * 2.0**24), int(exponent) - 24


def add_images(a_quant, b_quant, y_quant, variant: str, *, swap: bool = False) -> AddImages:
    """The table and constants of one QLinearAdd of two same-shape tensors.

    Parameters
    ----------
    a_quant, b_quant, y_quant : QuantParams
        Per-tensor quantization of A, B and the output (``systolix.frontend.ir.QuantParams``, or
        anything with ``scale``, ``zero_point``, ``dtype``, ``qmin``, ``qmax``), int8 or uint8.
    variant : {"avx2", "sse2"}
        onnxruntime's kernel to reproduce (``probe_qlinear_add_variant()``).
    swap : bool
        onnxruntime's operand swap, taken when the output has a single element.

    Returns
    -------
    AddImages

    Raises
    ------
    SystolixError
        Unknown variant, per-channel quantization, or scale ratios out of the unit's range.
    """
    if variant not in ("avx2", "sse2"):
        raise SystolixError(f"QLinearAdd variant must be 'avx2' or 'sse2', not {variant!r}")
    for name, q in (("A", a_quant), ("B", b_quant), ("output", y_quant)):
        if np.asarray(q.scale).size != 1 or q.dtype not in ("int8", "uint8"):
            raise SystolixError(f"QLinearAdd: {name} must be per-tensor int8 or uint8")
    a_s, b_s, c_s = (_f32(np.asarray(q.scale).reshape(())) for q in (a_quant, b_quant, y_quant))
    azf, bzf, czf = (_f32(int(np.asarray(q.zero_point).reshape(()))) for q in (a_quant, b_quant, y_quant))
    a_codes = np.arange(256, dtype=np.int64) + a_quant.qmin
    b_codes = np.arange(256, dtype=np.int64) + b_quant.qmin
    with np.errstate(all="ignore"):  # float32 overflow gives infinities, as in onnxruntime
        ra, rb = _f32(a_s / c_s), _f32(b_s / c_s)
        if variant == "avx2" and not swap:
            fixed = _f32(czf - fma_f32(ra, azf, _f32(rb * bzf)))
            table = fma_f32(b_codes.astype(np.float32), rb, fixed)
            table_on_a, r_v, v_quant, what = 0, ra, a_quant, "a_scale / c_scale"
        elif variant == "avx2":
            fixed = _f32(czf - fma_f32(rb, bzf, _f32(ra * azf)))
            table = fma_f32(a_codes.astype(np.float32), ra, fixed)
            table_on_a, r_v, v_quant, what = 1, rb, b_quant, "b_scale / c_scale"
        else:  # sse2; its single-element swap is the same formula
            fixed = _f32(czf - _f32(_f32(ra * azf) + _f32(rb * bzf)))
            table = (fixed + (a_codes.astype(np.float32) * ra).astype(np.float32)).astype(np.float32)
            table_on_a, r_v, v_quant, what = 1, rb, b_quant, "b_scale / c_scale"
    m, e = _significand(r_v, what)
    limit = (_LIMIT - _SAT) / (255 if v_quant.dtype == "uint8" else 128) / 2**FRAC_BITS
    if e + FRAC_BITS > VALUE_BITS - 24:  # |X(1)| >= 2**(VALUE_BITS - 1): certainly too large
        raise SystolixError(f"QLinearAdd: the scale ratio {what} = {float(r_v):.6g} is too large for the ADD "
                            f"unit (at most {limit:.4g})")
    params = AddParams(
        m=m, sh=max(SHIFT_MIN, e + FRAC_BITS), v_off=128 if v_quant.dtype == "uint8" else 0,
        table_on_a=table_on_a, round_product=int(variant == "sse2"),
        lo=y_quant.qmin, hi=y_quant.qmax, out_off=-128 if y_quant.dtype == "uint8" else 0,
    )
    # The largest product magnitude over the operand's codes, in window units (sticky rounds up).
    x_val, x_sticky = _product(np.arange(-128, 128, dtype=np.int64), params)
    x_max = int(np.max(np.maximum(np.abs(x_val), np.abs(x_val + x_sticky))))
    bound = x_max + _SAT
    if bound >= _LIMIT:
        raise SystolixError(f"QLinearAdd: the scale ratio {what} = {float(r_v):.6g} is too large for the ADD "
                            f"unit (at most {limit:.4g})")
    # onnxruntime converts the float32 sum with cvtps2dq, which gives -2**31 for NaN and anything outside
    # the int32 range, and saturates after: such a sum comes out as the output's minimum, whatever its
    # sign. An entry that far out (or not finite) makes every sum that far out, so it becomes -bound,
    # which saturates low. Entries close enough to 2**31 that the product decides are refused.
    overflow = 2.0**31
    band = x_max / 2.0**FRAC_BITS + 4096.0
    value = np.zeros(256, dtype=np.int64)
    sticky = np.zeros(256, dtype=np.int64)
    for i, t in enumerate(table):
        if not np.isfinite(t) or abs(float(t)) >= overflow + band:
            v, s = -bound, 0
        elif abs(float(t)) > overflow - band:
            raise SystolixError(
                f"QLinearAdd: a float32 table value ({float(t):.9g}) lies so close to 2**31 that whether "
                "onnxruntime's int32 conversion overflows depends on the other operand; the ADD unit "
                "cannot compute that")
        else:
            v, s = _window(float(t))
            if v >= bound:  # T >= bound: the output saturates high whatever the product
                v, s = bound, 0
            elif v + 1 <= -bound:  # T < v + 1 <= -bound
                v, s = -bound, 0
        value[i], sticky[i] = v, s
    words = (value & ((1 << VALUE_BITS) - 1)) | (sticky << VALUE_BITS)
    return AddImages(params=params, prm_row=pack_add_params(params), value=value, sticky=sticky, table=words)


def _rne_shift(mag: np.ndarray, k: np.ndarray, sticky: np.ndarray) -> np.ndarray:
    """``RNE((mag + f) / 2**k)`` for ``k >= 1``, ``f`` in (0, 1) when ``sticky`` else 0."""
    q = mag >> k
    rem = mag - (q << k)
    half = np.left_shift(1, k - 1)
    up = (rem > half) | ((rem == half) & ((sticky != 0) | ((q & 1) == 1)))
    return q + up


def _round_significand(p: np.ndarray, bits: int) -> np.ndarray:
    """``p >= 0`` rounded to ``bits`` significant bits, RNE (the value, not the significand)."""
    length = np.zeros(p.shape, dtype=np.int64)
    for t in range(bits, 64):
        length += p >= (1 << t)
    k = np.maximum(length, 1)
    rounded = _rne_shift(p, k, np.zeros_like(p)) << k
    return np.where(length > 0, rounded, p)


def _product(v: np.ndarray, p: AddParams) -> tuple[np.ndarray, np.ndarray]:
    """The product ``X(v)`` of storage codes ``v``: window value (floor) and sticky."""
    code = v + p.v_off
    mag = np.abs(code) * p.m
    if p.round_product:
        mag = _round_significand(mag, 24)
    if p.sh >= 0:
        x, s = mag << p.sh, np.zeros_like(mag)
    else:
        k = min(-p.sh, 62)
        x, s = mag >> k, ((mag & ((1 << k) - 1)) != 0).astype(np.int64)
    x = np.where(code < 0, np.where(s != 0, ~x, -x), x)
    return x, s


def qadd_model(a: ArrayLike, b: ArrayLike, images: AddImages) -> np.ndarray:
    """The ADD unit, in integers: storage codes of A and B -> storage codes of the output.

    Parameters
    ----------
    a, b : array_like
        int8 storage codes (uint8 tensors: code - 128) of the two operands, same shape.
    images : AddImages
        From :func:`add_images`.

    Returns
    -------
    numpy.ndarray
        int8 storage codes of the output.
    """
    p = images.params
    a = np.asarray(a).astype(np.int64)
    b = np.asarray(b).astype(np.int64)
    u, v = (a, b) if p.table_on_a else (b, a)
    t, ts = images.value[u + 128], images.sticky[u + 128]
    x, xs = _product(v, p)
    r = round_window_sum(t + x, ts | xs)
    q = np.clip(r, p.lo, p.hi) + p.out_off
    return q.astype(np.int8)


def round_window_sum(s: np.ndarray, st: np.ndarray) -> np.ndarray:
    """A window sum rounded as onnxruntime's ``cvtps2dq(f32(sum))`` does, saturated to [-512, 512].

    ``s`` is the floor of the sum in units of ``2**-32`` and ``st`` its sticky bit (module docstring):
    rounded to 24 significant bits (RNE, the float32 sum), then to an integer (RNE). Shared by the ADD
    and MUL units' models (``systolix.arch.mul_arith``).
    """
    s = np.asarray(s, dtype=np.int64)
    st = np.asarray(st, dtype=np.int64)
    neg = s < 0
    mag = np.where(neg, np.where(st != 0, ~s, -s), s)
    j = np.full(mag.shape, FRAC_BITS - 1, dtype=np.int64)  # leading one (valid when the value matters)
    for bit in range(FRAC_BITS, FRAC_BITS + 9):
        j += mag >= (1 << bit)
    k = j - 23
    significand = _rne_shift(mag, k, st)          # float32 rounding (25 bits after a carry)
    r = _rne_shift(significand, FRAC_BITS - k, np.zeros_like(st))  # to an integer
    r = np.where(mag >= _SAT, 512, np.where(mag < _HALF, 0, r))
    return np.where(neg, -r, r)
