"""Float models with products of two activations, built with ``onnx.helper`` (quantized in the tests).

``se_net``: Conv -> Relu -> squeeze-and-excite (GlobalAveragePool -> Conv 1x1 -> Relu -> Conv 1x1 -> Sigmoid,
then ``x * gate``: ``[N, C, H, W] * [N, C, 1, 1]``) -> a same-shape product of two branches -> a broadcast Add
of a per-channel branch -> GlobalAveragePool -> Flatten -> Gemm.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from onnx import helper

from tests.compiler.test_networks import _conv, _gemm, _save


def se_net(path: Path, *, channels: int = 6, size: int = 5, seed: int = 7, gate_first: bool = False,
           extra: bool = True) -> tuple[int, ...]:
    """Write the float model; returns the sample shape. ``gate_first`` writes ``Mul(gate, x)``."""
    rng = np.random.default_rng(seed)
    nodes, inits = [], []

    def add(pair) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    c, r = channels, max(2, channels // 2)
    add(_conv(rng, "c1", "x", 3, c, [3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["r1"], ["sq"]))
    add(_conv(rng, "e1", "sq", c, r, [1, 1]))
    nodes.append(helper.make_node("Relu", ["e1"], ["e1r"]))
    add(_conv(rng, "e2", "e1r", r, c, [1, 1]))
    nodes.append(helper.make_node("Sigmoid", ["e2"], ["gate"]))
    nodes.append(helper.make_node("Mul", ["gate", "r1"] if gate_first else ["r1", "gate"], ["se"]))
    last = "se"
    if extra:
        add(_conv(rng, "c2", "se", c, c, [3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Tanh", ["c2"], ["t2"]))
        nodes.append(helper.make_node("Mul", ["se", "t2"], ["prod"]))           # same shape, two activations
        add(_conv(rng, "c3", "sq", c, c, [1, 1]))                              # a per-channel branch
        nodes.append(helper.make_node("Add", ["prod", "c3"], ["bsum"]))       # [N, C, H, W] + [N, C, 1, 1]
        last = "bsum"
    nodes.append(helper.make_node("GlobalAveragePool", [last], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"]))
    add(_gemm(rng, "fc", "flat", c, 4))
    _save(path, "se_net", nodes, inits, (3, size, size), "fc", 4)
    return (3, size, size)
