"""The corpus: every model the export scripts of this folder write, with who wrote it and how to quantize it.

:func:`build_corpus` writes the models into a folder and returns one :class:`Entry` per model:

- the PyTorch networks of ``torch_export.py`` at opset 13 and 17 (float: the benchmark quantizes them with
  ``systolix quantize``'s default, QOperator int8), and the opset-17 ones once more for each other
  ``systolix quantize`` variant (QDQ int8, QDQ uint8, QOperator uint8);
- the opset-13 ones quantized by onnxruntime's ``quantize_static`` called directly (``ort_quantize.py``: QDQ
  and QOperator, int8 and uint8 activations);
- Keras models converted by tf2onnx (``tf_export.py``): float, and full-integer TFLite (QDQ);
- the ``onnx.helper`` files of ``old_style.py`` (old IR versions and opsets, initializers as inputs, fixed
  batches, and ``helper.make_model``'s defaults);
- the fixtures committed under ``tests/corpus/`` (``MANIFEST.json`` says what each one is).

Without torch (``pip install -e .[train]``) or tensorflow and tf2onnx (``pip install -e .[tf]``) that part is
skipped and said so.
Usage: ``python examples/corpus/make_corpus.py OUT_DIR`` lists what it wrote.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIXTURES = HERE.parents[1] / "tests" / "corpus"
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

#: systolix quantize variants besides the default: (suffix, format, activation type)
SYSTOLIX_VARIANTS = (("sxqdq_s8", "qdq", "int8"), ("sxqdq_u8", "qdq", "uint8"), ("sxqop_u8", "qoperator", "uint8"))


@dataclass(frozen=True)
class Entry:
    """One corpus model.

    ``quantize`` is None for a quantized file, else ``(format, activation type)`` for ``systolix quantize``.
    """

    name: str
    exporter: str
    path: Path
    quantize: tuple[str, str] | None = None


def _onnx_versions(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), "?")
    return f"IR {model.ir_version}, opset {opset}"


def fixtures() -> list[Entry]:
    """The committed fixtures (``tests/corpus/MANIFEST.json``); an absent file is left out."""
    manifest = FIXTURES / "MANIFEST.json"
    if not manifest.is_file():
        return []
    entries = []
    for name, info in json.loads(manifest.read_text()).items():
        path = FIXTURES / f"{name}.onnx"
        if path.is_file():
            quantize = None if info["quantized"] else ("qoperator", "int8")
            entries.append(Entry(f"fixture:{name}", info["exporter"], path, quantize))
    return entries


def have_torch() -> bool:
    return importlib.util.find_spec("torch") is not None


def _run_exporter(python: str, script: str, out: Path) -> str:
    """Run ``python examples/corpus/SCRIPT OUT`` (an exporter in another environment: torch or tensorflow need
    not be installed beside systolix); returns what it printed."""
    try:
        done = subprocess.run([python, str(HERE / script), str(out)], capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RuntimeError(f"{python}: cannot run it ({exc})") from None
    if done.returncode != 0:
        tail = " ".join((done.stderr or done.stdout).strip().splitlines()[-1:])
        raise RuntimeError(f"{python} {script} failed (exit {done.returncode}): {tail}")
    return done.stdout


def _version(python: str, module: str) -> str:
    code = f"import {module}; print({module}.__version__)"
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def build_corpus(out: str | Path, *, with_torch: bool = True, with_tf: bool = True, with_fixtures: bool = True,
                 notes: list[str] | None = None, torch_python: str | None = None,
                 tf_python: str | None = None) -> list[Entry]:
    """Write the corpus into ``out`` and return its entries (``notes`` gets what was skipped and why).

    ``torch_python`` / ``tf_python``: an interpreter of another environment that has torch (tensorflow and
    tf2onnx) installed; the export scripts run there, the rest of the flow here.
    """
    import old_style
    import ort_quantize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    notes = notes if notes is not None else []
    entries: list[Entry] = []
    if with_torch and (torch_python or have_torch()):
        if torch_python:
            torch_ver = _version(torch_python, "torch").split("+")[0]
            _run_exporter(torch_python, "torch_export.py", out / "torch")
            torch_paths = sorted((out / "torch").glob("torch_*_op*.onnx"))
        else:
            import torch
            import torch_export

            torch_ver = torch.__version__.split("+")[0]
            torch_paths = torch_export.export(out / "torch")
        for path in torch_paths:
            opset = int(path.stem.rsplit("_op", 1)[1])
            exporter = f"torch {torch_ver} onnx.export, opset {opset}"
            entries.append(Entry(path.stem, exporter, path, ("qoperator", "int8")))
            if opset == 17:
                for suffix, fmt, act in SYSTOLIX_VARIANTS:
                    entries.append(Entry(f"{path.stem}_{suffix}", f"{exporter} + systolix quantize {fmt} {act}",
                                         path, (fmt, act)))
            if opset == 13:
                for q in ort_quantize.quantize(path, out / "ort"):
                    suffix = q.stem.rsplit("_", 2)
                    kind = {"ortqdq": "QDQ", "ortqop": "QOperator"}[suffix[-2]]
                    act = {"s8": "int8", "u8": "uint8"}[suffix[-1]]
                    entries.append(Entry(q.stem, f"{exporter} + ort quantize_static {kind} {act}", q))
    elif with_torch:
        notes.append("torch is not installed (pip install -e .[train]): the PyTorch exports are skipped")
    if with_tf and (tf_python or importlib.util.find_spec("tf2onnx") is not None):
        if tf_python:  # tf_export.py prints "PATH (N bytes): EXPORTER" per file
            printed = _run_exporter(tf_python, "tf_export.py", out / "tf")
            tf_files = [(Path(line.split(" (", 1)[0]), line.split(" bytes): ", 1)[1])
                        for line in printed.splitlines() if " bytes): " in line]
        else:
            import tf_export

            tf_files = tf_export.export(out / "tf")
        for path, exporter in tf_files:
            entries.append(Entry(path.stem, exporter, path, None if "int8" in path.stem else ("qoperator", "int8")))
    elif with_tf:
        notes.append("tensorflow/tf2onnx are not installed (pip install -e .[tf]): the TensorFlow exports are skipped")
    for path in old_style.write(out / "old"):
        entries.append(Entry(path.stem, f"onnx.helper ({_onnx_versions(path)})", path, ("qoperator", "int8")))
    if with_fixtures:
        entries += fixtures()
    return entries


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    args = parser.parse_args()
    skipped: list[str] = []
    for entry in build_corpus(args.out_dir, notes=skipped):
        how = "quantized" if entry.quantize is None else f"float -> systolix quantize {' '.join(entry.quantize)}"
        print(f"{entry.name:40} {entry.exporter:60} {how}  {entry.path}")
    for note in skipped:
        print(f"note: {note}")
