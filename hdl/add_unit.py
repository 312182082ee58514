"""ADD unit: QLinearAdd of two int8 storage codes per lane, bit-exact with onnxruntime, in integers.

The arithmetic is the contract of ``systolix.arch.add_arith`` (read its module docstring for the
why): per lane ``S = T[u] + X(v)`` in fixed point (units of ``2**-32``, a floor and a sticky bit),
with ``T`` a 256-entry table of the layer (indexed by the table operand's code ``u``) and ``X`` the
other operand's code ``v`` times a constant significand, optionally rounded to 24 significant bits
(sse2), shifted into the window; then ``S`` is rounded to 24 significant bits and to an integer (RNE
both), saturated, and offset to the output's storage form.

Tables are read here, through ``tab_rd``: one read port per lane (each lane has its own address),
on a memory the unit does not own. The top level builds ``lanes`` copies of the ADD table memory
(``unsigned(TABLE_BITS)`` words, all copies with the same contents: the ``table`` arrays of the
layers' ``AddImages`` one after the other, 256 words each) and gives lane ``l`` copy ``l``. The read
port must hold its data while ``en`` is low (Amaranth's ``Memory`` read ports do): a stalled stage 0
keeps its table word in the memory's output register.

``params`` (the layer's constants, ``add_param_layout()``) and ``base`` (the row of its table) must
be stable while items are in the unit. The pipeline has `AddUnit.latency` stages; each stage moves
on when the next one is empty or moving, so any back-pressure on ``o`` is safe.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.add_arith import FRAC_BITS, SUM_BITS, TABLE_BITS, VALUE_BITS, add_param_layout
from systolix.arch.latency import add_unit_latency

from .dsp import split_multiply
from .pipeline import elastic_handshake, lane_copies
from .rounding import excess_bits, rne_shift_coarse, rne_shift_fine

__all__ = ["AddUnit", "add_input_layout", "table_read_port"]

_SAT = 512 << FRAC_BITS
_HALF = 1 << (FRAC_BITS - 1)
_MAG_BITS = VALUE_BITS - 1  # product / table magnitudes are below 2**46 (checked by the compiler)


def add_input_layout(lanes: int) -> data.ArrayLayout:
    """Payload of `AddUnit.i`: per lane the storage codes ``a`` and ``b``."""
    return data.ArrayLayout(data.StructLayout({"a": signed(8), "b": signed(8)}), lanes)


def table_read_port(lanes: int, addr_width: int, width: int) -> wiring.Signature:
    """Per-lane synchronous read ports sharing one enable, from the reader's side."""
    return wiring.Signature({
        "addr": Out(data.ArrayLayout(unsigned(addr_width), lanes)),
        "en": Out(1),
        "data": In(data.ArrayLayout(unsigned(width), lanes)),
    })


