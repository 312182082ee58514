"""The integer golden model of a whole network: each IR layer computed by its golden op.

Every layer of an integer :class:`~systolix.frontend.ir.Model` is evaluated in pure NumPy integer
arithmetic (float32 only where onnxruntime itself is float: QLinearAveragePool, QLinearAdd, QLinearMul), with the
one requantization of :mod:`systolix.quantize.requant`. Samples are batched on axis 0.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from systolix.errors import SystolixError
from systolix.frontend import ir

from . import requant
from .golden import (
    lookup,
    max_pool,
    qgemm,
    qlinear_add,
    qlinear_average_pool,
    qlinear_concat,
    qlinear_conv,
    qlinear_global_average_pool,
)
from .golden.qlinear_add import probe_qlinear_add_variant
from .golden.qlinear_mul import qlinear_mul

Runner = Callable[[ir.Layer, list[np.ndarray]], np.ndarray]
_RUNNERS: dict[type, Runner] = {}


def _runs(kind: type) -> Callable[[Runner], Runner]:
    def wrap(fn: Runner) -> Runner:
        _RUNNERS[kind] = fn
        return fn

    return wrap


def _out_range(layer, y: ir.QuantParams) -> tuple[int, int]:
    lo, hi = y.qmin, y.qmax
    if getattr(layer, "clamp", None) is not None:
        lo, hi = max(lo, layer.clamp[0]), min(hi, layer.clamp[1])
    return lo, hi


def _zp(q: ir.QuantParams) -> np.ndarray | int:
    return int(q.zero_point) if not q.per_channel else q.zero_point


@_runs(ir.Conv)
def _conv(layer: ir.Conv, xs: list[np.ndarray]) -> np.ndarray:
    x_q, w_q, y_q = layer.x_quant, layer.w_quant, layer.y_quant
    scale = requant.output_scale(x_q.scale, w_q.scale, y_q.scale)
    lo, hi = _out_range(layer, y_q)
    return qlinear_conv(
        xs[0],
        int(x_q.zero_point),
        layer.weight,
        _zp(w_q),
        layer.bias,
        scale,
        int(y_q.zero_point),
        lo,
        hi,
        strides=layer.strides,
        pads=layer.pads,
        dilations=layer.dilations,
        group=layer.group,
        out_dtype=y_q.np_dtype,
    )


@_runs(ir.Dense)
def _dense(layer: ir.Dense, xs: list[np.ndarray]) -> np.ndarray:
    x_q, w_q, y_q = layer.x_quant, layer.w_quant, layer.y_quant
    if layer.op == "QGemm":
        scale = requant.qgemm_output_scale(layer.alpha, x_q.scale, w_q.scale, y_q.scale)
    else:
        scale = requant.output_scale(x_q.scale, w_q.scale, y_q.scale)
    lo, hi = _out_range(layer, y_q)
    x = xs[0]
    a = x.reshape(-1, x.shape[-1])
    y = qgemm(a, int(x_q.zero_point), layer.weight, _zp(w_q), layer.bias, scale, int(y_q.zero_point), lo, hi)
    return y.reshape(*x.shape[:-1], -1).astype(y_q.np_dtype)


@_runs(ir.MatMul)
def _matmul(layer: ir.MatMul, xs: list[np.ndarray]) -> np.ndarray:
    a, b = xs
    a_q, b_q, y_q = layer.a_quant, layer.b_quant, layer.y_quant
    scale = requant.output_scale(a_q.scale, b_q.scale, y_q.scale)
    lead = a.shape[:-2]
    a2, b2 = a.reshape(-1, *a.shape[-2:]), b.reshape(-1, *b.shape[-2:])
    out = [
        qgemm(
            a2[i], int(a_q.zero_point), b2[i], _zp(b_q), None, scale, int(y_q.zero_point), y_q.qmin, y_q.qmax
        )
        for i in range(a2.shape[0])
    ]
    return np.stack(out).reshape(*lead, a.shape[-2], b.shape[-1]).astype(y_q.np_dtype)


@_runs(ir.MaxPool)
def _max_pool(layer: ir.MaxPool, xs: list[np.ndarray]) -> np.ndarray:
    return max_pool(
        xs[0],
        kernel=layer.kernel,
        strides=layer.strides,
        pads=layer.pads,
        dilations=layer.dilations,
        ceil_mode=layer.ceil_mode,
    )


@_runs(ir.AveragePool)
def _average_pool(layer: ir.AveragePool, xs: list[np.ndarray]) -> np.ndarray:
    x_q, y_q = layer.x_quant, layer.y_quant
    return qlinear_average_pool(
        xs[0],
        x_q.scale,
        int(x_q.zero_point),
        y_q.scale,
        int(y_q.zero_point),
        y_q.qmin,
        y_q.qmax,
        kernel=layer.kernel,
        strides=layer.strides,
        pads=layer.pads,
        count_include_pad=layer.count_include_pad,
        ceil_mode=layer.ceil_mode,
    ).astype(y_q.np_dtype)


@_runs(ir.GlobalAveragePool)
def _global_average_pool(layer: ir.GlobalAveragePool, xs: list[np.ndarray]) -> np.ndarray:
    x_q, y_q = layer.x_quant, layer.y_quant
    return qlinear_global_average_pool(
        xs[0], x_q.scale, int(x_q.zero_point), y_q.scale, int(y_q.zero_point), y_q.qmin, y_q.qmax
    ).astype(y_q.np_dtype)


@_runs(ir.Lookup)
def _lookup(layer: ir.Lookup, xs: list[np.ndarray]) -> np.ndarray:
    return lookup(xs[0], layer.table, layer.x_quant.qmin).astype(layer.y_quant.np_dtype)


@_runs(ir.ChannelLookup)
def _channel_lookup(layer: ir.ChannelLookup, xs: list[np.ndarray]) -> np.ndarray:
    x = np.asarray(xs[0]).astype(np.int64) - layer.x_quant.qmin
    channel = np.arange(x.shape[1]).reshape(1, -1, *([1] * (x.ndim - 2)))
    return np.asarray(layer.tables)[channel, x].astype(layer.y_quant.np_dtype)


@_runs(ir.Add)
def _add(layer: ir.Add, xs: list[np.ndarray]) -> np.ndarray:
    a_q, b_q, y_q = layer.a_quant, layer.b_quant, layer.y_quant
    return qlinear_add(
        xs[0],
        a_q.scale,
        int(a_q.zero_point),
        xs[1],
        b_q.scale,
        int(b_q.zero_point),
        y_q.scale,
        int(y_q.zero_point),
        y_q.qmin,
        y_q.qmax,
        variant=probe_qlinear_add_variant(),
        # One sample at a time, as the accelerator runs (and simulate runs onnxruntime for such adds).
        span_shapes=((1, *xs[0].shape[1:]), (1, *xs[1].shape[1:])),
    ).astype(y_q.np_dtype)


@_runs(ir.Mul)
def _mul(layer: ir.Mul, xs: list[np.ndarray]) -> np.ndarray:
    a_q, b_q, y_q = layer.a_quant, layer.b_quant, layer.y_quant
    return qlinear_mul(xs[0], a_q.scale, int(a_q.zero_point), xs[1], b_q.scale, int(b_q.zero_point), y_q.scale,
                       int(y_q.zero_point), y_q.qmin, y_q.qmax).astype(y_q.np_dtype)


@_runs(ir.Resize)
def _resize(layer: ir.Resize, xs: list[np.ndarray]) -> np.ndarray:
    """A gather of the input's codes (``ir.Resize.maps``)."""
    x = np.asarray(xs[0])
    for axis, index in enumerate(layer.maps, start=2):
        x = np.take(x, np.asarray(index), axis=axis)
    return x


