"""``systolix run BUILD --port sim|DEVICE``: a build folder run through the UART host link, compared with onnxruntime.

The host code is the one a board gets (:mod:`systolix.sim.link_host`): it checks the accelerator's config ID,
loads the folder's memory images over the link, writes every sample, starts, polls, reads the outputs and the
cycle counter. ``--port sim`` puts the link top (UART pins + link controller + the folder's ``accelerator.v``)
on Verilator behind a simulated serial line at ``--divisor`` clocks per bit; any other port is a serial device
(pyserial). The comparison and the report are ``systolix simulate``'s (:func:`systolix.sim.simulate.simulate`).

From the bytes counted on the link and the measured cycles it gives the figures of a board at ``--baud``
and ``--clock-mhz``: the model's load time and the inferences per second (the host waits for every reply,
so the bytes of both directions add up; a status poll is counted once per inference on top of those that
overlap the run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from .errors import SystolixError

__all__ = ["DEFAULT_BAUD", "DEFAULT_CLOCK_MHZ", "link_figures", "link_text", "run_build"]

#: The baud rate of the figures (and of a serial port): the ULX3S's FT231X does 3 Mbaud.
DEFAULT_BAUD = 3_000_000
#: The clock of the figures: the board top's PLL output (below the 4x4 design's measured Fmax).
DEFAULT_CLOCK_MHZ = 30.0
#: Bits on the line per byte (8N1).
BITS_PER_BYTE = 10


def _open_port(port: str, build, divisor: int, baud: int, timeout: float, status):
    if port == "sim":
        from .sim.link_sim import SimulatedPort, build_link_simulator

        library = build_link_simulator(build.config, build.verilog, status=status)
        return SimulatedPort(library, divisor)
    if not (port.startswith("/dev/") or port.upper().startswith("COM") or os.path.exists(port)):
        raise SystolixError(f"unknown port {port!r}: give 'sim' (the link top on Verilator) or a serial device "
                            "such as /dev/ttyUSB0")
    from .sim.link_host import open_serial

    return open_serial(port, baud, timeout)


def run_build(build_path: str | os.PathLike, *, port: str = "sim", inputs=None, random: int | None = None,
              seed: int = 0, layers: bool = False, divisor: int = 10, baud: int = DEFAULT_BAUD,
              clock_mhz: float | None = None, timeout: float = 2.0,
              progress: Callable[[str, int, int], None] | None = None, status: Callable[[str], None] | None = None):
    """Run every sample through the link and compare with onnxruntime.

    Parameters
    ----------
    build_path : path
        A folder written by ``systolix compile``.
    port : str
        ``"sim"`` or a serial device.
    inputs, random, seed, layers, progress
        As :func:`systolix.sim.simulate.simulate`.
    divisor : int
        ``--port sim``: clocks per bit of the simulated line (10: 3 Mbaud at 30 MHz).
    baud : int
        A serial port's baud rate, and the figures'.
    clock_mhz : float, optional
        The clock of the figures (default :data:`DEFAULT_CLOCK_MHZ`).
    timeout : float
        A serial port's read timeout in seconds.
    status : callable, optional
        Verilator build messages.

    Returns
    -------
    tuple
        The :class:`~systolix.sim.simulate.SimulationResult` and the link figures (:func:`link_figures`).

    Raises
    ------
    SystolixError
        Not a build folder, an unknown port, a device with another configuration, a link timeout (naming the
        last frame).
    """
    from .compiler.build import load_build
    from .sim.link_backend import LinkBackend
    from .sim.simulate import simulate

    if not Path(build_path).is_dir():
        raise SystolixError(f"{build_path}: systolix run needs a build folder (systolix compile MODEL -o BUILD)")
    build = load_build(build_path)
    clock_mhz = clock_mhz or DEFAULT_CLOCK_MHZ
    if baud <= 0 or clock_mhz <= 0:
        raise SystolixError("--baud and --clock-mhz must be positive")
    link_port = _open_port(port, build, divisor, baud, timeout, status)
    try:
        backend = LinkBackend(build, link_port, layers=layers)
        result = simulate(build.folder, inputs=inputs, random=random, seed=seed, layers=layers, progress=progress,
                          clock_mhz=clock_mhz, runner=backend)
    finally:
        link_port.close()
    return result, link_figures(backend, result.comparison.samples, baud, clock_mhz, port)


def link_figures(backend, samples: int, baud: int, clock_mhz: float, port: str) -> dict:
    """Bytes on the link per phase, and the load time and inference rate they give at ``baud`` and ``clock_mhz``.

    Returns
    -------
    dict
        ``bytes`` (phase -> ``out``, ``in``, ``frames``), ``load_bytes``, ``load_seconds``, ``inference_bytes``
        (per sample, without the polls), ``status_poll_bytes``, ``cycles``, ``inference_seconds``,
        ``inferences_per_second``, ``polls``, ``baud``, ``clock_mhz``, and for ``--port sim`` the simulated
        clock cycles of loading and of all samples.
    """
    counts = backend.host.counts
    phases = sorted({phase for phase, _ in counts})
    table = {p: {k: int(counts[p, k]) for k in ("out", "in", "frames")} for p in phases}
    seconds_per_byte = BITS_PER_BYTE / baud
    load = sum(table.get(p, {}).get(k, 0) for p in ("setup", "load") for k in ("out", "in"))
    status_frames = counts["run", "STATUS"]
    run_bytes = counts["run", "out"] + counts["run", "in"]
    poll_bytes = 5 + 12  # a STATUS frame and its reply
    per_sample = (counts["input", "out"] + counts["input", "in"] + counts["output", "out"] + counts["output", "in"]
                  + run_bytes - status_frames * poll_bytes) / samples
    cycles = float(sum(backend.last_run.cycles)) / samples
    # the link bytes, the run, and one status poll after it has finished
    inference = (per_sample + poll_bytes) * seconds_per_byte + cycles / (clock_mhz * 1e6)
    figures = {"port": port, "baud": baud, "clock_mhz": clock_mhz, "bytes": table, "load_bytes": load,
               "load_seconds": load * seconds_per_byte, "inference_bytes": per_sample,
               "status_poll_bytes": poll_bytes, "cycles": cycles, "inference_seconds": inference,
               "inferences_per_second": 1.0 / inference, "polls": int(status_frames)}
    marks = backend.port_cycles
    if {"start", "loaded", "done"} <= set(marks):
        figures["simulated_load_cycles"] = marks["loaded"] - marks["start"]
        figures["simulated_run_cycles"] = marks["done"] - marks["loaded"]
        figures["divisor"] = divisor = getattr(backend.port, "divisor", None)
        # the simulated line runs at divisor clocks per bit: at clock_mhz that is clock / divisor baud
        figures["simulated_baud"] = clock_mhz * 1e6 / divisor if divisor else None
        figures["simulated_load_seconds"] = figures["simulated_load_cycles"] / (clock_mhz * 1e6)
        figures["simulated_inference_seconds"] = figures["simulated_run_cycles"] / samples / (clock_mhz * 1e6)
    return figures


def link_text(figures: dict) -> str:
    """The link figures as a few lines for the console."""
    rows = ", ".join(f"{phase} {v['out']:,} out / {v['in']:,} in ({v['frames']:,} frames)"
                     for phase, v in figures["bytes"].items())
    at = f"{figures['baud'] / 1e6:g} Mbaud, {figures['clock_mhz']:g} MHz"
    lines = [f"link bytes: {rows}",
             f"model load: {figures['load_bytes']:,} bytes -> {figures['load_seconds'] * 1e3:.1f} ms at {at}",
             f"per inference: {figures['inference_bytes']:,.0f} bytes + one {figures['status_poll_bytes']}-byte status "
             f"poll, {figures['cycles']:,.0f} cycles -> {figures['inference_seconds'] * 1e3:.3f} ms, "
             f"{figures['inferences_per_second']:,.1f} inferences/s at {at}"]
    if "simulated_load_cycles" in figures:
        lines.append(f"simulated line at {figures['divisor']} clocks/bit ({figures['simulated_baud'] / 1e6:g} Mbaud at "
                     f"{figures['clock_mhz']:g} MHz): load {figures['simulated_load_cycles']:,} cycles = "
                     f"{figures['simulated_load_seconds'] * 1e3:.1f} ms, "
                     f"{figures['simulated_inference_seconds'] * 1e3:.3f}"
                     f" ms per sample ({1 / figures['simulated_inference_seconds']:,.1f}/s, "
                     f"{figures['polls']:,} status polls in all)")
    return "\n".join(lines)
