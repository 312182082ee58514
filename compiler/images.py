"""Memory images: the initial contents of ``act``, ``wgt``, ``prm``, ``lut``, the ADD tables and ``prog``.

Also the builders of what goes into them for one layer: weight tiles (L x L, one ``wgt`` row per array
row), per-output-channel parameter rows (:mod:`systolix.arch.params`) and lookup tables (256 rows,
the same value in every lane).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from systolix.arch import params
from systolix.arch.memory import pack_lanes, unpack_lanes
from systolix.arch.params import ChannelParams
from systolix.errors import SystolixError

__all__ = ["MemoryImages", "channel_rows", "conv_tiles", "dense_tiles", "depthwise_tiles", "lut_rows"]

@dataclasses.dataclass(frozen=True, eq=False)
class MemoryImages:
    """Initial memory contents of one compiled program.

    Attributes
    ----------
    wgt : numpy.ndarray
        int8 ``[weight_buffer_depth, L]``: weight tiles, L rows each (row r = input lane r, column o =
        output lane o); unused rows zero.
    prm : list of int
        One ``L * 96``-bit word per used ``prm`` row (:func:`systolix.arch.params.pack_row`).
    lut : numpy.ndarray
        int8 ``[tables * 256, L]``: table row ``lut_base + code + 128`` holds the output code for
        input code ``code`` (int8 storage), lane ``l`` in column ``l`` (the same in every lane, except per-channel
        tables: one channel per lane).
    addtab : numpy.ndarray
        The ADD unit's tables (format of :mod:`systolix.arch.add_arith`; empty without it).
    prog : list of int
        Encoded instructions (:func:`systolix.arch.isa.encode`).
    """

    wgt: np.ndarray
    prm: list[int]
    lut: np.ndarray
    addtab: np.ndarray
    prog: list[int]

    def words(self, table_bits: int | None = None, *, narrow_program: bool = False) -> dict[str, list[int]]:
        """The words a host writes through the load bus (``hdl/top.py``), used part of each memory only.

        ``wgt`` and ``lut``: one row of L int8 lanes per word (:func:`pack_lanes`; a ``lut`` row holds each lane's
        own entry); ``prm`` and ``prog`` as they are (with ``narrow_program``, the configuration's, ``prog`` as
        ``isa.INSTRUCTION_PIECES`` pieces per instruction: :func:`systolix.arch.isa.to_pieces`); ``addtab``:
        ``table_bits``-bit words.
        """
        from systolix.arch.isa import to_pieces

        lut = np.asarray(self.lut)
        if table_bits is None:
            from systolix.arch.add_arith import TABLE_BITS as table_bits
        mask = (1 << table_bits) - 1
        return {"wgt": pack_lanes(self.wgt[: self.used()["wgt"]]), "prm": [int(w) for w in self.prm],
                "lut": pack_lanes(lut) if lut.size else [],
                "addtab": [int(w) & mask for w in np.asarray(self.addtab).reshape(-1)],
                "prog": to_pieces(self.prog) if narrow_program else [int(w) for w in self.prog]}

    @classmethod
    def from_words(cls, words: dict[str, list[int]], lanes: int, weight_depth: int, *,
                   narrow_program: bool = False) -> MemoryImages:
        """The images that :meth:`words` came from (``wgt`` padded with zero rows to ``weight_depth``)."""
        from systolix.arch.isa import from_pieces

        wgt = np.zeros((weight_depth, lanes), np.int8)
        used = unpack_lanes(words["wgt"], lanes)
        if used.shape[0] > weight_depth:
            raise SystolixError(f"{used.shape[0]:,} weight rows do not fit weight_buffer_depth {weight_depth:,}")
        wgt[: used.shape[0]] = used
        lut = unpack_lanes(words["lut"], lanes).reshape(-1, lanes)
        return cls(wgt=wgt, prm=list(words["prm"]), lut=lut, addtab=np.array(words["addtab"], np.int64),
                   prog=from_pieces(words["prog"]) if narrow_program else list(words["prog"]))

    def used(self) -> dict[str, int]:
        """Rows (words) of each memory the program uses (``wgt``: up to the last non-zero tile row)."""
        nz = np.flatnonzero(np.any(self.wgt != 0, axis=1))
        return {"wgt": int(nz[-1]) + 1 if nz.size else 0, "prm": len(self.prm), "lut": int(self.lut.shape[0]),
                "addtab": int(self.addtab.shape[0]) if self.addtab.ndim else 0, "prog": len(self.prog)}


def _check_int8(w: np.ndarray, what: str) -> np.ndarray:
    if w.size and (w.min() < -128 or w.max() > 127):
        raise SystolixError(f"{what}: weights minus their zero point do not fit int8")
    return w.astype(np.int8)


def conv_tiles(weight: np.ndarray, group: int, lanes: int) -> tuple[np.ndarray, int]:
    """CONV tiles of a (grouped) convolution.

    Parameters
    ----------
    weight : numpy.ndarray
        ``[M, C/group, kh, kw]`` integer weights, zero point already removed.
    group : int
        Groups; tiles are block-diagonal (zero between channels of different groups).
    lanes : int
        L.

    Returns
    -------
    (tiles, taps)
        int8 ``[out_blocks * taps * L, L]`` in tile order ``j * taps + t``, ``t = (ky*kw + kx) *
        in_blocks + cbi``; and ``taps``.
    """
    m, cg, kh, kw = weight.shape
    c = cg * group
    ob, ib = -(-m // lanes), -(-c // lanes)
    full = np.zeros((ob * lanes, ib * lanes, kh, kw), dtype=np.int64)
    mg = m // group
    for g in range(group):
        full[g * mg : (g + 1) * mg, g * cg : (g + 1) * cg] = weight[g * mg : (g + 1) * mg]
    # (j, o, cbi, r, ky, kx) -> (j, ky, kx, cbi, r, o)
    t = full.reshape(ob, lanes, ib, lanes, kh, kw).transpose(0, 4, 5, 2, 3, 1)
    return t.reshape(ob * kh * kw * ib * lanes, lanes), kh * kw * ib


def depthwise_tiles(weight: np.ndarray, lanes: int) -> tuple[np.ndarray, int]:
    """DEPTHWISE tiles: diagonal, tile ``j * taps + t`` with ``t = ky*kw + kx``.

    ``weight`` is ``[C, 1, kh, kw]`` (zero point removed). Returns (tiles ``[blocks*taps*L, L]``, taps).
    """
    c, _, kh, kw = weight.shape
    ob = -(-c // lanes)
    w = np.zeros((ob * lanes, kh * kw), dtype=np.int64)
    w[:c] = weight.reshape(c, kh * kw)
    w = w.reshape(ob, lanes, kh * kw).transpose(0, 2, 1)  # (j, t, lane)
    tiles = np.zeros((ob, kh * kw, lanes, lanes), dtype=np.int64)
    idx = np.arange(lanes)
    tiles[:, :, idx, idx] = w
    return tiles.reshape(ob * kh * kw * lanes, lanes), kh * kw


def dense_tiles(weight: np.ndarray, geometry: tuple[int, int, int], lanes: int) -> tuple[np.ndarray, int]:
    """DENSE tiles for ``y = x @ weight`` when x is stored with ``geometry`` (C, H, W).

    Input element ``k = c*H*W + p`` (NCHW flattening) sits in row ``(c // L) * H*W + p``, lane ``c % L``:
    tile ``t = cb*H*W + p`` holds ``weight[(cb*L + r)*H*W + p, j*L + o]`` at (r, o).
    Returns (tiles ``[out_blocks*taps*L, L]``, taps).
    """
    c, h, w = geometry
    hw = h * w
    k, m = weight.shape
    if k != c * hw:
        raise SystolixError(f"dense weight has {k} rows but its input holds {c}x{h}x{w} values")
    cb, ob = -(-c // lanes), -(-m // lanes)
    wp = np.zeros((cb * lanes, hw, ob * lanes), dtype=np.int64)
    wp[:c, :, :m] = weight.reshape(c, hw, m)
    # (cb, r, p, j, o) -> (j, cb, p, r, o)
    t = wp.reshape(cb, lanes, hw, ob, lanes).transpose(3, 0, 2, 1, 4)
    return t.reshape(ob * cb * hw * lanes, lanes), cb * hw


def channel_rows(channels: list[ChannelParams], lanes: int, pad: ChannelParams) -> list[int]:
    """``prm`` rows for output channels in order, L per row, the last row filled with ``pad``."""
    rows = []
    for start in range(0, len(channels), lanes):
        block = channels[start : start + lanes]
        block = block + [pad] * (lanes - len(block))
        rows.append(params.pack_row(block))
    return rows


def lut_rows(table: np.ndarray, lanes: int) -> np.ndarray:
    """256 ``lut`` rows of one table (already in int8 storage codes), replicated across the lanes."""
    t = np.asarray(table, dtype=np.int64).reshape(256)
    return np.repeat(t[:, None], lanes, axis=1).astype(np.int8)


def to_int8(w: np.ndarray, what: str) -> np.ndarray:
    """Checked cast of integer weights to int8."""
    return _check_int8(np.asarray(w, dtype=np.int64), what)
