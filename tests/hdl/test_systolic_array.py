"""The systolic array and its stream wrapper against a NumPy matrix product."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from systolix.arch.config import AcceleratorConfig
from systolix.hdl.systolic_array import MatMulUnit, SystolicArray


def reference(x: np.ndarray, x_zp: int, weights: np.ndarray, w_zp: np.ndarray) -> np.ndarray:
    """``(x - x_zp) @ (W - w_zp)`` in int64, wrapped to int32 like onnxruntime's accumulators."""
    product = (x.astype(np.int64) - x_zp) @ (weights.astype(np.int64) - w_zp.astype(np.int64)[None, :])
    return product.astype(np.int32)


def random_tiles(rng: np.random.Generator, config: AcceleratorConfig, count: int, max_vectors: int):
    """Weight tiles, zero points and activation batches; extreme int8 values are over-represented."""
    tiles = []
    for _ in range(count):
        def int8(shape):
            values = rng.integers(-128, 128, size=shape)
            extremes = rng.choice(np.array([-128, 127]), size=shape)
            return np.where(rng.random(shape) < 0.2, extremes, values).astype(np.int8)
        weights = int8((config.rows, config.cols))
        w_zp = int8(config.cols)
        x = int8((int(rng.integers(1, max_vectors + 1)), config.rows))
        x_zp = int(int8(()))
        tiles.append((weights, w_zp, x, x_zp))
    return tiles


def run_unit(config, tiles, stream_bench, simulate, *, p_valid=1.0, p_ready=1.0):
    """Stream every tile through a `MatMulUnit`; return the results as an int32 array."""
    dut = MatMulUnit(config)
    w_items, w_zps, x_items, x_zps = [], [], [], []
    for weights, w_zp, x, x_zp in tiles:
        for row in weights:
            w_items.append([int(v) for v in row])
            w_zps.append([int(v) for v in w_zp])
        for index, vector in enumerate(x):
            x_items.append({"data": [int(v) for v in vector], "swap": int(index == 0)})
            x_zps.append(x_zp)
    results: list[list[int]] = []

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(stream_bench.producer(
        dut.w, w_items, p_valid=p_valid, before=lambda ctx, i: ctx.set(dut.w_zp, w_zps[i])))
    sim.add_testbench(stream_bench.producer(
        dut.x, x_items, p_valid=p_valid, before=lambda ctx, i: ctx.set(dut.x_zp, x_zps[i])))
    sim.add_testbench(stream_bench.consumer(dut.y, len(x_items), results, p_ready=p_ready, convert=list))
    simulate(sim)
    return np.array(results, dtype=np.int64).astype(np.int32).reshape(-1, config.cols)


SHAPES = [(4, 3, True), (3, 5, False), (4, 4, True)]


