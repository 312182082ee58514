"""sim.compare: element counts, the first mismatch, and the map of where the first mismatching tensor differs."""

from __future__ import annotations

import json

import numpy as np

from systolix.sim.compare import MAP_COLUMNS, MAP_ROWS, Comparison, compare_tensors


def test_equal_tensors_have_no_mismatch_and_no_map():
    comparison = Comparison(samples=2)
    x = np.arange(2 * 3 * 4, dtype=np.int8).reshape(2, 3, 4)
    compare_tensors(comparison, "a", "Relu", "t", x.copy(), x)
    assert comparison.bit_exact and comparison.first_mismatch is None and comparison.mismatch_map is None
    assert comparison.to_json()["mismatch_map"] is None


def test_map_of_a_small_tensor_is_one_cell_per_element():
    reference = np.zeros((3, 4, 5, 6), dtype=np.int8)
    backend = reference.copy()
    changed = [(1, 2, 3, 4), (1, 0, 0, 0), (2, 2, 3, 4), (2, 3, 4, 5)]
    for index in changed:
        backend[index] = 7
    comparison = Comparison(samples=3)
    compare_tensors(comparison, "ok", "Relu", "t0", reference.copy(), reference)
    compare_tensors(comparison, "conv", "QLinearConv", "t1", backend, reference)
    compare_tensors(comparison, "later", "Relu", "t2", backend, reference)  # the map stays the first tensor's
    mm = comparison.mismatch_map
    assert (mm.layer, mm.op, mm.tensor, mm.sample, mm.shape) == ("conv", "QLinearConv", "t1", 1, (4, 5, 6))
    assert (mm.channels_per_row, mm.positions_per_column) == (1, 1)
    first, every = np.zeros((4, 30), dtype=np.int64), np.zeros((4, 30), dtype=np.int64)
    for n, c, h, w in changed:
        every[c, h * 6 + w] += 1
        if n == 1:
            first[c, h * 6 + w] += 1
    np.testing.assert_array_equal(mm.first_sample, first)
    np.testing.assert_array_equal(mm.all_samples, every)
    assert comparison.mismatches == 8 and comparison.first_mismatch.layer == "conv"
    data = json.loads(json.dumps(comparison.to_json()))["mismatch_map"]
    assert data["first_sample"] == first.tolist() and data["all_samples"] == every.tolist()
    assert data["shape"] == [4, 5, 6] and data["sample"] == 1


def test_map_of_a_large_tensor_is_binned():
    """130 channels x 1,000 positions: bins of 3 channels (44 rows, the last one short) and 4 positions."""
    reference = np.zeros((2, 130, 10, 100), dtype=np.int8)
    backend = reference.copy()
    rng = np.random.default_rng(0)
    flat = rng.choice(reference.size, size=500, replace=False)
    backend.reshape(-1)[flat] = 1
    comparison = Comparison(samples=2)
    compare_tensors(comparison, "big", "QLinearConv", "t", backend, reference)
    mm = comparison.mismatch_map
    assert (mm.channels_per_row, mm.positions_per_column) == (3, 4)
    assert mm.first_sample.shape == mm.all_samples.shape == (44, 250)
    assert mm.first_sample.shape[0] <= MAP_ROWS and mm.first_sample.shape[1] <= MAP_COLUMNS
    expected_all = np.zeros((44, 250), dtype=np.int64)
    expected_first = np.zeros((44, 250), dtype=np.int64)
    first_sample = int(np.unravel_index(flat.min(), reference.shape)[0])
    for i in flat:
        n, c, h, w = np.unravel_index(i, reference.shape)
        expected_all[c // 3, (h * 100 + w) // 4] += 1
        if n == first_sample:
            expected_first[c // 3, (h * 100 + w) // 4] += 1
    assert mm.sample == first_sample
    np.testing.assert_array_equal(mm.all_samples, expected_all)
    np.testing.assert_array_equal(mm.first_sample, expected_first)
    assert int(mm.all_samples.sum()) == 500 == comparison.mismatches


def test_vectors_are_one_channel_and_a_missing_tensor_has_no_map():
    reference = np.zeros((2, 10), dtype=np.int8)
    backend = reference.copy()
    backend[1, 7] = -1
    comparison = Comparison(samples=2)
    compare_tensors(comparison, "fc", "QGemm", "y", backend, reference)
    mm = comparison.mismatch_map
    assert (mm.sample, mm.shape) == (1, (10,))
    np.testing.assert_array_equal(mm.first_sample, np.eye(1, 10, 7, dtype=np.int64))

    comparison = Comparison(samples=2)
    compare_tensors(comparison, "fc", "QGemm", "y", None, reference)
    assert comparison.mismatches == 20 and comparison.first_mismatch.note.startswith("backend gave missing")
    assert comparison.mismatch_map is None
