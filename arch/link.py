"""The host link protocol: framed commands over a UART, shared by the hardware and the host.

The link controller (:mod:`systolix.hdl.link.controller`) and the host (:mod:`systolix.sim.link_host`) both
read their constants from here, so the two ends cannot drift apart.

Framing (8N1 bytes, the host waits for each reply before sending the next frame)::

    SYNC  CMD  LEN  PAYLOAD[LEN]  CRC_HI  CRC_LO

``SYNC`` is 0xA5. ``LEN`` counts the payload bytes (0..255). The CRC is CRC-16/CCITT-FALSE (polynomial
0x1021, initial value 0xFFFF, no reflection, no final XOR) over ``CMD``, ``LEN`` and the payload, sent most
significant byte first; the receiver runs the same CRC over the CRC bytes too and expects 0. Bytes outside a
frame that are not ``SYNC`` are skipped. Multi-byte numbers are big-endian.

The device receives a whole frame before it acts: a frame with a bad CRC, an unknown command, a wrong
length, out-of-range arguments, a UART framing error, or that stops for ``4096`` bit times
(``ERR_TIMEOUT``) is never executed; the device answers with an error frame instead.

Commands (host -> device) and their replies (device -> host, ``CMD | 0x80``):

========== ===================================================== ==========================================
command    payload                                               reply payload
========== ===================================================== ==========================================
``ID``     none                                                  ``VERSION``, config ID (4 bytes),
                                                                 lanes (1 byte)
``WRITE``  ``sel``, ``addr`` (2), ``count``, then ``count`` words ack (empty)
           of memory ``sel`` from ``addr`` on, each as
           ``words_per_entry(sel)`` 32-bit words, most
           significant first
``READ``   ``addr`` (2), ``count``: activation rows               ``count * lanes`` bytes, row by row, lane
                                                                 0 first (int8)
``START``  flags (bit 0: step mode)                              ack (empty)
``STATUS`` none                                                  flags (bit 0 busy, 1 done since the last
                                                                 START, 2 paused), cycles of the current
                                                                 or last run (4), ``pc`` (2)
========== ===================================================== ==========================================

``sel`` is the load bus's memory code (:data:`~systolix.arch.memory.LOAD_SELECT`), or :data:`SEL_ACT` (7)
for activation rows. The error reply is ``ERROR`` (0x7F) with payload ``code``, ``cmd`` (the command byte
received, 0 if none). ``WRITE`` and ``START`` while the accelerator runs, and ``READ`` while it runs and is
not paused, are refused with ``ERR_BUSY``.

The config ID (:func:`config_id`) is the first 4 bytes of the SHA-256 of the configuration's hardware fields
(``config.json`` without ``add_variant``, keys sorted, compact JSON): a host refuses a build folder compiled
for another accelerator than the one on the other end of the link.
"""

from __future__ import annotations

import hashlib
import json

from .config import AcceleratorConfig
from .memory import LOAD_SELECT, memory_depths, word_bits

__all__ = ["CMD_ID", "CMD_READ", "CMD_START", "CMD_STATUS", "CMD_WRITE", "COMMANDS", "ERRORS", "REPLY_ERROR",
           "SEL_ACT", "SYNC", "TIMEOUT_BIT_TIMES", "VERSION", "config_id", "crc16", "entry_depths",
           "max_read_rows", "words_per_entry"]

#: Protocol version, the first byte of the ``ID`` reply.
VERSION = 1
#: First byte of every frame.
SYNC = 0xA5
CMD_ID, CMD_WRITE, CMD_READ, CMD_START, CMD_STATUS = 0x01, 0x02, 0x03, 0x04, 0x05
#: Command codes -> names (for messages).
COMMANDS = {CMD_ID: "ID", CMD_WRITE: "WRITE", CMD_READ: "READ", CMD_START: "START", CMD_STATUS: "STATUS"}
#: Set in the command byte of a reply.
REPLY = 0x80
#: Command byte of an error reply.
REPLY_ERROR = 0x7F
ERR_CRC, ERR_COMMAND, ERR_LENGTH, ERR_ARGUMENT, ERR_BUSY, ERR_FRAMING, ERR_TIMEOUT = 1, 2, 3, 4, 5, 6, 7
#: Error codes -> what they mean.
ERRORS = {ERR_CRC: "bad CRC", ERR_COMMAND: "unknown command", ERR_LENGTH: "bad length",
          ERR_ARGUMENT: "argument out of range", ERR_BUSY: "accelerator busy", ERR_FRAMING: "UART framing error",
          ERR_TIMEOUT: "frame incomplete (timeout)"}
#: ``sel`` of the activation memory (the others are the load bus's).
SEL_ACT = 7
#: Bit times of silence inside a frame after which the device drops it (``ERR_TIMEOUT``): ``divisor << 12``.
TIMEOUT_BIT_TIMES = 1 << 12
#: Bits of one word shifted into the staging register.
HOST_WORD_BITS = 32


def config_id(config: AcceleratorConfig) -> int:
    """The 32-bit ID of the hardware the configuration describes (the ``ID`` reply).

    Parameters
    ----------
    config : AcceleratorConfig
        The configuration.

    Returns
    -------
    int
        The first 4 bytes of the SHA-256 of ``config.hardware_dict`` as sorted, compact JSON, big-endian.
    """
    text = json.dumps(config.hardware_dict, sort_keys=True, separators=(",", ":"))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def words_per_entry(config: AcceleratorConfig) -> dict[int, int]:
    """``sel`` -> 32-bit host words per memory entry (one word of a loadable memory, or one activation row)."""
    bits = word_bits(config)
    out = {code: -(-bits[name] // HOST_WORD_BITS) for name, code in LOAD_SELECT.items()}
    out[SEL_ACT] = -(-8 * config.rows // HOST_WORD_BITS)
    return out


def entry_depths(config: AcceleratorConfig) -> dict[int, int]:
    """``sel`` -> entries of that memory."""
    depths = memory_depths(config)
    out = {code: depths[name] for name, code in LOAD_SELECT.items()}
    out[SEL_ACT] = config.act_buffer_depth
    return out


def max_read_rows(config: AcceleratorConfig) -> int:
    """Rows one ``READ`` returns at most (the reply payload is at most 255 bytes)."""
    return 255 // config.rows


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data`` (``crc16(b"123456789") == 0x29B1``)."""
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc
