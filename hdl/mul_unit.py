"""MUL unit: QLinearMul of two int8 storage codes per lane, bit-exact with onnxruntime, in integers.

The arithmetic is the contract of ``systolix.arch.mul_arith`` (read its module docstring for the why):
per lane the exact product ``p = (a + a_bias) * (b + b_bias)`` of the operands less their zero points,
``|p| * m`` rounded to 24 significant bits (the float32 multiply by the scale ratio), shifted into the
fixed-point window of ``2**-32`` units (left, or right into a sticky bit) and signed; then ``c_zp`` is
added and the sum is rounded like the ADD unit's sum (24 significant bits, then an integer, RNE both),
saturated, clamped and offset to the output's storage form.

The pipeline is the ADD unit's back half (from the sum on) behind a front half that forms the product
instead of reading a table, cut the same way: no stage holds more than one carry chain, one variable
shifter or one multiplier. ``params`` (``mul_param_layout()``) must be stable while items are in the
unit. Each stage moves on when the next one is empty or moving, so any back-pressure on ``o`` is safe.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.add_arith import FRAC_BITS, SUM_BITS, VALUE_BITS
from systolix.arch.latency import mul_unit_latency
from systolix.arch.mul_arith import PRODUCT_CLAMP_BITS, mul_param_layout

from .add_unit import add_input_layout
from .dsp import RegisteredMultiplier, split_multiply
from .pipeline import elastic_handshake
from .rounding import excess_bits, rne_shift_coarse, rne_shift_fine, rne_shift_parts

__all__ = ["MulUnit"]

_SAT = 512 << FRAC_BITS
_HALF = 1 << (FRAC_BITS - 1)
_MAG_BITS = VALUE_BITS - 1
_P_BITS = 42  # R24(|p| * m) < 2**41, plus the carry of its rounding


class MulUnit(wiring.Component):
    """Pipelined integer QLinearMul, ``lanes`` code pairs per transfer.

    Parameters
    ----------
    lanes : int
        Pairs per transfer.

    Members
    -------
    i : In(stream.Signature(add_input_layout(lanes)))
        Storage codes of A and B.
    o : Out(stream.Signature(ArrayLayout(signed(8), lanes)))
        Storage codes of the product, in order.
    params : In(mul_param_layout())
        The layer's constants (``mul_arith.MulParams``).
    """

    _STAGES = (
        # stages 0-3 hold the multipliers' operands and products in their own registers (`RegisteredMultiplier`)
        {},                                                                     # 0: a - a_zp, b - b_zp
        {},                                                                     # 1: the exact product
        {"neg": 1},                                                             # 2: |p|
        {"neg": 1},                                                             # 3: partial products
        {"neg": 1, "p": unsigned(41)},                                          # 4: |p| * m
        {"neg": 1, "p": unsigned(41), "x": unsigned(5)},                        # 5: bits beyond 24
        {"neg": 1, "q": unsigned(41), "up": 1, "x": unsigned(5)},               # 6
        {"neg": 1, "p": unsigned(_P_BITS)},                                     # 7: rounded (float32)
        {"neg": 1, "lp": unsigned(_MAG_BITS), "rp": unsigned(_P_BITS), "lost": 1, "big": 1},  # 8: window
        {"neg": 1, "mag": unsigned(_MAG_BITS), "xs": 1},                        # 9: window
        {"x": signed(VALUE_BITS), "xs": 1},                                     # 10: signed
        {"s": signed(SUM_BITS), "st": 1},                                       # 11: + c_zp
        {"neg": 1, "mag": unsigned(SUM_BITS + 1), "st": 1},                     # 12: |sum|
        {"neg": 1, "mag": unsigned(41), "st": 1, "k": unsigned(5), "ik": unsigned(5), "big": 1, "small": 1},
        {"neg": 1, "part": unsigned(29), "fine": unsigned(2), "lost": 1, "ik": unsigned(5), "big": 1,
         "small": 1},                                                           # 14
        {"neg": 1, "q": unsigned(25), "up": 1, "ik": unsigned(5), "big": 1, "small": 1},   # 15
        {"neg": 1, "sig": unsigned(25), "ik": unsigned(5), "big": 1, "small": 1},          # 16: float32
        {"neg": 1, "part": unsigned(26), "fine": unsigned(2), "lost": 1, "big": 1, "small": 1},  # 17
        {"neg": 1, "q": unsigned(25), "up": 1, "big": 1, "small": 1},           # 18
        {"neg": 1, "mag": unsigned(10)},                                        # 19: |integer|, saturated
        {"v": signed(11)},                                                      # 20: the integer
        {"v": signed(11)},                                                      # 21: >= lo
        {"q": signed(8)},                                                       # 22: the code
    )

    def __init__(self, lanes: int):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes <= 0:
            self._MustUse__used = True
            raise ValueError(f"lanes must be a positive int, not {lanes!r}")
        self._lanes = lanes
        super().__init__({
            "i": In(stream.Signature(add_input_layout(lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
            "params": In(mul_param_layout()),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Cycles from a transfer on ``i`` to its result on ``o`` (when ``o`` is not stalled)."""
        assert len(self._STAGES) == mul_unit_latency()
        return mul_unit_latency()

    def elaborate(self, platform):
        m = Module()
        lanes, p = self._lanes, self.params
        regs = [[Signal(data.StructLayout(f), name=f"s{n}_lane{lane}", reset_less=True) for lane in range(lanes)]
                for n, f in enumerate(self._STAGES)]
        valids, loads = elastic_handshake(m, self.i, self.o, len(self._STAGES))

        # The two DSP multiplications of a lane are `RegisteredMultiplier` units whose registers are the stages'
        # (the DSP blocks' own on ECP5): the operands less their zero points are stage 0, their product stage 1;
        # |p| is stage 2 and the partial products of |p| * m stage 3 (``m`` loaded every cycle from ``params``).
        exact, partial = [], []
        for lane in range(lanes):
            pair = self.i.payload[lane]
            mult = RegisteredMultiplier(signed(10), signed(10))
            m.submodules[f"mul_p{lane}"] = mult
            m.d.comb += [mult.a.eq(pair.a + p.a_bias), mult.b.eq(pair.b + p.b_bias), mult.ce_a.eq(loads[0]),
                         mult.ce_b.eq(loads[0]), mult.ce_p.eq(loads[1])]
            exact.append(mult.p)
            magnitude = Signal(17, name=f"ap_lane{lane}")
            m.d.comb += magnitude.eq(Mux(mult.p < 0, -mult.p, mult.p))
            partial.append(split_multiply(m, lane, magnitude, p.m, loads[2], loads[3]))

        # Per-layer constants in registers (``params`` is stable while items are in the unit; an item needs
        # them no sooner than 3 stages after it entered): the window shifts, the lost bits' mask, the bounds.
        left_sh, right_sh = Signal(5), Signal(6)
        sh_left, lost_mask = Signal(), Signal(_P_BITS)
        big_mask = Signal(_P_BITS)  # the bits of R24(|p| * m) that shift to 2**PRODUCT_CLAMP_BITS or above
        clamp_sh = Signal(6)        # PRODUCT_CLAMP_BITS - left shift: the lowest of those bits
        lo, hi = Signal.like(p.lo), Signal.like(p.hi)
        hi_off = Signal(signed(11))
        zp_window = Signal(signed(SUM_BITS))
        m.d.sync += [
            left_sh.eq(p.sh.as_unsigned()[:5]), right_sh.eq((-p.sh).as_unsigned()[:6]), sh_left.eq(p.sh >= 0),
            lost_mask.eq(~(Const(-1, _P_BITS).as_unsigned() << right_sh)[:_P_BITS]),
            big_mask.eq(Mux(sh_left, (Const(-1, _P_BITS).as_unsigned() << clamp_sh)[:_P_BITS], 0)),
            clamp_sh.eq((PRODUCT_CLAMP_BITS - left_sh).as_unsigned()[:6]),
            lo.eq(p.lo), hi.eq(p.hi), hi_off.eq(p.hi + p.out_off), zp_window.eq(p.c_zp << FRAC_BITS),
        ]

        def step(index, compute):
            with m.If(loads[index]):
                for lane in range(lanes):
                    for name, value in compute(regs[index - 1][lane], lane).items():
                        m.d.sync += regs[index][lane][name].eq(value)

        def stage1(r, lane):  # the exact product: in the multiplier's register
            return {}

        def stage2(r, lane):  # |p|: in the next multipliers' operand register
            return dict(neg=exact[lane] < 0)

        def stage3(r, lane):  # two products that each fit one DSP multiplier (m split at bit 17)
            return dict(neg=r.neg)

        def stage4(r, lane):
            return dict(neg=r.neg, p=partial[lane]["lo"] + (partial[lane]["hi"] << 17))

        def stage5(r, lane):
            return dict(neg=r.neg, p=r.p, x=excess_bits(r.p, 24))

        def stage6(r, lane):  # f32(p * ratio): the product rounded to 24 significant bits (shift, half)
            q, up = rne_shift_parts(r.p, r.x)
            return dict(neg=r.neg, q=q, up=up, x=r.x)

        def stage7(r, lane):  # ... the increment, back to the product's scale
            return dict(neg=r.neg, p=(r.q + r.up) << r.x)

        def stage8(r, lane):  # into the window: by the shift's high bits ...
            left = (r.p << Cat(Const(0, 2), left_sh[2:]))[:_MAG_BITS]
            right = r.p >> Cat(Const(0, 2), right_sh[2:])
            return dict(neg=r.neg, lp=left, rp=right, lost=(r.p & lost_mask).any(), big=(r.p & big_mask).any())

        def stage9(r, lane):  # ... then its two low bits; a product at 2**PRODUCT_CLAMP_BITS or beyond is clamped
            left = Mux(r.big, 1 << PRODUCT_CLAMP_BITS, (r.lp << left_sh[:2])[:_MAG_BITS])
            right = (r.rp >> right_sh[:2])[:_MAG_BITS]
            return dict(neg=r.neg, mag=Mux(sh_left, left, right), xs=Mux(sh_left, 0, r.lost))

        def stage10(r, lane):  # the signed value (floor of a negative one when bits were lost)
            return dict(x=Mux(r.neg, Mux(r.xs, -r.mag - 1, -r.mag), r.mag), xs=r.xs)

        def stage11(r, lane):
            return dict(s=zp_window + r.x, st=r.xs)

        def stage12(r, lane):  # magnitude (floor + sticky)
            neg = r.s < 0
            return dict(neg=neg, mag=Mux(neg, Mux(r.st, ~r.s, -r.s), r.s).as_unsigned(), st=r.st)

        def stage13(r, lane):  # range, float32 rounding position k, and the integer's 32 - k
            k, ik = Const(8, 5), Const(FRAC_BITS - 8, 5)
            for bit in range(FRAC_BITS, FRAC_BITS + 9):
                k, ik = Mux(r.mag[bit], bit - 23, k), Mux(r.mag[bit], FRAC_BITS - (bit - 23), ik)
            return dict(neg=r.neg, mag=r.mag[:41], st=r.st, k=k, ik=ik, big=r.mag >= _SAT, small=r.mag < _HALF)

        def stage14(r, lane):  # round to 24 significant bits: coarse shift, fine shift, increment
            part, fine, lost = rne_shift_coarse(r.mag, r.k, r.st, width=29)
            return dict(neg=r.neg, part=part, fine=fine, lost=lost, ik=r.ik, big=r.big, small=r.small)

        def stage15(r, lane):
            q, up = rne_shift_fine(r.part, r.fine, r.lost)
            return dict(neg=r.neg, q=q, up=up, ik=r.ik, big=r.big, small=r.small)

        def stage16(r, lane):
            return dict(neg=r.neg, sig=r.q + r.up, ik=r.ik, big=r.big, small=r.small)

        def stage17(r, lane):  # round to an integer
            part, fine, lost = rne_shift_coarse(r.sig, r.ik)
            return dict(neg=r.neg, part=part, fine=fine, lost=lost, big=r.big, small=r.small)

        def stage18(r, lane):
            q, up = rne_shift_fine(r.part, r.fine, r.lost)
            return dict(neg=r.neg, q=q, up=up, big=r.big, small=r.small)

        def stage19(r, lane):  # saturate: |value| <= 512 fits the field
            return dict(neg=r.neg, mag=Mux(r.big, 512, Mux(r.small, 0, r.q + r.up)))

        def stage20(r, lane):
            return dict(v=Mux(r.neg, -r.mag, r.mag))

        def stage21(r, lane):  # clamp: max first, then min
            return dict(v=Mux(r.v < lo, lo, r.v))

        def stage22(r, lane):  # min and the storage offset side by side: one carry chain deep
            return dict(q=Mux(r.v > hi, hi_off, r.v + p.out_off))

        stages = (stage1, stage2, stage3, stage4, stage5, stage6, stage7, stage8, stage9, stage10, stage11, stage12,
                  stage13, stage14, stage15, stage16, stage17, stage18, stage19, stage20, stage21, stage22)
        assert len(stages) == len(self._STAGES) - 1
        for index, compute in enumerate(stages, 1):
            step(index, compute)

        m.d.comb += self.o.valid.eq(valids[-1])
        for lane in range(lanes):
            m.d.comb += self.o.payload[lane].eq(regs[-1][lane].q)
        return m
