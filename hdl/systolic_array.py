"""The systolic array and its stream wrapper.

`SystolicArray` is the bare R x C grid of `ProcessingElement` s (Gemmini's ``Mesh``): it expects
its inputs already skewed and runs freely, one wavefront per cycle. `MatMulUnit` (Gemmini's
``MeshWithDelays``) wraps it into a unit with ready/valid streams: zero-point subtraction, input
skew, the grid, output de-skew, double-buffered weight loading and an output FIFO.
"""

from __future__ import annotations

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from systolix.arch import latency
from systolix.arch.config import AcceleratorConfig

from .pe import ProcessingElement
from .skew import Skew

__all__ = ["MatMulUnit", "SystolicArray"]


class SystolicArray(wiring.Component):
    """R x C weight-stationary grid of processing elements, inputs and outputs skewed.

    Row ``r`` of the grid holds row ``r`` of the weight tile (input index ``r``), column ``c``
    computes output ``c``. ``x_in[r]`` (with its bank bit ``sel_in[r]``) enters row ``r`` from the
    west and moves one column east per cycle; partial sums start at zero at the top and move one row
    south per cycle. For the products of one activation vector to meet, element ``r`` must be
    presented ``r`` cycles after element 0; column ``c`` of the result then appears on
    ``psum_out[c]`` `latency` ``+ c`` cycles after element 0 was presented.

    Weights are written one grid row at a time: with ``w_load`` high, ``w_row`` goes into bank
    ``w_bank`` of row ``w_addr`` (the row's PEs only; the other rows and the other bank keep their
    weights). Writing row ``r`` while it is still read is safe from the cycle its last reader (the
    PE in column ``cols - 1``) takes the old weight: the write takes effect at the end of the cycle.

    Parameters
    ----------
    rows, cols : int
        Grid shape.
    operand_width, acc_width, product_register :
        As for `ProcessingElement`.
    config : AcceleratorConfig, optional
        The configuration the grid is built for (then `latency` is checked against
        ``arch.latency.systolic_array_latency``).

    Members
    -------
    x_in : In(ArrayLayout(signed(operand_width), rows))
    sel_in : In(ArrayLayout(1, rows))
    psum_out : Out(ArrayLayout(signed(acc_width), cols))
    w_row : In(ArrayLayout(signed(operand_width), cols))
    w_addr : In(range(rows))
    w_load, w_bank : In(1)
    """

    def __init__(self, rows: int, cols: int, *, operand_width: int = 9, acc_width: int = 32,
                 product_register: bool = True, config: AcceleratorConfig | None = None):
        self._config = config
        self._rows = rows
        self._cols = cols
        self._pe_args = dict(operand_width=operand_width, acc_width=acc_width,
                             product_register=product_register)
        super().__init__({
            "x_in": In(data.ArrayLayout(signed(operand_width), rows)),
            "sel_in": In(data.ArrayLayout(1, rows)),
            "psum_out": Out(data.ArrayLayout(signed(acc_width), cols)),
            "w_row": In(data.ArrayLayout(signed(operand_width), cols)),
            "w_addr": In(range(rows)),
            "w_load": In(1),
            "w_bank": In(1),
        })

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def latency(self) -> int:
        """Cycles from ``x_in[0]`` to ``psum_out[0]`` (add ``c`` for column ``c``)."""
        # x_in[rows-1] is presented rows-1 cycles after x_in[0]; the bottom PE of column 0 adds it.
        product = latency.PE_PRODUCT_STAGES if self._pe_args["product_register"] else 0
        depth = (self._rows - 1) + product + ProcessingElement.PSUM_LATENCY
        if self._config is not None:
            assert depth == latency.systolic_array_latency(self._config)
        return depth

    def elaborate(self, platform):
        m = Module()
        grid = [[ProcessingElement(**self._pe_args) for _ in range(self._cols)] for _ in range(self._rows)]
        for r, row in enumerate(grid):
            for c, pe in enumerate(row):
                m.submodules[f"pe_{r}_{c}"] = pe
                # Addressed row writes (the PEs' shift chain ``w_out`` is not used): row r can be
                # refilled as soon as the last vector using it has passed, before the rows below it.
                m.d.comb += [pe.w_load.eq(self.w_load & (self.w_addr == r)), pe.w_bank.eq(self.w_bank),
                             pe.w_in.eq(self.w_row[c])]
                if c == 0:
                    m.d.comb += [pe.x_in.eq(self.x_in[r]), pe.sel_in.eq(self.sel_in[r])]
                else:
                    m.d.comb += [pe.x_in.eq(row[c - 1].x_out), pe.sel_in.eq(row[c - 1].sel_out)]
                if r == 0:
                    m.d.comb += pe.psum_in.eq(0)
                else:
                    m.d.comb += pe.psum_in.eq(grid[r - 1][c].psum_out)
                if r == self._rows - 1:
                    m.d.comb += self.psum_out[c].eq(pe.psum_out)
        return m


