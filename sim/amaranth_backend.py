"""``--backend amaranth``: the compiled accelerator on Amaranth's own simulator.

The model is compiled for the configuration (or taken from a build folder), the program's memory images are
written into the accelerator's memories, and every sample is run the way a host would run it: the input
rows are written into the activation memory, ``start`` is pulsed, the testbench waits for ``done`` while recording which
instruction (``pc``) every cycle belongs to, and the tensors are read back from the activation memory.
Slow (thousands of cycles per second): for unit tests and a few images; Verilator is the fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import pack_lanes as _pack_rows
from systolix.arch.memory import unpack_lanes as _unpack_rows
from systolix.errors import SystolixError
from systolix.frontend.ir import Model


def program_for(model: Model, config: AcceleratorConfig):
    """The program of ``model`` for ``config`` (the same one whether or not every layer is read back)."""
    from systolix.compiler.compile import compile_model

    return compile_model(model, config)


@dataclasses.dataclass
class HardwareRun:
    """Tensors read back and cycles measured, for all samples."""

    tensors: dict[str, np.ndarray]
    cycles: list[int]                      # total per sample
    layer_cycles: dict[int, list[int]]     # instruction index -> cycles per sample


class AmaranthBackend:
    """Runs the accelerator in ``amaranth.sim``: the program's images are written into its memories, samples
    run as on the Verilator backend (step mode with ``layers``).

    With ``build`` (a build folder), its program and images are run, and the folder's ``accelerator.v`` must
    be the Verilog of the Amaranth design simulated here (checked: otherwise use the Verilator backend).
    """

    name = "amaranth"

    def __init__(self, config: AcceleratorConfig | None = None, layers: bool = True,
                 max_cycles: int = 50_000_000, *, build=None) -> None:
        self.build = build
        self.config = build.config if build is not None else (config or AcceleratorConfig.preset("4x4"))
        self.layers = layers
        self.max_cycles = max_cycles
        self.last_run: HardwareRun | None = None
        self.program = None

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        from amaranth.sim import Simulator

        from systolix.compiler.layout import write_tensor
        from systolix.hdl.export import verilog_for
        from systolix.hdl.top import Accelerator

        from .readback import read_plan

        if self.build is not None:
            if verilog_for(self.build.config) != self.build.verilog:
                raise SystolixError(f"{self.build.folder / 'accelerator.v'} is not the Verilog of this systolix's "
                                    "accelerator for its config.json; simulate it with --backend verilator")
            program = self.build.program
        else:
            program = program_for(model, self.config)
        config = program.config
        if config.spram_buffers:  # its act banks and packed wgt words are not reached through top.act / top.wgt
            raise SystolixError("the amaranth backend does not simulate spram_buffers configurations; use "
                                "--backend verilator")
        self.program, self.config = program, config
        host_inputs = program.host_inputs(inputs)
        device_inputs = program.device_inputs(host_inputs)
        n = len(next(iter(inputs.values())))
        top = Accelerator(config)
        lanes = config.rows
        plan = read_plan(program, self.layers)
        rows_read = plan.buffers(n, lanes)
        cycles: list[int] = []
        layer_cycles: dict[int, list[int]] = {}
        words = program.images.words(narrow_program=config.narrow_program)

        def read(ctx, at, s):
            for base, count in plan.reads.get(at, ()):
                rows_read[at, base, count][s] = _unpack_rows([ctx.get(top.act.data[base + i]) for i in range(count)],
                                                             lanes)

        async def testbench(ctx):
            for name, mem in (("wgt", top.wgt), ("prm", top.prm), ("prog", top.prog)):
                for i, word in enumerate(words[name]):
                    ctx.set(mem.data[i], word)
            for lane, mem in enumerate(top.lut):  # each lane's copy holds its byte of every lut word
                for i, word in enumerate(words["lut"]):
                    ctx.set(mem.data[i], (word >> (8 * lane)) & 0xFF)
            for mem in top.tab:
                for i, word in enumerate(words["addtab"]):
                    ctx.set(mem.data[i], word)
            ctx.set(top.step, int(plan.step))
            for s in range(n):
                for name, value in device_inputs.items():
                    placement = program.tensors[name]
                    rows = write_tensor(placement, value[s:s + 1])[0]
                    for i, word in enumerate(_pack_rows(rows)):
                        ctx.set(top.act.data[placement.base + i], word)
                per_pc: dict[int, int] = {}
                total, instruction = 0, 0
                while True:  # one instruction per pass in step mode, the whole program otherwise
                    ctx.set(top.start, 1)
                    await ctx.tick()
                    ctx.set(top.start, 0)
                    while True:
                        if ctx.get(top.paused):
                            break
                        _, _, done, pc = await ctx.tick().sample(top.done, top.pc)
                        total += 1
                        per_pc[int(pc)] = per_pc.get(int(pc), 0) + 1
                        if done or total > self.max_cycles:
                            break
                    if total > self.max_cycles:
                        raise SystolixError(f"the accelerator did not finish within {self.max_cycles} cycles")
                    if done:
                        break
                    read(ctx, instruction, s)
                    instruction += 1
                cycles.append(total)
                for pc, c in per_pc.items():
                    layer_cycles.setdefault(pc, []).append(c)
                read(ctx, None, s)
                if progress is not None:
                    progress(s + 1)

        sim = Simulator(top)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        sim.run()
        tensors = plan.decode(rows_read)
        for name, value in host_inputs.items():  # done by the host, or not kept in act: as written
            tensors.setdefault(name, np.asarray(value))
        self.last_run = HardwareRun(tensors, cycles, layer_cycles)
        return tensors
