"""The FPGAs ``systolix synth`` targets, and what an accelerator configuration needs of them.

One frozen `Device` per part: its resources in the units nextpnr reports them (logic cells = LUT4s,
flip-flops, hard multipliers, block RAMs, single-port RAMs, I/O pins), the arguments that select it in
nextpnr, and the cell names yosys maps to. Budgets come from the Lattice data sheets (ECP5 FPGA-DS-02012,
iCE40 UltraPlus FPGA-DS-02008) and agree with the ``available`` counts in nextpnr 0.11's ``--report``
(except the LFE5U-85F's I/O, where nextpnr counts all 365 pads of the die, not the 205 of CABGA381).

`estimate` predicts the multipliers, block RAMs, logic cells and I/O pins an `AcceleratorConfig` needs,
so `check_fits` can refuse a configuration that cannot fit before a synthesis run of many minutes. The
formulas follow the structure of the hardware (one multiplier per processing element, a few per vector
lane, every `amaranth.lib.memory.Memory` rounded up to whole blocks of the device's block-RAM shapes)
and their constants are calibrated on measured yosys + nextpnr runs (see `tests/test_synth.py`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from systolix.arch.memory import LUT_LANE_BITS, memory_depths, word_bits
from systolix.errors import SystolixError

__all__ = ["DEVICES", "RESOURCES", "Device", "block_rams", "check_fits", "estimate", "memory_blocks", "spram_blocks"]

#: The resources `estimate` and the synthesis report count, in display order.
RESOURCES = ("LUT4", "FF", "DSP", "BRAM", "SPRAM", "IO")


@dataclasses.dataclass(frozen=True)
class Device:
    """One FPGA part in one package, as the open-source flow sees it.

    Parameters
    ----------
    name : str
        The name used on the command line (``ecp5-85f``).
    part : str
        Lattice part name (``LFE5U-85F``).
    family : str
        ``ecp5`` or ``ice40``: selects ``synth_<family>`` and ``yowasp-nextpnr-<family>``.
    nextpnr_args : tuple of str
        Arguments of nextpnr that select the die, package and speed grade.
    lut4 : int
        Logic cells: 4-input LUTs (a carry cell counts as two on ECP5, one on iCE40, as nextpnr counts).
    ff : int
        Flip-flops.
    dsp : int
        Hard multipliers (MULT18X18D on ECP5, SB_MAC16 on iCE40).
    bram_blocks : int
        Block RAMs (DP16KD on ECP5, SB_RAM40_4K on iCE40).
    bram_bits : int
        Bits per block RAM.
    bram_shapes : tuple of (int, int)
        ``(depth, width)`` configurations of one block RAM, for `memory_blocks`.
    spram : int
        Single-port RAMs (SB_SPRAM256KA on the UltraPlus; none on ECP5).
    spram_bits : int
        Bits per single-port RAM.
    io : int
        User I/O pins in this package.
    cells : Mapping of str to str
        Resource -> the cell type (or nextpnr bel bucket) that counts it, for messages.
    """

    name: str
    part: str
    family: str
    nextpnr_args: tuple[str, ...]
    lut4: int
    ff: int
    dsp: int
    bram_blocks: int
    bram_bits: int
    bram_shapes: tuple[tuple[int, int], ...]
    spram: int
    spram_bits: int
    io: int
    cells: Mapping[str, str]

    def budget(self, resource: str) -> int:
        """How many of ``resource`` (one of `RESOURCES`) the device has."""
        return {"LUT4": self.lut4, "FF": self.ff, "DSP": self.dsp, "BRAM": self.bram_blocks,
                "SPRAM": self.spram, "IO": self.io}[resource]

    def label(self, resource: str) -> str:
        """``resource`` with the cell that counts it, e.g. ``DSP (MULT18X18D)``."""
        cell = self.cells.get(resource)
        return f"{resource} ({cell})" if cell and cell != resource else resource


_ECP5_CELLS = MappingProxyType({"LUT4": "LUT4", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD",
                                "IO": "TRELLIS_IO"})
_ICE40_CELLS = MappingProxyType({"LUT4": "SB_LUT4", "FF": "SB_DFF*", "DSP": "SB_MAC16", "BRAM": "SB_RAM40_4K",
                                 "SPRAM": "SB_SPRAM256KA", "IO": "SB_IO"})
# DP16KD: 16 kbit + parity; the x36 shape exists in pseudo-dual-port mode (one write, one read port),
# which is what every memory of the accelerator is.
_DP16KD = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))
_SB_RAM40_4K = ((2048, 2), (1024, 4), (512, 8), (256, 16))

#: The supported devices, by command-line name.
DEVICES: Mapping[str, Device] = MappingProxyType({
    "ecp5-85f": Device("ecp5-85f", "LFE5U-85F", "ecp5", ("--85k", "--package", "CABGA381", "--speed", "6"),
                       lut4=83_640, ff=83_640, dsp=156, bram_blocks=208, bram_bits=18_432, bram_shapes=_DP16KD,
                       spram=0, spram_bits=0, io=205, cells=_ECP5_CELLS),
    "ecp5-25f": Device("ecp5-25f", "LFE5U-25F", "ecp5", ("--25k", "--package", "CABGA381", "--speed", "6"),
                       lut4=24_288, ff=24_288, dsp=28, bram_blocks=56, bram_bits=18_432, bram_shapes=_DP16KD,
                       spram=0, spram_bits=0, io=197, cells=_ECP5_CELLS),
    "up5k": Device("up5k", "iCE40UP5K", "ice40", ("--up5k", "--package", "sg48"),
                   lut4=5_280, ff=5_280, dsp=8, bram_blocks=30, bram_bits=4_096, bram_shapes=_SB_RAM40_4K,
                   spram=4, spram_bits=262_144, io=39, cells=_ICE40_CELLS),
})


def get_device(name: str) -> Device:
    """The `Device` called ``name``.

    Raises
    ------
    SystolixError
        If there is no such device.
    """
    try:
        return DEVICES[name]
    except (KeyError, TypeError):
        raise SystolixError(f"unknown device {name!r}; known devices: {', '.join(DEVICES)}") from None


# -- what a configuration needs -----------------------------------------------------------------------

#: Memories smaller than this many bits stay in logic (yosys maps them to LUT RAM or flip-flops).
_SMALL_MEMORY_BITS = 2_048

# Calibration (yosys 0.69 + nextpnr 0.11.1, LFE5U-85F, the bundled example at 4x4 and 8x8 inside the host
# shim, after the timing work of issue 11: 4x4 16,057 LUT4 / 17,907 FF / 50 MULT18X18D, 8x8 31,015 / 37,057 /
# 122). Multipliers: one per processing element, 6 per vector lane (4 in the requantizer's 32 x 24-bit
# product, 2 in the ADD unit) and 10 for address arithmetic (vector engine, window addresser). Per PE the
# cells of the PE synthesised alone: 20 LUT4 + 16 carry cells (nextpnr's TRELLIS_COMB counts a carry cell
# as two) and 114 flip-flops (two weight banks, the operand, product and partial-sum registers); per lane
# and fixed, the rest of the two builds (the ADD unit and the requantizer are most of a lane).
_DSP_PER_LANE, _DSP_FIXED = 6, 10
_LUT_PER_PE, _LUT_PER_LANE, _LUT_FIXED = 52, 3_120, 2_760
_FF_PER_PE, _FF_PER_LANE, _FF_FIXED = 114, 3_420, 2_400


def memory_blocks(depth: int, width: int, shapes: tuple[tuple[int, int], ...]) -> int:
    """Block RAMs for a ``depth`` x ``width`` memory: the cheapest tiling by one of the block ``shapes``.

    >>> memory_blocks(1024, 32, DEVICES["ecp5-85f"].bram_shapes)
    2
    >>> memory_blocks(1024, 32, DEVICES["up5k"].bram_shapes)
    8
    """
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in shapes)


def _memories(config: Any) -> list[tuple[str, int, int]]:
    """``(name, depth, width)`` of every memory the accelerator instantiates for ``config``."""
    lanes, cols = config.rows, config.cols
    bits, depths = word_bits(config), memory_depths(config)
    mems = [("act", config.act_buffer_depth, 8 * lanes), ("acc", config.acc_memory_depth, config.acc_width * cols),
            *((name, depths[name], bits[name]) for name in ("wgt", "prm", "prog"))]
    units = getattr(config, "vector_units", ("lut", "add"))
    for lane in range(lanes):  # one copy of each table per lane, none without the unit that reads it
        mems += [(f"lut{lane}", depths["lut"], LUT_LANE_BITS if "lut" in units else 0),
                 (f"tab{lane}", depths["addtab"], bits["addtab"] if "add" in units else 0)]
    return mems


#: Words and bits of one SB_SPRAM256KA.
_SPRAM_WORDS, _SPRAM_WIDTH = 16_384, 16


def spram_blocks(config: Any, device: Device | str) -> dict[str, int]:
    """Single-port RAMs of ``act`` and ``wgt`` with ``spram_buffers`` on a device that has them (else none):
    each ``act`` bank and the ``wgt`` words (two 8-bit rows per word on a 1x1 array) in whole 16K x 16 blocks."""
    device = get_device(device) if isinstance(device, str) else device
    if not getattr(config, "spram_buffers", False) or not device.spram:
        return {}
    lanes = config.rows
    pack = 2 if lanes == 1 else 1
    act = 2 * math.ceil(config.act_bank_rows / _SPRAM_WORDS) * math.ceil(8 * lanes / _SPRAM_WIDTH)
    wgt = (math.ceil(math.ceil(config.weight_buffer_depth / pack) / _SPRAM_WORDS)
           * math.ceil(8 * lanes * pack / _SPRAM_WIDTH))
    return {"act": act, "wgt": wgt}


def block_rams(config: Any, device: Device | str) -> dict[str, int]:
    """Block RAMs of each memory of the accelerator for ``config`` on ``device`` (``lut`` and ``tab``: all lane
    copies together; memories small enough for logic count 0; ``act`` and ``wgt`` in single-port RAMs, see
    `spram_blocks`, count 0), as `estimate` counts them."""
    device = get_device(device) if isinstance(device, str) else device
    blocks: dict[str, int] = {}
    in_spram = spram_blocks(config, device)
    for name, depth, width in _memories(config):
        key = name.rstrip("0123456789")
        if key in in_spram:
            blocks[key] = 0
            continue
        used = memory_blocks(depth, width, device.bram_shapes) if depth * width >= _SMALL_MEMORY_BITS else 0
        blocks[key] = blocks.get(key, 0) + used
    return blocks


def _io_pins(config: Any) -> int:
    """Top-level pins of the synthesised design: the 32-bit host bus of `NarrowHost` around the accelerator,
    plus clock and reset (the accelerator's own ports are wider than any package)."""
    from amaranth.hdl import Shape

    from .narrow_host import NarrowHost

    host = NarrowHost(config)
    host._MustUse__silence = True  # built only to read its ports
    return 2 + sum(Shape.cast(member.shape).width for _, member in host.signature.members.items())


def estimate(config: Any, device: Device | str = "ecp5-85f") -> dict[str, int]:
    """Resources the accelerator for ``config`` needs on ``device`` (estimated, before synthesis).

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator configuration.
    device : Device or str
        Block-RAM shapes differ between families; the default is the ECP5 LFE5U-85F.

    Returns
    -------
    dict of str to int
        ``LUT4``, ``FF``, ``DSP``, ``BRAM`` (blocks), ``SPRAM`` (single-port RAMs: with ``spram_buffers`` only,
        `spram_blocks`) and ``IO`` (pins).
    """
    device = get_device(device) if isinstance(device, str) else device
    pes = config.rows * config.cols
    lanes = config.rows
    bram = sum(block_rams(config, device).values())
    return {
        "LUT4": _LUT_FIXED + _LUT_PER_PE * pes + _LUT_PER_LANE * lanes,
        "FF": _FF_FIXED + _FF_PER_PE * pes + _FF_PER_LANE * lanes,
        "DSP": pes + _DSP_PER_LANE * lanes + _DSP_FIXED,
        "BRAM": bram,
        "SPRAM": sum(spram_blocks(config, device).values()),
        "IO": _io_pins(config),
    }


def check_fits(config: Any, device: Device | str) -> dict[str, int]:
    """Refuse a configuration whose estimated needs exceed ``device``; return the estimate if it fits.

    Raises
    ------
    SystolixError
        One line naming every resource that does not fit, with the need and the budget.
    """
    device = get_device(device) if isinstance(device, str) else device
    need = estimate(config, device)
    over = [f"{r} needs about {need[r]:,} {device.cells.get(r, r)}, the device has {device.budget(r):,}"
            for r in ("DSP", "BRAM", "SPRAM", "LUT4", "FF", "IO") if need[r] > device.budget(r)]
    if over:
        raise SystolixError(f"the {config.rows}x{config.cols} accelerator does not fit {device.name} "
                            f"({device.part}): {'; '.join(over)}")
    return need
