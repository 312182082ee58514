"""Float models with data movement mid-graph (channel shuffle, Transpose of H and W, Concat along H / W / L) and
PRelu with one slope per channel, built with ``onnx.helper`` (quantized in the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

from tests.compiler.test_networks import _conv, _gemm, _save


class _Graph:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []

    def conv(self, name: str, x: str, cin: int, cout: int, dims: int, group: int = 1) -> str:
        node, inits = _conv(self.rng, name, x, cin, cout, [3] * dims, group=group, pads=[1] * (2 * dims))
        self.nodes.append(node)
        self.inits += inits
        return name

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], out: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def head(self, path: Path, x: str, c: int, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
        """GlobalAveragePool -> Flatten -> Gemm, and save."""
        self.node("GlobalAveragePool", [x], "gap")
        self.node("Flatten", ["gap"], "flat")
        node, inits = _gemm(self.rng, "fc", "flat", c, 3)
        self.nodes.append(node)
        self.inits += inits
        _save(path, name, self.nodes, self.inits, shape, "fc", 3)
        return shape


def shuffle_net(path: Path, *, channels: int = 6, groups: int = 2, size: tuple[int, ...] = (5, 3),
                seed: int = 1, repeat: int = 1, conv_group: int | None = None) -> tuple[int, ...]:
    """Conv -> Relu -> channel shuffle (Reshape [N,g,C/g,...] -> Transpose(0,2,1,...) -> Reshape [N,C,...], as
    torch.onnx exports ShuffleNet's; ``repeat`` times in a row) -> Conv with ``conv_group`` groups (default: the
    shuffle's) -> head. 1-D with one ``size``."""
    g, c, dims = _Graph(seed), channels, len(size)
    g.conv("c1", "x", 3, c, dims)
    x = g.node("Relu", ["c1"], "r1")
    g.const("s1", np.array([0, groups, c // groups, *size], np.int64))
    g.const("s2", np.array([0, c, *size], np.int64))
    for i in range(repeat):
        g.node("Reshape", [x, "s1"], f"rs1_{i}")
        g.node("Transpose", [f"rs1_{i}"], f"tr_{i}", perm=[0, 2, 1, *range(3, 3 + dims)])
        x = g.node("Reshape", [f"tr_{i}", "s2"], f"rs2_{i}")
    g.conv("c2", x, c, c, dims, group=groups if conv_group is None else conv_group)
    return g.head(path, "c2", c, (3, *size), "shuffle_net")


def transpose_net(path: Path, *, channels: int = 6, size: tuple[int, int] = (3, 5), seed: int = 1) -> tuple[int, ...]:
    """Conv -> Relu -> Transpose(0,1,3,2) (H and W swapped) -> Conv -> head."""
    g, c = _Graph(seed), channels
    g.conv("c1", "x", 3, c, 2)
    g.node("Relu", ["c1"], "r1")
    g.node("Transpose", ["r1"], "tr", perm=[0, 1, 3, 2])
    g.conv("c2", "tr", c, c, 2)
    return g.head(path, "c2", c, (3, *size), "transpose_net")


def concat_net(path: Path, *, channels: int = 5, size: tuple[int, ...] = (3, 4), axis: int = 2,
               seed: int = 2) -> tuple[int, ...]:
    """Two Conv branches (Relu, Sigmoid: different scales) -> Concat(a, b, a) along ``axis`` -> Conv -> head."""
    g, c, dims = _Graph(seed), channels, len(size)
    g.conv("c1", "x", 3, c, dims)
    g.node("Relu", ["c1"], "r1")
    g.conv("c2", "x", 3, c, dims)
    g.node("Sigmoid", ["c2"], "r2")
    g.node("Concat", ["r1", "r2", "r1"], "cat", axis=axis)
    g.conv("c3", "cat", 3 * c if axis == 1 else c, c, dims)
    return g.head(path, "c3", c, (3, *size), "concat_net")


def prelu_net(path: Path, *, channels: int = 6, size: tuple[int, ...] = (3, 4), slope_rank: int | None = None,
              seed: int = 4) -> tuple[int, ...]:
    """Conv -> PRelu with one slope per channel (some negative, some above 1; shape ``[C, 1, ...]``, or
    ``[1, C, 1, ...]`` with ``slope_rank`` = rank of the input) -> Conv -> head."""
    g, c, dims = _Graph(seed), channels, len(size)
    g.conv("c1", "x", 3, c, dims)
    slope = g.rng.uniform(-0.5, 1.3, c).astype(np.float32)
    shape = (c, *[1] * dims) if slope_rank is None else (1, c, *[1] * dims)
    g.const("slope", slope.reshape(shape))
    g.node("PRelu", ["c1", "slope"], "p1")
    g.conv("c3", "p1", c, c, dims)
    return g.head(path, "c3", c, (3, *size), "prelu_net")


def shufflenet_v2_net(path: Path, *, channels: int = 8, size: tuple[int, int] = (4, 4), split: str = "Split",
                      crop: bool = False, units: int = 1, seed: int = 6) -> tuple[int, ...]:
    """ShuffleNet v2 units as torch.onnx exports them: Conv -> Relu -> ``units`` x [``x.chunk(2, dim=1)`` (a
    ``Split``, or two ``Slice`` nodes with ``split="Slice"``) -> branch (1x1 Conv, Relu, depthwise 3x3 Conv, 1x1
    Conv, Relu) on the second half -> Concat(first half, branch) -> channel shuffle (2 groups)] -> [crop the first
    row: a Slice of H] -> head."""
    g, c = _Graph(seed), channels
    h, w = size
    g.conv("c1", "x", 3, c, 2)
    x = g.node("Relu", ["c1"], "r1")
    half = c // 2
    g.const("s1", np.array([0, 2, c // 2, h, w], np.int64))
    g.const("s2", np.array([0, c, h, w], np.int64))
    for u in range(units):
        a, b = f"a{u}", f"b{u}"
        if split == "Split":
            g.const(f"sp{u}", np.array([half, c - half], np.int64))
            g.nodes.append(helper.make_node("Split", [x, f"sp{u}"], [a, b], axis=1))
        else:
            for name, (lo, hi) in ((a, (0, half)), (b, (half, c))):
                g.const(f"{name}_st", np.array([lo], np.int64))
                g.const(f"{name}_en", np.array([hi], np.int64))
                g.const(f"{name}_ax", np.array([1], np.int64))
                g.node("Slice", [x, f"{name}_st", f"{name}_en", f"{name}_ax"], name)
        node, inits = _conv(g.rng, f"b1_{u}", b, c - half, c - half, [1, 1])
        g.nodes.append(node)
        g.inits += inits
        g.node("Relu", [f"b1_{u}"], f"b1r_{u}")
        g.conv(f"b2_{u}", f"b1r_{u}", c - half, c - half, 2, group=c - half)
        node, inits = _conv(g.rng, f"b3_{u}", f"b2_{u}", c - half, c - half, [1, 1])
        g.nodes.append(node)
        g.inits += inits
        g.node("Relu", [f"b3_{u}"], f"b3r_{u}")
        g.node("Concat", [a, f"b3r_{u}"], f"cat{u}", axis=1)
        g.node("Reshape", [f"cat{u}", "s1"], f"rs1_{u}")
        g.node("Transpose", [f"rs1_{u}"], f"tr{u}", perm=[0, 2, 1, 3, 4])
        x = g.node("Reshape", [f"tr{u}", "s2"], f"rs2_{u}")
    if crop:
        g.const("cr_st", np.array([1], np.int64))
        g.const("cr_en", np.array([h], np.int64))
        g.const("cr_ax", np.array([2], np.int64))
        x = g.node("Slice", [x, "cr_st", "cr_en", "cr_ax"], "crop")
    g.conv("c9", x, c, c, 2)
    return g.head(path, "c9", c, (3, h, w), "shufflenet_v2_units")
