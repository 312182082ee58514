"""The options for small devices (``vector_units``, ``narrow_program``, ``spram_buffers``) in the Verilog and the
resource estimate: absent units and their memories leave the design, the act banks and packed weights are
single-address memories for the iCE40 UltraPlus's SB_SPRAM256KA, without initial values."""

from __future__ import annotations

import re

from systolix.arch.config import AcceleratorConfig
from systolix.hdl.devices import block_rams, estimate, spram_blocks
from systolix.hdl.export import verilog_for

SMALL = dict(rows=1, cols=1, act_buffer_depth=64, weight_buffer_depth=64, acc_memory_depth=16, param_memory_depth=16,
             program_memory_depth=4, lut_memory_depth=256, add_table_depth=256)


def _memories(text: str) -> dict[str, str]:
    """Memory name -> its declaration line (``reg [W:0] name [D:0];``) in Amaranth's Verilog."""
    return {m.group(2): m.group(0) for m in re.finditer(r"reg \[(\d+):0\] (\w+) \[(\d+):0\];", text)}


def test_spram_buffers_memories_are_uninitialised_single_port_candidates():
    config = AcceleratorConfig(**SMALL, vector_units=["maxpool", "lut"], narrow_program=True, spram_buffers=True)
    text = verilog_for(config)
    mems = _memories(text)
    assert {"act0", "act1", "wgt", "prog", "prm", "lut0"} <= set(mems) and "act" not in mems
    assert "tab0" not in mems  # no ADD unit, no ADD tables
    assert mems["act0"].startswith("reg [7:0] act0 [31:0]")  # two banks of 32 rows
    assert mems["wgt"].startswith("reg [15:0] wgt [31:0]")  # two 8-bit rows per word
    assert mems["prog"].startswith("reg [15:0] prog [63:0]")  # 16 pieces of 16 bits per instruction
    for name in ("act0", "act1", "wgt"):
        assert f"    {name}[0] = " not in text  # no initial values
        assert re.search(r'\(\* ram_style = "huge" \*\)\n(?:  \(\*[^\n]*\n)*  reg \[\d+:0\] ' + name + " ", text), name
    assert "    prog[0] = " in text  # the others keep theirs


def test_presets_verilog_keeps_one_act_memory_and_every_unit():
    mems = _memories(verilog_for(AcceleratorConfig(**SMALL)))
    assert {"act", "wgt", "prog", "lut0", "tab0"} <= set(mems) and "act0" not in mems


def test_spram_estimate():
    """Hand count: each act bank of 16K 8-bit rows is one 16K x 16 SPRAM; 65,536 weight rows at two per word are
    32K words, two SPRAMs; the block RAMs no longer count act and wgt."""
    config = AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1 << 15, weight_buffer_depth=1 << 16,
                               spram_buffers=True, vector_units=["maxpool", "lut"])
    assert spram_blocks(config, "up5k") == {"act": 2, "wgt": 2}
    assert spram_blocks(config, "ecp5-25f") == {}  # no SPRAM there: block RAMs
    assert estimate(config, "up5k")["SPRAM"] == 4
    blocks = block_rams(config, "up5k")
    assert blocks["act"] == blocks["wgt"] == blocks["tab"] == 0
    plain = AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1 << 15, weight_buffer_depth=1 << 16)
    assert estimate(plain, "up5k")["SPRAM"] == 0 and block_rams(plain, "up5k")["act"] == 64  # 512 x 8 blocks


def test_too_many_single_port_rams_refused():
    import pytest

    from systolix.errors import SystolixError
    from systolix.hdl.devices import check_fits

    big = AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1 << 16, weight_buffer_depth=1 << 16,
                            spram_buffers=True, vector_units=["maxpool", "lut"])
    assert spram_blocks(big, "up5k") == {"act": 4, "wgt": 2}  # two banks of 32K rows: two SPRAMs each
    with pytest.raises(SystolixError, match="SPRAM needs about 6 SB_SPRAM256KA, the device has 4"):
        check_fits(big, "up5k")
