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
        j = Signal(8)
        # The loop limits are registered at ``start`` (the instruction is valid from then on), and each
        # loop's "at its last value" is a register stepped with its counter: no comparator of the
        # instruction's fields lies in front of the loop decisions.
        shared, chunk_rows = Signal(), Signal(10)
        taps_before, blocks_before = Signal(16), Signal(8)
        r_last, t_last, j_last, chunk_last = Signal(), Signal(), Signal(), Signal()
        taps_single = Signal()
        rows_left = Signal(11)  # output rows from the current chunk's first to the end: out_h - c_oy
        dense = Signal()
        first_chunk_last = Signal()

        # The address register is the payload in every state (valid only in RUN): the weight memory reads it
        # every cycle, with no logic between the register and the block RAMs.
        m.d.comb += self.o.payload.eq(addr)
        with m.FSM():
            with m.State("IDLE"):
                # Loaded in every idle cycle (the instruction is valid at ``start``): the enable of these
                # registers is the state, not the start pulse.
                single_chunk = (ins.mode == Mode.DENSE) | (ins.chunk_rows >= ins.out_h)
                m.d.sync += [addr.eq(ins.w_base), blk.eq(ins.w_base), r.eq(0), t.eq(0), j.eq(0),
                             shared.eq(ins.w_shared), chunk_rows.eq(ins.chunk_rows), dense.eq(ins.mode == Mode.DENSE),
                             taps_before.eq(ins.taps - 2), blocks_before.eq(ins.out_blocks - 2),
                             taps_single.eq(ins.taps == 1),
                             r_last.eq(lanes == 1), t_last.eq(ins.taps == 1), j_last.eq(ins.out_blocks == 1),
                             rows_left.eq(ins.out_h), chunk_last.eq(single_chunk), first_chunk_last.eq(single_chunk)]
                with m.If(self.start):
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += [addr.eq(addr + 1), r.eq(r + 1), r_last.eq(r == lanes - 2)]
                    with m.If(r_last):
                        m.d.sync += [r.eq(0), r_last.eq(lanes == 1)]
                        with m.If(shared):
                            m.next = "IDLE"
                        with m.Elif(~t_last):
                            m.d.sync += [t.eq(t + 1), t_last.eq(t == taps_before)]
                        with m.Else():
                            m.d.sync += [t.eq(0), t_last.eq(taps_single)]
                            with m.If(~chunk_last):
                                left = rows_left - chunk_rows
                                m.d.sync += [rows_left.eq(left), addr.eq(blk),
                                             chunk_last.eq(dense | (left <= chunk_rows))]
                            with m.Else():
                                m.d.sync += [blk.eq(addr + 1), j.eq(j + 1), j_last.eq(j == blocks_before),
                                             rows_left.eq(ins.out_h), chunk_last.eq(first_chunk_last)]
                                with m.If(j_last):
                                    m.next = "IDLE"
        return m
