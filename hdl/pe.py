"""Processing element of the systolic array.

Dataflow: **weight-stationary**. Each PE keeps one weight; activations travel east along the rows
and partial sums travel south down the columns. For CNN layers the same weight tile is used for
every output pixel of a layer (hundreds to thousands of activation vectors), so loading it once and
streaming activations past it moves the least data; output-stationary would instead need the
accumulators drained from every PE for each group of pixels. Weight-stationary also keeps the
accumulation in the column adders, which on a small FPGA map onto the DSP multiplier plus one carry
chain per PE.

Operands are the *zero-point-corrected* values ``x - x_zp`` and ``w - w_zp``. With int8 inputs and
int8 zero points both lie in [-255, 255]: 9-bit signed, so one 18x18 DSP multiplier per PE still
suffices and the column sums equal ``sum((x - x_zp) * (w - w_zp))`` exactly. The subtraction is done
once at the edge of the array (per row for activations, per column at weight load), not in every PE.

Weights are double-buffered (as Gemmini's PE does with its ``propagate`` bit): two weight
registers, *banks*. A bank-select bit travels east together with each activation, so every product
of one activation vector uses the same bank even while the wavefront of the next vector already
uses the other one. The idle bank is loaded (``w_load`` with ``w_in``) without disturbing the
computation. `SystolicArray` drives ``w_load`` per row (addressed row writes, so a row can be refilled
as soon as the last vector using it has passed); ``w_out`` also offers the bank's content to a
neighbour for shift-chain loading, which the array does not use (synthesis removes it).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import PE_PRODUCT_STAGES as PRODUCT_REGISTER_LATENCY

from .dsp import RegisteredMultiplier

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """One multiply-accumulate cell of a weight-stationary systolic array.

    Every cycle: ``x_out <= x_in``, ``sel_out <= sel_in`` and
    ``psum_out <= psum_in + x_in * w[sel_in]``, the sum wrapping modulo ``2**acc_width`` like the
    int32 accumulators of onnxruntime. With ``product_register`` the multiplier's operands (``x_in`` and the
    weight of bank ``sel_in``) and its product are registered, so the DSP multiplier sits between two
    registers (the product twice) and ``psum_in`` must arrive `product_latency` (3) cycles after the ``x_in``
    it is added to.

    Parameters
    ----------
    operand_width : int
        Signed width of activations and weights (9 for int8 with zero points subtracted).
    acc_width : int
        Signed width of the partial sums.
    product_register : bool
        Register the multiplier's operands and its product before the addition.

    Members
    -------
    x_in, x_out : signed(operand_width)
        Activation from the west, and registered to the east.
    sel_in, sel_out : unsigned(1)
        Weight bank used for ``x_in``; registered to the east with it.
    psum_in, psum_out : signed(acc_width)
        Partial sum from the north, and the registered sum to the south.
    w_in : signed(operand_width)
        Weight shifted in when ``w_load`` is high, into bank ``w_bank``.
    w_load, w_bank : unsigned(1)
        Weight shift enable and the bank it writes.
    w_out : signed(operand_width)
        Current content of bank ``w_bank``, for the next PE of the shift chain.
    """

    #: Cycles from ``x_in`` to ``x_out`` and from ``psum_in`` to ``psum_out`` (one register each).
    X_LATENCY = 1
    PSUM_LATENCY = 1

    def __init__(self, *, operand_width: int = 9, acc_width: int = 32, product_register: bool = True):
        self._operand_width = operand_width
        self._acc_width = acc_width
        self._product_register = bool(product_register)
        super().__init__({
            "x_in": In(signed(operand_width)),
            "sel_in": In(1),
            "x_out": Out(signed(operand_width)),
            "sel_out": Out(1),
            "psum_in": In(signed(acc_width)),
            "psum_out": Out(signed(acc_width)),
            "w_in": In(signed(operand_width)),
            "w_load": In(1),
            "w_bank": In(1),
            "w_out": Out(signed(operand_width)),
        })

    @property
    def x_latency(self) -> int:
        """Cycles from ``x_in`` to ``x_out``."""
        return self.X_LATENCY

    @property
    def psum_latency(self) -> int:
        """Cycles from ``psum_in`` to ``psum_out``."""
        return self.PSUM_LATENCY

    @property
    def product_latency(self) -> int:
        """Cycles by which ``psum_in`` lags the ``x_in`` it is combined with (0, or 3 with the operand and
        product registers)."""
        return PRODUCT_REGISTER_LATENCY if self._product_register else 0

    @property
    def latency(self) -> int:
        """Cycles from ``x_in`` to the ``psum_out`` that includes its product."""
        return self.product_latency + self.psum_latency

    def elaborate(self, platform):
        m = Module()
        weights = [Signal(signed(self._operand_width), name=f"w{bank}", reset_less=True) for bank in (0, 1)]

        # Shift chain of the bank being loaded.
        m.d.comb += self.w_out.eq(Mux(self.w_bank, weights[1], weights[0]))
        with m.If(self.w_load):
            with m.If(self.w_bank):
                m.d.sync += weights[1].eq(self.w_in)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_in)

        # Datapath registers need no reset (validity is tracked outside the array).
        x_reg = Signal.like(self.x_in, reset_less=True)
        sel_reg = Signal(1, reset_less=True)
        psum_reg = Signal.like(self.psum_in, reset_less=True)
        m.d.sync += [x_reg.eq(self.x_in), sel_reg.eq(self.sel_in)]
        m.d.comb += [self.x_out.eq(x_reg), self.sel_out.eq(sel_reg), self.psum_out.eq(psum_reg)]

        weight = Mux(self.sel_in, weights[1], weights[0])
        if self._product_register:
            # The multiplier sits between registers that serve it alone: its own copy of x_in (not the
            # east-going ``x_reg``), the selected weight, and the product -- the DSP block's own registers
            # (`RegisteredMultiplier`) --, then the product again next to the adder, so the long wire is a
            # register-to-register path.
            m.submodules.mult = mult = RegisteredMultiplier(signed(self._operand_width), signed(self._operand_width))
            product_out = Signal.like(mult.p, reset_less=True)
            m.d.comb += [mult.a.eq(self.x_in), mult.b.eq(weight), mult.ce_a.eq(1), mult.ce_b.eq(1), mult.ce_p.eq(1)]
            m.d.sync += product_out.eq(mult.p)
            product = product_out
        else:
            product = self.x_in * weight
        # Assigning the wider sum to an acc_width register truncates it: two's-complement wrap-around.
        m.d.sync += psum_reg.eq(self.psum_in + product)
        return m
