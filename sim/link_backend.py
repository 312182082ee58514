"""The ``link`` backend: a build folder run through the UART link, on a board or on the simulated port.

It does what a host does with a board: check the accelerator's config ID, load the build folder's memory
images over the link, then for every sample write the input rows, start, poll the status until done, and read
the outputs (with ``layers``: in step mode, every layer's output after its instruction, as ``simulate
--layers``). The cycles come from the accelerator's own counter (``STATUS``). The samples' tensors go back to
:func:`systolix.sim.simulate.simulate`, which compares them with onnxruntime like any backend's.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from systolix.errors import SystolixError
from systolix.frontend.ir import Model

from .amaranth_backend import HardwareRun
from .link_host import LinkHost, Port
from .readback import input_rows, read_plan

__all__ = ["LinkBackend"]


class LinkBackend:
    """Runs a build folder's program over the host link.

    Parameters
    ----------
    build : Build
        The build folder (:func:`~systolix.compiler.build.load_build`).
    port : Port
        The byte pipe to the device (a pyserial port or a :class:`~systolix.sim.link_sim.SimulatedPort`).
    layers : bool
        Read every layer's output (step mode) and time every instruction.
    max_polls : int
        Status polls per instruction (or run) before giving up.

    Attributes
    ----------
    host : LinkHost
        The host of the last run: its byte counts per phase.
    last_run : HardwareRun or None
    program, config
        The build's.
    simulate_seconds : float
        Wall time of the last run.
    polls : int
        Status polls of the last run.
    """

    name = "link"

    def __init__(self, build, port: Port, *, layers: bool = False, max_polls: int = 1_000_000) -> None:
        self.build = build
        self.port = port
        self.layers = layers
        self.max_polls = max_polls
        self.program = build.program
        self.config = build.config
        self.host = LinkHost(port, build.config)
        self.last_run: HardwareRun | None = None
        self.simulate_seconds = 0.0
        self.polls = 0
        self.port_cycles: dict[str, int] = {}

    def _mark(self, what: str) -> None:
        cycles = getattr(self.port, "cycles", None)
        if cycles is not None:
            self.port_cycles[what] = cycles

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        """Check the device, load the build's images, run every sample; the tensors read back (batched).

        Parameters
        ----------
        model : Model
            The model (the build's program is what runs).
        inputs : dict of str to numpy.ndarray
            The samples, batched on axis 0.
        progress : callable, optional
            Called with the number of samples done.

        Returns
        -------
        dict of str to numpy.ndarray
        """
        started = time.perf_counter()
        program, config, host = self.program, self.config, self.host
        n = len(next(iter(inputs.values())))
        host_inputs = program.host_inputs(inputs)
        host_rows = input_rows(program, host_inputs)
        plan = read_plan(program, self.layers)
        rows_read = plan.buffers(n, config.rows)
        cycles = np.zeros(n, np.int64)
        layer_cycles: dict[int, list[int]] = {}

        self._mark("start")
        host.phase = "setup"
        host.check()
        host.phase = "load"
        host.load(program.images.words(narrow_program=program.config.narrow_program))
        self._mark("loaded")
        for s in range(n):
            host.phase = "input"
            for base, rows in host_rows.values():
                host.write_rows(base, rows[s])
            if plan.step:
                previous, instruction = 0, 0
                while True:
                    host.phase = "run"
                    host.start(step=True)
                    status = host.wait(self.max_polls)
                    layer_cycles.setdefault(instruction, [0] * n)[s] = status.cycles - previous
                    previous = status.cycles
                    if not status.paused:
                        break
                    host.phase = "output"
                    for base, count in plan.reads.get(instruction, ()):
                        rows_read[instruction, base, count][s] = host.read_rows(base, count)
                    instruction += 1
                    if instruction > (1 << config.program_addr_width):
                        raise SystolixError("the program did not reach HALT in step mode")
            else:
                host.phase = "run"
                host.start()
                status = host.wait(self.max_polls)
            cycles[s] = status.cycles
            host.phase = "output"
            for base, count in plan.reads.get(None, ()):
                rows_read[None, base, count][s] = host.read_rows(base, count)
            if progress is not None:
                progress(s + 1)
        self._mark("done")
        self.polls = host.counts["run", "STATUS"]
        tensors = plan.decode(rows_read)
        for name, value in host_inputs.items():
            tensors.setdefault(name, np.asarray(value))
        self.last_run = HardwareRun(tensors, [int(c) for c in cycles], layer_cycles)
        self.simulate_seconds = time.perf_counter() - started
        return tensors
