"""Loading a user's input samples (calibration or evaluation data) from ``.npz`` / ``.npy`` files.

The file is recognised by its content, not its name: a zip archive is an ``.npz``, the ``\\x93NUMPY``
magic is an ``.npy``; anything else is refused. Pickles are never loaded (``allow_pickle=False``).

Rules, checked in this order, each failure one :class:`~systolix.SystolixError` line:

- **Which array.** In an ``.npz``: the array named like the model's input, else ``x``, else the only
  array (other than ``y``). Labels come from ``y`` when present. An ``.npy`` holds inputs only.
- **Batch.** The first dimension is the batch (the number of samples). A model whose batch is fixed
  at ``b`` is fed ``b`` samples at a time, so the count must be a multiple of ``b``. A *single sample
  without the batch dimension* (rank one less than the model's input, every other dimension equal)
  is accepted and given a batch dimension of 1.
- **Shape.** Every fixed dimension after the batch must match; ``None`` (symbolic) matches anything.
  Images saved without their size-1 channel axis (MNIST as ``(N, 28, 28)`` for a ``(N, 1, 28, 28)``
  model, or ``(N, 28, 28, 1)`` NHWC) get it inserted when exactly one position of a size-1 model axis
  makes the shapes match; a note says so.
- **Type.** A float32 model takes float32 or float16 (exact widening), or float64 *only when every
  value is exactly representable in float32* (so nothing is silently rounded before quantization;
  otherwise convert explicitly). Integer data for a float model is converted to float32 when every value
  is exact in float32 (any 8- or 16-bit image), *without scaling* (a model trained on 0..1 inputs needs
  the data divided first), and a note says so. An integer model takes integers whose values fit its type,
  never floats (quantize them first). NaN and infinity are refused.
- **Labels.** ``y`` must be integers, one per sample (shape ``(N,)`` or ``(N, 1)``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from systolix.errors import SystolixError

__all__ = ["format_shape", "load_inputs"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")


def format_shape(shape: tuple[int | None, ...]) -> str:
    """Render a model input shape for messages: the batch as ``N``, other unknown dimensions as ``?``.

    Parameters
    ----------
    shape
        Dimensions; ``None`` is symbolic. The first one is the batch and is always shown as ``N``.

    Returns
    -------
    str
        For example ``"(N, 1, 28, 28)"``.
    """
    parts = ["N" if i == 0 else ("?" if d is None else str(d)) for i, d in enumerate(shape)]
    return "(" + ", ".join(parts) + (",)" if len(parts) == 1 else ")")


def _read_arrays(path: Path, input_name: str) -> tuple[str, np.ndarray, np.ndarray | None]:
    """Return (array name, inputs, labels or None) from an .npz or .npy file, refusing pickles."""
    name = path.name
    if not path.exists():
        raise SystolixError(f"{path}: no such file")
    if not path.is_file():
        raise SystolixError(f"{path}: not a file")
    with path.open("rb") as f:
        head = f.read(8)
    try:
        if head.startswith(_NPY_MAGIC):
            return "", np.load(path, allow_pickle=False), None
        if head.startswith(_ZIP_MAGICS):
            with np.load(path, allow_pickle=False) as npz:
                keys = list(npz.files)
                if input_name in keys:
                    key = input_name
                elif "x" in keys:
                    key = "x"
                else:
                    candidates = [k for k in keys if k != "y"]
                    if len(candidates) != 1:
                        found = ", ".join(repr(k) for k in keys) or "none"
                        raise SystolixError(
                            f"{name}: cannot tell which array holds the inputs (arrays: {found}); "
                            f"name it {input_name!r} or 'x'"
                        )
                    key = candidates[0]
                x = _load_member(npz, key, name)
                y = _load_member(npz, "y", name) if "y" in keys and key != "y" else None
                return key, x, y
    except SystolixError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise SystolixError(f"{name}: unreadable NumPy file ({detail})") from e
    if head[:1] == b"\x80":
        raise SystolixError(f"{name}: is a Python pickle, which systolix never loads; save NumPy arrays")
    raise SystolixError(f"{name}: not a NumPy .npz or .npy file")


def _load_member(npz: np.lib.npyio.NpzFile, key: str, name: str) -> np.ndarray:
    try:
        value = npz[key]
    except ValueError as e:
        if "allow_pickle" in str(e) or "pickled" in str(e):
            raise SystolixError(
                f"{name}: array {key!r} holds Python objects (a pickle), which systolix never loads; "
                "save a numeric array instead"
            ) from e
        raise
    if not isinstance(value, np.ndarray):  # NpzFile hands back the raw bytes of a member that is not .npy
        raise SystolixError(f"{name}: member {key!r} is not a NumPy array")
    return value


def _array_label(name: str, key: str) -> str:
    return f"{name}: array {key!r}" if key else f"{name}: the array"


def _channel_axes(dims: tuple[int, ...], shape: tuple[int | None, ...]) -> list[int]:
    """Positions (after the batch) of a size-1 model axis whose insertion makes ``dims`` (with a batch) match."""
    found = []
    for axis in range(1, len(shape)):
        if shape[axis] != 1:
            continue
        widened = (*dims[:axis], 1, *dims[axis:])
        if all(m is None or m == d for d, m in zip(widened[1:], shape[1:], strict=True)):
            found.append(axis)
    return found


def _check_shape(
    x: np.ndarray, shape: tuple[int | None, ...], input_name: str, where: str, notes: list[str] | None = None
) -> tuple[np.ndarray, bool]:
    """Return (x with a batch dimension, whether one was added); raise on a shape mismatch."""
    expected = format_shape(shape)

    def matches(dims: tuple[int, ...], model_dims: tuple[int | None, ...]) -> bool:
        if len(dims) != len(model_dims):
            return False
        return all(m is None or m == d for d, m in zip(dims, model_dims, strict=True))

    added = False
    if x.ndim == len(shape) and matches(x.shape[1:], shape[1:]):
        pass
    elif x.ndim == len(shape) - 1 and matches(x.shape, shape[1:]) and shape[0] in (None, 1):
        x = x[np.newaxis]
        added = True
    elif x.ndim == len(shape) - 1 and len(axes := _channel_axes(x.shape, shape)) == 1:
        x = np.expand_dims(x, axes[0])
        if notes is not None:
            notes.append(f"{where} has shape {tuple(x.shape[:axes[0]] + x.shape[axes[0] + 1:])}: inserted the "
                         f"model's size-1 axis {axes[0]} to make it {tuple(x.shape)} ({input_name!r} expects "
                         f"{expected})")
    else:
        raise SystolixError(
            f"{where} has shape {tuple(x.shape)}, the model's input {input_name!r} expects {expected}"
        )
    batch = shape[0]
    if x.shape[0] == 0:
        raise SystolixError(f"{where} has no samples (shape {tuple(x.shape)})")
    if batch is not None and x.shape[0] % batch != 0:
        raise SystolixError(
            f"{where} has {x.shape[0]} samples; the model's input {input_name!r} takes a fixed batch of "
            f"{batch}, so the count must be a multiple of {batch}"
        )
    return x, added


def _check_dtype(x: np.ndarray, dtype: np.dtype, input_name: str, where: str,
                 notes: list[str] | None = None) -> np.ndarray:
    """Return x converted (losslessly) to dtype, or raise saying what is wrong."""
    want = np.dtype(dtype)
    got = x.dtype
    if got.kind not in "biuf":
        raise SystolixError(f"{where} has dtype {got}, not a numeric array")
    if want.kind == "f":
        if got.kind in "iu":
            converted = x.astype(want)
            if x.size and (np.abs(x.astype(np.float64)).max() > 2.0 ** (np.finfo(want).nmant + 1)):
                raise SystolixError(
                    f"{where} is {got} with values beyond {want}'s exact integers, but the model's input "
                    f"{input_name!r} is {want}: convert it (x.astype(np.{want}), with the model's scaling)"
                )
            if notes is not None:
                lo, hi = (int(x.min()), int(x.max())) if x.size else (0, 0)
                notes.append(f"{where} is {got} (values {lo}..{hi}): converted to {want} as they are, without "
                             "scaling; divide the data first if the model was trained on another range")
            return converted
        if got.kind != "f":
            raise SystolixError(
                f"{where} is {got} but the model's input {input_name!r} is {want}: convert it "
                f"(x.astype(np.{want}), with whatever scaling the model was trained with)"
            )
        bad = ~np.isfinite(x)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            raise SystolixError(f"{where} contains NaN or infinity (first at index {index})")
        if got == want:
            return x
        converted = x.astype(want)
        if got.itemsize > want.itemsize:
            lost = converted.astype(got) != x
            if lost.any():
                index = tuple(int(i) for i in np.argwhere(lost)[0])
                raise SystolixError(
                    f"{where} is {got} and {float(x[index])!r} at index {index} is not exactly representable "
                    f"in {want}, the model's input type; use x.astype(np.{want}) if rounding is intended"
                )
        return converted
    if want.kind in "iu":
        if got.kind == "f":
            raise SystolixError(
                f"{where} is {got} but the model's input {input_name!r} is {want}: the model takes "
                f"quantized codes, so quantize the data to {want} first"
            )
        if got == want:
            return x
        info = np.iinfo(want)
        lo, hi = int(x.min()), int(x.max())
        if lo < info.min or hi > info.max:
            raise SystolixError(
                f"{where} is {got} with values in [{lo}, {hi}], outside the {want} range "
                f"[{info.min}, {info.max}] of the model's input {input_name!r}"
            )
        return x.astype(want)
    raise SystolixError(f"the model's input {input_name!r} has type {want}, which systolix does not support")


def _check_labels(y: np.ndarray, n: int, name: str) -> np.ndarray:
    where = f"{name}: labels 'y'"
    if y.dtype.kind not in "iu":
        raise SystolixError(f"{where} have dtype {y.dtype}; class labels must be integers")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise SystolixError(f"{where} have shape {tuple(y.shape)}; expected one label per sample, ({n},)")
    if y.shape[0] != n:
        raise SystolixError(f"{name}: {y.shape[0]} labels in 'y' for {n} input samples")
    return y.astype(np.int64)


def load_inputs(
    path: str | Path, input_name: str, shape: tuple[int | None, ...], dtype: np.dtype | type,
    notes: list[str] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load and validate input samples for a model input.

    Parameters
    ----------
    path
        An ``.npz`` (inputs under the input's name, ``x``, or the only array; labels under ``y``)
        or ``.npy`` (inputs only) file. Recognised by content; pickles are refused.
    input_name
        The model input the samples feed (used to pick the array and in messages).
    shape
        The model input's shape; ``None`` is a symbolic dimension. The first dimension is the batch.
    dtype
        The model input's element type.
    notes
        When given, a line is appended for each adaptation made (an inserted size-1 axis, integers converted to
        float).

    Returns
    -------
    x : numpy.ndarray
        The samples, shape ``(N, *shape[1:])`` and type ``dtype``.
    y : numpy.ndarray or None
        int64 labels of shape ``(N,)``, when the file has them.

    Raises
    ------
    SystolixError
        One line saying what is wrong with the file (see the module docstring for the rules).
    """
    path = Path(path)
    if len(shape) == 0:
        raise SystolixError(f"the model's input {input_name!r} is a scalar; it needs a batch dimension")
    key, x, y = _read_arrays(path, input_name)
    where = _array_label(path.name, key)
    x, added = _check_shape(x, tuple(shape), input_name, where, notes)
    x = _check_dtype(x, np.dtype(dtype), input_name, where, notes)
    if y is not None:
        if added and y.ndim == 0:
            y = y.reshape(1)
        y = _check_labels(y, x.shape[0], path.name)
    return np.ascontiguousarray(x), y
