"""The MUL unit in simulation against ``mul_arith.qmul_model`` (itself checked against the golden kernel,
which is checked against onnxruntime: ``tests/quantize/golden/test_golden_qlinear_mul.py``).

Each case is a QLinearMul parameter set (int8 and uint8 tensors, products that round into the window's
sticky bit, a ratio shifted left); the code pairs are random ones plus the pairs whose sums lie closest to
``x.5`` (where rounding once instead of twice would give another code), fed with random gaps and drained
with random back-pressure.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from amaranth.sim import Simulator

from systolix.arch.latency import mul_unit_latency
from systolix.arch.mul_arith import mul_params, qmul_model
from systolix.hdl.mul_unit import MulUnit
from systolix.quantize.golden.qlinear_mul import mul_ratio

LANES = 4
RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
CASES = {  # (scales, zero points, dtypes of A, B, output)
    "se_uint8": ((0.0473, 1 / 256, 0.0391), (0, 0, 0), ("uint8", "uint8", "uint8")),
    "int8_offsets": ((0.0171, 0.0093, 0.00238), (-3, 40, -100), ("int8", "int8", "int8")),
    "mixed_zp": ((0.031, 0.05, 0.011), (130, -7, 201), ("uint8", "int8", "uint8")),
    "tiny_ratio": ((2.0**-20, 0.05, 0.031), (10, 240, 3), ("uint8", "uint8", "uint8")),
    "left_shift": ((0.5, 0.25, 1.5), (0, 0, 0), ("int8", "int8", "int8")),
    "clamped_products": ((1.0, 3.0, 1.0), (7, -9, 100), ("int8", "int8", "int8")),     # ratio 3: most saturate
    "huge_ratio": ((1.0, 4000.0, 1.0), (128, 130, 0), ("uint8", "uint8", "uint8")),  # left shift 20
}


def quant(scale, zp, dtype):
    lo, hi = RANGES[dtype]
    return SimpleNamespace(scale=np.float32(scale), zero_point=np.int64(zp), dtype=dtype, qmin=lo, qmax=hi)


def near_ties(qs, count):
    """Storage-code pairs whose ``c_zp + p * ratio`` lies closest to x.5."""
    codes = np.arange(-128, 128)
    a, b = np.repeat(codes, 256), np.tile(codes, 256)
    off = [128 if q.dtype == "uint8" else 0 for q in qs]
    p = (a + off[0] - int(qs[0].zero_point)) * (b + off[1] - int(qs[1].zero_point))
    v = p * np.float64(mul_ratio(qs[0].scale, qs[1].scale, qs[2].scale))
    order = np.argsort(np.abs(v - np.floor(v) - 0.5), kind="stable")
    return a[order[:count]], b[order[:count]]


@pytest.mark.parametrize("case", list(CASES))
def test_mul_unit_matches_model(case, stream_bench, simulate):
    scales, zps, dtypes = CASES[case]
    qs = [quant(s, z, d) for s, z, d in zip(scales, zps, dtypes, strict=True)]
    params = mul_params(*qs)
    rng = stream_bench.rng
    ta, tb = near_ties(qs, 300)
    ra, rb = rng.integers(-128, 128, size=(2, 300))
    a = np.concatenate([ta, ra, [-128, 127, 0, -128]]).astype(np.int64)
    b = np.concatenate([tb, rb, [-128, 127, 0, 127]]).astype(np.int64)
    order = rng.permutation(len(a))
    pad = -len(a) % LANES
    a, b = np.concatenate([a[order], a[:pad]]), np.concatenate([b[order], b[:pad]])
    expected = qmul_model(a, b, params).reshape(-1, LANES)
    items = [[{"a": int(x), "b": int(y)} for x, y in zip(ra_, rb_, strict=True)]
             for ra_, rb_ in zip(a.reshape(-1, LANES), b.reshape(-1, LANES), strict=True)]

    dut = MulUnit(LANES)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    out: list = []
    producer = stream_bench.producer(dut.i, items, p_valid=0.7)

    async def produce(ctx):
        ctx.set(dut.params, dataclasses.asdict(params))
        await producer(ctx)

    sim.add_testbench(produce)
    sim.add_testbench(stream_bench.consumer(dut.o, len(items), out, p_ready=0.6,
                                            convert=lambda payload: [int(x) for x in payload]))
    simulate(sim, max_cycles=20_000)
    got = np.array(out, dtype=np.int64).astype(np.int8)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)


def test_latency_and_elaboration():
    dut = MulUnit(LANES)
    assert dut.latency == mul_unit_latency() == 23
    from amaranth.back import rtlil
    rtlil.convert(dut)
    with pytest.raises(ValueError, match="lanes must be a positive int, not 0"):
        MulUnit(0)
