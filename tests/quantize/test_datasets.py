"""systolix.quantize.datasets: loading and validating user input files."""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from systolix.errors import SystolixError
from systolix.quantize.datasets import format_shape, load_inputs

SHAPE = (None, 1, 4, 4)


def _x(n: int = 3, dtype=np.float32) -> np.ndarray:
    return np.arange(n * 16, dtype=np.float64).reshape(n, 1, 4, 4).astype(dtype)


def test_npz_prefers_input_name_then_x_and_reads_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=_x(2) + 100, inp=_x(3), y=np.array([1, 2, 3], dtype=np.uint8))
    x, y = load_inputs(p, "inp", SHAPE, np.float32)
    assert x.shape == (3, 1, 4, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x, _x(3))
    assert y is not None and y.dtype == np.int64
    np.testing.assert_array_equal(y, [1, 2, 3])
    np.savez(p, x=_x(2) + 100, inp2=_x(3))
    x2, y2 = load_inputs(p, "other", SHAPE, np.float32)
    np.testing.assert_array_equal(x2, _x(2) + 100)
    assert y2 is None


def test_npz_single_array_any_name_and_npy(tmp_path: Path) -> None:
    np.savez(tmp_path / "a.npz", images=_x(2))
    x, y = load_inputs(tmp_path / "a.npz", "inp", SHAPE, np.float32)
    assert x.shape == (2, 1, 4, 4) and y is None
    np.save(tmp_path / "b.npy", _x(5))
    x, y = load_inputs(tmp_path / "b.npy", "inp", SHAPE, np.float32)
    assert x.shape == (5, 1, 4, 4) and y is None


def test_single_sample_without_batch_dim(tmp_path: Path) -> None:
    np.savez(tmp_path / "s.npz", x=_x(1)[0], y=np.array(7))
    x, y = load_inputs(tmp_path / "s.npz", "inp", SHAPE, np.float32)
    assert x.shape == (1, 1, 4, 4)
    np.testing.assert_array_equal(x[0], _x(1)[0])
    assert y is not None
    np.testing.assert_array_equal(y, [7])


def test_fixed_batch(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", _x(6))
    x, _ = load_inputs(tmp_path / "f.npy", "inp", (1, 1, 4, 4), np.float32)
    assert x.shape == (6, 1, 4, 4)
    x, _ = load_inputs(tmp_path / "f.npy", "inp", (3, 1, 4, 4), np.float32)
    assert x.shape == (6, 1, 4, 4)
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "f.npy", "inp", (4, 1, 4, 4), np.float32)
    assert str(e.value) == (
        "f.npy: the array has 6 samples; the model's input 'inp' takes a fixed batch of 4, "
        "so the count must be a multiple of 4"
    )


def test_float64_exact_is_accepted_inexact_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "ok.npz", x=_x(2, np.float64) / 4)
    x, _ = load_inputs(tmp_path / "ok.npz", "inp", SHAPE, np.float32)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, _x(2) / np.float32(4))
    bad = _x(2, np.float64)
    bad[1, 0, 2, 3] = 0.1
    np.savez(tmp_path / "bad.npz", x=bad)
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "bad.npz", "inp", SHAPE, np.float32)
    assert str(e.value) == (
        "bad.npz: array 'x' is float64 and 0.1 at index (1, 0, 2, 3) is not exactly representable in "
        "float32, the model's input type; use x.astype(np.float32) if rounding is intended"
    )


def test_float16_widens(tmp_path: Path) -> None:
    np.save(tmp_path / "h.npy", _x(2, np.float16))
    x, _ = load_inputs(tmp_path / "h.npy", "inp", SHAPE, np.float32)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, _x(2))


