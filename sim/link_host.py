"""The host end of the UART link (protocol: :mod:`systolix.arch.link`), for a real serial port and the simulated one.

:class:`LinkHost` turns the accelerator's host operations (load the memory images, write input rows, start,
poll the status, read rows back) into frames, sends each one and checks its reply. It talks to a *port*: any
object with ``write(bytes)`` and ``read(n) -> bytes`` that returns fewer than ``n`` bytes on a timeout. A
pyserial ``Serial`` is one (:func:`open_serial`), :class:`~systolix.sim.link_sim.SimulatedPort` (the link top
in Verilator) is another, so the same code drives a board and its simulation.

Every byte sent and received is counted per phase (:attr:`LinkHost.counts`), which gives the link's share of
the load time and of each inference at any baud rate.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Protocol

import numpy as np

from systolix.arch import link
from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import LOAD_SELECT, pack_lanes
from systolix.errors import SystolixError

__all__ = ["LinkError", "LinkHost", "Port", "Status", "decode_frame", "encode_frame", "open_serial"]

_SEL_NAMES = {**{code: name for name, code in LOAD_SELECT.items()}, link.SEL_ACT: "act"}


class LinkError(SystolixError):
    """The link failed: no reply, a rejected frame, a corrupted reply, or another accelerator on the other end."""


class Port(Protocol):
    """A byte pipe to the device: ``read`` returns fewer than ``n`` bytes when its timeout expires."""

    def write(self, data: bytes) -> object: ...

    def read(self, n: int) -> bytes: ...


@dataclasses.dataclass(frozen=True)
class Status:
    """The ``STATUS`` reply."""

    busy: bool
    done: bool
    paused: bool
    cycles: int
    pc: int


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    """``SYNC CMD LEN PAYLOAD CRC16`` (CRC over CMD, LEN and the payload, most significant byte first).

    Parameters
    ----------
    cmd : int
        Command (or reply) code.
    payload : bytes
        At most 255 bytes.

    Returns
    -------
    bytes
    """
    if len(payload) > 255:
        raise ValueError(f"a frame carries at most 255 payload bytes, not {len(payload)}")
    body = bytes([cmd, len(payload)]) + bytes(payload)
    return bytes([link.SYNC]) + body + link.crc16(body).to_bytes(2, "big")


def decode_frame(data: bytes) -> tuple[int, bytes]:
    """``(cmd, payload)`` of one whole frame, checked (sync byte, length, CRC).

    Raises
    ------
    LinkError
        If the bytes are not one well-formed frame.
    """
    if len(data) < 5 or data[0] != link.SYNC or len(data) != 5 + data[2]:
        raise LinkError(f"malformed frame {data[:8].hex()}...")
    if link.crc16(data[1:]) != 0:
        raise LinkError(f"reply with a bad CRC ({data[:8].hex()}...)")
    return data[1], bytes(data[3:-2])


def open_serial(path: str, baud: int, timeout: float = 1.0) -> Port:
    """A pyserial port (8N1, no flow control) with a read timeout of ``timeout`` seconds.

    Raises
    ------
    SystolixError
        If pyserial is missing or the port cannot be opened.
    """
    try:
        import serial
    except ImportError:
        raise SystolixError("a serial port needs pyserial: pip install pyserial==3.5") from None
    try:
        port = serial.Serial(path, baud, timeout=timeout)
        port.reset_input_buffer()  # whatever the board sent before (at power-up) is not a reply
        return port
    except (serial.SerialException, ValueError) as error:
        raise SystolixError(f"cannot open the serial port {path}: {error}") from None


class LinkHost:
    """Host operations over a :class:`Port`, one frame at a time (each reply awaited and checked).

    Parameters
    ----------
    port : Port
        The byte pipe.
    config : AcceleratorConfig
        The configuration the host expects on the other end (lanes, word sizes).

    Attributes
    ----------
    counts : collections.Counter
        Bytes by ``(phase, "out" | "in")``, frames by ``(phase, "frames")`` and by ``(phase, command name)``;
        :attr:`phase` names the phase.
    phase : str
        What the following frames are counted as (``"load"``, ``"input"``, ``"run"``, ``"output"``, ...).
    last : str
        The last frame sent, for messages.
    """

    def __init__(self, port: Port, config: AcceleratorConfig) -> None:
        self.port = port
        self.config = config
        self.counts: Counter = Counter()
        self.phase = "setup"
        self.frames = 0
        self.last = "none"
        self._words = link.words_per_entry(config)

    # -- frames -------------------------------------------------------------------------------------------

    def _read(self, n: int, what: str) -> bytes:
        data = self.port.read(n)
        if len(data) < n:
            raise LinkError(f"link timeout: no complete reply to {what} ({len(data)} of {n} bytes)")
        return bytes(data)

    def transact(self, cmd: int, payload: bytes = b"", what: str | None = None) -> bytes:
        """Send one frame and return the payload of its reply.

        Raises
        ------
        LinkError
            On a timeout, an error reply (the device rejected the frame), or a malformed reply; the message
            names the frame.
        """
        self.frames += 1
        what = f"{what or link.COMMANDS.get(cmd, hex(cmd))} (frame {self.frames})"
        self.last = what
        frame = encode_frame(cmd, payload)
        self.port.write(frame)
        self.counts[self.phase, "out"] += len(frame)
        self.counts[self.phase, "frames"] += 1
        self.counts[self.phase, link.COMMANDS.get(cmd, "other")] += 1
        skipped = 0
        while (first := self._read(1, what)) != bytes([link.SYNC]):  # bytes before a frame: noise
            skipped += 1
            if skipped > 64:
                raise LinkError(f"no frame in the reply to {what} (first byte {first.hex()})")
        head = self._read(2, what)
        rest = self._read(head[1] + 2, what)
        reply = first + head + rest
        self.counts[self.phase, "in"] += len(reply) + skipped
        code, body = decode_frame(reply)
        if code == link.REPLY_ERROR:
            reason = link.ERRORS.get(body[0], f"error {body[0]}") if body else "error"
            raise LinkError(f"the device rejected {what}: {reason}")
        if code != link.REPLY | cmd:
            raise LinkError(f"unexpected reply 0x{code:02x} to {what}")
        return body

    # -- commands -----------------------------------------------------------------------------------------

    def identify(self) -> tuple[int, int, int]:
        """``(protocol version, config ID, lanes)`` of the device."""
        body = self.transact(link.CMD_ID)
        if len(body) != 6:
            raise LinkError(f"ID reply of {len(body)} bytes, expected 6")
        return body[0], int.from_bytes(body[1:5], "big"), body[5]

    def check(self) -> None:
        """Refuse a device whose protocol version or configuration is not the expected one.

        Raises
        ------
        LinkError
            Naming both config IDs (a build folder compiled for another accelerator than the one on the link).
        """
        version, found, lanes = self.identify()
        if version != link.VERSION:
            raise LinkError(f"the device speaks link protocol version {version}, this host {link.VERSION}")
        expected = link.config_id(self.config)
        if found != expected:
            raise LinkError(f"the device's accelerator (config ID {found:08x}, {lanes} lanes) is not the one this "
                            f"build was compiled for (config ID {expected:08x}, {self.config.rows} lanes)")

    def write_entries(self, sel: int, addr: int, values: list[int]) -> None:
        """Write memory entries (one integer each, in the layout of the load bus) from ``addr`` on."""
        words = self._words[sel]
        size = 4 * words
        per_frame = min(255, (255 - 4) // size)
        for start in range(0, len(values), per_frame):
            chunk = values[start:start + per_frame]
            payload = bytes([sel]) + (addr + start).to_bytes(2, "big") + bytes([len(chunk)]) + b"".join(
                int(v).to_bytes(size, "big") for v in chunk)
            self.transact(link.CMD_WRITE, payload,
                          f"WRITE {_SEL_NAMES.get(sel, sel)}[{addr + start}..{addr + start + len(chunk) - 1}]")

    def load(self, images: dict[str, list[int]]) -> None:
        """Write the memory images (``MemoryImages.words()``: memory name -> words) over the load bus."""
        for name, values in images.items():
            if values:
                self.write_entries(LOAD_SELECT[name], 0, [int(v) for v in values])

    def write_rows(self, addr: int, rows: np.ndarray) -> None:
        """Write int8 rows ``[n, lanes]`` into the activation memory from row ``addr``."""
        self.write_entries(link.SEL_ACT, addr, pack_lanes(np.asarray(rows, np.int8)))

    def read_rows(self, addr: int, count: int) -> np.ndarray:
        """Read ``count`` activation rows from ``addr``: int8 ``[count, lanes]``."""
        lanes = self.config.rows
        out = np.empty((count, lanes), np.int8)
        step = link.max_read_rows(self.config)
        for start in range(0, count, step):
            n = min(step, count - start)
            body = self.transact(link.CMD_READ, (addr + start).to_bytes(2, "big") + bytes([n]),
                                 f"READ act[{addr + start}..{addr + start + n - 1}]")
            if len(body) != n * lanes:
                raise LinkError(f"READ reply of {len(body)} bytes, expected {n * lanes}")
            out[start:start + n] = np.frombuffer(body, np.int8).reshape(n, lanes)
        return out

    def start(self, step: bool = False) -> None:
        """Run the program from instruction 0 (or resume a paused one); ``step``: pause after every instruction."""
        self.transact(link.CMD_START, bytes([1 if step else 0]))

    def status(self) -> Status:
        """Busy, done since the last start, paused, the cycle counter and ``pc``."""
        body = self.transact(link.CMD_STATUS)
        if len(body) != 7:
            raise LinkError(f"STATUS reply of {len(body)} bytes, expected 7")
        flags = body[0]
        return Status(bool(flags & 1), bool(flags & 2), bool(flags & 4), int.from_bytes(body[1:5], "big"),
                      int.from_bytes(body[5:7], "big"))

    def wait(self, max_polls: int = 1_000_000) -> Status:
        """Poll the status until the program finished or paused.

        Raises
        ------
        LinkError
            If it is still running after ``max_polls`` polls.
        """
        for _ in range(max_polls):
            status = self.status()
            if status.paused or (status.done and not status.busy):
                return status
        raise LinkError(f"the accelerator did not finish within {max_polls} status polls (last {self.last})")
