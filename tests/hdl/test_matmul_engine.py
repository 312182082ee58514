"""The MATMUL engine, one instruction at a time, against a direct NumPy convolution / matrix product.

The reference does not use the instruction's loop nest: it pads the input tensor with its zero
point, takes the windows with plain NumPy indexing (conv / depthwise) or a matrix product (dense),
adds the bias with int32 wrap-around and requantizes with ``systolix.quantize.requant.requantize``.
Only the memory images (the tensor and weight layouts of docs/architecture.md) are built here from
the same tensors; the engine's output rows are then compared with the reference tensor laid out
the same way -- including the padding lanes of the last block.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module
from amaranth.back import verilog
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import FIELDS, Instruction, Mode, Opcode
from systolix.arch.isa import decode as isa_decode
from systolix.arch.params import ChannelParams
from systolix.compiler.cycles import pipeline_latencies, predicted_cycles
from systolix.hdl import ports
from systolix.hdl.matmul_engine import MatMulEngine
from systolix.quantize.requant import requantize, scale_to_mantissa_exponent

SMALL = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=1024, weight_buffer_depth=1024, acc_memory_depth=64,
                          param_memory_depth=32)


class Harness(wiring.Component):
    """The engine with the memories a top level would give it, filled with ``images``."""

    def __init__(self, config: AcceleratorConfig, act, wgt, prm):
        self.engine = MatMulEngine(config)
        self._images = (config, act, wgt, prm)
        super().__init__({"ctl": In(ports.engine_control()), "busy": Out(1)})

    def elaborate(self, platform):
        config, act, wgt, prm = self._images
        m = Module()
        m.submodules.engine = engine = self.engine
        e = engine
        m.submodules.act = act_mem = Memory(shape=e.act_rd.data.shape(), depth=config.act_buffer_depth, init=act)
        m.submodules.wgt = wgt_mem = Memory(shape=e.wgt_rd.data.shape(), depth=config.weight_buffer_depth,
                                            init=wgt)
        m.submodules.prm = prm_mem = Memory(shape=e.prm_rd.data.shape(), depth=config.param_memory_depth,
                                            init=prm)
        for name, port, mem in (("act", e.act_rd, act_mem), ("wgt", e.wgt_rd, wgt_mem), ("prm", e.prm_rd, prm_mem)):
            rd = mem.read_port()
            # act and prm are captured ports, as the top level wires them (ports.captured).
            word = rd.data if name == "wgt" else ports.captured(m, rd.data, rd.en, name)
            m.d.comb += [rd.addr.eq(port.addr), rd.en.eq(port.en), port.data.eq(word)]
        wr = act_mem.write_port()
        m.d.comb += [wr.addr.eq(e.act_wr.addr), wr.en.eq(e.act_wr.en), wr.data.eq(e.act_wr.data)]
        wiring.connect(m, wiring.flipped(self.ctl), e.ctl)
        m.d.comb += self.busy.eq(e.busy)
        return m


@dataclasses.dataclass
class Case:
    """One instruction with its memory images and the expected output rows."""

    instr: Instruction
    act: np.ndarray          # [act depth, L] int8
    wgt: np.ndarray          # [weight depth, L] int8
    prm: list                # rows of L ChannelParams
    expected: np.ndarray     # [rows, L] int8, from act row out_base on
    x_rows: np.ndarray       # the input tensor's rows (at in_base)
    wgt_rows: np.ndarray     # the tiles' rows (at w_base)


def blocks(c: int, lanes: int) -> int:
    return -(-c // lanes)


def to_rows(tensor: np.ndarray, lanes: int, fill: int) -> np.ndarray:
    """(C, H, W) -> [CB*H*W, L] rows of the act layout; lanes past C hold ``fill``."""
    c, h, w = tensor.shape
    cb = blocks(c, lanes)
    padded = np.full((cb * lanes, h, w), fill, dtype=np.int64)
    padded[:c] = tensor
    return padded.reshape(cb, lanes, h, w).transpose(0, 2, 3, 1).reshape(cb * h * w, lanes)


def random_params(rng, acc: np.ndarray, lanes: int, relu: bool | str):
    """Per-channel bias and scale sized to the accumulators, an output zero point and clamp.

    ``relu``: True (clamp from the zero point up), "clip" (a clamp above the zero point, as a Clip with
    a positive minimum), False (the int8 range).
    """
    c_out = acc.shape[0]
    bias = rng.integers(-2000, 2000, size=c_out)
    total = acc.reshape(c_out, -1).astype(np.int64) + bias[:, None]
    spread = np.abs(total).max(axis=1) + 1
    scale = (rng.uniform(30, 200, size=c_out) / spread).astype(np.float32)
    y_zp = int(rng.integers(-30, 30))
    if relu == "clip":
        qmin, qmax = y_zp + 5, y_zp + 60
    else:
        qmin, qmax = (y_zp, 127) if relu else (-128, 127)
    return bias, scale, y_zp, qmin, qmax


def finish(rng, config, instr_fields, x_rows, wgt_rows, acc, lanes, relu=False, bases=None):
    """Requantize ``acc`` (C_out, ...) with random parameters; build every memory image.

    ``bases``: (in_base, out_base, w_base, p_base), random when None.
    """
    bias, scale, y_zp, qmin, qmax = random_params(rng, acc, lanes, relu)
    c_out = acc.shape[0]
    total = (acc.astype(np.int64) + bias.reshape((-1,) + (1,) * (acc.ndim - 1)))
    total = ((total + 2**31) % 2**32 - 2**31).astype(np.int32)
    out = requantize(total, scale, y_zp, qmin, qmax, channel_axis=0).astype(np.int64)
    out = out.reshape(c_out, instr_fields["out_h"], instr_fields["out_w"])
    # Padding lanes: what the compiler writes there (bias 0, clamp [zp, zp]) gives the zero point.
    expected = to_rows(out, lanes, y_zp).astype(np.int8)

    mant, expo = scale_to_mantissa_exponent(scale)
    j_blocks = blocks(c_out, lanes)
    prm = []
    for j in range(j_blocks):
        row = []
        for c in range(lanes):
            ch = j * lanes + c
            if ch < c_out:
                row.append(ChannelParams(int(bias[ch]), int(mant[ch]), int(expo[ch]), y_zp, qmin, qmax))
            else:
                row.append(ChannelParams(0, 1 << 23, 0, y_zp, y_zp, y_zp))
        prm.append(row)

    if bases is None:
        p_base = int(rng.integers(0, config.param_memory_depth - j_blocks + 1))
        in_base = int(rng.integers(0, 64))
        out_base = in_base + len(x_rows) + int(rng.integers(0, 16))
        w_base = int(rng.integers(0, config.weight_buffer_depth - len(wgt_rows) + 1))
    else:
        in_base, out_base, w_base, p_base = bases
    assert out_base + len(expected) <= config.act_buffer_depth
    act = rng.integers(-128, 128, size=(config.act_buffer_depth, lanes))  # garbage around the tensors
    act[in_base:in_base + len(x_rows)] = x_rows
    wgt = rng.integers(-128, 128, size=(config.weight_buffer_depth, lanes))
    wgt[w_base:w_base + len(wgt_rows)] = wgt_rows
    prm_image = [[ChannelParams(0, 1 << 23, 0, 0, 0, 0)] * lanes for _ in range(config.param_memory_depth)]
    prm_image[p_base:p_base + j_blocks] = prm
    instr = Instruction(opcode=Opcode.MATMUL, in_base=in_base, out_base=out_base, w_base=w_base, p_base=p_base,
                        out_blocks=j_blocks, **instr_fields)
    return Case(instr, act.astype(np.int8), wgt.astype(np.int8), prm_image, expected, x_rows, wgt_rows)


def conv_case(rng, config, *, c_in, c_out, h, w, k=(3, 3), stride=(1, 1), pads=(1, 1, 1, 1), dil=(1, 1),
              depthwise=False, chunk_rows=None, gap=False, relu=False, bases=None) -> Case:
    """Conv (or depthwise) with pads (top, left, bottom, right).

    ``gap``: global average pool as the compiler lowers it: all-ones depthwise over the whole input
    with one shared identity tile (``w_shared``).
    """
    lanes = config.rows
    x_zp = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, size=(c_in, h, w))
    if depthwise:
        assert c_in == c_out
        weights = np.ones((c_out, 1) + k, dtype=np.int64) if gap else rng.integers(-128, 128, size=(c_out, 1) + k)
    else:
        weights = rng.integers(-128, 128, size=(c_out, c_in) + k)
    top, left, bottom, right = pads
    xp = np.pad(x - x_zp, ((0, 0), (top, bottom), (left, right)))  # padding cells hold x_zp: 0 after - x_zp
    out_h = (h + top + bottom - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    out_w = (w + left + right - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    acc = np.zeros((c_out, out_h, out_w), dtype=np.int64)
    for ky in range(k[0]):
        for kx in range(k[1]):
            win = xp[:, ky * dil[0]: ky * dil[0] + stride[0] * (out_h - 1) + 1: stride[0],
                     kx * dil[1]: kx * dil[1] + stride[1] * (out_w - 1) + 1: stride[1]]
            if depthwise:
                acc += weights[:, 0, ky, kx, None, None] * win
            else:
                acc += np.einsum("oc,chw->ohw", weights[:, :, ky, kx], win)
    acc = (acc + 2**31) % 2**32 - 2**31

    cbi_n = blocks(c_in, lanes)
    j_n = blocks(c_out, lanes)
    taps = k[0] * k[1] * (1 if depthwise else cbi_n)
    tiles = np.zeros((j_n, taps, lanes, lanes), dtype=np.int64)  # [j, t, r, c]
    for j in range(j_n):
        for ky in range(k[0]):
            for kx in range(k[1]):
                for c in range(lanes):
                    co = j * lanes + c
                    if co >= c_out:
                        continue
                    if depthwise:
                        tiles[j, ky * k[1] + kx, c, c] = weights[co, 0, ky, kx]
                    else:
                        for cbi in range(cbi_n):
                            for r in range(lanes):
                                ci = cbi * lanes + r
                                if ci < c_in:
                                    tiles[j, (ky * k[1] + kx) * cbi_n + cbi, r, c] = weights[co, ci, ky, kx]
    fields = dict(mode=Mode.DEPTHWISE if depthwise else Mode.CONV, in_blocks=cbi_n, in_h=h, in_w=w, out_h=out_h,
                  out_w=out_w, k_h=k[0], k_w=k[1], stride_h=stride[0], stride_w=stride[1], pad_top=top,
                  pad_left=left, dil_h=dil[0], dil_w=dil[1], taps=taps, chunk_rows=chunk_rows or out_h, x_zp=x_zp)
    if gap:
        tiles = np.eye(lanes, dtype=np.int64)[None, None]
        fields.update(w_shared=1)
    return finish(rng, config, fields, to_rows(x, lanes, x_zp), tiles.reshape(-1, lanes), acc, lanes, relu, bases)


def dense_case(rng, config, *, c_in, h, w, c_out, bases=None) -> Case:
    """Dense over a (C, H, W) tensor in act layout: every row is a reduction step."""
    lanes = config.rows
    x_zp = int(rng.integers(-128, 128))
    x = rng.integers(-128, 128, size=(c_in, h, w))
    weights = rng.integers(-128, 128, size=(c_out, c_in, h, w))
    acc = np.einsum("ochw,chw->o", weights, x - x_zp).reshape(c_out, 1, 1)
    x_rows = to_rows(x, lanes, x_zp)
    # Weight of (input row t, lane r) for output c: the same layout applied to each output's weights.
    w_rows = np.stack([to_rows(weights[co], lanes, 0) for co in range(c_out)])  # [c_out, T, L]
    taps = x_rows.shape[0]
    j_n = blocks(c_out, lanes)
    tiles = np.zeros((j_n, taps, lanes, lanes), dtype=np.int64)
    for co in range(c_out):
        tiles[co // lanes, :, :, co % lanes] = w_rows[co]
    # DENSE ignores the input and output size fields; they describe the tensor for reports.
    fields = dict(mode=Mode.DENSE, in_blocks=blocks(c_in, lanes), in_h=h, in_w=w, out_h=1, out_w=1, k_h=1, k_w=1,
                  stride_h=1, stride_w=1, taps=taps, chunk_rows=1, x_zp=x_zp)
    return finish(rng, config, fields, x_rows, tiles.reshape(-1, lanes), acc, lanes, bases=bases)


def run_engine(config: AcceleratorConfig, case: Case, simulate) -> tuple[dict[int, list[int]], int, int]:
    """Run one instruction; return the rows written (address -> lanes), the cycles from start to done
    and the engine's `drain_cycles`."""
    writes, cycles, drain = run_program(config, case.act, case.wgt, case.prm, [case.instr], simulate)
    return writes[0], cycles[0], drain


