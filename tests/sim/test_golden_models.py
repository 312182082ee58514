"""End to end: generated models through quantization, the golden model and onnxruntime, every element.

Float models covering every supported op and attribute combination are quantized with
:func:`~systolix.quantize.ptq.quantize_model` on random calibration data, then simulated with
``layers=True`` on float samples (through the host's input quantization) and on random integer codes;
QOperator models are also built directly with random parameters, and QDQ models come from the quantizer's
QDQ format. The reference is onnxruntime; every compared element must be equal.

Near-tie models put integer accumulators at or next to ``k + 1/2`` for their scale; deliberately wrong
requantizations (one rounding of the exact product, float64, half away from zero) patched into the golden
model must then fail them, which proves those tests can fail.

Combinations the toolchain does not handle yet are listed in ``KNOWN_BUGS`` / ``QDQ_BUGS`` and marked
``xfail(strict=True)``: they must fail with a :class:`~systolix.errors.SystolixError`, and start failing
the suite (XPASS) once fixed, so that the mark is removed.
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest

from systolix.cli import main
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.quantize import requant
from systolix.quantize.ptq import QuantizationWarning, quantize_model
from systolix.sim.simulate import simulate
from tests.sim import model_builders as mb
from tests.sim.model_builders import FloatGraph, assert_bit_exact, describe_mismatches

CALIB_SAMPLES = 32
TEST_SAMPLES = 12
RANDOM_SAMPLES = 12


# ------------------------------------------------------------------------------------------------
# Helpers


def float_samples(model: onnx.ModelProto, n: int, seed: int) -> np.ndarray:
    dims = model.graph.input[0].type.tensor_type.shape.dim[1:]
    shape = (n, *(d.dim_value for d in dims))
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def quantize_and_check(tmp_path: Path, model: onnx.ModelProto, **options) -> None:
    """Quantize ``model`` on random calibration data, then check it on float samples and random codes."""
    src, out = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    onnx.save(model, str(src))
    np.savez(tmp_path / "calib.npz", x=float_samples(model, CALIB_SAMPLES, 1))
    np.savez(tmp_path / "test.npz", x=float_samples(model, TEST_SAMPLES, 2))
    if options.get("quant_format") == "qdq":
        with pytest.warns(QuantizationWarning):
            quantize_model(src, tmp_path / "calib.npz", out, **options)
    else:
        result = quantize_model(src, tmp_path / "calib.npz", out, **options)
        assert result.exact_on_any_x86, result.notes
    assert_bit_exact(out, inputs=tmp_path / "test.npz")
    assert_bit_exact(out, random=RANDOM_SAMPLES, seed=3)


# ------------------------------------------------------------------------------------------------
# Float models: every op and attribute combination


def _conv_net(sample: tuple[int, ...], out_ch: int, kernel: tuple[int, ...], act: str | None = "Relu",
              **attrs) -> Callable[[], onnx.ModelProto]:
    """Conv [+ activation] -> a second 1x1 conv (so the first conv's output is an intermediate tensor)."""

    def build() -> onnx.ModelProto:
        g = FloatGraph(sample, seed=len(sample) * 7 + out_ch)
        y = g.conv("x", out_ch, kernel, **attrs)
        if act is not None:
            y = g.op(act, [y])
        y = g.conv(y, 3, (1,) * len(kernel))
        return g.build(y)

    return build


CONV_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv2d_3x3_pad1": _conv_net((3, 13, 7), 5, (3, 3), pads=[1, 1, 1, 1]),
    "conv2d_stride2_asym_pads": _conv_net((3, 13, 7), 4, (3, 3), strides=[2, 2], pads=[1, 0, 2, 1]),
    "conv2d_stride3_k5x3": _conv_net((2, 14, 11), 4, (5, 3), strides=[3, 3], pads=[2, 1, 0, 2]),
    "conv2d_stride_1x2": _conv_net((3, 9, 12), 4, (3, 2), strides=[1, 2], pads=[0, 1, 1, 0]),
    "conv2d_same_upper_s2": _conv_net((3, 13, 7), 4, (4, 3), strides=[2, 2], auto_pad="SAME_UPPER"),
    "conv2d_same_lower_s2": _conv_net((3, 13, 7), 4, (4, 3), strides=[2, 2], auto_pad="SAME_LOWER"),
    "conv2d_same_lower_k2": _conv_net((2, 8, 9), 3, (2, 2), auto_pad="SAME_LOWER"),
    "conv2d_valid": _conv_net((3, 13, 7), 4, (3, 5), auto_pad="VALID"),
    "conv2d_dilation2": _conv_net((3, 13, 11), 4, (3, 3), dilations=[2, 2], pads=[2, 2, 2, 2]),
    "conv2d_dilation3_stride2": _conv_net((2, 15, 13), 4, (3, 2), dilations=[3, 2], strides=[2, 2],
                                          pads=[1, 2, 3, 0]),
    "conv2d_groups2": _conv_net((4, 9, 8), 6, (3, 3), group=2, pads=[1, 1, 1, 1]),
    "conv2d_groups3": _conv_net((6, 9, 8), 9, (3, 3), group=3, strides=[2, 1]),
    "conv2d_depthwise": _conv_net((4, 11, 9), 4, (3, 3), group=4, pads=[1, 1, 1, 1]),
    "conv2d_depthwise_x2_s2": _conv_net((4, 11, 9), 8, (3, 3), group=4, strides=[2, 2], pads=[0, 1, 1, 0]),
    "conv2d_no_bias": _conv_net((3, 7, 7), 4, (3, 3), bias=False),
    "conv2d_1x1_no_act": _conv_net((5, 6, 5), 7, (1, 1), act=None),
    "conv1d_k5_s2": _conv_net((3, 29), 4, (5,), strides=[2], pads=[2, 1]),
    "conv1d_dilation2_groups2": _conv_net((4, 31), 6, (3,), dilations=[2], group=2, pads=[0, 3]),
    "conv1d_same_upper_s3": _conv_net((3, 20), 4, (4,), strides=[3], auto_pad="SAME_UPPER"),
    "conv1d_depthwise_dil3": _conv_net((5, 25), 5, (3,), group=5, dilations=[3], pads=[3, 3]),
}

