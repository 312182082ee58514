"""The controller: runs the compiled program, one layer instruction at a time.

It is deliberately small. On ``start`` it fetches instruction 0 from the program memory, hands it to
the engine its opcode names (the MATMUL engine, or the vector engine for MAXPOOL / ADD / LUT) with a
one-cycle ``start`` pulse, waits for that engine's ``done``, and fetches the next one, until HALT. ``pc``
shows the instruction being executed, so a simulator can time every layer from outside; ``cycles``
counts the cycles of the current run.

With ``step`` high it pauses after every instruction (``paused`` high, ``pc`` at the next one) until the
next ``start``: a host reads the layer's output from the activation memory in between. A paused cycle is
not counted and the resume is the same FETCH that would have followed, so a program run step by step
spends exactly the cycles of a continuous run at every instruction.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.isa import INSTRUCTION_BITS, INSTRUCTION_PIECES, PIECE_BITS, Opcode, instruction_layout
from systolix.arch.latency import controller_dispatch_cycles

from .ports import engine_control, read_port


class Controller(wiring.Component):
    """Fetch, dispatch, wait; one instruction in flight.

    Parameters
    ----------
    program_addr_width : int
        Address bits of an instruction's index (``pc``).
    narrow : bool
        The program memory holds ``PIECE_BITS``-bit pieces, ``INSTRUCTION_PIECES`` per instruction
        (``AcceleratorConfig.narrow_program``): FETCH reads them one per cycle, in order, into the instruction
        register (``INSTRUCTION_PIECES - 1`` more cycles per instruction).

    Members
    -------
    start : In(1)
        Pulse to run the program from address 0 (ignored while busy), or to resume when paused.
    step : In(1)
        Pause after each instruction.
    paused : Out(1)
        Paused between two instructions (``busy`` stays high).
    busy : Out(1)
        High from ``start`` until HALT is reached.
    done : Out(1)
        Pulses for one cycle when HALT is reached.
    pc : Out(program_addr_width)
        Address of the instruction being fetched or executed.
    cycles : Out(32)
        Cycles since the last ``start`` (stops at HALT).
    prog : Out(read_port(...))
        Program memory read port (one instruction per word, or one piece with ``narrow``).
    matmul, vector : Out(engine_control())
        Engine control: ``instr`` is held stable while the engine runs.
    """

    def __init__(self, program_addr_width: int, narrow: bool = False):
        self._aw = program_addr_width
        self._narrow = narrow
        if narrow:
            prog_aw = program_addr_width + (INSTRUCTION_PIECES - 1).bit_length()
            prog = read_port(prog_aw, unsigned(PIECE_BITS))
        else:
            prog = read_port(program_addr_width, instruction_layout())
        super().__init__({
            "start": In(1),
            "step": In(1),
            "paused": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "pc": Out(program_addr_width),
            "cycles": Out(32),
            "prog": Out(prog),
            "matmul": Out(engine_control()),
            "vector": Out(engine_control()),
        })

    #: Cycles between an engine's ``done`` and the next engine's ``start`` (fetch + decode).
    DISPATCH_CYCLES = controller_dispatch_cycles()

    def elaborate(self, platform):
        m = Module()
        instr = Signal(instruction_layout())
        m.d.comb += [
            self.matmul.instr.eq(instr),
            self.vector.instr.eq(instr),
        ]
        with m.If(self.busy & ~self.paused):
            m.d.sync += self.cycles.eq(self.cycles + 1)

        if self._narrow:
            # The pieces of instruction ``pc`` are words ``pc * INSTRUCTION_PIECES ..`` in order: ``fetch_addr``
            # walks them (one counter, no multiply); ``piece`` counts the reads of this instruction. Each piece
            # read enters the top of a shift register the cycle after its read, so the last one (read in the
            # last FETCH cycle) lands in DECODE, which then holds the whole instruction.
            fetch_addr = Signal.like(self.prog.addr)
            piece = Signal(range(INSTRUCTION_PIECES))
            shift = Signal(INSTRUCTION_PIECES * PIECE_BITS)
            loaded = Signal()  # a piece was read last cycle
            m.d.comb += [self.prog.addr.eq(fetch_addr), instr.as_value().eq(shift[:INSTRUCTION_BITS])]
            m.d.sync += loaded.eq(self.prog.en)
            with m.If(loaded):
                top = self.prog.data << ((INSTRUCTION_PIECES - 1) * PIECE_BITS)
                m.d.sync += shift.eq((shift >> PIECE_BITS) | top)
        else:
            m.d.comb += self.prog.addr.eq(self.pc)

        with m.FSM():
            with m.State("IDLE"), m.If(self.start):
                m.d.sync += [self.pc.eq(0), self.busy.eq(1), self.cycles.eq(0)]
                if self._narrow:
                    m.d.sync += [fetch_addr.eq(0), piece.eq(0)]
                m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += self.prog.en.eq(1)
                if self._narrow:
                    m.d.sync += [fetch_addr.eq(fetch_addr + 1), piece.eq(piece + 1)]
                    with m.If(piece == INSTRUCTION_PIECES - 1):
                        m.d.sync += piece.eq(0)
                        m.next = "DECODE"
                else:
                    m.next = "DECODE"
            with m.State("DECODE"):
                # The program memory's output goes into the register and nowhere else (a block RAM's
                # clock-to-output leaves no time for the opcode decode in the same cycle).
                if not self._narrow:
                    m.d.sync += instr.eq(self.prog.data)
                m.next = "DISPATCH"
            with m.State("DISPATCH"), m.Switch(instr.opcode):
                with m.Case(Opcode.HALT):
                    m.d.sync += self.busy.eq(0)
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Case(Opcode.MATMUL):
                    m.d.comb += self.matmul.start.eq(1)
                    m.next = "WAIT_MATMUL"
                with m.Default():
                    m.d.comb += self.vector.start.eq(1)
                    m.next = "WAIT_VECTOR"
            for engine in ("MATMUL", "VECTOR"):
                port = self.matmul if engine == "MATMUL" else self.vector
                with m.State(f"WAIT_{engine}"), m.If(port.done):
                    m.d.sync += self.pc.eq(self.pc + 1)
                    with m.If(self.step):
                        m.d.sync += self.paused.eq(1)
                        m.next = "PAUSED"
                    with m.Else():
                        m.next = "FETCH"
            with m.State("PAUSED"), m.If(self.start):
                m.d.sync += self.paused.eq(0)
                m.next = "FETCH"
        return m
