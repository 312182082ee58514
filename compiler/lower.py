"""Lowering: one integer IR layer -> one instruction's fields and its memory contents.

Each ``lower_*`` function gets the layer and the placements of its input(s) and output, and returns a
:class:`Lowered`: the instruction fields that do not depend on where the weights, parameters and tables
end up (``compile.py`` fills ``w_base``, ``p_base``, ``lut_base``), plus the weight tiles, ``prm`` rows
and table rows to place.

Requantization parameters are formed exactly as the golden model forms them
(:mod:`systolix.quantize.golden_model`): QLinearConv / QLinearMatMul scale, QGemm's alpha formula, the
global-average-pool scale; then split into the integer ``M * 2**-E`` of the requantizer.
"""

from __future__ import annotations

import dataclasses
import itertools
import weakref

import numpy as np

from systolix.arch import add_arith, mul_arith
from systolix.arch.isa import Mode, Opcode
from systolix.arch.params import ChannelParams
from systolix.errors import SystolixError
from systolix.frontend import ir
from systolix.quantize import requant
from systolix.quantize.average_pool_sum import average_pool_scales
from systolix.quantize.golden.table import unary_table
from systolix.quantize.table_affine import AffineFit, fit_affine_tables

from .images import channel_rows, conv_tiles, dense_tiles, depthwise_tiles, lut_rows, to_int8
from .layout import TensorPlacement

__all__ = ["Lowered", "average_pool_refusal", "channel_lookup_fit", "input_zero_point", "lower_add",
           "lower_average_pool", "lower_channel_lookup", "lower_conv", "lower_dense", "lower_gap", "lower_lookup",
           "lower_maxpool"]


@dataclasses.dataclass
class Lowered:
    """One layer's instruction fields (bases of wgt/prm/lut excluded) and memory contents."""

    fields: dict
    tiles: np.ndarray | None = None  # int8 [rows, L] for wgt
    prm: list[int] = dataclasses.field(default_factory=list)
    lut: np.ndarray | None = None  # int8 [256*k, L]
    addtab: np.ndarray | None = None
    note: str = ""


def _window_fields(layer: ir._Window) -> dict:
    """k/stride/pad/dilation fields (1D windows as H = 1)."""
    if layer.spatial_dims == 1:
        return dict(k_h=1, k_w=layer.kernel[0], stride_h=1, stride_w=layer.strides[0], pad_top=0,
                    pad_left=layer.pads[0], dil_h=1, dil_w=layer.dilations[0])
    return dict(k_h=layer.kernel[0], k_w=layer.kernel[1], stride_h=layer.strides[0], stride_w=layer.strides[1],
                pad_top=layer.pads[0], pad_left=layer.pads[1], dil_h=layer.dilations[0], dil_w=layer.dilations[1])


def _io_fields(x: TensorPlacement, y: TensorPlacement) -> dict:
    return dict(in_blocks=x.blocks, in_h=x.h, in_w=x.w, out_blocks=y.blocks, out_h=y.h, out_w=y.w)


def input_zero_point(layer: ir.Layer, x: TensorPlacement) -> int:
    """The zero point a reduction layer subtracts from its input, as the hardware sees it (int8 storage).

    It is the layer's own input quantization (QLinearConv's / QLinearMatMul's / QGemm's ``x_zero_point``,
    QLinearGlobalAveragePool's), not the zero point recorded for the rows it reads: a tensor is only codes,
    and its placement may belong to another tensor (the producer of a Flatten/Reshape the layer reads
    through) whose quantization is unknown, for instance a MaxPool on the graph input, or that another
    consumer reads with a different zero point. Only the storage's uint8 shift comes from the placement.

    Parameters
    ----------
    layer : ir.Layer
        A Conv, Dense or average-pool layer (``x_quant`` per tensor).
    x : TensorPlacement
        Where its input's codes are stored.

    Returns
    -------
    int
        ``x_zero_point - x.shift``.

    Raises
    ------
    SystolixError
        If the layer's input type differs from the stored tensor's.
    """
    q = getattr(layer, "x_quant", None)
    if q is None:
        return x.stored_zero_point
    if q.dtype != x.dtype:
        raise SystolixError(f"layer {layer.name} ({layer.op}) reads {x.name!r} as {q.dtype} but it is stored as "
                            f"{x.dtype}")
    return int(np.asarray(q.zero_point).reshape(-1)[0]) - x.shift


def _symmetric_weights(layer: ir.Layer, w: np.ndarray, q: ir.QuantParams) -> np.ndarray:
    """Weights minus their zero point, as int8; only symmetric weights (int8 zp 0, uint8 zp 128) are accepted."""
    zp = np.asarray(q.zero_point, dtype=np.int64).reshape(-1)
    expected = 128 if q.dtype == "uint8" else 0
    if np.any(zp != expected):
        bad = sorted({int(z) for z in zp if z != expected})[:4]
        raise SystolixError(
            f"layer {layer.name} ({layer.op}): its {q.dtype} weights have zero point(s) {bad}; the accelerator "
            f"needs symmetric weights ({q.dtype} zero point {expected}); quantize with symmetric int8 weights "
            "(the default of systolix quantize)")
    return to_int8(np.asarray(w, dtype=np.int64) - expected, f"layer {layer.name}")


