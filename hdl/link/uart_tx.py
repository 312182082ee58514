"""UART transmitter, 8N1, at a run-time baud divisor: start bit, eight data bits least significant first,
stop bit, each ``divisor`` clocks long; the line idles high."""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartTx"]


class UartTx(wiring.Component):
    """The transmitting half of the UART.

    Parameters
    ----------
    divisor_bits : int
        Width of ``divisor``.

    Members
    -------
    tx : Out(1)
        The serial line (idle high).
    divisor : In(divisor_bits)
        Clocks per bit (at least 1).
    bytes : In(stream.Signature(8))
        Bytes to send; ``ready`` while the transmitter is idle.
    """

    def __init__(self, divisor_bits: int = 16):
        super().__init__({"tx": Out(1, init=1), "divisor": In(divisor_bits), "bytes": In(stream.Signature(8))})
        self._bits = divisor_bits

    def elaborate(self, platform):
        m = Module()
        frame = Signal(10, init=1)  # the bits still to send, the current one in bit 0 (idle: 1)
        left = Signal(range(11))
        timer = Signal(self._bits)
        m.d.comb += [self.tx.eq(frame[0]), self.bytes.ready.eq(left == 0)]
        idle = left == 0
        with m.If(idle & self.bytes.valid):
            m.d.sync += [frame.eq(Cat(C(0, 1), self.bytes.payload, C(1, 1))), left.eq(10),
                         timer.eq(self.divisor - 1)]
        with m.Elif(~idle & (timer == 0)):
            m.d.sync += [frame.eq(Cat(frame[1:], C(1, 1))), left.eq(left - 1), timer.eq(self.divisor - 1)]
        with m.Elif(~idle):
            m.d.sync += timer.eq(timer - 1)
        return m
