"""The functional model of the accelerator: runs a compiled program on NumPy arrays standing for the memories.

It decodes the words of the ``prog`` image one by one until HALT and executes each exactly as
``docs/architecture.md`` specifies, reading weights from the ``wgt`` image, per-channel parameters from the
unpacked ``prm`` rows and tables from the ``lut`` image. This model is the contract the hardware
controller is held to: for every instruction, the ``act`` rows it writes must equal what the hardware
writes. Samples run side by side (a leading batch axis on ``act``); nothing couples them.

MATMUL: for each output block ``j`` and chunk of ``chunk_rows`` output rows, the accumulator of every
pixel is the wrapping int32 sum over the reduction steps ``t`` of ``(act[row] - x_zp) @ tile(j, t)``
(rows outside the input contribute nothing), plus the bias, then the integer requantization of
:mod:`systolix.quantize.requant` with the channel's ``M``, ``E``, zero point and clamp. Sums are formed
exactly (float64 matrix products of small integers, below ``2**53``) and wrapped to int32 once: wrapping
addition is associative, so this equals wrapping after every step.
"""

from __future__ import annotations

import numpy as np

from systolix.arch import add_arith, isa, mul_arith, params
from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Mode, Opcode
from systolix.errors import SystolixError
from systolix.quantize.requant import round_shift_rne, round_to_significant_bits

from .layout import read_tensor, write_tensor

__all__ = ["requantize_lanes", "run_program"]


