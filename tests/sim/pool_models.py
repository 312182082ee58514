"""Float models with min pooling (as exporters write it: ``-maxpool(-x)``) and LpPool, built with ``onnx.helper``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from tests.compiler.test_networks import _conv, _gemm, _save


def min_pool_net(path: Path, *, channels: int = 5, size: int = 6, seed: int = 9) -> tuple[int, ...]:
    """Conv -> Neg -> MaxPool 2x2 -> Neg (a min pool) -> Conv -> Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def add(pair) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    c = channels
    add(_conv(rng, "c1", "x", 2, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Neg", ["c1"], ["n1"]))
    nodes.append(helper.make_node("MaxPool", ["n1"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]))
    nodes.append(helper.make_node("Neg", ["mp"], ["minp"]))
    add(_conv(rng, "c2", "minp", c, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c2"], ["r2"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["r2"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    add(_gemm(rng, "fc", "flat", c, 3))
    _save(path, "min_pool_net", nodes, inits, (2, size, size), "fc", 3)
    return (2, size, size)


def lp_pool_net(path: Path, *, channels: int = 5, size: int = 6, seed: int = 10) -> tuple[int, ...]:
    """Conv -> Relu -> LpPool (p=2, 2x2, stride 2) -> Conv -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def add(pair) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    c = channels
    add(_conv(rng, "c1", "x", 2, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.append(helper.make_node("LpPool", ["r1"], ["lp"], p=2, kernel_shape=[2, 2], strides=[2, 2]))
    add(_conv(rng, "c2", "lp", c, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("GlobalAveragePool", ["c2"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    add(_gemm(rng, "fc", "flat", c, 3))
    _save(path, "lp_pool_net", nodes, inits, (2, size, size), "fc", 3)
    return (2, size, size)