# (activation_type, per_channel)
CONFIGS = {"s8_per_channel": ("int8", True), "s8_per_tensor": ("int8", False), "u8_per_channel": ("uint8", True)}


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("case", list(CONV_CASES))
def test_conv_geometry(tmp_path: Path, case: str, config: str) -> None:
    activation_type, per_channel = CONFIGS[config]
    quantize_and_check(tmp_path, CONV_CASES[case](), activation_type=activation_type, per_channel=per_channel)


def _net(sample: tuple[int, ...], body: Callable[[FloatGraph, str], str], seed: int = 0
         ) -> Callable[[], onnx.ModelProto]:
    """A first conv (3x3, pad 1, 6 channels / 1D: k3) on ``x``, then ``body``."""

    def build() -> onnx.ModelProto:
        g = FloatGraph(sample, seed=seed)
        spatial = len(sample) - 1
        y = g.conv("x", 6, (3,) * spatial, pads=[1] * (2 * spatial))
        return g.build(body(g, y))

    return build


def _pool(op: str, **attrs) -> Callable[[FloatGraph, str], str]:
    return lambda g, y: g.conv(g.op(op, [g.op("Relu", [y])], **attrs), 3, (1, 1))


def _residual(g: FloatGraph, y: str) -> str:
    a = g.op("Relu", [g.conv(y, 6, (3, 3), pads=[1, 1, 1, 1])])
    b = g.conv(y, 6, (1, 1))
    return g.op("Relu", [g.op("Add", [a, b])])


def _residual_skip(g: FloatGraph, y: str) -> str:
    y = g.op("Relu", [y])
    return g.op("Add", [y, g.conv(y, 6, (3, 3), pads=[1, 1, 1, 1])])


def _concat(g: FloatGraph, y: str) -> str:
    a = g.op("Relu", [g.conv(y, 4, (3, 3), pads=[1, 1, 1, 1])])
    b = g.op("Sigmoid", [g.conv(y, 3, (1, 1))])
    return g.conv(g.op("Concat", [a, b, y], axis=1), 2, (1, 1))


