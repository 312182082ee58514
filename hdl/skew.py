"""Delay lines that skew a vector into a systolic wavefront, and de-skew it back.

In a weight-stationary array element ``r`` of an activation vector must reach row ``r`` one cycle
after element ``r - 1`` reached row ``r - 1`` (it meets the partial sum coming down the column),
and column ``c`` of the result leaves the array one cycle after column ``c - 1``. `Skew` delays
each lane of a vector by its own number of cycles: ``delays = [0, 1, ..., R-1]`` skews the input,
``[C-1, ..., 1, 0]`` lines the outputs up again (Gemmini's ``MeshWithDelays`` does the same with
shift registers on both sides of its mesh).

The delay lines are free-running shift registers without reset: validity and back-pressure are
handled by whoever wraps them (see `systolix.hdl.systolic_array.MatMulUnit`).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth import Module, Signal
from amaranth.hdl import ShapeLike
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Skew"]


def _delays_problem(delays: list) -> str | None:
    if not delays:
        return "delays must not be empty"
    for delay in delays:
        if isinstance(delay, bool) or not isinstance(delay, int) or delay < 0:
            return f"each delay must be a non-negative int, not {delay!r}"
    return None


class Skew(wiring.Component):
    """Delay lane ``k`` of a vector by ``delays[k]`` clock cycles.

    Parameters
    ----------
    elem_shape : ShapeLike
        Shape of one lane (a plain shape or a `data` layout).
    delays : sequence of int
        Delay of each lane in cycles (0 is a wire).

    Members
    -------
    i : In(ArrayLayout(elem_shape, len(delays)))
        Input vector.
    o : Out(ArrayLayout(elem_shape, len(delays)))
        Output vector; ``o[k]`` at cycle ``t`` is ``i[k]`` of cycle ``t - delays[k]``.
    """

    def __init__(self, elem_shape: ShapeLike, delays: Sequence[int]):
        delays = list(delays)
        problem = _delays_problem(delays)
        if problem is not None:
            self._MustUse__used = True  # not a design left unused: it failed to build
            raise ValueError(problem)
        self._elem_shape = elem_shape
        self._delays = tuple(delays)
        layout = data.ArrayLayout(elem_shape, len(delays))
        super().__init__({"i": In(layout), "o": Out(layout)})

    @classmethod
    def ascending(cls, elem_shape: ShapeLike, lanes: int) -> Skew:
        """Lane ``k`` delayed by ``k`` cycles (input skew of a systolic array)."""
        return cls(elem_shape, range(lanes))

    @classmethod
    def descending(cls, elem_shape: ShapeLike, lanes: int) -> Skew:
        """Lane ``k`` delayed by ``lanes - 1 - k`` cycles (output de-skew)."""
        return cls(elem_shape, range(lanes - 1, -1, -1))

    @property
    def delays(self) -> tuple[int, ...]:
        """Delay of each lane in cycles."""
        return self._delays

    @property
    def latency(self) -> int:
        """The longest delay."""
        return max(self._delays)

    @property
    def register_bits(self) -> int:
        """Flip-flops used by the delay lines."""
        return sum(self._delays) * data.ArrayLayout(self._elem_shape, 1).size

    def elaborate(self, platform):
        m = Module()
        for lane, delay in enumerate(self._delays):
            stage = self.i[lane]
            for step in range(delay):
                reg = Signal(self._elem_shape, name=f"lane{lane}_d{step + 1}", reset_less=True)
                m.d.sync += reg.eq(stage)
                stage = reg
            m.d.comb += self.o[lane].eq(stage)
        return m
