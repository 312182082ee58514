"""Max-pool unit: the running maximum per lane over the taps of one window.

Items arrive in window order with ``first`` on a window's first tap and ``last`` on its last one;
the maximum of the window is emitted with the last tap. Taps outside the input (padding) are sent by
the engine as -128, the smallest int8 code, so they never win -- exactly "padding cells ignored"
whenever a window has at least one real tap (the compiler rejects windows entirely in the padding).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.latency import max_pool_unit_latency

__all__ = ["MaxPoolUnit", "max_pool_input_layout"]


def max_pool_input_layout(lanes: int) -> data.StructLayout:
    """Payload of `MaxPoolUnit.i`: one tap (``lanes`` codes) and its window flags; ``pad``: the tap lies
    outside the input and counts as -128 in every lane (whatever ``x`` holds)."""
    return data.StructLayout({"x": data.ArrayLayout(signed(8), lanes), "first": 1, "last": 1, "pad": 1})


class MaxPoolUnit(wiring.Component):
    """Running maximum per lane; one tap per cycle, the result one cycle after the last tap.

    Parameters
    ----------
    lanes : int
        Codes per tap.

    Members
    -------
    i : In(stream.Signature(max_pool_input_layout(lanes)))
    o : Out(stream.Signature(ArrayLayout(signed(8), lanes)))
        One maximum per window.
    """

    def __init__(self, lanes: int):
        self._lanes = lanes
        super().__init__({
            "i": In(stream.Signature(max_pool_input_layout(lanes))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(8), lanes))),
        })

    @property
    def latency(self) -> int:
        """Cycles from the transfer of a window's last tap to its result on ``o``."""
        return max_pool_unit_latency()

    def elaborate(self, platform):
        m = Module()
        running = Signal(data.ArrayLayout(signed(8), self._lanes))
        valid = Signal()
        m.d.comb += [self.i.ready.eq(~valid | self.o.ready), self.o.valid.eq(valid)]
        with m.If(self.o.ready):
            m.d.sync += valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            for lane in range(self._lanes):
                x, acc, pad = self.i.payload.x[lane], running[lane], self.i.payload.pad
                # A padding tap is -128: the window's value if first, else never above it. The comparison
                # takes ``x`` as it comes (no mux in front of the carry chain).
                new = Mux(self.i.payload.first, Mux(pad, -128, x), Mux(~pad & (x > acc), x, acc))
                m.d.sync += running[lane].eq(new)
                with m.If(self.i.payload.last):
                    m.d.sync += self.o.payload[lane].eq(new)
            with m.If(self.i.payload.last):
                m.d.sync += valid.eq(1)
        return m
