"""The accumulator memory against a NumPy running sum, including back-to-back updates of one row."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.hdl.accumulator import Accumulator

LANES, DEPTH = 3, 16


def schedule(rng: np.random.Generator, groups: list[tuple[int, int]]):
    """Items in the engine's order (for each group of P pixels and T taps: t outer, p inner) and the sums.

    Values are drawn from the whole int32 range some of the time, so sums wrap around.
    """
    items, sums = [], []
    for pixels, taps in groups:
        base = int(rng.integers(0, DEPTH - pixels + 1))  # rows used need not start at 0
        big = rng.random() < 0.3
        bound = 2**31 if big else 2**20
        y = rng.integers(-bound, bound, size=(taps, pixels, LANES), dtype=np.int64)
        for t in range(taps):
            for p in range(pixels):
                items.append({"y": [int(v) for v in y[t, p]], "p": base + p, "first": int(t == 0),
                              "last": int(t == taps - 1), "extra": len(sums) + p})
        total = y.sum(axis=0)
        sums.extend(((total + 2**31) % 2**32 - 2**31).astype(np.int64))
    return items, np.array(sums, dtype=np.int64).reshape(-1, LANES)


GROUPS = [(1, 9), (1, 1), (2, 5), (5, 3), (1, 4), (16, 2), (3, 1), (1, 12), (7, 4)]


@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.6, 0.5), (1.0, 0.3), (0.4, 1.0)])
def test_accumulator_matches_running_sum(p_valid, p_ready, stream_bench, simulate):
    items, expected = schedule(stream_bench.rng, GROUPS)
    dut = Accumulator(LANES, DEPTH, extra=8)
    got: list[tuple] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(stream_bench.producer(dut.i, items, p_valid=p_valid))
    sim.add_testbench(stream_bench.consumer(dut.o, len(expected), got, p_ready=p_ready,
                                            convert=lambda v: (list(v.acc), int(v.extra))))
    simulate(sim)
    acc = np.array([a for a, _ in got], dtype=np.int64)
    assert acc.shape == expected.shape
    np.testing.assert_array_equal(acc, expected)
    assert [e for _, e in got] == list(range(len(expected)))


def test_accumulator_same_row_every_cycle(stream_bench, simulate):
    """DENSE: one pixel, so every transfer updates the row written the cycle before (forwarding)."""
    rng = stream_bench.rng
    items, expected = schedule(rng, [(1, 40), (1, 3), (1, 40)])
    dut = Accumulator(LANES, DEPTH, extra=8)
    got: list[tuple] = []

    async def producer(ctx):
        ctx.set(dut.i.valid, 1)
        for item in items:
            ctx.set(dut.i.payload, item)
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            while not ready:
                _, _, ready = await ctx.tick().sample(dut.i.ready)
        ctx.set(dut.i.valid, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(stream_bench.consumer(dut.o, len(expected), got, convert=lambda v: list(v.acc)))
    simulate(sim, max_cycles=len(items) + 20)
    acc = np.array(got, dtype=np.int64)
    assert acc.shape == expected.shape
    np.testing.assert_array_equal(acc, expected)
