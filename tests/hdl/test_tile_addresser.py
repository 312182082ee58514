"""The weight-row address generator against the tile order of docs/architecture.md."""

from __future__ import annotations

import pytest
from amaranth.sim import Simulator

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import FIELDS, Instruction, Mode, Opcode
from systolix.hdl.tile_addresser import TileAddresser

CONFIG = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=1024, weight_buffer_depth=1024, acc_memory_depth=64,
                           param_memory_depth=16)


def reference_rows(ins: Instruction, lanes: int) -> list[int]:
    if ins.w_shared:  # one tile for every step
        return [ins.w_base + r for r in range(lanes)]
    chunks = 1 if ins.mode == Mode.DENSE else -(-ins.out_h // ins.chunk_rows)
    return [ins.w_base + (j * ins.taps + t) * lanes + r
            for j in range(ins.out_blocks) for _ in range(chunks) for t in range(ins.taps) for r in range(lanes)]


CASES = [
    Instruction(opcode=Opcode.MATMUL, mode=Mode.CONV, out_blocks=3, out_h=5, chunk_rows=2, taps=4, w_base=9),
    Instruction(opcode=Opcode.MATMUL, mode=Mode.CONV, out_blocks=1, out_h=4, chunk_rows=4, taps=1, w_base=0),
    Instruction(opcode=Opcode.MATMUL, mode=Mode.DEPTHWISE, out_blocks=2, out_h=3, chunk_rows=1, taps=9, w_base=100),
    Instruction(opcode=Opcode.MATMUL, mode=Mode.DENSE, out_blocks=2, out_h=1, chunk_rows=1, taps=13, w_base=3),
    Instruction(opcode=Opcode.MATMUL, mode=Mode.CONV, out_blocks=2, out_h=7, chunk_rows=3, taps=2, w_base=1000),
    Instruction(opcode=Opcode.MATMUL, mode=Mode.DEPTHWISE, out_blocks=3, out_h=1, chunk_rows=1, taps=12, w_base=50,
                w_shared=1),
]


@pytest.mark.parametrize("index", range(len(CASES)))
@pytest.mark.parametrize("p_ready", [1.0, 0.4])
def test_tile_addresser_order(index, p_ready, stream_bench, simulate):
    ins = CASES[index]
    expected = [row % CONFIG.weight_buffer_depth for row in reference_rows(ins, CONFIG.rows)]
    dut = TileAddresser(CONFIG)
    got: list[int] = []

    async def start(ctx):
        ctx.set(dut.instr, {name: int(getattr(ins, name)) for name, _ in FIELDS})
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().until(~dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(start)
    sim.add_testbench(stream_bench.consumer(dut.o, len(expected), got, p_ready=p_ready, convert=int))
    simulate(sim)
    assert got == expected
