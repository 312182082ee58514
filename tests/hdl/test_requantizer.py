"""The requantizer against onnxruntime's float32 sequence and the integer golden model.

The expected codes come from two independent references: the float32 sequence written here with
NumPy (``f32(acc) * scale``, clamp, ``rint``, ``+ y_zp``) and ``systolix.quantize.requant.requantize``
(the integer-only golden model). The cases mix random accumulators and scales with constructed
ties: accumulators exactly halfway between two float32 values, products exactly halfway between
two float32 values (the float multiply's rounding), and results exactly or nearly at ``x.5``.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from systolix.hdl.requantizer import Requantizer

try:  # the integer golden model; without it the float32 reference below is used alone
    from systolix.quantize import requant
except ImportError:  # pragma: no cover
    requant = None
needs_golden = pytest.mark.skipif(requant is None, reason="systolix.quantize.requant is absent")

LANES = 4


def mantissa_exponent(scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``scale == M * 2**-E`` with ``2**23 <= M < 2**24`` (frexp, so denormals are normalised)."""
    fraction, exponent = np.frexp(scale.astype(np.float64))
    mantissa = (fraction * 2.0**24).astype(np.int64)
    return mantissa, (24 - exponent).astype(np.int64)


def float32_reference(acc, scale, y_zp, qmin, qmax) -> np.ndarray:
    """onnxruntime's sequence in float32 arithmetic (independent of the code under test)."""
    value = acc.astype(np.int32).astype(np.float32) * scale.astype(np.float32)
    assert value.dtype == np.float32
    low = (qmin.astype(np.int64) - y_zp).astype(np.float32)
    high = (qmax.astype(np.int64) - y_zp).astype(np.float32)
    value = np.minimum(np.maximum(value, low), high)
    return (np.rint(value).astype(np.int64) + y_zp).astype(np.int8)


def golden_reference(acc, scale, y_zp, qmin, qmax) -> np.ndarray:
    """`requant.requantize`, one call per distinct (qmin, qmax) pair (they are scalars there)."""
    out = np.empty(acc.shape, dtype=np.int8)
    pairs = np.stack([qmin, qmax], axis=1)
    for low, high in np.unique(pairs, axis=0):
        mask = (qmin == low) & (qmax == high)
        codes = requant.requantize(acc[mask], scale[mask], y_zp[mask], int(low), int(high), channel_axis=0)
        out[mask] = codes.astype(np.int8)
    return out


def output_params(rng: np.random.Generator, transfers: int):
    """Per-transfer y_zp, qmin, qmax: full int8 range, fused ReLU, narrow and inverted ranges."""
    y_zp = rng.integers(-128, 128, size=transfers)
    kind = rng.choice(4, size=transfers, p=[0.5, 0.3, 0.15, 0.05])
    qmin = np.where(kind == 1, y_zp, -128)
    qmax = np.full(transfers, 127)
    narrow_low = rng.integers(-128, 128, size=transfers)
    narrow_high = rng.integers(-128, 128, size=transfers)
    qmin = np.where(kind >= 2, narrow_low, qmin)
    qmax = np.where(kind == 2, np.maximum(narrow_low, narrow_high), np.where(kind == 3, narrow_high, qmax))
    qmin = np.where(kind == 2, np.minimum(narrow_low, narrow_high), qmin)
    return [np.repeat(v, LANES) for v in (y_zp, qmin, qmax)]


def random_cases(rng: np.random.Generator, count: int):
    """Accumulators over the whole int32 range with scales aimed at the int8 range or anywhere."""
    magnitude = np.floor(2.0 ** rng.uniform(0, 31, size=count)).astype(np.int64)
    acc = np.where(rng.random(count) < 0.5, -magnitude, magnitude)
    special = np.array([0, 1, -1, 2**31 - 1, -(2**31), 2**24, 2**24 + 1, -(2**24) - 3, 2**25 + 2, 2**30 + 64])
    acc[: len(special)] = special
    acc = np.clip(acc, -(2**31), 2**31 - 1)
    aimed = np.abs(rng.uniform(-300, 300, size=count) / np.maximum(np.abs(acc), 1))
    anywhere = 2.0 ** rng.uniform(-45, 23.9, size=count)
    scale = np.where(rng.random(count) < 0.7, aimed, anywhere)
    scale[-4:] = [1e-40, 1.5e-45, 2.0**-126, 3.0e-39]  # denormal and tiny scales
    return acc.astype(np.int32), scale.astype(np.float32)