def test_integer_model(tmp_path: Path) -> None:
    np.save(tmp_path / "i.npy", np.array([[-3, 5]], dtype=np.int64))
    x, _ = load_inputs(tmp_path / "i.npy", "q", (None, 2), np.int8)
    assert x.dtype == np.int8
    np.testing.assert_array_equal(x, [[-3, 5]])
    np.save(tmp_path / "big.npy", np.array([[-3, 500]], dtype=np.int64))
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "big.npy", "q", (None, 2), np.int8)
    assert str(e.value) == (
        "big.npy: the array is int64 with values in [-3, 500], outside the int8 range [-128, 127] "
        "of the model's input 'q'"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: np.savez(p, x=np.zeros((10, 28, 27), np.float32)),
            "inputs.npz: array 'x' has shape (10, 28, 27), the model's input 'input' expects (N, 1, 28, 28)",
        ),
        (
            lambda p: np.savez(p, x=np.full((10, 1, 28, 28), 2**24 + 1, np.int64)),
            "inputs.npz: array 'x' is int64 with values beyond float32's exact integers, but the model's input "
            "'input' is float32: convert it (x.astype(np.float32), with the model's scaling)",
        ),
        (
            lambda p: np.savez(p, x=np.zeros((2, 1, 28, 28), np.float32), y=np.zeros(3, np.int64)),
            "inputs.npz: 3 labels in 'y' for 2 input samples",
        ),
        (
            lambda p: np.savez(p, x=np.zeros((2, 1, 28, 28), np.float32), y=np.zeros(2, np.float32)),
            "inputs.npz: labels 'y' have dtype float32; class labels must be integers",
        ),
        (
            lambda p: np.savez(p, x=np.array([{"a": 1}], dtype=object)),
            "inputs.npz: array 'x' holds Python objects (a pickle), which systolix never loads; "
            "save a numeric array instead",
        ),
        (
            lambda p: np.savez(p, a=np.zeros(2), b=np.zeros(2)),
            "inputs.npz: cannot tell which array holds the inputs (arrays: 'a', 'b'); name it 'input' or 'x'",
        ),
        (
            lambda p: np.savez(p, x=np.zeros((0, 1, 28, 28), np.float32)),
            "inputs.npz: array 'x' has no samples (shape (0, 1, 28, 28))",
        ),
        (
            lambda p: np.savez(p, x=np.full((1, 1, 28, 28), np.nan, np.float32)),
            "inputs.npz: array 'x' contains NaN or infinity (first at index (0, 0, 0, 0))",
        ),
        (lambda p: p.write_text("1 2 3\n"), "inputs.npz: not a NumPy .npz or .npy file"),
        (
            lambda p: p.write_bytes(pickle.dumps([1, 2])),
            "inputs.npz: is a Python pickle, which systolix never loads; save NumPy arrays",
        ),
    ],
)
def test_bad_files(tmp_path: Path, make, message: str) -> None:
    p = tmp_path / "inputs.npz"
    make(p)
    with pytest.raises(SystolixError) as e:
        load_inputs(p, "input", (None, 1, 28, 28), np.float32)
    assert str(e.value) == message


def test_integer_model_given_floats(tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", np.zeros((2, 3), np.float32))
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "f.npy", "q", (None, 3), np.int8)
    assert str(e.value) == (
        "f.npy: the array is float32 but the model's input 'q' is int8: the model takes quantized codes, "
        "so quantize the data to int8 first"
    )


def test_pickled_npy_and_broken_zip_and_missing(tmp_path: Path) -> None:
    np.save(tmp_path / "o.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(
        SystolixError, match=r"^o\.npy: unreadable NumPy file \(Object arrays cannot be loaded"
    ):
        load_inputs(tmp_path / "o.npy", "input", (None, 1), np.float32)
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("x.npy", b"not an npy")
    with pytest.raises(SystolixError, match=r"^z\.npz: member 'x' is not a NumPy array$"):
        load_inputs(tmp_path / "z.npz", "input", (None, 1), np.float32)
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "nope.npz", "input", (None, 1), np.float32)
    assert str(e.value) == f"{tmp_path / 'nope.npz'}: no such file"


def test_messages_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "t.npz").write_text("a\nb\n")
    with pytest.raises(SystolixError) as e:
        load_inputs(tmp_path / "t.npz", "input", (None, 1), np.float32)
    assert "\n" not in str(e.value)


def test_format_shape() -> None:
    assert format_shape((None, 1, 28, 28)) == "(N, 1, 28, 28)"
    assert format_shape((1, None, 3)) == "(N, ?, 3)"
    assert format_shape((None,)) == "(N,)"


@pytest.mark.parametrize(("model_shape", "axis"), [((None, 1, 28, 28), 1), ((None, 28, 28, 1), 3)])
def test_images_without_their_channel_axis_get_it_with_a_note(tmp_path, model_shape, axis) -> None:
    images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
    np.savez(tmp_path / "mnist.npz", x=images, y=np.arange(3))
    notes: list[str] = []
    x, y = load_inputs(tmp_path / "mnist.npz", "input", model_shape, np.float32, notes)
    np.testing.assert_array_equal(x, np.expand_dims(images, axis).astype(np.float32))
    np.testing.assert_array_equal(y, [0, 1, 2])
    assert len(notes) == 2
    assert f"inserted the model's size-1 axis {axis}" in notes[0] and "(3, 28, 28)" in notes[0]
    assert "uint8 (values 0..255): converted to float32 as they are, without scaling" in notes[1]


def test_an_ambiguous_missing_axis_is_refused(tmp_path) -> None:
    np.savez(tmp_path / "x.npz", x=np.zeros((4, 1, 5), np.float32))
    with pytest.raises(SystolixError, match=r"has shape \(4, 1, 5\), the model's input 'input' expects"):
        load_inputs(tmp_path / "x.npz", "input", (None, 1, 1, 5), np.float32)
