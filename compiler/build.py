"""``systolix compile``: a model -> a build folder, the exact artifact that is simulated, synthesised and loaded.

The folder holds

- ``accelerator.v``: the accelerator for the configuration (:class:`~systolix.hdl.top.Accelerator`). It
  depends on ``config.json`` only: every model compiled for the same configuration gets the same file;
- ``wgt.hex``, ``prm.hex``, ``lut.hex``, ``addtab.hex``, ``prog.hex``: the words a host writes through the
  load bus, one hexadecimal word per line (``$readmemh`` format), used part of each memory only
  (:meth:`~systolix.compiler.images.MemoryImages.words`); ``images.npz``: the same images as arrays;
- ``program.json``: what the host needs to run the program (instructions, where every tensor is, the
  host's input transforms, the per-layer plan; :meth:`~systolix.compiler.compile.Program.to_json`);
- ``config.json``, ``model.onnx`` (the quantized model), ``reference.onnx`` (the integer model onnxruntime
  runs as the reference);
- ``input_prefix.onnx``, for a model whose input goes through elementwise preprocessing the accelerator cannot
  run (:mod:`systolix.frontend.canonical_prefix`): the float input -> the accelerator's integer input, which the
  host runs with onnxruntime (``simulate BUILD`` and ``run BUILD`` apply this file);
- ``report.json``: per-layer MACs, predicted cycles, memory use, and the SHA-256 of every file above.

:func:`load_build` reads a folder back and refuses it if any file differs from its recorded SHA-256, so
``systolix simulate BUILD`` proves exactly what is in the folder. It is written into a temporary folder and
renamed at the end: a failure leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import MEMORIES, memory_depths, word_bits
from systolix.errors import SystolixError
from systolix.hdl.export import verilog_for

from .images import MemoryImages

__all__ = ["ARTIFACTS", "BUILD_FORMAT", "OPTIONAL_ARTIFACTS", "Build", "BuildResult", "build", "load_build",
           "verilog_for"]

MARKER = "report.json"
BUILD_FORMAT = "systolix-build/1"
#: The files of a build folder whose SHA-256 ``report.json`` records.
ARTIFACTS = ("accelerator.v", "config.json", "program.json", *(f"{m}.hex" for m in MEMORIES), "images.npz",
             "model.onnx", "reference.onnx")
#: Written (and recorded the same way) only for some models: the host input prefix
#: (:mod:`systolix.frontend.canonical_prefix`), float input -> the accelerator's integer input.
OPTIONAL_ARTIFACTS = ("input_prefix.onnx",)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    """What ``compile`` wrote and measured."""

    folder: Path
    report: dict


@dataclasses.dataclass(frozen=True, eq=False)
class Build:
    """A build folder read back and checked (:func:`load_build`).

    Attributes
    ----------
    folder : pathlib.Path
    config : AcceleratorConfig
        From ``config.json`` (``add_variant`` resolved).
    program : Program
        From ``program.json``, with the memory images read from the ``*.hex`` files.
    verilog : str
        The text of ``accelerator.v``.
    model, reference : pathlib.Path
        ``model.onnx`` and ``reference.onnx``.
    report : dict
        ``report.json``.
    input_prefix : pathlib.Path or None
        ``input_prefix.onnx`` when the build has one.
    """

    folder: Path
    config: AcceleratorConfig
    program: object
    verilog: str
    model: Path
    reference: Path
    report: dict
    input_prefix: Path | None = None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _hex_lines(words: list[int], bits: int) -> str:
    digits = (bits + 3) // 4
    mask = (1 << bits) - 1
    return "".join(f"{w & mask:0{digits}x}\n" for w in words)


def read_hex(path: Path, bits: int, depth: int) -> list[int]:
    """Words of a ``$readmemh`` file as :func:`write_images` writes it (one word per line, no addresses).

    Raises
    ------
    SystolixError
        On a line that is not a hexadecimal word of ``bits`` bits, or more than ``depth`` words.
    """
    words = []
    digits = (bits + 3) // 4
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not re.fullmatch(f"[0-9a-fA-F]{{{digits}}}", line) or int(line, 16) >> bits:
            raise SystolixError(f"{path}:{number}: not a {bits}-bit hexadecimal word: {line[:40]!r}")
        words.append(int(line, 16))
    if len(words) > depth:
        raise SystolixError(f"{path}: {len(words):,} words do not fit the memory's {depth:,}")
    return words


def write_images(folder: Path, images: MemoryImages, config: AcceleratorConfig) -> None:
    """The ``*.hex`` load images and ``images.npz``."""
    words = images.words(narrow_program=config.narrow_program)
    bits = word_bits(config)
    for name in MEMORIES:
        (folder / f"{name}.hex").write_text(_hex_lines(words[name], bits[name]))
    for lane in range(config.rows):  # each lane's copy of lut, for a design with the model baked in (hdl.export)
        (folder / f"lut{lane}.hex").write_text(_hex_lines([(w >> (8 * lane)) & 0xFF for w in words["lut"]], 8))
    np.savez_compressed(folder / "images.npz", wgt=images.wgt, lut=images.lut, addtab=images.addtab,
                        prm=np.array([str(w) for w in images.prm]), prog=np.array([str(w) for w in images.prog]))


def read_images(folder: Path, config: AcceleratorConfig) -> MemoryImages:
    """The memory images of the ``*.hex`` files of a build folder."""
    bits, depths = word_bits(config), memory_depths(config)
    words = {name: read_hex(folder / f"{name}.hex", bits[name], depths[name]) for name in MEMORIES}
    return MemoryImages.from_words(words, config.rows, config.weight_buffer_depth,
                                   narrow_program=config.narrow_program)


def build(model_path: str | os.PathLike, out: str | os.PathLike, config: AcceleratorConfig | None, *,
          calib: str | os.PathLike | None = None, device: str | None = None,
          source_name: str | None = None) -> BuildResult:
    """Quantize (float models, with ``calib``), compile and write the build folder ``out``.

    ``source_name``: the model the user gave, recorded in ``report.json`` (default ``model_path``; the API
    passes the float model's path when it quantized it first).

    With ``device`` (``ecp5-85f``, ...) the configuration is the one :func:`.device_fit.config_for_device`
    sizes to that FPGA for this model (``config`` then only gives ``add_variant``, and may be None).
    """
    from systolix.frontend.importer import import_model, is_quantized
    from systolix.frontend.loader import load_onnx

    from .compile import compile_model, resolve_add_variant

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).exists())):
        raise SystolixError(f"{out}: exists and is not a systolix build folder; choose another -o")
    if not out.parent.exists():
        raise SystolixError(f"{out.parent}: folder does not exist")
    if config is None and device is None:
        raise SystolixError("build: give a configuration or a device")
    variant = resolve_add_variant(config or AcceleratorConfig(rows=4, cols=4)).add_variant
    if device is not None:
        from systolix.hdl.devices import get_device

        get_device(device)  # an unknown name fails before any work
    else:
        config = dataclasses.replace(config, add_variant=variant)
    model = load_onnx(model_path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700: the folder gets the user's usual permissions
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
        if device is not None:
            from .device_fit import config_for_device

            config = config_for_device(imported.ir, device, add_variant=variant)
        program = compile_model(imported.ir, config)
        onnx.save(imported.reference, str(tmp / "reference.onnx"))
        written = list(ARTIFACTS)
        prefixes = getattr(imported.canonical, "input_prefix", {}) if imported.canonical is not None else {}
        if prefixes:
            if len(prefixes) != 1:
                raise SystolixError(f"{model_path}: {len(prefixes)} inputs with a host prefix; one input is supported")
            (prefix,) = prefixes.values()
            onnx.save(prefix.model, str(tmp / "input_prefix.onnx"))
            written.append("input_prefix.onnx")
        (tmp / "accelerator.v").write_text(verilog_for(config))
        write_images(tmp, program.images, config)
        (tmp / "config.json").write_text(config.to_json())
        (tmp / "program.json").write_text(json.dumps(program.to_json(), indent=1))
        summary = program.to_json()
        report = {"format": BUILD_FORMAT, "model": str(source_name or model_path), "model_file": "model.onnx",
                  **{k: summary[k] for k in ("config", "memory_use", "predicted_cycles", "layers", "add_variant")},
                  "artifacts": {name: _sha256(tmp / name) for name in written}}
        (tmp / MARKER).write_text(json.dumps(report, indent=2, default=str))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return BuildResult(out, report)


def load_build(folder: str | os.PathLike) -> Build:
    """Read a build folder back, checking every artifact against the SHA-256 in ``report.json``.

    Raises
    ------
    SystolixError
        Not a build folder, a missing or changed file (named), or images inconsistent with the program.
    """
    from .compile import Program

    folder = Path(folder)
    if not (folder / MARKER).is_file():
        raise SystolixError(f"{folder}: not a systolix build folder (no {MARKER}); write one with systolix compile")
    try:
        report = json.loads((folder / MARKER).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystolixError(f"{folder / MARKER}: cannot be read ({error})") from None
    if not isinstance(report, dict) or report.get("format") != BUILD_FORMAT:
        found = report.get("format") if isinstance(report, dict) else None
        raise SystolixError(f"{folder}: a build folder of another format ({found!r}, expected {BUILD_FORMAT!r}); "
                            "compile the model again")
    recorded = report.get("artifacts", {})
    for name in (*ARTIFACTS, *(n for n in OPTIONAL_ARTIFACTS if n in recorded or (folder / n).exists())):
        path = folder / name
        if not path.is_file():
            raise SystolixError(f"{folder}: {name} is missing")
        if recorded.get(name) != _sha256(path):
            raise SystolixError(f"{path} differs from the file systolix compile wrote (SHA-256 in {MARKER}); "
                                "compile again rather than editing a build folder")
    config = AcceleratorConfig.from_file(folder / "config.json")
    if config.add_variant == "auto":
        raise SystolixError(f"{folder / 'config.json'}: add_variant must be resolved (avx2 or sse2) in a build")
    images = read_images(folder, config)
    try:
        data = json.loads((folder / "program.json").read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystolixError(f"{folder / 'program.json'}: not JSON ({error})") from None
    try:
        program = Program.from_json(data, images)
    except SystolixError as error:
        raise SystolixError(f"{folder}: {error}") from None
    if program.config != config:
        raise SystolixError(f"{folder}: program.json was compiled for another configuration than config.json")
    prefix = folder / "input_prefix.onnx"
    return Build(folder, config, program, (folder / "accelerator.v").read_text(), folder / "model.onnx",
                 folder / "reference.onnx", report, prefix if prefix.is_file() else None)
