"""Where tensors live in the ``act`` memory, and how the host writes and reads them.

A tensor of C channels and H x W pixels (1D: H = 1; a vector of K values: C = K, H = W = 1) takes
``blocks * H * W`` rows, ``blocks = ceil(C / L)``: row ``base + (cb * H + y) * W + x`` holds channels
``cb*L .. cb*L + L - 1`` of pixel (y, x), one per lane (``docs/architecture.md``). Integer codes are
stored as int8; a uint8 tensor is stored as ``code - 128`` with its zero point shifted by -128.

A Reshape / Flatten moves no data: its output is an *alias* placement of the same rows, with the
storage geometry (C, H, W) of the tensor that was really written and its own (IR) shape; reading it
reads the storage tensor in NCHW order and reshapes, as ONNX does.

:func:`allocate` assigns rows to tensors, either one region each (``keep_all``) or reusing the rows
of tensors that are no longer needed (first fit over live intervals).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from systolix.errors import SystolixError

__all__ = ["TensorPlacement", "allocate", "read_tensor", "storage_geometry", "write_tensor"]


def storage_geometry(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    """(C, H, W) of a tensor of IR shape ``shape`` (batch first): NC -> (C,1,1), NCL -> (C,1,L)."""
    shape = tuple(int(d) for d in shape)
    if len(shape) == 2:
        return shape[1], 1, 1
    if len(shape) == 3:
        return shape[1], 1, shape[2]
    if len(shape) == 4:
        return shape[1], shape[2], shape[3]
    raise SystolixError(f"{what}: tensors of shape {list(shape)} have no accelerator layout (2-D to 4-D only)")


@dataclasses.dataclass(frozen=True)
class TensorPlacement:
    """One tensor in ``act``.

    Attributes
    ----------
    name : str
        Tensor name in the IR.
    base : int
        First ``act`` row.
    channels, h, w : int
        Storage geometry (that of the tensor actually written, for an alias).
    blocks : int
        ``ceil(channels / lanes)``.
    lanes : int
        Lanes per row (L).
    dtype : str
        ``"int8"`` or ``"uint8"`` (the IR type; uint8 is stored shifted by -128).
    zero_point : int
        IR zero point (unshifted).
    shape : tuple of int
        IR shape (batch 1) of this tensor.
    layout : str
        Human-readable note ("channel-blocked", "alias of ...").
    """

    name: str
    base: int
    channels: int
    h: int
    w: int
    blocks: int
    lanes: int
    dtype: str
    zero_point: int
    shape: tuple[int, ...]
    layout: str = "channel-blocked"
    #: A view of another tensor's rows through a Transpose: decode them as ``source_shape``, transpose by
    #: ``perm``, reshape to ``shape`` (None: the rows hold this tensor in its own element order).
    perm: tuple[int, ...] | None = None
    source_shape: tuple[int, ...] | None = None

    @property
    def rows(self) -> int:
        """``act`` rows the tensor occupies."""
        return self.blocks * self.h * self.w

    @property
    def shift(self) -> int:
        """Subtracted from codes when stored (128 for uint8, 0 for int8)."""
        return 128 if self.dtype == "uint8" else 0

    @property
    def stored_zero_point(self) -> int:
        """The zero point as the hardware sees it (int8 storage)."""
        return self.zero_point - self.shift

    def to_json(self) -> dict:
        return {"perm": None if self.perm is None else list(self.perm),
                "source_shape": None if self.source_shape is None else list(self.source_shape),
                "name": self.name, "base": self.base, "rows": self.rows, "channels": self.channels, "lanes": self.lanes,
                "h": self.h, "w": self.w, "blocks": self.blocks, "dtype": self.dtype,
                "zero_point": self.zero_point, "shape": list(self.shape), "layout": self.layout}

    @classmethod
    def from_json(cls, data: dict) -> TensorPlacement:
        """Inverse of :meth:`to_json` (``lanes`` is not in the JSON: the configuration's)."""
        return cls(data["name"], int(data["base"]), int(data["channels"]), int(data["h"]), int(data["w"]),
                   int(data["blocks"]), int(data["lanes"]), str(data["dtype"]), int(data["zero_point"]),
                   tuple(int(v) for v in data["shape"]), str(data["layout"]),
                   None if data.get("perm") is None else tuple(int(v) for v in data["perm"]),
                   None if data.get("source_shape") is None else tuple(int(v) for v in data["source_shape"]))


def write_tensor(placement: TensorPlacement, array: np.ndarray) -> np.ndarray:
    """The ``act`` rows holding ``array``.

    Parameters
    ----------
    placement : TensorPlacement
        Where the tensor goes.
    array : numpy.ndarray
        Codes of the IR shape, with a batch axis of any size N first (or without a batch axis).

    Returns
    -------
    numpy.ndarray
        int8 ``[N, rows, L]`` (``[rows, L]`` without a batch axis); lanes past C hold the zero point.
    """
    p = placement
    a = np.asarray(array)
    single = a.ndim == len(p.shape) - 1
    if single:
        a = a[None]
    if tuple(a.shape[1:]) != tuple(p.shape[1:]):
        raise SystolixError(f"tensor {p.name!r}: expected shape [N, {', '.join(map(str, p.shape[1:]))}], "
                            f"not {list(a.shape)}")
    lo, hi = (0, 255) if p.dtype == "uint8" else (-128, 127)
    if a.size and (a.min() < lo or a.max() > hi):
        raise SystolixError(f"tensor {p.name!r}: codes outside the {p.dtype} range")
    n, lanes = a.shape[0], p.lanes
    x = a.astype(np.int64).reshape(n, p.channels, p.h * p.w) - p.shift
    full = np.full((n, p.blocks * lanes, p.h * p.w), p.stored_zero_point, dtype=np.int64)
    full[:, : p.channels] = x
    rows = full.reshape(n, p.blocks, lanes, p.h * p.w).transpose(0, 1, 3, 2).reshape(n, p.rows, lanes)
    rows = rows.astype(np.int8)
    return rows[0] if single else rows


def read_tensor(placement: TensorPlacement, rows: np.ndarray) -> np.ndarray:
    """Inverse of :func:`write_tensor`: the codes (IR dtype and shape, batch first) from ``act`` rows.

    ``rows`` is the tensor's rows ``[N, rows, L]`` (or ``[rows, L]``), or the whole memory
    ``[N, depth, L]`` (then the rows from ``placement.base`` are used).
    """
    p = placement
    r = np.asarray(rows)
    single = r.ndim == 2
    if single:
        r = r[None]
    if r.shape[1] != p.rows:
        r = r[:, p.base : p.base + p.rows]
    if r.shape[1:] != (p.rows, p.lanes):
        raise SystolixError(f"tensor {p.name!r}: expected {p.rows} rows of {p.lanes} lanes, not {list(r.shape)}")
    n = r.shape[0]
    x = r.astype(np.int64).reshape(n, p.blocks, p.h * p.w, p.lanes).transpose(0, 1, 3, 2)
    x = x.reshape(n, p.blocks * p.lanes, p.h * p.w)[:, : p.channels] + p.shift
    if p.perm is not None:
        x = x.reshape(n, *p.source_shape[1:]).transpose(p.perm)
    out = x.reshape(n, *p.shape[1:]).astype(np.uint8 if p.dtype == "uint8" else np.int8)
    return out[0] if single else out


@dataclasses.dataclass(frozen=True)
class Allocation:
    """Result of :func:`allocate`: base row per tensor, rows used, tensors still intact at the end."""

    bases: dict[str, int]
    rows: int
    intact: frozenset[str]


def allocate(sizes: dict[str, int], live: dict[str, tuple[int, int]], keep_all: bool) -> Allocation:
    """Assign ``act`` rows to tensors.

    Parameters
    ----------
    sizes : dict
        Rows per tensor, in the order tensors are created.
    live : dict
        Per tensor the (first, last) step at which it must hold its data, inclusive. Two tensors whose
        intervals share a step never share rows (a layer's output never overlaps its inputs).
    keep_all : bool
        Give every tensor its own rows (every intermediate stays readable after the run).

    Returns
    -------
    Allocation
        ``intact`` holds the tensors that no tensor created later overwrites (readable after the run).
    """
    bases: dict[str, int] = {}
    placed: list[tuple[str, int, int]] = []  # name, base, end (exclusive)
    top = 0
    for name, size in sizes.items():
        if keep_all:
            base = top
        else:
            first, last = live[name]
            busy = sorted((b, e) for other, b, e in placed
                          if not (live[other][1] < first or live[other][0] > last))
            base = 0
            for b, e in busy:
                if base + size <= b:
                    break
                base = max(base, e)
        bases[name] = base
        placed.append((name, base, base + size))
        top = max(top, base + size)
    intact = set(sizes)
    for i, (name, b, e) in enumerate(placed):
        for _, b2, e2 in placed[i + 1 :]:
            if b2 < e and b < e2:
                intact.discard(name)
                break
    return Allocation(bases, top, frozenset(intact))


def allocate_banked(sizes: dict[str, int], live: dict[str, tuple[int, int]], reads: dict[str, list[str]],
                    bank_rows: int, keep_all: bool) -> tuple[Allocation, dict[str, int]]:
    """Assign ``act`` rows in two banks of ``bank_rows`` rows (``AcceleratorConfig.spram_buffers``).

    A tensor goes to the other bank than the tensors its producer reads (``reads``: tensor -> them; a tensor
    nobody produces on the accelerator, a graph input, goes to bank 0), so no layer reads and writes one bank;
    then each bank is allocated as :func:`allocate` does, bank 1 from row ``bank_rows``.

    Returns
    -------
    Allocation, dict
        The allocation (``rows``: one past the last row used, counting bank 1 from ``bank_rows``) and each
        tensor's bank.

    Raises
    ------
    SystolixError
        A layer that reads tensors of both banks (its output can go to neither), or a bank that overflows.
    """
    bank: dict[str, int] = {}
    for name in sizes:
        sources = {bank[t] for t in reads.get(name, ()) if t in bank}
        if len(sources) > 1:
            raise SystolixError(f"the layer writing {name!r} reads tensors in both act banks (spram_buffers: a "
                                f"layer writes the other bank than it reads); this model needs a configuration "
                                f"without spram_buffers")
        bank[name] = 1 - sources.pop() if sources else 0
    bases: dict[str, int] = {}
    intact: set[str] = set()
    rows = 0
    for b in (0, 1):
        part = {n: size for n, size in sizes.items() if bank[n] == b}
        if not part:
            continue
        alloc = allocate(part, live, keep_all)
        if alloc.rows > bank_rows:
            raise SystolixError(f"act bank {b} needs {alloc.rows:,} rows but holds {bank_rows:,} "
                                f"(act_buffer_depth / 2 with spram_buffers)")
        bases.update({n: base + b * bank_rows for n, base in alloc.bases.items()})
        intact |= alloc.intact
        rows = max(rows, b * bank_rows + alloc.rows)
    return Allocation(bases, rows, frozenset(intact)), bank
