"""Which rows a hardware backend reads back, and when: the same plan for Amaranth's simulator and Verilator.

Without ``--layers`` the program runs straight through and only the graph outputs are read after ``done``.
With ``--layers`` it runs in the controller's step mode: after every instruction the output tensor of that
layer (and every Reshape alias of it, which shares its rows) is read before a later layer may reuse the
rows. Either way the program is the one compiled for the configuration: nothing is recompiled to keep
tensors alive.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from systolix.compiler.compile import Program
from systolix.compiler.layout import TensorPlacement, read_tensor, write_tensor

__all__ = ["ReadPlan", "input_rows", "read_plan"]


@dataclasses.dataclass(frozen=True)
class ReadPlan:
    """Row ranges to read, after which instruction (``None``: after ``done``), and the tensors they hold.

    Attributes
    ----------
    step : bool
        Run in step mode (``--layers``).
    reads : dict
        Instruction index (or ``None``) -> list of ``(base, rows)`` ranges.
    tensors : dict
        ``(base, rows)`` at an instruction -> the tensor placements decoded from those rows.
    """

    step: bool
    reads: dict[int | None, list[tuple[int, int]]]
    tensors: dict[tuple[int | None, int, int], list[TensorPlacement]]

    def buffers(self, samples: int, lanes: int) -> dict[tuple[int | None, int, int], np.ndarray]:
        """Empty int8 arrays for the rows read at each point, ``[samples, rows, lanes]`` each."""
        return {(at, base, count): np.empty((samples, count, lanes), np.int8)
                for at, ranges in self.reads.items() for base, count in ranges}

    def decode(self, rows: dict[tuple[int | None, int, int], np.ndarray]) -> dict[str, np.ndarray]:
        """Tensors (batched) from the rows read at each point (``rows[(instruction, base, count)]``)."""
        out = {}
        for key, placements in self.tensors.items():
            for p in placements:
                out[p.name] = read_tensor(p, rows[key])
        return out


def _aliases(program: Program, name: str) -> list[TensorPlacement]:
    return [p for p in program.tensors.values() if p.name == name or p.layout == f"alias of {name}"]


def read_plan(program: Program, layers: bool) -> ReadPlan:
    """The reads for ``program``: every layer's output after its instruction, or the outputs at the end."""
    reads: dict[int | None, list[tuple[int, int]]] = {}
    tensors: dict[tuple[int | None, int, int], list[TensorPlacement]] = {}
    if layers:
        for plan in program.layers:
            if not plan.instructions or plan.output not in program.tensors:
                continue
            index = plan.instructions[-1]
            placements = _aliases(program, plan.output)
            p = program.tensors[plan.output]
            reads.setdefault(index, []).append((p.base, p.rows))
            tensors.setdefault((index, p.base, p.rows), []).extend(placements)
    else:
        for name in program.outputs:
            p = program.tensors.get(name)
            if p is None or p.layout not in ("channel-blocked",) and not p.layout.startswith("alias of"):
                continue
            if (None, p.base, p.rows) not in tensors:
                reads.setdefault(None, []).append((p.base, p.rows))
            tensors.setdefault((None, p.base, p.rows), []).append(p)
    return ReadPlan(layers, reads, tensors)


def input_rows(program: Program, host_inputs: dict[str, np.ndarray]) -> dict[str, tuple[int, np.ndarray]]:
    """The rows the host writes into ``act`` before each sample, from ``program.host_inputs(...)``: tensor
    name -> (first row, batched rows)."""
    return {name: (program.tensors[name].base, write_tensor(program.tensors[name], value))
            for name, value in program.device_inputs(host_inputs).items()}
