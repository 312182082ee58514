"""The skew delay lines."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth import signed
from amaranth.lib import data
from amaranth.sim import Simulator

from systolix.hdl.skew import Skew


@pytest.mark.parametrize("kind", ["ascending", "descending", "mixed"])
def test_each_lane_is_delayed(kind, simulate):
    rng = np.random.default_rng(5)
    lanes, cycles = 5, 60
    lane = data.StructLayout({"x": signed(9), "sel": 1})
    dut = {
        "ascending": lambda: Skew.ascending(lane, lanes),
        "descending": lambda: Skew.descending(lane, lanes),
        "mixed": lambda: Skew(lane, [3, 0, 7, 1, 1]),
    }[kind]()
    assert len(dut.delays) == lanes
    assert dut.latency == max(dut.delays)
    assert dut.register_bits == 10 * sum(dut.delays)
    x = rng.integers(-256, 256, size=(cycles, lanes))
    sel = rng.integers(0, 2, size=(cycles, lanes))
    got_x = np.zeros_like(x)
    got_sel = np.zeros_like(sel)

    async def bench(ctx):
        for t in range(cycles):
            ctx.set(dut.i, [{"x": int(a), "sel": int(b)} for a, b in zip(x[t], sel[t], strict=True)])
            out = ctx.get(dut.o)
            got_x[t] = [out[k].x for k in range(lanes)]
            got_sel[t] = [out[k].sel for k in range(lanes)]
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    for k, delay in enumerate(dut.delays):
        np.testing.assert_array_equal(got_x[delay:, k], x[: cycles - delay, k])
        np.testing.assert_array_equal(got_sel[delay:, k], sel[: cycles - delay, k])


@pytest.mark.parametrize(("delays", "message"), [
    ([], "delays must not be empty"),
    ([0, -1], "each delay must be a non-negative int, not -1"),
    ([1.0], "each delay must be a non-negative int, not 1.0"),
])
def test_bad_delays(delays, message):
    with pytest.raises(ValueError) as info:
        Skew(signed(8), delays)
    assert str(info.value) == message
