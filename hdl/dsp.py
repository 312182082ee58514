"""A multiplier between its own registers, built as one ECP5 ``MULT18X18D`` with its input and output registers.

Why: yosys (0.69) maps a ``*`` to a combinational ``MULT18X18D`` and leaves the registers around it in the
fabric; with most of the DSP sites in use the placer often leaves those registers tens of columns away from
their multiplier, and a path register -> wire -> multiplier -> wire -> register then takes 16 ns (measured on
the 8x8 design: 11.75 ns of it routing). Inside the DSP block the operand and product registers sit next to
the multiplier: what remains are register-to-register wires.

`RegisteredMultiplier` computes ``p = a * b`` in two register stages: operand ``a`` is registered when
``ce_a`` is high, ``b`` when ``ce_b`` is high, the product of the registered operands when ``ce_p`` is high.
It elaborates in one of two forms with the same cycle behaviour:

* for the Verilog of the accelerator (`hdl.export` elaborates with `VERILOG_TARGET`): an ``Instance`` of
  ``MULT18X18D`` with ``REG_INPUTA_CLK``/``REG_INPUTB_CLK``/``REG_OUTPUT_CLK`` on ``CLK0`` (TN1267, "sysDSP
  Usage Guide for ECP5", MULT18X18D: input register A on ``CE0``, B on ``CE2``, the output register on
  ``CE1``, no pipeline register); `MULT18X18D_MODEL`, appended to the Verilog, is its behavioural model for
  every tool that does not know the primitive (Verilator; yosys for iCE40, which maps it like any multiply).
  ``systolix synth`` for ECP5 defines ``SYSTOLIX_ECP5_DSP``, which leaves the model out so yosys takes its
  own ``MULT18X18D`` cell.
* elsewhere (the Amaranth simulator, which cannot simulate an ``Instance``): the same registers in Amaranth.

The model implements what `RegisteredMultiplier` uses: 18-bit ``A``/``B`` (signed when ``SIGNEDA``/``SIGNEDB``),
the 36-bit ``P`` = the low 36 bits of the product, input and output registers on ``CLK0`` or none, each with
its clock enable (``CE0``-``CE3``) and synchronous reset (``RST0``-``RST3``, reset to 0, ``RESETMODE="SYNC"``).
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, Shape, Signal, Value, signed, unsigned
from amaranth.hdl import ShapeLike
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["MULT18X18D_MODEL", "MODEL_GUARD", "VERILOG_TARGET", "RegisteredMultiplier", "VerilogTarget",
           "split_multiply"]

#: Width of a MULT18X18D operand.
_OPERAND = 18
#: The macro that leaves `MULT18X18D_MODEL` out of the Verilog (defined by ``systolix synth`` for ECP5).
MODEL_GUARD = "SYSTOLIX_ECP5_DSP"


class VerilogTarget:
    """The ``platform`` the accelerator's Verilog is elaborated for: it has the ``MULT18X18D`` primitive (its
    model travels with the Verilog, `MULT18X18D_MODEL`)."""

    mult18x18d = True


VERILOG_TARGET = VerilogTarget()


class RegisteredMultiplier(wiring.Component):
    """``p = a * b`` between operand registers (load on ``ce_a``, ``ce_b``) and a product register (``ce_p``).

    Parameters
    ----------
    a_shape, b_shape : ShapeLike
        Operand shapes, at most 18 bits signed or 17 bits unsigned (one MULT18X18D).

    Members
    -------
    a, b : In(a_shape), In(b_shape)
        Operands, registered when ``ce_a`` (``ce_b``) is high.
    ce_a, ce_b, ce_p : In(1)
        Load enables of the operand registers and of the product register.
    p : Out(signed or unsigned(len(a) + len(b)))
        The product of the registered operands, registered when ``ce_p`` is high (two stages after ``a``,
        ``b`` when all enables are high).
    """

    #: Register stages from ``a``, ``b`` to ``p``.
    LATENCY = 2

    def __init__(self, a_shape: ShapeLike, b_shape: ShapeLike):
        a_shape, b_shape = Shape.cast(a_shape), Shape.cast(b_shape)
        for name, shape in (("a", a_shape), ("b", b_shape)):
            if shape.width + (0 if shape.signed else 1) > _OPERAND:
                self._MustUse__used = True  # not a design left unused: it failed to build
                raise ValueError(f"{name} must fit an 18-bit signed operand, not {shape!r}")
        self._a_shape, self._b_shape = a_shape, b_shape
        width = a_shape.width + b_shape.width
        p_shape = signed(width) if (a_shape.signed or b_shape.signed) else unsigned(width)
        super().__init__({"a": In(a_shape), "b": In(b_shape), "ce_a": In(1), "ce_b": In(1), "ce_p": In(1),
                          "p": Out(p_shape)})

    @property
    def latency(self) -> int:
        """Cycles from the operands to their product on ``p``."""
        return self.LATENCY

    def elaborate(self, platform):
        m = Module()
        if getattr(platform, "mult18x18d", False):
            self._primitive(m)
        else:
            a_reg = Signal(self._a_shape, reset_less=True)
            b_reg = Signal(self._b_shape, reset_less=True)
            p_reg = Signal(self.p.shape(), reset_less=True)
            with m.If(self.ce_a):
                m.d.sync += a_reg.eq(self.a)
            with m.If(self.ce_b):
                m.d.sync += b_reg.eq(self.b)
            with m.If(self.ce_p):
                m.d.sync += p_reg.eq(a_reg * b_reg)
            m.d.comb += self.p.eq(p_reg)
        return m

    def _primitive(self, m: Module) -> None:
        # Operands extended to 18 bits (sign or zero), the signedness on SIGNEDA/SIGNEDB.
        a = Signal(signed(_OPERAND) if self._a_shape.signed else unsigned(_OPERAND))
        b = Signal(signed(_OPERAND) if self._b_shape.signed else unsigned(_OPERAND))
        p = Signal(2 * _OPERAND)
        m.d.comb += [a.eq(self.a), b.eq(self.b), self.p.eq(p[:len(self.p)])]
        ports = {
            "p_REG_INPUTA_CLK": "CLK0", "p_REG_INPUTA_CE": "CE0", "p_REG_INPUTA_RST": "RST0",
            "p_REG_INPUTB_CLK": "CLK0", "p_REG_INPUTB_CE": "CE2", "p_REG_INPUTB_RST": "RST0",
            "p_REG_OUTPUT_CLK": "CLK0", "p_REG_OUTPUT_CE": "CE1", "p_REG_OUTPUT_RST": "RST0",
            "p_GSR": "DISABLED", "p_RESETMODE": "SYNC",
            "i_SIGNEDA": int(self._a_shape.signed), "i_SIGNEDB": int(self._b_shape.signed),
            "i_SOURCEA": 0, "i_SOURCEB": 0,
            "i_CLK0": ClockSignal("sync"), "i_CE0": self.ce_a, "i_CE1": self.ce_p, "i_CE2": self.ce_b,
            "i_RST0": 0,
        }
        for bit in range(_OPERAND):
            ports[f"i_A{bit}"] = a[bit]
            ports[f"i_B{bit}"] = b[bit]
        for bit in range(2 * _OPERAND):
            ports[f"o_P{bit}"] = p[bit]
        m.submodules.mult = Instance("MULT18X18D", **ports)


def split_multiply(m: Module, lane: int, a: Value, factor: Value, ce_a: Value, ce_p: Value) -> dict[str, Value]:
    """``a * factor`` for an unsigned ``a`` of at most 17 bits and a factor wider than one operand, as two
    `RegisteredMultiplier` products: ``"lo"`` = ``a * factor[:17]`` and ``"hi"`` = ``a * factor[17:]`` (the caller
    adds them, ``hi`` shifted left by 17), registered as one (submodules ``mul_lo{lane}``, ``mul_hi{lane}``).
    The factor is sampled every cycle, ``a`` when ``ce_a`` is high, the products when ``ce_p`` is high."""
    pieces = {}
    for name, piece in (("lo", factor[:17]), ("hi", factor[17:])):
        mult = RegisteredMultiplier(unsigned(len(a)), unsigned(len(piece)))
        m.submodules[f"mul_{name}{lane}"] = mult
        m.d.comb += [mult.a.eq(a), mult.b.eq(piece), mult.ce_a.eq(ce_a), mult.ce_b.eq(1), mult.ce_p.eq(ce_p)]
        pieces[name] = mult.p
    return pieces


def _model() -> str:
    a = ", ".join(f"A{i}" for i in reversed(range(_OPERAND)))
    b = ", ".join(f"B{i}" for i in reversed(range(_OPERAND)))
    p = ", ".join(f"P{i}" for i in reversed(range(2 * _OPERAND)))
    return f"""
