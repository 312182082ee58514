"""The ULX3S top level: the link top on the FTDI UART, the PLL and a reset synchroniser, LEDs.

The 25 MHz oscillator feeds an ``EHXPLLL`` (:mod:`.ecp5_pll`) for the ``sync`` clock; the domain is held in
reset (synchronised release: ``ResetSynchronizer``) until the PLL locks and while button F1 is pressed. The
UART divisor is ``round(clock / baud)``. The FT231X's ``uart_tx_enable`` line (pin L3, an FPGA output in
amaranth-boards' platform) is driven high, never left floating. LEDs: 0 blinks (about 1 Hz: the clock
runs), 1 the accelerator is busy, 2 an error reply was sent (held about half a second), 3 a run has finished
(until the next), 7 PLL locked.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Module
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .ecp5_pll import Ecp5Pll, pll_settings
from .status import BoardTop, status_lights

__all__ = ["ULX3STop"]


class ULX3STop(BoardTop):
    """The accelerator behind the UART link on a ULX3S.

    Parameters as :class:`~.status.BoardTop`; the PLL makes the ``sync`` clock from 25 MHz.
    """

    OSCILLATOR_MHZ = 25.0
    pll_settings = staticmethod(pll_settings)

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

        top = self.uart_link(m, platform)
        m.submodules.uart_tx_enable = tx_enable = io.Buffer("o", platform.request("uart_tx_enable", 0, dir="-"))
        m.d.comb += tx_enable.o.eq(1)

        leds = []
        for i in range(8):
            m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
            leds.append(led.o)
        lights = status_lights(m, top, int(self.pll.f_out * 1e6))
        m.d.comb += [leds[0].eq(lights.heartbeat), leds[1].eq(lights.busy), leds[2].eq(lights.error),
                     leds[3].eq(lights.finished), leds[7].eq(pll.locked)]
        return m
