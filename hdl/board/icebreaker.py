"""The iCEBreaker (iCE40 UP5K) top level: the link top on the FTDI's second channel, the PLL, reset, LEDs.

The 12 MHz oscillator (pin 35) feeds an ``SB_PLL40_PAD`` (:mod:`.ice40_pll`) whose global output is the
``sync`` clock; the domain is held in reset (synchronised release) until the PLL locks and while the user
button (pin 10) is pressed. The UART is the FT2232H's channel B (FPGA rx pin 6, tx pin 9: amaranth-boards'
``uart`` resource; channel A programs the flash), the divisor ``round(clock / baud)``. LEDs: green (pin 37)
blinks (about 1 Hz: the clock runs), red (pin 11) an error reply was sent (held about half a second); on the
break-off section (amaranth-boards' ``break_off_pmod``, added by the caller): LED 2 the accelerator is busy,
LED 3 a run has finished (until the next), LED 4 PLL locked.
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Module
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .ice40_pll import Ice40Pll, ice40_pll_settings
from .status import BoardTop, status_lights

__all__ = ["ICEBreakerTop"]


class ICEBreakerTop(BoardTop):
    """The accelerator behind the UART link on an iCEBreaker.

    Parameters as :class:`~.status.BoardTop`; the PLL makes the ``sync`` clock from 12 MHz (16-275 MHz).
    """

    OSCILLATOR_MHZ = 12.0
    DEFAULT_CLOCK_MHZ = 24.0
    pll_settings = staticmethod(ice40_pll_settings)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        # the PLL takes the clock pin itself (SB_PLL40_PAD): it shares pin 35's I/O site, no input buffer fits
        m.submodules.pll = pll = Ice40Pll(self.pll, pad=platform.request("clk12", 0, dir="-"))
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        platform.add_clock_constraint(pll.clk_out, self.pll.f_out * 1e6)
        m.submodules.button = button = io.Buffer("i", platform.request("button", 0, dir="-"))
        m.submodules.reset = ResetSynchronizer(~pll.locked | button.i, domain="sync")

        top = self.uart_link(m, platform)

        lights = status_lights(m, top, int(self.pll.f_out * 1e6))
        for name, index, signal in (("led_g", 0, lights.heartbeat), ("led_r", 0, lights.error),
                                    ("led", 2, lights.busy), ("led", 3, lights.finished), ("led", 4, pll.locked)):
            m.submodules[f"{name}{index}"] = led = io.Buffer("o", platform.request(name, index, dir="-"))
            m.d.comb += led.o.eq(signal)
        return m
