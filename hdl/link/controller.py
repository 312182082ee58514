"""The link controller: parses host frames from the UART and drives the accelerator's narrow host bus.

The protocol is specified in :mod:`systolix.arch.link` (framing, commands, replies, error codes). In short:
``SYNC CMD LEN PAYLOAD CRC16``; commands ``ID``, ``WRITE`` (memory words, committed through the
:class:`~systolix.hdl.narrow_host.NarrowHost` staging register), ``READ`` (activation rows), ``START``,
``STATUS``; every frame gets one reply, an error frame when it was rejected.

How it works: a frame's payload is kept in a 256-byte buffer (its first four bytes also in registers) while
its CRC is computed byte by byte (:class:`~.crc.Crc16`). Only when the whole frame is in and its CRC, command,
length and arguments check out is it executed: a bad frame never touches the accelerator. A ``WRITE`` then
reads the buffer back four bytes at a time, shifts each 32-bit word into the host bus's staging register and
commits every ``words_per_entry(sel)`` words to the memory at the next address. A ``READ`` fetches one row
at a time and streams its bytes (lane 0 first) out while the reply's CRC is computed. The host waits for the
reply to a frame before it sends the next one, so nothing arrives while a frame is executed or answered.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal, unsigned
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

from systolix.arch import link
from systolix.arch.config import AcceleratorConfig

from ..narrow_host import host_bus_signature
from .crc import Crc16

__all__ = ["LinkController"]

_RX_STATES = ("CMD", "LEN", "PAYLOAD", "CRC_HI", "CRC_LO")


class LinkController(wiring.Component):
    """Frames in, host-bus operations and reply frames out.

    Parameters
    ----------
    config : AcceleratorConfig
        The accelerator behind the host bus (its ID, lanes, memory sizes).
    divisor_bits : int
        Width of ``divisor``.
    timeout_shift : int
        A frame silent for ``divisor << timeout_shift`` clocks is dropped with ``ERR_TIMEOUT``.

    Members
    -------
    rx : In(stream.Signature(8, always_ready=True))
        Bytes from the UART receiver.
    rx_error : In(1)
        The receiver's framing-error pulse.
    tx : Out(stream.Signature(8))
        Bytes to the UART transmitter.
    divisor : In(divisor_bits)
        Clocks per bit (for the timeout).
    host : Out(host_bus_signature(config, counters=True).flip())
        The narrow host bus of the accelerator.
    error : Out(1)
        Pulses when an error reply is started (for a LED).
    """

    def __init__(self, config: AcceleratorConfig, divisor_bits: int = 16,
                 timeout_shift: int = link.TIMEOUT_BIT_TIMES.bit_length() - 1):
        self._config = config
        self._divisor_bits = divisor_bits
        self._timeout_shift = timeout_shift
        super().__init__({
            "rx": In(stream.Signature(8, always_ready=True)), "rx_error": In(1),
            "tx": Out(stream.Signature(8)), "divisor": In(divisor_bits),
            "host": Out(host_bus_signature(config, counters=True).flip()), "error": Out(1),
        })

    def elaborate(self, platform):
        cfg = self._config
        lanes = cfg.rows
        m = Module()
        m.submodules.rx_crc = rx_crc = Crc16()
        m.submodules.tx_crc = tx_crc = Crc16()
        m.submodules.buffer = buffer = memory.Memory(shape=unsigned(8), depth=256, init=[])
        buf_w, buf_r = buffer.write_port(), buffer.read_port()
        host = self.host

        # -- the frame being received ----------------------------------------------------------------
        cmd, length, index = Signal(8), Signal(8), Signal(8)
        head = [Signal(8, name=f"head{i}") for i in range(4)]
        framing = Signal()  # a framing error inside this frame
        quiet = Signal(self._divisor_bits + self._timeout_shift + 1)
        byte = self.rx.payload
        got = self.rx.valid
        m.d.comb += [rx_crc.data.eq(byte), buf_w.data.eq(byte), buf_w.addr.eq(index)]

        # -- fields and checks ------------------------------------------------------------------------
        w_sel, w_addr, w_count = head[0][:3], Cat(head[2], head[1]), head[3]
        r_addr, r_count = Cat(head[1], head[0]), head[2]
        sel_ok = Signal()
        expected = Signal(17)  # WRITE length for this sel and count
        depth = Signal(range(max(link.entry_depths(cfg).values()) + 1))
        words = Signal(8)  # 32-bit words per entry of sel
        with m.Switch(head[0]):
            for code, n in link.words_per_entry(cfg).items():
                with m.Case(code):
                    m.d.comb += [sel_ok.eq(1), expected.eq(4 + w_count * (4 * n)),
                                 depth.eq(link.entry_depths(cfg)[code]), words.eq(n)]
        known, len_ok, arg_ok, busy_bad = Signal(), Signal(), Signal(), Signal()
        running = host.busy & ~host.paused
        with m.Switch(cmd):
            with m.Case(link.CMD_ID, link.CMD_STATUS):
                m.d.comb += [known.eq(1), len_ok.eq(length == 0), arg_ok.eq(1)]
            with m.Case(link.CMD_START):
                m.d.comb += [known.eq(1), len_ok.eq(length == 1), arg_ok.eq(1), busy_bad.eq(running)]
            with m.Case(link.CMD_READ):
                m.d.comb += [known.eq(1), len_ok.eq(length == 3),
                             arg_ok.eq((r_count != 0) & (r_count <= link.max_read_rows(cfg))
                                       & (r_addr + r_count <= cfg.act_buffer_depth)),
                             busy_bad.eq(running)]
            with m.Case(link.CMD_WRITE):
                m.d.comb += [known.eq(1), len_ok.eq((length >= 4) & (~sel_ok | (length == expected))),
                             arg_ok.eq(sel_ok & (w_count != 0) & (w_addr + w_count <= depth)),
                             busy_bad.eq(host.busy)]

        # -- the reply ---------------------------------------------------------------------------------
        r_cmd, r_len, r_idx = Signal(8), Signal(8), Signal(8)
        r_bytes = Signal(56)  # fixed reply payloads, next byte in the top 8 bits
        streaming = Signal()  # the payload is activation rows (READ)
        row_byte = Signal(range(lanes))

        def reply(code: int, payload: list[tuple[int | object, int]] = (), rows: bool = False):
            """Start a reply: ``payload`` as (value, bytes) pairs, first byte first."""
            value = Cat(*reversed([_bytes(v, n) for v, n in payload])) if payload else C(0, 8)
            size = sum(n for _, n in payload)
            m.d.sync += [r_cmd.eq(code), r_idx.eq(0), streaming.eq(rows), row_byte.eq(0)]
            if not rows:
                m.d.sync += [r_len.eq(size), r_bytes.eq(value << (56 - 8 * size) if size else 0)]
            m.next = "T_SYNC"

        def error(code: int):
            m.d.comb += self.error.eq(1)
            reply(link.REPLY_ERROR, [(code, 1), (cmd, 1)])

        done_seen, step_mode = Signal(), Signal()
        addr, count, word, byte_n, word_n = Signal.like(host.addr), Signal(8), Signal(32), Signal(2), Signal(8)
        pc16 = Signal(16)
        m.d.comb += [pc16.eq(host.pc), host.addr.eq(addr), host.sel.eq(w_sel), host.wdata.eq(word),
                     host.step.eq(step_mode), buf_r.addr.eq(index)]
        with m.If(host.done):
            m.d.sync += done_seen.eq(1)

        with m.FSM():
            with m.State("HUNT"), m.If(got & (byte == link.SYNC)):
                m.d.comb += rx_crc.clear.eq(1)
                m.d.sync += [cmd.eq(0), framing.eq(0), quiet.eq(0)]
                m.next = "CMD"
            for state in _RX_STATES:
                with m.State(state):
                    with m.If(got):
                        m.d.sync += quiet.eq(0)
                        m.d.comb += rx_crc.en.eq(1)
                        if state == "CMD":
                            m.d.sync += cmd.eq(byte)
                            m.next = "LEN"
                        elif state == "LEN":
                            m.d.sync += [length.eq(byte), index.eq(0)]
                            m.next = "PAYLOAD"
                            with m.If(byte == 0):
                                m.next = "CRC_HI"
                        elif state == "PAYLOAD":
                            m.d.comb += buf_w.en.eq(1)
                            with m.Switch(index):
                                for i in range(4):
                                    with m.Case(i):
                                        m.d.sync += head[i].eq(byte)
                            m.d.sync += index.eq(index + 1)
                            with m.If(index == length - 1):
                                m.next = "CRC_HI"
                        elif state == "CRC_HI":
                            m.next = "CRC_LO"
                        else:
                            m.next = "CHECK"
                    with m.Elif(quiet == (self.divisor << self._timeout_shift)):
                        with m.If(framing):
                            error(link.ERR_FRAMING)
                        with m.Else():
                            error(link.ERR_TIMEOUT)
                    with m.Else():
                        m.d.sync += quiet.eq(quiet + 1)
                    with m.If(self.rx_error):
                        m.d.sync += framing.eq(1)
            with m.State("CHECK"):
                with m.If(framing):
                    error(link.ERR_FRAMING)
                with m.Elif(rx_crc.crc != 0):
                    error(link.ERR_CRC)
                with m.Elif(~known):
                    error(link.ERR_COMMAND)
                with m.Elif(~len_ok):
                    error(link.ERR_LENGTH)
                with m.Elif(~arg_ok):
                    error(link.ERR_ARGUMENT)
                with m.Elif(busy_bad):
                    error(link.ERR_BUSY)
                with m.Else(), m.Switch(cmd):
                    with m.Case(link.CMD_ID):
                        reply(link.REPLY | link.CMD_ID,
                              [(link.VERSION, 1), (link.config_id(cfg), 4), (lanes, 1)])
                    with m.Case(link.CMD_STATUS):
                        reply(link.REPLY | link.CMD_STATUS,
                              [(Cat(host.busy, done_seen, host.paused), 1), (host.cycles, 4), (pc16, 2)])
                    with m.Case(link.CMD_START):
                        m.d.comb += host.start.eq(1)
                        m.d.sync += [step_mode.eq(head[0][0]), done_seen.eq(0)]
                        reply(link.REPLY | link.CMD_START)
                    with m.Case(link.CMD_READ):
                        m.d.sync += [addr.eq(r_addr), r_len.eq(r_count * lanes)]
                        reply(link.REPLY | link.CMD_READ, rows=True)
                    with m.Case(link.CMD_WRITE):
                        m.d.sync += [addr.eq(w_addr), count.eq(w_count), index.eq(4), byte_n.eq(0),
                                     word_n.eq(0)]
                        m.next = "W_ADDR"

            # -- WRITE: buffer -> 32-bit words -> staging register -> memory ------------------------------
            with m.State("W_ADDR"):  # buf_r.addr = index: its byte is there next clock
                m.next = "W_DATA"
            with m.State("W_DATA"):
                m.d.sync += [word.eq(Cat(buf_r.data, word[:24])), index.eq(index + 1), byte_n.eq(byte_n + 1)]
                m.next = "W_ADDR"
                with m.If(byte_n == 3):
                    m.next = "W_SHIFT"
            with m.State("W_SHIFT"):
                m.d.comb += host.shift.eq(1)
                m.d.sync += word_n.eq(word_n + 1)
                m.next = "W_ADDR"
                with m.If(word_n == words - 1):
                    m.d.sync += word_n.eq(0)
                    m.next = "W_COMMIT"
            with m.State("W_COMMIT"):
                m.d.comb += host.commit.eq(1)
                m.d.sync += [addr.eq(addr + 1), count.eq(count - 1)]
                m.next = "W_ADDR"
                with m.If(count == 1):
                    reply(link.REPLY | link.CMD_WRITE)

            # -- the reply frame ---------------------------------------------------------------------------
            def send(value, next_state, crc: bool = True, clear: bool = False):
                m.d.comb += [self.tx.payload.eq(value), self.tx.valid.eq(1), tx_crc.data.eq(value)]
                with m.If(self.tx.ready):
                    if crc:
                        m.d.comb += tx_crc.en.eq(1)
                    if clear:
                        m.d.comb += tx_crc.clear.eq(1)
                    m.next = next_state

            with m.State("T_SYNC"):
                send(link.SYNC, "T_CMD", crc=False, clear=True)
            with m.State("T_CMD"):
                send(r_cmd, "T_LEN")
            with m.State("T_LEN"):
                send(r_len, "T_PAYLOAD")
            with m.State("T_PAYLOAD"):
                with m.If(r_len == 0):
                    m.next = "T_CRC_HI"
                with m.Elif(streaming):
                    m.next = "R_FETCH"
                with m.Else():
                    send(r_bytes[48:], "T_PAYLOAD")
                    with m.If(self.tx.ready):
                        m.d.sync += [r_bytes.eq(r_bytes << 8), r_idx.eq(r_idx + 1)]
                        with m.If(r_idx == r_len - 1):
                            m.next = "T_CRC_HI"
            with m.State("R_FETCH"):  # one activation row into the host bus's read register
                m.d.comb += host.fetch.eq(1)
                m.next = "R_WAIT"
            with m.State("R_WAIT"):
                m.next = "R_BYTE"
            with m.State("R_BYTE"):
                m.d.comb += host.rword.eq(row_byte >> 2)
                send(host.rdata.word_select(row_byte[:2], 8), "R_BYTE")
                with m.If(self.tx.ready):
                    m.d.sync += [r_idx.eq(r_idx + 1), row_byte.eq(row_byte + 1)]
                    with m.If(row_byte == lanes - 1):
                        m.d.sync += [row_byte.eq(0), addr.eq(addr + 1)]
                        m.next = "R_FETCH"
                    with m.If(r_idx == r_len - 1):
                        m.next = "T_CRC_HI"
            with m.State("T_CRC_HI"):
                send(tx_crc.crc[8:], "T_CRC_LO", crc=False)
            with m.State("T_CRC_LO"):
                send(tx_crc.crc[:8], "HUNT", crc=False)
        return m


def _bytes(value, n: int):
    """``value`` as an ``8 * n``-bit value (constants and signals)."""
    if isinstance(value, int):
        return C(value, 8 * n)
    return value.as_unsigned()[:8 * n] if len(value) >= 8 * n else Cat(value, C(0, 8 * n - len(value)))