@_runs(ir.Concat)
def _concat(layer: ir.Concat, xs: list[np.ndarray]) -> np.ndarray:
    y_q = layer.y_quant
    params = [(q.scale, int(q.zero_point)) for q in layer.in_quant]
    return qlinear_concat(
        xs, params, y_q.scale, int(y_q.zero_point), y_q.qmin, y_q.qmax, axis=layer.axis
    ).astype(y_q.np_dtype)


@_runs(ir.Reshape)
def _reshape(layer: ir.Reshape, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0].reshape(xs[0].shape[0], *layer.out_shape[1:])


@_runs(ir.Transpose)
def _transpose(layer: ir.Transpose, xs: list[np.ndarray]) -> np.ndarray:
    return xs[0].transpose(layer.perm)


@_runs(ir.Slice)
def _slice(layer: ir.Slice, xs: list[np.ndarray]) -> np.ndarray:
    return np.ascontiguousarray(xs[0][layer.index()])


def run_layer(layer: ir.Layer, inputs: list[np.ndarray]) -> np.ndarray:
    """Evaluate one integer layer on batched inputs."""
    runner = _RUNNERS.get(type(layer))
    if runner is None:
        raise SystolixError(
            f"layer {layer.name} ({layer.op}): the golden model has no integer form of "
            f"{type(layer).__name__} layers"
        )
    if layer.host:
        raise SystolixError(f"layer {layer.name} ({layer.op}) is a host operation")
    return runner(layer, inputs)


def run_golden(model: ir.Model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the integer golden model; returns every tensor (inputs and each layer's output) by name."""
    if not model.quantized:
        raise SystolixError(
            f"{model.name}: the golden model runs integer models; quantize this float model first"
        )
    tensors = dict(inputs)
    for layer in model.layers:
        tensors[layer.output] = run_layer(layer, [tensors[name] for name in layer.inputs])
    return tensors