def _wrap32(x: np.ndarray) -> np.ndarray:
    return ((x.astype(np.int64) + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def requantize_lanes(acc: np.ndarray, channels: list[params.ChannelParams]) -> np.ndarray:
    """Integer requantization of int32 accumulators ``[..., L]`` with one :class:`ChannelParams` per lane.

    Steps of :mod:`systolix.quantize.requant`: ``|acc|`` to 24 significant bits, times ``M``, to 24
    significant bits, RNE shift by ``E``, sign, clamp to ``[lo, hi]`` around the zero point.
    """
    m = np.array([c.m for c in channels], dtype=np.int64)
    e = np.array([c.e for c in channels], dtype=np.int64)
    zp = np.array([c.zp for c in channels], dtype=np.int64)
    lo = np.array([c.lo for c in channels], dtype=np.int64)
    hi = np.array([c.hi for c in channels], dtype=np.int64)
    acc = np.asarray(acc, dtype=np.int64)
    a24 = round_to_significant_bits(np.abs(acc), 24)
    x24 = round_to_significant_bits(a24 * m, 24)
    r = round_shift_rne(x24, np.broadcast_to(np.minimum(e, 58), x24.shape))
    signed = np.where(acc < 0, -r, r)
    return np.clip(signed, lo - zp, hi - zp) + zp


class _Machine:
    """The memories of one run (``act`` with a batch axis) and the engines acting on them."""

    def __init__(self, program, config: AcceleratorConfig, act: np.ndarray):
        self.program = program
        self.lanes = config.rows
        self.acc_depth = config.acc_memory_depth
        self.act = act
        self.wgt = program.images.wgt.astype(np.float64)
        self.prm = program.images.prm
        self.lut = program.images.lut

    # -- MATMUL ------------------------------------------------------------------------------------------

    def _tile(self, ins: isa.Instruction, j: int, t: np.ndarray) -> np.ndarray:
        """Tiles (j, t) for an array of steps t: [len(t), L, L]."""
        lanes = self.lanes
        index = np.zeros_like(t) if ins.w_shared else j * ins.taps + t
        rows = ins.w_base + index[:, None] * lanes + np.arange(lanes)
        if rows.size and rows.max() >= self.wgt.shape[0]:
            raise SystolixError(f"instruction of layer {ins.layer} reads wgt row {int(rows.max())} beyond the memory")
        return self.wgt[rows]

    def _spatial(self, ins: isa.Instruction, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixel offset ``iy*in_w + ix`` and validity per (window tap, output pixel)."""
        oy, ox = np.divmod(pixels, ins.out_w)
        ky, kx = np.divmod(np.arange(ins.k_h * ins.k_w), ins.k_w)
        iy = oy[None] * ins.stride_h - ins.pad_top + ky[:, None] * ins.dil_h
        ix = ox[None] * ins.stride_w - ins.pad_left + kx[:, None] * ins.dil_w
        valid = (iy >= 0) & (iy < ins.in_h) & (ix >= 0) & (ix < ins.in_w)
        return np.where(valid, iy * ins.in_w + ix, 0), valid

    def _rows(self, ins: isa.Instruction, j: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """act row and validity for every (step t, pixel): [taps, P]."""
        hw = ins.in_h * ins.in_w
        if ins.mode == Mode.DENSE:
            t = np.arange(ins.taps)
            return (ins.in_base + t)[:, None], np.ones((ins.taps, 1), dtype=bool)
        sp, valid = self._spatial(ins, pixels)
        if ins.mode == Mode.DEPTHWISE:
            if ins.taps != ins.k_h * ins.k_w:
                raise SystolixError(f"DEPTHWISE instruction of layer {ins.layer}: taps {ins.taps} != k_h*k_w")
            return ins.in_base + j * hw + sp, valid
        if ins.taps != ins.k_h * ins.k_w * ins.in_blocks:
            raise SystolixError(f"CONV instruction of layer {ins.layer}: taps {ins.taps} != k_h*k_w*in_blocks")
        cbi = np.arange(ins.in_blocks)
        rows = ins.in_base + cbi[None, :, None] * hw + sp[:, None, :]  # t = kpos*in_blocks + cbi
        return rows.reshape(ins.taps, -1), np.repeat(valid, ins.in_blocks, axis=0)

    def matmul(self, ins: isa.Instruction) -> None:
        lanes, act = self.lanes, self.act
        n = act.shape[0]
        out_h, out_w = (1, 1) if ins.mode == Mode.DENSE else (ins.out_h, ins.out_w)
        if ins.chunk_rows < 1 or ins.chunk_rows * out_w > self.acc_depth:
            raise SystolixError(f"instruction of layer {ins.layer}: chunk of {ins.chunk_rows} rows x {out_w} pixels "
                                f"does not fit the accumulator memory ({self.acc_depth})")
        steps = np.arange(ins.taps)
        x_all = act.astype(np.float64) - ins.x_zp
        for j in range(ins.out_blocks):
            tiles = self._tile(ins, j, steps).reshape(ins.taps * lanes, lanes)
            chans = params.unpack_row(self.prm[ins.p_base + j], lanes)
            bias = np.array([c.bias for c in chans], dtype=np.int64)
            for first in range(0, out_h, ins.chunk_rows):
                pixels = np.arange(first * out_w, min(out_h, first + ins.chunk_rows) * out_w)
                rows, valid = self._rows(ins, j, pixels)
                x = x_all[:, rows] * valid[None, :, :, None]  # [N, taps, P, L]; outside the input adds 0
                x = x.transpose(0, 2, 1, 3).reshape(n * len(pixels), ins.taps * lanes)
                acc = _wrap32((x @ tiles).round().astype(np.int64) + bias)
                q = requantize_lanes(acc, chans).reshape(n, len(pixels), lanes)
                oy, ox = np.divmod(pixels, out_w)
                act[:, ins.out_base + (j * out_h + oy) * out_w + ox] = q.astype(np.int8)

    # -- vector unit -----------------------------------------------------------------------------------------

    def maxpool(self, ins: isa.Instruction) -> None:
        pixels = np.arange(ins.out_h * ins.out_w)
        sp, valid = self._spatial(ins, pixels)
        if not valid.any(axis=0).all():
            raise SystolixError(f"MAXPOOL of layer {ins.layer}: a window has no valid cell")
        hw_in, hw_out = ins.in_h * ins.in_w, ins.out_h * ins.out_w
        for cb in range(ins.out_blocks):
            x = self.act[:, ins.in_base + cb * hw_in + sp].astype(np.int16)  # [N, k, P, L]
            x = np.where(valid[None, :, :, None], x, np.int16(-32768))
            self.act[:, ins.out_base + cb * hw_out + pixels] = x.max(axis=1).astype(np.int8)

    def lookup(self, ins: isa.Instruction) -> None:
        x = self.act[:, ins.in_base : ins.in_base + ins.rows].astype(np.int64)
        index = ins.lut_base + x + 128
        lanes = np.arange(self.lanes)
        self.act[:, ins.out_base : ins.out_base + ins.rows] = self.lut[index, lanes]

    def _operands(self, ins: isa.Instruction) -> tuple[np.ndarray, np.ndarray]:
        """The rows of an ADD / MUL: ``in_base + i`` and ``in2_base + i`` (``bcast``: ``+ i // (in_h*in_w)``)."""
        i = np.arange(ins.rows)
        b_rows = ins.in2_base + (i // (ins.in_h * ins.in_w) if ins.bcast else i)
        return self.act[:, ins.in_base + i], self.act[:, b_rows]

    def add(self, ins: isa.Instruction) -> None:
        a, b = self._operands(ins)
        out = add_arith.qadd_model(a, b, _add_images(add_arith, self.program.images, ins))
        self.act[:, ins.out_base : ins.out_base + ins.rows] = np.asarray(out).astype(np.int8)

    def resize(self, ins: isa.Instruction) -> None:
        """Each output pixel copies the input pixel the instruction's runs give (``vector_engine`` docstring)."""
        def walk(first: int, factor: int, length_in: int, length_out: int) -> np.ndarray:
            o = np.arange(length_out)
            return np.minimum(length_in - 1, np.where(o < first, 0, 1 + (o - first) // max(factor, 1)))

        iy = walk(ins.k_h, ins.stride_h, ins.in_h, ins.out_h)
        ix = walk(ins.k_w, ins.stride_w, ins.in_w, ins.out_w)
        pixels = (iy[:, None] * ins.in_w + ix[None, :]).reshape(-1)
        for cb in range(ins.out_blocks):
            rows = ins.in_base + cb * ins.in_h * ins.in_w + pixels
            out = ins.out_base + cb * ins.out_h * ins.out_w + np.arange(ins.out_h * ins.out_w)
            self.act[:, out] = self.act[:, rows]

    def mul(self, ins: isa.Instruction) -> None:
        a, b = self._operands(ins)
        out = mul_arith.qmul_model(a, b, mul_arith.unpack_mul_params(int(self.program.images.prm[ins.p_base])))
        self.act[:, ins.out_base : ins.out_base + ins.rows] = np.asarray(out).astype(np.int8)


def _add_images(add_arith, images, ins: isa.Instruction):
    """The ADD unit's constants and table as the hardware sees them: prm row ``p_base``, addtab from ``lut_base``."""
    word = images.prm[ins.p_base]
    table = np.asarray(images.addtab[ins.lut_base : ins.lut_base + 256], dtype=np.int64)
    bits = add_arith.VALUE_BITS
    value = table & ((1 << bits) - 1)
    value = np.where(value >= 1 << (bits - 1), value - (1 << bits), value)
    sticky = (table >> bits) & 1
    return add_arith.AddImages(params=add_arith.unpack_add_params(word), prm_row=word, value=value, sticky=sticky,
                               table=table)


def run_program(program, config: AcceleratorConfig, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a compiled program on a batch of inputs with the functional model.

    Parameters
    ----------
    program : Program
        From :func:`systolix.compiler.compile.compile_model`.
    config : AcceleratorConfig
        The configuration it was compiled for.
    inputs : dict
        Graph input name -> codes ``[N, ...]`` (IR shape with the batch first).

    Returns
    -------
    dict
        Tensor name -> codes ``[N, ...]``: the graph inputs, the host-transformed tensors, and every tensor
        still intact in ``act`` after the run (all of them for a ``keep_all`` program; always the outputs);
        not the compiler's own im2col tensors.
    """
    if config.hardware_dict != program.config.hardware_dict:
        raise SystolixError("run_program: the configuration differs from the one the program was compiled for")
    missing = [name for name in program.inputs if name not in inputs]
    if missing:
        raise SystolixError(f"run_program: missing input(s) {missing}")
    host = program.host_inputs({k: np.asarray(v) for k, v in inputs.items()})
    n = len(next(iter(host.values())))
    act = np.zeros((n, program.config.act_buffer_depth, program.config.rows), np.int8)
    for name, value in host.items():
        p = program.tensors.get(name)
        if p is not None and p.layout == "channel-blocked":
            act[:, p.base : p.base + p.rows] = write_tensor(p, value)
    machine = _Machine(program, config, act)
    engines = {Opcode.MATMUL: machine.matmul, Opcode.MAXPOOL: machine.maxpool, Opcode.LUT: machine.lookup,
               Opcode.ADD: machine.add, Opcode.MUL: machine.mul, Opcode.RESIZE: machine.resize}
    for word in program.images.prog:
        ins = isa.decode(word)
        if ins.opcode == Opcode.HALT:
            break
        engines[ins.opcode](ins)
    else:
        raise SystolixError("the program ran past its last instruction without HALT")
    internal = program.internal_tensors
    result = {name: value for name, value in host.items() if name not in internal}
    for name, p in program.tensors.items():
        if name in program.readable and name not in result and name not in internal:
            result[name] = read_tensor(p, act)
    return result
