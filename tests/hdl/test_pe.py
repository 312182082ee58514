"""The processing element against a cycle-by-cycle NumPy model."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.hdl.pe import ProcessingElement


def wrap32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + 2**31) % 2**32 - 2**31).astype(np.int64)


def reference(x, sel, psum, w_in, w_load, w_bank, product_latency):
    """Outputs of every cycle (the value after that cycle's clock edge is seen the next cycle)."""
    cycles = len(x)
    banks = np.zeros((cycles + 1, 2), dtype=np.int64)  # weight registers during each cycle
    for t in range(cycles):
        banks[t + 1] = banks[t]
        if w_load[t]:
            banks[t + 1, w_bank[t]] = w_in[t]
    product = x * banks[np.arange(cycles), sel]
    w_out = banks[np.arange(cycles), w_bank]
    x_out = np.concatenate([[0], x[:-1]])
    sel_out = np.concatenate([[0], sel[:-1]])
    # psum_out during cycle t: psum_in of cycle t-1 plus the product of x_in of cycle t-1-latency.
    delayed = np.concatenate([np.zeros(1 + product_latency, dtype=np.int64), product])[:cycles]
    psum_out = np.concatenate([[0], wrap32(psum[:-1] + delayed[1:])])
    return x_out, sel_out, psum_out, w_out


@pytest.mark.parametrize("product_register", [False, True])
def test_pe_matches_model(product_register, simulate):
    rng = np.random.default_rng(11 + product_register)
    cycles = 400
    x = rng.integers(-255, 256, size=cycles)
    x[:20] = rng.choice([-255, 255], size=20)
    sel = rng.integers(0, 2, size=cycles)
    # Partial sums near the int32 limits too, so the wrap-around is exercised.
    psum = np.where(rng.random(cycles) < 0.3, rng.choice([-(2**31), 2**31 - 1], size=cycles) -
                    rng.integers(-5000, 5000, size=cycles), rng.integers(-(2**31), 2**31, size=cycles))
    psum = wrap32(psum)
    w_in = rng.integers(-255, 256, size=cycles)
    w_load = rng.random(cycles) < 0.3
    w_bank = rng.integers(0, 2, size=cycles)
    dut = ProcessingElement(product_register=product_register)
    assert dut.product_latency == 3 * int(product_register)
    assert dut.latency == dut.product_latency + dut.psum_latency
    seen = {name: np.zeros(cycles, dtype=np.int64) for name in ("x_out", "sel_out", "psum_out", "w_out")}

    async def bench(ctx):
        for t in range(cycles):
            ctx.set(dut.x_in, int(x[t]))
            ctx.set(dut.sel_in, int(sel[t]))
            ctx.set(dut.psum_in, int(psum[t]))
            ctx.set(dut.w_in, int(w_in[t]))
            ctx.set(dut.w_load, int(w_load[t]))
            ctx.set(dut.w_bank, int(w_bank[t]))
            for name, values in seen.items():
                values[t] = ctx.get(getattr(dut, name))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    expected = reference(x, sel, psum, w_in, w_load, w_bank, dut.product_latency)
    # The first cycles hold the registers' initial values, which nothing relies on.
    skip = 2 + dut.product_latency
    for (name, got), want in zip(seen.items(), expected, strict=True):
        assert got.shape == want.shape, name
        np.testing.assert_array_equal(got[skip:], want[skip:], err_msg=name)
