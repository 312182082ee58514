"""``systolix compile --device``: the largest array whose logic fits the FPGA, memories sized to the model."""

from __future__ import annotations

import dataclasses

import pytest

from systolix.cli import main
from systolix.compiler import device_fit
from systolix.compiler.compile import compile_model
from systolix.compiler.device_fit import config_for_device
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.hdl.devices import DEVICES, block_rams, estimate
from tests.conftest import REPO

MODEL = REPO / "tests" / "corpus" / "tf_keras_cnn_tflite_int8.onnx"


@pytest.fixture(scope="module")
def model():
    return import_model(MODEL).ir


@pytest.mark.parametrize(("device", "lanes"), [("ecp5-85f", 8), ("ecp5-25f", 2)])
def test_largest_array_that_fits_and_memories_sized_to_the_model(model, device: str, lanes: int) -> None:
    config = config_for_device(model, device, add_variant="avx2")
    assert config.rows == config.cols == lanes
    need = estimate(config, device)
    for resource in ("BRAM", "DSP", "LUT4", "FF", "IO"):
        assert need[resource] <= DEVICES[device].budget(resource), resource
    program = compile_model(model, config)  # compiles with exactly the rows it needs
    use = program.to_json()["memory_use"]
    assert (config.act_buffer_depth, config.weight_buffer_depth, config.param_memory_depth,
            config.program_memory_depth) == (use["act_rows"], use["wgt_rows"], use["prm_rows"], use["instructions"])
    bigger = dataclasses.replace(config, rows=2 * lanes, cols=2 * lanes)
    assert any(estimate(bigger, device)[r] > DEVICES[device].budget(r) for r in ("DSP", "LUT4", "FF"))


def test_no_array_fits_the_up5k(model) -> None:
    with pytest.raises(SystolixError, match=r"^no accelerator fits up5k \(iCE40UP5K\): even the 2x2 array's logic does "
                                            r"not: DSP needs about 26 SB_MAC16, the device has 8; LUT4 needs about"):
        config_for_device(model, "up5k")


def test_memories_beyond_the_block_rams(model, monkeypatch) -> None:
    """A device with fewer block RAMs than the model's memories need: the array, each memory's block RAMs, the
    layer with the largest tensor and the budget."""
    small = dataclasses.replace(DEVICES["ecp5-25f"], bram_blocks=12)
    monkeypatch.setattr(device_fit, "get_device", lambda name: small)
    with pytest.raises(SystolixError) as info:
        config_for_device(model, "ecp5-25f")
    message = str(info.value)
    assert message.startswith("the model does not fit ecp5-25f (LFE5U-25F): on the 2x2 array its memories need ")
    assert "block RAMs, the device has 12: act " in message and "largest tensor layer " in message
    total = int(message.split("memories need ")[1].split()[0].replace(",", ""))
    assert total > 12


def test_accumulator_memory_shrinks_before_refusing(model, monkeypatch) -> None:
    """Just too few block RAMs for the presets' 2,048 accumulator rows: a smaller accumulator memory fits."""
    roomy = config_for_device(model, "ecp5-25f")
    blocks = block_rams(roomy, "ecp5-25f")
    assert roomy.acc_memory_depth == 2048
    tight = dataclasses.replace(DEVICES["ecp5-25f"], bram_blocks=sum(blocks.values()) - 1)
    monkeypatch.setattr(device_fit, "get_device", lambda name: tight)
    config = config_for_device(model, "ecp5-25f")
    assert config.rows == 2 and config.acc_memory_depth < 2048


def test_cli_device_refusals(capsys, tmp_path) -> None:
    code = main(["compile", str(MODEL), "--device", "up5k", "-o", str(tmp_path / "b")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("systolix: error: no accelerator fits up5k")
    code = main(["compile", str(MODEL), "--device", "ecp5-25f", "--array", "4x4", "-o", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == ("systolix: error: --device sizes the configuration to the FPGA: it cannot be "
                                 "combined with --array or --config")
    code = main(["compile", str(MODEL), "--device", "ecp5-12f", "-o", str(tmp_path / "d")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("systolix: error: unknown device 'ecp5-12f'")
    assert not (tmp_path / "b").exists() and not (tmp_path / "d").exists()
