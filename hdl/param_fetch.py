"""Bias and requantization parameters for each complete sum: ``prm`` row ``p_base + j``.

The sums of one output block ``j`` arrive together (all pixels of a block before the next block),
so the unit keeps the ``prm`` row of the block it saw last. When a sum of another block arrives (or
after ``clear``, at the start of each instruction) it reads row ``base + j`` -- two cycles -- and
then passes sums at one per cycle: ``acc + bias`` (int32, wrapping) with ``M`` and ``E`` per lane,
into the payload of the `Requantizer`.

The `Requantizer` takes the output zero point and clamp once per transfer, while ``prm`` stores
them per channel: lane 0's values go to the requantizer (the zero point is per tensor, and lane 0
is always a real channel), and the per-lane clamp bounds travel alongside (``bounds``) for a
second clamp after it. That second clamp changes nothing in the lanes of real channels (same
bounds), and pins padding lanes (bias 0, ``lo == hi == zero point`` from the compiler) to the zero
point whatever the real channels' clamp is.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.params import channel_layout

from . import ports
from .requantizer import requantizer_input_layout

__all__ = ["ParamFetch", "clamp_layout", "param_fetch_input_layout", "param_fetch_output_layout"]


def param_fetch_input_layout(lanes: int, extra: ShapeLike = 1) -> data.StructLayout:
    """Payload of `ParamFetch.i`: a sum vector, its output block ``j`` and a pass-through field."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(32), lanes), "j": 8, "extra": extra})


def clamp_layout(lanes: int) -> data.ArrayLayout:
    """Per-lane output clamp bounds (codes): ``lanes`` of (lo, hi)."""
    return data.ArrayLayout(data.StructLayout({"lo": signed(8), "hi": signed(8)}), lanes)


def param_fetch_output_layout(lanes: int, extra: ShapeLike = 1) -> data.StructLayout:
    """Payload of `ParamFetch.o`: the `Requantizer` input, per-lane clamp bounds, the pass-through field."""
    return data.StructLayout({"req": requantizer_input_layout(lanes), "bounds": clamp_layout(lanes),
                              "extra": extra})


class ParamFetch(wiring.Component):
    """Attaches each block's ``prm`` row to its sums and adds the bias (module docstring).

    Parameters
    ----------
    lanes : int
    addr_width : int
        Address bits of the ``prm`` memory.
    extra : ShapeLike
        Shape of the field passed from ``i`` to ``o`` unchanged.

    Members
    -------
    i : In(stream.Signature(param_fetch_input_layout(lanes, extra)))
    o : Out(stream.Signature(param_fetch_output_layout(lanes, extra)))
    prm : Out(ports.read_port(addr_width, ArrayLayout(channel_layout(), lanes)))
        A memory read port, or a captured one (`ports.captured`); either holds the row read until the
        next read.
    base : In(12)
        ``prm`` row of block 0 (the instruction's ``p_base``); stable while sums flow.
    clear : In(1)
        Forget the row held (high for at least one cycle between two instructions).
    """

    def __init__(self, lanes: int, addr_width: int, extra: ShapeLike = 1):
        self._lanes = lanes
        self._extra = extra
        super().__init__({
            "i": In(stream.Signature(param_fetch_input_layout(lanes, extra))),
            "o": Out(stream.Signature(param_fetch_output_layout(lanes, extra))),
            "prm": Out(ports.read_port(addr_width, data.ArrayLayout(channel_layout(), lanes))),
            "base": In(12),
            "clear": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes

        # The row read is used where it lands, on ``prm.data`` (held there until the next read): with the
        # top level's captured port that is a register next to the block RAM, and no second copy is made.
        params = self.prm.data
        have = Signal()
        held_j = Signal(8)
        reading = Signal()   # a prm read was issued last cycle
        match = have & (held_j == self.i.payload.j)

        m.d.comb += [self.prm.addr.eq(self.base + self.i.payload.j), self.prm.en.eq(0)]
        m.d.sync += reading.eq(0)
        with m.If(reading):
            m.d.sync += have.eq(1)
        with m.Elif(self.i.valid & ~match):
            m.d.comb += self.prm.en.eq(1)
            m.d.sync += [reading.eq(1), held_j.eq(self.i.payload.j)]
        with m.If(self.clear):
            m.d.sync += [have.eq(0), reading.eq(0)]

        o_valid = Signal()
        o_payload = Signal(param_fetch_output_layout(lanes, self._extra), reset_less=True)
        o_free = ~o_valid | self.o.ready
        m.d.comb += self.i.ready.eq(match & ~reading & o_free)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += o_valid.eq(1)
        with m.Elif(self.o.ready):
            m.d.sync += o_valid.eq(0)
        # The output register loads whenever it is free (its content only matters with ``o_valid``): its
        # enable does not wait for the block-match comparison behind ``i.ready``.
        with m.If(o_free):
            for lane in range(lanes):
                m.d.sync += [
                    o_payload.req.lanes[lane].acc.eq(self.i.payload.acc[lane] + params[lane].bias),
                    o_payload.req.lanes[lane].m.eq(params[lane].m),
                    o_payload.req.lanes[lane].e.eq(params[lane].e),
                    o_payload.bounds[lane].lo.eq(params[lane].lo),
                    o_payload.bounds[lane].hi.eq(params[lane].hi),
                ]
            m.d.sync += [
                o_payload.req.y_zp.eq(params[0].zp),
                o_payload.req.qmin.eq(params[0].lo),
                o_payload.req.qmax.eq(params[0].hi),
                o_payload.extra.eq(self.i.payload.extra),
            ]
        m.d.comb += [self.o.valid.eq(o_valid), self.o.payload.eq(o_payload)]
        return m