def _head(g: FloatGraph, y: str, *, reshape: bool = False, softmax: bool = False) -> str:
    y = g.op("MaxPool", [g.op("Relu", [y])], kernel_shape=[2, 2], strides=[2, 2])
    y = g.reshape(y, [0, -1]) if reshape else g.op("Flatten", [y])
    y = g.op("Relu", [g.gemm(y, 16, trans_b=1)])
    y = g.gemm(y, 10)
    return g.op("Softmax", [y], axis=1) if softmax else y


OP_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "batchnorm_relu": _net((3, 9, 10), lambda g, y: g.conv(g.op("Relu", [g.batch_norm(y)]), 3, (1, 1))),
    "batchnorm_no_bias_conv": _net((3, 9, 10), lambda g, y: g.op(
        "Relu", [g.batch_norm(g.conv(y, 5, (3, 3), bias=False, strides=[2, 2]))])),
    "clip_0_6": _net((3, 9, 10), lambda g, y: g.conv(g.clip(y, 0.0, 6.0), 3, (1, 1))),
    "clip_narrow": _net((3, 9, 10), lambda g, y: g.conv(g.clip(y, -0.5, 0.8), 3, (1, 1))),
    "relu_after_maxpool": _net((3, 9, 10), lambda g, y: g.conv(
        g.op("Relu", [g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])]), 3, (1, 1))),
    "leaky_relu": _net((3, 9, 10), lambda g, y: g.conv(g.op("LeakyRelu", [y], alpha=0.1), 3, (1, 1))),
    "sigmoid": _net((3, 9, 10), lambda g, y: g.conv(g.op("Sigmoid", [y]), 3, (1, 1))),
    "tanh_maxpool": _net((3, 9, 10), lambda g, y: g.conv(
        g.op("MaxPool", [g.op("Tanh", [y])], kernel_shape=[2, 2], strides=[2, 2]), 3, (1, 1))),
    "tanh_output": _net((3, 9, 10), lambda g, y: g.op("Tanh", [y])),
    "maxpool_k3_s2_p1": _net((3, 13, 11), _pool("MaxPool", kernel_shape=[3, 3], strides=[2, 2],
                                                pads=[1, 1, 1, 1])),
    "maxpool_ceil": _net((3, 13, 11), _pool("MaxPool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "maxpool_asym_pads_ceil": _net((3, 13, 11), _pool("MaxPool", kernel_shape=[3, 2], strides=[2, 3],
                                                      pads=[0, 1, 1, 0], ceil_mode=1)),
    "maxpool_dilation2": _net((3, 13, 11), _pool("MaxPool", kernel_shape=[2, 3], dilations=[2, 2],
                                                 strides=[1, 2])),
    "maxpool_1d": _net((3, 27), lambda g, y: g.conv(g.op("MaxPool", [y], kernel_shape=[3], strides=[2],
                                                         pads=[1, 1], ceil_mode=1), 3, (1,))),
    "avgpool_pads_exclude": _net((3, 13, 11), _pool("AveragePool", kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 1, 1, 1], count_include_pad=0)),
    "avgpool_pads_include": _net((3, 13, 11), _pool("AveragePool", kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 0, 1, 2], count_include_pad=1)),
    "avgpool_ceil": _net((3, 13, 11), _pool("AveragePool", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)),
    "avgpool_k3x2_s1": _net((3, 8, 9), _pool("AveragePool", kernel_shape=[3, 2])),
    "avgpool_whole_input": _net((3, 7, 5), lambda g, y: g.gemm(
        g.op("Flatten", [g.op("AveragePool", [g.op("Relu", [y])], kernel_shape=[7, 5])]), 4)),
    "avgpool_1d": _net((3, 27), lambda g, y: g.conv(g.op("AveragePool", [y], kernel_shape=[4], strides=[3],
                                                         pads=[1, 2], count_include_pad=1), 3, (1,))),
    "global_average_pool": _net((3, 9, 10), lambda g, y: g.gemm(
        g.op("Flatten", [g.op("GlobalAveragePool", [g.op("Relu", [y])])]), 5)),
    "global_average_pool_1d": _net((3, 23), lambda g, y: g.op("GlobalAveragePool", [g.op("Relu", [y])])),
    "gemm_transb0": _net((3, 6, 6), lambda g, y: g.gemm(g.op("Flatten", [y]), 10, trans_b=0)),
    "gemm_transb1_alpha": _net((3, 6, 6), lambda g, y: g.gemm(g.op("Flatten", [y]), 10, trans_b=1, alpha=0.37)),
    "gemm_transb0_alpha_no_bias": _net((3, 6, 6), lambda g, y: g.gemm(
        g.op("Flatten", [y]), 10, alpha=1.9, bias=False)),
    "matmul_add": _net((3, 6, 6), lambda g, y: g.matmul_add(g.op("Flatten", [g.op("Relu", [y])]), 10)),
    "relu_after_concat": _net((3, 9, 8), lambda g, y: g.conv(g.op("Relu", [g.op(
        "Concat", [g.conv(y, 2, (1, 1)), g.conv(y, 3, (3, 3), pads=[1, 1, 1, 1])], axis=1)]), 3, (1, 1))),
    "relu_after_avgpool": _net((3, 9, 8), lambda g, y: g.conv(g.op("Relu", [g.op(
        "AveragePool", [y], kernel_shape=[2, 2], strides=[2, 2])]), 3, (1, 1))),
    "relu_after_global_average_pool": _net((3, 9, 8), lambda g, y: g.op("Relu", [g.op("GlobalAveragePool", [y])])),
    "clip_after_gemm": _net((3, 6, 6), lambda g, y: g.gemm(g.clip(g.gemm(g.op("Flatten", [y]), 12), -1.0, 1.5), 5)),
    "sigmoid_output": _net((3, 6, 6), lambda g, y: g.op("Sigmoid", [g.gemm(g.op("Flatten", [y]), 5)])),
    "leaky_relu_output": _net((3, 6, 6), lambda g, y: g.op("LeakyRelu", [y], alpha=0.05)),
    "relu_after_flatten": _net((3, 6, 6), lambda g, y: g.gemm(g.op("Relu", [g.op("Flatten", [y])]), 10)),
    "residual_two_branches": _net((3, 9, 8), _residual),
    "residual_skip": _net((3, 9, 8), _residual_skip),
    "concat_channels": _net((3, 9, 8), _concat),
    "flatten_head": _net((3, 9, 8), _head),
    "reshape_head_softmax": _net((3, 9, 8), lambda g, y: _head(g, y, reshape=True, softmax=True)),
    "dropout_identity": _net((3, 9, 8), lambda g, y: g.conv(
        g.op("Identity", [g.op("Dropout", [g.op("Relu", [y])])]), 3, (1, 1))),
}


