"""A synchronous memory read port turned into a ready/valid stream.

Memory reads are synchronous: the data comes the cycle after the address. A reader that must obey
back-pressure cannot simply stop the memory (the port may be shared, and its output is only
guaranteed for one cycle), so `SyncReader` keeps what it has asked for: at most two rows are
owned at any time -- one read in flight plus queued ones -- and a two-entry queue holds them. A new
read is issued only while fewer than two are owned, so nothing is ever dropped. The data of a read
goes straight to the output the cycle it arrives when the queue is empty (no added latency), which
with an always-ready consumer gives one row per cycle.

Each request carries a ``tag`` that comes back with its data (the callers use it for flags that
must travel with the row).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from . import ports

__all__ = ["SyncReader"]


class SyncReader(wiring.Component):
    """Stream of read requests in, stream of (data, tag) out, through a synchronous read port.

    Parameters
    ----------
    addr_width : int
        Address bits of the memory.
    shape : ShapeLike
        Shape of a memory row.
    tag_shape : ShapeLike
        Shape of the tag carried from request to response (``unsigned(1)`` when unused).

    Members
    -------
    i : In(stream.Signature(StructLayout({"addr": addr_width, "tag": tag_shape})))
        Read requests.
    o : Out(stream.Signature(StructLayout({"data": shape, "tag": tag_shape})))
        The rows read, in request order, with their tags.
    rd : Out(ports.read_port(addr_width, shape))
        The memory read port.
    """

    def __init__(self, addr_width: int, shape: ShapeLike, tag_shape: ShapeLike = 1):
        self._shape = shape
        self._tag_shape = tag_shape
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"addr": addr_width, "tag": tag_shape}))),
            "o": Out(stream.Signature(data.StructLayout({"data": shape, "tag": tag_shape}))),
            "rd": Out(ports.read_port(addr_width, shape)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a request on ``i`` to its row on ``o`` (nothing queued, ``o.ready`` high)."""
        return 1

    def elaborate(self, platform):
        m = Module()
        entry = data.StructLayout({"data": self._shape, "tag": self._tag_shape})

        inflight = Signal()                       # a read issued last cycle: its data is on rd.data now
        inflight_tag = Signal(self._tag_shape, reset_less=True)
        queue = [Signal(entry, name=f"q{k}", reset_less=True) for k in range(2)]
        count = Signal(range(3))

        m.d.comb += self.i.ready.eq(count + inflight <= 1)
        fire_i = self.i.valid & self.i.ready
        m.d.comb += [self.rd.addr.eq(self.i.payload.addr), self.rd.en.eq(fire_i)]
        m.d.sync += inflight.eq(fire_i)
        with m.If(fire_i):
            m.d.sync += inflight_tag.eq(self.i.payload.tag)

        arrival = Signal(entry)
        m.d.comb += [arrival.data.eq(self.rd.data), arrival.tag.eq(inflight_tag)]
        m.d.comb += [
            self.o.valid.eq((count != 0) | inflight),
            self.o.payload.eq(Mux(count != 0, queue[0], arrival)),
        ]
        pop = self.o.valid & self.o.ready

        # Queue update: `arrival` joins behind what is queued (or bypasses an empty queue).
        with m.Switch(count):
            with m.Case(0), m.If(inflight & ~pop):
                m.d.sync += [queue[0].eq(arrival), count.eq(1)]
            with m.Case(1):
                with m.If(pop):
                    with m.If(inflight):
                        m.d.sync += queue[0].eq(arrival)
                    with m.Else():
                        m.d.sync += count.eq(0)
                with m.Elif(inflight):
                    m.d.sync += [queue[1].eq(arrival), count.eq(2)]
            # count == 2: nothing in flight (a read is issued only while fewer than two are owned).
            with m.Case(2), m.If(pop):
                m.d.sync += [queue[0].eq(queue[1]), count.eq(1)]
        return m
