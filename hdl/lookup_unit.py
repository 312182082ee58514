"""Lookup unit: a 256-entry table per lane (QLinearLeakyRelu, QLinearSigmoid, any unary op on codes).

Lane ``l`` maps its int8 storage code ``x`` to ``lut[base + (x + 128)][l]`` (the code's index in its
type: ``x + 128`` for both int8 codes and uint8 codes stored as ``code - 128``; the table holds output
codes in storage form). The tables live in a memory the unit does not own, read through ``lut_rd``:
one read port per lane (each lane has its own address), so the top level builds ``lanes`` copies of
the 8-bit ``lut`` memory (or one memory with ``lanes`` read ports). The word read is registered before it
leaves (a block RAM's clock-to-output leaves no time for the logic behind the unit); the read port must
hold its data while ``en`` is low (Amaranth ``Memory`` read ports do): a read whose word cannot move into
the output register yet keeps it in the memory's output.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import lookup_unit_latency

from .add_unit import table_read_port
from .pipeline import elastic_handshake

__all__ = ["LookupUnit"]


class LookupUnit(wiring.Component):
    """Per-lane table lookup, one transfer per cycle, latency 2 (the read, the output register).

    Parameters
    ----------
    lanes : int
        Codes per transfer.
    addr_width : int
        Address width of the table memory.

    Members
    -------
    i : In(stream.Signature(ArrayLayout(signed(8), lanes)))
        Storage codes.
    o : Out(stream.Signature(ArrayLayout(signed(8), lanes)))
        Table outputs, in order.
    base : In(addr_width)
        Row of entry 0 of the table (stable while items are in the unit).
    lut_rd : Out(table_read_port(lanes, addr_width, 8))
        The lanes' table reads.
    """

    def __init__(self, lanes: int, addr_width: int = 12):
        self._lanes = lanes
        vector = data.ArrayLayout(signed(8), lanes)
        super().__init__({
            "i": In(stream.Signature(vector)),
            "o": Out(stream.Signature(vector)),
            "base": In(addr_width),
            "lut_rd": Out(table_read_port(lanes, addr_width, 8)),
        })

    @property
    def latency(self) -> int:
        """Cycles from a transfer on ``i`` to its result on ``o``."""
        return lookup_unit_latency()

    def elaborate(self, platform):
        m = Module()
        # Stage 0: the read (its word is on lut_rd.data); stage 1: the output register.
        valids, loads = elastic_handshake(m, self.i, self.o, 2)
        out = Signal(self.o.payload.shape(), reset_less=True)
        m.d.comb += [self.lut_rd.en.eq(self.i.valid & loads[0]), self.o.valid.eq(valids[1]), self.o.payload.eq(out)]
        with m.If(loads[1]):
            m.d.sync += out.eq(self.lut_rd.data)
        for lane in range(self._lanes):
            m.d.comb += self.lut_rd.addr[lane].eq(self.base + (self.i.payload[lane].as_unsigned() ^ 0x80))
        return m