# Combinations the toolchain does not handle: none at the moment (an entry makes the case a strict xfail,
# so a fixed bug shows up as XPASS and its entry must go).
KNOWN_BUGS: dict[str, str] = {}
QDQ_BUGS: dict[str, str] = {}


def _cases(names, bugs: dict[str, str]) -> list:
    return [pytest.param(n, marks=pytest.mark.xfail(raises=SystolixError, strict=True, reason=bugs[n]))
            if n in bugs else n for n in names]


@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("case", _cases(OP_CASES, KNOWN_BUGS))
def test_ops(tmp_path: Path, case: str, config: str) -> None:
    activation_type, per_channel = CONFIGS[config]
    quantize_and_check(tmp_path, OP_CASES[case](), activation_type=activation_type, per_channel=per_channel)


def _mixed_net() -> onnx.ModelProto:
    """A small network using most ops at once: the model for the calibration-method and QDQ cases."""
    g = FloatGraph((3, 13, 11), seed=5)
    y = g.op("Relu", [g.batch_norm(g.conv("x", 8, (3, 3), strides=[2, 2], pads=[1, 1, 1, 1]))])
    y = _residual_skip(g, g.conv(y, 6, (1, 1)))
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    y = g.conv(y, 6, (3, 3), group=3, pads=[1, 1, 1, 1])
    y = g.op("LeakyRelu", [y], alpha=0.2)
    y = g.op("GlobalAveragePool", [y])
    y = g.gemm(g.op("Flatten", [y]), 10, trans_b=1)
    return g.build(g.op("Softmax", [y], axis=1))


