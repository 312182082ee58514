"""The committed torch squeeze-and-excite fixture on Verilator: four quantizations, two array sizes.

``tests/corpus/torch_se_small_op13.onnx`` (``examples/corpus/torch_export.py`` ``se``: two SE blocks, each a
``Mul`` of ``[N, C, H, W]`` and ``[N, C, 1, 1]``) quantized by ``systolix quantize`` (QOperator and QDQ, int8 and
uint8 activations; 64 random calibration samples), simulated on Verilator (4x4 and 8x8 presets) with every
layer compared with onnxruntime. Prints per case: samples, compared elements, mismatches, cycles per inference
(measured and predicted) and the MUL layers' measured and predicted cycles. Exit 1 on any mismatch.
Usage: ``python benchmarks/squeeze_excite.py [--samples N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "corpus" / "torch_se_small_op13.onnx"


def main(argv: list[str] | None = None) -> int:
    from systolix.arch.config import AcceleratorConfig
    from systolix.quantize.ptq import QuantizationWarning, quantize_model
    from systolix.sim.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    args = parser.parse_args(argv)
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.savez(folder / "calib.npz", x=np.random.default_rng(1).normal(0, 1, (64, 3, 16, 16)).astype(np.float32))
        for fmt, act in (("qoperator", "int8"), ("qdq", "uint8"), ("qoperator", "uint8"), ("qdq", "int8")):
            model = folder / f"se_{fmt}_{act}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", QuantizationWarning)
                quantize_model(FIXTURE, folder / "calib.npz", model, quant_format=fmt, activation_type=act)
            for preset in ("4x4", "8x8"):
                result = simulate(model, random=args.samples, backend="verilator", layers=True,
                                  config=AcceleratorConfig.preset(preset))
                cmp, hw = result.comparison, result.hardware
                muls = [(int(layer["cycles"]), layer["predicted_cycles"]) for layer in hw["hardware_layers"]
                        if layer["op"] == "QLinearMul"]
                bad += cmp.mismatches
                print(f"{fmt} {act} {preset}: {cmp.samples} samples, {cmp.elements:,} elements, {cmp.mismatches} "
                      f"mismatches; {hw['cycles']:.0f} cycles (predicted {hw['predicted_cycles']}); MUL layers "
                      f"(measured, predicted) {muls}", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
