"""Activation addresses of one MATMUL instruction, in the order the array consumes them.

The loop nest of ``docs/architecture.md`` (MATMUL sequencing)::

    for j in range(out_blocks):
      for chunk (output rows oy0 .. oy0 + chunk_rows - 1, cut at out_h):
        for t in range(taps):                       # CONV: t = (ky*k_w + kx)*in_blocks + cbi
          for oy in chunk: for ox in range(out_w):  # p = pixel index inside the chunk
            iy = oy*stride_h - pad_top + ky*dil_h;  ix = ox*stride_w - pad_left + kx*dil_w
            emit row = in_base + (cbi*in_h + iy)*in_w + ix, valid = inside the input

DEPTHWISE has no ``cbi`` loop (``cbi = j``); DENSE has a single output pixel and ``row = in_base + t``,
always valid.

No multiplier in the loop. The address is split as ``row = tap_row + line_off + ox*stride_w`` with
``tap_row = in_base - pad_top*in_w - pad_left + cbi*in_h*in_w + ky*dil_h*in_w + kx*dil_w`` (plus
``j*in_h*in_w`` in DEPTHWISE) and ``line_off = oy*stride_h*in_w``. Each loop level keeps the value
its inner levels restart from (``j_base``, ``ky_row``, ``kx_row``, ``tap_row``; ``c_*`` for the chunk
start) and adds a per-instruction constant when it steps: ``in_h*in_w``, ``dil_h*in_w``,
``stride_h*in_w``, ``pad_top*in_w``. These four products are formed once per instruction, in SETUP,
by four multipliers (`SETUP_CYCLES` from ``start`` to the first item). Addresses are computed modulo
``2**act_addr_width`` (exact for the valid rows, whatever the intermediate signs); the coordinates
``iy``, ``ix`` are kept as true signed numbers for the bounds test.

Every emitted item carries the flags the rest of the engine needs: ``swap`` (first vector of a
weight tile; with ``w_shared``, where every step uses the one tile at ``w_base``, only the first
vector of the instruction), ``first``/``last`` (``t == 0`` / ``t == taps - 1``), ``p``, ``j`` and ``end`` (the last
item of the instruction). The output is the current state (a function of registers), so it holds
under back-pressure; the state steps on each transfer: one item per cycle.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Mode, instruction_layout
from systolix.arch.latency import window_setup_cycles

__all__ = ["WindowAddresser", "window_item_layout"]

_COORD = signed(20)  # iy, ix and their parts: |oy*stride| < 2**14, |ky*dil| < 2**12, pads < 64


def window_item_layout(config: AcceleratorConfig) -> data.StructLayout:
    """Payload of `WindowAddresser.o`: one activation row request and its flags."""
    return data.StructLayout({
        "addr": unsigned(config.act_addr_width),
        "valid": unsigned(1),   # inside the input; otherwise the row is not used (x = x_zp)
        "swap": unsigned(1),    # first vector of a weight tile
        "p": unsigned(config.acc_addr_width),  # pixel index inside the chunk (accumulator row)
        "first": unsigned(1),   # t == 0
        "last": unsigned(1),    # t == taps - 1
        "j": unsigned(8),       # output block
        "end": unsigned(1),     # last item of the instruction
    })


class WindowAddresser(wiring.Component):
    """Streams the activation row addresses of one MATMUL instruction (see the module docstring).

    ``instr`` must stay stable from the ``start`` pulse until `busy` falls. Requirements on the
    instruction (the compiler's): ``out_blocks``, ``taps``, ``chunk_rows``, ``out_h``, ``out_w``,
    ``k_h``, ``k_w`` >= 1; CONV: ``taps == k_h*k_w*in_blocks``; DEPTHWISE: ``taps == k_h*k_w``;
    ``chunk_rows*out_w <= acc_memory_depth``. In DENSE mode the output size fields are ignored (one
    pixel).

    Parameters
    ----------
    config : AcceleratorConfig

    Members
    -------
    instr : In(instruction_layout())
    start : In(1)
        Pulse to begin (ignored while busy).
    busy : Out(1)
        High from ``start`` until the last item has been transferred.
    o : Out(stream.Signature(window_item_layout(config)))
    """

    #: Cycles from ``start`` to the first item (the per-instruction products).
    SETUP_CYCLES = window_setup_cycles()

    def __init__(self, config: AcceleratorConfig):
        self._config = config
        super().__init__({
            "instr": In(instruction_layout()),
            "start": In(1),
            "busy": Out(1),
            "o": Out(stream.Signature(window_item_layout(config))),
        })

    def elaborate(self, platform):
        cfg = self._config
        aw = cfg.act_addr_width
        m = Module()

        # The instruction is copied at ``start``: every decision below reads this unit's own registers,
        # not the controller's (whose register fans out to both engines). On a small device
        # (``narrow_program``) it reads the controller's register, stable while an instruction runs: the copy's
        # flip-flops are a tenth of an UP5K.
        share = cfg.narrow_program
        ins = self.instr if share else Signal(instruction_layout())
        conv = Signal()
        dw = Signal()
        dense = Signal()

        # Per-instruction products by in_w (modulo 2**aw: they only enter addresses).
        ptw = Signal(aw)   # pad_top * in_w
        hw = Signal(aw)    # in_h * in_w
        dhw = Signal(aw)   # dil_h * in_w
        shw = Signal(aw)   # stride_h * in_w
        step = Signal(range(self.SETUP_CYCLES))
        left_base = Signal(aw)  # in_base - pad_left
        origin = Signal(aw)     # row of tap (0, 0) of pixel (0, 0): in_base - pad_top*in_w - pad_left

        # Loop limits, formed in SETUP: ``*_next_last``, the value before a count's last one (a counter
        # stepping from it sets its ``*_at_last`` flag), and whether a loop has a single iteration
        # (``*_single``).
        setup_loads = []

        def limit(field, width):
            before = Signal(width, name=f"{field}_next_last")
            single = Signal(name=f"{field}_single")
            setup_loads.extend([before.eq(ins[field] - 2), single.eq(ins[field] == 1)])
            return before, single

        ow_before, ow_single = limit("out_w", 10)
        oh_before, oh_single = limit("out_h", 10)
        ch_before, ch_single = limit("chunk_rows", 10)
        taps_before, taps_single = limit("taps", 16)
        ob_before, ob_single = limit("out_blocks", 8)
        ib_before, ib_single = limit("in_blocks", 8)
        kw_before, kw_single = limit("k_w", 8)

        # Loop state (see the module docstring). The ``*_row`` registers hold rows of the current chunk
        # (its ``c_line = c_oy*stride_h*in_w`` included), so each next address is one adder away.
        j = Signal(8)
        j_base = Signal(aw)
        c_oy = Signal(10)
        c_oy_s = Signal(_COORD)
        c_jl = Signal(aw)      # j_base + c_line
        t = Signal(16)
        ky = Signal(8)
        kx = Signal(8)
        cbi = Signal(8)
        tap_iy = Signal(_COORD)
        tap_ix = Signal(_COORD)
        ky_row = Signal(aw)
        kx_row = Signal(aw)
        tap_row = Signal(aw)
        oy = Signal(10)
        rc = Signal(10)        # row inside the chunk
        oy_s = Signal(_COORD)  # oy * stride_h
        jl = Signal(aw)        # j_base + oy * stride_h * in_w
        ox = Signal(10)
        ox_s = Signal(_COORD)  # ox * stride_w
        p = Signal(cfg.acc_addr_width)
        first_item = Signal()  # w_shared: only the instruction's first vector swaps its one tile in

        # Each loop's "at its last value" as a register, stepped with its counter (no comparator in front
        # of the loop decisions).
        ox_at_last, oy_at_last, c_oy_at_last, rc_at_last = Signal(), Signal(), Signal(), Signal()
        t_at_last, j_at_last, cbi_at_last, kx_at_last = Signal(), Signal(), Signal(), Signal()
        t_zero, p_zero = Signal(), Signal()

        # The current item's row is a register of its own (not an adder in front of the act read port),
        # kept with ``line_addr`` (the row of pixel 0 of the current output row) by the same steps.
        addr = Signal(aw)
        line_addr = Signal(aw)
        new_tap = Signal(aw)

        # The current item.
        iy = Signal(_COORD)
        ix = Signal(_COORD)
        m.d.comb += [iy.eq(tap_iy + oy_s), ix.eq(tap_ix + ox_s)]
        inside = (iy >= 0) & (iy < ins.in_h) & (ix >= 0) & (ix < ins.in_w)
        ox_last = dense | ox_at_last
        oy_out_last = dense | oy_at_last
        row_last = oy_out_last | rc_at_last
        item = self.o.payload
        m.d.comb += [
            item.addr.eq(addr),
            item.valid.eq(dense | inside),
            item.swap.eq(p_zero & (~ins.w_shared | first_item)),
            item.p.eq(p),
            item.first.eq(t_zero),
            item.last.eq(t_at_last),
            item.j.eq(j),
            item.end.eq(ox_last & row_last & oy_out_last & t_at_last & j_at_last),
        ]

        def restart_taps(base):
            """Tap loop back to (ky, kx, cbi) = 0 from the chunk's base row ``base``."""
            return [ky.eq(0), kx.eq(0), cbi.eq(0), t.eq(0), t_zero.eq(1), t_at_last.eq(taps_single),
                    kx_at_last.eq(kw_single), cbi_at_last.eq(~conv | ib_single),
                    tap_iy.eq(-ins.pad_top), tap_ix.eq(-ins.pad_left),
                    ky_row.eq(base), kx_row.eq(base), tap_row.eq(base)]

        def set_rows(oy_v, oy_s_v, jl_v, oy_last_v):
            """Output row loop back to the chunk's first row."""
            return [oy.eq(oy_v), oy_s.eq(oy_s_v), jl.eq(jl_v), rc.eq(0), oy_at_last.eq(oy_last_v),
                    rc_at_last.eq(ch_single)]

        with m.FSM():
            with m.State("IDLE"):
                # The instruction is copied in every idle cycle (it is valid at ``start``): the enable of
                # these registers is the state, not the start pulse.
                m.d.sync += step.eq(0)
                if not share:
                    m.d.sync += ins.eq(self.instr)
                with m.If(self.start):
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                # Cycle 0: the instruction's own registers are valid; from cycle 1 the limits too.
                m.d.sync += [conv.eq(ins.mode == Mode.CONV), dw.eq(ins.mode == Mode.DEPTHWISE),
                             dense.eq(ins.mode == Mode.DENSE), left_base.eq(ins.in_base - ins.pad_left),
                             origin.eq(Mux(dense, ins.in_base, left_base - ptw))]
                m.d.sync += setup_loads
                # The four products by in_w, each from its own multiplier (on this unit's copy of the
                # instruction: no multiplier shared with another engine) straight into its register.
                m.d.sync += [ptw.eq(ins.in_w * ins.pad_top), hw.eq(ins.in_w * ins.in_h),
                             dhw.eq(ins.in_w * ins.dil_h), shw.eq(ins.in_w * ins.stride_h)]
                with m.If(step == self.SETUP_CYCLES - 1):
                    m.d.sync += [j.eq(0), j_base.eq(origin), c_oy.eq(0), c_oy_s.eq(0), c_jl.eq(origin),
                                 ox.eq(0), ox_s.eq(0), p.eq(0), first_item.eq(1),
                                 ox_at_last.eq(ow_single), j_at_last.eq(ob_single), c_oy_at_last.eq(oh_single),
                                 p_zero.eq(1)]
                    m.d.sync += restart_taps(origin)
                    m.d.sync += set_rows(0, 0, origin, oh_single)
                    m.d.sync += [addr.eq(origin), line_addr.eq(origin)]
                    m.next = "RUN"
                m.d.sync += step.eq(step + 1)
            with m.State("RUN"):
                m.d.comb += [self.busy.eq(1), self.o.valid.eq(1)]
                with m.If(self.o.ready):
                    m.d.sync += first_item.eq(0)
                    with m.If(~ox_last):
                        m.d.sync += [ox.eq(ox + 1), ox_s.eq(ox_s + ins.stride_w), p.eq(p + 1), p_zero.eq(0),
                                     addr.eq(addr + ins.stride_w), ox_at_last.eq(ox == ow_before)]
                    with m.Else():
                        m.d.sync += [ox.eq(0), ox_s.eq(0), ox_at_last.eq(ow_single)]
                        with m.If(~row_last):
                            m.d.sync += [oy.eq(oy + 1), oy_s.eq(oy_s + ins.stride_h), jl.eq(jl + shw),
                                         rc.eq(rc + 1), p.eq(p + 1), p_zero.eq(0),
                                         line_addr.eq(line_addr + shw), addr.eq(line_addr + shw),
                                         oy_at_last.eq(oy == oh_before), rc_at_last.eq(rc == ch_before)]
                        with m.Else():
                            m.d.sync += [p.eq(0), p_zero.eq(1)]
                            with m.If(~t_at_last):
                                # Next tap of the same chunk.
                                m.d.sync += [t.eq(t + 1), t_zero.eq(0), t_at_last.eq(t == taps_before),
                                             *set_rows(c_oy, c_oy_s, c_jl, c_oy_at_last),
                                             tap_row.eq(new_tap), line_addr.eq(new_tap), addr.eq(new_tap)]
                                with m.If(dense):
                                    m.d.comb += new_tap.eq(tap_row + 1)
                                with m.Elif(~cbi_at_last):
                                    m.d.comb += new_tap.eq(tap_row + hw)
                                    m.d.sync += [cbi.eq(cbi + 1), cbi_at_last.eq(cbi == ib_before)]
                                with m.Elif(~kx_at_last):
                                    m.d.comb += new_tap.eq(kx_row + ins.dil_w)
                                    m.d.sync += [cbi.eq(0), cbi_at_last.eq(~conv | ib_single),
                                                 kx.eq(kx + 1), kx_at_last.eq(kx == kw_before),
                                                 tap_ix.eq(tap_ix + ins.dil_w), kx_row.eq(kx_row + ins.dil_w)]
                                with m.Else():
                                    m.d.comb += new_tap.eq(ky_row + dhw)
                                    m.d.sync += [cbi.eq(0), cbi_at_last.eq(~conv | ib_single),
                                                 kx.eq(0), kx_at_last.eq(kw_single), ky.eq(ky + 1),
                                                 tap_ix.eq(-ins.pad_left), tap_iy.eq(tap_iy + ins.dil_h),
                                                 ky_row.eq(ky_row + dhw), kx_row.eq(ky_row + dhw)]
                            with m.Elif(~oy_out_last):
                                # Next chunk of the same output block.
                                nxt_oy, nxt_oy_s, nxt_row = oy + 1, oy_s + ins.stride_h, jl + shw
                                nxt_last = oy == oh_before
                                m.d.sync += [c_oy.eq(nxt_oy), c_oy_s.eq(nxt_oy_s), c_jl.eq(nxt_row),
                                             c_oy_at_last.eq(nxt_last),
                                             *set_rows(nxt_oy, nxt_oy_s, nxt_row, nxt_last),
                                             *restart_taps(nxt_row),
                                             line_addr.eq(nxt_row), addr.eq(nxt_row)]
                            with m.Elif(~j_at_last):
                                # Next output block.
                                nxt_base = Mux(dw, j_base + hw, j_base)
                                m.d.sync += [j.eq(j + 1), j_at_last.eq(j == ob_before), j_base.eq(nxt_base),
                                             c_oy.eq(0), c_oy_s.eq(0), c_jl.eq(nxt_base),
                                             c_oy_at_last.eq(oh_single),
                                             *set_rows(0, 0, nxt_base, oh_single),
                                             *restart_taps(nxt_base),
                                             line_addr.eq(nxt_base), addr.eq(nxt_base)]
                            with m.Else():
                                m.next = "IDLE"
        return m
