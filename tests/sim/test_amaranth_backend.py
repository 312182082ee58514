"""Whole networks on the accelerator RTL (Amaranth's simulator), compared with onnxruntime element by element.

The generated networks cover every layer kind the accelerator runs (conv with asymmetric pads, dilation,
groups, depthwise, 1D conv, residual add, tanh/sigmoid tables, max pooling with padding, global average
pooling, dense after a flatten, uint8 and int8 activations). Every intermediate tensor is read back from
the accelerator's activation memory and compared (``--layers``).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.cli import main
from systolix.quantize.ptq import QuantizationWarning, quantize_model
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import net1d, net2d
from tests.conftest import EXAMPLE


def _quantized(tmp_path: Path, build, act: str) -> Path:
    shape = build(tmp_path / "float.onnx")
    np.savez(tmp_path / "calib.npz", x=np.random.default_rng(2).normal(0, 1, (32, *shape)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        quantize_model(tmp_path / "float.onnx", tmp_path / "calib.npz", tmp_path / "int.onnx", activation_type=act)
    return tmp_path / "int.onnx"


@pytest.mark.parametrize("build,act,preset", [(net2d, "int8", "4x4"), (net2d, "uint8", "4x4"),
                                              (net1d, "int8", "4x4"), (net1d, "uint8", "8x8")],
                         ids=["net2d-int8-4x4", "net2d-uint8-4x4", "net1d-int8-4x4", "net1d-uint8-8x8"])
def test_generated_network_bit_exact_on_rtl(tmp_path, build, act, preset):
    model = _quantized(tmp_path, build, act)
    result = simulate(model, random=2, backend="amaranth", layers=True, config=AcceleratorConfig.preset(preset))
    cmp = result.comparison
    assert cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    hw = result.hardware
    assert hw["cycles"] > 0 and len(hw["hardware_layers"]) > 0
    # The compiler's cycle prediction is within 10% of the measured cycles.
    assert abs(hw["cycles"] - hw["predicted_cycles"]) <= 0.1 * hw["cycles"]
    kinds = {layer["op"] for layer in hw["hardware_layers"]}
    assert len(kinds) >= 4


def test_bundled_example_on_rtl_4x4(tmp_path):
    """The bundled MNIST CNN on a 4x4 array: one test image, every layer, through the CLI."""
    quantized = tmp_path / "int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", quantized)
    test = np.load(EXAMPLE / "test.npz")
    one = tmp_path / "one.npz"
    np.savez(one, x=test["x"][:1], y=test["y"][:1])
    report = tmp_path / "report.json"
    assert main(["simulate", str(quantized), "--inputs", str(one), "--backend", "amaranth", "--array", "4x4",
                 "--layers", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["bit_exact"] and data["mismatches"] == 0 and data["compared_elements"] > 16_000
    assert data["cycles"] > 0 and {"macs", "cycles", "utilization"} <= set(data["hardware_layers"][0])


@pytest.mark.slow
def test_bundled_example_few_images_on_rtl_4x4(tmp_path):
    quantized = tmp_path / "int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", quantized)
    test = np.load(EXAMPLE / "test.npz")
    few = tmp_path / "few.npz"
    np.savez(few, x=test["x"][:4], y=test["y"][:4])
    result = simulate(quantized, inputs=few, backend="amaranth", layers=True, config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.samples == 4 and result.comparison.mismatches == 0, result.comparison.first_mismatch


@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_host_words_hold_every_lane(lanes):
    """Rows packed into memory words and back (16 lanes of 8 bits need 128-bit words)."""
    from systolix.sim.amaranth_backend import _pack_rows, _unpack_rows

    rows = np.random.default_rng(lanes).integers(-128, 128, (20, lanes)).astype(np.int8)
    words = _pack_rows(rows)
    assert all(0 <= w < 1 << (8 * lanes) for w in words)
    assert words[0] == sum((int(v) & 0xFF) << (8 * i) for i, v in enumerate(rows[0]))
    back = _unpack_rows(words, lanes)
    assert back.shape == rows.shape and back.dtype == rows.dtype
    np.testing.assert_array_equal(back, rows)
