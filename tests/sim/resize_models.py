"""Float models with nearest-neighbour Resize layers, built with ``onnx.helper`` (quantized in the tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

from tests.compiler.test_networks import _conv, _gemm, _save


def upsample_net(path: Path, *, factors=(2, 2), transform: str = "asymmetric", nearest: str = "floor",
                 channels: int = 5, size: int = 4, seed: int = 5, use_sizes: bool = False) -> tuple[int, ...]:
    """Conv -> Relu -> Resize (nearest) -> Conv -> Tanh -> Resize (nearest, x2 both axes) -> GlobalAveragePool
    -> Flatten -> Gemm. Returns the sample shape."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def add(pair) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    c = channels
    add(_conv(rng, "c1", "x", 2, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    if use_sizes:
        inits.append(numpy_helper.from_array(np.array([1, c, size * factors[0], size * factors[1]], np.int64), "sz"))
        resize_inputs = ["r1", "", "", "sz"]
    else:
        inits.append(numpy_helper.from_array(np.array([1, 1, *factors], np.float32), "sc"))
        resize_inputs = ["r1", "", "sc"]
    nodes.append(helper.make_node("Resize", resize_inputs, ["up"], mode="nearest",
                                  coordinate_transformation_mode=transform, nearest_mode=nearest))
    add(_conv(rng, "c2", "up", c, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Tanh", ["c2"], ["t2"]))
    inits.append(numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "sc2"))
    nodes.append(helper.make_node("Resize", ["t2", "", "sc2"], ["up2"], mode="nearest"))
    nodes.append(helper.make_node("GlobalAveragePool", ["up2"], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    add(_gemm(rng, "fc", "flat", c, 3))
    _save(path, "upsample_net", nodes, inits, (2, size, size), "fc", 3)
    return (2, size, size)