def run_program(config, act, wgt, prm, instrs, simulate):
    """Run instructions one after the other on one engine (start, wait for done, next start)."""
    dut = Harness(config, [[int(v) for v in row] for row in act], [[int(v) for v in row] for row in wgt],
                  [[vars(ch) for ch in row] for row in prm])
    engine = dut.engine
    writes: list[dict[int, list[int]]] = []
    cycles: list[int] = []

    async def control(ctx):
        for ins in instrs:
            ctx.set(dut.ctl.instr, {name: int(getattr(ins, name)) for name, _ in FIELDS})
            await ctx.tick()
            ctx.set(dut.ctl.start, 1)
            await ctx.tick()
            ctx.set(dut.ctl.start, 0)
            count, rows = 1, {}
            while True:
                _, _, done, en, addr, data = await ctx.tick().sample(
                    dut.ctl.done, engine.act_wr.en, engine.act_wr.addr, engine.act_wr.data)
                if en:
                    assert int(addr) not in rows, f"row {int(addr)} written twice"
                    rows[int(addr)] = [int(v) for v in data]
                if done:
                    break
                count += 1
            writes.append(rows)
            cycles.append(count)
            # Nothing more happens after done.
            for _ in range(3):
                _, _, done, en, busy = await ctx.tick().sample(dut.ctl.done, engine.act_wr.en, dut.busy)
                assert not (done or en or busy)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(control)
    simulate(sim, max_cycles=200_000)
    return writes, cycles, engine.drain_cycles


