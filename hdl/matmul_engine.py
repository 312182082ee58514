"""The MATMUL engine: one CONV / DEPTHWISE / DENSE instruction on the systolic array.

Dataflow (every arrow a ready/valid stream)::

    WindowAddresser -> SyncReader(act) -> x (invalid rows: x_zp) -> MatMulUnit -> y -> Accumulator
                                                   |  tags (p, flags, j) -> FIFO ->------^   |
    TileAddresser -> SyncReader(wgt) -> MatMulUnit.w                                         v
                                       act_wr <- Requantizer <- ParamFetch(prm, + bias) <- sums

* `WindowAddresser` emits, for each (j, chunk, t) and each pixel of the chunk, the activation row,
  whether it lies inside the input, and the flags; `SyncReader` reads it from ``act``. Rows outside
  the input are replaced by ``x_zp`` in every lane, so they add 0. The first vector of each tile asks
  `MatMulUnit` to swap weight banks (with ``w_shared``, one tile for the whole instruction: only
  the first vector swaps, and the tile is loaded once).
* `TileAddresser` + a second `SyncReader` feed the weight rows of the tiles in the same order; the
  unit loads each tile into its idle bank while the previous tile streams.
* `MatMulUnit` carries no tags, so the flags of each vector wait in a FIFO sized to its credits and
  meet their result at its output.
* `Accumulator`: ``acc[p] = (0 if t == 0 else acc[p]) + y``; on the last tap the complete sum leaves
  (no separate drain pass). `ParamFetch` adds the bias of prm row ``p_base + j``, `Requantizer`
  makes the int8 row (zero point and clamp of lane 0), and a last per-lane clamp applies each
  lane's own bounds (it only matters for padding lanes, which the compiler pins to the zero point).
* Outputs come out in the order j, oy, ox -- which is exactly the output tensor layout, so the
  write address is a counter from ``out_base`` (``out_base + (j*out_h + oy)*out_w + ox``).

``done`` pulses one cycle after the last row was written: the last item carries an ``end`` flag;
once it has entered the requantizer and every row that entered has been written, the instruction
is complete.

Cycles from ``start`` to ``done`` (measured in ``tests/hdl/test_matmul_engine.py``, within +-2):
each (j, chunk, t) tile streams its ``P`` pixels (``P`` = rows of the chunk x ``out_w``; DENSE 1) at
one per cycle. `MatMulUnit` loads the next tile (``L`` rows, one per cycle) into the bank released
by the last swap, from ``drain_cycles = L`` cycles after the last vector that used that bank (the
last vector before that swap), and swaps it in when complete. With ``s_k`` the swap of tile ``k``
(``s_0 = 0``) and ``c_k = s_(k-1) + P_(k-1) - 1`` the last vector before it::

    s_(k+1) = max(s_k + P_k, max(s_k + 1, c_k + L) + L)
    cycles  = s_last + P_last + fixed_cycles        (w_shared: sum(P for every tile) + fixed_cycles)

so a tile lasts ``max(P, 2L - 1)`` cycles when the tiles before it streamed back to back, and
``L + 1`` in DENSE (one vector per tile: the released bank is free at once); ``fixed_cycles`` is
``arch.latency.matmul_engine_fixed_cycles`` (``3L + 14 + Requantizer.latency`` for the presets: operand
and product registers in the PEs, captured act reads).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from systolix.arch import latency
from systolix.arch.config import AcceleratorConfig
from systolix.arch.params import channel_layout

from . import ports
from .accumulator import Accumulator
from .param_fetch import ParamFetch, clamp_layout
from .requantizer import Requantizer
from .sync_reader import SyncReader
from .systolic_array import MatMulUnit
from .tile_addresser import TileAddresser
from .window_addresser import WindowAddresser, window_item_layout

__all__ = ["MatMulEngine"]


class MatMulEngine(wiring.Component):
    """Executes one MATMUL instruction (module docstring; semantics in ``docs/architecture.md``).

    Requires a square array (``rows == cols``).

    Parameters
    ----------
    config : AcceleratorConfig

    Members
    -------
    ctl : In(ports.engine_control())
        ``instr`` + ``start`` in, ``done`` out.
    act_rd : Out(ports.read_port(act_addr_width, ArrayLayout(signed(8), L)))
        A captured port (`ports.captured`: data two cycles after ``en``), as ``prm_rd``.
    act_wr : Out(ports.write_port(act_addr_width, ArrayLayout(signed(8), L)))
    wgt_rd : Out(ports.read_port(weight_addr_width, ArrayLayout(signed(8), L)))
    prm_rd : Out(ports.read_port(param_addr_width, ArrayLayout(channel_layout(), L)))
    busy : Out(1)
    """

    def __init__(self, config: AcceleratorConfig):
        if config.rows != config.cols:
            raise ValueError(f"the MATMUL engine needs a square array, not {config.rows}x{config.cols}")
        self._config = config
        self._unit = MatMulUnit(config)
        lanes = config.rows
        vector = data.ArrayLayout(signed(8), lanes)
        super().__init__({
            "ctl": In(ports.engine_control()),
            "act_rd": Out(ports.read_port(config.act_addr_width, vector)),
            "act_wr": Out(ports.write_port(config.act_addr_width, vector)),
            "wgt_rd": Out(ports.read_port(config.weight_addr_width, vector)),
            "prm_rd": Out(ports.read_port(config.param_addr_width, data.ArrayLayout(channel_layout(), lanes))),
            "busy": Out(1),
        })

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    @property
    def drain_cycles(self) -> int:
        """`MatMulUnit.drain_cycles`: cycles from the last vector using a bank to its first reload."""
        return self._unit.drain_cycles

    @property
    def fixed_cycles(self) -> int:
        """Cycles per instruction besides the streaming of the tiles (``arch.latency.matmul_engine_fixed_cycles``):
        loading the first tile, the pipeline latencies behind the array (`MatMulUnit`, `Accumulator`,
        parameter fetch 1 plus 2 for the first prm read, `Requantizer`, the clamp register), start and done."""
        return latency.matmul_engine_fixed_cycles(self._config)

    def elaborate(self, platform):
        cfg = self._config
        lanes = cfg.rows
        m = Module()
        ins = self.ctl.instr

        item = window_item_layout(cfg)
        tag = data.StructLayout({"p": cfg.acc_addr_width, "first": 1, "last": 1, "j": 8, "end": 1})
        m.submodules.window = window = WindowAddresser(cfg)
        m.submodules.tiles = tiles = TileAddresser(cfg)
        m.submodules.act_reader = act_reader = SyncReader(cfg.act_addr_width, self.act_rd.data.shape(), item,
                                                          port_latency=2)
        # the weight rows span many block RAMs: they read the tile addresser's address register every cycle
        m.submodules.wgt_reader = wgt_reader = SyncReader(cfg.weight_addr_width, self.wgt_rd.data.shape(),
                                                          always_read=True)
        m.submodules.unit = unit = self._unit
        m.submodules.tags = tags = SyncFIFOBuffered(width=tag.size, depth=unit.fifo_depth + 1)
        m.submodules.acc = acc = Accumulator(lanes, cfg.acc_memory_depth, extra=data.StructLayout(
            {"j": 8, "end": 1}))
        m.submodules.params = params = ParamFetch(lanes, cfg.param_addr_width, extra=1)
        m.submodules.requant = requant = Requantizer(lanes)

        wiring.connect(m, wiring.flipped(self.act_rd), act_reader.rd)
        wiring.connect(m, wiring.flipped(self.wgt_rd), wgt_reader.rd)
        wiring.connect(m, wiring.flipped(self.prm_rd), params.prm)

        # Control: start both address generators; done when the last row has been written.
        running = Signal()
        end_seen = Signal()
        pending = Signal(range(len(Requantizer._STAGES) + 3))  # rows in the requantizer and the write register
        out_addr = Signal(cfg.act_addr_width)
        start = self.ctl.start & ~running
        m.d.comb += [
            window.instr.eq(ins), tiles.instr.eq(ins),
            window.start.eq(start), tiles.start.eq(start), params.clear.eq(~running),
            params.base.eq(ins.p_base),
            self.busy.eq(running),
        ]

        # Activation addresses -> act reads.
        m.d.comb += [
            act_reader.i.valid.eq(window.o.valid),
            act_reader.i.payload.addr.eq(window.o.payload.addr),
            act_reader.i.payload.tag.eq(window.o.payload),
            window.o.ready.eq(act_reader.i.ready),
        ]
        # Rows -> x (outside the input: x_zp, which adds 0), with tags into the FIFO.
        row = act_reader.o.payload
        flags = row.tag
        for lane in range(lanes):
            m.d.comb += unit.x.payload.data[lane].eq(Mux(flags.valid, row.data[lane], ins.x_zp))
        m.d.comb += [
            unit.x.payload.swap.eq(flags.swap),
            unit.x_zp.eq(ins.x_zp),
            unit.x.valid.eq(act_reader.o.valid & tags.w_rdy),
            act_reader.o.ready.eq(unit.x.ready & tags.w_rdy),
            tags.w_en.eq(unit.x.valid & unit.x.ready),
        ]
        tag_in = Signal(tag)
        m.d.comb += [tag_in.p.eq(flags.p), tag_in.first.eq(flags.first), tag_in.last.eq(flags.last),
                     tag_in.j.eq(flags.j), tag_in.end.eq(flags.end), tags.w_data.eq(tag_in)]

        # Weight rows (w_zp = 0: the compiler makes weights symmetric).
        m.d.comb += [
            wgt_reader.i.valid.eq(tiles.o.valid),
            wgt_reader.i.payload.addr.eq(tiles.o.payload),
            tiles.o.ready.eq(wgt_reader.i.ready),
            unit.w.valid.eq(wgt_reader.o.valid),
            unit.w.payload.eq(wgt_reader.o.payload.data),
            wgt_reader.o.ready.eq(unit.w.ready),
        ]

        # Results meet their tags -> accumulator.
        tag_out = data.View(tag, tags.r_data)
        m.d.comb += [
            acc.i.valid.eq(unit.y.valid & tags.r_rdy),
            unit.y.ready.eq(acc.i.ready & tags.r_rdy),
            tags.r_en.eq(unit.y.valid & unit.y.ready),
            acc.i.payload.y.eq(unit.y.payload),
            acc.i.payload.p.eq(tag_out.p),
            acc.i.payload.first.eq(tag_out.first),
            acc.i.payload.last.eq(tag_out.last),
            acc.i.payload.extra.j.eq(tag_out.j),
            acc.i.payload.extra.end.eq(tag_out.end),
        ]
        # Complete sums -> bias and parameters -> requantizer -> act writes.
        m.d.comb += [
            params.i.valid.eq(acc.o.valid),
            acc.o.ready.eq(params.i.ready),
            params.i.payload.acc.eq(acc.o.payload.acc),
            params.i.payload.j.eq(acc.o.payload.extra.j),
            params.i.payload.extra.eq(acc.o.payload.extra.end),
            requant.i.valid.eq(params.o.valid),
            requant.i.payload.eq(params.o.payload.req),
            params.o.ready.eq(requant.i.ready),
            requant.o.ready.eq(1),
        ]
        entered = requant.i.valid & requant.i.ready
        # Per-lane clamp after the requantizer (see `ParamFetch`): the bounds wait in a FIFO whose output
        # is a register, and the clamped row is registered before it goes to ``act`` (two compares and
        # the top level's port mux would not fit one cycle behind a LUT RAM read): one cycle more.
        bounds_layout = clamp_layout(lanes)
        m.submodules.bounds = bounds = SyncFIFOBuffered(width=bounds_layout.size, depth=len(Requantizer._STAGES) + 2)
        m.d.comb += [bounds.w_data.eq(params.o.payload.bounds), bounds.w_en.eq(entered),
                     bounds.r_en.eq(requant.o.valid)]
        lane_bounds = data.View(bounds_layout, bounds.r_data)
        wr_valid = Signal()
        wr_data = Signal.like(self.act_wr.data, reset_less=True)
        m.d.sync += wr_valid.eq(requant.o.valid)
        for lane in range(lanes):
            # min(max(code, lo), hi) with the three comparisons side by side (one carry chain deep): hi
            # when lo > hi, else lo below lo, hi above hi, the code in between.
            code, lo, hi = requant.o.payload[lane], lane_bounds[lane].lo, lane_bounds[lane].hi
            m.d.sync += wr_data[lane].eq(Mux((lo > hi) | (code > hi), hi, Mux(code < lo, lo, code)))
        written = wr_valid
        m.d.comb += [self.act_wr.en.eq(wr_valid), self.act_wr.addr.eq(out_addr), self.act_wr.data.eq(wr_data)]
        with m.If(entered & ~written):
            m.d.sync += pending.eq(pending + 1)
        with m.Elif(~entered & written):
            m.d.sync += pending.eq(pending - 1)
        with m.If(written):
            m.d.sync += out_addr.eq(out_addr + 1)
        with m.If(entered & params.o.payload.extra):
            m.d.sync += end_seen.eq(1)

        with m.If(~running):  # loaded while idle (the instruction is valid at start), not by the start pulse
            m.d.sync += [out_addr.eq(ins.out_base), end_seen.eq(0)]
        with m.If(start):
            m.d.sync += running.eq(1)
        with m.Elif(running & end_seen & (pending == 0)):
            m.d.comb += self.ctl.done.eq(1)
            m.d.sync += [running.eq(0), end_seen.eq(0)]
        return m

