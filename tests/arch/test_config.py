"""AcceleratorConfig: checks, derived values, presets, JSON."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from systolix.arch.config import PRESETS, VECTOR_UNITS, AcceleratorConfig
from systolix.errors import SystolixError


def test_derived_values():
    config = AcceleratorConfig(rows=8, cols=4, act_buffer_depth=1000, weight_buffer_depth=1024,
                               acc_memory_depth=1025, param_memory_depth=1, program_memory_depth=2)
    assert config.macs_per_cycle == 32
    assert config.operand_width == 9
    assert config.act_buffer_bytes == 8000
    assert config.weight_buffer_bytes == 4096
    assert config.acc_memory_bytes == 1025 * 16
    assert (config.act_addr_width, config.weight_addr_width, config.acc_addr_width) == (10, 10, 11)
    assert (config.param_addr_width, config.program_addr_width) == (1, 1)


def test_presets():
    assert list(PRESETS) == ["4x4", "8x8", "16x16"]
    for name, config in PRESETS.items():
        assert f"{config.rows}x{config.cols}" == name
        assert AcceleratorConfig.preset(name) is config
    with pytest.raises(TypeError):
        PRESETS["2x2"] = AcceleratorConfig(rows=2, cols=2)  # type: ignore[index]


def test_unknown_preset():
    with pytest.raises(SystolixError) as info:
        AcceleratorConfig.preset("3x3")
    assert str(info.value) == "unknown accelerator preset '3x3'; known presets: 4x4, 8x8, 16x16"


def test_frozen():
    config = AcceleratorConfig.preset("4x4")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rows = 5  # type: ignore[misc]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("rows", 0, "rows must be a positive int, not 0"),
    ("cols", -3, "cols must be a positive int, not -3"),
    ("rows", True, "rows must be a positive int, not True"),
    ("rows", 4.0, "rows must be a positive int, not 4.0"),
    ("cols", "4", "cols must be a positive int, not '4'"),
    ("act_buffer_depth", 0, "act_buffer_depth must be a positive int, not 0"),
    ("program_memory_depth", None, "program_memory_depth must be a positive int, not None"),
    ("data_width", 16, "data_width must be 8 (only int8 is supported), not 16"),
    ("acc_width", 24, "acc_width must be 32 (onnxruntime accumulates in int32), not 24"),
    ("pe_product_register", 1, "pe_product_register must be a bool, not 1"),
    ("vector_units", "lut", "vector_units must be a list of unit names, not 'lut'"),
    ("vector_units", ["lut", "conv"], "vector_units must name each of maxpool, lut, add, mul, resize at most once, "
                                      "not ['lut', 'conv']"),
    ("vector_units", ["lut", "lut"], "vector_units must name each of maxpool, lut, add, mul, resize at most once, "
                                     "not ['lut', 'lut']"),
])
def test_bad_values(field, value, message):
    values = {"rows": 4, "cols": 4, field: value}
    with pytest.raises(SystolixError) as info:
        AcceleratorConfig(**values)
    assert str(info.value) == message


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    config = AcceleratorConfig.preset(name)
    text = config.to_json()
    assert json.loads(text)["rows"] == config.rows
    assert AcceleratorConfig.from_json(text) == config


def test_from_json_fills_defaults():
    config = AcceleratorConfig.from_json('{"rows": 2, "cols": 3}')
    assert config == AcceleratorConfig(rows=2, cols=3)


def test_from_file(tmp_path):
    path = tmp_path / "accel.json"
    path.write_text(AcceleratorConfig(rows=2, cols=6, pe_product_register=False).to_json())
    assert AcceleratorConfig.from_file(path) == AcceleratorConfig(rows=2, cols=6, pe_product_register=False)


@pytest.mark.parametrize(("text", "message"), [
    ("{", re.escape("accelerator config is not valid JSON: Expecting property name enclosed in double "
                    "quotes: line 1 column 2 (char 1)")),
    ("[4, 4]", "^accelerator config must be a JSON object, not list$"),
    ('{"rows": 4, "cols": 4, "depth": 3, "banks": 2}',
     "^unknown key\\(s\\) in accelerator config: 'banks', 'depth'; known keys: rows, cols, "),
    ('{"rows": 4}', "^accelerator config lacks required key\\(s\\): cols$"),
    ('{"rows": 4, "cols": 0}', "^cols must be a positive int, not 0$"),
    ('{"rows": 4, "cols": 4.5}', "^cols must be a positive int, not 4.5$"),
])
def test_bad_json(text, message):
    with pytest.raises(SystolixError, match=message):
        AcceleratorConfig.from_json(text)


def test_bad_files(tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(SystolixError) as info:
        AcceleratorConfig.from_file(missing)
    assert str(info.value).startswith(f"cannot read accelerator config {str(missing)!r}: ")
    broken = tmp_path / "broken.json"
    broken.write_text('{"rows": 4, "cols": 4, "colz": 4}')
    with pytest.raises(SystolixError) as info:
        AcceleratorConfig.from_file(broken)
    assert str(info.value).startswith(f"{broken}: unknown key(s) in accelerator config: 'colz'; ")


def test_presets_build_every_vector_unit():
    for config in PRESETS.values():
        assert config.vector_units == VECTOR_UNITS
        assert all(config.has_unit(unit) for unit in ("maxpool", "lut", "add", "mul", "resize"))
        assert "vector_units" not in config.hardware_dict  # the config ID and design key of every preset as before


def test_vector_units_round_trip_and_shape_the_hardware():
    config = AcceleratorConfig(rows=2, cols=2, vector_units=["lut", "maxpool"])
    assert config.vector_units == ("maxpool", "lut")  # canonical order
    assert not config.has_unit("add")
    assert json.loads(config.to_json())["vector_units"] == ["maxpool", "lut"]
    again = AcceleratorConfig.from_json(config.to_json())
    assert again == config and hash(again) == hash(config)
    assert config.hardware_dict["vector_units"] == ["maxpool", "lut"]
    assert config.hardware_dict != AcceleratorConfig(rows=2, cols=2).hardware_dict
    assert AcceleratorConfig(rows=2, cols=2, vector_units=[]).vector_units == ()


def test_narrow_program_memory_shape_and_pieces():
    from systolix.arch import isa
    from systolix.arch.memory import memory_depths, word_bits

    wide = AcceleratorConfig(rows=1, cols=1, program_memory_depth=12)
    narrow = AcceleratorConfig(rows=1, cols=1, program_memory_depth=12, narrow_program=True)
    assert (word_bits(wide)["prog"], memory_depths(wide)["prog"]) == (isa.INSTRUCTION_BITS, 12)
    assert (word_bits(narrow)["prog"], memory_depths(narrow)["prog"]) == (16, 12 * 16)
    assert "narrow_program" not in wide.hardware_dict and narrow.hardware_dict["narrow_program"] is True
    word = isa.encode(isa.Instruction(isa.Opcode.MATMUL, in_base=0xABCD, x_zp=-1, bcast=1))
    pieces = isa.to_pieces([word, 1])
    assert len(pieces) == 2 * isa.INSTRUCTION_PIECES and pieces[0] == word & 0xFFFF and pieces[16:] == [1] + [0] * 15
    assert isa.from_pieces(pieces) == [word, 1]
    with pytest.raises(SystolixError, match="17 program pieces are not whole instructions of 16"):
        isa.from_pieces(pieces[:17])


def test_spram_buffers_need_a_power_of_two_act_buffer():
    config = AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1 << 15, spram_buffers=True)
    assert config.act_bank_rows == 1 << 14 and config.hardware_dict["spram_buffers"] is True
    assert AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1000).act_bank_rows == 1000
    with pytest.raises(SystolixError, match=r"act_buffer_depth must be a power of two \(two banks\) with "
                                            r"spram_buffers, not 1000"):
        AcceleratorConfig(rows=1, cols=1, act_buffer_depth=1000, spram_buffers=True)
    with pytest.raises(SystolixError, match="spram_buffers must be a bool, not 1"):
        AcceleratorConfig(rows=1, cols=1, spram_buffers=1)
