"""Bit-exactness at scale: the golden model against onnxruntime on real models and data sets.

Runs, with every intermediate tensor compared (``--layers``):
- the bundled example, quantized with its calibration set, on its whole test set;
- ``mnist_cnn_2018.onnx`` (../shared) quantized with 1,000 MNIST images, on 1,000 other MNIST images;
- the two MLPerf Tiny int8 models (../shared) in integer canonical form, on 200 random inputs each.

Prints a summary table (samples, compared elements, mismatches, accuracy, seconds). Exit 1 on any
mismatch. Usage: ``python benchmarks/golden_bitexact.py [--samples N] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "keras_mnist"


def _mnist(offset: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Every 5th image from ``offset`` (mnist5k.npz is sorted by class: strided picks keep classes balanced)."""
    data = np.load(SHARED / "data" / "mnist5k.npz", allow_pickle=False)
    idx = np.arange(offset, 5000, 5)[:count]
    return data["x"][idx, None].astype(np.float32), data["y"][idx]


def main(argv: list[str] | None = None) -> int:
    from systolix.quantize.ptq import quantize_model
    from systolix.sim.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="MNIST images for mnist_cnn_2018 (<= 1000)")
    parser.add_argument("--random", type=int, default=200, help="random inputs for each MLPerf model")
    parser.add_argument("--out", default=None, help="folder for quantized models (default: a temp dir)")
    args = parser.parse_args(argv)
    console = Console(width=max(120, Console().width))
    out = Path(args.out or tempfile.mkdtemp(prefix="systolix-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    cases: list[tuple[str, dict]] = []

    example_q = out / "keras_mnist_int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", example_q)
    cases.append(("bundled keras_mnist (test set)", dict(model_path=example_q, inputs=EXAMPLE / "test.npz")))
    if (SHARED / "models").is_dir():
        calib, test = out / "mnist_calib.npz", out / "mnist_test.npz"
        x, y = _mnist(0, 1000)
        np.savez(calib, x=x, y=y)
        x, y = _mnist(1, args.samples)
        np.savez(test, x=x, y=y)
        q = out / "mnist_cnn_2018_int8.onnx"
        quantize_model(SHARED / "models" / "mnist_cnn_2018.onnx", calib, q)
        cases.append((f"mnist_cnn_2018 int8 ({args.samples} MNIST)", dict(model_path=q, inputs=test)))
        for name in ("mlperf_tiny_resnet8_int8.onnx", "mlperf_tiny_kws_dscnn_int8.onnx"):
            cases.append((f"{name} ({args.random} random)", dict(model_path=SHARED / "models" / name,
                                                                 random=args.random)))
    else:
        console.print("../shared is absent: only the bundled example is checked")

    table = Table(title="golden model vs onnxruntime, every layer compared")
    for col in ("case", "samples", "layers", "elements", "mismatches", "accuracy (ort / golden)", "seconds"):
        table.add_column(col, justify="left" if col == "case" else "right")
    failed = False
    for label, kwargs in cases:
        t = time.perf_counter()
        with console.status(label):
            result = simulate(backend="golden", layers=True, **kwargs)
        cmp = result.comparison
        failed |= not result.bit_exact
        acc = result.accuracy
        acc_text = f"{acc['onnxruntime']:.2%} / {acc['golden']:.2%}" if acc else "-"
        table.add_row(label, str(cmp.samples), str(len(cmp.layers)), f"{cmp.elements:,}", f"{cmp.mismatches:,}",
                      acc_text, f"{time.perf_counter() - t:.1f}", style="red" if cmp.mismatches else None)
    console.print(table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
