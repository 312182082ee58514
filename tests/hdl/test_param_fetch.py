"""Parameter fetch: each sum gets its block's prm row, bias added with int32 wrap-around."""

from __future__ import annotations

import pytest
from amaranth import Module
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from systolix.arch.params import ChannelParams, channel_layout
from systolix.hdl.param_fetch import ParamFetch

LANES, DEPTH = 3, 8


class Harness(wiring.Component):
    def __init__(self, rows):
        self._rows = rows
        self.dut = ParamFetch(LANES, 3, extra=8)
        super().__init__({"i": In(self.dut.i.signature.flip()), "o": Out(self.dut.o.signature),
                          "base": In(12), "clear": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(channel_layout(), LANES), depth=DEPTH,
                                        init=self._rows)
        port = mem.read_port()
        m.d.comb += [port.addr.eq(dut.prm.addr), port.en.eq(dut.prm.en), dut.prm.data.eq(port.data),
                     dut.base.eq(self.base), dut.clear.eq(self.clear)]
        wiring.connect(m, wiring.flipped(self.i), dut.i)
        wiring.connect(m, dut.o, wiring.flipped(self.o))
        return m


def random_channel(rng) -> ChannelParams:
    return ChannelParams(bias=int(rng.integers(-2**31, 2**31)), m=int(rng.integers(2**23, 2**24)),
                         e=int(rng.integers(0, 256)), zp=int(rng.integers(-128, 128)),
                         lo=int(rng.integers(-128, 0)), hi=int(rng.integers(0, 128)))


@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.5, 0.5)])
def test_param_fetch_attaches_block_params(p_valid, p_ready, stream_bench, simulate):
    rng = stream_bench.rng
    rows = [[random_channel(rng) for _ in range(LANES)] for _ in range(DEPTH)]
    dut = Harness([[vars(c) for c in row] for row in rows])
    base = 2
    blocks = [0, 0, 0, 1, 1, 3, 3, 3, 3, 0, 5]
    accs = rng.integers(-2**31, 2**31, size=(len(blocks), LANES))
    items = [{"acc": [int(v) for v in a], "j": j, "extra": k}
             for k, (a, j) in enumerate(zip(accs, blocks, strict=True))]
    got: list = []

    def convert(v):
        lanes = [(int(lane.acc), int(lane.m), int(lane.e)) for lane in v.req.lanes]
        bounds = [(int(b.lo), int(b.hi)) for b in v.bounds]
        return lanes, (int(v.req.y_zp), int(v.req.qmin), int(v.req.qmax)), bounds, int(v.extra)

    async def setup(ctx):
        ctx.set(dut.base, base)
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(setup)
    sim.add_testbench(stream_bench.producer(dut.i, items, p_valid=p_valid))
    sim.add_testbench(stream_bench.consumer(dut.o, len(items), got, p_ready=p_ready, convert=convert))
    simulate(sim)
    for k, (lanes, shared, bounds, extra) in enumerate(got):
        row = rows[base + blocks[k]]
        assert extra == k
        for lane, (acc, m, e) in enumerate(lanes):
            assert acc == (int(accs[k, lane]) + row[lane].bias + 2**31) % 2**32 - 2**31
            assert (m, e) == (row[lane].m, row[lane].e)
        assert shared == (row[0].zp, row[0].lo, row[0].hi)
        assert bounds == [(ch.lo, ch.hi) for ch in row]
    assert len(got) == len(items)


def test_param_fetch_clear_refetches(stream_bench, simulate):
    """After ``clear`` the same block index reads the row again (p_base changed between instructions)."""
    rng = stream_bench.rng
    rows = [[random_channel(rng) for _ in range(LANES)] for _ in range(DEPTH)]
    dut = Harness([[vars(c) for c in row] for row in rows])
    got: list[int] = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        for base in (1, 4):
            ctx.set(dut.base, base)
            ctx.set(dut.clear, 1)
            await ctx.tick()
            ctx.set(dut.clear, 0)
            ctx.set(dut.i.payload, {"acc": [0] * LANES, "j": 0, "extra": 0})
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)
            await ctx.tick().until(dut.o.valid)
            got.append(int(ctx.get(dut.o.payload.req.lanes[0].acc)))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    assert got == [rows[1][0].bias, rows[4][0].bias]
