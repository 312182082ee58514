"""The top level with ``loadable=True``: weights, parameters and program loaded over the bus, then run."""

from __future__ import annotations

import dataclasses

import numpy as np
from amaranth.sim import Simulator
from onnx import helper, numpy_helper

from systolix.compiler.compile import compile_model
from systolix.compiler.layout import read_tensor, write_tensor
from systolix.frontend.importer import import_model
from systolix.hdl.config import AcceleratorConfig
from systolix.hdl.top import LOAD_PRM, LOAD_PROG, LOAD_WGT, Accelerator
from systolix.quantize.golden_model import run_golden
from systolix.quantize.ptq import quantize_model
from systolix.sim.amaranth_backend import _pack_rows, _unpack_rows
from tests.hdl.conftest import run_simulation


def _model(tmp_path):
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.normal(0, 0.4, (6, 2, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.1, 6).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (6 * 3 * 3, 5)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("MatMul", ["f", "w2"], ["y"], name="fc")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", 1, ["N", 2, 6, 7])],
                              [helper.make_tensor_value_info("y", 1, ["N", 5])], inits)
    path = tmp_path / "f.onnx"
    path.write_bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                                       ir_version=8).SerializeToString())
    np.savez(tmp_path / "c.npz", x=rng.normal(0, 1, (16, 2, 6, 7)).astype(np.float32))
    quantize_model(path, tmp_path / "c.npz", tmp_path / "q.onnx")
    return import_model(tmp_path / "q.onnx").ir


def test_program_and_weights_loaded_over_the_bus(tmp_path):
    ir = _model(tmp_path)
    config = AcceleratorConfig(rows=4, cols=4, act_buffer_depth=512, weight_buffer_depth=512, acc_memory_depth=64,
                               param_memory_depth=32, program_memory_depth=16)
    program = compile_model(ir, config)
    img = program.images
    blank = dataclasses.replace(img, wgt=np.zeros_like(img.wgt), prm=[], prog=[])
    top = Accelerator(config, blank, loadable=True)
    name = ir.inputs[0].name
    x = np.random.default_rng(1).integers(-128, 128, (1, *ir.inputs[0].shape[1:])).astype(np.int8)
    # What the host writes: the input, or the tensors it forms from it (im2col of the first conv).
    writes = [(program.tensors[t], value) for t, value in program.device_inputs(program.host_inputs({name: x})).items()]
    out_name = ir.outputs[0].name
    got = {}

    async def testbench(ctx):
        loads = [(LOAD_WGT, _pack_rows(img.wgt[: int(np.flatnonzero(img.wgt.any(1))[-1]) + 1])),
                 (LOAD_PRM, list(img.prm)), (LOAD_PROG, list(img.prog))]
        for sel, words in loads:
            for addr, word in enumerate(words):
                ctx.set(top.load_sel, sel)
                ctx.set(top.load_addr, addr)
                ctx.set(top.load_data, word)
                ctx.set(top.load_we, 1)
                await ctx.tick()
        ctx.set(top.load_we, 0)
        for placement, value in writes:
            for i, word in enumerate(_pack_rows(write_tensor(placement, value)[0])):  # through the host port
                ctx.set(top.host_addr, placement.base + i)
                ctx.set(top.host_wdata, word)
                ctx.set(top.host_we, 1)
                await ctx.tick()
        ctx.set(top.host_we, 0)
        ctx.set(top.start, 1)
        await ctx.tick()
        ctx.set(top.start, 0)
        await ctx.tick().until(top.done)
        p = program.tensors[out_name]
        words = []
        for i in range(p.rows):  # output through the host port: data the cycle after the address
            ctx.set(top.host_addr, p.base + i)
            ctx.set(top.host_re, 1)
            await ctx.tick()
            words.append(ctx.get(top.host_rdata))
        ctx.set(top.host_re, 0)
        full = np.zeros((p.base + p.rows, config.rows), np.int8)
        full[p.base:] = _unpack_rows(words, config.rows)
        got["y"] = read_tensor(p, full[None])

    sim = Simulator(top)
    sim.add_clock(1e-8)
    sim.add_testbench(testbench)
    run_simulation(sim, "top_loadable", max_cycles=200_000)
    want = run_golden(ir, {name: x})[out_name]
    assert got["y"].shape == want.shape and got["y"].dtype == want.dtype
    np.testing.assert_array_equal(got["y"], want)
