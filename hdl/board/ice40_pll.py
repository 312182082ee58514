"""The iCE40 PLL (``SB_PLL40_CORE``) for one output clock, and the choice of its dividers.

Simple feedback (``FEEDBACK_PATH = SIMPLE``): the phase detector runs at ``f_in / (DIVR + 1)``, the VCO at
``f_pfd * (DIVF + 1)`` and the output is ``f_vco / 2**DIVQ``. Limits used (iCE40 sysCLOCK PLL, Lattice
FPGA-TN-02052): reference 10-133 MHz, phase detector 10-133 MHz, VCO 533-1066 MHz, output 16-275 MHz;
DIVR 0-15, DIVF 0-127, DIVQ 1-6. The loop filter range follows the phase detector frequency.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pll_search import closest_setting

__all__ = ["Ice40Pll", "Ice40PllSettings", "ice40_pll_settings"]

#: Upper bounds (MHz, exclusive) of the phase detector frequency for FILTER_RANGE 1, 2, ... (6 above the last).
_FILTER_BOUNDS = (17.0, 26.0, 44.0, 66.0, 101.0)


@dataclasses.dataclass(frozen=True)
class Ice40PllSettings:
    """Dividers of an ``SB_PLL40_CORE`` and the frequencies they give (MHz)."""

    divr: int
    divf: int
    divq: int
    filter_range: int
    f_in: float
    f_out: float
    f_vco: float

    @property
    def f_pfd(self) -> float:
        """The phase detector's input frequency."""
        return self.f_in / (self.divr + 1)


def ice40_pll_settings(f_in_mhz: float, f_out_mhz: float) -> Ice40PllSettings:
    """The dividers whose output is closest to ``f_out_mhz`` (ties: the lowest VCO frequency).

    Raises
    ------
    SystolixError
        If no setting is within 1% of the request.
    """
    def candidates():
        if not 10 <= f_in_mhz <= 133:
            return
        for divr in range(16):
            pfd = f_in_mhz / (divr + 1)
            if not 10 <= pfd <= 133:
                continue
            for divf in range(128):
                vco = pfd * (divf + 1)
                if not 533 <= vco <= 1066:
                    continue
                for divq in range(1, 7):
                    f_out = vco / (1 << divq)
                    if 16 <= f_out <= 275:
                        filter_range = 1 + sum(pfd >= bound for bound in _FILTER_BOUNDS)
                        yield f_out, vco, Ice40PllSettings(divr, divf, divq, filter_range, f_in_mhz, f_out, vco)

    return closest_setting(candidates(), f_in_mhz, f_out_mhz, "iCE40", "its output range is 16-275 MHz")


class Ice40Pll(wiring.Component):
    """One iCE40 PLL: the reference clock -> ``clk_out`` (on a global buffer), and ``locked``.

    With ``pad`` (the clock pin's I/O port, as ``platform.request(..., dir="-")`` returns it) it is an
    ``SB_PLL40_PAD`` fed straight from that pin; this is what the UP5K needs for its PLL pin (pin 35 of the
    SG48, the iCEBreaker's 12 MHz clock), whose I/O site the PLL shares: an input buffer on that pin leaves no
    place for the PLL. Without ``pad`` it is an ``SB_PLL40_CORE`` fed from ``clk_in``.

    Parameters
    ----------
    settings : Ice40PllSettings
    pad : amaranth.lib.io.PortLike, optional
    """

    def __init__(self, settings: Ice40PllSettings, pad=None):
        self.settings = settings
        self._pad = pad
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        if self._pad is None:
            cell, reference = "SB_PLL40_CORE", {"i_REFERENCECLK": self.clk_in}
        else:
            cell, reference = "SB_PLL40_PAD", {"i_PACKAGEPIN": self._pad.io}
        m.submodules.pll = Instance(
            cell,
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=s.divr, p_DIVF=s.divf, p_DIVQ=s.divq, p_FILTER_RANGE=s.filter_range,
            i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=self.clk_out, o_LOCK=self.locked, **reference,
        )
        return m
