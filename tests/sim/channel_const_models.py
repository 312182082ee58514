"""QOperator models with QLinearAdd / QLinearMul by a per-channel constant (built with ``onnx.helper``)."""

from __future__ import annotations

import onnx
from onnx import helper

from tests.sim.model_builders import _ELEM, MS_OPSET, _finish, _init, _Params, _qparams


def channel_const_model(*, dtype: str = "int8", sample_shape=(5, 6, 7),
                        const_shape: str = "c11", seed: int = 0, ops=("QLinearAdd", "QLinearMul")) -> onnx.ModelProto:
    """``x`` -> QLinearAdd(x, k) -> QLinearMul(m, .) (constant first) with per-channel constants ``k`` and ``m``
    of shape ``[C, 1, 1]`` (``const_shape="c11"``) or ``[1, C, 1, 1]`` (``"1c11"``; ``[C]`` / ``[1, C]`` for a
    2-D input), of the input's type (onnxruntime's QLinearAdd/QLinearMul take one type)."""
    p = _Params(seed)
    c = sample_shape[0]
    rank = len(sample_shape) + 1
    shape = {"c11": (c,) + (1,) * (rank - 2), "1c11": (1, c) + (1,) * (rank - 2)}[const_shape]
    inits = [*_qparams("x", p.scale(), p.zp(dtype))]
    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        k_s = p.scale(0.005, 0.05)
        k = p.codes(dtype, shape)
        inits += [_init(f"k{i}", k), *_qparams(f"k{i}", k_s, p.zp(dtype, 60)), *_qparams(f"y{i}", p.scale(),
                                                                                            p.zp(dtype))]
        prev_s = "x" if i == 0 else f"y{i - 1}"
        out = "y" if i == len(ops) - 1 else f"t{i}"
        operands = [prev, f"{prev_s}_scale", f"{prev_s}_zp", f"k{i}", f"k{i}_scale", f"k{i}_zp"]
        if i % 2:  # the constant first
            operands = operands[3:] + operands[:3]
        nodes.append(helper.make_node(op, [*operands, f"y{i}_scale", f"y{i}_zp"], [out], name=f"{op.lower()}{i}",
                                      domain="com.microsoft"))
        prev = out
    return _finish(nodes, inits, list(sample_shape), _ELEM[dtype], [("y", _ELEM[dtype])], "channel_const", MS_OPSET)
