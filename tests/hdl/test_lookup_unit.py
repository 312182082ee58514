"""The lookup unit against NumPy indexing of per-lane tables, with random gaps and back-pressure."""

from __future__ import annotations

import numpy as np
from amaranth import Module
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from systolix.hdl.lookup_unit import LookupUnit

LANES = 4


def test_lookup_matches_numpy(stream_bench, simulate):
    rng = stream_bench.rng
    tables = rng.integers(-128, 128, size=(2, 256, LANES))  # two tables, distinct per lane
    base = 256  # the second table
    m = Module()
    m.submodules.dut = dut = LookupUnit(LANES, addr_width=9)
    for lane in range(LANES):
        mem = Memory(shape=8, depth=512, init=[int(v) & 0xFF for v in tables[:, :, lane].reshape(-1)])
        m.submodules[f"lut{lane}"] = mem
        port = mem.read_port()
        m.d.comb += [port.addr.eq(dut.lut_rd.addr[lane]), port.en.eq(dut.lut_rd.en),
                     dut.lut_rd.data[lane].eq(port.data)]
    codes = rng.integers(-128, 128, size=(300, LANES))
    codes[:2] = [[-128] * LANES, [127] * LANES]
    expected = np.stack([tables[1, codes[:, lane] + 128, lane] for lane in range(LANES)], axis=1)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    out: list = []
    producer = stream_bench.producer(dut.i, [[int(v) for v in row] for row in codes], p_valid=0.6)

    async def produce(ctx):
        ctx.set(dut.base, base)
        await producer(ctx)

    sim.add_testbench(produce)
    sim.add_testbench(stream_bench.consumer(dut.o, len(codes), out, p_ready=0.5,
                                            convert=lambda p: [int(v) for v in p]))
    simulate(sim, max_cycles=5000)
    got = np.array(out, dtype=np.int64)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
