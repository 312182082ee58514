"""A 32-bit host port around the accelerator, for place and route of the bare design (and later a host link).

The accelerator's own ports are as wide as its memories (an 8x8 load word is 768 bits), more than any
package has pins. This shim gives it a narrow, word-serial bus: the host shifts 32-bit words into a staging
register (most significant word first), then commits the staged word to memory ``sel`` at ``addr``
(``SEL_ACT`` writes an activation row through the host port, the others go to the load bus); ``fetch`` reads
an activation row into a second staging register whose 32-bit words ``rword`` selects. It instantiates
the accelerator by module name (``Instance``), so the netlist contains the build folder's own
``accelerator.v``, unchanged.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import memory_depths, word_bits

__all__ = ["SEL_ACT", "WORD_BITS", "NarrowHost", "host_bus_signature"]

#: Bits of one host word.
WORD_BITS = 32
#: ``sel`` value addressing the activation memory (the others are the load bus's ``load_sel``).
SEL_ACT = 7


def _load_addr_bits(config: AcceleratorConfig) -> int:
    return max(max(1, (d - 1).bit_length()) for d in memory_depths(config).values())


def _row_words(config: AcceleratorConfig) -> int:
    return -(-8 * config.rows // WORD_BITS)


def host_bus_signature(config: AcceleratorConfig, counters: bool = False) -> wiring.Signature:
    """The signature of :class:`NarrowHost` for ``config`` (flip it for the side that drives the bus).

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator's configuration.
    counters : bool
        With the ``cycles`` and ``pc`` outputs.

    Returns
    -------
    amaranth.lib.wiring.Signature
    """
    addr_bits = max(_load_addr_bits(config), config.act_addr_width)
    return wiring.Signature({
        **({"cycles": Out(32), "pc": Out(config.program_addr_width)} if counters else {}),
        "start": In(1), "step": In(1), "busy": Out(1), "done": Out(1), "paused": Out(1),
        "sel": In(3), "addr": In(addr_bits), "wdata": In(WORD_BITS), "shift": In(1), "commit": In(1),
        "fetch": In(1), "rword": In(max(1, (_row_words(config) - 1).bit_length())), "rdata": Out(WORD_BITS),
    })


class NarrowHost(wiring.Component):
    """The accelerator behind a 32-bit word-serial host bus.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator's configuration (the port widths of ``accelerator``).
    counters : bool
        Also bring out the accelerator's ``cycles`` (32 bits) and ``pc`` (for the host link; off for the bare
        design, whose every port is a pin).
    """

    def __init__(self, config: AcceleratorConfig, counters: bool = False):
        self._config = config
        self._stage_bits = max(*word_bits(config).values(), 8 * config.rows)
        self._load_addr_bits = _load_addr_bits(config)
        self._row_words = _row_words(config)
        self._counters = counters
        super().__init__(host_bus_signature(config, counters))

    def elaborate(self, platform):
        cfg = self._config
        m = Module()
        stage = Signal(self._stage_bits)
        row = Signal(8 * cfg.rows)
        fetched = Signal()
        with m.If(self.shift):
            m.d.sync += stage.eq((stage << WORD_BITS) | self.wdata)
        host_rdata, pc, cycles = Signal(8 * cfg.rows), Signal(cfg.program_addr_width), Signal(32)
        act = self.commit & (self.sel == SEL_ACT)
        m.submodules.accelerator = Instance(
            "accelerator",
            i_clk=ClockSignal("sync"), i_rst=ResetSignal("sync"),
            i_start=self.start, i_step=self.step, o_busy=self.busy, o_done=self.done, o_paused=self.paused,
            o_pc=pc, o_cycles=cycles,
            i_host_addr=self.addr[:cfg.act_addr_width], i_host_wdata=stage[:8 * cfg.rows], i_host_we=act,
            i_host_re=self.fetch, o_host_rdata=host_rdata,
            i_load_sel=self.sel, i_load_addr=self.addr[:self._load_addr_bits], i_load_data=stage,
            i_load_we=self.commit & (self.sel != SEL_ACT),
        )
        if self._counters:
            m.d.comb += [self.cycles.eq(cycles), self.pc.eq(pc)]
        m.d.sync += fetched.eq(self.fetch)
        with m.If(fetched):
            m.d.sync += row.eq(host_rdata)
        words = [row[i * WORD_BITS:(i + 1) * WORD_BITS] for i in range(self._row_words)]
        with m.Switch(self.rword):
            for i, word in enumerate(words):
                with m.Case(i):
                    m.d.comb += self.rdata.eq(word)
        return m
