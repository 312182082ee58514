"""The max-pool unit against NumPy maxima over windows of random sizes, with back-pressure."""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from systolix.hdl.max_pool_unit import MaxPoolUnit

LANES = 4


def test_max_pool_matches_numpy(stream_bench, simulate):
    rng = stream_bench.rng
    windows = [rng.integers(-128, 128, size=(int(n), LANES)) for n in rng.integers(1, 10, size=120)]
    windows[0] = np.full((3, LANES), -128)
    windows[1] = np.full((1, LANES), 127)
    items = [{"x": [int(v) for v in tap], "first": int(t == 0), "last": int(t == len(w) - 1), "pad": 0}
             for w in windows for t, tap in enumerate(w)]
    expected = np.stack([w.max(axis=0) for w in windows])
    dut = MaxPoolUnit(LANES)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out: list = []
    sim.add_testbench(stream_bench.producer(dut.i, items, p_valid=0.7))
    sim.add_testbench(stream_bench.consumer(dut.o, len(windows), out, p_ready=0.3,
                                            convert=lambda p: [int(v) for v in p]))
    simulate(sim, max_cycles=10_000)
    got = np.array(out, dtype=np.int64)
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
