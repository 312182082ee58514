"""The vector engine: one MAXPOOL, LUT or ADD instruction at a time (``docs/architecture.md``).

On ``ctl.start`` the engine reads ``prm[p_base]`` (the ADD constants, in the row's low 96 bits; a
harmless read for the other opcodes), then walks its instruction, one ``act`` read per cycle:

- MAXPOOL: for each channel block, output pixel (row-major) and window tap (``ky`` outer, ``kx``
  inner) the tap's row ``in_base + (cb*in_h + iy)*in_w + ix`` with
  ``iy = oy*stride_h - pad_top + ky*dil_h`` (likewise ``ix``); taps outside the input are not read
  and enter the `MaxPoolUnit` as -128. One cycle per tap.
- LUT: row ``in_base + i`` -> `LookupUnit` (table at ``lut`` row ``lut_base``). One cycle per row.
- ADD: rows ``in_base + i`` and ``in2_base + i`` on alternate cycles -> `AddUnit` (table at ADD-table
  row ``lut_base``). Two cycles per row.

Outputs are written in order to ``out_base + n`` (n = 0, 1, ...): for MAXPOOL that is
``out_base + (cb*out_h + oy)*out_w + ox``. The write port never stalls, so the units' outputs are
always ready and their inputs never refuse an item: a read issued in one cycle is accepted by its
unit when its data arrives in the next. ``ctl.done`` pulses the cycle after the last write. Reads of
a row always come before the write of the same row index, so LUT and ADD may work in place
(``out_base == in_base``); MAXPOOL may not.

The tap coordinates step incrementally; the row address takes one small multiplier
(``iy * in_w``) and ``cb * in_h * in_w`` is kept as a running block base.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.add_arith import TABLE_BITS, add_param_layout
from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Opcode
from systolix.arch.params import channel_layout

from . import ports
from .add_unit import AddUnit, table_read_port
from .lookup_unit import LookupUnit
from .max_pool_unit import MaxPoolUnit

__all__ = ["VectorEngine"]

_COORD = signed(16)


class VectorEngine(wiring.Component):
    """MAXPOOL / LUT / ADD executor.

    Parameters
    ----------
    config : AcceleratorConfig
        ``L = config.rows`` lanes.
    lut_addr_width, table_addr_width : int
        Address widths of the ``lut`` memory and of the ADD table memory (rows of 256 entries per
        table; the instruction's ``lut_base`` is the row of entry 0).

    Members
    -------
    ctl : In(ports.engine_control())
    act_rd : Out(ports.read_port(act_addr_width, ArrayLayout(signed(8), L)))
    act_wr : Out(ports.write_port(act_addr_width, ArrayLayout(signed(8), L)))
    prm_rd : Out(ports.read_port(param_addr_width, ArrayLayout(channel_layout(), L)))
        Only the low 96 bits (``add_param_layout()``) of the ADD's row are used.
    lut_rd : Out(table_read_port(L, lut_addr_width, 8))
        Per-lane reads of the ``lut`` memory (``L`` copies, or ``L`` read ports; lane ``l`` reads the
        int8 column ``l``).
    tab_rd : Out(table_read_port(L, table_addr_width, TABLE_BITS))
        Per-lane reads of the ADD table memory (``L`` identical copies of the ``AddImages.table``
        words of all ADD layers, 256 words each).
    busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig, *, lut_addr_width: int = 12, table_addr_width: int = 12):
        self._config = config
        lanes = config.rows
        vector = data.ArrayLayout(signed(8), lanes)
        self._lut_aw, self._tab_aw = lut_addr_width, table_addr_width
        super().__init__({
            "ctl": In(ports.engine_control()),
            "act_rd": Out(ports.read_port(config.act_addr_width, vector)),
            "act_wr": Out(ports.write_port(config.act_addr_width, vector)),
            "prm_rd": Out(ports.read_port(config.param_addr_width, data.ArrayLayout(channel_layout(), lanes))),
            "lut_rd": Out(table_read_port(lanes, lut_addr_width, 8)),
            "tab_rd": Out(table_read_port(lanes, table_addr_width, TABLE_BITS)),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        lanes = cfg.rows
        m = Module()
        ins = self.ctl.instr

        m.submodules.add = add = AddUnit(lanes, self._tab_aw)
        m.submodules.lookup = lookup = LookupUnit(lanes, self._lut_aw)
        m.submodules.pool = pool = MaxPoolUnit(lanes)
        wiring.connect(m, wiring.flipped(self.tab_rd), add.tab_rd)
        wiring.connect(m, wiring.flipped(self.lut_rd), lookup.lut_rd)

        is_add = ins.opcode == Opcode.ADD
        is_lut = ins.opcode == Opcode.LUT
        is_pool = ins.opcode == Opcode.MAXPOOL

        # ADD constants: captured from prm[p_base] at the start of every instruction.
        params = Signal(add_param_layout())
        m.d.comb += [add.params.eq(params), add.base.eq(ins.lut_base), lookup.base.eq(ins.lut_base)]

        # Loop state.
        issuing = Signal()
        i = Signal(16)                     # ADD / LUT row
        phase = Signal()                   # ADD: 0 reads a, 1 reads b
        cb = Signal(8)
        oy, ox = Signal(10), Signal(10)
        ky, kx = Signal(8), Signal(8)
        iy0, ix0 = Signal(_COORD), Signal(_COORD)  # oy*stride_h - pad_top, ox*stride_w - pad_left
        dy, dx = Signal(_COORD), Signal(_COORD)    # ky*dil_h, kx*dil_w
        block = Signal(cfg.act_addr_width)          # in_base + cb*in_h*in_w (mod 2**act_addr_width)
        written = Signal(28)

        expected = Mux(is_pool, ins.out_blocks * ins.out_h * ins.out_w, ins.rows)
        iy, ix = iy0 + dy, ix0 + dx
        inside = (iy >= 0) & (iy < ins.in_h) & (ix >= 0) & (ix < ins.in_w)
        tap_row = (block + iy * ins.in_w + ix)[: cfg.act_addr_width]
        last_kx, last_ky = kx == ins.k_w - 1, ky == ins.k_h - 1
        last_ox, last_oy = ox == ins.out_w - 1, oy == ins.out_h - 1
        last_cb = cb == ins.out_blocks - 1

        # What the read issued this cycle is for (its data arrives next cycle).
        tag = Signal(data.StructLayout({"a": 1, "b": 1, "lut": 1, "tap": 1, "inside": 1, "first": 1,
                                        "last": 1}))
        a_code = Signal(data.ArrayLayout(signed(8), lanes))
        m.d.sync += tag.eq(0)

        idle = Signal()
        fsm_start = self.ctl.start & idle
        with m.FSM() as fsm:
            with m.State("IDLE"), m.If(fsm_start):
                m.d.comb += [self.prm_rd.en.eq(1), self.prm_rd.addr.eq(ins.p_base)]
                m.d.sync += [
                    i.eq(0), phase.eq(0), cb.eq(0), oy.eq(0), ox.eq(0), ky.eq(0), kx.eq(0),
                    iy0.eq(-ins.pad_top), ix0.eq(-ins.pad_left), dy.eq(0), dx.eq(0),
                    block.eq(ins.in_base), written.eq(0),
                ]
                m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.sync += params.eq(self.prm_rd.data.as_value()[: len(params.as_value())])
                m.d.sync += issuing.eq(Mux(is_pool, ins.out_blocks != 0, ins.rows != 0))
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(issuing & is_add):
                    m.d.comb += [self.act_rd.en.eq(1),
                                 self.act_rd.addr.eq(Mux(phase, ins.in2_base, ins.in_base) + i)]
                    m.d.sync += [tag.a.eq(~phase), tag.b.eq(phase), phase.eq(~phase)]
                    with m.If(phase):
                        m.d.sync += i.eq(i + 1)
                        with m.If(i == ins.rows - 1):
                            m.d.sync += issuing.eq(0)
                with m.If(issuing & is_lut):
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(ins.in_base + i)]
                    m.d.sync += [tag.lut.eq(1), i.eq(i + 1)]
                    with m.If(i == ins.rows - 1):
                        m.d.sync += issuing.eq(0)
                with m.If(issuing & is_pool):
                    m.d.comb += [self.act_rd.en.eq(inside), self.act_rd.addr.eq(tap_row)]
                    m.d.sync += [tag.tap.eq(1), tag.inside.eq(inside),
                                 tag.first.eq((ky == 0) & (kx == 0)), tag.last.eq(last_kx & last_ky)]
                    # Step kx, ky, ox, oy, cb (innermost first).
                    m.d.sync += [kx.eq(kx + 1), dx.eq(dx + ins.dil_w)]
                    with m.If(last_kx):
                        m.d.sync += [kx.eq(0), dx.eq(0), ky.eq(ky + 1), dy.eq(dy + ins.dil_h)]
                        with m.If(last_ky):
                            m.d.sync += [ky.eq(0), dy.eq(0), ox.eq(ox + 1), ix0.eq(ix0 + ins.stride_w)]
                            with m.If(last_ox):
                                m.d.sync += [ox.eq(0), ix0.eq(-ins.pad_left), oy.eq(oy + 1),
                                             iy0.eq(iy0 + ins.stride_h)]
                                with m.If(last_oy):
                                    m.d.sync += [oy.eq(0), iy0.eq(-ins.pad_top), cb.eq(cb + 1),
                                                 block.eq(block + ins.in_h * ins.in_w)]
                                    with m.If(last_cb):
                                        m.d.sync += issuing.eq(0)
                with m.If(~issuing & (written == expected)):
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        m.d.comb += [idle.eq(fsm.ongoing("IDLE")), self.busy.eq(~idle)]

        # Read data -> units (their inputs are always ready: see the module docstring).
        with m.If(tag.a):
            m.d.sync += a_code.eq(self.act_rd.data)
        m.d.comb += [add.i.valid.eq(tag.b), lookup.i.valid.eq(tag.lut), pool.i.valid.eq(tag.tap)]
        for lane in range(lanes):
            m.d.comb += [
                add.i.payload[lane].a.eq(a_code[lane]),
                add.i.payload[lane].b.eq(self.act_rd.data[lane]),
                lookup.i.payload[lane].eq(self.act_rd.data[lane]),
                pool.i.payload.x[lane].eq(Mux(tag.inside, self.act_rd.data[lane], -128)),
            ]
        m.d.comb += [pool.i.payload.first.eq(tag.first), pool.i.payload.last.eq(tag.last)]

        # Unit outputs -> act writes, in order.
        m.d.comb += [add.o.ready.eq(1), lookup.o.ready.eq(1), pool.o.ready.eq(1)]
        out_valid = add.o.valid | lookup.o.valid | pool.o.valid
        out_data = Mux(add.o.valid, add.o.payload.as_value(),
                       Mux(lookup.o.valid, lookup.o.payload.as_value(), pool.o.payload.as_value()))
        m.d.comb += [
            self.act_wr.en.eq(out_valid),
            self.act_wr.addr.eq(ins.out_base + written),
            self.act_wr.data.eq(out_data),
        ]
        with m.If(out_valid):
            m.d.sync += written.eq(written + 1)
        return m