class AddUnit(wiring.Component):
    """Pipelined integer QLinearAdd, ``lanes`` code pairs per transfer.

    Parameters
    ----------
    lanes : int
        Pairs per transfer.
    table_addr_width : int
        Address width of the ADD table memory.

    Members
    -------
    i : In(stream.Signature(add_input_layout(lanes)))
        Storage codes of A and B.
    o : Out(stream.Signature(ArrayLayout(signed(8), lanes)))
        Storage codes of the sum, in order.
    params : In(add_param_layout())
        The layer's constants (``add_arith.AddParams``).
    base : In(table_addr_width)
        Table memory row of the layer's table (the ADD instruction's ``lut_base``).
    tab_rd : Out(table_read_port(lanes, table_addr_width, TABLE_BITS))
        The lanes' table reads.
    """

    # Fields of each pipeline register, per lane. The arithmetic is cut so that no stage holds more than
    # one carry chain or one variable shifter: a stage that rounds is split into two shift steps (quotient,
    # round-up bit: `rne_shift_coarse`, `rne_shift_fine`) and the increment, and the multipliers' products
    # are registered twice, so the unit runs at the clock of the array.
    _STAGES = (
        {"v": signed(8)},                                                      # 0: table read issued
        {"neg": 1, "t": signed(VALUE_BITS), "ts": 1},       # 1: (|v + v_off| in the multipliers' registers)
        {"neg": 1, "t": signed(VALUE_BITS), "ts": 1},       # 2: (partial products in the multipliers')
        {"neg": 1, "lo": unsigned(27), "hi": unsigned(17), "t": signed(VALUE_BITS), "ts": 1},  # 2b: again
        {"neg": 1, "p": unsigned(32), "t": signed(VALUE_BITS), "ts": 1},       # 3: |v| * m
        {"neg": 1, "p": unsigned(32), "x": unsigned(4), "t": signed(VALUE_BITS), "ts": 1},  # 4
        {"neg": 1, "part": unsigned(33), "fine": unsigned(2), "lost": 1, "x": unsigned(4), "t": signed(VALUE_BITS),
         "ts": 1},                                                             # 5a
        {"neg": 1, "q": unsigned(32), "up": 1, "x": unsigned(4), "t": signed(VALUE_BITS), "ts": 1},  # 5
        {"neg": 1, "q": unsigned(33), "x": unsigned(4), "t": signed(VALUE_BITS), "ts": 1},  # 6: incremented
        {"neg": 1, "p": unsigned(33), "t": signed(VALUE_BITS), "ts": 1},       # 6b: product rounded
        {"neg": 1, "lp": unsigned(_MAG_BITS), "rp": unsigned(33), "lost": 1, "t": signed(VALUE_BITS),
         "ts": 1},                                                             # 7: window, coarse shifts
        {"neg": 1, "mag": unsigned(_MAG_BITS), "xs": 1, "t": signed(VALUE_BITS), "ts": 1},  # 7b: window
        {"x": signed(VALUE_BITS), "xs": 1, "t": signed(VALUE_BITS), "ts": 1},  # 8: in the window
        {"s": signed(SUM_BITS), "st": 1},                                      # 9: the sum
        {"neg": 1, "mag": unsigned(SUM_BITS + 1), "st": 1},                    # 10: |sum|
        {"neg": 1, "mag": unsigned(41), "st": 1, "k": unsigned(5), "ik": unsigned(5), "big": 1, "small": 1},  # 11
        {"neg": 1, "part": unsigned(29), "fine": unsigned(2), "lost": 1, "ik": unsigned(5), "big": 1,
         "small": 1},                                                          # 12
        {"neg": 1, "q": unsigned(25), "up": 1, "ik": unsigned(5), "big": 1, "small": 1},   # 13
        {"neg": 1, "sig": unsigned(25), "ik": unsigned(5), "big": 1, "small": 1},  # 14: float32
        {"neg": 1, "part": unsigned(26), "fine": unsigned(2), "lost": 1, "big": 1, "small": 1},  # 15
        {"neg": 1, "q": unsigned(25), "up": 1, "big": 1, "small": 1},          # 16
        {"neg": 1, "mag": unsigned(10)},                                       # 17: |integer|, saturated
        {"v": signed(11)},                                                     # 18: the integer
        {"v": signed(11)},                                                     # 19: >= lo
        {"q": signed(8)},                                                      # 20: the code
    )

    def __init__(self, lanes: int, table_addr_width: int = 10):
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes <= 0:
            self._MustUse__used = True
            raise ValueError(f"lanes must be a positive int, not {lanes!r}")
        self._lanes = lanes
        self._aw = table_addr_width
        super().__init__({
            "i": In(stream.Signature(add_input_layout(lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
            "params": In(add_param_layout()),
            "base": In(table_addr_width),
            "tab_rd": Out(table_read_port(lanes, table_addr_width, TABLE_BITS)),
        })

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def latency(self) -> int:
        """Cycles from a transfer on ``i`` to its result on ``o`` (when ``o`` is not stalled)."""
        assert len(self._STAGES) == add_unit_latency()
        return add_unit_latency()

    def elaborate(self, platform):
        m = Module()
        lanes, p = self._lanes, self.params

        # One register per stage and lane. (Not one array-shaped signal per stage: its lane views would be
        # named ``s4[1]``, like the bits of ``s4`` in the netlist, and nextpnr then merges unrelated nets.)
        regs = [[Signal(data.StructLayout(f), name=f"s{n}_lane{lane}", reset_less=True) for lane in range(lanes)]
                for n, f in enumerate(self._STAGES)]
        valids, loads = elastic_handshake(m, self.i, self.o, len(self._STAGES))

        # Stage 0: the table read (the word arrives with stage 0's register).
        m.d.comb += self.tab_rd.en.eq(self.i.valid & loads[0])
        for lane in range(lanes):
            pair = self.i.payload[lane]
            u = Mux(p.table_on_a, pair.a, pair.b)
            v = Mux(p.table_on_a, pair.b, pair.a)
            m.d.comb += self.tab_rd.addr[lane].eq(self.base + (u.as_unsigned() ^ 0x80))
            with m.If(loads[0]):
                m.d.sync += regs[0][lane].v.eq(v)

        # Per-layer constants derived from ``params`` once, into registers, instead of in the stages that
        # use them: ``params`` is stable while items are in the unit, and an item needs them no sooner
        # than 6 stages after it entered. The window shift (left, or right with the lost bits' mask),
        # the clamp bounds and the upper one with the storage offset added.
        left_sh, right_sh = Signal(5), Signal(6)
        sh_left, lost_mask = Signal(), Signal(33)
        lo, hi = Signal.like(p.lo), Signal.like(p.hi)
        hi_off = Signal(signed(11))
        m.d.sync += [
            left_sh.eq(p.sh.as_unsigned()[:5]), right_sh.eq((-p.sh).as_unsigned()[:6]), sh_left.eq(p.sh >= 0),
            # From the registered right_sh (a cycle later: still long before any item needs it), as a
            # thermometer code (no carry chain).
            lost_mask.eq(~(Const(-1, 33).as_unsigned() << right_sh)[:33]),
            lo.eq(p.lo), hi.eq(p.hi), hi_off.eq(p.hi + p.out_off),
        ]
        # Each lane reads its own copy of the constants (a register more: the lanes sit apart, next to their
        # table memories and multipliers, and one register's wires to all of them took most of a cycle).
        # ``v_off`` and ``m`` are needed first, by an item's stages 1 and 2: from a copy of ``params`` made
        # the cycle the item enters; the derived ones long after.
        consts = data.StructLayout({
            "v_off": p.v_off.shape(), "m": p.m.shape(), "round_product": 1, "left_sh": 5, "right_sh": 6,
            "sh_left": 1, "lost_mask": 33, "lo": lo.shape(), "hi": hi.shape(), "hi_off": signed(11),
            "out_off": p.out_off.shape()})
        shared = Signal(consts)
        m.d.comb += [shared.v_off.eq(p.v_off), shared.m.eq(p.m), shared.round_product.eq(p.round_product),
                     shared.left_sh.eq(left_sh), shared.right_sh.eq(right_sh), shared.sh_left.eq(sh_left),
                     shared.lost_mask.eq(lost_mask), shared.lo.eq(lo), shared.hi.eq(hi), shared.hi_off.eq(hi_off),
                     shared.out_off.eq(p.out_off)]
        const = lane_copies(m, shared, lanes, "const")

        def step(index, compute):
            with m.If(loads[index]):
                for lane in range(lanes):
                    for name, value in compute(lane, regs[index - 1][lane]).items():
                        m.d.sync += regs[index][lane][name].eq(value)

        # |v| * m: two products that each fit one DSP multiplier (m split at bit 17), each a
        # `RegisteredMultiplier` whose operand register for |v| is stage 1's and whose product register is
        # stage 2's (the DSP block's own registers on ECP5). Its ``m`` register loads every cycle from
        # ``params``, as the lane's copy of the constants does.
        products = []
        for lane in range(lanes):
            magnitude = Signal(10, name=f"a_lane{lane}")
            m.d.comb += magnitude.eq(abs(regs[0][lane].v + const[lane].v_off))
            products.append(split_multiply(m, lane, magnitude, shared.m, loads[1], loads[2]))

        def stage1(lane, r):
            code = r.v + const[lane].v_off
            word = data.View(data.StructLayout({"value": signed(VALUE_BITS), "sticky": 1}),
                             self.tab_rd.data[lane])
            return dict(neg=code < 0, t=word.value, ts=word.sticky)

        def keep(r, *names):
            return {name: r[name] for name in ("t", "ts", *names)}

        def stage2(lane, r):  # the products: in the multipliers' registers
            return dict(neg=r.neg, **keep(r))

        def stage2b(lane, r):  # the products registered again (the DSP blocks' outputs feed registers only)
            return dict(neg=r.neg, lo=products[lane]["lo"], hi=products[lane]["hi"], **keep(r))

        def stage3(lane, r):
            return dict(neg=r.neg, p=r.lo + (r.hi << 17), **keep(r))

        def stage4(lane, r):
            return dict(neg=r.neg, p=r.p, x=Mux(const[lane].round_product, excess_bits(r.p, 24), 0), **keep(r))

        def stage5a(lane, r):  # sse2: f32(v * r), the product rounded to 24 significant bits (coarse shift,
            part, fine, lost = rne_shift_coarse(r.p, r.x)
            return dict(neg=r.neg, part=part, fine=fine, lost=lost, x=r.x, **keep(r))

        def stage5(lane, r):  # ... fine shift,
            q, up = rne_shift_fine(r.part, r.fine, r.lost)
            return dict(neg=r.neg, q=q, up=up, x=r.x, **keep(r))

        def stage6(lane, r):  # ... the increment,
            return dict(neg=r.neg, q=r.q + r.up, x=r.x, **keep(r))

        def stage6b(lane, r):  # ... and back to the product's scale (x == 0: unchanged)
            return dict(neg=r.neg, p=r.q << r.x, **keep(r))

        # Into the window: left shift, or right shift into the sticky bit, in two steps (by the amount's
        # high bits, then its two low bits: one shifter is too deep for a cycle).
        def stage7(lane, r):
            c = const[lane]
            left = (r.p << Cat(Const(0, 2), c.left_sh[2:]))[:_MAG_BITS]
            right = r.p >> Cat(Const(0, 2), c.right_sh[2:])
            return dict(neg=r.neg, lp=left, rp=right, lost=(r.p & c.lost_mask).any(), **keep(r))

        def stage7b(lane, r):
            c = const[lane]
            left = (r.lp << c.left_sh[:2])[:_MAG_BITS]
            right = r.rp >> c.right_sh[:2]
            return dict(neg=r.neg, mag=Mux(c.sh_left, left, right), xs=Mux(c.sh_left, 0, r.lost), **keep(r))

        def stage8(lane, r):  # the signed value (floor of a negative one when bits were lost)
            value = Mux(r.neg, Mux(r.xs, -r.mag - 1, -r.mag), r.mag)
            return dict(x=value, xs=r.xs, **keep(r))

        def stage9(lane, r):
            return dict(s=r.t + r.x, st=r.ts | r.xs)

        def stage10(lane, r):  # magnitude (floor + sticky)
            neg = r.s < 0
            return dict(neg=neg, mag=Mux(neg, Mux(r.st, ~r.s, -r.s), r.s).as_unsigned(), st=r.st)

        def stage11(lane, r):  # range, float32 rounding position k, and the integer's 32 - k (no subtractor)
            k, ik = Const(8, 5), Const(FRAC_BITS - 8, 5)
            for bit in range(FRAC_BITS, FRAC_BITS + 9):
                k, ik = Mux(r.mag[bit], bit - 23, k), Mux(r.mag[bit], FRAC_BITS - (bit - 23), ik)
            return dict(neg=r.neg, mag=r.mag[:41], st=r.st, k=k, ik=ik, big=r.mag >= _SAT, small=r.mag < _HALF)

        # Round to 24 significant bits (only the low 25 bits of the result matter: 29 bits of the coarse
        # shift hold them with the bits below), in two shift steps and the increment.
        def stage12(lane, r):
            part, fine, lost = rne_shift_coarse(r.mag, r.k, r.st, width=29)
            return dict(neg=r.neg, part=part, fine=fine, lost=lost, ik=r.ik, big=r.big, small=r.small)

        def stage13(lane, r):
            q, up = rne_shift_fine(r.part, r.fine, r.lost)
            return dict(neg=r.neg, q=q, up=up, ik=r.ik, big=r.big, small=r.small)

        def stage14(lane, r):
            return dict(neg=r.neg, sig=r.q + r.up, ik=r.ik, big=r.big, small=r.small)

        def stage15(lane, r):  # round to an integer (two shift steps, then the increment in stage 17)
            part, fine, lost = rne_shift_coarse(r.sig, r.ik)
            return dict(neg=r.neg, part=part, fine=fine, lost=lost, big=r.big, small=r.small)

        def stage16(lane, r):
            q, up = rne_shift_fine(r.part, r.fine, r.lost)
            return dict(neg=r.neg, q=q, up=up, big=r.big, small=r.small)

        def stage17(lane, r):  # saturate: |value| <= 512 fits the field
            return dict(neg=r.neg, mag=Mux(r.big, 512, Mux(r.small, 0, r.q + r.up)))

        def stage18(lane, r):
            return dict(v=Mux(r.neg, -r.mag, r.mag))

        def stage19(lane, r):  # clamp: max first, then min (as onnxruntime)
            c = const[lane]
            return dict(v=Mux(r.v < c.lo, c.lo, r.v))

        def stage20(lane, r):  # min and the storage offset side by side: one carry chain deep
            c = const[lane]
            return dict(q=Mux(r.v > c.hi, c.hi_off, r.v + c.out_off))

        stages = (stage1, stage2, stage2b, stage3, stage4, stage5a, stage5, stage6, stage6b, stage7, stage7b, stage8,
                  stage9, stage10, stage11, stage12, stage13, stage14, stage15, stage16, stage17, stage18, stage19,
                  stage20)
        assert len(stages) == len(self._STAGES) - 1
        for index, compute in enumerate(stages, 1):
            step(index, compute)

        m.d.comb += self.o.valid.eq(valids[-1])
        for lane in range(lanes):
            m.d.comb += self.o.payload[lane].eq(regs[-1][lane].q)
        return m
