"""A synchronous memory read port turned into a ready/valid stream.

Memory reads are synchronous: the data comes the cycle after the address. A reader that must obey
back-pressure cannot simply stop the memory (the port may be shared, and its output is only
guaranteed for one cycle), so `SyncReader` keeps what it has asked for. The data of a read is first
registered as it arrives (``landed``): a block RAM's clock-to-output (about 5.8 ns on an ECP5 DP16KD
without its output register) leaves no time for logic behind it, so nothing but that register sees the
memory's output. At most three rows are owned at any time -- reads in flight, the landed one and queued
ones -- and a three-entry queue holds them; a new read is issued only while fewer than three are owned,
so nothing is ever dropped. A landed row goes straight to the output when the queue is empty, which with
an always-ready consumer gives one row per cycle, `latency` cycles after its request.

On a captured port (``port_latency=2``, `ports.captured`) the row already arrives in a register, two
cycles after its read and held until the next one lands: it is the landed row itself, and the reader adds
no register of its own (same `latency`).

Each request carries a ``tag`` that comes back with its data (the callers use it for flags that
must travel with the row).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import ShapeLike
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import sync_reader_latency

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
    port_latency : {1, 2}
        Cycles from a read to its row on ``rd.data``: 1 for a memory port, 2 for a captured one.
    always_read : bool
        Keep ``rd.en`` high: the memory reads ``i.payload.addr`` every cycle and only the rows of accepted
        requests are kept. For a wide memory of many block RAMs fed by an address that comes straight from a
        register: the read enable would otherwise be a function of the handshake, a net to every block RAM.

    Members
    -------
    i : In(stream.Signature(StructLayout({"addr": addr_width, "tag": tag_shape})))
        Read requests.
    o : Out(stream.Signature(StructLayout({"data": shape, "tag": tag_shape})))
        The rows read, in request order, with their tags.
    rd : Out(ports.read_port(addr_width, shape))
        The memory read port.
    """

    def __init__(self, addr_width: int, shape: ShapeLike, tag_shape: ShapeLike = 1, port_latency: int = 1,
                 always_read: bool = False):
        if port_latency not in (1, 2):
            self._MustUse__used = True  # not a design left unused: it failed to build
            raise ValueError(f"port_latency must be 1 or 2, not {port_latency!r}")
        self._port_latency = port_latency
        self._always_read = bool(always_read)
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
        return sync_reader_latency()

    def elaborate(self, platform):
        m = Module()
        entry = data.StructLayout({"data": self._shape, "tag": self._tag_shape})
        depth = 3

        inflight = Signal()                       # a read issued last cycle: its data is on rd.data now
        inflight_tag = Signal(self._tag_shape, reset_less=True)
        landed_valid = Signal()                   # the row read two cycles ago, registered
        landed_reg = Signal(entry, reset_less=True)
        queue = [Signal(entry, name=f"q{k}", reset_less=True) for k in range(depth)]
        count = Signal(range(depth + 1))

        # Owned rows: queued, landed, in flight (a function of four register bits: one LUT).
        m.d.comb += self.i.ready.eq(count + inflight + landed_valid <= depth - 1)
        fire_i = self.i.valid & self.i.ready
        m.d.comb += [self.rd.addr.eq(self.i.payload.addr), self.rd.en.eq(1 if self._always_read else fire_i)]
        m.d.sync += [inflight.eq(fire_i), landed_valid.eq(inflight)]
        with m.If(fire_i):
            m.d.sync += inflight_tag.eq(self.i.payload.tag)
        with m.If(inflight):
            m.d.sync += landed_reg.tag.eq(inflight_tag)
            if self._port_latency == 1:
                m.d.sync += landed_reg.data.eq(self.rd.data)
        if self._port_latency == 1:
            landed = landed_reg
        else:  # the captured port's register is the landed row
            landed = Signal(entry)
            m.d.comb += [landed.data.eq(self.rd.data), landed.tag.eq(landed_reg.tag)]

        # The queue is a ring: a landed row is written into the slot at ``tail`` whenever it lands (a slot is
        # free then: a read is issued only while fewer than three rows are owned), and ``tail`` moves on
        # unless the row bypassed an empty queue. So the queue's registers load on register conditions only;
        # ``o.ready`` reaches the pointers and the count, not the rows.
        head = Signal(range(depth))
        tail = Signal(range(depth))
        queued = Signal(entry)
        with m.Switch(head):
            for k in range(depth):
                with m.Case(k):
                    m.d.comb += queued.eq(queue[k])
        m.d.comb += [
            self.o.valid.eq((count != 0) | landed_valid),
            self.o.payload.eq(Mux(count != 0, queued, landed)),
        ]
        pop = self.o.valid & self.o.ready
        pop_queued = pop & (count != 0)
        push = landed_valid & ~(pop & (count == 0))  # the landed row stays (did not bypass)

        def step(pointer):
            return Mux(pointer == depth - 1, 0, pointer + 1)

        with m.If(landed_valid), m.Switch(tail):
            for k in range(depth):
                with m.Case(k):
                    m.d.sync += queue[k].eq(landed)
        with m.If(push):
            m.d.sync += tail.eq(step(tail))
        with m.If(pop_queued):
            m.d.sync += head.eq(step(head))
        with m.If(push & ~pop_queued):
            m.d.sync += count.eq(count + 1)
        with m.Elif(~push & pop_queued):
            m.d.sync += count.eq(count - 1)
        return m