@pytest.mark.parametrize(("rows", "cols", "product_register"), SHAPES)
@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.6, 0.4), (0.9, 0.1)])
def test_matmul_unit_matches_numpy(rows, cols, product_register, p_valid, p_ready, stream_bench, simulate):
    config = AcceleratorConfig(rows=rows, cols=cols, pe_product_register=product_register)
    tiles = random_tiles(stream_bench.rng, config, count=4, max_vectors=30)
    got = run_unit(config, tiles, stream_bench, simulate, p_valid=p_valid, p_ready=p_ready)
    expected = np.concatenate([reference(x, x_zp, weights, w_zp) for weights, w_zp, x, x_zp in tiles])
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype == np.int32
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("preset", ["8x8"])
def test_matmul_unit_preset(preset, stream_bench, simulate):
    config = AcceleratorConfig.preset(preset)
    tiles = random_tiles(stream_bench.rng, config, count=3, max_vectors=120)
    got = run_unit(config, tiles, stream_bench, simulate, p_valid=0.8, p_ready=0.6)
    expected = np.concatenate([reference(x, x_zp, weights, w_zp) for weights, w_zp, x, x_zp in tiles])
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_matmul_unit_extremes(stream_bench, simulate):
    # The largest magnitudes: (x - x_zp) and (w - w_zp) both +-255.
    config = AcceleratorConfig(rows=4, cols=2)
    weights = np.array([[-128, 127]] * 4, dtype=np.int8)
    w_zp = np.array([127, -128], dtype=np.int8)
    x = np.array([[-128] * 4, [127] * 4, [-128, 127, -128, 127]], dtype=np.int8)
    tiles = [(weights, w_zp, x, 127), (weights, w_zp, x, -128)]
    got = run_unit(config, tiles, stream_bench, simulate, p_valid=0.7, p_ready=0.5)
    expected = np.concatenate([reference(x_, zp_, w_, wz_) for w_, wz_, x_, zp_ in tiles])
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_matmul_unit_latency_and_throughput(stream_bench, simulate):
    config = AcceleratorConfig(rows=4, cols=3)
    dut = MatMulUnit(config)
    rng = stream_bench.rng
    weights = rng.integers(-128, 128, size=(4, 3)).astype(np.int8)
    x = rng.integers(-128, 128, size=(40, 4)).astype(np.int8)
    timeline: dict[str, list[int]] = {"x": [], "y": []}
    results = []

    async def bench(ctx):
        ctx.set(dut.w.valid, 1)
        for row in weights:
            ctx.set(dut.w.payload, [int(v) for v in row])
            await ctx.tick().until(dut.w.ready)
        ctx.set(dut.w.valid, 0)
        ctx.set(dut.y.ready, 1)
        ctx.set(dut.x.valid, 1)
        cycle = 0
        sent = 0
        while len(results) < len(x):
            if sent < len(x):
                ctx.set(dut.x.payload, {"data": [int(v) for v in x[sent]], "swap": int(sent == 0)})
            else:
                ctx.set(dut.x.valid, 0)
            _, _, x_fire, y_valid, y_payload = await ctx.tick().sample(
                dut.x.valid & dut.x.ready, dut.y.valid, dut.y.payload)
            if x_fire:
                timeline["x"].append(cycle)
                sent += 1
            if y_valid:
                timeline["y"].append(cycle)
                results.append(list(y_payload))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    np.testing.assert_array_equal(np.array(results, dtype=np.int32), reference(x, 0, weights, np.zeros(3)))
    # One vector per cycle in and out, and the documented latency.
    assert timeline["x"] == list(range(timeline["x"][0], timeline["x"][0] + len(x)))
    assert timeline["y"] == [t + dut.latency for t in timeline["x"]]


def test_swap_waits_for_a_complete_tile(stream_bench, simulate):
    # The second tile's rows arrive slowly; vectors asking for it must wait, earlier ones must not.
    config = AcceleratorConfig(rows=3, cols=2)
    tiles = random_tiles(stream_bench.rng, config, count=3, max_vectors=5)
    got = run_unit(config, tiles, stream_bench, simulate, p_valid=0.15, p_ready=1.0)
    expected = np.concatenate([reference(x, x_zp, weights, w_zp) for weights, w_zp, x, x_zp in tiles])
    np.testing.assert_array_equal(got, expected)


def test_grid_latency_matches_property(simulate):
    # The bare grid, driven with a hand-made skew: column c of the result appears latency + c cycles
    # after lane 0 of the vector.
    rng = np.random.default_rng(7)
    rows, cols = 3, 4
    for product_register in (False, True):
        dut = SystolicArray(rows, cols, product_register=product_register)
        weights = rng.integers(-255, 256, size=(rows, cols))
        x = rng.integers(-255, 256, size=(6, rows))
        expected = x @ weights
        seen = np.zeros_like(expected)

        async def bench(ctx, dut=dut, weights=weights, x=x, seen=seen):
            ctx.set(dut.w_load, 1)
            ctx.set(dut.w_bank, 1)
            for r, row in enumerate(weights):
                ctx.set(dut.w_addr, r)
                ctx.set(dut.w_row, [int(v) for v in row])
                await ctx.tick()
            ctx.set(dut.w_load, 0)
            ctx.set(dut.sel_in, [1] * rows)
            horizon = len(x) + rows + cols + dut.latency
            for t in range(horizon):
                lanes = [int(x[t - r, r]) if 0 <= t - r < len(x) else 0 for r in range(rows)]
                ctx.set(dut.x_in, lanes)
                out = ctx.get(dut.psum_out)
                for c in range(cols):
                    n = t - dut.latency - c
                    if 0 <= n < len(x):
                        seen[n, c] = out[c]
                await ctx.tick()

        sim = Simulator(dut)
        sim.add_clock(1e-8)
        sim.add_testbench(bench)
        simulate(sim)
        np.testing.assert_array_equal(seen, expected)