`ifndef {MODEL_GUARD}
// Behavioural model of the ECP5 sysDSP MULT18X18D as systolix uses it (TN1267): P = A * B (36 bits, operands
// signed when SIGNEDA/SIGNEDB), input registers (A, B) and the output register (P) on CLK0 or none, each with
// its clock enable CE0..CE3 and synchronous reset RST0..RST3. Left out when synthesising for ECP5.
module MULT18X18D({a}, {b}, SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0, CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3,
    {p});
  parameter REG_INPUTA_CLK = "NONE";
  parameter REG_INPUTA_CE = "CE0";
  parameter REG_INPUTA_RST = "RST0";
  parameter REG_INPUTB_CLK = "NONE";
  parameter REG_INPUTB_CE = "CE0";
  parameter REG_INPUTB_RST = "RST0";
  parameter REG_OUTPUT_CLK = "NONE";
  parameter REG_OUTPUT_CE = "CE0";
  parameter REG_OUTPUT_RST = "RST0";
  parameter GSR = "ENABLED";
  parameter RESETMODE = "SYNC";
  input {a};
  input {b};
  input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB, CLK0;
  input CE0, CE1, CE2, CE3, RST0, RST1, RST2, RST3;
  output {p};
  wire [3:0] ce = {{CE3, CE2, CE1, CE0}};
  wire [3:0] rst = {{RST3, RST2, RST1, RST0}};
  wire ce_a = ce[REG_INPUTA_CE == "CE3" ? 3 : REG_INPUTA_CE == "CE2" ? 2 : REG_INPUTA_CE == "CE1" ? 1 : 0];
  wire ce_b = ce[REG_INPUTB_CE == "CE3" ? 3 : REG_INPUTB_CE == "CE2" ? 2 : REG_INPUTB_CE == "CE1" ? 1 : 0];
  wire ce_p = ce[REG_OUTPUT_CE == "CE3" ? 3 : REG_OUTPUT_CE == "CE2" ? 2 : REG_OUTPUT_CE == "CE1" ? 1 : 0];
  wire rst_a = rst[REG_INPUTA_RST == "RST3" ? 3 : REG_INPUTA_RST == "RST2" ? 2 : REG_INPUTA_RST == "RST1" ? 1 : 0];
  wire rst_b = rst[REG_INPUTB_RST == "RST3" ? 3 : REG_INPUTB_RST == "RST2" ? 2 : REG_INPUTB_RST == "RST1" ? 1 : 0];
  wire rst_p = rst[REG_OUTPUT_RST == "RST3" ? 3 : REG_OUTPUT_RST == "RST2" ? 2 : REG_OUTPUT_RST == "RST1" ? 1 : 0];
  wire [17:0] a = {{{a}}};
  wire [17:0] b = {{{b}}};
  reg [17:0] a_reg = 18'd0, b_reg = 18'd0;
  reg [35:0] p_reg = 36'd0;
  wire [17:0] a_op = REG_INPUTA_CLK == "NONE" ? a : a_reg;
  wire [17:0] b_op = REG_INPUTB_CLK == "NONE" ? b : b_reg;
  wire signed [18:0] a_ext = {{SIGNEDA & a_op[17], a_op}};
  wire signed [18:0] b_ext = {{SIGNEDB & b_op[17], b_op}};
  wire signed [37:0] product = a_ext * b_ext;
  always @(posedge CLK0) begin
    if (rst_a) a_reg <= 18'd0; else if (ce_a) a_reg <= a;
    if (rst_b) b_reg <= 18'd0; else if (ce_b) b_reg <= b;
    if (rst_p) p_reg <= 36'd0; else if (ce_p) p_reg <= product[35:0];
  end
  assign {{{p}}} = REG_OUTPUT_CLK == "NONE" ? product[35:0] : p_reg;
endmodule
`endif
"""


#: The behavioural model appended to the accelerator's Verilog (see the module docstring).
MULT18X18D_MODEL = _model()
