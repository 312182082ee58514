"""Per-output-channel parameters of the MATMUL engine, packed into ``prm`` rows.

One ``prm`` row holds the parameters of ``L`` output channels (one output block), channel ``c`` in bits
``[96*c, 96*c + 96)``. This module is the single definition shared by the compiler (``pack_row``), the
functional model (``unpack_row``) and the hardware (:func:`channel_layout`, same fields LSB first).
"""

from __future__ import annotations

import dataclasses

from systolix.errors import SystolixError

CHANNEL_BITS = 96

#: (field, bits, signed), LSB first.
CHANNEL_FIELDS: tuple[tuple[str, int, bool], ...] = (
    ("bias", 32, True),  # int32, added to the accumulator (wrapping) before requantization
    ("m", 24, False),    # requantization scale = m * 2**-e (m has its hidden bit: 2**23 <= m < 2**24)
    ("e", 8, False),
    ("zp", 10, True),    # output zero point (int8 storage: uint8 codes are shifted by -128)
    ("lo", 10, True),    # output clamp, as codes (carries a fused ReLU)
    ("hi", 10, True),
    ("pad", 2, False),
)
assert sum(b for _, b, _ in CHANNEL_FIELDS) == CHANNEL_BITS


@dataclasses.dataclass(frozen=True)
class ChannelParams:
    bias: int
    m: int
    e: int
    zp: int
    lo: int
    hi: int
    pad: int = 0

    def __post_init__(self) -> None:
        for name, bits, signed in CHANNEL_FIELDS:
            v = int(getattr(self, name))
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
            if not lo <= v <= hi:
                raise SystolixError(f"channel parameter {name}={v} does not fit {bits} bits")


def pack_channel(p: ChannelParams) -> int:
    word, shift = 0, 0
    for name, bits, _ in CHANNEL_FIELDS:
        word |= (int(getattr(p, name)) & ((1 << bits) - 1)) << shift
        shift += bits
    return word


def unpack_channel(word: int) -> ChannelParams:
    values, shift = {}, 0
    for name, bits, signed in CHANNEL_FIELDS:
        v = (word >> shift) & ((1 << bits) - 1)
        if signed and v >= 1 << (bits - 1):
            v -= 1 << bits
        values[name] = v
        shift += bits
    return ChannelParams(**values)


def pack_row(channels: list[ChannelParams]) -> int:
    """One prm row from up to L channels (lane c = channel c of the block)."""
    return sum(pack_channel(p) << (CHANNEL_BITS * c) for c, p in enumerate(channels))


def unpack_row(word: int, lanes: int) -> list[ChannelParams]:
    return [unpack_channel((word >> (CHANNEL_BITS * c)) & ((1 << CHANNEL_BITS) - 1)) for c in range(lanes)]


def channel_layout():
    """Amaranth ``StructLayout`` of one channel's parameters (same bit positions as ``pack_channel``)."""
    from amaranth.hdl import signed, unsigned
    from amaranth.lib import data

    return data.StructLayout({name: (signed(b) if s else unsigned(b)) for name, b, s in CHANNEL_FIELDS})
