"""A board-independent top level: two UART pins and the accelerator behind the link.

:class:`LinkTop` wires the UART receiver and transmitter, the link controller and the
:class:`~systolix.hdl.narrow_host.NarrowHost` bus around the accelerator (instantiated by module name, so
the build folder's own ``accelerator.v`` is what runs). The baud divisor is an input: a board top ties it
to ``clock / baud``, the Verilator simulation sets it at run time, so one build serves every baud rate.
"""

from __future__ import annotations

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from systolix.arch.config import AcceleratorConfig

from ..narrow_host import NarrowHost
from .controller import LinkController
from .uart_rx import UartRx
from .uart_tx import UartTx

__all__ = ["DIVISOR_BITS", "LinkTop", "link_verilog"]

#: Width of the baud divisor.
DIVISOR_BITS = 16


class LinkTop(wiring.Component):
    """UART pins -> link controller -> narrow host bus -> accelerator.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator's configuration.
    timeout_shift : int, optional
        The controller's frame timeout (``divisor << timeout_shift`` clocks; default the protocol's).

    Members
    -------
    rx : In(1)
        Serial data from the host (idle high).
    tx : Out(1)
        Serial data to the host (idle high).
    divisor : In(16)
        Clocks per bit (at least 4).
    busy, done, error : Out(1)
        For LEDs: the accelerator runs; a run finished since the last ``START``; an error reply (pulse).
    """

    def __init__(self, config: AcceleratorConfig, timeout_shift: int | None = None):
        self._config = config
        self._timeout_shift = timeout_shift
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "divisor": In(DIVISOR_BITS),
                          "busy": Out(1), "done": Out(1), "error": Out(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = rx = UartRx(DIVISOR_BITS)
        m.submodules.uart_tx = tx = UartTx(DIVISOR_BITS)
        options = {} if self._timeout_shift is None else {"timeout_shift": self._timeout_shift}
        m.submodules.link = ctl = LinkController(self._config, DIVISOR_BITS, **options)
        m.submodules.host = host = NarrowHost(self._config, counters=True)
        wiring.connect(m, rx.bytes, ctl.rx)
        wiring.connect(m, ctl.tx, tx.bytes)
        wiring.connect(m, ctl.host, host)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), rx.divisor.eq(self.divisor), tx.divisor.eq(self.divisor),
                     ctl.divisor.eq(self.divisor), ctl.rx_error.eq(rx.error), self.busy.eq(host.busy),
                     self.error.eq(ctl.error)]
        m.d.comb += self.done.eq(host.done)
        return m


def link_verilog(config: AcceleratorConfig, name: str = "link_top") -> str:
    """The Verilog of :class:`LinkTop` for ``config`` (it instantiates the module ``accelerator``, which is not in
    the text: synthesise or simulate it together with a build folder's ``accelerator.v``)."""
    from amaranth.back import verilog

    return verilog.convert(LinkTop(config), name=name)