@pytest.mark.parametrize("activation_type", ["int8", "uint8"])
@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_calibration_methods(tmp_path: Path, method: str, activation_type: str) -> None:
    quantize_and_check(tmp_path, _mixed_net(), method=method, activation_type=activation_type)


QDQ_CASES = ["conv2d_stride2_asym_pads", "conv2d_depthwise", "conv1d_k5_s2"]
QDQ_OP_CASES = ["residual_two_branches", "concat_channels", "avgpool_pads_exclude", "global_average_pool",
                "reshape_head_softmax", "leaky_relu", "gemm_transb1_alpha", "matmul_add"]


@pytest.mark.parametrize("activation_type", ["int8", "uint8"])
@pytest.mark.parametrize("case", _cases([*QDQ_CASES, *QDQ_OP_CASES, "mixed"], QDQ_BUGS))
def test_qdq_format(tmp_path: Path, case: str, activation_type: str) -> None:
    """QDQ models are imported through the canonical form; the reference is that integer form."""
    model = _mixed_net() if case == "mixed" else {**CONV_CASES, **OP_CASES}[case]()
    quantize_and_check(tmp_path, model, quant_format="qdq", activation_type=activation_type)


def test_cli_quantize_and_simulate(tmp_path: Path) -> None:
    """The same flow through ``systolix quantize`` and ``systolix simulate --random ... --layers --json``."""
    model = _mixed_net()
    onnx.save(model, str(tmp_path / "float.onnx"))
    np.savez(tmp_path / "calib.npz", x=float_samples(model, CALIB_SAMPLES, 1))
    np.savez(tmp_path / "test.npz", x=float_samples(model, TEST_SAMPLES, 2))
    q = str(tmp_path / "int8.onnx")
    assert main(["quantize", str(tmp_path / "float.onnx"), "--calib", str(tmp_path / "calib.npz"), "-o", q]) == 0
    for source in (["--random", "10"], ["--inputs", str(tmp_path / "test.npz")]):
        report = tmp_path / "report.json"
        assert main(["simulate", q, *source, "--layers", "--json", str(report)]) == 0
        data = json.loads(report.read_text())
        assert data["bit_exact"] is True
        assert data["mismatches"] == 0
        assert data["compared_elements"] > 0
        assert len(data["layers"]) >= len(import_model(q).ir.layers)


# ------------------------------------------------------------------------------------------------
# QOperator models built directly, random parameters

