"""The vector engine: one MAXPOOL, LUT, ADD, MUL or RESIZE instruction at a time (``docs/architecture.md``).

On ``ctl.start`` the engine reads ``prm[p_base]`` (the ADD or MUL constants, in the row's low 96 bits; a
harmless read for the other opcodes), then walks its instruction, one ``act`` read per cycle:

- MAXPOOL: for each channel block, output pixel (row-major) and window tap (``ky`` outer, ``kx``
  inner) the tap's row ``in_base + (cb*in_h + iy)*in_w + ix`` with
  ``iy = oy*stride_h - pad_top + ky*dil_h`` (likewise ``ix``); taps outside the input are not read
  and enter the `MaxPoolUnit` as -128. One cycle per tap.
- LUT: row ``in_base + i`` -> `LookupUnit` (table at ``lut`` row ``lut_base``). One cycle per row.
- ADD: rows ``in_base + i`` and ``in2_base + i`` on alternate cycles -> `AddUnit` (table at ADD-table
  row ``lut_base``). Two cycles per row.
- MUL: as ADD, into the `MulUnit` (no table).
- RESIZE (nearest-neighbour upsampling): for each channel block and output pixel (row-major) the row
  ``in_base + (cb*in_h + iy)*in_w + ix``, into the `MaxPoolUnit` as a one-tap window (a copy). Along each
  axis the input coordinate is 0 for the first ``k_h`` (``k_w``) outputs, then steps by one every
  ``stride_h`` (``stride_w``) outputs and stops at the last input coordinate: every nearest map of an
  integer factor (``frontend/ops/resize.py``). One cycle per output pixel.
- ADD and MUL with ``bcast``: the second operand's row is ``in2_base + i // (in_h*in_w)`` (one row per
  channel block, as a ``[N, C, 1, 1]`` tensor is stored, used for the ``in_h*in_w`` rows of that block of
  the first operand: the squeeze-and-excite broadcast). It is read once per block and latched: one cycle
  per row plus one per block.

Outputs are written in order to ``out_base + n`` (n = 0, 1, ...): for MAXPOOL that is
``out_base + (cb*out_h + oy)*out_w + ox``. The write port never stalls, so the units' outputs are
always ready and their inputs never refuse an item: a read issued in one cycle is accepted by its
unit two cycles later (the row read is registered on its way). ``ctl.done`` pulses the cycle after
the last write. Reads of a row always come before the write of the same row index, so LUT and ADD
may work in place (``out_base == in_base``); MAXPOOL may not.

The tap coordinates and every address step incrementally: each loop level keeps the row its inner
levels restart from and adds a per-instruction product (``in_h*in_w``, ``stride_h*in_w``,
``dil_h*in_w``, formed once at ``start``) when it steps, so no multiplier or adder lies between the
loop registers and the ``act`` ports.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.add_arith import TABLE_BITS, add_param_layout
from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Opcode, instruction_layout
from systolix.arch.mul_arith import mul_param_layout
from systolix.arch.params import channel_layout

from . import ports
from .add_unit import AddUnit, table_read_port
from .lookup_unit import LookupUnit
from .max_pool_unit import MaxPoolUnit
from .mul_unit import MulUnit

__all__ = ["VectorEngine"]

_COORD = signed(16)


class VectorEngine(wiring.Component):
    """MAXPOOL / LUT / ADD / MUL / RESIZE executor.

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
        A captured port (`ports.captured`: data two cycles after ``en``, held until the next read lands),
        as ``prm_rd``.
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
        src = self.ctl.instr
        # This engine's copy of the instruction (loaded while idle; valid from the cycle after ``start``):
        # everything below reads it, not the controller's register shared with the other engine.
        # On a small device (``narrow_program``) the controller's register itself, stable while an instruction
        # runs (the copy's flip-flops are a tenth of an UP5K).
        share = cfg.narrow_program
        ins = src if share else Signal(instruction_layout())

        # The units this configuration builds (``AcceleratorConfig.vector_units``); an absent unit's opcode flag
        # stays 0, so its loop and its write path are left out too. RESIZE copies through the max-pool unit.
        has = cfg.has_unit
        add = AddUnit(lanes, self._tab_aw) if has("add") else None
        lookup = LookupUnit(lanes, self._lut_aw) if has("lut") else None
        pool = MaxPoolUnit(lanes) if has("maxpool") or has("resize") else None
        mul = MulUnit(lanes) if has("mul") else None
        for name, unit in (("add", add), ("lookup", lookup), ("pool", pool), ("mul", mul)):
            if unit is not None:
                m.submodules[name] = unit
        if add is not None:
            wiring.connect(m, wiring.flipped(self.tab_rd), add.tab_rd)
        if lookup is not None:
            wiring.connect(m, wiring.flipped(self.lut_rd), lookup.lut_rd)

        # The opcode, decoded into registers at ``start``.
        is_add, is_lut, is_pool, is_mul = Signal(), Signal(), Signal(), Signal()
        is_binary = Signal()  # ADD or MUL: the two-operand read loop
        is_resize = Signal()
        is_grid = Signal()    # MAXPOOL or RESIZE: the channel block / output pixel loops

        # ADD constants: prm[p_base], read at the start of every instruction; the captured port holds the row
        # while the instruction runs (no other prm read happens meanwhile).
        if add is not None:
            params = Signal(add_param_layout())
            m.d.comb += [params.eq(self.prm_rd.data.as_value()[: len(params.as_value())]),
                         add.params.eq(params), add.base.eq(ins.lut_base)]
        if lookup is not None:
            m.d.comb += lookup.base.eq(ins.lut_base)
        if mul is not None:
            mul_params = Signal(mul_param_layout())
            m.d.comb += [mul_params.eq(self.prm_rd.data.as_value()[: len(mul_params.as_value())]),
                         mul.params.eq(mul_params)]

        # Loop state.
        issuing = Signal()
        i = Signal(16)                     # ADD / LUT row
        phase = Signal()                   # ADD: 0 reads a, 1 reads b
        cb = Signal(8)
        oy, ox = Signal(10), Signal(10)
        ky, kx = Signal(8), Signal(8)
        iy0, ix0 = Signal(_COORD), Signal(_COORD)  # oy*stride_h - pad_top, ox*stride_w - pad_left
        iy, ix = Signal(_COORD), Signal(_COORD)    # the tap: iy0 + ky*dil_h, ix0 + kx*dil_w
        written = Signal(28)

        # No multiplier or adder between the loop registers and the act ports: the read addresses and
        # the write address are registers that step by per-instruction constants, and the products and
        # limits the loops need are formed once per instruction. At ``start`` (the instruction is valid
        # from then on) the products go into registers; in PARAMS the row registers start from them.
        aw = cfg.act_addr_width
        hw, dhw, shw, ptw = Signal(aw), Signal(aw), Signal(aw), Signal(aw)  # in_w * in_h, dil_h, stride_h, pad_top
        blocks_h = Signal(18)              # out_blocks * out_h
        expected = Signal(28)              # rows the instruction writes
        # Loop limits: the value before each count's last one (a counter stepping from it is then at its
        # last value: the ``last_*`` flags are registers, no comparator in front of the loop decisions),
        # and whether a loop has one iteration. ``all_written``: ``written == expected``, registered.
        rows_before = Signal.like(ins.rows)
        kw_before, kh_before = Signal.like(ins.k_w), Signal.like(ins.k_h)
        ow_before, oh_before = Signal.like(ins.out_w), Signal.like(ins.out_h)
        cb_before = Signal.like(ins.out_blocks)
        kw_single, kh_single, ow_single, oh_single = Signal(), Signal(), Signal(), Signal()
        last_i, last_kx, last_ky, last_ox, last_oy, last_cb = (Signal(name=f"last_{n}")
                                                               for n in ("i", "kx", "ky", "ox", "oy", "cb"))
        expected_before = Signal(28)
        all_written = Signal()
        # MAXPOOL rows (mod 2**aw), each the start the inner loops restart from, with
        # ``origin = in_base - pad_top*in_w - pad_left``:
        block_row = Signal(aw)  # origin + cb*in_h*in_w
        oy_row = Signal(aw)     # block_row + oy*stride_h*in_w
        ox_row = Signal(aw)     # oy_row + ox*stride_w
        ky_row = Signal(aw)     # ox_row + ky*dil_h*in_w
        tap_row = Signal(aw)    # ky_row + kx*dil_w: the row read
        a_row, b_row = Signal(aw), Signal(aw)  # ADD / MUL / LUT: in_base + i, in2_base + i (bcast: + i // hw)
        # ``bcast``: the row within the first operand's channel block (the second operand's row steps when it
        # wraps), its limit and flags formed like the loop limits below.
        bj, hw_before = Signal(aw), Signal(aw)
        last_bj, hw_single = Signal(), Signal()
        # RESIZE: the input coordinates, the outputs left in their current run, the row of (cb, riy, 0), and the
        # last input coordinates (where the coordinates stop).
        rix, riy = Signal.like(ins.in_w), Signal.like(ins.in_h)
        rx_left, ry_left = Signal.like(ins.k_w), Signal.like(ins.k_h)
        r_yrow = Signal(aw)
        w_last, h_last = Signal.like(ins.in_w), Signal.like(ins.in_h)
        out_row = Signal(aw)    # out_base + written

        inside = (iy >= 0) & (iy < ins.in_h) & (ix >= 0) & (ix < ins.in_w)

        # What the read issued this cycle is for (its data arrives next cycle).
        tag = Signal(data.StructLayout({"a": 1, "b": 1, "bl": 1, "ab": 1, "lut": 1, "tap": 1, "inside": 1, "first": 1,
                                        "last": 1}))
        a_code = Signal(data.ArrayLayout(signed(8), lanes))
        b_code = Signal(data.ArrayLayout(signed(8), lanes))  # bcast: the block's row of the second operand
        m.d.sync += tag.eq(0)

        idle = Signal()
        fsm_start = self.ctl.start & idle
        with m.FSM() as fsm:
            with m.State("IDLE"):
                # The instruction is copied in every idle cycle, not only at ``start`` (it is valid then):
                # the enable of the copy is the state, not the controller's start pulse.
                if not share:
                    m.d.sync += ins.eq(src)
                with m.If(fsm_start):
                    m.d.comb += [self.prm_rd.en.eq(1), self.prm_rd.addr.eq(src.p_base)]
                    m.next = "PREP"
            with m.State("PREP"):
                # Loop state, products and limits from the copy (each product from this engine's own
                # multiplier, next to its registers).
                m.d.sync += [
                    i.eq(0), phase.eq(0), cb.eq(0), oy.eq(0), ox.eq(0), ky.eq(0), kx.eq(0),
                    iy0.eq(-ins.pad_top), ix0.eq(-ins.pad_left), iy.eq(-ins.pad_top), ix.eq(-ins.pad_left),
                    written.eq(0),
                    hw.eq(ins.in_w * ins.in_h), dhw.eq(ins.in_w * ins.dil_h), shw.eq(ins.in_w * ins.stride_h),
                    ptw.eq(ins.in_w * ins.pad_top), blocks_h.eq(ins.out_blocks * ins.out_h),
                    is_add.eq(has("add") & (ins.opcode == Opcode.ADD)),
                    is_lut.eq(has("lut") & (ins.opcode == Opcode.LUT)),
                    is_pool.eq(has("maxpool") & (ins.opcode == Opcode.MAXPOOL)),
                    is_mul.eq(has("mul") & (ins.opcode == Opcode.MUL)),
                    is_binary.eq((has("add") & (ins.opcode == Opcode.ADD)) | (has("mul") & (ins.opcode == Opcode.MUL))),
                    bj.eq(0),
                    is_resize.eq(has("resize") & (ins.opcode == Opcode.RESIZE)),
                    is_grid.eq((has("maxpool") & (ins.opcode == Opcode.MAXPOOL))
                               | (has("resize") & (ins.opcode == Opcode.RESIZE))),
                    rix.eq(0), riy.eq(0), rx_left.eq(ins.k_w), ry_left.eq(ins.k_h), w_last.eq(ins.in_w - 1),
                    h_last.eq(ins.in_h - 1),
                    rows_before.eq(ins.rows - 2), kw_before.eq(ins.k_w - 2), kh_before.eq(ins.k_h - 2),
                    ow_before.eq(ins.out_w - 2), oh_before.eq(ins.out_h - 2), cb_before.eq(ins.out_blocks - 2),
                    kw_single.eq(ins.k_w == 1), kh_single.eq(ins.k_h == 1), ow_single.eq(ins.out_w == 1),
                    oh_single.eq(ins.out_h == 1),
                    last_i.eq(ins.rows == 1), last_kx.eq(ins.k_w == 1), last_ky.eq(ins.k_h == 1),
                    last_ox.eq(ins.out_w == 1), last_oy.eq(ins.out_h == 1), last_cb.eq(ins.out_blocks == 1),
                    a_row.eq(ins.in_base), b_row.eq(ins.in2_base), out_row.eq(ins.out_base),
                ]
                m.next = "PARAMS"
            with m.State("PARAMS"):
                m.d.sync += issuing.eq(Mux(is_grid, ins.out_blocks != 0, ins.rows != 0))
                m.d.sync += expected.eq(Mux(is_grid, blocks_h * ins.out_w, ins.rows))
                origin = ins.in_base - ptw - ins.pad_left
                m.d.sync += [block_row.eq(origin), oy_row.eq(origin), ox_row.eq(origin), ky_row.eq(origin),
                             tap_row.eq(origin), r_yrow.eq(origin)]
                m.d.sync += [hw_before.eq(hw - 2), hw_single.eq(hw == 1), last_bj.eq(hw == 1)]
                m.next = "RUN"
            with m.State("RUN"):
                with m.If(issuing & is_binary & ~ins.bcast):
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(Mux(phase, b_row, a_row))]
                    m.d.sync += [tag.a.eq(~phase), tag.b.eq(phase), phase.eq(~phase)]
                    with m.If(phase):
                        m.d.sync += [i.eq(i + 1), a_row.eq(a_row + 1), b_row.eq(b_row + 1),
                                     last_i.eq(i == rows_before)]
                        with m.If(last_i):
                            m.d.sync += issuing.eq(0)
                with m.If(issuing & is_binary & ins.bcast):
                    # The second operand's row once per channel block (``phase`` 0: latched as it lands), then
                    # the block's rows of the first operand, one per cycle, each paired with the latched row.
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(Mux(phase, a_row, b_row))]
                    m.d.sync += [tag.bl.eq(~phase), tag.ab.eq(phase)]
                    with m.If(~phase):
                        m.d.sync += phase.eq(1)
                    with m.Else():
                        m.d.sync += [i.eq(i + 1), a_row.eq(a_row + 1), last_i.eq(i == rows_before), bj.eq(bj + 1),
                                     last_bj.eq(bj == hw_before)]
                        with m.If(last_bj):
                            m.d.sync += [bj.eq(0), last_bj.eq(hw_single), b_row.eq(b_row + 1), phase.eq(0)]
                        with m.If(last_i):
                            m.d.sync += issuing.eq(0)
                with m.If(issuing & is_lut):
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(a_row)]
                    m.d.sync += [tag.lut.eq(1), i.eq(i + 1), a_row.eq(a_row + 1), last_i.eq(i == rows_before)]
                    with m.If(last_i):
                        m.d.sync += issuing.eq(0)
                with m.If(issuing & is_pool):
                    # Every tap is read (the enable does not wait for the bounds test); a tap outside the
                    # input enters the unit as -128 whatever was read.
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(tap_row)]
                    m.d.sync += [tag.tap.eq(1), tag.inside.eq(inside),
                                 tag.first.eq((ky == 0) & (kx == 0)), tag.last.eq(last_kx & last_ky)]
                    # Step kx, ky, ox, oy, cb (innermost first); an outer step restarts the inner rows
                    # from its own new row.
                    m.d.sync += [kx.eq(kx + 1), ix.eq(ix + ins.dil_w), tap_row.eq(tap_row + ins.dil_w),
                                 last_kx.eq(kx == kw_before)]
                    with m.If(last_kx):
                        nxt = ky_row + dhw
                        m.d.sync += [kx.eq(0), last_kx.eq(kw_single), ky.eq(ky + 1), last_ky.eq(ky == kh_before),
                                     ix.eq(ix0), iy.eq(iy + ins.dil_h), ky_row.eq(nxt), tap_row.eq(nxt)]
                        with m.If(last_ky):
                            nxt, nxt_ix0 = ox_row + ins.stride_w, ix0 + ins.stride_w
                            m.d.sync += [ky.eq(0), last_ky.eq(kh_single), ox.eq(ox + 1), last_ox.eq(ox == ow_before),
                                         ix0.eq(nxt_ix0), ix.eq(nxt_ix0), iy.eq(iy0),
                                         ox_row.eq(nxt), ky_row.eq(nxt), tap_row.eq(nxt)]
                            with m.If(last_ox):
                                nxt, nxt_iy0 = oy_row + shw, iy0 + ins.stride_h
                                m.d.sync += [ox.eq(0), last_ox.eq(ow_single), ix0.eq(-ins.pad_left),
                                             ix.eq(-ins.pad_left), oy.eq(oy + 1), last_oy.eq(oy == oh_before),
                                             iy0.eq(nxt_iy0), iy.eq(nxt_iy0),
                                             oy_row.eq(nxt), ox_row.eq(nxt), ky_row.eq(nxt), tap_row.eq(nxt)]
                                with m.If(last_oy):
                                    nxt = block_row + hw
                                    m.d.sync += [oy.eq(0), last_oy.eq(oh_single), iy0.eq(-ins.pad_top),
                                                 iy.eq(-ins.pad_top), cb.eq(cb + 1), last_cb.eq(cb == cb_before),
                                                 block_row.eq(nxt), oy_row.eq(nxt), ox_row.eq(nxt),
                                                 ky_row.eq(nxt), tap_row.eq(nxt)]
                                    with m.If(last_cb):
                                        m.d.sync += issuing.eq(0)
                with m.If(issuing & is_resize):
                    # One output pixel per cycle: read its input pixel, step ox (and oy, cb), and the input
                    # coordinates when their run ends (never past the last input coordinate).
                    m.d.comb += [self.act_rd.en.eq(1), self.act_rd.addr.eq(tap_row)]
                    m.d.sync += [tag.tap.eq(1), tag.inside.eq(1), tag.first.eq(1), tag.last.eq(1),
                                 ox.eq(ox + 1), last_ox.eq(ox == ow_before)]
                    with m.If((rx_left == 1) & (rix != w_last)):
                        m.d.sync += [rix.eq(rix + 1), tap_row.eq(tap_row + 1), rx_left.eq(ins.stride_w)]
                    with m.Else():
                        m.d.sync += rx_left.eq(rx_left - 1)
                    with m.If(last_ox):
                        m.d.sync += [ox.eq(0), last_ox.eq(ow_single), rix.eq(0), rx_left.eq(ins.k_w), oy.eq(oy + 1),
                                     last_oy.eq(oy == oh_before)]
                        with m.If((ry_left == 1) & (riy != h_last)):
                            nxt = r_yrow + ins.in_w
                            m.d.sync += [riy.eq(riy + 1), r_yrow.eq(nxt), tap_row.eq(nxt), ry_left.eq(ins.stride_h)]
                        with m.Else():
                            m.d.sync += [ry_left.eq(ry_left - 1), tap_row.eq(r_yrow)]
                        with m.If(last_oy):
                            nxt = block_row + hw
                            m.d.sync += [oy.eq(0), last_oy.eq(oh_single), riy.eq(0), ry_left.eq(ins.k_h),
                                         cb.eq(cb + 1), last_cb.eq(cb == cb_before), block_row.eq(nxt),
                                         r_yrow.eq(nxt), tap_row.eq(nxt)]
                            with m.If(last_cb):
                                m.d.sync += issuing.eq(0)
                with m.If(~issuing & all_written):
                    m.d.comb += self.ctl.done.eq(1)
                    m.next = "IDLE"
        m.d.comb += [idle.eq(fsm.ongoing("IDLE")), self.busy.eq(~idle)]

        # Read data -> units (their inputs are always ready: see the module docstring). The row read arrives
        # in the captured port's register (`ports.captured`) two cycles after its read, with its tag held
        # one cycle longer here. Padding taps enter the max-pool unit flagged (they count as -128).
        row = self.act_rd.data
        pool_row = row
        held = Signal.like(tag)
        m.d.sync += held.eq(tag)
        with m.If(held.a):
            m.d.sync += a_code.eq(row)
        with m.If(held.bl):
            m.d.sync += b_code.eq(row)
        pair = held.b | held.ab  # the row completing a pair (bcast: a first-operand row, with the latched one)
        valid = {"add": pair & is_add, "mul": pair & is_mul, "lookup": held.lut, "pool": held.tap}
        for name, unit in (("add", add), ("mul", mul), ("lookup", lookup), ("pool", pool)):
            if unit is not None:
                m.d.comb += [unit.i.valid.eq(valid[name]), unit.o.ready.eq(1)]
        for lane in range(lanes):
            first_op = Mux(held.ab, row[lane], a_code[lane])
            second_op = Mux(held.ab, b_code[lane], row[lane])
            for unit in (add, mul):
                if unit is not None:
                    m.d.comb += [unit.i.payload[lane].a.eq(first_op), unit.i.payload[lane].b.eq(second_op)]
            if lookup is not None:
                m.d.comb += lookup.i.payload[lane].eq(row[lane])
            if pool is not None:
                m.d.comb += pool.i.payload.x[lane].eq(pool_row[lane])
        if pool is not None:
            m.d.comb += [pool.i.payload.first.eq(held.first), pool.i.payload.last.eq(held.last),
                         pool.i.payload.pad.eq(~held.inside)]

        # Unit outputs -> act writes, in order (the last unit built is the default of the mux).
        built = [unit for unit in (add, mul, lookup, pool) if unit is not None]
        out_valid = Signal()
        out_data = Signal(8 * lanes)
        if built:
            any_valid = built[0].o.valid
            for unit in built[1:]:
                any_valid = any_valid | unit.o.valid
            m.d.comb += out_valid.eq(any_valid)
            out_data_value = built[-1].o.payload.as_value()
            for unit in reversed(built[:-1]):
                out_data_value = Mux(unit.o.valid, unit.o.payload.as_value(), out_data_value)
            m.d.comb += out_data.eq(out_data_value)
        m.d.comb += [
            self.act_wr.en.eq(out_valid),
            self.act_wr.addr.eq(out_row),
            self.act_wr.data.eq(out_data),
        ]
        with m.If(out_valid):
            m.d.sync += [written.eq(written + 1), out_row.eq(out_row + 1)]
        # ``written == expected`` for the next cycle's value of ``written``, from registers (``expected`` is
        # set in PARAMS; no row is written before the second cycle of RUN, when ``expected_before`` is valid).
        m.d.sync += expected_before.eq(expected - 1)
        m.d.sync += all_written.eq(Mux(out_valid, written == expected_before, written == expected))
        return m

