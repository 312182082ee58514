"""Write the small corpus fixtures committed under ``tests/corpus/`` (the tests use them without torch).

- the ``onnx.helper`` old-style files of ``old_style.py`` (float);
- small-channel versions of the PyTorch networks of ``torch_export.py`` (``--small``), some float and some
  quantized by onnxruntime's ``quantize_static`` called directly (``ort_quantize.py``), one variant each;
- LeNet-5 (opset 13) quantized by ``quantize_static`` to QOperator int8;
- the Keras models of ``tf_export.py`` converted by tf2onnx, float and TFLite int8 (when tensorflow and
  tf2onnx are installed; otherwise the committed ones are kept).

``tests/corpus/MANIFEST.json`` records, per file, who wrote it and whether it is quantized.
Usage: ``python examples/corpus/make_fixtures.py [OUT_DIR]`` (default ``tests/corpus``; needs torch).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import old_style  # noqa: E402
import ort_quantize  # noqa: E402
import torch_export  # noqa: E402

#: (network, small, opset, ort_quantize variant suffix or None for the float file)
TORCH = (("conv1d", True, 13, "ortqop_s8"), ("dwsep", True, 17, "ortqdq_u8"), ("resnet", True, 13, "ortqdq_s8"),
         ("hardswish", True, 17, "ortqop_u8"), ("lenet5", False, 13, "ortqop_s8"),
         ("hardswish", True, 13, None), ("resnet", True, 17, None), ("se", True, 13, None))


def main(out_dir: Path) -> dict:
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for path in old_style.write(out_dir):
        import onnx

        m = onnx.load(str(path))
        manifest[path.stem] = {"exporter": f"onnx.helper (IR {m.ir_version}, opset {m.opset_import[0].version})",
                               "quantized": False}
    torch_ver = torch.__version__.split("+")[0]
    variants = {v[0]: v for v in ort_quantize.VARIANTS}
    with tempfile.TemporaryDirectory() as tmp:
        for name, small, opset, variant in TORCH:
            (exported,) = torch_export.export(tmp, small=small, opsets=(opset,), names={name})
            exporter = f"torch {torch_ver} onnx.export, opset {opset}"
            if variant is None:
                target = out_dir / exported.name
                target.write_bytes(exported.read_bytes())
                manifest[target.stem] = {"exporter": exporter, "quantized": False}
                continue
            (q,) = ort_quantize.quantize(exported, out_dir, variants=[variants[variant]])
            kind = "QDQ" if "qdq" in variant else "QOperator"
            act = "int8" if variant.endswith("s8") else "uint8"
            manifest[q.stem] = {"exporter": f"{exporter} + ort quantize_static {kind} {act}", "quantized": True}
    try:
        import tf_export
    except ImportError:
        tf_export = None
    if tf_export is not None:
        try:
            import tf2onnx  # noqa: F401
        except ImportError:
            tf_export = None
    if tf_export is None:
        print("tensorflow/tf2onnx are not installed: the TensorFlow fixtures are left as they are")
        old = json.loads((out_dir / "MANIFEST.json").read_text()) if (out_dir / "MANIFEST.json").is_file() else {}
        manifest.update({k: v for k, v in old.items() if k.startswith("tf_")})
    else:
        for path, exporter in tf_export.export(out_dir):
            manifest[path.stem] = {"exporter": exporter, "quantized": "int8" in path.stem}
    (out_dir / "MANIFEST.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default=str(HERE.parents[1] / "tests" / "corpus"))
    args = parser.parse_args()
    for name in main(Path(args.out_dir)):
        path = Path(args.out_dir) / f"{name}.onnx"
        print(f"{path} ({path.stat().st_size:,} bytes)")
