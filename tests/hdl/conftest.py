"""Shared pieces of the HDL tests: stream producer and consumer testbenches with random gaps.

Set ``SYSTOLIX_VCD=1`` to write a waveform of every simulation into ``tests/hdl/vcd/``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth.sim import Simulator


class StreamBench:
    """Builds testbench coroutines for `amaranth.lib.stream` interfaces.

    The producer holds ``valid`` low for a random number of cycles before each item, keeps the
    payload stable until the transfer, then drops ``valid``; the consumer draws ``ready`` at random
    every cycle and records the payloads of the cycles where both were high -- the stream transfer
    rules, with random back-pressure on both sides.
    """

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def producer(self, stream, items: Sequence[Any], *, p_valid: float = 1.0,
                 before: Callable[[Any, int], None] | None = None):
        """Testbench sending ``items``; ``before(ctx, index)`` may set side signals first."""
        async def testbench(ctx):
            for index, item in enumerate(items):
                while self.rng.random() >= p_valid:
                    await ctx.tick()
                if before is not None:
                    before(ctx, index)
                ctx.set(stream.payload, item)
                ctx.set(stream.valid, 1)
                await ctx.tick().until(stream.ready)
                ctx.set(stream.valid, 0)
        return testbench

    def consumer(self, stream, count: int, out: list, *, p_ready: float = 1.0,
                 convert: Callable[[Any], Any] = lambda payload: payload):
        """Testbench receiving ``count`` payloads into ``out`` (after ``convert``)."""
        async def testbench(ctx):
            while len(out) < count:
                ctx.set(stream.ready, bool(self.rng.random() < p_ready))
                _, _, valid, ready, payload = await ctx.tick().sample(stream.valid, stream.ready,
                                                                      stream.payload)
                if valid and ready:
                    out.append(convert(payload))
            ctx.set(stream.ready, 0)
        return testbench


@pytest.fixture
def stream_bench(request) -> StreamBench:
    """A `StreamBench` with a generator seeded from the test's name (reproducible)."""
    seed = sum(map(ord, request.node.name))
    return StreamBench(np.random.default_rng(seed))


def run_simulation(sim: Simulator, name: str, *, max_cycles: int = 50_000) -> None:
    """Run ``sim`` until its testbenches finish (failing after ``max_cycles`` clock cycles, so a
    hung handshake fails the test instead of hanging it); write a VCD when ``SYSTOLIX_VCD`` is set.
    """
    if os.environ.get("SYSTOLIX_VCD"):
        folder = Path(__file__).parent / "vcd"
        folder.mkdir(exist_ok=True)
        writer = sim.write_vcd(str(folder / f"{name}.vcd"))
    else:
        writer = nullcontext()
    with writer:
        # A clock cycle is two simulator time steps (both edges); allow some slack for delays.
        for _ in range(4 * max_cycles):
            if not sim.advance():
                return
    raise AssertionError(f"simulation did not finish within {max_cycles} cycles")


@pytest.fixture
def simulate(request) -> Callable[..., None]:
    """``simulate(sim, max_cycles=...)`` runs a simulator to completion (see `run_simulation`)."""
    def run(sim: Simulator, *, max_cycles: int = 50_000) -> None:
        run_simulation(sim, request.node.name.replace("[", "_").replace("]", ""), max_cycles=max_cycles)
    return run
