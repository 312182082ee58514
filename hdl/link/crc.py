"""CRC-16/CCITT-FALSE, one byte per clock (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR: :func:`systolix.arch.link.crc16`). Running it over a message followed by its CRC (most significant
byte first) leaves 0."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Crc16"]

POLYNOMIAL = 0x1021
INIT = 0xFFFF


class Crc16(wiring.Component):
    """Bytewise CRC-16/CCITT-FALSE.

    Members
    -------
    clear : In(1)
        Back to the initial value (takes precedence over ``en``).
    en : In(1)
        Fold ``data`` in this clock.
    data : In(8)
    crc : Out(16)
        The CRC of the bytes folded in since the last ``clear``.
    """

    def __init__(self):
        super().__init__({"clear": In(1), "en": In(1), "data": In(8), "crc": Out(16, init=INIT)})

    def elaborate(self, platform):
        m = Module()
        value = Signal(16)
        m.d.comb += value.eq(self.crc ^ Cat(C(0, 8), self.data))  # data into the top byte
        for step in range(8):  # one polynomial step per bit, most significant first (a signal each: no blow-up)
            after = Signal(16, name=f"step{step}")
            m.d.comb += after.eq(Cat(C(0, 1), value[:15]) ^ (value[15].replicate(16) & POLYNOMIAL))
            value = after
        with m.If(self.clear):
            m.d.sync += self.crc.eq(INIT)
        with m.Elif(self.en):
            m.d.sync += self.crc.eq(value)
        return m
