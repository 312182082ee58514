"""End to end on real models: the golden model against onnxruntime on every element of every layer.

Uses ``../shared`` (skipped when it is absent) and the bundled example. Accuracies are printed (``-s``)
and checked against onnxruntime running the quantized model itself.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from systolix.frontend.reference import reference_session
from systolix.quantize.ptq import quantize_model
from tests.sim.model_builders import assert_bit_exact

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO / ".." / "shared"
MODELS = SHARED / "models"
MNIST = SHARED / "data" / "mnist5k.npz"
EXAMPLE = REPO / "examples" / "keras_mnist"

needs_shared = pytest.mark.skipif(not (MODELS.is_dir() and MNIST.is_file()),
                                  reason="../shared (real models and data) is not beside the checkout")


def onnxruntime_accuracy(model_path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of a (drop-in, float-input) quantized model run by onnxruntime itself, sample by sample
    if its batch is fixed."""
    session = reference_session(str(model_path))
    info = session.get_inputs()[0]
    step = info.shape[0] if isinstance(info.shape[0], int) else len(x)
    out = np.concatenate([session.run(None, {info.name: x[i:i + step]})[0] for i in range(0, len(x), step)])
    return float(np.mean(out.reshape(len(x), -1).argmax(1) == y))


def _mnist_split(calib: int, test: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every 5th image for calibration, ``test`` images from the others (float32 [N, 1, 28, 28], 0..255)."""
    with np.load(MNIST, allow_pickle=False) as data:
        x, y = data["x"], data["y"]
    x = x.astype(np.float32)[:, None]
    index = np.arange(len(x))
    calib_x = x[index % 5 == 0][:calib]
    rest = index[index % 5 != 0]
    pick = rest[np.linspace(0, len(rest) - 1, test).round().astype(int)]  # spread over all classes
    return calib_x, x[pick], y[pick].astype(np.int64)


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize(("calib", "test"), [(200, 100), (1000, 1000)])
def test_mnist_cnn_2018(tmp_path: Path, calib: int, test: int) -> None:
    """The CNTK MNIST CNN quantized on MNIST images, simulated on held-apart images: 0 mismatches, and the
    golden model's accuracy is onnxruntime's on the quantized model."""
    calib_x, test_x, test_y = _mnist_split(calib, test)
    np.savez(tmp_path / "calib.npz", Input3=calib_x)
    np.savez(tmp_path / "test.npz", Input3=test_x, y=test_y)
    out = tmp_path / "mnist_int8.onnx"
    result = quantize_model(MODELS / "mnist_cnn_2018.onnx", tmp_path / "calib.npz", out)
    assert result.calib_samples == calib
    assert result.exact_on_any_x86
    sim = assert_bit_exact(out, inputs=tmp_path / "test.npz", min_distinct=10)
    cmp = sim.comparison
    assert cmp.samples == test
    reference = onnxruntime_accuracy(out, test_x, test_y)
    print(f"\nmnist_cnn_2018 ({calib} calib / {test} test): {cmp.elements:,} elements, {cmp.mismatches} mismatches, "
          f"accuracy golden {sim.accuracy['golden']:.2%}, onnxruntime {reference:.2%}, {sim.seconds['total']:.1f} s")
    assert sim.accuracy["golden"] == sim.accuracy["onnxruntime"] == reference
    assert reference > 0.9


MLPERF = ["mlperf_tiny_resnet8_int8.onnx", "mlperf_tiny_kws_dscnn_int8.onnx"]


@needs_shared
@pytest.mark.shared
@pytest.mark.parametrize("samples", [20, pytest.param(200, marks=pytest.mark.slow)])
@pytest.mark.parametrize("model", MLPERF)
def test_mlperf_tiny_int8(model: str, samples: int) -> None:
    """TFLite-quantized QDQ models: the integer canonical form (layers onnxruntime leaves in float are
    converted to their integer meaning), random int8 inputs, every layer."""
    sim = assert_bit_exact(MODELS / model, random=samples, seed=7, min_distinct=3)
    cmp = sim.comparison
    print(f"\n{model} ({samples} random samples): {len(cmp.layers)} tensors, {cmp.elements:,} elements, "
          f"{cmp.mismatches} mismatches, {len(sim.converted)} layers converted, {sim.seconds['total']:.1f} s")
    assert sim.converted, "these models have layers onnxruntime runs in float; the report must say so"


def test_keras_mnist_example(tmp_path: Path) -> None:
    """The bundled example on its whole test set: 0 mismatches, and the accuracy is that of onnxruntime
    running the quantized model (float input, Softmax output) on the same images."""
    out = tmp_path / "model_int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", out)
    with np.load(EXAMPLE / "test.npz", allow_pickle=False) as data:
        x, y = data["x"], data["y"].astype(np.int64)
    sim = assert_bit_exact(out, inputs=EXAMPLE / "test.npz", min_distinct=10)
    cmp = sim.comparison
    assert cmp.samples == len(x) == 500
    assert {o.name for o in onnx.load(str(out)).graph.output} == {"probabilities"}
    reference = onnxruntime_accuracy(out, x, y)
    print(f"\nkeras_mnist example ({len(x)} test images): {cmp.elements:,} elements, {cmp.mismatches} mismatches, "
          f"accuracy golden {sim.accuracy['golden']:.2%}, onnxruntime {reference:.2%}")
    assert sim.accuracy["golden"] == sim.accuracy["onnxruntime"] == reference
