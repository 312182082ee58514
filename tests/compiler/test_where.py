"""``inspect``'s "runs on" column and ``compile`` agree: what it shows on the accelerator compiles, what it
refuses ``compile`` refuses with the same reason."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from systolix.arch import isa
from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend import ir as ir_module
from systolix.frontend.importer import import_model
from tests.compiler.test_networks import _conv, _save, net1d, net2d, quantized_net

BIG = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=16384, weight_buffer_depth=16384, param_memory_depth=1024,
                        program_memory_depth=256, acc_memory_depth=1024)


def _quantized(tmp_path, build):
    return import_model(quantized_net(tmp_path, build, samples=16, seed=0)).ir


@pytest.mark.parametrize("build", [net1d, net2d])
def test_accelerator_layers_compile(tmp_path, build):
    ir = _quantized(tmp_path, build)
    where = runs_on(ir)
    assert set(where) == {layer.name for layer in ir.layers}
    assert not [w for w in where.values() if w.startswith("refused")]
    assert {"array", "vector (max)", "vector (table)"} <= set(where.values())
    program = compile_model(ir, BIG)
    assert len(program.instructions) > 3


def _concat_net(path):
    rng = np.random.default_rng(4)
    nodes, inits = [], []
    for name in ("a", "b"):
        node, weights = _conv(rng, name, "x", 3, 4, [3, 3], pads=[1, 1, 1, 1])
        nodes.append(node)
        inits += weights
    nodes += [helper.make_node("Concat", ["a", "b"], ["c"], axis=2), helper.make_node("Relu", ["c"], ["r"]),
              helper.make_node("Transpose", ["r"], ["t"], perm=[0, 2, 3, 1])]  # NCHW -> NHWC: refused
    node, weights = _conv(rng, "d", "t", 12, 4, [1, 1])
    nodes.append(node)
    inits += weights
    nodes += [helper.make_node("GlobalAveragePool", ["d"], ["g"]), helper.make_node("Flatten", ["g"], ["y"])]
    _save(path, "concat", nodes, inits, (3, 6, 6), "y", 4)
    return (3, 6, 6)


def test_refused_layer_is_refused_by_compile_with_the_same_reason(tmp_path):
    ir = _quantized(tmp_path, _concat_net)
    where = runs_on(ir)
    refused = {name: w for name, w in where.items() if w.startswith("refused: ")}
    assert len(refused) == 1
    ((name, why),) = refused.items()
    layer = next(layer for layer in ir.layers if layer.name == name)
    with pytest.raises(SystolixError) as error:
        compile_model(ir, BIG)
    assert str(error.value) == f"layer {name} ({layer.op}): {why.removeprefix('refused: ')}"


def test_float_activations_shown_as_tables(tmp_path):
    net2d(tmp_path / "f.onnx")
    where = runs_on(import_model(tmp_path / "f.onnx").ir)
    assert "vector (table, once quantized)" in where.values()


def test_absent_vector_unit_refused_by_inspect_and_compile(tmp_path):
    """A configuration without the ADD unit: ``runs_on`` and ``compile`` refuse the model's Add, and only it."""
    ir = _quantized(tmp_path, net2d)
    no_add = AcceleratorConfig(**{**BIG.to_dict(), "vector_units": ["maxpool", "lut", "mul", "resize"]})
    where = runs_on(ir, no_add)
    refused = {name: w for name, w in where.items() if w.startswith("refused: ")}
    adds = [layer for layer in ir.layers if isinstance(layer, ir_module.Add)]
    assert len(adds) == 1 and set(refused) == {adds[0].name}
    assert refused[adds[0].name] == "refused: this configuration has no ADD unit"
    assert runs_on(ir, BIG) == runs_on(ir)  # every unit: the same as without a configuration
    with pytest.raises(SystolixError) as error:
        compile_model(ir, no_add)
    assert str(error.value).startswith(f"layer {adds[0].name} ({adds[0].op}): this configuration has no ADD unit")
    assert "use --array 8x8" in str(error.value)


def test_model_without_the_left_out_units_compiles_to_the_same_program(tmp_path):
    """Leaving out units a model does not use changes nothing the compiler writes."""
    ir = _quantized(tmp_path, net1d)
    assert {"vector (max)", "vector (table)"} <= set(runs_on(ir).values())
    small = AcceleratorConfig(**{**BIG.to_dict(), "vector_units": ["lut", "maxpool"]})
    assert runs_on(ir, small) == runs_on(ir)
    assert compile_model(ir, small).instructions == compile_model(ir, BIG).instructions


def test_spram_buffers_place_every_output_in_the_other_bank_than_its_inputs(tmp_path):
    """With two act banks (spram_buffers) no instruction reads and writes one bank; the program is otherwise the
    same (same opcodes and geometry)."""
    ir = _quantized(tmp_path, net1d)
    banked = AcceleratorConfig(**{**BIG.to_dict(), "spram_buffers": True})
    half = banked.act_buffer_depth // 2
    program = compile_model(ir, banked)
    plain = compile_model(ir, BIG)
    work = [i for i in program.instructions if i.opcode != isa.Opcode.HALT]
    assert work
    for instr in work:
        reads = {instr.in_base // half} | ({instr.in2_base // half} if instr.opcode == isa.Opcode.ADD else set())
        assert instr.out_base // half not in reads, instr
    strip = ("in_base", "in2_base", "out_base")
    assert [{k: v for k, v in vars(i).items() if k not in strip} for i in program.instructions] == \
        [{k: v for k, v in vars(i).items() if k not in strip} for i in plain.instructions]
