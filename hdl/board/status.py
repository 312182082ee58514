"""What every board top shares: its settings checked before elaboration (:class:`BoardTop`: PLL, UART divisor), the
link top on the board's UART, and the status lights.

The lights are made in the ``sync`` domain from the link top's ``busy``, ``done`` and ``error``: a heartbeat
toggling about once a second (the clock runs), ``busy``, an error reply held about half a second (a pulse
would be invisible), and "a run has finished" held until the next run starts.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Elaboratable, Module, Signal
from amaranth.lib import io

from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError

from ..link.top import LinkTop

__all__ = ["BoardTop", "StatusLights", "status_lights", "uart_divisor"]


def uart_divisor(clock_mhz: float, baud: int) -> int:
    """Clocks per bit for ``baud`` at ``clock_mhz``: ``round(clock / baud)``.

    Raises
    ------
    SystolixError
        If the divisor is below 4 (the receiver samples mid-bit) or the rate it gives is more than 2% off.
    """
    divisor = round(clock_mhz * 1e6 / baud)
    if divisor < 4 or abs(clock_mhz * 1e6 / divisor - baud) > 0.02 * baud:
        raise SystolixError(f"{baud} baud is not within 2% of {clock_mhz:g} MHz / an integer >= 4")
    return divisor


@dataclasses.dataclass(frozen=True)
class StatusLights:
    """Signals for LEDs (active high), made by `status_lights`."""

    heartbeat: Signal
    busy: Signal
    error: Signal
    finished: Signal


def status_lights(m: Module, link, clock_hz: int) -> StatusLights:
    """Add the status lights' logic for ``link`` (a :class:`~systolix.hdl.link.top.LinkTop`) to ``m``."""
    half = clock_hz // 2
    beat, hold = Signal(range(half + 1)), Signal(range(half + 1))
    heartbeat, finished, error = Signal(), Signal(), Signal()
    with m.If(beat == half):
        m.d.sync += [beat.eq(0), heartbeat.eq(~heartbeat)]
    with m.Else():
        m.d.sync += beat.eq(beat + 1)
    with m.If(link.error):
        m.d.sync += hold.eq(half)
    with m.Elif(hold != 0):
        m.d.sync += hold.eq(hold - 1)
    with m.If(link.done):
        m.d.sync += finished.eq(1)
    with m.Elif(link.busy):
        m.d.sync += finished.eq(0)
    m.d.comb += error.eq(hold != 0)
    return StatusLights(heartbeat=heartbeat, busy=link.busy, error=error, finished=finished)


class BoardTop(Elaboratable):
    """The accelerator behind the UART link on a board: what the tops of :mod:`systolix.hdl.board` share.

    Subclasses set :attr:`OSCILLATOR_MHZ`, :attr:`DEFAULT_CLOCK_MHZ` and :meth:`pll_settings` (their family's PLL
    divider search), and write ``elaborate`` (clock, reset, LEDs) around :meth:`uart_link`.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator (the build folder's ``accelerator.v`` is added to the platform by the caller).
    clock_mhz : float, optional
        The ``sync`` clock made by the PLL from the oscillator (default :attr:`DEFAULT_CLOCK_MHZ`).
    baud : int
        The UART's baud rate.

    Raises
    ------
    SystolixError
        A clock the PLL cannot make, or a baud rate the clock cannot divide to within 2%.
    """

    #: The board's oscillator (MHz).
    OSCILLATOR_MHZ: float
    #: The ``sync`` clock when none is given (MHz).
    DEFAULT_CLOCK_MHZ = 30.0

    def __init__(self, config: AcceleratorConfig, clock_mhz: float | None = None, baud: int = 3_000_000):
        self.config = config
        self._MustUse__silence = True  # until the settings are checked: a refused top is not a forgotten one
        clock = self.DEFAULT_CLOCK_MHZ if clock_mhz is None else clock_mhz
        self.pll = self.pll_settings(self.OSCILLATOR_MHZ, clock)
        self.divisor = uart_divisor(self.pll.f_out, baud)
        self._MustUse__silence = False

    @staticmethod
    def pll_settings(f_in_mhz: float, f_out_mhz: float):
        """The PLL's settings for ``f_out_mhz`` from ``f_in_mhz`` (the family's divider search)."""
        raise NotImplementedError

    def uart_link(self, m: Module, platform) -> LinkTop:
        """Add the link top to ``m`` on the platform's ``uart`` 0 (input and output buffers, the divisor)."""
        m.submodules.link = top = LinkTop(self.config)
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx = io.Buffer("o", uart.tx)
        m.d.comb += [top.rx.eq(rx.i), tx.o.eq(top.tx), top.divisor.eq(self.divisor)]
        return top
