"""onnxruntime's own static quantizer, called directly as a user would (not through systolix).

The user's recipe from onnxruntime's documentation: ``quant_pre_process`` (shape inference and graph
optimisation), then ``quantize_static`` with a ``CalibrationDataReader`` that yields calibration feeds.
Four variants per float model: QDQ and QOperator formats, int8 and uint8 activations (int8 per-channel
weights; uint8 activations use ``reduce_range`` as onnxruntime recommends for U8S8 on CPUs without VNNI).

Usage: ``python examples/corpus/ort_quantize.py FLOAT.onnx OUT_DIR`` (random-normal calibration data).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

#: (suffix, format, activation type)
VARIANTS = (("ortqdq_s8", QuantFormat.QDQ, QuantType.QInt8), ("ortqdq_u8", QuantFormat.QDQ, QuantType.QUInt8),
            ("ortqop_s8", QuantFormat.QOperator, QuantType.QInt8),
            ("ortqop_u8", QuantFormat.QOperator, QuantType.QUInt8))


class RandomReader(CalibrationDataReader):
    """Calibration feeds: ``batches`` fixed-seed batches of random-normal samples for the model's one input."""

    def __init__(self, model_path: str | Path, batches: int = 4, batch: int = 8, seed: int = 0):
        model = onnx.load(str(model_path))
        inits = {i.name for i in model.graph.initializer}
        (value,) = [i for i in model.graph.input if i.name not in inits]
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        fixed = dims[0] > 0  # a fixed batch (old exporters) takes exactly that many samples per run
        shape = (dims[0] if fixed else batch, *dims[1:])
        rng = np.random.default_rng(seed)
        self.feeds = iter([{value.name: rng.normal(0.0, 1.0, shape).astype(np.float32)} for _ in range(batches)])

    def get_next(self):
        return next(self.feeds, None)


def quantize(float_path: str | Path, out_dir: str | Path, variants=VARIANTS) -> list[Path]:
    """Write ``{stem}_{suffix}.onnx`` for every variant; returns the paths."""
    float_path, out_dir = Path(float_path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_path), str(prepared))
        for suffix, fmt, act in variants:
            out = out_dir / f"{float_path.stem}_{suffix}.onnx"
            quantize_static(str(prepared), str(out), RandomReader(float_path), quant_format=fmt,
                            activation_type=act, weight_type=QuantType.QInt8, per_channel=True,
                            reduce_range=act == QuantType.QUInt8)
            written.append(out)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("out_dir")
    args = parser.parse_args()
    for path in quantize(args.model, args.out_dir):
        print(f"{path} ({path.stat().st_size:,} bytes)")
