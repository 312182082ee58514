"""The ECP5 PLL (``EHXPLLL``) for one output clock, and the choice of its dividers.

Feedback is taken from the output (``FEEDBK_PATH = CLKOP``), so ``f_out = f_in * CLKFB_DIV / CLKI_DIV`` and the
VCO runs at ``f_out * CLKOP_DIV``. Limits used (ECP5 sysCLOCK PLL, speed grade 6): phase detector input
3.125-400 MHz, VCO 400-800 MHz, output 3.125-400 MHz, every divider 1-128.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Instance, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .pll_search import closest_setting

__all__ = ["Ecp5Pll", "PllSettings", "pll_settings"]


@dataclasses.dataclass(frozen=True)
class PllSettings:
    """Dividers of an ``EHXPLLL`` and the frequencies they give (MHz)."""

    clki_div: int
    clkfb_div: int
    clkop_div: int
    f_in: float
    f_out: float
    f_vco: float


def pll_settings(f_in_mhz: float, f_out_mhz: float) -> PllSettings:
    """The dividers whose output is closest to ``f_out_mhz`` (ties: the VCO nearest 600 MHz).

    Raises
    ------
    SystolixError
        If no setting is within 1% of the request.
    """
    def candidates():
        for clki in range(1, 129):
            if not 3.125 <= f_in_mhz / clki <= 400:
                continue
            for clkfb in range(1, 129):
                f_out = f_in_mhz * clkfb / clki
                if not 3.125 <= f_out <= 400:
                    continue
                for clkop in range(1, 129):
                    vco = f_out * clkop
                    if 400 <= vco <= 800:
                        yield f_out, abs(vco - 600), PllSettings(clki, clkfb, clkop, f_in_mhz, f_out, vco)

    return closest_setting(candidates(), f_in_mhz, f_out_mhz, "ECP5")


class Ecp5Pll(wiring.Component):
    """One ``EHXPLLL``: ``clk_in`` -> ``clk_out``, and ``locked``.

    Parameters
    ----------
    settings : PllSettings
    """

    def __init__(self, settings: PllSettings):
        self.settings = settings
        super().__init__({"clk_in": In(1), "clk_out": Out(1), "locked": Out(1)})

    def elaborate(self, platform):
        m = Module()
        s = self.settings
        m.submodules.pll = Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=s.clkop_div, p_CLKOP_CPHASE=s.clkop_div - 1, p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=s.clkfb_div, p_CLKI_DIV=s.clki_div,
            a_FREQUENCY_PIN_CLKI=f"{s.f_in:g}", a_FREQUENCY_PIN_CLKOP=f"{s.f_out:g}",
            i_CLKI=self.clk_in, i_CLKFB=self.clk_out, i_RST=0, i_STDBY=0, i_PHASESEL0=0, i_PHASESEL1=0,
            i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0, i_ENCLKOP=0,
            o_CLKOP=self.clk_out, o_LOCK=self.locked,
        )
        return m
