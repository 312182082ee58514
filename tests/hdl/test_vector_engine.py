"""The vector engine executing MAXPOOL, LUT and ADD instructions on memories owned by a test harness.

References: ``quantize.golden.max_pool`` (MAXPOOL, on the channel-blocked tensor unpacked to NCHW),
NumPy indexing (LUT), ``quantize.golden.qlinear_add`` on the codes shifted back to their type (ADD; the
integer model ``add_arith.qadd_model`` is checked against it exhaustively elsewhere). Several
instructions run back to back in one simulation, as the controller would issue them.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Module, unsigned
from amaranth.lib import data
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from systolix.arch import latency
from systolix.arch.add_arith import TABLE_BITS, add_images
from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import FIELDS, Instruction, Opcode
from systolix.compiler.cycles import pipeline_latencies
from systolix.hdl.ports import captured
from systolix.hdl.vector_engine import VectorEngine
from systolix.quantize.golden.max_pool import max_pool
from systolix.quantize.golden.qlinear_add import qlinear_add

CONFIG = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=1024, param_memory_depth=16)
L = CONFIG.rows
LUT_DEPTH = 512
TAB_DEPTH = 512


def blocked(x: np.ndarray) -> np.ndarray:
    """[C, H, W] -> act rows [CB*H*W, L] (lanes past C hold 0)."""
    c, h, w = x.shape
    cb = -(-c // L)
    padded = np.zeros((cb * L, h, w), dtype=np.int64)
    padded[:c] = x
    return padded.reshape(cb, L, h, w).transpose(0, 2, 3, 1).reshape(-1, L)


def unblocked(rows: np.ndarray, c: int, h: int, w: int) -> np.ndarray:
    cb = -(-c // L)
    return rows.reshape(cb, h, w, L).transpose(0, 3, 1, 2).reshape(cb * L, h, w)[:c]


class Harness:
    def __init__(self, act, prm, lut, tab):
        self.m = m = Module()
        m.submodules.dut = self.dut = dut = VectorEngine(CONFIG, lut_addr_width=9, table_addr_width=9)
        vector = data.ArrayLayout(8, L)
        self.act = Memory(shape=vector, depth=CONFIG.act_buffer_depth,
                          init=[[int(v) & 0xFF for v in row] for row in act])
        m.submodules.act = self.act
        rd, wr = self.act.read_port(), self.act.write_port()
        # The engine's act and prm ports are captured ones, as the top level wires them.
        m.d.comb += [rd.addr.eq(dut.act_rd.addr), rd.en.eq(dut.act_rd.en),
                     dut.act_rd.data.eq(captured(m, rd.data, rd.en, "act")),
                     wr.addr.eq(dut.act_wr.addr), wr.en.eq(dut.act_wr.en), wr.data.eq(dut.act_wr.data)]
        m.submodules.prm = prm_mem = Memory(shape=unsigned(96 * L), depth=CONFIG.param_memory_depth, init=prm)
        prm_rd = prm_mem.read_port()
        m.d.comb += [prm_rd.addr.eq(dut.prm_rd.addr), prm_rd.en.eq(dut.prm_rd.en),
                     dut.prm_rd.data.eq(captured(m, prm_rd.data, prm_rd.en, "prm"))]
        for lane in range(L):
            for name, port, width, init in (("lut", dut.lut_rd, 8, [int(v) & 0xFF for v in lut[:, lane]]),
                                            ("tab", dut.tab_rd, TABLE_BITS, [int(v) for v in tab])):
                mem = Memory(shape=width, depth=len(init), init=init)
                m.submodules[f"{name}{lane}"] = mem
                p = mem.read_port()
                m.d.comb += [p.addr.eq(port.addr[lane]), p.en.eq(port.en), port.data[lane].eq(p.data)]

    def run(self, program: list[Instruction], simulate) -> tuple[np.ndarray, list[int]]:
        sim = Simulator(self.m)
        sim.add_clock(1e-8)
        cycles: list[int] = []
        result = []
        dut = self.dut

        async def controller(ctx):
            for instr in program:
                ctx.set(dut.ctl.instr, {name: int(getattr(instr, name)) for name, _ in FIELDS})
                ctx.set(dut.ctl.start, 1)
                await ctx.tick()
                ctx.set(dut.ctl.start, 0)
                count = 1
                while not ctx.get(dut.ctl.done):
                    assert ctx.get(dut.busy)
                    await ctx.tick()
                    count += 1
                cycles.append(count)
                await ctx.tick()
                assert not ctx.get(dut.busy)
            result.append(np.array([[v - 256 if v > 127 else v for v in ctx.get(self.act.data[row])]
                                    for row in range(CONFIG.act_buffer_depth)], dtype=np.int64))

        sim.add_testbench(controller)
        simulate(sim, max_cycles=30_000)
        return result[0], cycles


def quant(scale, zp, dtype):
    lo, hi = (-128, 127) if dtype == "int8" else (0, 255)
    return SimpleNamespace(scale=np.float32(scale), zero_point=np.int64(zp), dtype=dtype, qmin=lo, qmax=hi)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_program_of_maxpool_lut_add(dtype, simulate):
    rng = np.random.default_rng(11 if dtype == "int8" else 12)
    off = 128 if dtype == "uint8" else 0
    act = np.zeros((CONFIG.act_buffer_depth, L), dtype=np.int64)

    # MAXPOOL: 6 channels 7 x 6, kernel 3 x 2, stride (2, 1), dilation (1, 2), pads (1, 1, 1, 2).
    c, h, w = 6, 7, 6
    x = rng.integers(-128, 128, size=(c, h, w))
    act[0 : 2 * h * w] = blocked(x)
    pooled = max_pool(x[None], kernel=[3, 2], strides=[2, 1], pads=[1, 1, 1, 2], dilations=[1, 2])[0]
    oh, ow = pooled.shape[1:]
    pool = Instruction(Opcode.MAXPOOL, in_base=0, out_base=200, in_blocks=2, in_h=h, in_w=w, out_blocks=2,
                       out_h=oh, out_w=ow, k_h=3, k_w=2, stride_h=2, stride_w=1, pad_top=1, pad_left=1,
                       dil_h=1, dil_w=2)

    # MAXPOOL on the same input: kernel 2 x 3, stride (1, 2), dilation (2, 1), pads (2, 0, 0, 1).
    pooled2 = max_pool(x[None], kernel=[2, 3], strides=[1, 2], pads=[2, 0, 0, 1], dilations=[2, 1])[0]
    oh2, ow2 = pooled2.shape[1:]
    pool2 = Instruction(Opcode.MAXPOOL, in_base=0, out_base=700, in_blocks=2, in_h=h, in_w=w, out_blocks=2,
                        out_h=oh2, out_w=ow2, k_h=2, k_w=3, stride_h=1, stride_w=2, pad_top=2, pad_left=0,
                        dil_h=2, dil_w=1)

    # LUT: table 1 of 2, a different table per lane (the engine must not mix lanes up).
    lut = rng.integers(-128, 128, size=(LUT_DEPTH, L))
    lut_in = rng.integers(-128, 128, size=(37, L))
    act[300:337] = lut_in
    lut_instr = Instruction(Opcode.LUT, in_base=300, out_base=400, lut_base=256, rows=37)

    # ADD (in place on its first operand): a at 500, b at 600, table 1 of 2.
    images = add_images(quant(0.031, 5 + off, dtype), quant(0.017, -20 + off, dtype), quant(0.04, 3 + off, dtype),
                        "avx2")
    other = add_images(quant(0.5, off, dtype), quant(0.25, off, dtype), quant(0.3, off, dtype), "avx2")
    tab = np.concatenate([other.table, images.table])
    a, b = rng.integers(-128, 128, size=(2, 50, L))
    a[0], b[0] = -128, 127
    act[500:550], act[600:650] = a, b
    prm = [0] * CONFIG.param_memory_depth
    prm[3] = images.prm_row | (int(rng.integers(1 << 62)) << 200)  # other lanes' bits are ignored
    add_instr = Instruction(Opcode.ADD, in_base=500, in2_base=600, out_base=500, p_base=3, lut_base=256, rows=50)
    empty = Instruction(Opcode.LUT, in_base=300, out_base=900, lut_base=0, rows=0)

    harness = Harness(act, prm, lut, tab)
    final, cycles = harness.run([pool, lut_instr, empty, add_instr, pool2], simulate)

    got_pool = unblocked(final[200 : 200 + 2 * oh * ow], c, oh, ow)
    assert got_pool.shape == pooled.shape
    np.testing.assert_array_equal(got_pool, pooled)
    got_pool2 = unblocked(final[700 : 700 + 2 * oh2 * ow2], c, oh2, ow2)
    np.testing.assert_array_equal(got_pool2, pooled2)
    expected_lut = np.stack([lut[256 + lut_in[:, lane] + 128, lane] for lane in range(L)], axis=1)
    np.testing.assert_array_equal(final[400:437], expected_lut)
    qmin, qmax = (0, 255) if dtype == "uint8" else (-128, 127)
    expected_add = qlinear_add(a + off, 0.031, 5 + off, b + off, 0.017, -20 + off, 0.04, 3 + off, qmin, qmax,
                               variant="avx2") - off
    np.testing.assert_array_equal(final[500:550], expected_add)
    np.testing.assert_array_equal(final[900:910], 0)  # the empty LUT wrote nothing

    taps = 2 * oh * ow * 3 * 2
    setup = latency.vector_engine_setup_cycles(CONFIG) - 1  # beyond the first setup cycle
    assert cycles[0] <= taps + 6 + setup
    assert cycles[1] <= 37 + 5 + latency.lookup_unit_latency(CONFIG) + setup
    assert cycles[2] <= 4 + setup
    assert cycles[3] <= 2 * 50 + 5 + pipeline_latencies(CONFIG)["add"] + setup


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_program_of_mul_broadcasts_and_resize(dtype, simulate):
    """MUL of two same-shape tensors, MUL and ADD with ``bcast`` (a [C, 1, 1] operand: one row per channel block),
    RESIZE (nearest maps of two integer factors): against the golden QLinearMul / QLinearAdd with numpy
    broadcasting and a numpy gather; every instruction as many cycles beyond its prediction as a MAXPOOL."""
    from systolix.arch.mul_arith import mul_params, pack_mul_params
    from systolix.compiler.cycles import predicted_cycles
    from systolix.compiler.lower import resize_runs
    from systolix.frontend.ops.resize import nearest_map
    from systolix.quantize.golden.qlinear_mul import qlinear_mul

    rng = np.random.default_rng(21 if dtype == "int8" else 22)
    off = 128 if dtype == "uint8" else 0
    qmin, qmax = (0, 255) if dtype == "uint8" else (-128, 127)
    act = np.zeros((CONFIG.act_buffer_depth, L), dtype=np.int64)
    c, h, w = 6, 3, 5
    x = rng.integers(-128, 128, size=(c, h, w))
    y = rng.integers(-128, 128, size=(c, h, w))
    g = rng.integers(-128, 128, size=(c, 1, 1))
    act[0:30], act[40:70], act[80:82] = blocked(x), blocked(y), blocked(g)
    qa, qb, qy = quant(0.05, 3 + off, dtype), quant(1 / 256, -100 + off, dtype), quant(0.04, 7 + off, dtype)
    prm = [0] * CONFIG.param_memory_depth
    prm[1] = pack_mul_params(mul_params(qa, qb, qy))
    prm[2] = pack_mul_params(mul_params(qa, qa, qy))
    images = add_images(qa, qb, qy, "avx2")
    tab = np.concatenate([images.table, images.table])
    prm[4] = images.prm_row
    mul_same = Instruction(Opcode.MUL, in_base=0, in2_base=40, out_base=100, p_base=2, rows=30)
    mul_gate = Instruction(Opcode.MUL, in_base=0, in2_base=80, out_base=140, p_base=1, rows=30, bcast=1, in_h=h,
                           in_w=w)
    add_gate = Instruction(Opcode.ADD, in_base=40, in2_base=80, out_base=180, p_base=4, lut_base=256, rows=30,
                           bcast=1, in_h=h, in_w=w)
    (k_h, s_h), (k_w, s_w) = resize_runs(map_h := nearest_map(h, 3, "half_pixel", "round_prefer_floor"), h), \
        resize_runs(map_w := nearest_map(w, 2, "asymmetric", "floor"), w)
    resize = Instruction(Opcode.RESIZE, in_base=0, out_base=220, in_h=h, in_w=w, out_blocks=2, out_h=3 * h,
                         out_w=2 * w, k_h=k_h, k_w=k_w, stride_h=s_h, stride_w=s_w, dil_h=1, dil_w=1)
    pool = Instruction(Opcode.MAXPOOL, in_base=0, out_base=500, in_blocks=2, in_h=h, in_w=w, out_blocks=2,
                       out_h=h, out_w=w, k_h=1, k_w=1, stride_h=1, stride_w=1, dil_h=1, dil_w=1)
    lut = np.zeros((LUT_DEPTH, L), dtype=np.int64)
    program = [mul_same, mul_gate, add_gate, resize, pool]
    final, cycles = Harness(act, prm, lut, tab).run(program, simulate)

    def golden(fn, u, v, qu, qv):
        return fn(u + off, qu.scale, int(qu.zero_point), v + off, qv.scale, int(qv.zero_point), qy.scale,
                  int(qy.zero_point), qmin, qmax) - off

    np.testing.assert_array_equal(unblocked(final[100:130], c, h, w), golden(qlinear_mul, x, y, qa, qa))
    np.testing.assert_array_equal(unblocked(final[140:170], c, h, w), golden(qlinear_mul, x, g, qa, qb))
    want_add = qlinear_add(y + off, qa.scale, int(qa.zero_point), g + off, qb.scale, int(qb.zero_point), qy.scale,
                           int(qy.zero_point), qmin, qmax, variant="avx2") - off
    np.testing.assert_array_equal(unblocked(final[180:210], c, h, w), want_add)
    got_resize = unblocked(final[220 : 220 + 2 * 6 * h * w], c, 3 * h, 2 * w)
    np.testing.assert_array_equal(got_resize, x[:, list(map_h)][:, :, list(map_w)])
    np.testing.assert_array_equal(unblocked(final[500:530], c, h, w), x)
    beyond = [count - predicted_cycles(ins, CONFIG) for count, ins in zip(cycles, program, strict=True)]
    assert len(set(beyond)) == 1, beyond
