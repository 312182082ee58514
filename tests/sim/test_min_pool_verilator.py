"""Min pooling as exporters write it (``-maxpool(-x)``: Neg -> MaxPool -> Neg) on the accelerator's RTL.

In integer form the two Negs are onnxruntime's own 256-entry tables ``T1`` and ``T2`` (DQ -> Neg -> Q, computed by
onnxruntime) and the MaxPool an integer max, so the layer is ``T2(max(T1(x)))`` on codes -- what onnxruntime
runs -- computed as LUT, MAXPOOL, LUT. ``T1`` is non-increasing (a negation requantized), so this also equals
``T2(T1(min(x)))``: a min pool of the codes followed by one table. Checked against onnxruntime on Verilator for
QDQ and QOperator, int8 and uint8, and the table identity on every code.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.where import runs_on
from systolix.frontend.importer import import_model
from systolix.frontend.ir import Lookup, MaxPool
from systolix.quantize.golden.max_pool import max_pool
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import quantized_net
from tests.sim.pool_models import min_pool_net

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")
CASES = [pytest.param(fmt, act, id=f"{fmt}-{act}", marks=() if (fmt, act) in {("qdq", "int8"), ("qoperator", "uint8")}
                      else pytest.mark.slow)
         for fmt in ("qdq", "qoperator") for act in ("int8", "uint8")]


@needs_verilator
@pytest.mark.parametrize("fmt,act", CASES)
def test_min_pool_bit_exact(tmp_path, fmt, act) -> None:
    q = quantized_net(tmp_path, min_pool_net, quant_format=fmt, activation_type=act)
    ir = import_model(q).ir
    where = runs_on(ir)
    kinds = [(type(layer).__name__, where[layer.name]) for layer in ir.layers[1:4]]
    assert kinds == [("Lookup", "vector (table)"), ("MaxPool", "vector (max)"), ("Lookup", "vector (table)")]
    t1, pool, t2 = ir.layers[1:4]
    assert isinstance(t1, Lookup) and isinstance(pool, MaxPool) and isinstance(t2, Lookup)
    table1 = np.asarray(t1.table).astype(np.int64)
    assert np.all(np.diff(table1) <= 0)  # a negation: non-increasing over the codes
    # T2(max(T1(x))) == T2(T1(min(x))) on random codes
    info = np.iinfo(t1.x_quant.np_dtype)
    x = np.random.default_rng(0).integers(info.min, info.max + 1, (4, 5, 6, 6))
    via_max = max_pool(table1[x - info.min], kernel=[2, 2], strides=[2, 2])
    via_min = table1[-max_pool(-x, kernel=[2, 2], strides=[2, 2]) - info.min]
    np.testing.assert_array_equal(via_max, via_min)
    result = simulate(q, random=8, backend="verilator", layers=True, config=AcceleratorConfig.preset("4x4"))
    cmp = result.comparison
    assert cmp.samples == 8 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    assert {"Neg", "MaxPool"} <= {layer.op for layer in cmp.layers}
