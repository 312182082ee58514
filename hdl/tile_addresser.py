"""Weight row addresses of one MATMUL instruction: the tiles, in the order the array swaps them in.

Tile ``(j, t)`` is the ``L`` rows ``w_base + (j*taps + t)*L + r``, ``r < L``, and the engine uses the
tiles of block ``j`` once per chunk::

    for j in range(out_blocks):
      for chunk in range(n_chunks):          # n_chunks = ceil(out_h / chunk_rows); DENSE: 1
        for t in range(taps):
          for r in range(L): emit w_base + (j*taps + t)*L + r

Inside one chunk the addresses simply count up; a new chunk restarts at the block's first row
(``blk``), and a new block starts where the last chunk stopped. No multiplier. With ``w_shared``
(global average pool: every step uses the one tile at ``w_base``) the tile is sent once: the array
keeps it for the whole instruction.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Mode, instruction_layout

__all__ = ["TileAddresser"]


class TileAddresser(wiring.Component):
    """Streams the weight row addresses of one MATMUL instruction (see the module docstring).

    ``instr`` must stay stable from ``start`` until `busy` falls; the chunking follows the same
    fields as `WindowAddresser` (``out_h``, ``chunk_rows``; DENSE: one chunk).

    Parameters
    ----------
    config : AcceleratorConfig

    Members
    -------
    instr : In(instruction_layout())
    start : In(1)
    busy : Out(1)
    o : Out(stream.Signature(unsigned(config.weight_addr_width)))
    """

    def __init__(self, config: AcceleratorConfig):
        self._config = config
        super().__init__({
            "instr": In(instruction_layout()),
            "start": In(1),
            "busy": Out(1),
            "o": Out(stream.Signature(config.weight_addr_width)),
        })

    def elaborate(self, platform):
        cfg = self._config
        lanes = cfg.rows
        ins = self.instr
        m = Module()

        addr = Signal(cfg.weight_addr_width)
        blk = Signal(cfg.weight_addr_width)
        r = Signal(range(lanes))
        t = Signal(16)
        c_oy = Signal(11)
        j = Signal(8)
        chunk_last = (ins.mode == Mode.DENSE) | (c_oy + ins.chunk_rows >= ins.out_h)

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [addr.eq(ins.w_base), blk.eq(ins.w_base), r.eq(0), t.eq(0), c_oy.eq(0),
                             j.eq(0)]
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1), self.o.payload.eq(addr)]
                with m.If(self.o.ready):
                    m.d.sync += [addr.eq(addr + 1), r.eq(r + 1)]
                    with m.If(r == lanes - 1):
                        m.d.sync += r.eq(0)
                        with m.If(ins.w_shared):
                            m.next = "IDLE"
                        with m.Elif(t != ins.taps - 1):
                            m.d.sync += t.eq(t + 1)
                        with m.Else():
                            m.d.sync += t.eq(0)
                            with m.If(~chunk_last):
                                m.d.sync += [c_oy.eq(c_oy + ins.chunk_rows), addr.eq(blk)]
                            with m.Else():
                                m.d.sync += [c_oy.eq(0), blk.eq(addr + 1), j.eq(j + 1)]
                                with m.If(j == ins.out_blocks - 1):
                                    m.next = "IDLE"
        return m
