"""Compiled real models, run by the functional model, against the golden model, for every preset.

The bundled Keras MNIST example (quantized here), the 2018 MNIST CNN (quantized with 200 MNIST
images) and the two MLPerf Tiny int8 models (canonicalized by the importer). The presets' weight
buffers are too small for most of these models, so the memories are enlarged (the point here is the
arithmetic; sizes are checked in ``test_errors.py``). Every tensor is compared with
:func:`systolix.quantize.golden_model.run_golden`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from systolix.arch.config import PRESETS
from systolix.compiler.compile import compile_model
from systolix.compiler.model import run_program
from systolix.frontend import ir
from systolix.frontend.importer import import_model
from systolix.quantize.golden_model import run_golden
from systolix.quantize.ptq import quantize_model

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
EXAMPLE = REPO / "examples" / "keras_mnist"
MNIST_MODEL = SHARED / "models" / "mnist_cnn_2018.onnx"
MNIST_DATA = SHARED / "data" / "mnist5k.npz"
RESNET8 = SHARED / "models" / "mlperf_tiny_resnet8_int8.onnx"
KWS = SHARED / "models" / "mlperf_tiny_kws_dscnn_int8.onnx"

PRESET_NAMES = ("4x4", "8x8", "16x16")


def _big(preset: str) -> object:
    return dataclasses.replace(PRESETS[preset], act_buffer_depth=32768, weight_buffer_depth=32768,
                               param_memory_depth=1024)


@pytest.fixture(scope="module")
def keras_mnist(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    out = tmp_path_factory.mktemp("keras") / "model_int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", out)
    return import_model(out).ir


@pytest.fixture(scope="module")
def mnist_cnn(tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    if not (MNIST_MODEL.exists() and MNIST_DATA.exists()):
        pytest.skip("../shared is absent")
    d = tmp_path_factory.mktemp("mnist")
    with np.load(MNIST_DATA, allow_pickle=False) as data:
        x = data["x"][::25].reshape(-1, 1, 28, 28).astype(np.float32)  # 200 images, 20 per class
    np.savez(d / "calib.npz", Input3=x)
    quantize_model(MNIST_MODEL, d / "calib.npz", d / "mnist_int8.onnx")
    return import_model(d / "mnist_int8.onnx").ir


@pytest.fixture(scope="module")
def resnet8() -> ir.Model:
    if not RESNET8.exists():
        pytest.skip("../shared is absent")
    return import_model(RESNET8).ir


@pytest.fixture(scope="module")
def kws() -> ir.Model:
    if not KWS.exists():
        pytest.skip("../shared is absent")
    return import_model(KWS).ir


def _random_inputs(model: ir.Model, n: int, seed: int) -> dict[str, np.ndarray]:
    info = model.inputs[0]
    dtype = np.dtype(info.dtype)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return {info.name: np.random.default_rng(seed).integers(lo, hi + 1, (n, *info.shape[1:])).astype(dtype)}


def _check(model: ir.Model, preset: str, inputs: dict[str, np.ndarray]) -> None:
    config = _big(preset)
    golden = run_golden(model, inputs)
    program = compile_model(model, config, keep_all=True)
    got = run_program(program, config, inputs)
    assert set(golden) <= set(got)
    for name, want in golden.items():
        assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
        np.testing.assert_array_equal(got[name], want, err_msg=name)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_keras_mnist_example(keras_mnist: ir.Model, preset: str) -> None:
    with np.load(EXAMPLE / "test.npz", allow_pickle=False) as data:
        x = data["x"][:10]
    q = keras_mnist.input_quant[keras_mnist.inputs[0].name]
    from systolix.quantize.golden.quantize_linear import quantize_linear

    codes = quantize_linear(x, q.scale, int(q.zero_point), q.qmin, q.qmax).astype(q.np_dtype)
    _check(keras_mnist, preset, {keras_mnist.inputs[0].name: codes})


@pytest.mark.shared
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_mnist_cnn_2018(mnist_cnn: ir.Model, preset: str) -> None:
    with np.load(MNIST_DATA, allow_pickle=False) as data:
        x = data["x"][1::500][:10].reshape(-1, 1, 28, 28)  # images not used for calibration
    q = mnist_cnn.input_quant[mnist_cnn.inputs[0].name]
    from systolix.quantize.golden.quantize_linear import quantize_linear

    codes = quantize_linear(x.astype(np.float32), q.scale, int(q.zero_point), q.qmin, q.qmax).astype(q.np_dtype)
    _check(mnist_cnn, preset, {mnist_cnn.inputs[0].name: codes})


@pytest.mark.shared
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_mlperf_resnet8(resnet8: ir.Model, preset: str) -> None:
    _check(resnet8, preset, _random_inputs(resnet8, 6, seed=5))


@pytest.mark.shared
@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_mlperf_kws_dscnn(kws: ir.Model, preset: str) -> None:
    _check(kws, preset, _random_inputs(kws, 8, seed=6))


@pytest.mark.shared
def test_input_transpose_is_left_to_the_host(resnet8: ir.Model) -> None:
    program = compile_model(resnet8, _big("8x8"), im2col=False)
    (t,) = program.input_transform
    assert t.input == resnet8.inputs[0].name and t.perm == (0, 3, 1, 2)
    assert t.input not in program.tensors and t.output in program.tensors
    # With im2col (the default) the host also forms the first convolution's windows from the transposed
    # input, and writes only those.
    program = compile_model(resnet8, _big("8x8"))
    transpose, windows = program.input_transform
    assert transpose.perm == (0, 3, 1, 2) and windows.op == "Im2col" and windows.input == transpose.output
    assert transpose.output not in program.tensors and windows.output in program.tensors
    assert program.tensors[windows.output].channels == 3 * 3 * 3