def tie_cases(rng: np.random.Generator, count: int):
    """Constructed ties and near-ties at each of the three roundings."""
    parts = []
    per = count // 4

    # (a) |acc| > 2**24 exactly halfway between float32 values (step 1), either parity, +-1.
    s = rng.integers(1, 8, size=per)
    base = rng.integers(2**23, 2**24, size=per)
    acc = (base << s) + (np.int64(1) << (s - 1)) + rng.integers(-1, 2, size=per)
    scale = rng.uniform(1, 120, size=per) / acc
    parts.append((acc, scale))

    # (b) the product a * M exactly halfway between float32 values (step 3), +-1 on acc. With
    # a = odd * 2**i and M = odd * 2**j the product is odd * 2**(i + j): a tie when the multiply
    # drops t = i + j + 1 bits (t is 24 or 23 for a, M in [2**23, 2**24)).
    i = rng.integers(0, 23, size=per)
    j = np.maximum(np.where(rng.random(per) < 0.5, 23 - i, 22 - i), 0)

    def odd_times_power(power):
        odd = rng.integers(np.int64(1) << (23 - power), np.int64(1) << (24 - power)) | 1
        return odd << power

    a = odd_times_power(i)
    mantissa = odd_times_power(j)
    acc = a + rng.choice(np.array([0, 0, 0, 1, -1]), size=per)
    exponent = rng.integers(38, 47, size=per)
    scale = mantissa.astype(np.float64) * 2.0 ** -exponent.astype(np.float64)
    parts.append((acc, scale))

    # (c) results exactly at k + 0.5: power-of-two scales, odd multiples of half a step.
    j = rng.integers(1, 24, size=per)
    k = rng.integers(-130, 130, size=per)
    acc = (2 * k + 1) * (np.int64(1) << (j - 1))
    scale = 2.0 ** -j.astype(np.float64)
    parts.append((acc, scale))

    # (d) near x.5 with |acc| > 2**24: acc = round((k + 0.5) / scale) + delta.
    rest = count - 3 * per
    scale = 2.0 ** rng.uniform(-24, -17, size=rest)
    k = rng.integers(-128, 128, size=rest)
    acc = np.round((k + 0.5) / scale).astype(np.int64) + rng.integers(-2, 3, size=rest)
    parts.append((acc, scale))

    acc = np.concatenate([p[0] for p in parts])
    scale = np.concatenate([p[1] for p in parts]).astype(np.float32)
    sign = np.where(rng.random(acc.size) < 0.5, -1, 1)
    acc = np.clip(acc * sign, -(2**31), 2**31 - 1).astype(np.int32)
    return acc, scale


def run_requantizer(acc, scale, y_zp, qmin, qmax, stream_bench, simulate, *, p_valid=1.0, p_ready=1.0):
    """Push the cases through a `Requantizer` with ``LANES`` lanes; return the int8 codes."""
    assert acc.size % LANES == 0
    mantissa, exponent = mantissa_exponent(scale)
    assert exponent.min() >= 0 and exponent.max() <= 255
    dut = Requantizer(LANES)
    items = []
    for start in range(0, acc.size, LANES):
        lanes = [
            {"acc": int(acc[i]), "m": int(mantissa[i]), "e": int(exponent[i])}
            for i in range(start, start + LANES)
        ]
        items.append({"lanes": lanes, "y_zp": int(y_zp[start]), "qmin": int(qmin[start]),
                      "qmax": int(qmax[start])})
    results: list[list[int]] = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(stream_bench.producer(dut.i, items, p_valid=p_valid))
    sim.add_testbench(stream_bench.consumer(dut.o, len(items), results, p_ready=p_ready, convert=list))
    simulate(sim)
    return np.array(results, dtype=np.int64).reshape(-1).astype(np.int8)


def check(acc, scale, y_zp, qmin, qmax, got):
    expected = float32_reference(acc, scale, y_zp, qmin, qmax)
    if requant is not None:
        golden = golden_reference(acc, scale, y_zp, qmin, qmax)
        np.testing.assert_array_equal(golden, expected)  # the two references agree
    assert got.shape == expected.shape
    assert got.dtype == expected.dtype == np.int8
    np.testing.assert_array_equal(got, expected)


