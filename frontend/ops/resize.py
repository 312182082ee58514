"""Resize (opset 11+) in ``nearest`` mode by integer factors: every output pixel is a copy of one input pixel.

The index maps (output coordinate -> input coordinate, per spatial axis) follow the ONNX definition, computed
here in exact rational arithmetic: the coordinate transformation (``half_pixel``, ``pytorch_half_pixel``,
``align_corners``, ``asymmetric``, ``tf_half_pixel_for_nn``, ``half_pixel_symmetric``), then the
``nearest_mode`` rounding (``round_prefer_floor``, ``round_prefer_ceil``, ``floor``, ``ceil``), then a clamp to
the input (and the identity along an axis of factor 1: onnxruntime copies such an axis whatever the modes).
``tests/frontend/test_resize.py`` checks them against onnxruntime for every mode and factors 1-4.
Integer tensors are copied code for code (QDQ: the Q/DQ pair around a Resize keeps the parameters).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr
from ..ir import Resize
from . import register

TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_half_pixel_for_nn",
              "half_pixel_symmetric")
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


def _original(o: int, factor: int, length_in: int, length_out: int, transform: str) -> Fraction:
    scale = Fraction(factor)
    if transform == "half_pixel" or (transform == "pytorch_half_pixel" and length_out > 1):
        return (o + Fraction(1, 2)) / scale - Fraction(1, 2)
    if transform == "pytorch_half_pixel":
        return Fraction(0)
    if transform == "align_corners":
        return Fraction(0) if length_out == 1 else Fraction(o * (length_in - 1), length_out - 1)
    if transform == "asymmetric":
        return o / scale
    if transform == "tf_half_pixel_for_nn":
        return (o + Fraction(1, 2)) / scale
    # half_pixel_symmetric: an offset that is 0 when length_out == factor * length_in (always here)
    adjustment = Fraction(length_out) / (scale * length_in)
    center = Fraction(length_in, 2)
    return center * (1 - adjustment) + (o + Fraction(1, 2)) / scale - Fraction(1, 2)


def _nearest(x: Fraction, mode: str) -> int:
    if mode == "floor":
        return math.floor(x)
    if mode == "ceil":
        return math.ceil(x)
    frac = x - math.floor(x)
    if frac == Fraction(1, 2):
        return math.floor(x) if mode == "round_prefer_floor" else math.ceil(x)
    return math.floor(x + Fraction(1, 2))


def nearest_map(length_in: int, factor: int, transform: str, mode: str) -> tuple[int, ...]:
    """Input coordinate of each output coordinate along one axis (``length_in * factor`` of them)."""
    length_out = length_in * factor
    return tuple(min(max(_nearest(_original(o, factor, length_in, length_out, transform), mode), 0), length_in - 1)
                 for o in range(length_out))


@register("Resize")
def resize(node: onnx.NodeProto, ctx: ImportContext) -> None:
    label = f"node {ctx.node_label} (Resize)"
    x = ctx.resolve(node.input[0])
    shape = tuple(int(d) for d in ctx.shape(x))
    mode = attr(node, "mode", "nearest")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    transform = attr(node, "coordinate_transformation_mode", "half_pixel")
    transform = transform.decode() if isinstance(transform, bytes) else transform
    nearest = attr(node, "nearest_mode", "round_prefer_floor")
    nearest = nearest.decode() if isinstance(nearest, bytes) else nearest
    if mode != "nearest":
        raise SystolixError(f"{label}: mode {mode!r} is not supported (only 'nearest': a copy of input pixels)")
    if transform not in TRANSFORMS:
        raise SystolixError(f"{label}: coordinate_transformation_mode {transform!r} is not supported (one of "
                            f"{', '.join(TRANSFORMS)})")
    if nearest not in NEAREST_MODES:
        raise SystolixError(f"{label}: nearest_mode {nearest!r} is not supported")
    if attr(node, "axes") is not None or attr(node, "keep_aspect_ratio_policy", "stretch") not in ("stretch",
                                                                                                  b"stretch"):
        raise SystolixError(f"{label}: the axes and keep_aspect_ratio_policy attributes are not supported")
    if len(node.input) < 3:
        raise SystolixError(f"{label}: opset 10 form (X, scales) is not supported; the normaliser upgrades it")
    scales = ctx.const(node, 2, "scales", optional=True) if len(node.input) > 2 and node.input[2] else None
    sizes = ctx.const(node, 3, "sizes", optional=True) if len(node.input) > 3 and node.input[3] else None
    if scales is not None and scales.size:
        out = tuple(int(math.floor(d * float(s))) for d, s in zip(shape, scales.reshape(-1), strict=True))
        exact = all(float(np.float32(s)) == int(round(float(s))) for s in scales.reshape(-1))
    elif sizes is not None:
        out = tuple(int(v) for v in sizes.reshape(-1))
        exact = all(o % d == 0 for o, d in zip(out, shape, strict=True))
    else:
        raise SystolixError(f"{label}: neither scales nor sizes is given")
    if len(out) != len(shape) or len(shape) not in (3, 4):
        raise SystolixError(f"{label}: only 1-D and 2-D inputs ([N, C, W], [N, C, H, W]) are supported")
    factors = [o // d for o, d in zip(out, shape, strict=True)]
    if not exact or out[:2] != shape[:2] or any(f < 1 or o != d * f for f, o, d in zip(factors, out, shape,
                                                                                          strict=True)):
        raise SystolixError(f"{label}: only upsampling of the spatial axes by integer factors is supported "
                            f"({list(shape)} -> {list(out)})")
    # onnxruntime copies an axis whose scale is 1 whatever the modes (tf_half_pixel_for_nn with ceil would
    # otherwise read coordinate o + 1)
    maps = tuple(tuple(range(d)) if f == 1 else nearest_map(d, f, transform, nearest)
                 for d, f in zip(shape[2:], factors[2:], strict=True))
    ctx.add(Resize(name=ctx.node_label, op="Resize", inputs=(x,), output=node.output[0], in_shapes=(shape,),
                   out_shape=out, maps=maps, attrs={"transform": transform, "nearest_mode": nearest}),
            quant=ctx.quant.get(x))
