"""The ULX3S top level: the link top on the FTDI UART, the PLL and a reset synchroniser, LEDs.

The 25 MHz oscillator feeds an ``EHXPLLL`` (:mod:`.ecp5_pll`) for the ``sync`` clock; the domain is held in
reset (synchronised release: ``ResetSynchronizer``) until the PLL locks and while button F1 is pressed. The
UART divisor is ``round(clock / baud)``. LEDs: 0 blinks (about 1 Hz: the clock runs), 1 the accelerator is
busy, 2 an error reply was sent (held about half a second), 3 a run has finished (until the next), 7 PLL locked.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError

from ..link.top import LinkTop
from .ecp5_pll import Ecp5Pll, pll_settings

__all__ = ["ULX3STop"]


class ULX3STop(Elaboratable):
    """The accelerator behind the UART link on a ULX3S.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator (the build folder's ``accelerator.v`` is added to the platform by the caller).
    clock_mhz : float
        The ``sync`` clock made by the PLL from 25 MHz.
    baud : int
        The UART's baud rate.
    """

    def __init__(self, config: AcceleratorConfig, clock_mhz: float = 30.0, baud: int = 3_000_000):
        self.config = config
        self._MustUse__silence = True  # until the settings are checked: a refused top is not a forgotten one
        self.pll = pll_settings(25.0, clock_mhz)
        self.divisor = round(self.pll.f_out * 1e6 / baud)
        if self.divisor < 4 or abs(self.pll.f_out * 1e6 / self.divisor - baud) > 0.02 * baud:
            raise SystolixError(f"{baud} baud is not within 2% of {self.pll.f_out:g} MHz / an integer >= 4")
        self._MustUse__silence = False

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = pll = Ecp5Pll(self.pll)
        m.submodules.clk25 = clk25 = io.Buffer("i", platform.request("clk25", 0, dir="-"))
        m.d.comb += pll.clk_in.eq(clk25.i)
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        platform.add_clock_constraint(pll.clk_out, self.pll.f_out * 1e6)
        m.submodules.fire = fire = io.Buffer("i", platform.request("button_fire", 0, dir="-"))
        m.submodules.reset = ResetSynchronizer(~pll.locked | fire.i, domain="sync")

        m.submodules.link = top = LinkTop(self.config)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx), top.divisor.eq(self.divisor)]

        leds = []
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            leds.append(led.o)
        clock_hz = int(self.pll.f_out * 1e6)
        beat = Signal(range(clock_hz // 2 + 1))
        blink, error_hold, finished = Signal(), Signal(range(clock_hz // 2 + 1)), Signal()
        with m.If(beat == clock_hz // 2):
            m.d.sync += [beat.eq(0), blink.eq(~blink)]
        with m.Else():
            m.d.sync += beat.eq(beat + 1)
        with m.If(top.error):
            m.d.sync += error_hold.eq(clock_hz // 2)
        with m.Elif(error_hold != 0):
            m.d.sync += error_hold.eq(error_hold - 1)
        with m.If(top.done):
            m.d.sync += finished.eq(1)
        with m.Elif(top.busy):
            m.d.sync += finished.eq(0)
        m.d.comb += [leds[0].eq(blink), leds[1].eq(top.busy), leds[2].eq(error_hold != 0), leds[3].eq(finished),
                     leds[7].eq(pll.locked)]
        return m

