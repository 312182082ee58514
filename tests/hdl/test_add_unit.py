"""The ADD unit in simulation against ``add_arith.qadd_model`` (itself proven against the golden kernels).

Each case is a QLinearAdd parameter set (both onnxruntime variants, int8 and uint8 tensors, the
operand swap); the code pairs are random ones plus pairs whose sums lie within a float32 ulp of
``x.5`` (picked where rounding the exact sum once would give another code), fed with random gaps and
drained with random back-pressure.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from systolix.arch.add_arith import TABLE_BITS, _product, add_images, qadd_model
from systolix.arch.latency import add_unit_latency
from systolix.hdl.add_unit import AddUnit

LANES = 4
RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
CASES = {  # (scales, zero points, dtype, variant, swap)
    "avx2_int8": ((0.0205, 0.0113, 0.0312), (3, -17, 9), "int8", "avx2", False),
    "sse2_uint8": ((0.0625 * 3, 0.0625 * 5, 0.25), (130, 7, 128), "uint8", "sse2", False),
    "sse2_int8": ((0.0171, 0.0093, 0.0238), (-3, 40, -100), "int8", "sse2", False),
    # the sticky bit decides (see tests/compiler/test_add_arith.py STICKY_SETS)
    "avx2_sticky_product": ((2.0**-25 * (1 + 2.0**-15), 0.5 + 2.0**-24, 1.0), (0, 0, 0), "int8", "avx2", False),
    "avx2_sticky_product_b": ((2.0**-25 * (1 + 2.0**-15), 0.5, 1.0), (0, 0, 0), "int8", "avx2", False),
    "avx2_sticky_table": ((172961 * 2.0**-25, 8388611 * 2.0**-33, 1.0), (0, 3, 0), "int8", "avx2", False),
    "avx2_dyadic_swap": ((np.nextafter(np.float32(0.375), np.float32(1)), 0.625, 0.5), (-5, 11, 0), "int8",
                         "avx2", True),
    "avx2_tiny_ratio_uint8": ((2.0**-20, 0.05, 0.031), (10, 240, 0), "uint8", "avx2", False),
}


def quant(scale, zp, dtype):
    lo, hi = RANGES[dtype]
    return SimpleNamespace(scale=np.float32(scale), zero_point=np.int64(zp), dtype=dtype, qmin=lo, qmax=hi)


def near_ties(images, count):
    """Storage-code pairs whose exact sum lies closest to x.5 (the double-rounding cases), half of
    them among the pairs with a sticky bit."""
    codes = np.arange(-128, 128)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    p = images.params
    u, v = (a, b) if p.table_on_a else (b, a)
    x, xs = _product(v, p)
    s = images.value[u + 128] + x
    sticky = (images.sticky[u + 128] | xs) != 0
    distance = np.abs((s & ((1 << 32) - 1)) - (1 << 31))
    order = np.argsort(distance, kind="stable")
    pick = np.concatenate([order[sticky[order]][: count // 2], order[: count // 2]])
    return a[pick], b[pick]


def build(images, base: int):
    m = Module()
    m.submodules.dut = dut = AddUnit(LANES, table_addr_width=9)
    init = np.zeros(512, dtype=np.int64)
    init[base:base + 256] = images.table
    for lane in range(LANES):
        mem = Memory(shape=TABLE_BITS, depth=512, init=[int(w) for w in init])
        m.submodules[f"tab{lane}"] = mem
        port = mem.read_port()
        m.d.comb += [port.addr.eq(dut.tab_rd.addr[lane]), port.en.eq(dut.tab_rd.en),
                     dut.tab_rd.data[lane].eq(port.data)]
    return m, dut


@pytest.mark.parametrize("case", list(CASES))
def test_add_unit_matches_model(case, stream_bench, simulate):
    scales, zps, dtype, variant, swap = CASES[case]
    images = add_images(*(quant(s, z, dtype) for s, z in zip(scales, zps, strict=True)), variant, swap=swap)
    rng = stream_bench.rng
    ta, tb = near_ties(images, 600)
    ra, rb = rng.integers(-128, 128, size=(2, 600))
    a = np.concatenate([ta, ra, [-128, 127, 0]]).astype(np.int64)
    b = np.concatenate([tb, rb, [-128, 127, 0]]).astype(np.int64)
    order = rng.permutation(len(a))
    pad = -len(a) % LANES
    a, b = np.concatenate([a[order], a[:pad]]), np.concatenate([b[order], b[:pad]])
    expected = qadd_model(a, b, images).reshape(-1, LANES)
    items = [[{"a": int(x), "b": int(y)} for x, y in zip(ra_, rb_, strict=True)]
             for ra_, rb_ in zip(a.reshape(-1, LANES), b.reshape(-1, LANES), strict=True)]

    m, dut = build(images, base=256)
    sim = Simulator(m)
    sim.add_clock(1e-8)

    async def setup(ctx):
        ctx.set(dut.params, dataclasses.asdict(images.params))
        ctx.set(dut.base, 256)

    out: list = []
    producer = stream_bench.producer(dut.i, items, p_valid=0.7)

    async def produce(ctx):
        await setup(ctx)
        await producer(ctx)

    sim.add_testbench(produce)
    sim.add_testbench(stream_bench.consumer(dut.o, len(items), out, p_ready=0.6,
                                            convert=lambda payload: [int(x) for x in payload]))
    simulate(sim, max_cycles=20_000)
    got = np.array(out, dtype=np.int64).astype(np.int8)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_latency_and_elaboration():
    dut = AddUnit(LANES)
    assert dut.latency == add_unit_latency() == 25
    from amaranth.back import rtlil
    rtlil.convert(dut)
    with pytest.raises(ValueError, match="lanes must be a positive int, not 0"):
        AddUnit(0)
