"""UART receiver, 8N1, at a run-time baud divisor.

The line is synchronised into the clock domain (two flip-flops), a falling edge on an idle line starts a
byte, the start bit is checked half a bit later, then the eight data bits (least significant first) and the
stop bit are sampled in the middle of each bit, ``divisor`` clocks apart. A byte whose stop bit is low is
not delivered: ``error`` pulses and the receiver waits for the line to go idle (high) again.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx"]


class UartRx(wiring.Component):
    """The receiving half of the UART.

    Parameters
    ----------
    divisor_bits : int
        Width of ``divisor``.

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    divisor : In(divisor_bits)
        Clocks per bit (at least 4).
    bytes : Out(stream.Signature(8, always_ready=True))
        One ``valid`` cycle per byte received.
    error : Out(1)
        Pulses on a framing error (stop bit low).
    """

    def __init__(self, divisor_bits: int = 16):
        super().__init__({"rx": In(1, init=1), "divisor": In(divisor_bits),
                          "bytes": Out(stream.Signature(8, always_ready=True)), "error": Out(1)})
        self._bits = divisor_bits

    def elaborate(self, platform):
        m = Module()
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)
        timer = Signal(self._bits)
        bit = Signal(range(8))
        shift = Signal(8)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"), m.If(~line):
                m.d.sync += timer.eq((self.divisor >> 1) - 1)
                m.next = "START"
            with m.State("START"), m.If(timer == 0):
                with m.If(line):  # a glitch, not a start bit
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [timer.eq(self.divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"), m.If(timer == 0):
                m.d.sync += [shift.eq((shift >> 1) | (line << 7)), timer.eq(self.divisor - 1), bit.eq(bit + 1)]
                with m.If(bit == 7):
                    m.next = "STOP"
            with m.State("STOP"), m.If(timer == 0):
                with m.If(line):
                    m.d.comb += [self.bytes.payload.eq(shift), self.bytes.valid.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += self.error.eq(1)
                    m.next = "BREAK"
            with m.State("BREAK"), m.If(line):
                m.next = "IDLE"
        return m
