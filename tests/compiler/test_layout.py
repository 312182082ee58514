"""Tensor layout in ``act`` (host write/read) and row allocation.

The reference layout is written out here element by element from ``docs/architecture.md``: row
``base + (cb*H + y)*W + x``, lane ``l`` = channel ``cb*L + l``, lanes past C hold the zero point, uint8
codes stored as ``code - 128``.
"""

from __future__ import annotations

import numpy as np
import pytest

from systolix.compiler.layout import (
    TensorPlacement,
    allocate,
    allocate_banked,
    read_tensor,
    storage_geometry,
    write_tensor,
)
from systolix.errors import SystolixError


def _reference_rows(x: np.ndarray, lanes: int, zp: int, shift: int) -> np.ndarray:
    c, h, w = x.shape
    blocks = -(-c // lanes)
    rows = np.full((blocks * h * w, lanes), zp - shift, dtype=np.int64)
    for ch in range(c):
        for y in range(h):
            for xx in range(w):
                rows[(ch // lanes * h + y) * w + xx, ch % lanes] = int(x[ch, y, xx]) - shift
    return rows


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("lanes", [4, 8])
@pytest.mark.parametrize("shape", [(1, 5, 3, 2), (1, 8, 1, 7), (1, 3, 11), (1, 13)])
def test_write_read(shape: tuple[int, ...], lanes: int, dtype: str) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(np.dtype(dtype))
    x = rng.integers(info.min, info.max + 1, (2, *shape[1:])).astype(dtype)
    zp = int(rng.integers(info.min, info.max + 1))
    c, h, w = storage_geometry(shape, "t")
    p = TensorPlacement("t", 10, c, h, w, -(-c // lanes), lanes, dtype, zp, shape)
    rows = write_tensor(p, x)
    assert rows.shape == (2, p.rows, lanes) and rows.dtype == np.int8
    shift = 128 if dtype == "uint8" else 0
    for n in range(2):
        np.testing.assert_array_equal(rows[n], _reference_rows(x[n].reshape(c, h, w), lanes, zp, shift))
    back = read_tensor(p, rows)
    assert back.shape == x.shape and back.dtype == x.dtype
    np.testing.assert_array_equal(back, x)
    memory = np.zeros((2, 10 + p.rows + 5, lanes), dtype=np.int8)
    memory[:, 10 : 10 + p.rows] = rows
    np.testing.assert_array_equal(read_tensor(p, memory), x)  # whole memory: rows from base


def test_alias_reads_in_onnx_order() -> None:
    x = np.arange(-60, 60, dtype=np.int8).reshape(1, 6, 4, 5)
    stored = TensorPlacement("s", 0, 6, 4, 5, 2, 4, "int8", 0, (1, 6, 4, 5))
    flat = TensorPlacement("f", 0, 6, 4, 5, 2, 4, "int8", 0, (1, 120), "alias of s")
    np.testing.assert_array_equal(read_tensor(flat, write_tensor(stored, x)), x.reshape(1, 120))


def test_write_checks_shape_and_range() -> None:
    p = TensorPlacement("t", 0, 3, 1, 1, 1, 4, "uint8", 0, (1, 3))
    with pytest.raises(SystolixError, match=r"tensor 't': expected shape \[N, 3\], not \[2, 4\]"):
        write_tensor(p, np.zeros((2, 4), np.uint8))
    with pytest.raises(SystolixError, match="tensor 't': codes outside the uint8 range"):
        write_tensor(p, np.array([[-1, 0, 0]]))


def test_allocation_never_overlaps_live_tensors() -> None:
    rng = np.random.default_rng(1)
    for _ in range(50):
        n = int(rng.integers(2, 12))
        sizes = {f"t{i}": int(rng.integers(1, 40)) for i in range(n)}
        live = {}
        for i in range(n):
            first = int(rng.integers(-1, 10))
            live[f"t{i}"] = (first, first + int(rng.integers(0, 5)))
        for keep_all in (False, True):
            alloc = allocate(sizes, live, keep_all)
            names = list(sizes)
            for i, a in enumerate(names):
                assert alloc.bases[a] + sizes[a] <= alloc.rows
                for b in names[i + 1 :]:
                    a0, b0 = alloc.bases[a], alloc.bases[b]
                    rows_overlap = a0 < b0 + sizes[b] and b0 < a0 + sizes[a]
                    time_overlap = not (live[a][1] < live[b][0] or live[b][1] < live[a][0])
                    assert not (rows_overlap and (time_overlap or keep_all)), (a, b)
                    if rows_overlap:  # b was created later and took a's rows: a is no longer intact
                        assert a not in alloc.intact
            if keep_all:
                assert alloc.rows == sum(sizes.values()) and alloc.intact == set(sizes)


def _chain() -> tuple[dict[str, int], dict[str, tuple[int, int]], dict[str, list[str]]]:
    """x -> a -> b -> c, and d = add(b, c) reads both: sizes, live steps, producers' inputs."""
    sizes = {"x": 30, "a": 50, "b": 20, "c": 20, "d": 20}
    live = {"x": (-1, 0), "a": (0, 1), "b": (1, 3), "c": (2, 3), "d": (3, 4)}
    reads = {"a": ["x"], "b": ["a"], "c": ["b"], "d": ["b", "c"]}
    return sizes, live, reads


def test_banked_allocation_puts_each_output_in_the_other_bank() -> None:
    sizes, live, reads = _chain()
    del sizes["d"], live["d"], reads["d"]
    alloc, bank = allocate_banked(sizes, live, reads, bank_rows=64, keep_all=False)
    assert bank == {"x": 0, "a": 1, "b": 0, "c": 1}
    for name, inputs in reads.items():
        for t in inputs:
            assert bank[t] != bank[name]
    for name, b in bank.items():  # each tensor inside its bank
        assert b * 64 <= alloc.bases[name] and alloc.bases[name] + sizes[name] <= (b + 1) * 64
    # Within a bank as `allocate`: b reuses x's rows (x is dead from step 1), c reuses a's (dead from step 2).
    assert alloc.bases == {"x": 0, "b": 0, "a": 64, "c": 64}
    assert alloc.rows == 64 + 50


def test_banked_allocation_refuses_a_layer_reading_both_banks_and_a_full_bank() -> None:
    sizes, live, reads = _chain()
    with pytest.raises(SystolixError, match="the layer writing 'd' reads tensors in both act banks"):
        allocate_banked(sizes, live, reads, bank_rows=64, keep_all=False)
    del sizes["d"], live["d"], reads["d"]
    with pytest.raises(SystolixError, match="act bank 1 needs 50 rows but holds 40"):
        allocate_banked(sizes, live, reads, bank_rows=40, keep_all=False)
