"""The whole accelerator: memories, the controller and the two engines.

The top level owns every memory (contents baked in from a compiled program's images) and wires the
engines to them. The engines run one at a time (the controller dispatches one instruction and waits for
it), so each shared memory port is a plain mux: whoever asserts ``en`` this cycle owns it, and the host
port has it while the accelerator is idle.

Host protocol: write the input rows into ``act`` through ``host_*`` (``host_we``), pulse ``start``, wait
for ``done`` (or ``busy`` low), read the output rows back (``host_re``: data the next cycle).
With ``loadable=True`` the weight, parameter and program memories also get a write port on the host
bus (``load_*``), so one bitstream can run other programs; by default their contents are baked in.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from systolix.compiler.add_arith import TABLE_BITS
from systolix.compiler.images import MemoryImages
from systolix.compiler.isa import INSTRUCTION_BITS
from systolix.compiler.params import CHANNEL_BITS

from .config import AcceleratorConfig
from .controller import Controller
from .matmul_engine import MatMulEngine
from .vector_engine import VectorEngine

#: ``load_sel`` values of the optional load bus.
LOAD_WGT, LOAD_PRM, LOAD_PROG = 0, 1, 2


def _aw(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


def _pack(rows, lanes: int, bits: int) -> list[int]:
    """Rows of ``lanes`` signed lane values -> integers (lane 0 in the low bits)."""
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * i) for i, v in enumerate(row[:lanes])) for row in rows]


class Accelerator(wiring.Component):
    """The accelerator for one configuration, with a compiled program's memory images baked in.

    Parameters
    ----------
    config : AcceleratorConfig
        Array and memory sizes.
    images : MemoryImages
        Initial contents of ``wgt``, ``prm``, ``lut``, the ADD tables and ``prog`` (``act`` starts as
        given, normally zeros: the host writes the input).
    loadable : bool
        Add the ``load_*`` write bus for ``wgt``, ``prm`` and ``prog``.

    Members
    -------
    start : In(1)
    busy, done : Out(1)
    pc : Out
        Instruction being executed (for timing layers from outside).
    cycles : Out(32)
        Cycles of the current / last run.
    host_addr, host_wdata, host_we, host_re, host_rdata
        Host access to ``act`` while idle (one row of ``L`` int8 lanes per address).
    """

    def __init__(self, config: AcceleratorConfig, images: MemoryImages, *, loadable: bool = False):
        self._config = config
        self._images = images
        self._loadable = loadable
        lanes = config.rows
        self.lut_depth = max(256, int(images.lut.shape[0]))
        self.tab_depth = max(256, int(images.addtab.shape[0]) if images.addtab.ndim else 256)
        members = {
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "pc": Out(config.program_addr_width),
            "cycles": Out(32),
            "host_addr": In(config.act_addr_width),
            "host_wdata": In(8 * lanes),
            "host_we": In(1),
            "host_re": In(1),
            "host_rdata": Out(8 * lanes),
        }
        if loadable:
            width = max(8 * lanes, CHANNEL_BITS * lanes, INSTRUCTION_BITS)
            members.update({"load_sel": In(2), "load_addr": In(16), "load_data": In(width), "load_we": In(1)})
        super().__init__(members)
        cfg, img = config, images
        #: The memories, created here so simulators can reach their contents (``act.data``).
        self.act = memory.Memory(shape=unsigned(8 * lanes), depth=cfg.act_buffer_depth,
                                 init=_pack(img.act, lanes, 8))
        self.wgt = memory.Memory(shape=unsigned(8 * lanes), depth=cfg.weight_buffer_depth,
                                 init=_pack(img.wgt, lanes, 8))
        self.prm = memory.Memory(shape=unsigned(CHANNEL_BITS * lanes), depth=cfg.param_memory_depth,
                                 init=list(img.prm))
        self.prog = memory.Memory(shape=unsigned(INSTRUCTION_BITS), depth=cfg.program_memory_depth,
                                  init=list(img.prog))

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    def elaborate(self, platform):
        cfg, img = self._config, self._images
        lanes = cfg.rows
        m = Module()

        m.submodules.controller = ctl = Controller(cfg.program_addr_width)
        m.submodules.matmul = mm = MatMulEngine(cfg)
        m.submodules.vector = vec = VectorEngine(cfg, lut_addr_width=_aw(self.lut_depth),
                                                 table_addr_width=_aw(self.tab_depth))
        wiring.connect(m, ctl.matmul, mm.ctl)
        wiring.connect(m, ctl.vector, vec.ctl)
        m.d.comb += [ctl.start.eq(self.start), self.busy.eq(ctl.busy), self.done.eq(ctl.done),
                     self.pc.eq(ctl.pc), self.cycles.eq(ctl.cycles)]

        # -- memories -----------------------------------------------------------------------------
        act, wgt, prm, prog = self.act, self.wgt, self.prm, self.prog
        m.submodules.act, m.submodules.wgt, m.submodules.prm, m.submodules.prog = act, wgt, prm, prog

        # act: one read port and one write port, shared by the engines and the host.
        act_r, act_w = act.read_port(), act.write_port()
        readers = [mm.act_rd, vec.act_rd]
        with m.If(mm.act_rd.en):
            m.d.comb += act_r.addr.eq(mm.act_rd.addr)
        with m.Elif(vec.act_rd.en):
            m.d.comb += act_r.addr.eq(vec.act_rd.addr)
        with m.Else():
            m.d.comb += act_r.addr.eq(self.host_addr)
        m.d.comb += act_r.en.eq(mm.act_rd.en | vec.act_rd.en | self.host_re)
        for r in readers:
            m.d.comb += r.data.eq(act_r.data)
        m.d.comb += self.host_rdata.eq(act_r.data)
        with m.If(mm.act_wr.en):
            m.d.comb += [act_w.addr.eq(mm.act_wr.addr), act_w.data.eq(mm.act_wr.data), act_w.en.eq(1)]
        with m.Elif(vec.act_wr.en):
            m.d.comb += [act_w.addr.eq(vec.act_wr.addr), act_w.data.eq(vec.act_wr.data), act_w.en.eq(1)]
        with m.Elif(self.host_we & ~ctl.busy):
            m.d.comb += [act_w.addr.eq(self.host_addr), act_w.data.eq(self.host_wdata), act_w.en.eq(1)]

        # wgt: MATMUL engine only.
        wgt_r = wgt.read_port()
        m.d.comb += [wgt_r.addr.eq(mm.wgt_rd.addr), wgt_r.en.eq(mm.wgt_rd.en), mm.wgt_rd.data.eq(wgt_r.data)]

        # prm: both engines (the vector engine reads ADD constants).
        prm_r = prm.read_port()
        m.d.comb += [prm_r.addr.eq(Mux(mm.prm_rd.en, mm.prm_rd.addr, vec.prm_rd.addr)),
                     prm_r.en.eq(mm.prm_rd.en | vec.prm_rd.en),
                     mm.prm_rd.data.eq(prm_r.data), vec.prm_rd.data.eq(prm_r.data)]

        # prog: the controller.
        prog_r = prog.read_port()
        m.d.comb += [prog_r.addr.eq(ctl.prog.addr), prog_r.en.eq(ctl.prog.en), ctl.prog.data.eq(prog_r.data)]

        # lut and ADD tables: one copy per lane (each lane looks up its own code every cycle).
        lut_rows = img.lut if img.lut.shape[0] else None
        tab_words = [int(w) for w in img.addtab.reshape(-1)] if img.addtab.size else []
        for lane in range(lanes):
            lut_init = [int(v) & 0xFF for v in lut_rows[:, lane]] if lut_rows is not None else []
            lut = memory.Memory(shape=unsigned(8), depth=self.lut_depth, init=lut_init)
            tab = memory.Memory(shape=unsigned(TABLE_BITS), depth=self.tab_depth, init=tab_words)
            m.submodules[f"lut{lane}"], m.submodules[f"tab{lane}"] = lut, tab
            lr, tr = lut.read_port(), tab.read_port()
            m.d.comb += [lr.addr.eq(vec.lut_rd.addr[lane]), lr.en.eq(vec.lut_rd.en),
                         vec.lut_rd.data[lane].eq(lr.data),
                         tr.addr.eq(vec.tab_rd.addr[lane]), tr.en.eq(vec.tab_rd.en),
                         vec.tab_rd.data[lane].eq(tr.data)]

        if self._loadable:
            for sel, mem, width in ((LOAD_WGT, wgt, 8 * lanes), (LOAD_PRM, prm, CHANNEL_BITS * lanes),
                                    (LOAD_PROG, prog, INSTRUCTION_BITS)):
                w = mem.write_port()
                m.d.comb += [w.addr.eq(self.load_addr), w.data.eq(self.load_data[:width]),
                             w.en.eq(self.load_we & (self.load_sel == sel) & ~ctl.busy)]
        return m
