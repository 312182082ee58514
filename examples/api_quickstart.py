"""The systolix Python API on the bundled example: load -> quantize -> compile (4x4) -> simulate on Verilator.

Run it from the repository (after ``make install``)::

    .venv/bin/python examples/api_quickstart.py [OUT_FOLDER]

It writes the quantized model and the build folder to OUT_FOLDER (default: a temporary folder, removed at
the end), runs 20 test images on the accelerator's RTL compiled by Verilator, compares every layer with
onnxruntime, and prints whether the result is bit-exact and the cycles per inference. The first run builds
the Verilator simulator of the 4x4 configuration (about a minute); later runs reuse it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import systolix

EXAMPLE = Path(__file__).resolve().parent / "keras_mnist"


def main(out: Path) -> int:
    model = systolix.load(EXAMPLE / "model.onnx")
    print(model.summary())

    q = model.quantize(EXAMPLE / "calib.npz", out=out / "model_int8.onnx")
    print(q.quantization.summary())

    build = q.compile(config="4x4", out=out / "build_4x4")
    print(f"compiled: {build.folder}, {build.predicted_cycles:,} predicted cycles per inference")

    test = np.load(EXAMPLE / "test.npz")
    images, labels = test["x"][:20], test["y"][:20]
    result = build.simulate((images, labels), backend="verilator", layers=True)
    print(f"bit_exact: {result.bit_exact}")
    print(f"mismatches: {result.mismatches} of {result.compared_elements:,} elements")
    print(f"cycles: {result.cycles:,.0f} per inference (predicted {result.predicted_cycles:,})")
    print(f"accuracy: {result.accuracy}")
    return 0 if result.bit_exact else 1


if __name__ == "__main__":
    if len(sys.argv) > 1:
        folder = Path(sys.argv[1])
        folder.mkdir(parents=True, exist_ok=True)
        sys.exit(main(folder))
    with tempfile.TemporaryDirectory(prefix="systolix-quickstart-") as tmp:
        sys.exit(main(Path(tmp)))
