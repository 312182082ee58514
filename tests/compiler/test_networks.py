"""Compiled programs of small generated networks, run by the functional model, against the golden model.

Each network is built with ``onnx.helper``, quantized with ``systolix.quantize.ptq.quantize_model``
(int8 and uint8 activations) and imported; together they cover every layer kind the compiler lowers:
convolution with strides 1 to 3, asymmetric padding, dilation 2, groups 2 and 3, depthwise, 1D, dense
(after a spatial and a 1D flatten), global average pool, max pool with padding, tanh and sigmoid tables,
residual add. The reference is :func:`systolix.quantize.golden_model.run_golden` (itself checked
against onnxruntime in ``tests/quantize``); every tensor must be equal, element for element.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.arch import isa, latency
from systolix.arch.config import PRESETS
from systolix.compiler.compile import compile_model
from systolix.compiler.model import run_program
from systolix.frontend import ir
from systolix.frontend.importer import import_model
from systolix.quantize.golden_model import run_golden
from systolix.quantize.ptq import QuantizationWarning, quantize_model

PRESET_NAMES = ("4x4", "8x8", "16x16")


def _conv(rng: np.random.Generator, name: str, x: str, cin: int, cout: int, kernel: list[int], group: int = 1,
          **attrs) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    w = rng.normal(0, 0.4, (cout, cin // group, *kernel)).astype(np.float32)
    b = rng.normal(0, 0.1, cout).astype(np.float32)
    inits = [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    node = helper.make_node("Conv", [x, f"{name}_w", f"{name}_b"], [name], group=group, kernel_shape=kernel, **attrs)
    return node, inits


def _gemm(rng: np.random.Generator, name: str, x: str, k: int, m: int) -> tuple[onnx.NodeProto, list]:
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (m, k)).astype(np.float32), f"{name}_w"),
             numpy_helper.from_array(rng.normal(0, 0.1, m).astype(np.float32), f"{name}_b")]
    return helper.make_node("Gemm", [x, f"{name}_w", f"{name}_b"], [name], transB=1), inits


def quantized_net(folder: Path, make, *, samples: int = 32, seed: int = 3, **options) -> Path:
    """``make(folder / "float.onnx")`` quantized with ``samples`` random calibration samples into ``folder / "q.onnx"``
    (``options`` go to ``quantize_model``)."""
    shape = make(folder / "float.onnx")
    np.savez(folder / "calib.npz", x=np.random.default_rng(seed).normal(0, 1, (samples, *shape)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        quantize_model(folder / "float.onnx", folder / "calib.npz", folder / "q.onnx", **options)
    return folder / "q.onnx"


def _save(path: Path, name: str, nodes: list, inits: list, in_shape: tuple[int, ...], out: str, out_len: int) -> None:
    graph = helper.make_graph(nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", out_len])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def net2d(path: Path) -> tuple[int, ...]:
    """Conv (asymmetric pads) -> Relu -> Conv (dilation 2) -> residual Add -> Tanh -> MaxPool (padded, stride 2)
    -> grouped Conv (stride 2) -> depthwise Conv (stride 3) -> 1x1 Conv -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []

    def add(pair: tuple) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    add(_conv(rng, "c1", "x", 3, 8, [3, 3], pads=[0, 1, 1, 2]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    add(_conv(rng, "c2", "r1", 8, 8, [3, 3], pads=[2, 2, 2, 2], dilations=[2, 2]))
    nodes.append(helper.make_node("Add", ["r1", "c2"], ["a1"]))
    nodes.append(helper.make_node("Tanh", ["a1"], ["t1"]))
    nodes.append(helper.make_node("MaxPool", ["t1"], ["p1"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    add(_conv(rng, "c3", "p1", 8, 10, [3, 3], group=2, strides=[2, 2], pads=[1, 0, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c3"], ["r3"]))
    add(_conv(rng, "c4", "r3", 10, 10, [3, 3], group=10, strides=[3, 3], pads=[1, 1, 1, 1]))
    nodes.append(helper.make_node("Relu", ["c4"], ["r4"]))
    add(_conv(rng, "c5", "r4", 10, 12, [1, 1]))
    nodes.append(helper.make_node("GlobalAveragePool", ["c5"], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
    add(_gemm(rng, "y", "f", 12, 7))
    _save(path, "net2d", nodes, inits, (3, 17, 15), "y", 7)
    return (3, 17, 15)


def net1d(path: Path) -> tuple[int, ...]:
    """Conv1d (stride 2, asymmetric pads) -> Relu -> grouped Conv1d (3 groups, dilation 2) -> Sigmoid ->
    MaxPool1d (end padding) -> Flatten (6 channels x 10) -> Gemm -> Relu -> MatMul."""
    rng = np.random.default_rng(1)
    nodes, inits = [], []

    def add(pair: tuple) -> None:
        nodes.append(pair[0])
        inits.extend(pair[1])

    add(_conv(rng, "c1", "x", 5, 6, [5], strides=[2], pads=[2, 1]))
    nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    add(_conv(rng, "c2", "r1", 6, 6, [3], group=3, dilations=[2], pads=[2, 2]))
    nodes.append(helper.make_node("Sigmoid", ["c2"], ["s2"]))
    nodes.append(helper.make_node("MaxPool", ["s2"], ["p2"], kernel_shape=[2], strides=[2], pads=[0, 1]))
    nodes.append(helper.make_node("Flatten", ["p2"], ["f"]))
    add(_gemm(rng, "h", "f", 60, 9))
    nodes.append(helper.make_node("Relu", ["h"], ["hr"]))
    inits.append(numpy_helper.from_array(rng.normal(0, 0.3, (9, 4)).astype(np.float32), "w2"))
    nodes.append(helper.make_node("MatMul", ["hr", "w2"], ["y"]))
    _save(path, "net1d", nodes, inits, (5, 40), "y", 4)
    return (5, 40)


@pytest.fixture(scope="module", params=[(net2d, "int8"), (net2d, "uint8"), (net1d, "int8"), (net1d, "uint8")],
                ids=lambda p: f"{p[0].__name__}-{p[1]}")
def network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    build, act = request.param
    d = tmp_path_factory.mktemp(f"{build.__name__}_{act}")
    shape = build(d / "float.onnx")
    np.savez(d / "calib.npz", x=np.random.default_rng(2).normal(0, 1, (32, *shape)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)  # uint8 activations: a note about other CPUs
        quantize_model(d / "float.onnx", d / "calib.npz", d / "int.onnx", activation_type=act)
    model = import_model(d / "int.onnx").ir
    assert model.inputs[0].dtype == act
    return model


def _samples(model: ir.Model, n: int, seed: int) -> dict[str, np.ndarray]:
    info = model.inputs[0]
    dtype = np.dtype(info.dtype)
    lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
    return {info.name: np.random.default_rng(seed).integers(lo, hi + 1, (n, *info.shape[1:])).astype(dtype)}


def _assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray], names) -> None:
    for name in names:
        assert name in got, name
        assert got[name].shape == want[name].shape, name
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_every_tensor_bit_exact(network: ir.Model, preset: str) -> None:
    config = dataclasses.replace(PRESETS[preset], act_buffer_depth=8192)
    inputs = _samples(network, 12, seed=3)
    golden = run_golden(network, inputs)
    program = compile_model(network, config, keep_all=True)
    got = run_program(program, config, inputs)
    assert set(golden) <= set(got)
    _assert_same(got, golden, golden)
    # Every layer kind of the network ran as an instruction (reshapes are aliases).
    ran = {network.layers[i.layer].kind for i in program.instructions if i.opcode != isa.Opcode.HALT}
    assert ran == {layer.kind for layer in network.layers} - {"reshape"}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_reuse_keeps_outputs_exact_and_uses_fewer_rows(network: ir.Model, preset: str) -> None:
    config = dataclasses.replace(PRESETS[preset], act_buffer_depth=8192)
    inputs = _samples(network, 6, seed=4)
    golden = run_golden(network, inputs)
    program = compile_model(network, config)
    got = run_program(program, config, inputs)
    outputs = [t.name for t in network.outputs]
    assert set(outputs) <= set(got)
    _assert_same(got, golden, got)  # whatever is still readable is right, outputs included
    assert program.act_rows == program.act_rows_reuse < program.act_rows_keep_all
    assert not program.keep_all


def test_program_words_decode_to_the_instructions(network: ir.Model) -> None:
    config = dataclasses.replace(PRESETS["8x8"], act_buffer_depth=8192)
    program = compile_model(network, config)
    assert [isa.decode(w) for w in program.images.prog] == program.instructions
    assert program.instructions[-1].opcode == isa.Opcode.HALT
    assert all(w < 1 << isa.INSTRUCTION_BITS for w in program.images.prog)
    report = json.loads(json.dumps(program.to_json()))  # JSON types only
    assert [p["name"] for p in report["layers"]] == [layer.name for layer in network.layers]
    halt = latency.controller_halt_cycles(config)
    assert report["predicted_cycles"] == sum(p["cycles"] for p in report["layers"]) + halt
