"""The accelerator's instruction set: one fixed-width word per layer instruction.

The field table below is the single definition shared by the compiler (``encode``), the functional
program model and the hardware controller (:func:`instruction_layout`, an Amaranth ``StructLayout``
with the same fields in the same order, LSB first). See ``docs/architecture.md`` for what each
opcode does.
"""

from __future__ import annotations

import dataclasses
import enum

from systolix.errors import SystolixError


class Opcode(enum.IntEnum):
    HALT = 0
    MATMUL = 1
    MAXPOOL = 2
    ADD = 3
    LUT = 4
    MUL = 5
    RESIZE = 6


#: The vector unit (``AcceleratorConfig.vector_units``) each vector opcode needs.
OPCODE_UNIT = {Opcode.MAXPOOL: "maxpool", Opcode.LUT: "lut", Opcode.ADD: "add", Opcode.MUL: "mul",
               Opcode.RESIZE: "resize"}


class Mode(enum.IntEnum):
    """MATMUL reduction modes."""

    CONV = 0
    DEPTHWISE = 1
    DENSE = 2


#: (field, bits), LSB first. Addresses and sizes are 16-bit; zero points are signed 9-bit.
FIELDS: tuple[tuple[str, int], ...] = (
    ("opcode", 4),
    ("mode", 2),
    ("in_base", 16),     # act row of the (first) input tensor
    ("in2_base", 16),    # act row of the second input (ADD, MUL)
    ("out_base", 16),    # act row of the output tensor
    ("in_blocks", 8),    # channel blocks of the input (ceil(C_in / L))
    ("in_h", 10),
    ("in_w", 10),
    ("out_blocks", 8),   # channel blocks of the output
    ("out_h", 10),
    ("out_w", 10),
    ("k_h", 8),
    ("k_w", 8),
    ("stride_h", 4),
    ("stride_w", 4),
    ("pad_top", 6),
    ("pad_left", 6),
    ("dil_h", 4),
    ("dil_w", 4),
    ("taps", 16),        # MATMUL reduction steps per output block (weight tiles per block)
    ("chunk_rows", 10),  # MATMUL: output rows per accumulator chunk
    ("x_zp", 9),         # input zero point (signed), subtracted before the multiply
    ("w_base", 16),      # wgt row of the first tile
    ("p_base", 12),      # prm row of the first output block (ADD, MUL: its parameter row)
    ("lut_base", 12),    # lut row (LUT: table; ADD: first of its tables)
    ("rows", 16),        # ADD / MUL / LUT: act rows to process
    ("layer", 8),        # index of the IR layer, for reports
    ("w_shared", 1),     # MATMUL: every reduction step uses the one tile at w_base (global average pool)
    ("bcast", 1),        # ADD / MUL: the second input has one row per channel block, each used for in_h*in_w rows
)

INSTRUCTION_BITS = sum(bits for _, bits in FIELDS)
#: A narrow program memory (``AcceleratorConfig.narrow_program``) holds an instruction as ``INSTRUCTION_PIECES``
#: words of ``PIECE_BITS`` bits, least significant piece first.
PIECE_BITS = 16
INSTRUCTION_PIECES = -(-INSTRUCTION_BITS // PIECE_BITS)
_SIGNED = {"x_zp"}


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One decoded instruction; unused fields stay 0."""

    opcode: Opcode
    mode: Mode = Mode.CONV
    in_base: int = 0
    in2_base: int = 0
    out_base: int = 0
    in_blocks: int = 0
    in_h: int = 0
    in_w: int = 0
    out_blocks: int = 0
    out_h: int = 0
    out_w: int = 0
    k_h: int = 0
    k_w: int = 0
    stride_h: int = 0
    stride_w: int = 0
    pad_top: int = 0
    pad_left: int = 0
    dil_h: int = 0
    dil_w: int = 0
    taps: int = 0
    chunk_rows: int = 0
    x_zp: int = 0
    w_base: int = 0
    p_base: int = 0
    lut_base: int = 0
    rows: int = 0
    layer: int = 0
    w_shared: int = 0
    bcast: int = 0

    def __post_init__(self) -> None:
        for name, bits in FIELDS:
            value = int(getattr(self, name))
            lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if name in _SIGNED else (0, (1 << bits) - 1)
            if not lo <= value <= hi:
                raise SystolixError(f"instruction field {name}={value} does not fit its {bits} bits "
                                    f"(range {lo}..{hi}); the layer is too large for this instruction set")


def encode(instr: Instruction) -> int:
    """Pack an instruction into an ``INSTRUCTION_BITS``-bit integer (field order of ``FIELDS``)."""
    word, shift = 0, 0
    for name, bits in FIELDS:
        value = int(getattr(instr, name)) & ((1 << bits) - 1)
        word |= value << shift
        shift += bits
    return word


def decode(word: int) -> Instruction:
    """Inverse of :func:`encode`."""
    values, shift = {}, 0
    for name, bits in FIELDS:
        value = (word >> shift) & ((1 << bits) - 1)
        if name in _SIGNED and value >= 1 << (bits - 1):
            value -= 1 << bits
        values[name] = value
        shift += bits
    values["opcode"] = Opcode(values["opcode"])
    values["mode"] = Mode(values["mode"])
    return Instruction(**values)


def to_pieces(words: list[int]) -> list[int]:
    """Instruction words -> their ``PIECE_BITS``-bit pieces (``INSTRUCTION_PIECES`` per word, LSB first)."""
    mask = (1 << PIECE_BITS) - 1
    return [(int(w) >> (PIECE_BITS * k)) & mask for w in words for k in range(INSTRUCTION_PIECES)]


def from_pieces(pieces: list[int]) -> list[int]:
    """Inverse of :func:`to_pieces` (a trailing partial instruction is refused)."""
    if len(pieces) % INSTRUCTION_PIECES:
        raise SystolixError(f"{len(pieces):,} program pieces are not whole instructions of {INSTRUCTION_PIECES}")
    return [sum(int(pieces[i + k]) << (PIECE_BITS * k) for k in range(INSTRUCTION_PIECES))
            for i in range(0, len(pieces), INSTRUCTION_PIECES)]


def instruction_layout():
    """The Amaranth ``StructLayout`` of an instruction word (same fields, same bit positions)."""
    from amaranth.hdl import signed, unsigned
    from amaranth.lib import data

    return data.StructLayout({name: (signed(bits) if name in _SIGNED else unsigned(bits)) for name, bits in FIELDS})