def activation_layout(rows: int) -> data.StructLayout:
    """Payload of `MatMulUnit.x`: an int8 vector and the flag that switches weight tiles."""
    return data.StructLayout({"data": data.ArrayLayout(signed(8), rows), "swap": unsigned(1)})


class MatMulUnit(wiring.Component):
    """Stream unit computing ``y = (x - x_zp) @ (W - w_zp)`` with a loaded R x C weight tile.

    Weight tiles are loaded through ``w``, one row of ``cols`` int8 weights per transfer, row 0
    first; ``w_zp`` (per column) is sampled with each row and subtracted on the way in. Loading
    goes to the idle bank and overlaps the computation with the active tile. After the ``rows``-th
    row of a tile ``w`` stops accepting until the tile has been put into use.

    Activation vectors enter through ``x``; ``x_zp`` is sampled with each vector. A vector with
    ``swap`` set switches to the most recently loaded tile: it and every later vector use that tile.
    ``x`` waits (ready low) while a swap is asked for before the new tile is complete; the first
    vector after reset must ask for one (the banks hold no tile yet). After a swap the old bank
    becomes loadable again once the last vector using it has passed the grid row written first
    (see `drain_cycles`); the rows of a tile are written in order, row 0 first, one per transfer.

    Results leave through ``y`` in order, one int32 vector per activation vector. Back-pressure is
    credit-based, as in Gemmini: the grid never stalls (no enable fanning out to every PE); instead
    ``x`` is accepted only while the output FIFO is sure to have room for everything in flight, so
    ``y.ready`` may be held low for any time without losing or duplicating data. With ``y.ready``
    always high the unit accepts one vector per cycle.

    Parameters
    ----------
    config : AcceleratorConfig
        Uses ``rows``, ``cols``, ``pe_product_register``.

    Members
    -------
    x : In(stream.Signature(activation_layout(rows)))
    x_zp : In(signed(8))
    w : In(stream.Signature(ArrayLayout(signed(8), cols)))
    w_zp : In(ArrayLayout(signed(8), cols))
    y : Out(stream.Signature(ArrayLayout(signed(32), cols)))
    """

    def __init__(self, config: AcceleratorConfig):
        self._config = config
        self._array = SystolicArray(
            config.rows, config.cols, operand_width=config.operand_width, acc_width=config.acc_width,
            product_register=config.pe_product_register, config=config,
        )
        super().__init__({
            "x": In(stream.Signature(activation_layout(config.rows))),
            "x_zp": In(signed(config.data_width)),
            "w": In(stream.Signature(data.ArrayLayout(signed(config.data_width), config.cols))),
            "w_zp": In(data.ArrayLayout(signed(config.data_width), config.cols)),
            "y": Out(stream.Signature(data.ArrayLayout(signed(config.acc_width), config.cols))),
        })

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    @property
    def pipeline_latency(self) -> int:
        """Cycles from the transfer on ``x`` to the result being written into the output FIFO."""
        # entry register + grid (which counts from the unskewed lane 0) + output de-skew
        depth = 1 + self._array.latency + (self._config.cols - 1)
        assert depth == latency.matmul_unit_pipeline_latency(self._config)
        return depth

    @property
    def latency(self) -> int:
        """Cycles from the transfer on ``x`` to ``y.valid`` (output FIFO empty, ``y.ready`` high)."""
        depth = self.pipeline_latency + 2  # SyncFIFOBuffered: write, then its output register
        assert depth == latency.matmul_unit_latency(self._config)
        return depth

    @property
    def fifo_depth(self) -> int:
        """Entries of the output FIFO (also the credits: vectors in flight or waiting)."""
        # Enough to cover the round trip, so a consumer that is always ready sees full throughput.
        return self.pipeline_latency + 3

    @property
    def drain_cycles(self) -> int:
        """Cycles after the transfer of the last vector using a bank before that bank may be rewritten.

        A vector accepted on ``x`` in cycle ``c`` sits in the entry register in cycle ``c + 1``; the
        input skew presents lane ``r`` to grid row ``r`` in cycle ``c + 1 + r``, and it reaches column
        ``k`` ``k`` cycles later: the PE of row ``r``, column ``cols - 1`` reads its weight (the product
        is formed combinationally from ``x_in``) in cycle ``c + cols + r``. Tile rows are written in
        order, row ``r`` by the ``r``-th load, no sooner than ``r`` cycles after the first, and a write
        takes effect at the end of its cycle. So the first load may happen in cycle ``c + cols``:
        ``drain_cycles = cols`` cycles after ``c``. The unit counts them from the last vector accepted
        before the swap, not from the swap itself: when the swap follows a gap (DENSE: one vector per
        tile) the bank is free at once.
        """
        return latency.matmul_unit_drain_cycles(self._config)

    def elaborate(self, platform):
        cfg = self._config
        rows, cols = cfg.rows, cfg.cols
        m = Module()
        m.submodules.array = array = self._array
        lane = data.StructLayout({"x": signed(cfg.operand_width), "sel": unsigned(1)})
        m.submodules.skew_in = skew_in = Skew.ascending(lane, rows)
        m.submodules.skew_out = skew_out = Skew.descending(signed(cfg.acc_width), cols)
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=cols * cfg.acc_width, depth=self.fifo_depth)

        # Weight banks. `active` is the bank that newly accepted vectors use; rows are loaded into
        # the other one, row `loaded` next. `loaded` counts rows of the tile waiting in the idle
        # bank. `recent` counts down the cycles until the bank of the last vector accepted may be
        # rewritten (`drain_cycles` after it, less the cycle in which the swap itself is accepted);
        # a swap copies it into `drain`, which holds loading off until the released bank is free.
        active = Signal(1)
        loaded = Signal(range(rows + 1))
        hold = max(0, self.drain_cycles - 2)
        recent = Signal(range(hold + 1))
        drain = Signal(range(hold + 1))
        tile_ready = loaded == rows

        m.d.comb += self.w.ready.eq(~tile_ready & (drain == 0))
        w_fire = self.w.valid & self.w.ready
        # The row write is registered on its way into the grid (its enable reaches every PE of a row: a
        # fan-out too wide to follow the handshake logic in the same cycle). A row lands one cycle after
        # its transfer, which only delays the first rewrite of a released bank, and a tile's last row
        # lands before the swap that uses it can reach the grid (the swap is accepted no sooner than the
        # cycle after that transfer, then waits in the entry register).
        w_load = Signal()
        w_bank = Signal(reset_less=True)
        w_addr = Signal.like(array.w_addr, reset_less=True)
        w_row = Signal.like(array.w_row, reset_less=True)
        m.d.sync += [w_load.eq(w_fire), w_bank.eq(~active), w_addr.eq(loaded[:len(array.w_addr)])]
        for c in range(cols):
            m.d.sync += w_row[c].eq(self.w.payload[c] - self.w_zp[c])
        m.d.comb += [array.w_load.eq(w_load), array.w_bank.eq(w_bank), array.w_addr.eq(w_addr),
                     array.w_row.eq(w_row)]
        with m.If(drain != 0):
            m.d.sync += drain.eq(drain - 1)
        with m.If(recent != 0):
            m.d.sync += recent.eq(recent - 1)
        with m.If(w_fire):
            m.d.sync += loaded.eq(loaded + 1)

        # Credits: vectors accepted and not yet read from `y`. Never more than the FIFO holds, so
        # the FIFO cannot overflow however long `y.ready` stays low.
        credits = Signal(range(self.fifo_depth + 1))
        have_credit = credits != self.fifo_depth
        m.d.comb += self.x.ready.eq(have_credit & (~self.x.payload.swap | tile_ready))
        x_fire = self.x.valid & self.x.ready
        y_fire = self.y.valid & self.y.ready
        with m.If(x_fire & ~y_fire):
            m.d.sync += credits.eq(credits + 1)
        with m.Elif(~x_fire & y_fire):
            m.d.sync += credits.eq(credits - 1)

        with m.If(x_fire):
            m.d.sync += recent.eq(hold)
        with m.If(x_fire & self.x.payload.swap):
            m.d.sync += [active.eq(~active), loaded.eq(0), drain.eq(recent)]

        # Entry register: subtract the zero point (9-bit result) and tag the bank. It updates every
        # cycle; `valid_line` remembers which cycles carried a real vector. The bank tag registered with it
        # would be the bank a vector accepted now uses, i.e. the next value of ``active``: the tag is
        # ``active`` itself (no copy of the accept logic's result per row).
        entry = Signal(data.ArrayLayout(signed(cfg.operand_width), rows), reset_less=True)
        for r in range(rows):
            m.d.sync += entry[r].eq(self.x.payload.data[r] - self.x_zp)
            m.d.comb += [skew_in.i[r].x.eq(entry[r]), skew_in.i[r].sel.eq(active)]
        for r in range(rows):
            m.d.comb += [array.x_in[r].eq(skew_in.o[r].x), array.sel_in[r].eq(skew_in.o[r].sel)]
        m.d.comb += skew_out.i.eq(array.psum_out)

        valid_line = Signal(self.pipeline_latency)
        m.d.sync += valid_line.eq(valid_line << 1 | x_fire)

        m.d.comb += [
            fifo.w_data.eq(skew_out.o.as_value()),
            fifo.w_en.eq(valid_line[-1]),
            self.y.payload.eq(fifo.r_data),
            self.y.valid.eq(fifo.r_rdy),
            fifo.r_en.eq(self.y.ready),
        ]
        return m