def check(case: Case, writes: dict[int, list[int]]) -> None:
    base = case.instr.out_base
    assert sorted(writes) == list(range(base, base + len(case.expected))), "rows written"
    got = np.array([writes[base + k] for k in range(len(case.expected))], dtype=np.int64).astype(np.int8)
    assert got.shape == case.expected.shape and got.dtype == case.expected.dtype
    np.testing.assert_array_equal(got, case.expected)


def model_cycles(case: Case, lanes: int, drain: int, fixed: int) -> int:
    """The cycle model, start to done: each (j, chunk, t) tile streams its P pixels, one per cycle; the
    next tile is loaded (``lanes`` rows, one per cycle) into the bank the last swap released, starting
    ``drain`` cycles after the last vector that used that bank (and after the swap), and swapped in
    when complete; the last tile takes P; plus the fill and drain of the pipelines, ``fixed``
    (``arch.latency.matmul_engine_fixed_cycles``). With ``w_shared`` there is no swap after the first: every
    tile takes P."""
    ins = case.instr
    out_h, out_w = (1, 1) if ins.mode == Mode.DENSE else (ins.out_h, ins.out_w)
    chunk_rows = 1 if ins.mode == Mode.DENSE else ins.chunk_rows
    pixels = [min(chunk_rows, out_h - oy0) * out_w for oy0 in range(0, out_h, chunk_rows)]
    tiles = [p for _ in range(ins.out_blocks) for p in pixels for _ in range(ins.taps)]
    if ins.w_shared:
        return sum(tiles) + fixed
    swap, before = 0, None  # cycle of the current swap; last vector before it
    for p in tiles[:-1]:
        first_load = swap + 1 if before is None else max(swap + 1, before + drain)
        swap, before = max(swap + p, first_load + lanes), swap + p - 1
    return swap + tiles[-1] + fixed


