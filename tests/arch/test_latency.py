"""``arch.latency`` is what the HDL units are built to: every unit's latency property agrees with it."""

from __future__ import annotations

import pytest

from systolix.arch import latency
from systolix.arch.config import AcceleratorConfig
from systolix.hdl.accumulator import Accumulator
from systolix.hdl.add_unit import AddUnit
from systolix.hdl.lookup_unit import LookupUnit
from systolix.hdl.matmul_engine import MatMulEngine
from systolix.hdl.max_pool_unit import MaxPoolUnit
from systolix.hdl.requantizer import Requantizer
from systolix.hdl.sync_reader import SyncReader
from systolix.hdl.systolic_array import MatMulUnit
from systolix.hdl.window_addresser import WindowAddresser


def _unused(*units):
    for unit in units:  # built only to read their properties: never elaborated
        unit._MustUse__silence = True
    return units


@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_units_follow_arch_latency(preset):
    config = AcceleratorConfig.preset(preset)
    unit, engine, window = _unused(MatMulUnit(config), MatMulEngine(config), WindowAddresser(config))
    _unused(unit._array, engine._unit, engine._unit._array)
    assert unit.latency == latency.matmul_unit_latency(config)
    assert unit.drain_cycles == latency.matmul_unit_drain_cycles(config) == config.cols
    assert engine.fixed_cycles == latency.matmul_engine_fixed_cycles(config)
    assert latency.window_setup_cycles(config) == window.SETUP_CYCLES
    accumulator, requantizer, add, lookup, pool, reader = _unused(
        Accumulator(config.cols, config.acc_memory_depth), Requantizer(config.cols), AddUnit(config.rows),
        LookupUnit(config.rows), MaxPoolUnit(config.rows), SyncReader(8, 8))
    assert accumulator.latency == latency.accumulator_latency(config)
    assert requantizer.latency == latency.requantizer_latency(config)
    assert add.latency == latency.add_unit_latency(config)
    assert lookup.latency == latency.lookup_unit_latency(config)
    assert pool.latency == latency.max_pool_unit_latency(config)
    assert reader.latency == latency.sync_reader_latency(config)
    assert latency.latencies(config)["matmul_fixed"] == engine.fixed_cycles
