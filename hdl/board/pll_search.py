"""The choice of a PLL setting: of every setting a PLL can take, the one whose output is nearest the request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from systolix.errors import SystolixError

__all__ = ["closest_setting"]

T = TypeVar("T")


def closest_setting(candidates: Iterable[tuple[float, float, T]], f_in_mhz: float, f_out_mhz: float, pll: str,
                    note: str = "") -> T:
    """The setting of ``candidates`` (``(f_out, tie-break, setting)``, every setting within the PLL's limits) whose
    output is closest to ``f_out_mhz``, ties to the lowest tie-break.

    Raises
    ------
    SystolixError
        If no setting is within 1% of the request; the message names the nearest outputs below and above.
    """
    best = None
    below, above = 0.0, float("inf")
    for f_out, tie, setting in candidates:
        score = (abs(f_out - f_out_mhz), tie)
        if best is None or score < best[0]:
            best = (score, setting)
        if f_out <= f_out_mhz:
            below = max(below, f_out)
        else:
            above = min(above, f_out)
    if best is None or best[0][0] > 0.01 * f_out_mhz:
        nearest = " or ".join(f"{f:.4g}" for f in (below, above) if 0 < f < float("inf"))
        details = "; ".join(d for d in ((f"nearest it can: {nearest} MHz" if nearest else ""), note) if d)
        raise SystolixError(f"the {pll} PLL cannot make {f_out_mhz:g} MHz from {f_in_mhz:g} MHz"
                            + (f" ({details})" if details else ""))
    return best[1]
