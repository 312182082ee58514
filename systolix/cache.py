"""Where systolix keeps what it can make again: generated Verilog, Verilator builds."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["cache_dir", "measured_fmax", "record_fmax"]


def cache_dir(kind: str) -> Path:
    """``$SYSTOLIX_CACHE/<kind>``, else ``$XDG_CACHE_HOME/systolix/<kind>`` or ``~/.cache/systolix/<kind>``."""
    base = os.environ.get("SYSTOLIX_CACHE")
    if base:
        return Path(base).expanduser() / kind
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "systolix" / kind



def _design_id(verilog_text: str) -> str:
    return hashlib.sha256(verilog_text.encode()).hexdigest()


def record_fmax(verilog_text: str, device: str, fmax_mhz: float, details: dict | None = None) -> None:
    """Remember the Fmax nextpnr measured for this Verilog on ``device`` (every build folder with the same
    ``accelerator.v`` -- the same configuration -- has that Fmax). A read-only cache only loses the record."""
    path = cache_dir("fmax") / f"{_design_id(verilog_text)}.json"
    try:
        records = json.loads(path.read_text()) if path.is_file() else {}
        records[device] = {"fmax_mhz": float(fmax_mhz), **(details or {})}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_text(json.dumps(records, indent=1))
        os.replace(tmp, path)
    except (OSError, ValueError):
        pass


def measured_fmax(verilog_text: str, folder: Path | None = None) -> tuple[float, str] | None:
    """The Fmax measured for this Verilog: ``(MHz, where it comes from)``, or None if never measured.

    Looks in ``folder/synth-<device>/synth.json`` (written by ``systolix synth``) first, then in the record
    :func:`record_fmax` keeps per design; prefers ecp5-85f, then the device names in order.
    """
    found: dict[str, tuple[float, str]] = {}
    if folder is not None:
        for path in sorted(folder.glob("synth-*/synth.json")):
            try:
                value = json.loads(path.read_text()).get("fmax_mhz")
            except (OSError, ValueError, AttributeError):
                continue
            if value:
                device = path.parent.name.removeprefix("synth-")
                found.setdefault(device, (float(value), f"nextpnr, {device}, {path.parent.name}/synth.json"))
    try:
        records = json.loads((cache_dir("fmax") / f"{_design_id(verilog_text)}.json").read_text())
    except (OSError, ValueError):
        records = {}
    for device, record in sorted(records.items()):
        if isinstance(record, dict) and record.get("fmax_mhz"):
            found.setdefault(device, (float(record["fmax_mhz"]), f"nextpnr, {device}, measured for this design"))
    if not found:
        return None
    return found.get("ecp5-85f") or found[sorted(found)[0]]
