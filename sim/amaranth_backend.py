"""``--backend amaranth``: the compiled accelerator on Amaranth's own simulator.

The model is compiled for the configuration, the accelerator is built with the program's memory images
baked in, and every sample is run the way a host would run it: the input rows are written into the
activation memory, ``start`` is pulsed, the testbench waits for ``done`` while recording which
instruction (``pc``) every cycle belongs to, and the tensors are read back from the activation memory.
Slow (thousands of cycles per second): for unit tests and a few images; Verilator is the fast path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from systolix.errors import SystolixError
from systolix.frontend.ir import Model
from systolix.hdl.config import AcceleratorConfig


def program_for(model: Model, config: AcceleratorConfig, layers: bool):
    """Compile ``model``; with ``layers`` every tensor keeps its own rows (the activation buffer of the
    simulated accelerator is enlarged to fit them if needed), so all of them can be read back."""
    from systolix.compiler.compile import compile_model

    if not layers:
        return config, compile_model(model, config)
    try:
        return config, compile_model(model, config, keep_all=True)
    except SystolixError:
        probe = compile_model(model, dataclasses.replace(config, act_buffer_depth=1 << 16), keep_all=True)
        bigger = dataclasses.replace(config, act_buffer_depth=max(config.act_buffer_depth, probe.act_rows))
        return bigger, compile_model(model, bigger, keep_all=True)


def _unpack_rows(words: list[int], lanes: int) -> np.ndarray:
    raw = np.array([[(w >> (8 * i)) & 0xFF for i in range(lanes)] for w in words], dtype=np.uint8)
    return raw.view(np.int8)


def _pack_rows(rows: np.ndarray) -> list[int]:
    """One integer word per row, lane i in bits 8i..8i+7 (Python integers: 16 lanes need 128 bits)."""
    codes = (np.asarray(rows).astype(np.int64) & 0xFF).tolist()
    return [sum(v << (8 * i) for i, v in enumerate(row)) for row in codes]


@dataclasses.dataclass
class HardwareRun:
    """Tensors read back and cycles measured, for all samples."""

    tensors: dict[str, np.ndarray]
    cycles: list[int]                      # total per sample
    layer_cycles: dict[int, list[int]]     # instruction index -> cycles per sample


class AmaranthBackend:
    """Runs the compiled accelerator in ``amaranth.sim``."""

    name = "amaranth"

    def __init__(self, config: AcceleratorConfig | None = None, layers: bool = True,
                 max_cycles: int = 50_000_000) -> None:
        self.config = config or AcceleratorConfig.preset("4x4")
        self.layers = layers
        self.max_cycles = max_cycles
        self.last_run: HardwareRun | None = None
        self.program = None

    def run(self, model: Model, inputs: dict[str, np.ndarray],
            progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
        from amaranth.sim import Simulator

        from systolix.compiler.layout import read_tensor, write_tensor
        from systolix.hdl.top import Accelerator

        config, program = program_for(model, self.config, self.layers)
        self.program, self.config = program, config
        host_inputs = program.host_inputs(inputs)
        device_inputs = program.device_inputs(host_inputs)
        n = len(next(iter(inputs.values())))
        top = Accelerator(config, program.images)
        lanes = config.rows
        readable = [name for name in program.readable if name in program.tensors]
        out: dict[str, list[np.ndarray]] = {name: [] for name in readable}
        cycles: list[int] = []
        layer_cycles: dict[int, list[int]] = {}

        async def testbench(ctx):
            for s in range(n):
                for name, value in device_inputs.items():
                    placement = program.tensors[name]
                    rows = write_tensor(placement, value[s:s + 1])[0]
                    for i, word in enumerate(_pack_rows(rows)):
                        ctx.set(top.act.data[placement.base + i], word)
                ctx.set(top.start, 1)
                await ctx.tick()
                ctx.set(top.start, 0)
                per_pc: dict[int, int] = {}
                total = 0
                while True:
                    _, _, done, pc = await ctx.tick().sample(top.done, top.pc)
                    total += 1
                    per_pc[int(pc)] = per_pc.get(int(pc), 0) + 1
                    if done:
                        break
                    if total > self.max_cycles:
                        raise SystolixError(f"the accelerator did not finish within {self.max_cycles} cycles")
                cycles.append(total)
                for pc, c in per_pc.items():
                    layer_cycles.setdefault(pc, []).append(c)
                rows_cache: dict[tuple[int, int], np.ndarray] = {}
                for name in readable:
                    p = program.tensors[name]
                    key = (p.base, p.rows)
                    if key not in rows_cache:
                        words = [ctx.get(top.act.data[p.base + i]) for i in range(p.rows)]
                        rows_cache[key] = _unpack_rows(words, lanes)
                    full = np.zeros((p.base + p.rows, lanes), np.int8)
                    full[p.base:] = rows_cache[key]
                    out[name].append(read_tensor(p, full[None])[0])
                if progress is not None:
                    progress(s + 1)

        sim = Simulator(top)
        sim.add_clock(1e-8)
        sim.add_testbench(testbench)
        sim.run()
        tensors = {name: np.stack(v) for name, v in out.items() if v}
        for name, value in host_inputs.items():  # done by the host, or not kept in act: as written
            tensors.setdefault(name, np.asarray(value))
        self.last_run = HardwareRun(tensors, cycles, layer_cycles)
        return tensors
