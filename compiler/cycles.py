"""Predicted clock cycles of each instruction: a formula, to be compared with measured cycles.

Assumptions (each a guess about the engines, stated so that a measured difference points at one):

Unit latencies come from :mod:`systolix.arch.latency`, the contract the HDL units are built to.

MATMUL (``docs/architecture.md`` sequencing: blocks j, chunks, taps t, pixels p)
  - A reduction step (one weight tile) streams the ``P`` pixels of its chunk, one per cycle (DENSE:
    ``P = 1``).
  - Weight tiles load one ``wgt`` row per cycle into the idle bank of `MatMulUnit`, overlapped with
    the streaming of the current tile, starting ``MatMulUnit.drain_cycles`` (``L``) cycles after the
    last vector that used that bank (the last one before the previous swap) and no sooner than the
    cycle after that swap; the tile is swapped in when its ``L`` rows are loaded. Swap times follow
    ``s_(k+1) = max(s_k + P_k, max(s_k + 1, s_(k-1) + P_(k-1) - 1 + L) + L)``: ``max(P, 2L - 1)``
    for tiles streamed back to back, ``L + 1`` per DENSE step. With ``w_shared`` (global average
    pool) there is one tile for the whole instruction: ``P`` cycles per step.
  - The first tile of the instruction is loaded before anything streams: ``L + 1`` cycles, + 2 to
    start the engine (measured).
  - Accumulation and requantization are pipelined behind the array (a sum leaves the accumulator on
    its last tap), so an instruction adds one pipeline latency, not one per chunk:
    ``MatMulUnit.latency + Accumulator.latency - 1`` ``+ 1`` (parameter fetch, bias) ``+ Requantizer.latency
    + 2`` (per-lane clamp register, act write), + ``SyncReader.latency - 1`` (the first tile's rows).
  - The parameter fetch reads a new ``prm`` row for each output block, holding the sums up for 2
    cycles; when the pixels stream back to back (``P >= 2L - 1``) the array waits too: + 2 cycles per
    output block after the first (about ``(P - 2) // 2`` for fewer pixels; nothing for DENSE).
MAXPOOL: one ``act`` read per window tap: ``blocks * out_pixels * k_h * k_w`` cycles, + 4 (read
  latency, read register, compare, write).
LUT: one row per cycle: ``rows + 3 + LookupUnit.latency`` (act read, read register, lut read and its
  register, write).
ADD: the two operand rows are read through the one ``act`` read port: ``2 * rows`` + 3 (read, read
  register, write) + ``AddUnit.latency``. With ``bcast``: ``rows + blocks`` reads (the second operand's row
  once per channel block, latched).
MUL: as ADD, + ``MulUnit.latency``.
RESIZE: one ``act`` read per output pixel, as MAXPOOL with a one-tap window.
MAXPOOL, LUT, ADD and MUL add ``VectorEngine`` setup cycles beyond the first.
Every instruction: 4 cycles of fetch/decode/start/done handshake (measured), + ``INSTRUCTION_PIECES - 1`` with a
narrow program memory (one piece fetched per cycle). HALT: its decode and ``done`` (and the same fetch).
"""

from __future__ import annotations

import functools

from systolix.arch import latency
from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Instruction, Mode, Opcode

__all__ = ["pipeline_latencies", "predicted_cycles"]

_OVERHEAD = 4


@functools.cache
def pipeline_latencies(config: AcceleratorConfig) -> dict[str, int]:
    """Latencies of the hardware units for ``config`` (`systolix.arch.latency.latencies`)."""
    return latency.latencies(config)


def _chunk_pixels(instr: Instruction) -> list[int]:
    if instr.mode == Mode.DENSE:
        return [1]
    rows = max(1, instr.chunk_rows)
    full, rest = divmod(instr.out_h, rows)
    return [rows * instr.out_w] * full + ([rest * instr.out_w] if rest else [])


def _streaming_cycles(instr: Instruction, lanes: int, drain: int) -> int:
    """Cycles from the first vector of the instruction to the last one (inclusive)."""
    chunks = _chunk_pixels(instr)
    if instr.w_shared:
        return instr.out_blocks * instr.taps * sum(chunks)
    swap, before = 0, None  # the current tile's swap cycle; the last vector before it
    for _ in range(instr.out_blocks):
        for p in chunks:
            for _ in range(instr.taps):
                first_load = swap + 1 if before is None else max(swap + 1, before + drain)
                swap, before = max(swap + p, first_load + lanes), swap + p - 1
    return before + 1  # the last tile's vectors end where the (never used) next swap's `before` is


@functools.lru_cache(maxsize=4096)
def predicted_cycles(instr: Instruction, config: AcceleratorConfig) -> int:
    """Cycles the hardware is predicted to take for one instruction (module docstring)."""
    lanes = config.rows
    fetch = latency.program_fetch_extra_cycles(config)
    if instr.opcode == Opcode.HALT:
        return latency.controller_halt_cycles(config) + fetch
    if instr.opcode == Opcode.MATMUL:
        lat = pipeline_latencies(config)
        steps = _streaming_cycles(instr, lanes, lat["drain"])
        pixels = min(_chunk_pixels(instr))
        params = (instr.out_blocks - 1) * min(2, max(0, (pixels - 2) // 2))
        return (fetch + _OVERHEAD + lanes + 3 + steps + params + lat["matmul"] + lat["accumulator"] + lat["requantizer"]
                + 2 + lat["sync_reader"] - 1)
    setup = latency.vector_engine_setup_cycles(config) - 1
    if instr.opcode == Opcode.MAXPOOL:
        return fetch + _OVERHEAD + setup + instr.out_blocks * instr.out_h * instr.out_w * instr.k_h * instr.k_w + 4
    if instr.opcode == Opcode.LUT:
        return fetch + _OVERHEAD + setup + instr.rows + 3 + latency.lookup_unit_latency(config)
    if instr.opcode in (Opcode.ADD, Opcode.MUL):
        unit = pipeline_latencies(config)["add" if instr.opcode == Opcode.ADD else "mul"]
        if instr.bcast:  # one read per row, plus the second operand's row once per channel block
            reads = instr.rows + -(-instr.rows // max(1, instr.in_h * instr.in_w))
        else:
            reads = 2 * instr.rows
        return fetch + _OVERHEAD + setup + reads + 3 + unit
    if instr.opcode == Opcode.RESIZE:
        return fetch + _OVERHEAD + setup + instr.out_blocks * instr.out_h * instr.out_w + 4
    raise ValueError(f"unknown opcode {instr.opcode!r}")
