"""The memories a host loads before running a program, and the layout of their words.

The load bus of the top level (``hdl/top.py``) writes one word per clock into the memory ``load_sel``
names; the compiler's images (:class:`~systolix.compiler.images.MemoryImages`) and the ``*.hex`` files of a
build folder hold exactly these words.
"""

from __future__ import annotations

import numpy as np

from .add_arith import TABLE_BITS
from .config import AcceleratorConfig
from .isa import INSTRUCTION_BITS, INSTRUCTION_PIECES, PIECE_BITS
from .params import CHANNEL_BITS

__all__ = ["LOAD_SELECT", "LUT_LANE_BITS", "MEMORIES", "memory_depths", "pack_lanes", "unpack_lanes", "word_bits"]

#: The memories a host loads before running a program, in load order (names of the compiler's ``MemoryImages``), and
#: their ``load_sel`` code on the load bus of ``hdl/top.py``.
LOAD_SELECT = {"wgt": 0, "prm": 1, "prog": 2, "lut": 3, "addtab": 4}
MEMORIES = ("wgt", "prm", "lut", "addtab", "prog")


def word_bits(config: AcceleratorConfig) -> dict[str, int]:
    """Bits of one load-bus word of each memory (and of a line of its ``.hex`` file); ``lut``: one byte per lane."""
    lanes = config.rows
    return {"wgt": 8 * lanes, "prm": CHANNEL_BITS * lanes, "lut": 8 * lanes, "addtab": TABLE_BITS,
            "prog": PIECE_BITS if config.narrow_program else INSTRUCTION_BITS}


#: Bits of one entry of a lane's copy of the ``lut`` memory: a ``lut`` load word holds one entry per lane (lane ``i``
#: in bits ``8*i ..``), so that every lane can have its own table (per-channel tables, one channel per lane).
LUT_LANE_BITS = 8


def memory_depths(config: AcceleratorConfig) -> dict[str, int]:
    """Words of each loadable memory."""
    return {"wgt": config.weight_buffer_depth, "prm": config.param_memory_depth, "lut": config.lut_memory_depth,
            "addtab": config.add_table_depth,
            "prog": config.program_memory_depth * (INSTRUCTION_PIECES if config.narrow_program else 1)}


def pack_lanes(rows: np.ndarray, bits: int = 8) -> list[int]:
    """Rows of lane values -> one integer word per row, lane ``i`` in bits ``bits*i ..`` (two's complement).

    Python integers, so that any number of lanes fits (16 lanes of int8 are 128 bits).
    """
    mask = (1 << bits) - 1
    codes = np.asarray(rows).astype(np.int64).tolist()
    return [sum((v & mask) << (bits * i) for i, v in enumerate(row)) for row in codes]


def unpack_lanes(words: list[int], lanes: int) -> np.ndarray:
    """One word per row -> int8 ``[rows, lanes]`` (inverse of :func:`pack_lanes` with 8-bit lanes)."""
    raw = np.array([[(int(w) >> (8 * i)) & 0xFF for i in range(lanes)] for w in words], dtype=np.uint8)
    return raw.reshape(len(words), lanes).view(np.int8)
