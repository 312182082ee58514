"""Accumulator memory of the MATMUL engine: ``acc[p] = (0 if first else acc[p]) + y``.

Results of the array arrive one vector per transfer with the accumulator row ``p`` they belong to
and two flags: ``first`` (reduction step ``t == 0``: start from zero) and ``last`` (``t == taps-1``:
the sum is complete). A complete sum is not written back; it leaves on ``o`` instead (the engine
adds the bias and requantizes it), so no separate drain pass over the memory is needed.

Read-modify-write in three steps. Cycle 1: the transfer on ``i`` reads ``acc[p]`` (synchronous read)
and the item moves into register stage B. Cycle 2: the row read goes into register stage C with the
item (no logic after the block RAM's output). Cycle 3: stage C adds the row to ``y`` and writes the
sum back (or hands it to the output register when ``last``). The hazard: a read does not see a write
of its own cycle or a later one, so an item misses the sums of the two items ahead of it when they
write its row -- the same pixel in a row, which is every transfer of a DENSE instruction (one pixel
per chunk). Those cases are forwarded (see the code); a stalled stage C writes nothing, so no other
case exists. Full throughput, no stall.

Stage C moves on unless it holds a ``last`` item while the two-entry output queue is full (its room is a
register, so ``o.ready`` reaches no logic in front of it); while it waits, B waits too and the read port
is not enabled, so its data holds.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import accumulator_latency

__all__ = ["Accumulator", "accumulator_input_layout", "accumulator_output_layout"]


def accumulator_input_layout(lanes: int, addr_width: int, extra: ShapeLike = 1) -> data.StructLayout:
    """Payload of `Accumulator.i`: the array's result vector ``y``, its row and flags, and ``extra``."""
    return data.StructLayout({
        "y": data.ArrayLayout(signed(32), lanes),
        "p": addr_width,
        "first": 1,
        "last": 1,
        "extra": extra,
    })


def accumulator_output_layout(lanes: int, extra: ShapeLike = 1) -> data.StructLayout:
    """Payload of `Accumulator.o`: a complete sum and the ``extra`` of its last item."""
    return data.StructLayout({"acc": data.ArrayLayout(signed(32), lanes), "extra": extra})


