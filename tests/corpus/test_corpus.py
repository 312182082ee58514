"""The committed corpus fixtures (real exporters' files, ``examples/corpus/``) through the whole flow.

Every fixture of ``MANIFEST.json``: import (with the normaliser), quantize if float (``systolix quantize``'s
default), compile for the 8x8 preset, and simulate the build folder on the golden model with every layer
compared with onnxruntime, bit-exact. Two of them also on Verilator (the cached 8x8 and 4x4 builds). No torch
needed: the files are committed (``python examples/corpus/make_fixtures.py`` rewrites them).
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.build import build
from systolix.frontend.importer import import_model
from systolix.quantize.ptq import QuantizationWarning, quantize_model
from systolix.sim.simulate import simulate

HERE = Path(__file__).resolve().parent
MANIFEST = json.loads((HERE / "MANIFEST.json").read_text()) if (HERE / "MANIFEST.json").is_file() else {}
needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")
#: fixture -> the normaliser's rewrites it must report (names).
REWRITES = {
    "old_ir3_op6": ["drop-initializer-inputs", "upgrade-opset"],
    "old_ir3_op7_b5": ["drop-initializer-inputs", "upgrade-opset", "symbolic-batch"],
    "old_ir4_op8": ["upgrade-opset"],
    "old_ir5_op10_b5": ["drop-initializer-inputs", "upgrade-opset", "symbolic-batch"],
    "old_ir7_op12": ["upgrade-opset"],
    "helper_default": ["lower-opset", "lower-ir-version"],
    "helper_ir14_op13": ["lower-ir-version"],
    "tf_keras_cnn": ["fold-shape-computation"],
    "tf_keras_conv1d_tflite_int8": ["cancel-layout-round-trips", "reduce-mean-as-global-pool"],
    "torch_dynamo_mbnet_dynbatch": ["reduce-mean-as-global-pool"],
    "tf_keras_preproc": ["drop-unused-inputs", "hoist-transpose", "fold-input-scaling"],
    "torch_dynamo_mean_static": ["reduce-mean-as-global-pool"],
    "tf_keras_prefix": ["drop-unused-inputs", "hoist-transpose", "fold-input-scaling"],
    "tf_keras_prefix_tflite_int8": [],  # its Rescaling/Normalization: the host input prefix, not a rewrite
    "tf_keras_conv1d_pool": ["pool-1d", "cancel-layout-round-trips"],
    # a BatchNormalization after the activation: per-channel Mul/Add between tf2onnx's NHWC transposes
    "tf_keras_preproc_tflite_int8": ["hoist-transpose", "cancel-layout-round-trips"],
    "tf_keras_conv1d_pool_tflite_int8": ["fold-shape-computation", "cancel-layout-round-trips"],
}


def _fixture(name: str) -> Path:
    path = HERE / f"{name}.onnx"
    if not path.is_file():
        pytest.skip(f"fixture {path.name} is absent (python examples/corpus/make_fixtures.py writes it)")
    return path


def _prepared(name: str, folder: Path, preset: str = "8x8") -> tuple[Path, Path]:
    """(build folder, inputs.npz): quantized (float fixtures, 32 random calibration samples) and compiled."""
    path = _fixture(name)
    imported = import_model(path)
    if name in REWRITES:
        assert [line.split(":", 1)[0] for line in imported.normalized] == REWRITES[name]
    shape = imported.ir.inputs[0].shape[1:]
    rng = np.random.default_rng(0)
    model = path
    if not MANIFEST[name]["quantized"]:
        np.savez(folder / "calib.npz", x=rng.normal(0, 1, (32, *shape)).astype(np.float32))
        model = folder / "int8.onnx"
        quantize_model(path, folder / "calib.npz", model)
    np.savez(folder / "inputs.npz", x=rng.normal(0, 1, (4, *shape)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        build(model, folder / "build", AcceleratorConfig.preset(preset))
    return folder / "build", folder / "inputs.npz"


def test_manifest_lists_the_fixtures():
    if not MANIFEST:
        pytest.skip("tests/corpus/MANIFEST.json is absent")
    assert set(REWRITES) <= set(MANIFEST)
    assert {"torch" in info["exporter"] for info in MANIFEST.values()} == {True, False}


@pytest.mark.parametrize("name", sorted(MANIFEST) or ["(no manifest)"])
def test_fixture_golden_bit_exact(name, tmp_path):
    if name not in MANIFEST:
        pytest.skip("tests/corpus/MANIFEST.json is absent")
    build_dir, inputs = _prepared(name, tmp_path)
    result = simulate(build_dir, inputs=inputs, backend="golden", layers=True)
    cmp = result.comparison
    assert cmp.samples == 4 and cmp.elements > 0 and len(cmp.layers) >= 3
    assert cmp.mismatches == 0, cmp.first_mismatch


# the cached presets' Verilator builds: a QDQ uint8 depthwise net and the residual + concat net on 8x8, the
# QOperator 1-D net on 4x4 (the residual net's 32x32 activations do not fit the 4x4 preset's buffer), and the
# squeeze-and-excite net (two Mul of [N, C, H, W] and [N, C, 1, 1]) quantized by ``systolix quantize`` on 4x4
@needs_verilator
@pytest.mark.parametrize("name,preset", [("torch_dwsep_small_op17_ortqdq_u8", "8x8"),
                                         ("torch_resnet_small_op13_ortqdq_s8", "8x8"),
                                         ("torch_conv1d_small_op13_ortqop_s8", "4x4"),
                                         ("tf_keras_conv1d_tflite_int8", "4x4"),
                                         ("tf_keras_conv1d", "4x4"),
                                         ("torch_dynamo_mbnet_dynbatch", "8x8"),
                                         ("tf_keras_preproc", "8x8"),
                                         ("tf_keras_prefix_tflite_int8", "8x8"),
                                         ("tf_keras_preproc_tflite_int8", "8x8"),
                                         ("tf_keras_conv1d_pool", "4x4"),
                                         ("tf_keras_conv1d_pool_tflite_int8", "4x4"),
                                         ("torch_se_small_op13", "4x4")])
def test_fixture_verilator_bit_exact(name, preset, tmp_path):
    if name not in MANIFEST:
        pytest.skip(f"{name} is not in tests/corpus/MANIFEST.json")
    build_dir, inputs = _prepared(name, tmp_path, preset)
    result = simulate(build_dir, inputs=inputs, backend="verilator", layers=True)
    cmp = result.comparison
    assert cmp.samples == 4 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    assert result.hardware["cycles"] > 0
