"""Shared sliding-window helpers for the convolution and pooling golden ops (internal)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from systolix.errors import SystolixError


def spatial_params(
    nsp: int,
    kernel: Sequence[int],
    strides: Sequence[int] | None,
    pads: Sequence[int] | None,
    dilations: Sequence[int] | None,
) -> tuple[list[int], list[int], list[int], list[int], list[int]]:
    """Validate and default (kernel, strides, pads_begin, pads_end, dilations) for nsp spatial dims."""
    if nsp not in (1, 2):
        raise SystolixError(f"only 1 or 2 spatial dimensions are supported, not {nsp}")
    kernel = [int(k) for k in kernel]
    strides = [1] * nsp if strides is None else [int(s) for s in strides]
    dilations = [1] * nsp if dilations is None else [int(d) for d in dilations]
    pads = [0] * (2 * nsp) if pads is None else [int(p) for p in pads]
    for name, vals, n in (
        ("kernel", kernel, nsp),
        ("strides", strides, nsp),
        ("dilations", dilations, nsp),
        ("pads", pads, 2 * nsp),
    ):
        if len(vals) != n:
            raise SystolixError(f"{name} must have {n} values for {nsp} spatial dimensions, not {len(vals)}")
    for name, vals in (("kernel", kernel), ("strides", strides), ("dilations", dilations)):
        for v in vals:
            if v < 1:
                raise SystolixError(f"{name} must be positive ints, not {v}")
    for p in pads:
        if p < 0:
            raise SystolixError(f"pads must be non-negative ints, not {p}")
    return kernel, strides, pads[:nsp], pads[nsp:], dilations


def out_size(size: int, k: int, s: int, pb: int, pe: int, d: int, ceil_mode: bool = False) -> int:
    """Output length of one spatial axis (ONNX / onnxruntime rule, including the ceil_mode fix)."""
    span = size + pb + pe - d * (k - 1) - 1
    if span < 0:
        raise SystolixError(f"window of {d * (k - 1) + 1} does not fit the padded input of {size + pb + pe}")
    n = -(-span // s) + 1 if ceil_mode else span // s + 1
    if ceil_mode and (n - 1) * s >= size + pb:
        n -= 1
    return n


def windows(
    xp: np.ndarray,
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    out: Sequence[int],
) -> np.ndarray:
    """View of windows of a padded 4-D array [N, C, H, W]: [N, C, Ho, Wo, kh, kw] (no copy)."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilations
    ho, wo = out
    ext = (dh * (kh - 1) + 1, dw * (kw - 1) + 1)
    v = np.lib.stride_tricks.sliding_window_view(xp, ext, axis=(2, 3))
    return v[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw, ::dh, ::dw]
