"""``systolix compile``: a model -> a build folder with everything needed to simulate or synthesise it.

The folder holds ``model.onnx`` (the quantized model), ``reference.onnx`` (the integer model onnxruntime
runs as the reference), ``accelerator.v`` (the whole accelerator with this program's memory images baked
in), ``program.json`` (the instructions, decoded), ``images.npz`` and ``*.hex`` (memory images,
``$readmemh`` format), ``config.json`` and ``report.json`` (per-layer MACs, predicted cycles, buffer use).
It is written into a temporary folder and renamed at the end: a failure leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from systolix.errors import SystolixError
from systolix.hdl.config import AcceleratorConfig

from .isa import INSTRUCTION_BITS
from .params import CHANNEL_BITS

MARKER = "report.json"


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What ``compile`` wrote and measured."""

    folder: Path
    report: dict


def _hex_lines(words: list[int], bits: int) -> str:
    digits = (bits + 3) // 4
    return "".join(f"{w & ((1 << bits) - 1):0{digits}x}\n" for w in words)


def _rows_to_words(rows: np.ndarray) -> list[int]:
    rows = rows.astype(np.int64) & 0xFF
    shifts = 8 * np.arange(rows.shape[1], dtype=np.int64)
    return [int(v) for v in (rows << shifts).sum(axis=1)]


def write_images(folder: Path, program, config: AcceleratorConfig) -> None:
    img = program.images
    lanes = config.rows
    np.savez_compressed(folder / "images.npz", act=img.act, wgt=img.wgt, lut=img.lut, addtab=img.addtab,
                        prm=np.array([str(w) for w in img.prm]), prog=np.array([str(w) for w in img.prog]))
    (folder / "wgt.hex").write_text(_hex_lines(_rows_to_words(img.wgt), 8 * lanes))
    (folder / "prm.hex").write_text(_hex_lines(img.prm, CHANNEL_BITS * lanes))
    (folder / "prog.hex").write_text(_hex_lines(img.prog, INSTRUCTION_BITS))
    if img.lut.size:
        (folder / "lut.hex").write_text(_hex_lines(_rows_to_words(img.lut), 8 * lanes))
    if img.addtab.size:
        (folder / "addtab.hex").write_text(_hex_lines([int(w) for w in img.addtab.reshape(-1)], 48))


def build(model_path: str | os.PathLike, out: str | os.PathLike, config: AcceleratorConfig, *,
          calib: str | os.PathLike | None = None) -> BuildResult:
    """Quantize (float models, with ``calib``), compile and write the build folder ``out``."""
    from amaranth.back import verilog

    from systolix.frontend.importer import import_model, is_quantized
    from systolix.frontend.loader import load_onnx
    from systolix.hdl.top import Accelerator

    from .compile import compile_model

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise SystolixError(f"{out}: exists and is not a systolix build folder; choose another -o")
    if not out.parent.exists():
        raise SystolixError(f"{out.parent}: folder does not exist")
    model = load_onnx(model_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if not is_quantized(model):
            if calib is None:
                raise SystolixError(f"{model_path} is a float model: give --calib DATA to quantize it first")
            from systolix.quantize.ptq import quantize_model

            quantize_model(model_path, calib, tmp / "model_int8.onnx")
            source = tmp / "model_int8.onnx"
        else:
            source = Path(model_path)
        imported = import_model(source)
        if source != tmp / "model_int8.onnx":
            shutil.copyfile(source, tmp / "model.onnx")
        else:
            os.replace(source, tmp / "model.onnx")
        program = compile_model(imported.ir, config)
        onnx.save(imported.reference, str(tmp / "reference.onnx"))
        top = Accelerator(config, program.images)
        (tmp / "accelerator.v").write_text(verilog.convert(top, name="accelerator"))
        write_images(tmp, program, config)
        (tmp / "config.json").write_text(config.to_json())
        (tmp / "program.json").write_text(json.dumps(
            [{"index": i, **{k: (int(v) if not isinstance(v, str) else v)
                             for k, v in dataclasses.asdict(ins).items()}}
             for i, ins in enumerate(program.instructions)], indent=1))
        report = {"model": str(model_path), "config": config.to_dict(), **program.to_json()}
        (tmp / MARKER).write_text(json.dumps(report, indent=2, default=str))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, report)
