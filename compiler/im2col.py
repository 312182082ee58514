"""Host-side im2col for a convolution that reads the graph input with few input channels.

A convolution with ``C`` input channels and a ``k_h x k_w`` kernel costs ``k_h * k_w * ceil(C / L)``
weight tiles per output block, each using only ``C`` of the ``L`` array rows when ``C < L`` (a first
layer with one or three channels uses a quarter or less of the array). When the convolution reads a
tensor the host writes anyway (the graph input, or the output of a host transform of it), the host
can write the input in im2col form instead: every output pixel's window as one vector of
``K = C * k_h * k_w`` values (index ``k = (c * k_h + ky) * k_w + kx``), with the input zero point in the
cells that fall in the padding. The convolution then becomes a 1x1 convolution (stride 1, no padding)
over a ``K``-channel tensor of the output's size, with ``ceil(K / L)`` tiles per output block; its
weights are the original ones reshaped to ``[M, K, 1, 1]``. The sums are the same integers term by
term: a padding cell holds the zero point, so ``x - x_zp`` is 0 there, as in the windowed form.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from systolix.frontend import ir

__all__ = ["Window", "im2col", "im2col_conv", "im2col_tiles"]


@dataclasses.dataclass(frozen=True)
class Window:
    """The window of a 1D/2D convolution as the host applies it (1D: ``k_h = 1``, no vertical pads).

    ``pads`` is (top, left, bottom, right).
    """

    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]
    dilations: tuple[int, int]
    spatial_dims: int

    @classmethod
    def of(cls, layer: ir.Conv) -> Window:
        if layer.spatial_dims == 1:
            return cls((1, layer.kernel[0]), (1, layer.strides[0]), (0, layer.pads[0], 0, layer.pads[1]),
                       (1, layer.dilations[0]), 1)
        p = layer.pads
        return cls(tuple(layer.kernel), tuple(layer.strides), (p[0], p[1], p[2], p[3]), tuple(layer.dilations), 2)

    def to_json(self) -> dict:
        return {"kernel": list(self.kernel), "strides": list(self.strides), "pads": list(self.pads),
                "dilations": list(self.dilations), "spatial_dims": self.spatial_dims}

    @classmethod
    def from_json(cls, data: dict) -> Window:
        """Inverse of :meth:`to_json`."""
        return cls(tuple(data["kernel"]), tuple(data["strides"]), tuple(data["pads"]), tuple(data["dilations"]),
                   int(data["spatial_dims"]))


def im2col(x: np.ndarray, window: Window, pad_value: int) -> np.ndarray:
    """The im2col form of a batch ``x`` ``[N, C, H, W]`` (1D: ``[N, C, W]``).

    Returns ``[N, C * k_h * k_w, out_h, out_w]`` (1D: ``[N, C * k_w, out_w]``) of the same dtype;
    cells in the padding hold ``pad_value``.
    """
    x = np.asarray(x)
    if window.spatial_dims == 1:
        x = x[:, :, None, :]
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw) = window.kernel, window.strides, window.pads, window.dilations
    padded = np.full((n, c, h + pt + pb, w + pl + pr), pad_value, dtype=x.dtype)
    padded[:, :, pt:pt + h, pl:pl + w] = x
    out_h = (h + pt + pb - dh * (kh - 1) - 1) // sh + 1
    out_w = (w + pl + pr - dw * (kw - 1) - 1) // sw + 1
    iy = (np.arange(kh) * dh)[:, None] + (np.arange(out_h) * sh)[None, :]  # [kh, out_h]
    ix = (np.arange(kw) * dw)[:, None] + (np.arange(out_w) * sw)[None, :]  # [kw, out_w]
    cols = padded[:, :, iy[:, None, :, None], ix[None, :, None, :]]  # [N, C, kh, kw, out_h, out_w]
    cols = cols.reshape(n, c * kh * kw, out_h, out_w)
    return cols[:, :, 0, :] if window.spatial_dims == 1 else cols


def im2col_tiles(layer: ir.Conv, lanes: int) -> tuple[int, int]:
    """Weight tiles per output block of ``layer`` as it is (``k_h*k_w*ceil(C/L)``) and over im2col (``ceil(K/L)``)."""
    c = layer.in_shapes[0][1]
    taps = int(np.prod(layer.kernel))
    return taps * -(-c // lanes), -(-(c * taps) // lanes)


def im2col_conv(layer: ir.Conv, lanes: int, input_name: str) -> ir.Conv | None:
    """The 1x1 convolution over the im2col form of ``layer``'s input (named ``input_name``), or None.

    None unless the layer is an ungrouped convolution for which im2col needs fewer weight tiles
    (:func:`im2col_tiles`). The result has the layer's name, output, quantization, bias and clamp.
    """
    if not isinstance(layer, ir.Conv) or layer.group != 1:
        return None
    now, packed = im2col_tiles(layer, lanes)
    if packed >= now:
        return None
    m = layer.weight.shape[0]
    k = int(np.prod(layer.weight.shape[1:]))
    out_spatial = tuple(layer.out_shape[2:])
    n = layer.spatial_dims
    return dataclasses.replace(
        layer, inputs=(input_name,), in_shapes=((1, k, *out_spatial),),
        weight=np.ascontiguousarray(layer.weight.reshape(m, k, *([1] * n))),
        kernel=(1,) * n, strides=(1,) * n, pads=(0,) * (2 * n), dilations=(1,) * n)