class Accumulator(wiring.Component):
    """Read-modify-write accumulator memory, ``lanes`` int32 sums per row (module docstring).

    Parameters
    ----------
    lanes : int
        Sums per row (the array's columns).
    depth : int
        Rows of the accumulator memory.
    extra : ShapeLike
        Shape of a field passed from the ``last`` item of a sum to its output (``unsigned(1)``
        when unused).

    Members
    -------
    i : In(stream.Signature(accumulator_input_layout(lanes, addr_width, extra)))
    o : Out(stream.Signature(accumulator_output_layout(lanes, extra)))
        One transfer per ``last`` item, in order.
    """

    def __init__(self, lanes: int, depth: int, extra: ShapeLike = 1):
        self._lanes = lanes
        self._depth = depth
        self._extra = extra
        self._addr_width = max(1, (depth - 1).bit_length())
        super().__init__({
            "i": In(stream.Signature(accumulator_input_layout(lanes, self._addr_width, extra))),
            "o": Out(stream.Signature(accumulator_output_layout(lanes, extra))),
        })

    @property
    def latency(self) -> int:
        """Cycles from the ``last`` transfer on ``i`` to its sum on ``o`` (``o`` not stalled): read, register
        the row read, add (``arch.latency.accumulator_latency``)."""
        return accumulator_latency()

    def elaborate(self, platform):
        m = Module()
        lanes = self._lanes
        vector = data.ArrayLayout(signed(32), lanes)
        item = accumulator_input_layout(lanes, self._addr_width, self._extra)
        # A read that meets the write of its row in the same cycle has its data replaced by the forwarded sum
        # (below), so what the memory returns then does not matter: ``no_rw_check`` spares the comparator and
        # bypass mux yosys would otherwise add behind the block RAM.
        m.submodules.memory = memory = Memory(shape=vector, depth=self._depth, init=[],
                                              attrs={"no_rw_check": 1})
        rd = memory.read_port()
        wr = memory.write_port()

        # Stage B: the item whose row is being read (the row arrives on rd.data). Stage C: the item with
        # its previous sum in a register -- the memory's output goes straight into a register, since a
        # block RAM's clock-to-output leaves no time for the adder in the same cycle -- adding and
        # writing back. An item moves from B to C whenever C is empty or moving, and C moves unless it
        # holds a ``last`` item while the output register is full.
        b_valid, c_valid = Signal(), Signal()
        b = Signal(item, reset_less=True)
        c = Signal(item, reset_less=True)
        c_prev = Signal(vector, reset_less=True)
        c_fwd = Signal(reset_less=True)            # C's previous sum is the one C held before (last_total)
        last_total = Signal(vector, reset_less=True)  # the sum of the item that last left C

        total = Signal(vector)
        for lane in range(lanes):
            # The int32 register truncates the 33-bit sum: two's-complement wrap, as onnxruntime.
            prev = Mux(c.first, 0, Mux(c_fwd, last_total[lane], c_prev[lane]))
            m.d.comb += total[lane].eq(c.y[lane] + prev)

        # The output is a two-entry queue whose room is a register: stage C never looks at ``o.ready``
        # (the back-pressure of the units behind reaches this unit one cycle later, not through it).
        o_count = Signal(range(3))
        o_room = Signal(init=1)  # o_count < 2
        c_move = c_valid & (~c.last | o_room)
        b_move = b_valid & (~c_valid | c_move)
        m.d.comb += self.i.ready.eq(~b_valid | b_move)
        fire = self.i.valid & self.i.ready

        writing = c_valid & ~c.last  # such an item always moves on
        m.d.comb += [wr.en.eq(writing), wr.addr.eq(c.p), wr.data.eq(total)]
        m.d.comb += [rd.en.eq(fire), rd.addr.eq(self.i.payload.p)]

        # Forwarding. A read does not see the write of the same cycle, nor later ones: an item misses
        # the sums of the (at most two) items ahead of it when they write its row after its read. The
        # item two ahead writes in the cycle of the read, if at all (it is in C then): its sum is kept
        # with the item in B (``b_fwd``). The item right ahead writes in the cycle this one moves from B
        # to C (it is in C then, moving): its sum wins, being newer -- the item is flagged (``c_fwd``) and
        # takes it from ``last_total`` in C, so no adder output meets a mux in front of a register.
        b_fwd = Signal(reset_less=True)
        b_fwd_sum = Signal(vector, reset_less=True)
        with m.If(fire):
            m.d.sync += [
                b_valid.eq(1),
                b.eq(self.i.payload),
                b_fwd.eq(writing & (c.p == self.i.payload.p)),
                b_fwd_sum.eq(total),
            ]
        with m.Elif(b_move):
            m.d.sync += b_valid.eq(0)

        # The block RAM's data is late (clock-to-output): it meets one mux, whose select and other input
        # are registers.
        with m.If(c_move):
            m.d.sync += last_total.eq(total)
        with m.If(b_move):
            m.d.sync += [
                c_valid.eq(1),
                c.eq(b),
                c_fwd.eq(writing & (c.p == b.p)),
                c_prev.eq(Mux(b_fwd, b_fwd_sum, rd.data)),
            ]
        with m.Elif(c_move):
            m.d.sync += c_valid.eq(0)

        # Output queue: ``q[0]`` is on ``o``; a sum joins behind what is queued.
        entry = data.StructLayout({"acc": vector, "extra": self._extra})
        q = [Signal(entry, name=f"o{k}", reset_less=True) for k in range(2)]
        arrival = Signal(entry)
        m.d.comb += [arrival.acc.eq(total), arrival.extra.eq(c.extra)]
        push = c_valid & c.last & o_room
        pop = self.o.valid & self.o.ready
        with m.Switch(o_count):
            with m.Case(0), m.If(push):
                m.d.sync += [q[0].eq(arrival), o_count.eq(1)]
            with m.Case(1):
                with m.If(push & pop):
                    m.d.sync += q[0].eq(arrival)
                with m.Elif(push):
                    m.d.sync += [q[1].eq(arrival), o_count.eq(2), o_room.eq(0)]
                with m.Elif(pop):
                    m.d.sync += o_count.eq(0)
            with m.Case(2), m.If(pop):
                m.d.sync += [q[0].eq(q[1]), o_count.eq(1), o_room.eq(1)]
        m.d.comb += [self.o.valid.eq(o_count != 0), self.o.payload.acc.eq(q[0].acc),
                     self.o.payload.extra.eq(q[0].extra)]
        return m
