"""What every board top shares: the UART divisor for a clock and a baud rate, and the status lights.

The lights are made in the ``sync`` domain from the link top's ``busy``, ``done`` and ``error``: a heartbeat
toggling about once a second (the clock runs), ``busy``, an error reply held about half a second (a pulse
would be invisible), and "a run has finished" held until the next run starts.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Module, Signal

from systolix.errors import SystolixError

__all__ = ["StatusLights", "status_lights", "uart_divisor"]


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
