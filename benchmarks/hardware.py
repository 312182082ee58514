"""The accelerator RTL at scale: Verilator vs Amaranth speed, cycles and utilisation per preset, bit-exactness.

For the bundled example and the shared real models, for the 4x4, 8x8 and 16x16 presets: compile, run every
sample on Verilator (the generated Verilog) and compare every output element with onnxruntime; report cycles
per inference (measured and predicted), MAC utilisation, latency at the Fmax nextpnr measured for that design
(``systolix synth``; "-" when it was never measured), simulated cycles/s and images/s.
Then the same accelerator on Amaranth's simulator and on Verilator for the same sample, side by side (ratio).

Usage: ``python benchmarks/hardware.py [--quick]`` (``--quick``: bundled example only, fewer samples).
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
PRESETS = ("4x4", "8x8", "16x16")


def _cases(out: Path, quick: bool) -> list[tuple[str, Path, dict]]:
    from systolix.quantize.ptq import quantize_model

    example = out / "keras_mnist_int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", example)
    cases = [("keras_mnist (test set)", example, {"inputs": EXAMPLE / "test.npz"})]
    if quick or not (SHARED / "models").is_dir():
        return cases
    data = np.load(SHARED / "data" / "mnist5k.npz", allow_pickle=False)
    np.savez(out / "mnist_calib.npz", x=data["x"][0::5, None].astype(np.float32))
    np.savez(out / "mnist_test.npz", x=data["x"][1::5, None].astype(np.float32), y=data["y"][1::5])
    mnist = out / "mnist_cnn_2018_int8.onnx"
    quantize_model(SHARED / "models" / "mnist_cnn_2018.onnx", out / "mnist_calib.npz", mnist)
    cases.append(("mnist_cnn_2018 (1000 MNIST)", mnist, {"inputs": out / "mnist_test.npz"}))
    for name in ("mlperf_tiny_resnet8_int8", "mlperf_tiny_kws_dscnn_int8"):
        cases.append((f"{name} (200 random)", SHARED / "models" / f"{name}.onnx", {"random": 200}))
    return cases


def main(argv: list[str] | None = None) -> int:
    from systolix.arch.config import AcceleratorConfig
    from systolix.errors import SystolixError
    from systolix.sim.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="bundled example only, 100 images")
    args = parser.parse_args(argv)
    console = Console(width=max(160, Console().width))
    out = Path(tempfile.mkdtemp(prefix="systolix-hw-bench-"))
    cases = _cases(out, args.quick)
    if args.quick:
        test = np.load(EXAMPLE / "test.npz")
        np.savez(out / "quick.npz", x=test["x"][:100], y=test["y"][:100])
        cases[0] = ("keras_mnist (100 test images)", cases[0][1], {"inputs": out / "quick.npz"})

    table = Table(title="Verilator, every output element compared with onnxruntime")
    for col in ("model", "array", "samples", "mismatches", "cycles/inference", "predicted", "utilisation",
                "latency @Fmax", "sim cycles/s", "images/s", "wall s (incl. build)"):
        table.add_column(col, justify="left" if col in ("model", "array") else "right")
    failed = False
    per_layer = None
    for label, model, source in cases:
        for preset in PRESETS:
            config = AcceleratorConfig.preset(preset)
            t = time.perf_counter()
            try:
                with console.status(f"{label} on {preset}"):
                    result = simulate(model, backend="verilator", layers=False, config=config, **source)
            except SystolixError as e:
                table.add_row(label, preset, "-", "does not fit", str(e)[:60], "", "", "", "", "", "")
                continue
            hw, cmp = result.hardware, result.comparison
            failed |= not result.bit_exact
            wall = time.perf_counter() - t
            table.add_row(label, preset, str(cmp.samples), f"{cmp.mismatches:,}", f"{hw['cycles']:,.0f}",
                          f"{hw['predicted_cycles']:,}", f"{hw['utilization']:.1%}",
                          "-" if hw["latency_ms"] is None else f"{hw['latency_ms']:.3f} ms @{hw['clock_mhz']:.0f} MHz",
                          f"{hw['simulated_cycles_per_second']:,.0f}", f"{hw['samples_per_second']:.1f}",
                          f"{wall:.0f}", style="red" if cmp.mismatches else None)
            if label.startswith("keras_mnist") and preset == "8x8":
                per_layer = hw["hardware_layers"]
    console.print(table)

    if per_layer:
        layers = Table(title="keras_mnist on 8x8: per layer (measured on Verilator)")
        for col in ("layer", "op", "MACs", "cycles", "predicted", "utilisation"):
            layers.add_column(col, justify="left" if col in ("layer", "op") else "right")
        for layer in per_layer:
            layers.add_row(layer["name"], layer["op"], f"{layer['macs']:,}", f"{layer['cycles']:,.0f}",
                           f"{layer['predicted_cycles']:,}", f"{layer['utilization']:.1%}")
        console.print(layers)

    # Amaranth vs Verilator on the same design and sample.
    one = out / "one.npz"
    test = np.load(EXAMPLE / "test.npz")
    np.savez(one, x=test["x"][:1], y=test["y"][:1])
    speed = Table(title="the same accelerator (keras_mnist, 4x4), one image: Amaranth's simulator vs Verilator")
    for col in ("simulator", "cycles", "simulated cycles/s", "images/s", "mismatches"):
        speed.add_column(col, justify="left" if col == "simulator" else "right")
    rates = {}
    for backend in ("amaranth", "verilator"):
        with console.status(f"{backend}: one image"):
            result = simulate(cases[0][1], inputs=one, backend=backend, layers=True,
                              config=AcceleratorConfig.preset("4x4"))
        hw = result.hardware
        rates[backend] = hw["simulated_cycles_per_second"]
        failed |= not result.bit_exact
        speed.add_row(backend, f"{hw['cycles']:,.0f}", f"{hw['simulated_cycles_per_second']:,.0f}",
                      f"{hw['samples_per_second']:.3g}", f"{result.comparison.mismatches:,}")
    speed.caption = f"Verilator / Amaranth: {rates['verilator'] / rates['amaranth']:,.0f}x simulated cycles per second"
    console.print(speed)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