QOP_CASES: dict[str, Callable[[], onnx.ModelProto]] = {
    "qlinearconv_s8s8_per_channel": lambda: mb.qlinear_conv_model(pads=[1, 0, 2, 1], strides=[2, 1]),
    "qlinearconv_s8s8_per_tensor_dil": lambda: mb.qlinear_conv_model(per_channel=False, dilations=[2, 2], seed=1),
    "qlinearconv_u8s8": lambda: mb.qlinear_conv_model(x_dtype="uint8", seed=2, pads=[1, 1, 1, 1]),
    "qlinearconv_u8u8_per_channel_g3": lambda: mb.qlinear_conv_model(x_dtype="uint8", w_dtype="uint8", out_ch=6,
                                                                     group=3, seed=3),
    "qlinearconv_u8u8_per_tensor": lambda: mb.qlinear_conv_model(x_dtype="uint8", w_dtype="uint8",
                                                                 per_channel=False, strides=[3, 2], seed=4),
    "qlinearconv_depthwise_u8": lambda: mb.qlinear_conv_model(x_dtype="uint8", w_dtype="uint8", out_ch=3, group=3,
                                                              pads=[1, 1, 1, 1], seed=5),
    "qlinearconv_depthwise_s8": lambda: mb.qlinear_conv_model(out_ch=3, group=3, pads=[2, 1, 0, 1], seed=6),
    "qlinearconv_1d_no_bias": lambda: mb.qlinear_conv_model(sample_shape=(3, 17), kernel=(4,), strides=[2],
                                                            pads=[1, 2], bias=False, seed=7),
    "qlinearmatmul_s8": lambda: mb.qlinear_matmul_model(),
    "qlinearmatmul_u8": lambda: mb.qlinear_matmul_model(dtype="uint8", seed=1),
    "qgemm_s8": lambda: mb.qgemm_model(),
    "qgemm_s8_transb_alpha_per_tensor": lambda: mb.qgemm_model(trans_b=1, alpha=0.7, per_column=False, seed=1),
    "qgemm_u8": lambda: mb.qgemm_model(dtype="uint8", alpha=1.3, seed=2),
    "qlinearadd_broadcast_s8": lambda: mb.qlinear_add_model(),
    "qlinearadd_broadcast_u8": lambda: mb.qlinear_add_model(dtype="uint8", seed=1),
    "qlinearaveragepool_pads_include": lambda: mb.qlinear_pool_model(
        "QLinearAveragePool", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], count_include_pad=1),
    "qlinearaveragepool_u8_ceil_exclude": lambda: mb.qlinear_pool_model(
        "QLinearAveragePool", dtype="uint8", kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1], ceil_mode=1,
        seed=1),
    "qlinearaveragepool_whole_input": lambda: mb.qlinear_pool_model("QLinearAveragePool", kernel_shape=[11, 9],
                                                                    seed=2),
    "qlinearglobalaveragepool_s8": lambda: mb.qlinear_pool_model("QLinearGlobalAveragePool", seed=3),
    "qlinearglobalaveragepool_u8": lambda: mb.qlinear_pool_model("QLinearGlobalAveragePool", dtype="uint8", seed=4),
    "qlinearleakyrelu_s8": lambda: mb.qlinear_unary_model("QLinearLeakyRelu", alpha=0.1),
    "qlinearleakyrelu_u8": lambda: mb.qlinear_unary_model("QLinearLeakyRelu", dtype="uint8", alpha=0.3, seed=1),
    "qlinearsigmoid_s8": lambda: mb.qlinear_unary_model("QLinearSigmoid"),
    "qlinearsigmoid_u8": lambda: mb.qlinear_unary_model("QLinearSigmoid", dtype="uint8", seed=1),
    "qlinearconcat_s8": lambda: mb.qlinear_concat_model(),
    "qlinearconcat_u8": lambda: mb.qlinear_concat_model(dtype="uint8", seed=1),
    "maxpool_s8_pads_ceil_dilation": lambda: mb.int8_maxpool_model(kernel_shape=[3, 3], strides=[2, 2],
                                                                   pads=[1, 1, 1, 1], ceil_mode=1, dilations=[2, 1]),
    "maxpool_u8_asym": lambda: mb.int8_maxpool_model(dtype="uint8", kernel_shape=[2, 3], strides=[3, 1],
                                                     pads=[0, 2, 1, 0]),
}


@pytest.mark.parametrize("case", list(QOP_CASES))
def test_qoperator(tmp_path: Path, case: str) -> None:
    path = tmp_path / "model.onnx"
    onnx.save(QOP_CASES[case](), str(path))
    assert_bit_exact(path, random=64, seed=11)


# ------------------------------------------------------------------------------------------------
# Near ties: accumulators whose exact product with the scale is k + 1/2, or within a float32 ulp of it


def _wrong_requantizer(kind: str) -> Callable:
    """A deliberately wrong requantization with :func:`~systolix.quantize.requant.requantize`'s signature.

    ``single``: one round-half-even of the exact product ``acc * scale``; ``float64``: the product in
    float64 (exact here, so the same single rounding); ``half_away``: onnxruntime's float32 product, then
    rounding half away from zero.
    """

    def requantize(acc, scale, y_zp, qmin, qmax, *, channel_axis=1):
        acc = np.asarray(acc)
        scale = np.asarray(scale, np.float32).reshape(-1)
        shape = [1] * acc.ndim
        shape[channel_axis % acc.ndim] = scale.size
        s = scale.reshape(shape)
        zp = np.asarray(y_zp, np.int64).reshape(shape if np.size(y_zp) > 1 else ())
        if kind == "single":
            q = np.vectorize(lambda a, f: round(Fraction(int(a)) * Fraction(float(f))), otypes=[np.int64])(acc, s)
        elif kind == "float64":
            q = np.rint(acc.astype(np.float64) * s.astype(np.float64)).astype(np.int64)
        else:
            v = (acc.astype(np.float32) * s).astype(np.float32)
            q = (np.sign(v) * np.floor(np.abs(v) + np.float32(0.5))).astype(np.int64)
        return (np.clip(q, qmin - zp, qmax - zp) + zp).astype(np.int32)

    return requantize


