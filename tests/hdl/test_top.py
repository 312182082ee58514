"""The top level as a host drives it: every memory loaded over the load bus, the input through the host
port, the program run straight through and step by step (every layer read back between instructions)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator
from onnx import helper

from systolix.arch.config import AcceleratorConfig
from systolix.arch.memory import LOAD_SELECT, MEMORIES, pack_lanes, unpack_lanes
from systolix.compiler.compile import compile_model
from systolix.compiler.layout import read_tensor, write_tensor
from systolix.frontend.importer import import_model
from systolix.hdl.top import Accelerator
from systolix.quantize.golden_model import run_golden
from tests.compiler.test_networks import _conv, _gemm, _save, quantized_net
from tests.hdl.conftest import run_simulation


def tiny(path) -> tuple[int, ...]:
    """Conv -> Tanh (a lookup table) -> Conv -> residual Add (ADD tables) -> MaxPool -> Flatten -> Gemm:
    every loadable memory in use, few cycles."""
    rng = np.random.default_rng(3)
    nodes, inits = [], []
    for node, weights in (_conv(rng, "c1", "x", 2, 5, [3, 3], pads=[1, 1, 1, 1]),):
        nodes.append(node)
        inits += weights
    nodes.append(helper.make_node("Tanh", ["c1"], ["t1"]))
    node, weights = _conv(rng, "c2", "t1", 5, 5, [3, 3], pads=[1, 0, 1, 2])
    nodes.append(node)
    inits += weights
    nodes += [helper.make_node("Add", ["t1", "c2"], ["a"]),
              helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
              helper.make_node("Flatten", ["p"], ["f"])]
    node, weights = _gemm(rng, "y", "f", 5 * 3 * 3, 3)
    _save(path, "tiny", [*nodes, node], inits + weights, (2, 6, 7), "y", 3)
    return (2, 6, 7)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return import_model(quantized_net(tmp_path_factory.mktemp("top"), tiny, samples=16, seed=2)).ir


def test_loaded_over_the_bus_run_straight_and_step_by_step(model):
    """Weights, parameters, lookup and ADD tables and program written over the load bus (nothing baked
    in); a straight run gives the golden output, a stepped run every layer, with the same cycles per
    instruction."""
    config = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=512, weight_buffer_depth=256,
                               acc_memory_depth=128, param_memory_depth=32, program_memory_depth=16,
                               lut_memory_depth=256, add_table_depth=256)
    program = compile_model(model, config)
    words = program.images.words()
    assert all(words[name] for name in MEMORIES)  # this model uses every loadable memory
    top = Accelerator(config)
    name = model.inputs[0].name
    x = np.random.default_rng(1).integers(-128, 128, (1, *model.inputs[0].shape[1:])).astype(np.int8)
    writes = [(program.tensors[t], value) for t, value in program.device_inputs(program.host_inputs({name: x})).items()]
    produced = {plan.instructions[-1]: plan.output for plan in program.layers
                if plan.instructions and plan.output in program.tensors}
    got: dict[str, dict[str, np.ndarray]] = {"straight": {}, "step": {}}
    cycles: dict[str, dict[int, int]] = {"straight": {}, "step": {}}

    async def read(ctx, tensor):
        p = program.tensors[tensor]
        rows = []
        for i in range(p.rows):  # through the host port: data the cycle after the address
            ctx.set(top.host_addr, p.base + i)
            ctx.set(top.host_re, 1)
            await ctx.tick()
            rows.append(ctx.get(top.host_rdata))
        ctx.set(top.host_re, 0)
        return read_tensor(p, unpack_lanes(rows, config.rows)[None])

    async def testbench(ctx):
        for memory in MEMORIES:
            for addr, word in enumerate(words[memory]):
                ctx.set(top.load_sel, LOAD_SELECT[memory])
                ctx.set(top.load_addr, addr)
                ctx.set(top.load_data, word)
                ctx.set(top.load_we, 1)
                await ctx.tick()
        ctx.set(top.load_we, 0)
        for mode in ("straight", "step"):
            for placement, value in writes:
                for i, word in enumerate(pack_lanes(write_tensor(placement, value)[0])):
                    ctx.set(top.host_addr, placement.base + i)
                    ctx.set(top.host_wdata, word)
                    ctx.set(top.host_we, 1)
                    await ctx.tick()
            ctx.set(top.host_we, 0)
            ctx.set(top.step, mode == "step")
            instruction = 0
            while True:
                ctx.set(top.start, 1)
                await ctx.tick()
                ctx.set(top.start, 0)
                done = False
                while not ctx.get(top.paused) and not done:
                    _, _, done, pc = await ctx.tick().sample(top.done, top.pc)
                    cycles[mode][int(pc)] = cycles[mode].get(int(pc), 0) + 1
                if done:
                    break
                assert mode == "step" and ctx.get(top.busy)
                got[mode][produced[instruction]] = await read(ctx, produced[instruction])
                instruction += 1
            for output in program.outputs:
                got[mode].setdefault(output, await read(ctx, output))

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    run_simulation(sim, "top_loaded", max_cycles=400_000)
    want = run_golden(model, {name: x})
    assert set(got["step"]) == set(produced.values()) and len(got["step"]) >= 6
    for mode in ("straight", "step"):
        for tensor, value in got[mode].items():
            assert value.shape == want[tensor].shape and value.dtype == want[tensor].dtype, tensor
            np.testing.assert_array_equal(value, want[tensor], err_msg=f"{mode}: {tensor}")
    assert cycles["step"] == cycles["straight"]


def test_verilog_depends_on_the_configuration_only(model):
    """Two programs for one configuration, one Verilog: the design has no trace of the model."""
    from amaranth.back import verilog

    config = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=256, weight_buffer_depth=256, acc_memory_depth=64,
                               param_memory_depth=16, program_memory_depth=16, lut_memory_depth=256,
                               add_table_depth=256)
    first = verilog.convert(Accelerator(config), name="accelerator")
    assert first == verilog.convert(Accelerator(config), name="accelerator")
    wider = verilog.convert(Accelerator(AcceleratorConfig(**(config.to_dict() | {"lut_memory_depth": 512}))),
                            name="accelerator")
    assert "reg [7:0] lut0 [255:0]" in first and "reg [7:0] lut0 [511:0]" in wider
    variant = AcceleratorConfig(**(config.to_dict() | {"add_variant": "sse2"}))
    assert verilog.convert(Accelerator(variant), name="accelerator") == first  # tables, not hardware


def test_verilog_text_does_not_depend_on_where_systolix_is_installed():
    """The ``src`` attributes name sources relative to their package, never the checkout or site-packages
    path, so that one configuration gives one ``accelerator.v`` (and one SHA-256) on every machine."""
    from pathlib import Path

    import amaranth

    import systolix.hdl
    from systolix.hdl.export import verilog_for

    config = AcceleratorConfig(rows=2, cols=2, act_buffer_depth=64, weight_buffer_depth=64, acc_memory_depth=16,
                               param_memory_depth=16, program_memory_depth=16, lut_memory_depth=256,
                               add_table_depth=256, add_variant="avx2")
    text = verilog_for(config)
    for root in (Path(systolix.hdl.__file__).resolve().parent, Path(amaranth.__file__).resolve().parent):
        assert str(root) not in text
    assert 'src = "systolix/hdl/pe.py:' in text and 'src = "amaranth/' in text
    assert 'src = "/' not in text and "|/" not in text
