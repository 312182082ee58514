"""The simulated serial port: the link top (UART pins + link controller + accelerator) on Verilator.

:func:`build_link_simulator` Verilates a build folder's own ``accelerator.v`` together with the Verilog of
:class:`~systolix.hdl.link.top.LinkTop` and the C++ harness ``sim/verilator/link_harness.cpp`` (cached like
the accelerator's builds: one per configuration). :class:`SimulatedPort` is a port for
:class:`~systolix.sim.link_host.LinkHost`: ``write`` queues bytes, ``read`` clocks the design (in C++) while
the queued bytes are shifted onto its ``rx`` pin at the baud divisor and its ``tx`` pin is decoded, until
enough bytes came back or the cycle budget ran out (a timeout). Time is simulated clock cycles.
"""

from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path

from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError

__all__ = ["LINK_HARNESS", "SimulatedPort", "build_link_simulator"]

LINK_HARNESS = Path(__file__).resolve().parent / "verilator" / "link_harness.cpp"


def build_link_simulator(config: AcceleratorConfig, verilog: str,
                         status: Callable[[str], None] | None = None) -> Path:
    """The Verilated link top around ``verilog`` (a build folder's ``accelerator.v``) as a shared library.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator's configuration.
    verilog : str
        The accelerator's Verilog (module ``accelerator``).
    status : callable, optional
        Build progress messages.

    Returns
    -------
    pathlib.Path
        The library exporting the C API of ``link_harness.cpp``.
    """
    from systolix.hdl.link.top import link_verilog

    from .verilator_backend import build_simulator

    return build_simulator(config, verilog, status=status, top="link_top", harness=LINK_HARNESS,
                           sources={"link_top.v": link_verilog(config)})


@functools.cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    lib.sxl_link_create.restype = vp
    lib.sxl_link_create.argtypes = [u32]
    lib.sxl_link_destroy.argtypes = [vp]
    lib.sxl_link_gaps.argtypes = [vp, u32, u64]
    lib.sxl_link_transfer.restype = u32
    lib.sxl_link_transfer.argtypes = [vp, ctypes.c_char_p, u32, ctypes.c_char_p, u32, u64]
    lib.sxl_link_cycles.restype = u64
    lib.sxl_link_cycles.argtypes = [vp]
    lib.sxl_link_framing_errors.restype = u64
    lib.sxl_link_framing_errors.argtypes = [vp]
    return lib


class SimulatedPort:
    """A serial port whose other end is the Verilated link top.

    Parameters
    ----------
    library : path
        From :func:`build_link_simulator`.
    divisor : int
        Clocks per bit (at least 4); 3 Mbaud at 30 MHz is 10.
    timeout_bytes : int
        A ``read`` of ``n`` bytes gives up after ``(n + timeout_bytes) * 10 * divisor`` clocks plus
        ``timeout_cycles``.
    timeout_cycles : int
        Clocks a ``read`` allows for the device's work besides the bytes themselves.
    max_gap : int
        Idle clocks (uniformly 0..max_gap, seeded) after every byte the host sends.
    seed : int
        Seed of the gaps.
    """

    def __init__(self, library: str | os.PathLike, divisor: int = 10, *, timeout_bytes: int = 16,
                 timeout_cycles: int = 100_000, max_gap: int = 0, seed: int = 1) -> None:
        if not 4 <= divisor < 1 << 16:
            raise SystolixError(f"the baud divisor must be 4..65535 clocks per bit, not {divisor}")
        self._lib = _load(str(Path(library).resolve()))
        self.divisor = divisor
        self.timeout_bytes = timeout_bytes
        self.timeout_cycles = timeout_cycles
        self._handle = self._lib.sxl_link_create(divisor)
        self._pending = b""
        if max_gap:
            self._lib.sxl_link_gaps(self._handle, max_gap, seed)

    def write(self, data: bytes) -> int:
        """Queue bytes for the device (sent while a later :meth:`read` clocks the design)."""
        self._pending += bytes(data)
        return len(data)

    def read(self, n: int) -> bytes:
        """Clock the design until ``n`` bytes came back (fewer on a timeout)."""
        out = ctypes.create_string_buffer(max(1, n))
        budget = (len(self._pending) + n + self.timeout_bytes) * 10 * self.divisor + self.timeout_cycles
        got = self._lib.sxl_link_transfer(self._handle, self._pending, len(self._pending), out, n, budget)
        self._pending = b""
        return out.raw[:got]

    @property
    def cycles(self) -> int:
        """Clock cycles simulated so far."""
        return int(self._lib.sxl_link_cycles(self._handle))

    @property
    def framing_errors(self) -> int:
        """Bytes from the device with a low stop bit (0 on a correct design)."""
        return int(self._lib.sxl_link_framing_errors(self._handle))

    def close(self) -> None:
        """Free the simulation."""
        if self._handle:
            self._lib.sxl_link_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> SimulatedPort:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