@pytest.mark.parametrize("preset", ["4x4", "8x8", "16x16"])
def test_matmul_unit_converts_to_verilog(preset):
    dut = MatMulUnit(AcceleratorConfig.preset(preset))
    text = verilog.convert(dut, name="matmul_unit")
    assert "module matmul_unit" in text


@pytest.mark.parametrize(("rows", "cols", "sizes"), [(4, 4, [1, 1, 2, 2, 9, 1, 3, 7, 1, 1]), (3, 5, [2, 4, 1, 10, 2])])
def test_tiles_swap_as_soon_as_the_released_bank_is_free(rows, cols, sizes, simulate):
    """Weights and vectors always offered, results always taken: every swap happens at the earliest
    cycle the timing of the grid allows, and the results are still exact.

    The bound, from the grid alone: a vector accepted in cycle ``c`` reaches the PE of row ``r``,
    column ``cols - 1`` in cycle ``c + cols + r`` (entry register, ``r`` cycles of skew, ``cols - 1``
    hops); row ``r`` of a bank is rewritten by the ``r``-th load of the next tile, at the end of its
    cycle. So the first load into the bank released by the swap in cycle ``s`` may come in cycle
    ``max(s + 1, c + cols)``, ``c`` the last vector accepted before ``s``; the next swap follows the
    ``rows`` loads. A unit that loads one cycle earlier computes wrong sums (the tiles are random);
    one that waits longer fails the timing check.
    """
    config = AcceleratorConfig(rows=rows, cols=cols)
    dut = MatMulUnit(config)
    rng = np.random.default_rng(rows * 10 + cols)
    tiles = [rng.integers(-128, 128, size=(rows, cols)).astype(np.int8) for _ in sizes]
    xs = [rng.integers(-128, 128, size=(n, rows)).astype(np.int8) for n in sizes]
    w_rows = [row for tile in tiles for row in tile]
    x_items = [(vector, int(i == 0)) for x in xs for i, vector in enumerate(x)]
    fires: list[tuple[int, int]] = []  # (cycle, swap) of every accepted vector
    results = []

    async def bench(ctx):
        ctx.set(dut.y.ready, 1)
        w_next = x_next = 0
        cycle = 0
        while len(results) < len(x_items):
            ctx.set(dut.w.valid, w_next < len(w_rows))
            if w_next < len(w_rows):
                ctx.set(dut.w.payload, [int(v) for v in w_rows[w_next]])
            ctx.set(dut.x.valid, x_next < len(x_items))
            if x_next < len(x_items):
                vector, swap = x_items[x_next]
                ctx.set(dut.x.payload, {"data": [int(v) for v in vector], "swap": swap})
            _, _, w_fire, x_fire, y_valid, y_payload = await ctx.tick().sample(
                dut.w.valid & dut.w.ready, dut.x.valid & dut.x.ready, dut.y.valid, dut.y.payload)
            if w_fire:
                w_next += 1
            if x_fire:
                fires.append((cycle, x_items[x_next][1]))
                x_next += 1
            if y_valid:
                results.append(list(y_payload))
            cycle += 1

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    expected = np.concatenate([reference(x, 0, w, np.zeros(cols, dtype=np.int64)) for w, x in zip(tiles, xs,
                                                                                                  strict=True)])
    got = np.array(results, dtype=np.int64).astype(np.int32)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    # The swap cycles follow the bound exactly (the first tile loads from reset: cycle `rows`).
    cycles = [c for c, _ in fires]
    swaps = [c for c, swap in fires if swap]
    assert swaps[0] == rows
    for k in range(1, len(swaps)):
        s = swaps[k - 1]
        last_before = max((c for c in cycles if c < s), default=-(1 << 20))
        first_load = max(s + 1, last_before + cols)
        assert swaps[k] == max(s + sizes[k - 1], first_load + rows), (k, swaps)
