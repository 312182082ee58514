"""The synchronous-read stream adapter against the memory contents, under random back-pressure."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import Module, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from systolix.hdl.ports import captured
from systolix.hdl.sync_reader import SyncReader

LANES, DEPTH = 3, 32


class Harness(wiring.Component):
    """A `SyncReader` on a memory with known contents."""

    def __init__(self, contents, port_latency=1):
        self._contents = contents
        self._port_latency = port_latency
        self.reader = SyncReader(5, data.ArrayLayout(signed(8), LANES), tag_shape=7, port_latency=port_latency)
        super().__init__({"i": In(self.reader.i.signature.flip()), "o": Out(self.reader.o.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.reader = self.reader
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(8), LANES), depth=DEPTH, init=self._contents)
        port = mem.read_port()
        word = port.data if self._port_latency == 1 else captured(m, port.data, port.en, "word")
        m.d.comb += [port.addr.eq(self.reader.rd.addr), port.en.eq(self.reader.rd.en),
                     self.reader.rd.data.eq(word)]
        wiring.connect(m, wiring.flipped(self.i), self.reader.i)
        wiring.connect(m, self.reader.o, wiring.flipped(self.o))
        return m


@pytest.mark.parametrize("port_latency", [1, 2])
@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.7, 0.4), (1.0, 0.2), (0.3, 0.9)])
def test_sync_reader_returns_rows_in_order(p_valid, p_ready, port_latency, stream_bench, simulate):
    rng = stream_bench.rng
    contents = rng.integers(-128, 128, size=(DEPTH, LANES))
    dut = Harness([[int(v) for v in row] for row in contents], port_latency)
    addrs = rng.integers(0, DEPTH, size=150)
    requests = [{"addr": int(a), "tag": k % 128} for k, a in enumerate(addrs)]
    got: list[tuple] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(stream_bench.producer(dut.i, requests, p_valid=p_valid))
    sim.add_testbench(stream_bench.consumer(dut.o, len(requests), got, p_ready=p_ready,
                                            convert=lambda v: (list(v.data), int(v.tag))))
    simulate(sim)
    data_got = np.array([d for d, _ in got], dtype=np.int64)
    assert data_got.shape == (len(addrs), LANES)
    np.testing.assert_array_equal(data_got, contents[addrs])
    assert [tag for _, tag in got] == [r["tag"] for r in requests]


def test_sync_reader_full_rate(stream_bench, simulate):
    """With both sides always ready: one row per cycle, `SyncReader.latency` cycles after its request."""
    dut = Harness([[k, -k, 1] for k in range(DEPTH)])
    cycles: list[int] = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(40):
            ctx.set(dut.i.payload, {"addr": cycle % DEPTH, "tag": 0})
            _, _, o_valid, i_ready = await ctx.tick().sample(dut.o.valid, dut.i.ready)
            assert i_ready
            if o_valid:
                cycles.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    assert dut.reader.latency == 2
    assert cycles == list(range(dut.reader.latency, 40))
