"""``systolix run BUILD --port sim``: the bundled example through the UART link top on Verilator.

The same host code a board gets loads the build folder over a simulated serial line, runs test images and
reads the outputs and the cycle counter: zero mismatches against onnxruntime and the cycles of ``simulate
BUILD``. The link itself: random gaps between bytes, a corrupted frame rejected and the link going on, and
the host's refusals (another accelerator on the line, a silent port, an unknown port) as one-line errors.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from systolix.arch import link
from systolix.arch.config import AcceleratorConfig
from systolix.cli import main
from systolix.compiler.build import build, load_build
from systolix.run import run_build
from systolix.sim.link_host import LinkError, LinkHost, decode_frame, encode_frame
from systolix.sim.link_sim import SimulatedPort, build_link_simulator
from systolix.sim.simulate import simulate
from tests.conftest import EXAMPLE

pytestmark = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                or shutil.which("g++") is None, reason="the Verilator build needs make, perl and g++")


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> tuple[Path, Path]:
    """The bundled example compiled for 4x4 (quantized with its calibration set), and 3 of its test images."""
    folder = tmp_path_factory.mktemp("link")
    build(EXAMPLE / "model.onnx", folder / "build", AcceleratorConfig.preset("4x4"), calib=EXAMPLE / "calib.npz")
    data = np.load(EXAMPLE / "test.npz")
    np.savez(folder / "few.npz", x=data["x"][:3], y=data["y"][:3])
    return folder / "build", folder / "few.npz"


def test_run_over_the_simulated_link_is_bit_exact_with_the_cycles_of_simulate(example, tmp_path, capsys):
    folder, images = example
    report = tmp_path / "run.json"
    assert main(["run", str(folder), "--port", "sim", "--inputs", str(images), "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "BIT-EXACT" in out and "inferences/s" in out and "model load" in out
    got = json.loads(report.read_text())
    assert got["backend"] == "link" and got["samples"] == 3
    assert got["mismatches"] == 0 and got["compared_elements"] > 0
    want = simulate(folder, inputs=images, backend="verilator")
    assert want.bit_exact
    assert got["cycles"] == want.hardware["cycles"]
    figures = got["link"]
    assert figures["load_bytes"] > 10_000 and figures["inferences_per_second"] > 0
    assert figures["bytes"]["load"]["frames"] > 0 and figures["polls"] >= 3


def test_run_layers_reads_every_layer_and_times_every_instruction(example):
    folder, images = example
    result, _ = run_build(folder, port="sim", inputs=images, layers=True, divisor=6)
    assert result.bit_exact and len(result.comparison.layers) > 3
    want = simulate(folder, inputs=images, backend="verilator", layers=True)
    cycles = {layer["name"]: layer["cycles"] for layer in want.hardware["hardware_layers"]}
    assert {layer["name"]: layer["cycles"] for layer in result.hardware["hardware_layers"]} == cycles
    assert result.hardware["cycles"] == want.hardware["cycles"]


def test_random_gaps_and_a_corrupted_frame_on_the_verilated_link(example):
    b = load_build(example[0])
    library = build_link_simulator(b.config, b.verilog)
    rng = np.random.default_rng(4)
    with SimulatedPort(library, divisor=7, max_gap=40, seed=9) as port:
        host = LinkHost(port, b.config)
        host.check()
        rows = rng.integers(-128, 128, (70, b.config.rows)).astype(np.int8)
        host.write_rows(100, rows)
        frame = bytearray(encode_frame(link.CMD_WRITE, bytes([link.SEL_ACT, 0, 100, 1]) + b"\x00" * 4))
        frame[5] ^= 0x01  # the address byte: a bad CRC
        port.write(bytes(frame))
        head = port.read(3)
        assert decode_frame(head + port.read(head[2] + 2)) == (link.REPLY_ERROR, bytes([link.ERR_CRC, link.CMD_WRITE]))
        np.testing.assert_array_equal(host.read_rows(100, 70), rows)  # the bad frame wrote nothing
        assert port.framing_errors == 0


class _Port:
    """A port answering every frame with ``reply`` (nothing: a silent line)."""

    def __init__(self, reply: bytes = b"") -> None:
        self.data = b""
        self.reply = reply

    def write(self, data: bytes) -> None:
        self.data += self.reply

    def read(self, n: int) -> bytes:
        out, self.data = self.data[:n], self.data[n:]
        return out


def test_another_accelerator_on_the_line_is_refused():
    config = AcceleratorConfig.preset("4x4")
    other = link.config_id(AcceleratorConfig.preset("8x8"))
    port = _Port(encode_frame(link.REPLY | link.CMD_ID, bytes([link.VERSION]) + other.to_bytes(4, "big") + b"\x08"))
    with pytest.raises(LinkError, match=f"config ID {other:08x}.*not the one this build was compiled for"):
        LinkHost(port, config).check()


def test_a_silent_line_is_a_timeout_naming_the_frame():
    host = LinkHost(_Port(), AcceleratorConfig.preset("4x4"))
    with pytest.raises(LinkError, match=r"link timeout: no complete reply to ID \(frame 1\)"):
        host.check()
    with pytest.raises(LinkError, match=r"READ act\[5\.\.6\] \(frame 2\)"):
        host.read_rows(5, 2)


def test_unknown_port_and_a_model_file_are_one_line_errors(example, capsys):
    folder, images = example
    assert main(["run", str(folder), "--port", "bogus", "--inputs", str(images)]) == 2
    err = capsys.readouterr().err
    assert "unknown port 'bogus'" in err and len(err.strip().splitlines()) == 1
    assert main(["run", str(folder / "model.onnx"), "--random", "1"]) == 2
    err = capsys.readouterr().err
    assert "needs a build folder" in err and len(err.strip().splitlines()) == 1
