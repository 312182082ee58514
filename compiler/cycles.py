"""Predicted clock cycles of each instruction: a formula, to be compared with measured cycles.

Assumptions (each a guess about the engines, stated so that a measured difference points at one):

MATMUL (``docs/architecture.md`` sequencing: blocks j, chunks, taps t, pixels p)
  - Weight tiles load one ``wgt`` row per cycle into the idle bank of `MatMulUnit`, overlapped with the
    streaming of the current tile. The idle bank is free again ``MatMulUnit.drain_cycles`` after a
    swap, so two swaps are at least ``tile_interval = drain_cycles + L + 1`` cycles apart (the load
    plus one cycle of synchronous read). A reduction step over the ``P`` pixels of a chunk therefore
    lasts ``max(P, tile_interval)`` cycles (DENSE and the global average pool: ``P = 1``).
  - The first tile of the instruction is loaded before anything streams: ``L + 1`` cycles.
  - Accumulation and requantization are pipelined behind the array (a sum leaves the accumulator on
    its last tap), so an instruction adds one pipeline latency, not one per chunk:
    ``MatMulUnit.latency + 1`` (accumulator) ``+ 1`` (parameter fetch, bias) ``+ Requantizer.latency + 1``
    (act write).
MAXPOOL: one ``act`` read per window tap: ``blocks * out_pixels * k_h * k_w`` cycles, + 3 (read
  latency, compare, write).
LUT: one row per cycle: ``rows + 3`` (act read, lut read, write).
ADD: the two operand rows are read through the one ``act`` read port: ``2 * rows`` + 2 (read, write) +
  ``AddUnit.latency``.
Every instruction: 2 cycles of fetch/decode/start/done handshake. HALT: 1.
"""

from __future__ import annotations

import functools

from systolix.hdl.config import AcceleratorConfig

from .isa import Instruction, Mode, Opcode

__all__ = ["pipeline_latencies", "predicted_cycles"]

_OVERHEAD = 2


@functools.cache
def pipeline_latencies(config: AcceleratorConfig) -> dict[str, int]:
    """Latencies of the hardware units for ``config``, taken from the HDL classes themselves."""
    from systolix.hdl.add_unit import AddUnit
    from systolix.hdl.requantizer import Requantizer
    from systolix.hdl.systolic_array import MatMulUnit

    units = [MatMulUnit(config), Requantizer(config.cols), AddUnit(config.rows)]
    for unit in (*units, units[0]._array):  # built only to read their latency properties: never elaborated
        unit._MustUse__silence = True
    unit, requantizer, add = units
    return {"matmul": unit.latency, "drain": unit.drain_cycles, "requantizer": requantizer.latency,
            "add": add.latency}


def _chunk_pixels(instr: Instruction) -> list[int]:
    if instr.mode == Mode.DENSE:
        return [1]
    rows = max(1, instr.chunk_rows)
    full, rest = divmod(instr.out_h, rows)
    return [rows * instr.out_w] * full + ([rest * instr.out_w] if rest else [])


def predicted_cycles(instr: Instruction, config: AcceleratorConfig) -> int:
    """Cycles the hardware is predicted to take for one instruction (module docstring)."""
    lanes = config.rows
    if instr.opcode == Opcode.HALT:
        return 1
    if instr.opcode == Opcode.MATMUL:
        lat = pipeline_latencies(config)
        interval = lat["drain"] + lanes + 1
        steps = sum(instr.taps * max(p, interval) for p in _chunk_pixels(instr)) * instr.out_blocks
        return _OVERHEAD + lanes + 1 + steps + lat["matmul"] + 2 + lat["requantizer"] + 1
    if instr.opcode == Opcode.MAXPOOL:
        return _OVERHEAD + instr.out_blocks * instr.out_h * instr.out_w * instr.k_h * instr.k_w + 3
    if instr.opcode == Opcode.LUT:
        return _OVERHEAD + instr.rows + 3
    if instr.opcode == Opcode.ADD:
        return _OVERHEAD + 2 * instr.rows + 2 + pipeline_latencies(config)["add"]
    raise ValueError(f"unknown opcode {instr.opcode!r}")
