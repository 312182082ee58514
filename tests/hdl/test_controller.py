"""The controller dispatches each instruction to the right engine, in order, and stops at HALT."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module
from amaranth.lib import memory
from amaranth.sim import Simulator

from systolix.arch.isa import (
    INSTRUCTION_PIECES,
    PIECE_BITS,
    Instruction,
    Mode,
    Opcode,
    encode,
    instruction_layout,
    to_pieces,
)
from systolix.hdl.controller import Controller
from tests.hdl.conftest import run_simulation

PROGRAM = [
    Instruction(Opcode.MATMUL, Mode.CONV, layer=0, in_base=0x1234, w_base=0xBEEF, x_zp=-77, bcast=1),
    Instruction(Opcode.MAXPOOL, layer=1, out_base=0xFFFF, rows=0x8001),
    Instruction(Opcode.MATMUL, Mode.DENSE, layer=2),
    Instruction(Opcode.LUT, layer=3),
    Instruction(Opcode.ADD, layer=4),
    Instruction(Opcode.HALT),
]




def _run(narrow: bool) -> tuple[list[tuple[str, int, int]], list[int], dict[str, int]]:
    words = [encode(i) for i in PROGRAM]
    ctl = Controller(program_addr_width=4, narrow=narrow)
    m = Module()
    m.submodules.ctl = ctl
    if narrow:
        prog = memory.Memory(shape=PIECE_BITS, depth=16 * INSTRUCTION_PIECES, init=to_pieces(words))
    else:
        prog = memory.Memory(shape=instruction_layout().size, depth=16, init=words)
    m.submodules.prog = prog
    port = prog.read_port()
    m.d.comb += [port.addr.eq(ctl.prog.addr), port.en.eq(ctl.prog.en), ctl.prog.data.eq(port.data)]
    rng = np.random.default_rng(3)
    seen: list[tuple[str, int, int]] = []
    dispatched: list[int] = []

    def engine(name, ctrl, count):
        async def tb(ctx):
            for _ in range(count):
                await ctx.tick().until(ctrl.start)
                layer = ctx.get(ctrl.instr.layer)
                opcode = ctx.get(ctrl.instr.opcode)
                seen.append((name, int(opcode), int(layer)))
                dispatched.append(int(ctx.get(ctrl.instr.as_value())))
                for _ in range(int(rng.integers(0, 6))):
                    await ctx.tick()
                ctx.set(ctrl.done, 1)
                await ctx.tick()
                ctx.set(ctrl.done, 0)
        return tb

    result = {}

    async def host(ctx):
        await ctx.tick()
        ctx.set(ctl.start, 1)
        await ctx.tick()
        ctx.set(ctl.start, 0)
        assert ctx.get(ctl.busy)
        await ctx.tick().until(ctl.done)
        await ctx.tick()
        result["busy"] = ctx.get(ctl.busy)
        result["cycles"] = ctx.get(ctl.cycles)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    n_matmul = sum(i.opcode == Opcode.MATMUL for i in PROGRAM)
    sim.add_testbench(engine("matmul", ctl.matmul, n_matmul))
    sim.add_testbench(engine("vector", ctl.vector, len(PROGRAM) - 1 - n_matmul))
    sim.add_testbench(host)
    run_simulation(sim, "controller", max_cycles=2000)
    return seen, dispatched, result


@pytest.mark.parametrize("narrow", [False, True], ids=["wide", "narrow"])
def test_controller_runs_program_in_order(narrow):
    seen, dispatched, result = _run(narrow)
    expect = [("matmul" if i.opcode == Opcode.MATMUL else "vector", int(i.opcode), i.layer) for i in PROGRAM[:-1]]
    assert seen == expect
    assert dispatched == [encode(i) for i in PROGRAM[:-1]]  # every bit of every instruction (every piece, in order)
    assert result["busy"] == 0
    assert result["cycles"] >= len(PROGRAM) * Controller.DISPATCH_CYCLES


def test_narrow_program_costs_one_cycle_per_extra_piece():
    """Same engine delays (same seed): the narrow fetch adds ``INSTRUCTION_PIECES - 1`` cycles per instruction,
    HALT included (what ``latency.program_fetch_extra_cycles`` tells the cycle model)."""
    from systolix.arch.config import AcceleratorConfig
    from systolix.arch.latency import program_fetch_extra_cycles

    wide, narrow = _run(False)[2]["cycles"], _run(True)[2]["cycles"]
    extra = program_fetch_extra_cycles(AcceleratorConfig(rows=1, cols=1, narrow_program=True))
    assert extra == INSTRUCTION_PIECES - 1 == 15
    assert narrow - wide == len(PROGRAM) * extra
