"""Per-channel tables as a requantized depthwise pass (:mod:`systolix.quantize.table_affine`).

The tables are onnxruntime's own (QLinearAdd / QLinearMul by a per-channel constant, computed at import); a fit
must reproduce every entry of every channel, so the check is the module's own exhaustive one, repeated here
with the integer requantization of :mod:`systolix.quantize.requant`.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.quantize.requant import requantize
from systolix.quantize.table_affine import fit_affine_tables
from tests.sim.channel_const_models import channel_const_model


def _check(layer, fit) -> None:
    x_q, y_q = layer.x_quant, layer.y_quant
    u = np.arange(x_q.qmin, x_q.qmax + 1) - int(x_q.zero_point)
    for c, table in enumerate(layer.tables):
        acc = fit.weight[c].sum() * u + fit.bias[c]
        got = requantize(acc, fit.scale[c], int(y_q.zero_point), y_q.qmin, y_q.qmax, channel_axis=0)
        np.testing.assert_array_equal(got, table.astype(np.int64), err_msg=f"channel {c}")
    assert np.all(np.abs(fit.weight) <= 127)


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_onnxruntime_tables_are_fitted_exactly(tmp_path, dtype: str) -> None:
    taps = {"QLinearAdd": [], "QLinearMul": []}
    for seed in range(8):
        path = tmp_path / f"m{seed}.onnx"
        onnx.save(channel_const_model(dtype=dtype, sample_shape=(16, 2, 2), seed=seed), str(path))
        for layer in import_model(path).ir.layers:
            x_q, y_q = layer.x_quant, layer.y_quant
            fit = fit_affine_tables(layer.tables, int(x_q.zero_point), (x_q.qmin, x_q.qmax), layer.slope,
                                    int(y_q.zero_point), (y_q.qmin, y_q.qmax))
            _check(layer, fit)
            taps[layer.op].append(fit.taps)
    assert set(taps["QLinearMul"]) == {1}  # a product: w = +-1
    assert max(taps["QLinearAdd"]) > 1  # some sums need a finer bias: taps of dilation 0


def test_a_table_that_is_not_monotone_is_refused() -> None:
    tables = np.tile(np.arange(-128, 128), (3, 1))
    tables[2, 100] = 127
    with pytest.raises(SystolixError, match=r"^layer L: the 256-entry table of channel 2 is not monotone, so it "
                                            r"cannot run as a requantized 1x1 depthwise pass"):
        fit_affine_tables(tables, 0, (-128, 127), np.ones(3), 0, (-128, 127), layer="layer L")


def test_constant_and_decreasing_tables() -> None:
    u = np.arange(-128, 128)
    tables = np.stack([np.full(256, 17), np.clip(-u // 2 - 3, -128, 127), np.clip(2 * u + 5, -128, 127)])
    fit = fit_affine_tables(tables, 0, (-128, 127), np.array([0.0, -0.5, 2.0]), 4, (-128, 127))
    for c in range(3):
        got = requantize(fit.weight[c].sum() * u + fit.bias[c], fit.scale[c], 4, -128, 127, channel_axis=0)
        np.testing.assert_array_equal(got, tables[c])
    assert fit.weight[0].sum() == 0 and fit.weight[1].sum() < 0 < fit.weight[2].sum()