def _out_range(layer: ir.Layer, y: ir.QuantParams) -> tuple[int, int]:
    lo, hi = y.qmin, y.qmax
    clamp = getattr(layer, "clamp", None)
    if clamp is not None:
        lo, hi = max(lo, int(clamp[0])), min(hi, int(clamp[1]))
    return lo, hi


def channel_params(layer: ir.Layer, scale: np.ndarray, bias: np.ndarray | None, count: int, y: TensorPlacement,
              lo: int, hi: int, lanes: int) -> list[int]:
    """prm rows for ``count`` output channels (scale one or per channel)."""
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32).reshape(-1), (count,))
    try:
        mant, exp, zps = requant.requant_constants(scale, y.zero_point, 0 if y.dtype == "uint8" else -128)
    except SystolixError as e:
        raise SystolixError(f"layer {layer.name}: {e}") from None
    if np.unique(zps).size > 1:
        inf = [int(c) for c in np.nonzero(np.isinf(scale))[0]][:6]
        raise SystolixError(
            f"layer {layer.name}: the requantization scale overflows float32 to +inf on output channel(s) "
            f"{inf} but not on all; onnxruntime then outputs qmin for a zero accumulator, which needs a "
            "per-channel output zero point the accelerator does not have (quantize with finite scales)")
    # A scale >= 2**24 (E < 0) can be given as E = 0: every non-zero accumulator saturates either way.
    exp = np.maximum(exp, 0)
    b = np.zeros(count, dtype=np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
    s = y.shift
    chans = [ChannelParams(bias=int(b[c]), m=int(mant[c]), e=int(exp[c]), zp=int(zps[c]) - s, lo=lo - s, hi=hi - s)
             for c in range(count)]
    zp = y.zero_point - s
    pad = ChannelParams(bias=0, m=1 << 23, e=0, zp=zp, lo=zp, hi=zp)  # lanes past C: always the zero point
    return channel_rows(chans, lanes, pad)


def chunk_rows(layer: ir.Layer, out_h: int, out_w: int, acc_depth: int) -> int:
    if out_w > acc_depth:
        raise SystolixError(
            f"layer {layer.name} needs an accumulator memory of at least {out_w:,} rows (one output row of "
            f"{out_w:,} pixels) but acc_memory_depth is {acc_depth:,}; use acc_memory_depth >= {out_w:,}")
    return min(out_h, acc_depth // out_w)


def lower_conv(layer: ir.Conv, x: TensorPlacement, y: TensorPlacement, lanes: int, acc_depth: int) -> Lowered:
    """Conv 1D/2D: DEPTHWISE when groups == C == M, else CONV with block-diagonal tiles for groups."""
    w = _symmetric_weights(layer, layer.weight, layer.w_quant)
    w4 = w[:, :, None, :] if layer.spatial_dims == 1 else w
    m, c = layer.weight.shape[0], layer.in_shapes[0][1]
    if layer.group > 1 and layer.group == c == m:
        tiles, taps = depthwise_tiles(w4, lanes)
        mode, note = Mode.DEPTHWISE, "depthwise"
    else:
        tiles, taps = conv_tiles(w4, layer.group, lanes)
        mode, note = Mode.CONV, "conv" if layer.group == 1 else f"grouped conv ({layer.group} groups)"
    x_q, w_q, y_q = layer.x_quant, layer.w_quant, layer.y_quant
    scale = requant.output_scale(x_q.scale, w_q.scale, y_q.scale)
    lo, hi = _out_range(layer, y_q)
    fields = dict(opcode=Opcode.MATMUL, mode=mode, **_io_fields(x, y), **_window_fields(layer), taps=taps,
                  chunk_rows=chunk_rows(layer, y.h, y.w, acc_depth), x_zp=input_zero_point(layer, x))
    return Lowered(fields, tiles=tiles.astype(np.int8),
                   prm=channel_params(layer, scale, layer.bias, m, y, lo, hi, lanes), note=note)


def lower_dense(layer: ir.Dense, x: TensorPlacement, y: TensorPlacement, lanes: int) -> Lowered:
    """Dense: DENSE, every input row a reduction step; weights permuted to the input's stored layout."""
    if len(layer.in_shapes[0]) != 2:
        raise SystolixError(f"layer {layer.name} ({layer.op}): a Dense layer with input {list(layer.in_shapes[0])} "
                            f"(leading dimensions besides the batch) is not supported by the accelerator")
    w = _symmetric_weights(layer, layer.weight, layer.w_quant)
    tiles, taps = dense_tiles(w, (x.channels, x.h, x.w), lanes)
    x_q, w_q, y_q = layer.x_quant, layer.w_quant, layer.y_quant
    if layer.op == "QGemm":
        scale = requant.qgemm_output_scale(layer.alpha, x_q.scale, w_q.scale, y_q.scale)
    else:
        scale = requant.output_scale(x_q.scale, w_q.scale, y_q.scale)
    lo, hi = _out_range(layer, y_q)
    fields = dict(opcode=Opcode.MATMUL, mode=Mode.DENSE, **_io_fields(x, y), k_h=1, k_w=1, stride_h=1, stride_w=1,
                  dil_h=1, dil_w=1, taps=taps, chunk_rows=1, x_zp=input_zero_point(layer, x))
    note = "dense" if (x.h, x.w) == (1, 1) else f"dense, weights permuted to the {x.channels}x{x.h}x{x.w} layout"
    return Lowered(fields, tiles=tiles.astype(np.int8),
                   prm=channel_params(layer, scale, layer.bias, layer.weight.shape[1], y, lo, hi, lanes), note=note)


def is_global_average(layer: ir.AveragePool) -> bool:
    """True when the pool covers the whole input with no padding (onnxruntime's integer GAP path)."""
    return tuple(layer.kernel) == tuple(layer.in_shapes[0][2:]) and not any(layer.pads)


def lower_gap(layer: ir.GlobalAveragePool | ir.AveragePool, x: TensorPlacement, y: TensorPlacement,
              lanes: int) -> Lowered:
    """Global average pool: DEPTHWISE over the whole input with one shared identity tile (all-ones weights).

    The array computes ``sum(x - x_zp)`` = onnxruntime's ``sum(x) - x_zp * HW``; the scale is
    ``f32(x_s / f32(y_s * f32(HW)))``, the bias 0.
    """
    hw = x.h * x.w
    if hw >= 1 << 24:
        raise SystolixError(f"layer {layer.name}: global average pool over {hw} elements: onnxruntime refuses 2**24")
    scale = requant.gap_output_scale(layer.x_quant.scale, layer.y_quant.scale, hw)
    if not 2.0**-32 <= float(scale[0]) < 256.0:
        raise SystolixError(f"layer {layer.name}: global average pool scale {float(scale[0])!r} is outside "
                            f"[2**-32, 256): onnxruntime refuses it")
    y_q = layer.y_quant
    fields = dict(opcode=Opcode.MATMUL, mode=Mode.DEPTHWISE, **_io_fields(x, y), k_h=x.h, k_w=x.w, stride_h=1,
                  stride_w=1, dil_h=1, dil_w=1, taps=hw, chunk_rows=1, x_zp=input_zero_point(layer, x), w_shared=1)
    tile = np.eye(lanes, dtype=np.int8)
    return Lowered(fields, tiles=tile,
                   prm=channel_params(layer, scale, None, x.channels, y, y_q.qmin, y_q.qmax, lanes),
                   note=f"global average pool as depthwise with one shared all-ones tile, {hw} taps")


@dataclasses.dataclass(frozen=True)
class _PoolAxis:
    """One spatial axis of an average pool: input size, kernel, stride, begin padding, output size, and the
    number of valid cells of each output position's window (clipped to the input, as onnxruntime does)."""

    size: int
    kernel: int
    stride: int
    pad: int
    out: int
    cells: tuple[int, ...]


def _pool_axes(layer: ir.AveragePool) -> tuple[_PoolAxis, _PoolAxis]:
    """(rows, columns) of the pool; a 1D pool runs along the rows (its length as H, W = 1: the same ``act``
    rows as its H = 1 storage), so that its border positions are row bands."""
    nsp = layer.spatial_dims
    size, out = layer.in_shapes[0][2:], layer.out_shape[2:]
    axes = []
    for i in range(nsp):
        k, s, p = int(layer.kernel[i]), int(layer.strides[i]), int(layer.pads[i])
        start = np.arange(int(out[i])) * s - p
        cells = np.minimum(start + k, int(size[i])) - np.maximum(start, 0)
        axes.append(_PoolAxis(int(size[i]), k, s, p, int(out[i]), tuple(int(c) for c in cells)))
    if nsp == 1:
        axes.append(_PoolAxis(1, 1, 1, 0, 1, (1,)))
    return axes[0], axes[1]


def _pool_divisors(layer: ir.AveragePool, rows: _PoolAxis, cols: _PoolAxis) -> np.ndarray:
    """[out rows, out columns] of (valid cells, divisor)."""
    cells = np.outer(rows.cells, cols.cells)
    divisor = np.full_like(cells, rows.kernel * cols.kernel) if layer.count_include_pad else cells
    return np.stack([cells, divisor], axis=-1)


def _pool_scales(layer: ir.AveragePool) -> dict[int, np.float32]:
    rows, cols = _pool_axes(layer)
    pairs = {(int(n), int(d)) for n, d in _pool_divisors(layer, rows, cols).reshape(-1, 2)}
    x_q, y_q = layer.x_quant, layer.y_quant
    return average_pool_scales(x_q.scale, int(x_q.zero_point), (x_q.qmin, x_q.qmax), y_q.scale, int(y_q.zero_point),
                               (y_q.qmin, y_q.qmax), pairs, layer=f"layer {layer.name}")


def average_pool_refusal(layer: ir.AveragePool) -> str | None:
    """Why a (non-global) average pool cannot run on the accelerator, or None.

    It runs as window sums on the array (depthwise, one shared all-ones tile) and the requantizer, with one
    scale per divisor (:mod:`systolix.quantize.average_pool_sum`); output rows with different divisors are
    separate instructions (row bands), but the parameters are per channel, so a divisor may not change from
    column to column. A float model's pool is checked once it is quantized.
    """
    if any(int(d) != 1 for d in layer.dilations):
        return "an average pool with dilation is not supported (onnxruntime's QLinearAveragePool has none)"
    rows, cols = _pool_axes(layer)
    if min(rows.cells) < 1 or min(cols.cells) < 1:
        return "an average-pool window lies entirely in the padding"
    if not layer.count_include_pad and len(set(cols.cells)) > 1:
        return ("with count_include_pad=0 and padding or partial windows along the width, the divisor changes "
                f"from column to column ({sorted(set(cols.cells))} valid cells); the requantizer has one scale per "
                "channel, so only row bands can have their own divisor (1D pools and pools padded only along the "
                "height run on the accelerator)")
    if layer.x_quant is None or layer.y_quant is None:
        return None
    try:
        _pool_scales(layer)
    except SystolixError as e:
        return str(e).removeprefix(f"layer {layer.name}: ")
    return None


def lower_average_pool(layer: ir.AveragePool, x: TensorPlacement, y: TensorPlacement, lanes: int,
                       acc_depth: int) -> list[Lowered]:
    """Average pool: DEPTHWISE window sums with one shared all-ones tile, requantized with each divisor's scale.

    The array sums ``x - x_zp`` over the valid cells (padding cells add 0), which onnxruntime's float32
    average reproduces exactly once :func:`average_pool_refusal` has passed. Output rows are cut into bands
    of one divisor; with a single band one instruction covers every channel block, else each (band, channel
    block) is an instruction reading its rows (``in_base``, ``pad_top`` and ``in_h`` shifted to the band).
    """
    why = average_pool_refusal(layer)
    if why is not None:
        raise SystolixError(f"layer {layer.name} ({layer.op}): {why}")
    rows, cols = _pool_axes(layer)
    scales = _pool_scales(layer)
    divisor = _pool_divisors(layer, rows, cols)[:, 0, 1]
    bands, start = [], 0
    for oy in range(1, rows.out + 1):
        if oy == rows.out or divisor[oy] != divisor[start]:
            bands.append((start, oy, int(divisor[start])))
            start = oy
    y_q = layer.y_quant
    base = dict(opcode=Opcode.MATMUL, mode=Mode.DEPTHWISE, in_w=cols.size, out_w=cols.out, k_h=rows.kernel,
                k_w=cols.kernel, stride_h=rows.stride, stride_w=cols.stride, pad_left=cols.pad, dil_h=1, dil_w=1,
                taps=rows.kernel * cols.kernel, x_zp=input_zero_point(layer, x), w_shared=1)
    tile = np.eye(lanes, dtype=np.int8)
    kind = "1D average pool (along the rows)" if layer.spatial_dims == 1 else "average pool"
    parts = []
    for first, stop, d in bands:
        prm = channel_params(layer, scales[d], None, x.channels, y, y_q.qmin, y_q.qmax, lanes)
        height = stop - first
        chunk = chunk_rows(layer, height, cols.out, acc_depth)
        note = (f"{kind} as depthwise window sums with one shared all-ones tile, divisor {d}"
                + ("" if len(bands) == 1 else f", output rows {first}..{stop - 1}"))
        if len(bands) == 1:
            fields = dict(base, in_blocks=x.blocks, in_h=rows.size, out_blocks=y.blocks, out_h=rows.out,
                          pad_top=rows.pad, chunk_rows=chunk)
            parts.append(Lowered(fields, tiles=tile, prm=prm, note=note))
            continue
        top = first * rows.stride - rows.pad  # first input row of the band's first window
        skip = max(top, 0)
        for cb in range(x.blocks):
            fields = dict(base, in_blocks=1, in_h=rows.size - skip, out_blocks=1, out_h=height,
                          pad_top=max(-top, 0), chunk_rows=chunk,
                          in_base=x.base + (cb * rows.size + skip) * cols.size,
                          out_base=y.base + (cb * rows.out + first) * cols.out)
            parts.append(Lowered(fields, tiles=tile, prm=[prm[cb]], note=f"{note}, channel block {cb}"))
    return parts


def lower_maxpool(layer: ir.MaxPool, x: TensorPlacement, y: TensorPlacement) -> Lowered:
    """MaxPool: the vector unit's MAXPOOL (padding cells ignored)."""
    f = _window_fields(layer)
    for size, k, s, p, d, out in ((x.h, f["k_h"], f["stride_h"], f["pad_top"], f["dil_h"], y.h),
                                  (x.w, f["k_w"], f["stride_w"], f["pad_left"], f["dil_w"], y.w)):
        for o in range(out):
            if not any(0 <= o * s - p + i * d < size for i in range(k)):
                raise SystolixError(f"layer {layer.name}: a max-pool window lies entirely in the padding")
    return Lowered(dict(opcode=Opcode.MAXPOOL, **_io_fields(x, y), **f), note="max pool")


def lower_lookup(layer: ir.Lookup, x: TensorPlacement, y: TensorPlacement, lanes: int) -> Lowered:
    """Lookup: a 256-row table, row ``code + 128`` (int8 storage codes in and out)."""
    table = np.asarray(layer.table, dtype=np.int64) - y.shift
    return Lowered(dict(opcode=Opcode.LUT, rows=x.rows), lut=lut_rows(table, lanes), note=f"table ({layer.func})")


def channel_lookup_fit(layer: ir.ChannelLookup) -> AffineFit:
    """Each channel's table as ``requantize(w*(x - x_zp) + b)`` (:mod:`systolix.quantize.table_affine`); raises
    with the channel that has none."""
    cached = _FITS.get(layer)
    if cached is not None:
        return cached
    x_q, y_q = layer.x_quant, layer.y_quant
    fit = fit_affine_tables(layer.tables, int(x_q.zero_point), (x_q.qmin, x_q.qmax), np.asarray(layer.slope),
                            int(y_q.zero_point), (y_q.qmin, y_q.qmax), layer=f"layer {layer.name}")
    _FITS[layer] = fit
    return fit


_FITS: weakref.WeakKeyDictionary[ir.ChannelLookup, AffineFit] = weakref.WeakKeyDictionary()


def channel_lookup_affine(layer: ir.ChannelLookup) -> bool:
    """True when every channel's table is a requantized affine map (:func:`channel_lookup_fit`): the layer runs on
    the array; else on the vector unit with one table per lane (:func:`lower_channel_lookup`)."""
    try:
        channel_lookup_fit(layer)
    except SystolixError:
        return False
    return True


def lower_channel_lookup(layer: ir.ChannelLookup, x: TensorPlacement, y: TensorPlacement, lanes: int,
                         acc_depth: int) -> Lowered | list[Lowered]:
    """Per-channel tables.

    When every table is a requantized affine map (a constant added or multiplied), a DEPTHWISE pass (below);
    else (PRelu with one slope per channel, or a table the search does not fit) the vector unit's LUT, one
    instruction per channel block: the ``lut`` memory has one column per lane, and lane ``l`` of block ``cb``
    reads its own column, which holds channel ``cb*L + l``'s table (padding lanes: the output zero point). Each
    block takes 256 ``lut`` rows (identical blocks are stored once).

    The DEPTHWISE pass with weight ``w[c]``, bias ``b[c]`` and scale ``s[c]`` such that the
    requantizer gives every entry of channel ``c``'s table (:func:`channel_lookup_fit`). A weight above 127 is
    split over ``k_h`` taps of dilation 0, which all read the output pixel's own input pixel."""
    if not channel_lookup_affine(layer):
        return _lane_tables(layer, x, y, lanes)
    fit = channel_lookup_fit(layer)
    channels = int(layer.out_shape[1])
    tiles, taps = depthwise_tiles(fit.weight.reshape(channels, 1, fit.taps, 1), lanes)
    y_q = layer.y_quant
    fields = dict(opcode=Opcode.MATMUL, mode=Mode.DEPTHWISE, **_io_fields(x, y), k_h=fit.taps, k_w=1, stride_h=1,
                  stride_w=1, pad_top=0, pad_left=0, dil_h=0, dil_w=1, taps=taps,
                  chunk_rows=chunk_rows(layer, y.h, y.w, acc_depth), x_zp=input_zero_point(layer, x))
    return Lowered(fields, tiles=tiles.astype(np.int8),
                   prm=channel_params(layer, fit.scale, fit.bias, channels, y, y_q.qmin, y_q.qmax, lanes),
                   note=f"{channels} per-channel tables as a requantized depthwise pass (w*(x - zp) + b), "
                        f"{fit.taps} tap(s) of dilation 0")


def _lane_tables(layer: ir.ChannelLookup, x: TensorPlacement, y: TensorPlacement, lanes: int) -> list[Lowered]:
    channels = int(layer.out_shape[1])
    tables = np.full((x.blocks * lanes, 256), y.stored_zero_point, dtype=np.int64)
    tables[:channels] = np.asarray(layer.tables, dtype=np.int64) - y.shift
    hw = x.h * x.w
    parts = []
    for cb in range(x.blocks):
        lut = tables[cb * lanes : (cb + 1) * lanes].T.astype(np.int8)
        fields = dict(opcode=Opcode.LUT, rows=hw, in_base=x.base + cb * hw, out_base=y.base + cb * hw)
        parts.append(Lowered(fields, lut=lut, note=f"per-channel tables of channels {cb * lanes}.."
                                                   f"{min(channels, (cb + 1) * lanes) - 1}, one per lane"))
    return parts


def channel_broadcast(layer: ir.Layer) -> int | None:
    """For a two-input elementwise layer: None when both inputs have the output's shape, else the index (0 or
    1) of the input that is one value per channel (``[N, C, 1, 1]`` against ``[N, C, H, W]``: the
    squeeze-and-excite broadcast). Raises for any other broadcasting."""
    shapes = [tuple(int(d) for d in s) for s in layer.in_shapes]
    out = tuple(int(d) for d in layer.out_shape)
    if shapes[0] == shapes[1] == out:
        return None
    for small in (0, 1):
        if (shapes[1 - small] == out and len(out) >= 3
                and shapes[small] == (*out[:2], *([1] * (len(out) - 2)))):
            return small
    raise SystolixError(f"layer {layer.name} ({layer.op}): broadcasting {list(shapes[0])} with {list(shapes[1])} is "
                        "not supported by the accelerator (only the same shape, or [N, C, 1, 1] against [N, C, H, W])")


def _broadcast_fields(layer: ir.Layer, a: TensorPlacement, b: TensorPlacement) -> tuple[dict, int]:
    """Instruction fields of a two-operand vector instruction, and the index of the input read as its first
    operand (the full-size one: the second is the one read once per channel block when broadcasting)."""
    small = channel_broadcast(layer)
    if small is None:
        return dict(rows=a.rows), 0
    full, part = (a, b) if small == 1 else (b, a)
    return dict(rows=full.rows, in_base=full.base, in2_base=part.base, bcast=1, in_h=full.h, in_w=full.w), 1 - small


def lower_add(layer: ir.Add, a: TensorPlacement, b: TensorPlacement, y: TensorPlacement, variant: str) -> Lowered:
    """Add of two tensors: the vector unit's ADD with tables from :mod:`systolix.arch.add_arith`.

    Same shape, or (``avx2`` only) one input one value per channel: onnxruntime then runs the per-channel
    operand as the kernel's scalar B with the full-size one as A, whichever input it is, and the avx2 kernel's
    scalar-B form is its general form (``quantize/golden/qlinear_add.py``); the sse2 scalar-B form rounds in
    another order, which the ADD unit does not compute.
    """
    fields, first = _broadcast_fields(layer, a, b)
    quants = (layer.a_quant, layer.b_quant) if first == 0 else (layer.b_quant, layer.a_quant)
    if fields.get("bcast") and variant != "avx2":
        raise SystolixError(f"layer {layer.name} ({layer.op}): a broadcast Add ({list(layer.in_shapes[0])} + "
                            f"{list(layer.in_shapes[1])}) runs onnxruntime's {variant} scalar-operand kernel, which "
                            "the ADD unit does not reproduce (only avx2's)")
    single = int(np.prod(layer.out_shape)) == 1  # onnxruntime swaps the operands of a one-element add
    try:
        images = add_arith.add_images(*quants, layer.y_quant, variant, swap=single)
    except SystolixError as e:
        raise SystolixError(f"layer {layer.name} ({layer.op}): {e}") from None
    what = "per-channel broadcast add" if fields.get("bcast") else "residual add"
    return Lowered(dict(opcode=Opcode.ADD, **fields), prm=[int(images.prm_row)],
                   addtab=np.asarray(images.table, dtype=np.int64), note=f"{what} ({variant} QLinearAdd in integers)")


def lower_mul(layer: ir.Mul, a: TensorPlacement, b: TensorPlacement, y: TensorPlacement) -> Lowered:
    """Product of two tensors (same shape, or one of them one value per channel): the vector unit's MUL with
    the constants of :mod:`systolix.arch.mul_arith` (QLinearMul is symmetric, so the per-channel operand is
    always read second)."""
    fields, first = _broadcast_fields(layer, a, b)
    quants = (layer.a_quant, layer.b_quant) if first == 0 else (layer.b_quant, layer.a_quant)
    try:
        params = mul_arith.mul_params(*quants, layer.y_quant)
    except SystolixError as e:
        raise SystolixError(f"layer {layer.name} ({layer.op}): {e}") from None
    what = "per-channel gate (squeeze-and-excite)" if fields.get("bcast") else "elementwise product"
    return Lowered(dict(opcode=Opcode.MUL, **fields), prm=[int(mul_arith.pack_mul_params(params))],
                   note=f"{what}, QLinearMul in integers")


def resize_runs(index_map: tuple[int, ...], length_in: int) -> tuple[int, int]:
    """``(first, step)`` of a nearest map as the RESIZE instruction walks it: input coordinate 0 for the first
    ``first`` outputs, then one more every ``step`` outputs (the factor, or e.g. 5 for ``align_corners`` from 4
    to 16), stopping at ``length_in - 1``. Raises when the map is not of that form or the counts do not fit the
    instruction's fields."""
    runs = [sum(1 for _ in group) for _, group in itertools.groupby(index_map)]
    first, step = runs[0], (runs[1] if len(runs) > 1 else 1)
    walked = tuple(min(length_in - 1, 0 if o < first else 1 + (o - first) // step) for o in range(len(index_map)))
    if walked != tuple(index_map) or not 1 <= first <= 255 or not 1 <= step <= 15:
        raise SystolixError(f"a nearest map {list(index_map)[:12]}{'...' if len(index_map) > 12 else ''} that the "
                            "RESIZE instruction cannot walk (from input coordinate 0, a first run of 1-255 outputs, "
                            "then runs of one length, 1-15)")
    return first, step


def lower_resize(layer: ir.Resize, x: TensorPlacement, y: TensorPlacement) -> Lowered:
    """Nearest-neighbour upsampling: the vector unit's RESIZE, its runs fitted to the layer's index maps."""
    maps = layer.maps if len(layer.maps) == 2 else ((0,), *layer.maps)
    try:
        (k_h, s_h), (k_w, s_w) = resize_runs(maps[0], x.h), resize_runs(maps[1], x.w)
    except SystolixError as e:
        raise SystolixError(f"layer {layer.name} ({layer.op}): {e}") from None
    fields = dict(opcode=Opcode.RESIZE, in_h=x.h, in_w=x.w, out_h=y.h, out_w=y.w, out_blocks=x.blocks, k_h=k_h,
                  k_w=k_w, stride_h=s_h, stride_w=s_w, pad_top=0, pad_left=0, dil_h=1, dil_w=1)
    return Lowered(fields, note=f"nearest upsampling x{s_h}x{s_w} (first runs {k_h}, {k_w})")


def permutation_conv(layer: ir.Layer, sources: np.ndarray, x: TensorPlacement, y: TensorPlacement, lanes: int,
                     acc_depth: int, what: str) -> Lowered:
    """Output channel ``c`` = input channel ``sources[c]``, every pixel in place, as a 1x1 CONV: weight
    ``w[c, sources[c]] = 1``, bias 0, scale 1.0.

    The codes are copied, whatever they mean: the zero point subtracted before the products is the stored input's,
    and the same is added back, so the accumulator of output channel ``c`` is ``x[sources[c]] - zp`` and the
    requantizer (``M = 2**23``, ``E = 23`` for the scale 1.0) returns ``x[sources[c]]``, which is inside the clamp
    range. (The zero points recorded for the two tensors may differ when one of them is a graph input whose
    quantization only its readers know; padding lanes, which no reader uses, then hold the input's.)
    """
    if x.dtype != y.dtype:
        raise SystolixError(f"layer {layer.name} ({layer.op}): its input is {x.dtype} but its output {y.dtype}")
    y = dataclasses.replace(y, zero_point=x.zero_point)
    channels = len(sources)
    weight = np.zeros((channels, x.channels, 1, 1), dtype=np.int64)
    weight[np.arange(channels), np.asarray(sources)] = 1
    tiles, taps = conv_tiles(weight, 1, lanes)
    fields = dict(opcode=Opcode.MATMUL, mode=Mode.CONV, in_blocks=x.blocks, in_h=y.h, in_w=y.w,
                  out_blocks=y.blocks, out_h=y.h, out_w=y.w, k_h=1, k_w=1, stride_h=1, stride_w=1, pad_top=0,
                  pad_left=0, dil_h=1, dil_w=1, taps=taps, chunk_rows=chunk_rows(layer, y.h, y.w, acc_depth),
                  x_zp=x.stored_zero_point, in_base=x.base, out_base=y.base)
    lo, hi = (0, 255) if y.dtype == "uint8" else (-128, 127)
    prm = channel_params(layer, np.float32(1.0), None, channels, y, lo, hi, lanes)
    return Lowered(fields, tiles=tiles.astype(np.int8), prm=prm,
                   note=f"{what} as a 1x1 convolution by a permutation matrix ({x.channels} -> {channels} channels, "
                        "requantization scale 1.0)")


def concat_scratch_channels(layer: ir.Concat, lanes: int) -> int:
    """Channels of the aligned copy a channel Concat needs when an input but the last ends inside a channel block
    (each input then starts a block of its own: ``sum(ceil(C_i / L)) * L``), 0 when it needs none."""
    if concat_axis(layer) != "channels" or all(int(shape[1]) % lanes == 0 for shape in layer.in_shapes[:-1]):
        return 0
    return sum(-(-int(shape[1]) // lanes) for shape in layer.in_shapes) * lanes


def concat_axis(layer: ir.Concat) -> str:
    """Which storage axis a Concat joins: ``"channels"``, ``"rows"`` (H of a 4-D tensor) or ``"columns"`` (W of a
    4-D tensor, the length of a 3-D one); raises for any other axis."""
    rank = len(layer.out_shape)
    axis = layer.axis + rank if layer.axis < 0 else layer.axis
    if axis == 1:
        return "channels"
    if rank == 4 and axis == 2:
        return "rows"
    if (rank == 4 and axis == 3) or (rank == 3 and axis == 2):
        return "columns"
    raise SystolixError(f"layer {layer.name} ({layer.op}): a Concat on axis {layer.axis} of {rank}-D tensors is not "
                        "supported by the accelerator")


def lower_concat(layer: ir.Concat, xs: list[TensorPlacement], y: TensorPlacement, lanes: int, acc_depth: int = 0,
                 scratch: TensorPlacement | None = None) -> list[Lowered]:
    """Concat: LUT instructions copying each input's rows to their place in the output.

    On the channel axis, channel-blocked storage puts an input's blocks right after the previous input's when
    every input but the last has a multiple of L channels, so each input is one run of rows written at an
    offset. Along the height (axis 2 of a 4-D tensor) each channel block of an input is one run of ``H_i * W``
    rows, written at row ``h0`` of the output's block: one instruction per input and block. Along the width
    (axis 3, or the length of a 3-D tensor) each pixel row of each block is a run of ``W_i`` rows: one
    instruction per input, block and row. The table is the identity when the input's quantization equals the
    output's (onnxruntime copies), else QLinearConcat's own table ``QuantizeLinear(f32(x_s * (code - x_zp)),
    y_s, y_zp)`` (exact: onnxruntime looks it up too). Padding lanes hold the input's zero point, which the
    table sends to the output's.

    On the channel axis with an input but the last ending inside a channel block, every input is copied to a
    block of its own in ``scratch`` (:func:`concat_scratch_channels`), which a channel permutation
    (:func:`permutation_conv`) then packs into the output.
    """
    how_axis = concat_axis(layer)
    target = y if scratch is None else scratch
    sources: list[int] = []
    y_q = layer.y_quant
    parts, offset = [], 0
    for i, (x, q, shape) in enumerate(zip(xs, layer.in_quant, layer.in_shapes, strict=True)):
        if np.float32(q.scale) == np.float32(y_q.scale) and int(q.zero_point) == int(y_q.zero_point):
            table = np.arange(256, dtype=np.int64) + np.iinfo(y_q.np_dtype).min
            how = "copy"
        else:
            table = unary_table(q.scale, int(q.zero_point), y_q.scale, int(y_q.zero_point), lambda v: v,
                                y_q.np_dtype).astype(np.int64)
            how = "requantizing table"
        lut = lut_rows(table - y.shift, lanes)
        if how_axis == "channels":
            channels = int(shape[1])
            if i < len(xs) - 1 and channels % lanes and scratch is None:
                raise SystolixError(f"layer {layer.name} ({layer.op}): input {i} has {channels} channels, not a "
                                    f"multiple of the array's {lanes} lanes; only the last input of a Concat may end "
                                    "inside a channel block (without an aligned copy)")
            fields = dict(opcode=Opcode.LUT, rows=x.rows, in_base=x.base, out_base=target.base + offset * y.h * y.w)
            where = "output" if scratch is None else "aligned copy"
            parts.append(Lowered(fields, lut=lut, note=f"concat input {i}: {how} into {where} block {offset}"))
            sources += range(offset * lanes, offset * lanes + channels)
            offset += -(-channels // lanes)
            continue
        for cb in range(x.blocks):
            if how_axis == "rows":
                fields = dict(opcode=Opcode.LUT, rows=x.h * x.w, in_base=x.base + cb * x.h * x.w,
                              out_base=y.base + (cb * y.h + offset) * y.w)
                parts.append(Lowered(fields, lut=lut, note=f"concat input {i}: {how} of block {cb} into output "
                                                           f"rows {offset}..{offset + x.h - 1}"))
                continue
            for row in range(x.h):
                fields = dict(opcode=Opcode.LUT, rows=x.w, in_base=x.base + (cb * x.h + row) * x.w,
                              out_base=y.base + (cb * y.h + row) * y.w + offset)
                parts.append(Lowered(fields, lut=lut, note=f"concat input {i}: {how} of block {cb}, row {row} "
                                                           f"into output columns {offset}..{offset + x.w - 1}"))
        offset += x.h if how_axis == "rows" else x.w
    if scratch is not None:
        parts.append(permutation_conv(layer, np.array(sources), scratch, y, lanes, acc_depth,
                                      "concat: the aligned copy packed"))
    return parts
