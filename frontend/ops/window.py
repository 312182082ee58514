"""Window geometry shared by convolution and pooling handlers: kernel, strides, pads, dilations."""

from __future__ import annotations

import math

import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr
from ..ir import Shape, window_output_size


def window_geometry(node: onnx.NodeProto, ctx: ImportContext, in_shape: Shape, kernel: tuple[int, ...],
                    *, ceil_mode: bool = False) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], Shape]:
    """Strides, explicit pads (begin..., end...), dilations and the spatial output size.

    ``auto_pad`` SAME_UPPER / SAME_LOWER / VALID are turned into explicit pads as ONNX defines them.
    """
    n = len(in_shape) - 2
    if n not in (1, 2):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): input of rank {len(in_shape)} "
                            f"(shape {in_shape}); only 1D (NCW) and 2D (NCHW) are supported")
    if len(kernel) != n:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): kernel {kernel} does not match the "
                            f"{n} spatial dims of input {in_shape}")
    strides = tuple(attr(node, "strides", [1] * n))
    dilations = tuple(attr(node, "dilations", [1] * n))
    pads = tuple(attr(node, "pads", [0] * (2 * n)))
    auto_pad = attr(node, "auto_pad", "NOTSET")
    spatial = in_shape[2:]
    if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        if any(d != 1 for d in dilations):
            raise SystolixError(f"node {ctx.node_label} ({node.op_type}): auto_pad={auto_pad} with dilations "
                                f"{dilations} is not supported (onnxruntime, the reference, refuses it); give "
                                "explicit pads")
        begin, end = [], []
        for i in range(n):
            out = math.ceil(spatial[i] / strides[i])
            total = max((out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i], 0)
            small = total // 2
            begin.append(small if auto_pad == "SAME_UPPER" else total - small)
            end.append(total - begin[-1])
        pads = (*begin, *end)
    elif auto_pad == "VALID":
        pads = (0,) * (2 * n)
    elif auto_pad != "NOTSET":
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): auto_pad={auto_pad!r} is not one of "
                            "NOTSET, SAME_UPPER, SAME_LOWER, VALID")
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): strides {strides}, dilations {dilations}, "
                            f"pads {pads} do not match {n} spatial dims")
    if any(s < 1 for s in strides) or any(d < 1 for d in dilations) or any(p < 0 for p in pads):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): strides {strides} and dilations "
                            f"{dilations} must be >= 1 and pads {pads} >= 0")
    out = tuple(window_output_size(spatial[i], kernel[i], strides[i], pads[i], pads[n + i], dilations[i],
                                   ceil_mode) for i in range(n))
    if any(o < 1 for o in out):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): a {kernel} window (dilation {dilations}) "
                            f"does not fit input {spatial} with pads {pads}")
    return strides, pads, dilations, out
