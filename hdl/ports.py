"""Signatures shared by the engines and the top level: memory access and engine control.

Engines own no memories; the top level (``hdl/top.py``) owns them and wires each engine's ports to
them (muxed by which engine is running). Reads are synchronous: ``data`` is valid the cycle after the
cycle in which ``en`` was high with ``addr`` -- or, for a *captured* port (`captured`: the engines' ``act``
and ``prm`` reads), two cycles after, and held until the next read lands.
"""

from __future__ import annotations

from amaranth.hdl import Module, ShapeLike, Signal, Value
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


def captured(m: Module, data: Value, en: Value, name: str) -> Signal:
    """The words read from a memory port, each captured in a register the cycle after its read.

    ``data`` and ``en`` are the memory port's read data and enable. The returned register loads the word
    of a read the cycle after it (when it is on ``data``) and holds it until the next read lands: a reader
    sees its word two cycles after ``en`` (a *captured* read port). With one flip-flop per bit as the only
    load of the block RAM's output, the placer keeps them next to it: its clock-to-output leaves no time
    for routing to the readers and their logic in the same cycle.
    """
    landing = Signal(name=f"{name}_landing")
    word = Signal.like(data, name=f"{name}_captured", reset_less=True)
    m.d.sync += landing.eq(en)
    with m.If(landing):
        m.d.sync += word.eq(data)
    return word