@needs_golden
def test_mantissa_exponent_matches_golden():
    scale = (2.0 ** np.random.default_rng(1).uniform(-140, 23.9, size=10_000)).astype(np.float32)
    mantissa, exponent = mantissa_exponent(scale)
    golden_m, golden_e = requant.scale_to_mantissa_exponent(scale)
    np.testing.assert_array_equal(mantissa, golden_m)
    np.testing.assert_array_equal(exponent, golden_e)


@pytest.mark.parametrize(("p_valid", "p_ready"), [(1.0, 1.0), (0.5, 0.5), (0.9, 0.2)])
def test_random_cases(p_valid, p_ready, stream_bench, simulate):
    rng = stream_bench.rng
    acc, scale = random_cases(rng, 4000)
    y_zp, qmin, qmax = output_params(rng, acc.size // LANES)
    got = run_requantizer(acc, scale, y_zp, qmin, qmax, stream_bench, simulate,
                          p_valid=p_valid, p_ready=p_ready)
    check(acc, scale, y_zp, qmin, qmax, got)


def test_ties_and_near_ties(stream_bench, simulate):
    rng = stream_bench.rng
    acc, scale = tie_cases(rng, 8000)
    transfers = acc.size // LANES
    # Mostly the full int8 range with y_zp = 0, so the ties are not hidden by the clamp.
    y_zp = np.repeat(np.where(rng.random(transfers) < 0.8, 0, rng.integers(-20, 20, size=transfers)), LANES)
    qmin = np.full(acc.size, -128)
    qmax = np.full(acc.size, 127)
    got = run_requantizer(acc, scale, y_zp, qmin, qmax, stream_bench, simulate, p_valid=0.8, p_ready=0.7)
    check(acc, scale, y_zp, qmin, qmax, got)


@needs_golden
def test_tie_cases_hit_the_roundings():
    # The constructed cases do exercise exact ties at the int->float and float-multiply roundings.
    acc, scale = tie_cases(np.random.default_rng(3), 2400)
    mantissa, _ = mantissa_exponent(scale)

    def is_tie(value):  # rounding to 24 significant bits drops exactly "1000..."
        drop = np.maximum(requant.bit_length(value) - 24, 0)
        remainder = value & ((np.int64(1) << drop) - 1)
        return (drop > 0) & (remainder == np.int64(1) << np.maximum(drop - 1, 0))

    magnitude = np.abs(acc.astype(np.int64))
    step1_ties = is_tie(magnitude)
    step3_ties = is_tie(requant.round_to_significant_bits(magnitude, 24) * mantissa)
    assert step1_ties.sum() >= 100
    assert step3_ties.sum() >= 100


def test_zero_mantissa_gives_the_zero_point(stream_bench, simulate):
    # scale == 0 (M == 0, any E) is not a float32 normal scale; the result is clamp(0) + y_zp.
    rng = stream_bench.rng
    dut = Requantizer(1)
    items = [{"lanes": [{"acc": int(a), "m": 0, "e": int(e)}], "y_zp": int(z), "qmin": -128, "qmax": 127}
             for a, e, z in zip(rng.integers(-(2**31), 2**31, size=20), rng.integers(0, 256, size=20),
                                rng.integers(-128, 128, size=20), strict=True)]
    results = []
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(stream_bench.producer(dut.i, items))
    sim.add_testbench(stream_bench.consumer(dut.o, len(items), results, convert=lambda p: p[0]))
    simulate(sim)
    assert results == [item["y_zp"] for item in items]


def test_latency_and_throughput(stream_bench, simulate):
    dut = Requantizer(1)
    cycles = {"in": [], "out": []}

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        ctx.set(dut.i.payload, {"lanes": [{"acc": 1000, "m": 2**23, "e": 30}], "y_zp": 0, "qmin": -128,
                                "qmax": 127})
        for cycle in range(10 + dut.latency + 5):
            if cycle == 10:
                ctx.set(dut.i.valid, 0)
            _, _, fired, out_valid = await ctx.tick().sample(dut.i.valid & dut.i.ready, dut.o.valid)
            if fired:
                cycles["in"].append(cycle)
            if out_valid:
                cycles["out"].append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    assert cycles["in"] == list(range(10))
    assert cycles["out"] == [c + dut.latency for c in cycles["in"]]


def test_requantizer_converts_to_verilog():
    text = verilog.convert(Requantizer(2), name="requantizer")
    assert "module requantizer" in text


def test_lanes_must_be_positive():
    with pytest.raises(ValueError, match=r"^lanes must be a positive int, not 0$"):
        Requantizer(0)
