"""The UART host link on Amaranth's simulator: receiver and transmitter at a baud divisor with random gaps,
the CRC against the protocol's reference, and the link controller answering frames over the pins (with a
behavioural accelerator behind the narrow host bus): every command, and rejected frames never executed."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import memory, wiring
from amaranth.sim import Simulator

from systolix.arch import link
from systolix.arch.config import AcceleratorConfig
from systolix.hdl.link.controller import LinkController
from systolix.hdl.link.crc import Crc16
from systolix.hdl.link.uart_rx import UartRx
from systolix.hdl.link.uart_tx import UartTx
from systolix.hdl.narrow_host import WORD_BITS, host_bus_signature
from systolix.sim.link_host import decode_frame, encode_frame

CONFIG = AcceleratorConfig.preset("4x4")
LANES = CONFIG.rows


async def drive_line(ctx, pin, data: bytes, divisor: int, rng: np.random.Generator | None = None, max_gap: int = 0):
    """Send ``data`` on ``pin`` (8N1, ``divisor`` clocks per bit), a random idle gap before each byte."""
    for byte in data:
        if rng is not None and max_gap:
            await ctx.tick().repeat(1 + int(rng.integers(0, max_gap + 1)))
        for bit in [0, *((byte >> i) & 1 for i in range(8)), 1]:
            ctx.set(pin, bit)
            await ctx.tick().repeat(divisor)


async def read_line(ctx, pin, count: int, divisor: int, out: list, limit: int = 200_000) -> None:
    """Decode ``count`` bytes from ``pin`` into ``out`` (sampling each bit's middle)."""
    waited = 0
    while len(out) < count:
        if ctx.get(pin):
            await ctx.tick()
            waited += 1
            assert waited < limit, f"no byte on the line after {limit} clocks ({out})"
            continue
        await ctx.tick().repeat(divisor // 2)
        assert not ctx.get(pin), "start bit too short"
        value = 0
        for i in range(8):
            await ctx.tick().repeat(divisor)
            value |= ctx.get(pin) << i
        await ctx.tick().repeat(divisor)
        assert ctx.get(pin), "stop bit low"
        out.append(value)


def run(dut, *benches, processes=()) -> None:
    """Simulate until every bench has finished (``processes`` run in the background)."""
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    for bench in benches:
        sim.add_testbench(bench)
    for process in processes:
        sim.add_testbench(process, background=True)
    sim.run()


# -- the UART halves and the CRC ----------------------------------------------------------------------------

@pytest.mark.parametrize("divisor", [4, 7, 16])
def test_receiver_takes_bytes_at_the_divisor_with_random_gaps(divisor):
    rng = np.random.default_rng(divisor)
    data = bytes(rng.integers(0, 256, 24).tolist()) + b"\x00\xff\xa5"
    dut = UartRx()
    got, errors = [], []

    async def sender(ctx):
        ctx.set(dut.divisor, divisor)
        await drive_line(ctx, dut.rx, data, divisor, rng, max_gap=3 * divisor)
        await ctx.tick().repeat(4 * divisor)
        assert bytes(got) == data
        assert not errors

    async def monitor(ctx):
        async for _, _, valid, payload, error in ctx.tick().sample(dut.bytes.valid, dut.bytes.payload, dut.error):
            if valid:
                got.append(payload)
            if error:
                errors.append(1)

    run(dut, sender, processes=[monitor])


def test_receiver_drops_a_byte_with_a_low_stop_bit():
    dut = UartRx()
    got, errors = [], []

    async def sender(ctx):
        ctx.set(dut.divisor, 8)
        for bit in [0, 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0]:  # 0x55 with the stop bit (and after) low
            ctx.set(dut.rx, bit)
            await ctx.tick().repeat(8)
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(16)
        await drive_line(ctx, dut.rx, b"\x3c", 8)
        await ctx.tick().repeat(16)
        assert got == [0x3C] and errors == [1]

    async def monitor(ctx):
        async for _, _, valid, payload, error in ctx.tick().sample(dut.bytes.valid, dut.bytes.payload, dut.error):
            if valid:
                got.append(payload)
            if error:
                errors.append(1)

    run(dut, sender, processes=[monitor])


@pytest.mark.parametrize("divisor", [4, 9])
def test_transmitter_sends_bytes_at_the_divisor(divisor):
    rng = np.random.default_rng(divisor)
    data = list(rng.integers(0, 256, 16)) + [0, 255]
    dut = UartTx()
    got: list[int] = []

    async def producer(ctx):
        ctx.set(dut.divisor, divisor)
        for byte in data:
            await ctx.tick().repeat(int(rng.integers(1, 3 * divisor)))
            ctx.set(dut.bytes.payload, int(byte))
            ctx.set(dut.bytes.valid, 1)
            await ctx.tick().until(dut.bytes.ready)
            ctx.set(dut.bytes.valid, 0)

    async def consumer(ctx):
        await read_line(ctx, dut.tx, len(data), divisor, got)
        assert got == [int(b) for b in data]

    run(dut, producer, consumer)


def test_crc_matches_the_protocol_reference():
    assert link.crc16(b"123456789") == 0x29B1
    rng = np.random.default_rng(1)
    data = bytes(rng.integers(0, 256, 40).tolist())
    dut = Crc16()

    async def bench(ctx):
        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        for i, byte in enumerate(data):
            ctx.set(dut.data, byte)
            ctx.set(dut.en, 1)
            await ctx.tick()
            assert ctx.get(dut.crc) == link.crc16(data[:i + 1])
        ctx.set(dut.en, 0)
        tail = link.crc16(data).to_bytes(2, "big")
        for byte in tail:  # message + its CRC leaves 0
            ctx.set(dut.data, byte)
            ctx.set(dut.en, 1)
            await ctx.tick()
        assert ctx.get(dut.crc) == 0

    run(dut, bench)


# -- the link controller over the pins --------------------------------------------------------------------

class FakeHost(wiring.Component):
    """The narrow host bus with a behavioural accelerator: a 64-row activation memory, and a "program" that
    stays busy for ``run_cycles`` clocks after ``start``. Commits are recorded by the testbench."""

    def __init__(self, run_cycles: int = 50):
        self.run_cycles = run_cycles
        super().__init__(host_bus_signature(CONFIG, counters=True))
        self.stage = Signal(WORD_BITS * max(link.words_per_entry(CONFIG).values()))

    def elaborate(self, platform):
        m = Module()
        stage = self.stage
        with m.If(self.shift):
            m.d.sync += stage.eq((stage << WORD_BITS) | self.wdata)
        m.submodules.act = act = memory.Memory(shape=unsigned(8 * LANES), depth=64, init=[])
        w, r = act.write_port(), act.read_port()
        m.d.comb += [w.addr.eq(self.addr), w.data.eq(stage), w.en.eq(self.commit & (self.sel == link.SEL_ACT)),
                     r.addr.eq(self.addr), r.en.eq(self.fetch)]
        row, fetched = Signal(8 * LANES), Signal()
        m.d.sync += fetched.eq(self.fetch)
        with m.If(fetched):
            m.d.sync += row.eq(r.data)
        m.d.comb += self.rdata.eq(row)
        left = Signal(16)
        with m.If(self.start & ~self.busy):
            m.d.sync += [self.busy.eq(1), left.eq(self.run_cycles), self.cycles.eq(0)]
        with m.Elif(self.busy):
            m.d.sync += [self.cycles.eq(self.cycles + 1), left.eq(left - 1), self.pc.eq(self.pc + 1)]
            with m.If(left == 1):
                m.d.sync += self.busy.eq(0)
                m.d.comb += self.done.eq(1)
        return m


class Bench(wiring.Component):
    """UART pins -> receiver -> controller -> transmitter, and the controller on a :class:`FakeHost`."""

    def __init__(self, timeout_shift: int = 12):
        self.timeout_shift = timeout_shift
        super().__init__({"rx": wiring.In(1, init=1), "tx": wiring.Out(1), "divisor": wiring.In(16)})
        self.host = FakeHost()

    def elaborate(self, platform):
        m = Module()
        m.submodules.rx = rx = UartRx()
        m.submodules.tx = tx = UartTx()
        m.submodules.ctl = ctl = LinkController(CONFIG, timeout_shift=self.timeout_shift)
        m.submodules.host = self.host
        wiring.connect(m, rx.bytes, ctl.rx)
        wiring.connect(m, ctl.tx, tx.bytes)
        wiring.connect(m, ctl.host, self.host)
        m.d.comb += [rx.rx.eq(self.rx), self.tx.eq(tx.tx), rx.divisor.eq(self.divisor),
                     tx.divisor.eq(self.divisor), ctl.divisor.eq(self.divisor), ctl.rx_error.eq(rx.error)]
        return m


def exchange(frames: list[bytes], divisor: int = 4, max_gap: int = 0, seed: int = 0, timeout_shift: int = 12,
             expect: int | None = None) -> tuple[list[tuple[int, bytes]], list[tuple[int, int, int]]]:
    """Send each frame, wait for its reply; the replies ``(cmd, payload)`` and the commits ``(sel, addr, value)``."""
    dut = Bench(timeout_shift)
    rng = np.random.default_rng(seed)
    replies: list[tuple[int, bytes]] = []
    commits: list[tuple[int, int, int]] = []

    async def host(ctx):
        ctx.set(dut.divisor, divisor)
        await ctx.tick().repeat(4)
        for frame in frames:
            await drive_line(ctx, dut.rx, frame, divisor, rng, max_gap)
            head: list[int] = []
            await read_line(ctx, dut.tx, 3, divisor, head)
            rest: list[int] = []
            await read_line(ctx, dut.tx, head[2] + 2, divisor, rest)
            replies.append(decode_frame(bytes(head + rest)))

    async def monitor(ctx):
        h = dut.host
        async for _, _, commit, sel, addr, stage in ctx.tick().sample(h.commit, h.sel, h.addr, h.stage):
            if commit:
                commits.append((sel, addr, stage))

    run(dut, host, processes=[monitor])
    assert len(replies) == (len(frames) if expect is None else expect)
    return replies, commits


def write_frame(sel: int, addr: int, values: list[int]) -> bytes:
    size = 4 * link.words_per_entry(CONFIG)[sel]
    return encode_frame(link.CMD_WRITE, bytes([sel]) + addr.to_bytes(2, "big") + bytes([len(values)])
                        + b"".join(v.to_bytes(size, "big") for v in values))


def test_id_write_read_start_status_with_random_gaps():
    prm = [int.from_bytes(np.random.default_rng(3).bytes(48), "big"), 0x1234]
    rows = [0x01020304, 0xF0E0D0C0, 0x7F80FF00]
    frames = [encode_frame(link.CMD_ID), write_frame(1, 17, prm), write_frame(link.SEL_ACT, 5, rows),
              encode_frame(link.CMD_READ, (5).to_bytes(2, "big") + bytes([3])),
              encode_frame(link.CMD_START, b"\x00"), encode_frame(link.CMD_STATUS)]
    replies, commits = exchange(frames, divisor=5, max_gap=9, seed=2)
    ident = replies[0]
    assert ident[0] == link.REPLY | link.CMD_ID
    assert ident[1] == bytes([link.VERSION]) + link.config_id(CONFIG).to_bytes(4, "big") + bytes([LANES])
    mask = (1 << 384) - 1
    assert [(s, a, v & mask) for s, a, v in commits[:2]] == [(1, 17, prm[0]), (1, 18, prm[1])]
    assert [(s, a, v & 0xFFFFFFFF) for s, a, v in commits[2:]] == [(7, 5 + i, r) for i, r in enumerate(rows)]
    assert replies[1] == replies[2] == (link.REPLY | link.CMD_WRITE, b"")
    assert replies[3][0] == link.REPLY | link.CMD_READ
    assert replies[3][1] == b"".join(r.to_bytes(4, "little") for r in rows)  # lane 0 (low byte) first
    assert replies[4] == (link.REPLY | link.CMD_START, b"")
    code, body = replies[5]
    assert code == link.REPLY | link.CMD_STATUS and len(body) == 7


def test_run_reports_busy_then_done_and_the_cycles():
    status = encode_frame(link.CMD_STATUS)
    replies, _ = exchange([encode_frame(link.CMD_START, b"\x00"), status, status, status], divisor=4)
    flags = [body[0] for _, body in replies[1:]]
    cycles = [int.from_bytes(body[1:5], "big") for _, body in replies[1:]]
    assert flags[-1] == 0b010  # done, not busy
    assert cycles[-1] == 50


@pytest.mark.parametrize("frame, error", [
    (bytearray(write_frame(0, 3, [0xDEADBEEF])), link.ERR_CRC),
    (encode_frame(0x33, b"\x01\x02"), link.ERR_COMMAND),
    (encode_frame(link.CMD_ID, b"\x00"), link.ERR_LENGTH),
    (encode_frame(link.CMD_WRITE, bytes([0, 0, 3, 2]) + b"\x00" * 4), link.ERR_LENGTH),
    (encode_frame(link.CMD_WRITE, bytes([5, 0, 3, 1]) + b"\x00" * 4), link.ERR_ARGUMENT),
    (encode_frame(link.CMD_READ, (4095).to_bytes(2, "big") + b"\x02"), link.ERR_ARGUMENT),
])
def test_a_bad_frame_is_rejected_and_never_executed(frame, error):
    frame = bytes(frame)
    if error == link.ERR_CRC:
        frame = frame[:6] + bytes([frame[6] ^ 0x10]) + frame[7:]  # one payload bit flipped
    replies, commits = exchange([frame, write_frame(0, 9, [0x0BADF00D])])
    assert replies[0] == (link.REPLY_ERROR, bytes([error, frame[1]]))
    assert replies[1] == (link.REPLY | link.CMD_WRITE, b"")
    assert [(s, a, v & 0xFFFFFFFF) for s, a, v in commits] == [(0, 9, 0x0BADF00D)]  # only the good frame ran


def test_a_truncated_frame_times_out_and_the_link_recovers():
    frame = write_frame(0, 3, [0x11223344])
    replies, commits = exchange([frame[:7], encode_frame(link.CMD_ID)], timeout_shift=6)
    assert replies[0] == (link.REPLY_ERROR, bytes([link.ERR_TIMEOUT, link.CMD_WRITE]))
    assert replies[1][0] == link.REPLY | link.CMD_ID
    assert commits == []
