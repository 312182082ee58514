"""Products of two activations on the accelerator's RTL (Verilator), against onnxruntime.

A float network with a squeeze-and-excite block (``x * Sigmoid(Conv(Relu(Conv(GlobalAveragePool(x)))))``,
``[N, C, H, W] * [N, C, 1, 1]``, either operand order), a same-shape product of two branches and a broadcast
Add of a per-channel branch, quantized by onnxruntime's quantizer (through ``systolix.quantize``) in QDQ and
QOperator form, int8 and uint8: every tensor of every sample equal to onnxruntime's, and the cycles of the
MUL and ADD instructions exactly as the compiler predicts.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend import ir as ir_module
from systolix.frontend.importer import import_model
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import quantized_net
from tests.sim.se_models import se_net

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")

DEFAULT = {("qdq", "uint8", True), ("qoperator", "int8", False)}
CASES = [pytest.param(fmt, act, first, id=f"{fmt}-{act}{'-gate-first' if first else ''}",
                      marks=() if (fmt, act, first) in DEFAULT else pytest.mark.slow)
         for fmt in ("qdq", "qoperator") for act in ("uint8", "int8") for first in (False, True)]


@needs_verilator
@pytest.mark.parametrize("fmt,act,gate_first", CASES)
def test_squeeze_excite_bit_exact(tmp_path, fmt, act, gate_first) -> None:
    q = quantized_net(tmp_path, lambda p: se_net(p, channels=6, size=5, gate_first=gate_first),
                      quant_format=fmt, activation_type=act)
    ir = import_model(q).ir
    where = runs_on(ir)
    kinds = [(type(layer).__name__, where[layer.name]) for layer in ir.layers if layer.op in ("QLinearMul",
                                                                                             "QLinearAdd")]
    assert kinds == [("Mul", "vector (mul, per-channel broadcast)"), ("Mul", "vector (mul)"),
                     ("Add", "vector (add, per-channel broadcast)")]
    config = AcceleratorConfig.preset("4x4")
    result = simulate(q, random=8, backend="verilator", layers=True, config=config)
    cmp = result.comparison
    assert cmp.samples == 8 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    ops = {layer.op: layer.elements for layer in cmp.layers}
    assert ops["QLinearMul"] > 0 and ops["QLinearAdd"] > 0
    for layer in result.hardware["hardware_layers"]:
        if layer["op"] in ("QLinearMul", "QLinearAdd"):
            assert layer["cycles"] == layer["predicted_cycles"], layer


def _mul_model(shape_a, shape_b, shape_y, dtype=TensorProto.UINT8) -> onnx.ModelProto:
    inits = [helper.make_tensor(n, TensorProto.FLOAT, [], [s]) for n, s in (("sa", 0.05), ("sb", 0.02), ("sc", 0.04))]
    inits += [helper.make_tensor(n, dtype, [], [z]) for n, z in (("za", 3), ("zb", 0), ("zc", 9))]
    node = helper.make_node("QLinearMul", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"], ["y"],
                            domain="com.microsoft")
    graph = helper.make_graph([node], "m", [helper.make_tensor_value_info("a", dtype, shape_a),
                                            helper.make_tensor_value_info("b", dtype, shape_b)],
                              [helper.make_tensor_value_info("y", dtype, shape_y)], inits)
    opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def test_other_broadcasts_are_refused_at_import(tmp_path) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_mul_model([1, 4, 3, 3], [1, 1, 3, 3], [1, 4, 3, 3]), str(path))
    with pytest.raises(SystolixError, match=r"^node .*\(QLinearMul\): a product of activations of shapes "
                                            r"\[1, 4, 3, 3\] and \[1, 1, 3, 3\] is not supported \(only the same "
                                            r"shape, or one of them \[N, C, 1, 1\] against \[N, C, H, W\]\)$"):
        import_model(path)


def test_two_graph_inputs_multiplied_in_the_functional_model(tmp_path) -> None:
    """Two graph inputs (one per-channel) multiplied: the compiled program's functional model equals
    onnxruntime (every code pair of a random batch)."""
    from systolix.compiler.model import run_program
    from systolix.sim.onnxruntime_runner import run_onnxruntime

    path = tmp_path / "m.onnx"
    onnx.save(_mul_model(["N", 5, 4, 3], ["N", 5, 1, 1], ["N", 5, 4, 3]), str(path))
    imported = import_model(path)
    config = AcceleratorConfig.preset("4x4")
    program = compile_model(imported.ir, config)
    (mul,) = program.instructions[:-1]
    assert (mul.bcast, mul.in_h, mul.in_w, mul.rows) == (1, 4, 3, 2 * 12)
    rng = np.random.default_rng(3)
    feeds = {"a": rng.integers(0, 256, (32, 5, 4, 3)).astype(np.uint8),
             "b": rng.integers(0, 256, (32, 5, 1, 1)).astype(np.uint8)}
    got = run_program(program, config, feeds)["y"]
    want = run_onnxruntime(imported.reference, feeds, ["y"])["y"]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_broadcast_add_needs_the_avx2_kernel(tmp_path) -> None:
    q = quantized_net(tmp_path, se_net, quant_format="qoperator", activation_type="uint8")
    ir = import_model(q).ir
    config = AcceleratorConfig(rows=4, cols=4, add_variant="sse2")
    with pytest.raises(SystolixError, match=r"\(QLinearAdd\): a broadcast Add \(\[1, 6, 5, 5\] \+ \[1, 6, 1, 1\]\) "
                                            r"runs onnxruntime's sse2 scalar-operand kernel, which the ADD unit does "
                                            r"not reproduce \(only avx2's\)"):
        compile_model(ir, config)


FIXTURE = Path(__file__).resolve().parents[1] / "corpus" / "torch_se_small_op13.onnx"


@needs_verilator
@pytest.mark.parametrize("fmt,act", [("qoperator", "int8"), ("qdq", "uint8")])
def test_torch_squeeze_excite_fixture(tmp_path, fmt, act) -> None:
    """torch.onnx.export's SE network (``examples/corpus/torch_export.py``: two SE blocks), quantized by
    ``systolix quantize``: both ``Mul`` layers run on the vector unit, every tensor of 16 samples bit-exact."""
    import warnings

    from systolix.quantize.ptq import QuantizationWarning, quantize_model

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.normal(0, 1, (32, 3, 16, 16)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        quantize_model(FIXTURE, tmp_path / "calib.npz", tmp_path / "q.onnx", quant_format=fmt, activation_type=act)
    ir = import_model(tmp_path / "q.onnx").ir
    where = runs_on(ir)
    muls = [where[layer.name] for layer in ir.layers if isinstance(layer, ir_module.Mul)]
    assert muls == ["vector (mul, per-channel broadcast)"] * 2
    result = simulate(tmp_path / "q.onnx", random=16, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    cmp = result.comparison
    assert cmp.samples == 16 and cmp.mismatches == 0, cmp.first_mismatch
    for layer in result.hardware["hardware_layers"]:
        if layer["op"] == "QLinearMul":
            assert layer["cycles"] == layer["predicted_cycles"], layer
