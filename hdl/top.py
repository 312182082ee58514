"""The whole accelerator: memories, the controller and the two engines.

One accelerator per configuration: the design depends on :class:`AcceleratorConfig` only. Weights,
parameters, lookup and ADD tables and the program are written at run time through the load bus, so one
Verilog file (one Verilator build, one bitstream) serves every model that fits the configuration.

The top level owns every memory and wires the engines to them. The engines run one at a time (the
controller dispatches one instruction and waits for it), so each shared memory port is a plain mux:
whoever asserts ``en`` this cycle owns it, and the host has it while the accelerator is idle.

Host protocol:

1. load the model while idle: for every memory, ``load_sel`` (``LOAD_*``), ``load_addr``, ``load_data``
   (one word in the layout of :mod:`systolix.compiler.images`), ``load_we`` high for one clock per word
   (the word is written one cycle later: the bus is registered). The ``lut`` and ADD table memories exist
   once per lane; one write fills every copy;
2. write the input rows into ``act`` through ``host_*`` (``host_we``), pulse ``start``, wait for ``done``
   (or ``busy`` low), read the output rows back (``host_re``: data the next cycle);
3. with ``step`` high the controller pauses after every instruction (``paused``); the host reads that
   layer's output through ``host_re`` and pulses ``start`` to go on. Cycles per instruction are those of a
   continuous run (:class:`~systolix.hdl.controller.Controller`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import LOAD_SELECT, LUT_LANE_BITS, memory_depths, word_bits

from .controller import Controller
from .matmul_engine import MatMulEngine
from .ports import captured
from .vector_engine import VectorEngine

__all__ = ["Accelerator"]

#: Memory attribute telling yosys that reads never collide with writes (see `Accelerator.__init__`).
_NO_RW_CHECK = {"no_rw_check": 1}


class Accelerator(wiring.Component):
    """The accelerator for one configuration.

    Parameters
    ----------
    config : AcceleratorConfig
        Array and memory sizes.

    Members
    -------
    start : In(1)
        Run the loaded program from instruction 0 (or resume when paused).
    step : In(1)
        Pause after every instruction.
    busy, done, paused : Out(1)
    pc : Out
        Instruction being executed (for timing layers from outside).
    cycles : Out(32)
        Cycles of the current / last run.
    host_addr, host_wdata, host_we, host_re, host_rdata
        Host access to ``act`` (one row of ``L`` int8 lanes per address); writes while idle.
    load_sel, load_addr, load_data, load_we
        The load bus: one word of ``wgt``, ``prm``, ``prog``, ``lut`` or the ADD tables per clock while idle.
    """

    def __init__(self, config: AcceleratorConfig):
        self._config = config
        lanes = config.rows
        widths = word_bits(config)
        address = max(max(1, (d - 1).bit_length()) for d in memory_depths(config).values())
        super().__init__({
            "start": In(1),
            "step": In(1),
            "busy": Out(1),
            "done": Out(1),
            "paused": Out(1),
            "pc": Out(config.program_addr_width),
            "cycles": Out(32),
            "host_addr": In(config.act_addr_width),
            "host_wdata": In(8 * lanes),
            "host_we": In(1),
            "host_re": In(1),
            "host_rdata": Out(8 * lanes),
            "load_sel": In(3),
            "load_addr": In(address),
            "load_data": In(max(widths.values())),
            "load_we": In(1),
        })
        depths = memory_depths(config)

        # ``no_rw_check``: no read of these memories ever meets a write of the same row in the same cycle (the
        # load bus writes only while the accelerator is idle, and the engines read only while it runs; in
        # ``act`` every row is read before it is rewritten, and a layer's output never overlaps its input
        # while it runs), so synthesis need not emulate the read-during-write result: without the attribute
        # yosys adds an address comparator and a bypass mux behind each block RAM's output.
        def loadable(name: str) -> memory.Memory:  # word width and depth of the load bus (arch.memory)
            width = LUT_LANE_BITS if name == "lut" else widths[name]  # a lane's copy holds its byte of the word
            return memory.Memory(shape=unsigned(width), depth=depths[name], init=[], attrs=_NO_RW_CHECK)

        #: The memories, created here so simulators can reach their contents (``act.data``). With
        #: ``spram_buffers`` ``act`` is two banks (``act_banks``, ``act`` is None) and ``wgt`` on a 1x1 array
        #: holds two rows per word (``wgt_pack``).
        # ``ram_style = "huge"``: yosys's class of the iCE40 UltraPlus's SB_SPRAM256KA (by its cost model alone it
        # would take the block RAMs); their zero initialisation is left out of the Verilog (`export.verilog_for`).
        big = _NO_RW_CHECK | ({"ram_style": "huge"} if config.spram_buffers else {})
        self.act_banks = [memory.Memory(shape=unsigned(8 * lanes), depth=config.act_bank_rows, init=[], attrs=big)
                          for _ in range(2 if config.spram_buffers else 1)]
        self.act = None if config.spram_buffers else self.act_banks[0]
        self.wgt_pack = 2 if config.spram_buffers and lanes == 1 else 1
        if config.spram_buffers:
            self.wgt = memory.Memory(shape=unsigned(8 * lanes * self.wgt_pack),
                                     depth=-(-depths["wgt"] // self.wgt_pack), init=[], attrs=big)
        else:
            self.wgt = loadable("wgt")
        self.prm, self.prog = loadable("prm"), loadable("prog")
        #: One copy per lane (each lane looks up its own code every cycle); none without the unit that reads them
        #: (``config.vector_units``).
        self.lut = [loadable("lut") for _ in range(lanes)] if config.has_unit("lut") else []
        self.tab = [loadable("addtab") for _ in range(lanes)] if config.has_unit("add") else []

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    def elaborate(self, platform):
        cfg = self._config
        m = Module()

        m.submodules.controller = ctl = Controller(cfg.program_addr_width, narrow=cfg.narrow_program)
        m.submodules.matmul = mm = MatMulEngine(cfg)
        m.submodules.vector = vec = VectorEngine(cfg, lut_addr_width=cfg.lut_addr_width,
                                                 table_addr_width=cfg.add_table_addr_width)
        wiring.connect(m, ctl.matmul, mm.ctl)
        wiring.connect(m, ctl.vector, vec.ctl)
        m.d.comb += [ctl.start.eq(self.start), ctl.step.eq(self.step), self.busy.eq(ctl.busy),
                     self.done.eq(ctl.done), self.paused.eq(ctl.paused), self.pc.eq(ctl.pc),
                     self.cycles.eq(ctl.cycles)]

        # -- memories -----------------------------------------------------------------------------
        wgt, prm, prog = self.wgt, self.prm, self.prog
        m.submodules.wgt, m.submodules.prm, m.submodules.prog = wgt, prm, prog

        # act: one read port and one write port, shared by the engines and the host. The port's owner is
        # chosen by which engine is busy (registers), not by the engines' enables: the address mux is then
        # two LUTs deep whatever the engines compute. Writes are registered on their way (a row is written
        # the cycle after an engine presents it; nothing reads a row that soon after its write).
        r_addr, r_en, r_data = Signal(cfg.act_addr_width), Signal(), Signal(8 * cfg.rows)
        readers = [mm.act_rd, vec.act_rd]
        m.d.comb += [r_addr.eq(Mux(mm.busy, mm.act_rd.addr, Mux(vec.busy, vec.act_rd.addr, self.host_addr))),
                     r_en.eq(mm.act_rd.en | vec.act_rd.en | self.host_re)]
        act_word = captured(m, r_data, r_en, "act")  # the engines' reads: two cycles (ports.captured)
        for r in readers:
            m.d.comb += r.data.eq(act_word)
        m.d.comb += self.host_rdata.eq(r_data)
        w_en = Signal()
        w_addr = Signal(cfg.act_addr_width, reset_less=True)
        w_data = Signal(8 * cfg.rows, reset_less=True)
        m.d.sync += [
            w_en.eq(mm.act_wr.en | vec.act_wr.en | (self.host_we & ~ctl.busy)),
            w_addr.eq(Mux(mm.busy, mm.act_wr.addr, Mux(vec.busy, vec.act_wr.addr, self.host_addr))),
            w_data.eq(Mux(mm.busy, mm.act_wr.data, Mux(vec.busy, vec.act_wr.data, self.host_wdata))),
        ]
        if not cfg.spram_buffers:
            m.submodules.act = act = self.act
            act_r, act_w = act.read_port(), act.write_port()
            m.d.comb += [act_r.addr.eq(r_addr), act_r.en.eq(r_en), r_data.eq(act_r.data),
                         act_w.addr.eq(w_addr), act_w.data.eq(w_data), act_w.en.eq(w_en)]
        else:
            # Two single-address banks (the bank is the row's top bit). The compiler puts a layer's output in the
            # other bank than its inputs, so the write and the read of one cycle never meet in a bank; each bank's
            # one address is the write's when it is written, else the read's. The read data comes from the bank
            # of the last read (held, as a read port's data is, until the next read).
            bank_bits = cfg.act_addr_width - 1
            r_bank = Signal()
            with m.If(r_en):
                m.d.sync += r_bank.eq(r_addr[bank_bits])
            outputs = []
            for b, mem in enumerate(self.act_banks):
                m.submodules[f"act{b}"] = mem
                port_r, port_w = mem.read_port(), mem.write_port()
                addr = Signal(bank_bits, name=f"act{b}_addr")
                writes = w_en & (w_addr[bank_bits] == b)
                m.d.comb += [addr.eq(Mux(writes, w_addr[:bank_bits], r_addr[:bank_bits])),
                             port_r.addr.eq(addr), port_r.en.eq(r_en & (r_addr[bank_bits] == b)),
                             port_w.addr.eq(addr), port_w.data.eq(w_data), port_w.en.eq(writes)]
                outputs.append(port_r.data)
            m.d.comb += r_data.eq(Mux(r_bank, outputs[1], outputs[0]))

        # wgt: the MATMUL engine reads it while running, the load bus writes it while idle.
        wgt_r = wgt.read_port()
        m.d.comb += [wgt_r.en.eq(mm.wgt_rd.en)]
        if not cfg.spram_buffers:
            m.d.comb += [wgt_r.addr.eq(mm.wgt_rd.addr), mm.wgt_rd.data.eq(wgt_r.data)]

        # prm: both engines (the vector engine reads ADD constants).
        prm_r = prm.read_port()
        m.d.comb += [prm_r.addr.eq(Mux(mm.busy, mm.prm_rd.addr, vec.prm_rd.addr)),
                     prm_r.en.eq(mm.prm_rd.en | vec.prm_rd.en)]
        prm_word = captured(m, prm_r.data, prm_r.en, "prm")
        m.d.comb += [mm.prm_rd.data.eq(prm_word), vec.prm_rd.data.eq(prm_word)]

        # prog: the controller.
        prog_r = prog.read_port()
        m.d.comb += [prog_r.addr.eq(ctl.prog.addr), prog_r.en.eq(ctl.prog.en), ctl.prog.data.eq(prog_r.data)]

        # lut and ADD tables: one copy per lane.
        for lane, lut in enumerate(self.lut):
            m.submodules[f"lut{lane}"] = lut
            lr = lut.read_port()
            m.d.comb += [lr.addr.eq(vec.lut_rd.addr[lane]), lr.en.eq(vec.lut_rd.en), vec.lut_rd.data[lane].eq(lr.data)]
        for lane, tab in enumerate(self.tab):
            m.submodules[f"tab{lane}"] = tab
            tr = tab.read_port()
            m.d.comb += [tr.addr.eq(vec.tab_rd.addr[lane]), tr.en.eq(vec.tab_rd.en), vec.tab_rd.data[lane].eq(tr.data)]

        # The load bus: one write port on each loadable memory (every copy of the per-lane tables). The word,
        # its address and each memory's write enable are registered on their way (the write lands the cycle
        # after ``load_we``): the enable of a wide memory reaches dozens of block RAMs across the device, and
        # decoded from the bus and ``busy`` in the same cycle it was the design's longest path.
        targets = [("wgt", wgt, 0), ("prm", prm, 0), ("prog", prog, 0),
                   *(("lut", lut, lane) for lane, lut in enumerate(self.lut)),
                   *(("addtab", tab, 0) for tab in self.tab)]
        widths = word_bits(cfg)
        load_addr = Signal.like(self.load_addr, reset_less=True)
        load_data = Signal.like(self.load_data, reset_less=True)
        m.d.sync += [load_addr.eq(self.load_addr), load_data.eq(self.load_data)]
        for index, (name, mem, lane) in enumerate(targets):
            load_en = Signal(name=f"load_en_{index}_{name}")
            m.d.sync += load_en.eq(self.load_we & (self.load_sel == LOAD_SELECT[name]) & ~ctl.busy)
            if mem is wgt and cfg.spram_buffers:
                # One address for the load's writes and the engine's reads (a single-port memory). On a 1x1 array
                # two rows per word, written a byte at a time, the row's low bit choosing the byte (of the read:
                # registered).
                if self.wgt_pack == 1:
                    w = mem.write_port()
                    addr = Signal.like(w.addr)
                    m.d.comb += [addr.eq(Mux(load_en, load_addr, mm.wgt_rd.addr)), wgt_r.addr.eq(addr),
                                 w.addr.eq(addr), w.data.eq(load_data[:widths[name]]), w.en.eq(load_en),
                                 mm.wgt_rd.data.eq(wgt_r.data)]
                    continue
                # Whole words only (yosys splits a byte-written memory into one SPRAM column per byte): an even row is
                # written with a zero high byte and kept, the odd row after it completes the word. Rows are loaded
                # in order from an even row (as every host here does: `MemoryImages.words()` from row 0).
                w = mem.write_port()
                addr = Signal.like(w.addr)
                half, kept = Signal(), Signal(8, reset_less=True)
                odd = load_addr[0]
                with m.If(load_en & ~odd):
                    m.d.sync += kept.eq(load_data[:8])
                m.d.comb += [addr.eq(Mux(load_en, load_addr[1:], mm.wgt_rd.addr[1:])), wgt_r.addr.eq(addr),
                             w.addr.eq(addr), w.data.eq(Mux(odd, Cat(kept, load_data[:8]), load_data[:8])),
                             w.en.eq(load_en)]
                with m.If(wgt_r.en):
                    m.d.sync += half.eq(mm.wgt_rd.addr[0])
                m.d.comb += mm.wgt_rd.data.eq(Mux(half, wgt_r.data[8:], wgt_r.data[:8]))
                continue
            w = mem.write_port()
            # a lut word holds one byte per lane: each lane's copy takes its own (per-channel tables)
            data = load_data[LUT_LANE_BITS * lane : LUT_LANE_BITS * (lane + 1)] if name == "lut" else \
                load_data[:widths[name]]
            m.d.comb += [w.addr.eq(load_addr), w.data.eq(data), w.en.eq(load_en)]
        return m