CASES = {
    "conv3x3_s1_p1": dict(c_in=6, c_out=5, h=5, w=6),
    "conv_s2_asym_pad": dict(c_in=3, c_out=4, h=7, w=8, stride=(2, 2), pads=(0, 1, 1, 0)),
    "conv_dilation2": dict(c_in=4, c_out=3, h=7, w=7, dil=(2, 2), pads=(2, 2, 2, 2), relu=True),
    "conv_clamp_above_zp": dict(c_in=3, c_out=6, h=4, w=4, relu="clip"),
    "conv1x1": dict(c_in=9, c_out=6, h=4, w=5, k=(1, 1), pads=(0, 0, 0, 0)),
    "conv1d": dict(c_in=5, c_out=4, h=1, w=16, k=(1, 5), pads=(0, 2, 0, 2)),
    "conv_blocks_chunks": dict(c_in=3, c_out=10, h=6, w=5, chunk_rows=2),
    "conv_chunk_of_one_row": dict(c_in=2, c_out=3, h=4, w=3, k=(3, 2), pads=(1, 0, 1, 1), chunk_rows=1),
    "depthwise": dict(c_in=7, c_out=7, h=6, w=6, depthwise=True, chunk_rows=4),
    "depthwise_s2": dict(c_in=4, c_out=4, h=7, w=7, depthwise=True, stride=(2, 2), pads=(1, 1, 1, 1)),
    "gap_as_depthwise": dict(c_in=6, c_out=6, h=4, w=5, k=(4, 5), pads=(0, 0, 0, 0), depthwise=True, gap=True),
    "gap_7x7": dict(c_in=5, c_out=5, h=7, w=7, k=(7, 7), pads=(0, 0, 0, 0), depthwise=True, gap=True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_engine_conv_modes(name, simulate):
    rng = np.random.default_rng(sum(map(ord, name)))
    case = conv_case(rng, SMALL, **CASES[name])
    writes, _, _ = run_engine(SMALL, case, simulate)
    check(case, writes)


@pytest.mark.parametrize(("c_in", "h", "w", "c_out"), [(10, 1, 1, 3), (3, 2, 3, 6)])
def test_engine_dense(c_in, h, w, c_out, simulate):
    rng = np.random.default_rng(c_in * 100 + c_out)
    case = dense_case(rng, SMALL, c_in=c_in, h=h, w=w, c_out=c_out)
    writes, _, _ = run_engine(SMALL, case, simulate)
    check(case, writes)


def test_engine_8x8(simulate):
    config = AcceleratorConfig.preset("8x8")
    rng = np.random.default_rng(88)
    case = conv_case(rng, config, c_in=10, c_out=12, h=5, w=5, chunk_rows=3)
    writes, _, _ = run_engine(config, case, simulate)
    check(case, writes)


def test_engine_cycles_follow_model(simulate):
    """Measured cycles against `model_cycles` (pixel-bound, weight-bound with few pixels, one-pixel DENSE
    tiles, shared tiles)."""
    rng = np.random.default_rng(7)
    cases = [conv_case(rng, SMALL, c_in=4, c_out=4, h=8, w=8),
             conv_case(rng, SMALL, c_in=4, c_out=8, h=3, w=3),
             conv_case(rng, SMALL, c_in=3, c_out=5, h=7, w=4, chunk_rows=3),
             dense_case(rng, SMALL, c_in=8, h=1, w=2, c_out=4),
             dense_case(rng, SMALL, c_in=20, h=1, w=3, c_out=9),
             conv_case(rng, SMALL, c_in=9, c_out=6, h=2, w=3, k=(1, 1), pads=(0, 0, 0, 0)),
             conv_case(rng, SMALL, c_in=9, c_out=6, h=2, w=2, k=(2, 2), pads=(0, 0, 0, 0)),
             conv_case(rng, SMALL, c_in=6, c_out=6, h=5, w=5, k=(5, 5), pads=(0, 0, 0, 0), depthwise=True, gap=True)]
    for case in cases:
        writes, cycles, drain = run_engine(SMALL, case, simulate)
        check(case, writes)
        assert drain == SMALL.rows
        model = model_cycles(case, SMALL.rows, drain, pipeline_latencies(SMALL)["matmul_fixed"])
        assert model - 3 <= cycles <= model + 3, (cycles, model)
        # The compiler's prediction (which adds the controller's 4 cycles of handshake) agrees as well.
        predicted = predicted_cycles(case.instr, SMALL) - 4
        assert predicted - 3 <= cycles <= predicted + 3, (cycles, predicted)


RANDOM_SHAPES = 4


@pytest.mark.parametrize("seed", range(RANDOM_SHAPES))
def test_engine_random_conv(seed, simulate):
    """Random kernel, stride, padding, dilation, chunking, channel counts."""
    rng = np.random.default_rng(1000 + seed)
    while True:
        k = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
        stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
        pads = tuple(int(rng.integers(0, 3)) for _ in range(4))
        h, w = int(rng.integers(2, 7)), int(rng.integers(2, 7))
        out_h = (h + pads[0] + pads[2] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
        out_w = (w + pads[1] + pads[3] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
        if out_h >= 1 and out_w >= 1:
            break
    depthwise = bool(rng.random() < 0.3)
    c_in = int(rng.integers(1, 9))
    c_out = c_in if depthwise else int(rng.integers(1, 9))
    chunk_rows = int(rng.integers(1, out_h + 1))
    case = conv_case(rng, SMALL, c_in=c_in, c_out=c_out, h=h, w=w, k=k, stride=stride, pads=pads, dil=dil,
                     depthwise=depthwise, chunk_rows=chunk_rows, relu=bool(rng.random() < 0.5))
    writes, _, _ = run_engine(SMALL, case, simulate)
    check(case, writes)


def test_engine_back_to_back(simulate):
    """Three instructions on one engine: the state left by one does not leak into the next."""
    rng = np.random.default_rng(3)
    a = conv_case(rng, SMALL, c_in=5, c_out=6, h=4, w=4, bases=(0, 100, 0, 0))
    b = dense_case(rng, SMALL, c_in=6, h=1, w=1, c_out=5, bases=(200, 220, 300, 4))
    c = conv_case(rng, SMALL, c_in=4, c_out=4, h=3, w=5, depthwise=True, chunk_rows=2, bases=(400, 500, 600, 8))
    act, wgt, prm = a.act.copy(), a.wgt.copy(), list(a.prm)
    for case in (b, c):
        ins = case.instr
        act[ins.in_base:ins.in_base + len(case.x_rows)] = case.x_rows
        wgt[ins.w_base:ins.w_base + len(case.wgt_rows)] = case.wgt_rows
        prm[ins.p_base:ins.p_base + ins.out_blocks] = case.prm[ins.p_base:ins.p_base + ins.out_blocks]
    writes, _, _ = run_program(SMALL, act, wgt, prm, [a.instr, b.instr, c.instr], simulate)
    for case, rows in zip((a, b, c), writes, strict=True):
        check(case, rows)


def test_engine_converts_to_verilog():
    text = verilog.convert(MatMulEngine(AcceleratorConfig.preset("8x8")), name="matmul_engine")
    assert "module matmul_engine" in text


@pytest.mark.slow
def test_engine_matches_functional_model_on_keras_mnist(tmp_path, simulate):
    """Every MATMUL instruction of the compiled Keras MNIST example (4x4), run on the engine from the act
    state the compiler's functional model has before it, writes exactly the rows the model writes."""
    from systolix.arch import params as prm_format
    from systolix.arch.config import PRESETS
    from systolix.compiler import model as functional
    from systolix.compiler.compile import compile_model
    from systolix.compiler.layout import write_tensor
    from systolix.frontend.importer import import_model
    from systolix.quantize.ptq import quantize_model

    example = Path(__file__).resolve().parents[2] / "examples" / "keras_mnist"
    quantize_model(example / "model.onnx", example / "calib.npz", tmp_path / "model_int8.onnx")
    model = import_model(tmp_path / "model_int8.onnx").ir
    config = dataclasses.replace(PRESETS["4x4"], act_buffer_depth=8192, weight_buffer_depth=16384,
                                 param_memory_depth=256)
    program = compile_model(model, config, keep_all=True)
    info = model.inputs[0]
    x = np.random.default_rng(0).integers(-128, 128, (1, *info.shape[1:])).astype(np.dtype(info.dtype))
    act = np.zeros((1, config.act_buffer_depth, config.rows), np.int8)
    for name, value in program.host_inputs({info.name: x}).items():
        placement = program.tensors.get(name)
        if placement is not None and placement.layout == "channel-blocked":
            act[:, placement.base:placement.base + placement.rows] = write_tensor(placement, value)
    machine = functional._Machine(program, config, act)  # the model, one instruction at a time
    prm = [prm_format.unpack_row(int(word), config.rows) for word in program.images.prm]
    prm += [[ChannelParams(0, 1 << 23, 0, 0, 0, 0)] * config.rows] * (config.param_memory_depth - len(prm))
    wgt = np.zeros((config.weight_buffer_depth, config.rows), dtype=np.int8)
    wgt[:len(program.images.wgt)] = program.images.wgt
    engines = {Opcode.MAXPOOL: machine.maxpool, Opcode.LUT: machine.lookup, Opcode.ADD: machine.add}
    matmuls = 0
    for word in program.images.prog:
        ins = isa_decode(int(word))
        if ins.opcode == Opcode.HALT:
            break
        if ins.opcode != Opcode.MATMUL:
            engines[ins.opcode](ins)
            continue
        before = machine.act[0].copy()
        machine.matmul(ins)
        writes, _, _ = run_program(config, before, wgt, prm, [ins], simulate)
        changed = set(np.nonzero((before != machine.act[0]).any(axis=1))[0].tolist())
        assert changed <= set(writes[0])
        got = np.array(list(writes[0].values()), dtype=np.int64).astype(np.int8)
        np.testing.assert_array_equal(got, machine.act[0][list(writes[0])])
        matmuls += 1
    assert matmuls == 5
