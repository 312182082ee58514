"""Where systolix keeps what it can make again: generated Verilog, Verilator builds."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir(kind: str) -> Path:
    """``$SYSTOLIX_CACHE/<kind>``, else ``$XDG_CACHE_HOME/systolix/<kind>`` or ``~/.cache/systolix/<kind>``."""
    base = os.environ.get("SYSTOLIX_CACHE")
    if base:
        return Path(base).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "systolix" / kind
