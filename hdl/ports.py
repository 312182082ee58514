"""Signatures shared by the engines and the top level: memory access and engine control.

Engines own no memories; the top level (``hdl/top.py``) owns them and wires each engine's ports to
them (muxed by which engine is running). Reads are synchronous: ``data`` is valid the cycle after the
cycle in which ``en`` was high with ``addr``.
"""

from __future__ import annotations

from amaranth.hdl import ShapeLike
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.isa import instruction_layout


def read_port(addr_width: int, shape: ShapeLike) -> wiring.Signature:
    """A synchronous memory read port, from the reader's side."""
    return wiring.Signature({"addr": Out(addr_width), "en": Out(1), "data": In(shape)})


def write_port(addr_width: int, shape: ShapeLike) -> wiring.Signature:
    """A memory write port, from the writer's side."""
    return wiring.Signature({"addr": Out(addr_width), "en": Out(1), "data": Out(shape)})


def engine_control() -> wiring.Signature:
    """Controller -> engine: ``instr`` is stable while ``start`` is pulsed and until ``done``.

    From the engine's side (the engine is ``In(engine_control())``... see usage): the controller pulses
    ``start`` for one cycle with ``instr`` valid; the engine raises ``done`` for one cycle when the whole
    instruction (all its memory writes) has completed.
    """
    return wiring.Signature({"instr": Out(instruction_layout()), "start": Out(1), "done": In(1)})
