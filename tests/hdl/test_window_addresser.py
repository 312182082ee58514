"""The window addresser against the loop nest of docs/architecture.md, written out directly."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import FIELDS, Instruction, Mode, Opcode
from systolix.hdl.window_addresser import WindowAddresser

CONFIG = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=1024, weight_buffer_depth=512, acc_memory_depth=64,
                           param_memory_depth=16)


def reference_items(ins: Instruction, aw: int) -> list[tuple]:
    """(addr or None, valid, swap, p, first, last, j, end) for every item, by the architecture's formulas."""
    items = []
    dense = ins.mode == Mode.DENSE
    out_h, out_w = (1, 1) if dense else (ins.out_h, ins.out_w)
    chunk_rows = 1 if dense else ins.chunk_rows
    for j in range(ins.out_blocks):
        for oy0 in range(0, out_h, chunk_rows):
            rows = range(oy0, min(out_h, oy0 + chunk_rows))
            for t in range(ins.taps):
                p = 0
                for oy in rows:
                    for ox in range(out_w):
                        if dense:
                            valid, row = True, ins.in_base + t
                        else:
                            if ins.mode == Mode.CONV:
                                tap, cbi = divmod(t, ins.in_blocks)
                            else:
                                tap, cbi = t, j
                            ky, kx = divmod(tap, ins.k_w)
                            iy = oy * ins.stride_h - ins.pad_top + ky * ins.dil_h
                            ix = ox * ins.stride_w - ins.pad_left + kx * ins.dil_w
                            valid = 0 <= iy < ins.in_h and 0 <= ix < ins.in_w
                            row = ins.in_base + (cbi * ins.in_h + iy) * ins.in_w + ix
                        swap = p == 0 and (not ins.w_shared or not items)
                        items.append((row % (1 << aw) if valid else None, int(valid), int(swap), p,
                                      int(t == 0), int(t == ins.taps - 1), j, 0))
                        p += 1
    items[-1] = items[-1][:-1] + (1,)
    return items


def instruction_value(ins: Instruction) -> dict[str, int]:
    """The instruction as a value for an `instruction_layout()` signal."""
    return {name: int(getattr(ins, name)) for name, _ in FIELDS}


def conv(**kw) -> Instruction:
    fields = dict(opcode=Opcode.MATMUL, mode=Mode.CONV, in_base=17, in_blocks=2, in_h=5, in_w=6, out_blocks=2,
                  k_h=3, k_w=3, stride_h=1, stride_w=1, pad_top=1, pad_left=1, dil_h=1, dil_w=1)
    fields.update(kw)
    if "out_h" not in fields:
        fields["out_h"] = (fields["in_h"] + 2 * fields["pad_top"] - fields["dil_h"] * (fields["k_h"] - 1) - 1) \
            // fields["stride_h"] + 1
        fields["out_w"] = (fields["in_w"] + 2 * fields["pad_left"] - fields["dil_w"] * (fields["k_w"] - 1) - 1) \
            // fields["stride_w"] + 1
    if "taps" not in fields:
        blocks = fields["in_blocks"] if fields["mode"] == Mode.CONV else 1
        fields["taps"] = fields["k_h"] * fields["k_w"] * blocks
    fields.setdefault("chunk_rows", fields["out_h"])
    return Instruction(**fields)


CASES = {
    "conv3x3": conv(),
    "conv_chunks": conv(chunk_rows=2, in_blocks=1, out_blocks=3),
    "stride2_asym": conv(stride_h=2, stride_w=2, pad_top=0, pad_left=1, in_h=7, in_w=7, out_h=3, out_w=4,
                         chunk_rows=2),
    "dilation2": conv(dil_h=2, dil_w=2, pad_top=2, pad_left=2, in_blocks=1, chunk_rows=3),
    "conv1x1": conv(k_h=1, k_w=1, pad_top=0, pad_left=0, in_blocks=3, out_blocks=1),
    "conv1d": conv(in_h=1, k_h=1, pad_top=0, k_w=5, pad_left=2, in_w=9, in_blocks=1),
    "depthwise": conv(mode=Mode.DEPTHWISE, in_blocks=3, out_blocks=3, chunk_rows=2),
    "gap": conv(mode=Mode.DEPTHWISE, in_blocks=2, out_blocks=2, k_h=5, k_w=6, pad_top=0, pad_left=0),
    "gap_shared_tile": conv(mode=Mode.DEPTHWISE, in_blocks=3, out_blocks=3, k_h=5, k_w=6, pad_top=0, pad_left=0,
                            w_shared=1, chunk_rows=1),
    "dense": Instruction(opcode=Opcode.MATMUL, mode=Mode.DENSE, in_base=40, in_blocks=1, in_h=1, in_w=1,
                         out_blocks=3, out_h=1, out_w=1, taps=7, chunk_rows=1),
    "wrap": conv(in_base=1000, in_blocks=1, out_blocks=1),  # rows past the end of act wrap around
}


def run_addresser(ins: Instruction, stream_bench, simulate, p_ready: float) -> list[tuple]:
    dut = WindowAddresser(CONFIG)
    expected_count = len(reference_items(ins, CONFIG.act_addr_width))
    got: list[tuple] = []

    def convert(v):
        return (int(v.addr) if v.valid else None, int(v.valid), int(v.swap), int(v.p), int(v.first),
                int(v.last), int(v.j), int(v.end))

    async def start(ctx):
        ctx.set(dut.instr, instruction_value(ins))
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        await ctx.tick().until(~dut.busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(start)
    sim.add_testbench(stream_bench.consumer(dut.o, expected_count, got, p_ready=p_ready, convert=convert))
    simulate(sim, max_cycles=20 * expected_count + 100)
    return got



@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("p_ready", [1.0, 0.5])
def test_window_addresser_matches_loop_nest(name, p_ready, stream_bench, simulate):
    ins = CASES[name]
    expected = reference_items(ins, CONFIG.act_addr_width)
    got = run_addresser(ins, stream_bench, simulate, p_ready)
    assert len(got) == len(expected)
    mismatches = [(k, g, e) for k, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    assert not mismatches, mismatches[:5]


@pytest.mark.parametrize("seed", range(6))
def test_window_addresser_random_instructions(seed, stream_bench, simulate):
    rng = np.random.default_rng(seed)
    mode = Mode(int(rng.integers(0, 3)))
    k_h, k_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    dil_h, dil_w = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    ins = conv(mode=mode, in_base=int(rng.integers(0, 1024)), in_blocks=int(rng.integers(1, 3)),
               in_h=int(rng.integers(k_h * dil_h, k_h * dil_h + 6)),
               in_w=int(rng.integers(k_w * dil_w, k_w * dil_w + 6)),
               out_blocks=int(rng.integers(1, 3)), k_h=k_h, k_w=k_w, stride_h=int(rng.integers(1, 4)),
               stride_w=int(rng.integers(1, 4)), pad_top=int(rng.integers(0, 3)), pad_left=int(rng.integers(0, 3)),
               dil_h=dil_h, dil_w=dil_w)
    ins = dataclasses.replace(ins, chunk_rows=int(rng.integers(1, ins.out_h + 1)))
    if mode == Mode.DENSE:
        ins = dataclasses.replace(ins, taps=int(rng.integers(1, 20)))
    expected = reference_items(ins, CONFIG.act_addr_width)
    got = run_addresser(ins, stream_bench, simulate, 0.7)
    assert got == expected
