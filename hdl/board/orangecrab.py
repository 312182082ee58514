"""The OrangeCrab r0.2 (ECP5 25F/85F) top level: the link top on a UART at the Feather header, PLL, LEDs.

The OrangeCrab has no USB-serial chip: its USB port goes straight to the FPGA (used by the DFU bootloader).
The link therefore uses a 3.3 V UART on the Feather header's serial pins, and an external USB-serial adapter
(3.3 V TTL, e.g. FT232R or FT2232H for 3 Mbaud; a CP2102 stops at 921,600 baud, so give ``--baud``):

====================  ===========  ==========================
header pin (silk)     FPGA ball    adapter
====================  ===========  ==========================
``0`` (Feather RX)    N17          adapter TX -> FPGA rx
``1`` (Feather TX)    M18          FPGA tx -> adapter RX
``GND``               -            GND
====================  ===========  ==========================

(amaranth-boards' connector ``io`` 0, pins ``0`` and ``1``; rx has the pull-up on, so an unplugged adapter
reads as an idle line.) The 48 MHz oscillator feeds an ``EHXPLLL`` (:mod:`.ecp5_pll`); the ``sync`` domain
is held in reset until the PLL locks. The user button drives the FPGA's PROGRAMN (``program``), as the
OrangeCrab's examples do: pressing it reloads the DFU bootloader, so a new bitstream can be loaded without
unplugging. RGB LED: green blinks (about 1 Hz: the clock runs), red an error reply was sent (held about half
a second), blue the accelerator is busy or a run has finished (until the next).
"""

from __future__ import annotations

from amaranth.build import Attrs
from amaranth.hdl import ClockDomain, ClockSignal, Module
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from .ecp5_pll import Ecp5Pll, pll_settings
from .status import BoardTop, status_lights

__all__ = ["HEADER_UART", "OrangeCrabTop", "header_uart"]

#: The UART's header pins: (rx, tx) on amaranth-boards' connector ``io`` 0.
HEADER_UART = ("0", "1")


def header_uart():
    """The amaranth-boards resources of the header UART (add them to the platform before building)."""
    from amaranth_boards.resources import UARTResource

    rx, tx = HEADER_UART
    return [UARTResource(0, rx=rx, tx=tx, conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33", PULLMODE="UP"))]


class OrangeCrabTop(BoardTop):
    """The accelerator behind the UART link on an OrangeCrab r0.2.

    Parameters as :class:`~.status.BoardTop`; the PLL makes the ``sync`` clock from 48 MHz.
    """

    OSCILLATOR_MHZ = 48.0
    pll_settings = staticmethod(pll_settings)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        m.submodules.pll = pll = Ecp5Pll(self.pll)
        m.submodules.clk48 = clk48 = io.Buffer("i", platform.request("clk", 0, dir="-"))
        m.d.comb += pll.clk_in.eq(clk48.i)
        m.d.comb += ClockSignal("sync").eq(pll.clk_out)
        platform.add_clock_constraint(pll.clk_out, self.pll.f_out * 1e6)
        m.submodules.reset = ResetSynchronizer(~pll.locked, domain="sync")
        m.submodules.button = button = io.Buffer("i", platform.request("button", 0, dir="-"))
        m.submodules.program = program = io.Buffer("o", platform.request("program", 0, dir="-"))
        m.d.comb += program.o.eq(button.i)

        top = self.uart_link(m, platform)

        lights = status_lights(m, top, int(self.pll.f_out * 1e6))
        rgb = platform.request("rgb_led", 0, dir="-")
        for name, signal in (("r", lights.error), ("g", lights.heartbeat), ("b", lights.busy | lights.finished)):
            m.submodules[f"led_{name}"] = led = io.Buffer("o", getattr(rgb, name))
            m.d.comb += led.o.eq(signal)
        return m
