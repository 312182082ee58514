"""The handshake of an elastic pipeline between two streams, shared by the pipelined units.

Each stage has a ``valid`` bit; a stage *loads* (takes the previous stage's content) when it is empty or
when its own content moves on in the same cycle. So a stall at the output only stops the stages that are
full behind it, bubbles close up, and nothing is lost or duplicated under any back-pressure.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal


def elastic_handshake(m: Module, i, o, stages: int, *, first: int = 0) -> tuple[list[Signal], list[Signal]]:
    """Valid bits and load enables of ``stages`` stages between stream ``i`` (input) and ``o`` (output).

    Drives ``i.ready`` and the valid bits; the caller registers each stage's data when its load enable is
    high and drives ``o.valid`` from the last valid bit. Signal names count from ``first``.
    """
    valids = [Signal(name=f"s{n + first}_valid") for n in range(stages)]
    loads = [Signal(name=f"s{n + first}_load") for n in range(stages)]
    downstream_ready = o.ready
    for valid, load in reversed(list(zip(valids, loads, strict=True))):
        m.d.comb += load.eq(~valid | downstream_ready)
        downstream_ready = load
    m.d.comb += i.ready.eq(loads[0])
    upstream_valid = i.valid
    for valid, load in zip(valids, loads, strict=True):
        with m.If(load):
            m.d.sync += valid.eq(upstream_valid)
        upstream_valid = valid
    return valids, loads


#: Attribute of a register that synthesis must not merge with an identical one (``systolix synth`` gives the
#: registers of signals carrying it yosys's ``keep``; yosys would otherwise fold the copies back into one).
KEEP = {"keep": 1}


def lane_copies(m: Module, value, lanes: int, name: str) -> list[Signal]:
    """One register per lane holding ``value`` a cycle later, each kept apart by synthesis (`KEEP`).

    For a per-layer constant read by every lane: each lane's logic reads its own copy, which the placer can
    put next to it, instead of one register whose wires reach across the lanes.
    """
    copies = []
    for lane in range(lanes):
        copy = Signal.like(value, name=f"{name}_lane{lane}", reset_less=True, attrs=KEEP)
        m.d.sync += copy.eq(value)
        copies.append(copy)
    return copies
