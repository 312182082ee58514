"""Rounding helpers shared by the units that reproduce float32 roundings in integers (requantizer, ADD).

Like Gemmini's one ``Arithmetic`` home: every round-to-nearest-even shift and leading-one search the
hardware performs is built here, once.
"""

from __future__ import annotations

from amaranth import Cat, Const, Mux


def rne_shift_right(value, amount, sticky=0):
    """``RNE((value + f) / 2**amount)`` for unsigned ``value`` and unsigned variable ``amount``.

    ``f`` is a fraction in (0, 1) when ``sticky`` is set (bits already lost below ``value``), else 0.
    The half bit is bit ``amount - 1`` of ``value``; the bits below it, or ``sticky``, break ties.
    """
    quotient, up = rne_shift_parts(value, amount, sticky)
    return quotient + up


def rne_shift_parts(value, amount, sticky=0):
    """`rne_shift_right` cut in two for a pipeline register between the halves: ``(quotient, up)``.

    The shifter, the half bit and the sticky reduction are one deep block of logic and the carry
    chain of the increment another; a unit that needs the clock rate registers ``quotient`` and
    ``up`` and forms ``quotient + up`` in the next stage.
    """
    quotient = value >> amount
    twice = Cat(Const(0, 1), value)  # value << 1: its bit `amount` is the half bit of the remainder
    half = (twice >> amount)[0]
    # The bits below the half bit: a mask of ``amount`` ones, made as ~(ones << amount) (no subtractor).
    ones = Const(-1, len(twice)).as_unsigned()
    below = (twice & ~(ones << amount)[: len(twice)]).any() | sticky
    return quotient, half & (below | quotient[0])


def excess_bits(value, keep: int):
    """``max(0, bit_length(value) - keep)`` as a priority encoder on the bits above ``keep``."""
    excess = Const(0, range(len(value) - keep + 1))
    for bit in range(keep, len(value)):  # the highest set bit wins: it is the outermost Mux
        excess = Mux(value[bit], bit - keep + 1, excess)
    return excess


#: Amount bits `rne_shift_coarse` leaves to `rne_shift_fine`.
FINE_BITS = 2


def rne_shift_coarse(value, amount, sticky=0, width: int | None = None):
    """First of two pipeline stages of `rne_shift_parts`: the shift by ``amount``'s high bits.

    Returns ``(part, fine, lost)``: ``part`` is ``(value << 1) >> coarse`` with ``coarse = amount`` less its
    `FINE_BITS` low bits (so ``part[0]`` is the bit just below the quotient when ``fine == 0``), truncated
    to ``width`` bits if given (exact when the quotient is known to fit ``width - 1 - 2**FINE_BITS + 1``
    bits, or only its low bits are used); ``fine`` the amount left; ``lost`` whether any bit shifted out
    below ``part`` was set (or ``sticky``). `rne_shift_fine` completes the shift.
    """
    twice = Cat(Const(0, 1), value)
    coarse = Cat(Const(0, FINE_BITS), amount[FINE_BITS:])
    part = twice >> coarse
    if width is not None:
        part = part[:width]
    ones = Const(-1, len(twice)).as_unsigned()
    lost = (twice & ~(ones << coarse)[: len(twice)]).any() | sticky
    return part, amount[:FINE_BITS], lost


def rne_shift_fine(part, fine, lost):
    """Second stage of `rne_shift_coarse`: ``(quotient, up)`` as `rne_shift_parts` gives them."""
    quotient = part[1:] >> fine
    half = (part >> fine)[0]
    ones = Const(-1, len(part)).as_unsigned()
    below = (part & ~(ones << fine)[: len(part)]).any() | lost
    return quotient, half & (below | quotient[0])
