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

from amaranth import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.add_arith import FRAC_BITS, SUM_BITS, TABLE_BITS, VALUE_BITS, add_param_layout

from .pipeline import elastic_handshake
from .rounding import excess_bits, rne_shift_right

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

    # Fields of each pipeline register, per lane.
    _STAGES = (
        {"v": signed(8)},                                                      # 0: table read issued
        {"neg": 1, "p": unsigned(32), "t": signed(VALUE_BITS), "ts": 1},       # 1: |v| * m
        {"neg": 1, "p": unsigned(32), "x": unsigned(4), "t": signed(VALUE_BITS), "ts": 1},  # 2
        {"neg": 1, "p": unsigned(33), "t": signed(VALUE_BITS), "ts": 1},       # 3: product rounded
        {"x": signed(VALUE_BITS), "xs": 1, "t": signed(VALUE_BITS), "ts": 1},  # 4: in the window
        {"s": signed(SUM_BITS), "st": 1},                                      # 5: the sum
        {"neg": 1, "mag": unsigned(41), "st": 1, "k": unsigned(5), "big": 1, "small": 1},  # 6
        {"neg": 1, "sig": unsigned(25), "k": unsigned(5), "big": 1, "small": 1},  # 7: float32
        {"q": signed(8)},                                                      # 8: the code
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
        return len(self._STAGES)

    def elaborate(self, platform):
        m = Module()
        lanes, p = self._lanes, self.params

        regs = [Signal(data.ArrayLayout(data.StructLayout(f), lanes), name=f"s{n}", reset_less=True)
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

        def step(index, compute):
            with m.If(loads[index]):
                for lane in range(lanes):
                    for name, value in compute(lane, regs[index - 1][lane]).items():
                        m.d.sync += regs[index][lane][name].eq(value)

        def stage1(lane, r):
            code = r.v + p.v_off
            word = data.View(data.StructLayout({"value": signed(VALUE_BITS), "sticky": 1}),
                             self.tab_rd.data[lane])
            return dict(neg=code < 0, p=abs(code) * p.m, t=word.value, ts=word.sticky)

        def stage2(lane, r):
            return dict(neg=r.neg, p=r.p, x=Mux(p.round_product, excess_bits(r.p, 24), 0), t=r.t, ts=r.ts)

        def stage3(lane, r):  # sse2: f32(v * r), the product rounded to 24 significant bits
            rounded = rne_shift_right(r.p, r.x) << r.x
            return dict(neg=r.neg, p=Mux(r.x == 0, r.p, rounded), t=r.t, ts=r.ts)

        def stage4(lane, r):  # into the window: left shift, or right shift into the sticky bit
            left = (r.p << p.sh.as_unsigned()[:5])[:_MAG_BITS]
            right_amount = (-p.sh).as_unsigned()[:6]
            right = r.p >> right_amount
            lost = (r.p & ((Const(1, 1) << right_amount) - 1)).any()
            magnitude = Mux(p.sh >= 0, left, right)
            sticky = Mux(p.sh >= 0, 0, lost)
            value = Mux(r.neg, Mux(sticky, -magnitude - 1, -magnitude), magnitude)
            return dict(x=value, xs=sticky, t=r.t, ts=r.ts)

        def stage5(lane, r):
            return dict(s=r.t + r.x, st=r.ts | r.xs)

        def stage6(lane, r):  # magnitude (floor + sticky), range, float32 rounding position
            neg = r.s < 0
            magnitude = Mux(neg, Mux(r.st, ~r.s, -r.s), r.s).as_unsigned()
            k = Const(8, 5)
            for bit in range(FRAC_BITS, FRAC_BITS + 9):
                k = Mux(magnitude[bit], bit - 23, k)
            return dict(neg=neg, mag=magnitude[:41], st=r.st, k=k, big=magnitude >= _SAT,
                        small=magnitude < _HALF)

        def stage7(lane, r):  # round to 24 significant bits
            return dict(neg=r.neg, sig=rne_shift_right(r.mag, r.k, r.st), k=r.k, big=r.big, small=r.small)

        def stage8(lane, r):  # round to an integer, saturate, storage offset
            rounded = rne_shift_right(r.sig, (FRAC_BITS - r.k).as_unsigned()[:5])
            magnitude = Mux(r.big, 512, Mux(r.small, 0, rounded))
            value = Mux(r.neg, -magnitude, magnitude)
            value = Mux(value < p.lo, p.lo, value)
            value = Mux(value > p.hi, p.hi, value)
            return dict(q=value + p.out_off)

        for index, compute in enumerate((stage1, stage2, stage3, stage4, stage5, stage6, stage7, stage8), 1):
            step(index, compute)

        m.d.comb += self.o.valid.eq(valids[-1])
        for lane in range(lanes):
            m.d.comb += self.o.payload[lane].eq(regs[-1][lane].q)
        return m