def _tie_model(kind: str, tmp_path: Path) -> tuple[Path, Path, list[mb.NearTie], int]:
    """The model, its input file, the ties and how often input code 0 (the tie accumulator) occurs."""
    ties = mb.near_ties(24, seed=4) + mb.exact_ties(8, seed=5)
    if kind == "qlinearconv":
        model, x = mb.near_tie_conv_model(ties)
        zeros = int(np.count_nonzero(x == 0))
    else:
        model, x = mb.near_tie_qgemm_model(ties)
        zeros = int(np.count_nonzero(x[:, 0] == 0))
    path, data = tmp_path / "ties.onnx", tmp_path / "ties.npz"
    onnx.save(model, str(path))
    np.savez(data, x=x)
    return path, data, ties, zeros


def test_near_ties_are_near_ties() -> None:
    """The construction itself, checked with exact rationals: onnxruntime's float32 sequence and a single
    rounding disagree on every near tie, and the exact ties are exactly half-integers."""
    for tie in mb.near_ties(24, seed=4):
        exact = Fraction(tie.acc) * Fraction(float(tie.scale))
        half_ulp = 2.0 ** (math.frexp(abs(float(exact)))[1] - 25)  # half a float32 ulp at |exact|
        assert 0 < tie.distance <= half_ulp
        assert tie.double == int(np.rint(np.float32(np.float32(tie.acc) * tie.scale)))
        assert tie.double != tie.single
        assert requant.requantize(np.array([tie.acc]), tie.scale, 0, -128, 127)[0] == tie.double
    for tie in mb.exact_ties(8, seed=5):
        assert tie.distance == 0


@pytest.mark.parametrize("kind", ["qlinearconv", "qgemm"])
def test_near_ties_bit_exact(tmp_path: Path, kind: str) -> None:
    path, data, _, _ = _tie_model(kind, tmp_path)
    result = simulate(path, inputs=data, layers=True)
    assert result.comparison.elements > 0
    assert result.comparison.mismatches == 0, describe_mismatches(result.comparison)


@pytest.mark.parametrize("wrong", ["single", "float64", "half_away"])
@pytest.mark.parametrize("kind", ["qlinearconv", "qgemm"])
def test_near_ties_catch_wrong_rounding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str,
                                        wrong: str) -> None:
    """With a wrong requantizer patched into the golden model, the same models must show mismatches: the
    near ties catch a single rounding (and float64), the exact ties catch rounding half away from zero."""
    path, data, ties, zeros = _tie_model(kind, tmp_path)
    for module in ("systolix.quantize.requant", "systolix.quantize.golden.qlinear_conv",
                   "systolix.quantize.golden.qgemm"):
        monkeypatch.setattr(importlib.import_module(module), "requantize", _wrong_requantizer(wrong))
    result = simulate(path, inputs=data, layers=True)
    if wrong == "half_away":
        # Exact ties k + 1/2 with k even (positive) or odd (negative) round differently.
        expected = sum(t.double != (math.floor(t.acc * float(t.scale)) + 1 if t.acc > 0 else
                                    math.ceil(t.acc * float(t.scale)) - 1) for t in mb.exact_ties(8, seed=5))
    else:
        expected = sum(t.double != t.single for t in ties)
        assert expected == 24
    assert expected > 0
    # Each tie accumulator is computed wherever the input code is 0.
    assert result.comparison.mismatches >= expected * zeros, result.comparison.mismatches
    first = result.comparison.first_mismatch
    assert first is not None and first.op == ("QLinearConv" if kind == "qlinearconv" else "QGemm")
