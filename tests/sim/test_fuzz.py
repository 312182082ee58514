"""The fuzzer in the default suite: a small fixed-seed campaign, reproducibility, and the cases it found.

Long campaigns run in ``benchmarks/fuzz.py``; these seeds keep the generator, the classification and the
fixes for what it found from regressing.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.sim.fuzz import campaign, run_case, save_failure
from systolix.sim.fuzz_models import random_model
from tests.sim.test_verilator_backend import needs_verilator


def test_models_are_reproducible_from_their_seed():
    for seed in (0, 7, 123, 4835):
        a, b = random_model(seed), random_model(seed)
        assert a.model.SerializeToString() == b.model.SerializeToString()
        assert a.layers == b.layers and a.kind == b.kind
    assert random_model(1).model.SerializeToString() != random_model(2).model.SerializeToString()


def test_generator_covers_the_layer_kinds():
    layers = [layer.split(" ")[0] for seed in range(1500) for layer in random_model(seed).layers]
    for kind in ("QLinearConv1d", "QLinearConv2d", "MaxPool", "QLinearAveragePool", "QLinearGlobalAveragePool",
                 "QLinearAdd", "QLinearLeakyRelu", "QLinearSigmoid", "QLinearConcat", "QLinearMatMul", "QGemm",
                 "Conv2d", "BatchNormalization", "Gemm"):
        assert kind in layers, kind


def test_small_golden_campaign_has_no_mismatch_and_no_crash():
    """200 fixed seeds (about 10 s): every case is exact or a clean refusal."""
    counts, failed = campaign(range(1000, 1200), backend="golden")
    assert counts["mismatch"] == 0 and counts["crash"] == 0, [(r.seed, r.detail[-300:]) for r in failed]
    assert counts["exact"] >= 180 and counts["float:exact"] >= 5


@pytest.mark.parametrize("seed", [
    4835,  # QLinearAdd with a constant on a tensor whose last axis is 1: onnxruntime's one-element spans
    5472,  # QLinearAveragePool whose float result exceeds int32: onnxruntime gives INT_MIN, i.e. qmin
    15,    # QLinearConcat with a scale whose dequantized codes overflow float32 (was a NumPy warning)
    710,   # QLinearAveragePool with a huge input scale (was a NumPy warning)
])
def test_cases_the_fuzzer_found_are_exact(seed):
    result, _ = run_case(seed, backend="golden")
    assert result.outcome == "exact", result.detail


def test_onnxruntime_run_time_refusal_is_a_clean_refusal():
    """Seed 1312: onnxruntime refuses QLinearGlobalAveragePool's scales when it runs (was a traceback)."""
    result, _ = run_case(1312, backend="golden")
    assert result.outcome == "refused"
    assert result.detail.startswith("onnxruntime refuses to run the model: ") and "\n" not in result.detail


def test_failure_folder_reproduces_the_case(tmp_path):
    """What save_failure writes runs as a user would run it, with the same result."""
    result, _ = run_case(3, backend="golden")
    assert result.outcome == "exact"
    folder = save_failure(result, tmp_path, backend="golden")
    commands = [line.split() for line in (folder / "repro.sh").read_text().splitlines() if line.startswith("systolix")]
    assert [c[1] for c in commands] == ["quantize", "simulate"]  # seed 3 is a float model
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "systolix.cli", *command[1:]], cwd=folder, capture_output=True,
                              text=True, check=False)
        assert proc.returncode == 0, proc.stderr
    assert "BIT-EXACT" in proc.stdout


@needs_verilator
def test_small_verilator_campaign():
    """Fixed seeds on the RTL (4x4, the cached build): exact or a clean refusal, never a crash."""
    config = AcceleratorConfig.preset("4x4")
    counts, failed = campaign(range(0, 60), backend="verilator", config=config)
    assert counts["mismatch"] == 0 and counts["crash"] == 0, [(r.seed, r.detail[-300:]) for r in failed]
    assert counts["exact"] >= 25


@pytest.mark.parametrize("seed", [632, 1222])
def test_per_channel_prelu_is_exact(seed):
    """Regression: a per-channel PRelu slope made the importer reshape C tables into one (a traceback); then it was
    refused in one line; now it is one table per channel, equal to onnxruntime."""
    result, _ = run_case(seed, backend="golden")
    assert result.outcome == "exact", result.detail
