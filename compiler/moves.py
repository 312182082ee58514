"""Data movement: Reshape / Transpose / Slice chains on integer tensors in the middle of a graph.

A Reshape or Transpose computes nothing; it only says where each element goes. The compiler follows every
chain of them from the tensor actually stored in ``act`` (its *root*) with NumPy index arithmetic: the
*order* of a tensor is an array of its shape holding, for each of its elements, the NCHW position of that
element in the root. Then:

- a tensor whose order is the root's own order (a Reshape that keeps the channels and the pixels, or one read
  only by a Dense layer) is an *alias* of the root's rows, as before;
- a tensor that is one Transpose (then Reshapes) of a root is a *view*: the host reads it back by decoding the
  root and transposing, and nothing is moved while only views, Reshapes, Dense layers that fold it into their
  weights (:func:`systolix.compiler.compile.transpose_views`) or the host read it;
- a tensor that a compute layer reads in another order is *moved*: the Reshape or Transpose that produces it
  becomes an accelerator layer writing it in its own rows. Two kinds of movement are exact and cheap on this
  accelerator, where a row holds ``L`` channels of one pixel:

  * a **channel permutation** (every pixel keeps its place, output channel ``c`` is input channel
    ``src[c]``: ShuffleNet's channel shuffle, Reshape [N,C,H,W] -> [N,g,C/g,H,W] -> Transpose(0,2,1,3,4) ->
    Reshape [N,C,H,W]) runs on the array as a 1x1 convolution whose weights are the permutation matrix, with
    bias 0 and requantization scale 1.0 and the tensor's own zero point on both sides: the accumulator is
    ``x - zp``, and the requantizer gives back ``x`` (:func:`channel_move`; every code is checked in
    ``tests/compiler/test_moves.py``);
  * a **pixel permutation** (every channel keeps its lane and block, output pixel ``p`` is input pixel
    ``src[p]``, the same for every channel: a Transpose of H and W, [N,C,H,W] -> [N,C,W,H]) runs on the
    vector unit as one-tap MAXPOOL copies, one instruction per channel block and run of output pixels whose
    source pixels are evenly spaced (:func:`pixel_move`).

  A Slice (a Split is one Slice per output) is always written: the same two kinds cover a channel selection
  (ShuffleNet v2's ``chunk`` of the channels: a 1x1 convolution by a selection matrix) and a crop of H or W (row
  copies).

  A channel permutation read only by convolutions of one group is not written at all: each convolution reads the
  stored channels with its weights permuted (exact, free).

  A movement that sends data from channels to pixels or back (NCHW -> NHWC, a Reshape [N,C,H,W] ->
  [N,C*H,W] read by a convolution) is refused with one line.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from systolix.arch.isa import Opcode
from systolix.errors import SystolixError
from systolix.frontend import ir

from .layout import TensorPlacement, storage_geometry
from .lower import Lowered, permutation_conv

__all__ = ["Move", "MovePlan", "channel_move", "classify_move", "pixel_move", "pixel_runs", "plan_moves"]


@dataclasses.dataclass(frozen=True, eq=False)
class Move:
    """A Reshape/Transpose layer whose output the accelerator writes in its own rows.

    Attributes
    ----------
    index : int
        The layer's index in the model.
    source : str
        The root tensor it reads (stored in ``act``).
    kind : str
        ``"channels"`` (channel permutation) or ``"pixels"`` (pixel permutation).
    sources : numpy.ndarray
        For ``"channels"``: the source channel of every output channel; for ``"pixels"``: the source pixel
        (``y * W + x`` of the root) of every output pixel.
    """

    index: int
    source: str
    kind: str
    sources: np.ndarray


@dataclasses.dataclass(frozen=True)
class MovePlan:
    """What the compiler does with every device-side Reshape/Transpose of a model.

    Attributes
    ----------
    alias : dict
        Tensor -> the root tensor whose rows it reads (aliases and views).
    views : dict
        Tensor -> ``(perm, shape)``: the root's rows decoded as ``shape``, transposed by ``perm`` and
        reshaped give the tensor (a view through one Transpose).
    moves : dict
        Layer index -> :class:`Move`.
    refused : dict
        Layer index -> why the layer cannot run on the accelerator.
    folds : dict
        Layer index of a convolution (one group) that reads a channel permutation of a stored tensor -> the stored
        channel of each of its input channels: its weights are permuted instead of moving the data.
    """

    alias: dict[str, str]
    views: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
    moves: dict[int, Move]
    refused: dict[int, str]
    folds: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


_MIXED = ("it moves data between channels and pixels; the accelerator moves whole channels (a channel "
          "permutation, as a 1x1 convolution) or whole pixels (the same pixel permutation in every channel, as row "
          "copies), not both")


def classify_move(order: np.ndarray, source_shape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[str, np.ndarray]:
    """The kind of movement that writes a tensor of IR ``shape`` whose elements come from the NCHW positions
    ``order`` (an array of ``shape[1:]``) of a tensor of IR ``shape`` ``source_shape``.

    Returns
    -------
    (kind, sources)
        ``("channels", source channel of every output channel)`` or ``("pixels", source pixel of every
        output pixel)``.

    Raises
    ------
    SystolixError
        Without the layer's name: a shape with no accelerator layout, or a movement of neither kind.
    """
    c, h, w = storage_geometry(source_shape, "its input")
    c2, h2, w2 = storage_geometry(shape, "its output")
    index = np.asarray(order, dtype=np.int64).reshape(c2, h2 * w2)
    channel, pixel = index // (h * w), index % (h * w)
    if h2 * w2 == h * w and np.array_equal(pixel, np.broadcast_to(np.arange(h * w), pixel.shape)) \
            and np.array_equal(channel, np.broadcast_to(channel[:, :1], channel.shape)):
        return "channels", channel[:, 0].copy()
    if c2 == c and np.array_equal(channel, np.broadcast_to(np.arange(c)[:, None], channel.shape)) \
            and np.array_equal(pixel, np.broadcast_to(pixel[:1], pixel.shape)):
        return "pixels", pixel[0].copy()
    raise SystolixError(f"{_MIXED} ([{', '.join(map(str, source_shape[1:]))}] -> [{', '.join(map(str, shape[1:]))}])")


def plan_moves(model: ir.Model, host: set[str], dense_views: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
               ) -> MovePlan:
    """Decide, for every Reshape/Transpose that does not work on a host tensor, whether it is an alias, a view or
    a move (see the module docstring).

    Parameters
    ----------
    model : ir.Model
        Integer or float IR.
    host : set of str
        Tensors computed by the host before it writes ``act`` (the graph inputs and their host transforms).
    dense_views : dict
        :func:`systolix.compiler.compile.transpose_views` of the model (Transposes folded into Dense weights).
    """
    shapes = {t.name: tuple(t.shape) for t in model.inputs}
    for layer in model.layers:
        shapes[layer.output] = tuple(layer.out_shape)
    producer = {layer.output: i for i, layer in enumerate(model.layers)}
    materialized: set[str] = set()
    refused: dict[int, str] = {}
    readers: dict[str, list[ir.Layer]] = {}
    for layer in model.layers:
        for name in layer.inputs:
            readers.setdefault(name, []).append(layer)
    while True:
        alias, order, views, transposed = _follow(model, host, materialized)
        folds: dict[int, np.ndarray] = {}
        wanted: set[str] = set()
        for i, layer in enumerate(model.layers):
            if isinstance(layer, ir.Slice):  # a selection has no view the host could read: always written
                if i not in refused:
                    wanted.add(layer.output)
                    if layer.inputs[0] in transposed:  # a selection of a view: one move from the stored tensor
                        try:  # when the composition is one (ShuffleNet v2's split of the shuffled channels)
                            classify_move(order[layer.output], shapes[alias[layer.output]], shapes[layer.output])
                        except SystolixError:  # else the view is written first
                            wanted.add(_writable(model, layer.inputs[0], transposed, shapes, producer))
                continue
            if layer.host or i in refused or layer.inputs[0] in host or isinstance(layer, ir.Reshape):
                continue
            if isinstance(layer, ir.Transpose):
                if layer.output in dense_views:
                    continue
                name = layer.inputs[0]
                if name in transposed:  # a Transpose of a view: the view is written first
                    wanted.add(_writable(model, name, transposed, shapes, producer))
                continue
            for name in layer.inputs:
                if name not in alias or name in materialized:
                    continue
                if isinstance(layer, ir.Dense) and (name in dense_views or name not in transposed):
                    continue  # a Dense layer reads any stored order through its weights
                root = alias[name]
                same = np.array_equal(order[name].reshape(-1), np.arange(order[name].size))
                c, h, w = _geometry(shapes[name])
                c0, h0, w0 = _geometry(shapes[root])
                if same and (c, h * w) == (c0, h0 * w0):
                    continue
                sources = _foldable(name, readers, views, order, shapes, alias)
                if sources is not None:  # a convolution reads the stored channels with its weights permuted
                    folds[i] = sources
                    continue
                wanted.add(name)
        new = wanted - materialized
        for name in sorted(new):
            i = producer[name]
            try:
                storage_geometry(shapes[name], "")
            except SystolixError:
                refused[i] = (f"its output {list(shapes[name])} would have to be written for the next layer, and "
                              "tensors of that rank have no accelerator layout (2-D to 4-D only)")
        new = {n for n in new if producer[n] not in refused}
        if not new:
            break
        materialized |= new
    moves: dict[int, Move] = {}
    for name in sorted(materialized, key=producer.get):
        i = producer[name]
        root = alias[name]  # the stored tensor the chain that produces ``name`` starts from
        try:
            kind, sources = classify_move(order[name], shapes[root], shapes[name])
        except SystolixError as e:
            refused[i] = str(e)
            continue
        moves[i] = Move(i, root, kind, sources)
    alias = {n: r for n, r in alias.items() if n not in materialized}
    views = {n: v for n, v in views.items() if n not in materialized}
    return MovePlan(alias, views, moves, refused, folds)


def _foldable(name: str, readers: dict, views: dict, order: dict, shapes: dict, alias: dict) -> np.ndarray | None:
    """The stored channel of each channel of ``name`` when ``name`` is a channel permutation of its stored tensor
    read only by convolutions of one group (and the host through its view), else None."""
    users = readers.get(name, [])
    if not users or name not in views or not all(isinstance(u, ir.Conv) and u.group == 1 for u in users):
        return None
    try:
        kind, sources = classify_move(order[name], shapes[alias[name]], shapes[name])
    except SystolixError:
        return None
    channels = shapes[alias[name]][1]
    if kind != "channels" or sorted(sources.tolist()) != list(range(channels)):
        return None
    return sources


def _writable(model: ir.Model, name: str, transposed: set[str], shapes: dict, producer: dict) -> str:
    """The tensor to write for a view ``name`` that is read through another Transpose or a Slice: the last tensor
    of its chain that has an accelerator layout (a channel shuffle's 4-D output, not the next 5-D reshape of it)."""
    while _geometry(shapes[name])[0] < 0 and isinstance(model.layers[producer[name]], ir.Reshape) \
            and model.layers[producer[name]].inputs[0] in transposed:
        name = model.layers[producer[name]].inputs[0]
    return name


def _geometry(shape: tuple[int, ...]) -> tuple[int, int, int]:
    try:
        return storage_geometry(shape, "")
    except SystolixError:
        return (-1, -1, -1)


def _follow(model: ir.Model, host: set[str], materialized: set[str]):
    """alias (tensor -> root), order (tensor -> NCHW positions in its root), views, and the tensors that went
    through a Transpose, over the device-side Reshape/Transpose layers; a ``materialized`` tensor is written by
    the accelerator, so the chains of its readers start from it (its own entries describe how it is written)."""
    alias: dict[str, str] = {}
    order: dict[str, np.ndarray] = {}
    views: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    transposed: set[str] = set()
    for layer in model.layers:
        if not isinstance(layer, ir.Reshape | ir.Transpose | ir.Slice) or (
                layer.inputs[0] in host and not isinstance(layer, ir.Slice)):
            continue
        src = layer.inputs[0]
        if src in materialized or src not in alias:
            root, base = src, np.arange(int(np.prod(layer.in_shapes[0][1:]))).reshape(layer.in_shapes[0][1:])
            was_transposed, view = False, None
        else:
            root, base, was_transposed, view = alias[src], order[src], src in transposed, views.get(src)
        if isinstance(layer, ir.Slice):
            out = base[layer.index()[1:]]
        elif isinstance(layer, ir.Transpose):
            out = base.transpose([p - 1 for p in layer.perm[1:]])
            if not was_transposed:
                views[layer.output] = (tuple(layer.perm), tuple(layer.in_shapes[0]))
            transposed.add(layer.output)
        else:
            out = base.reshape(layer.out_shape[1:])
            if view is not None:
                views[layer.output] = view
            if was_transposed:
                transposed.add(layer.output)
        alias[layer.output] = root
        order[layer.output] = out
    return alias, order, views, transposed


# -- lowering ---------------------------------------------------------------------------------------------


def channel_move(layer: ir.Layer, move: Move, x: TensorPlacement, y: TensorPlacement, lanes: int,
                 acc_depth: int) -> Lowered:
    """A channel permutation as a 1x1 CONV by the permutation matrix, requantization scale 1.0
    (:func:`systolix.compiler.lower.permutation_conv`)."""
    return permutation_conv(layer, move.sources, x, y, lanes, acc_depth, "channel permutation")


def pixel_runs(sources: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``(first output pixel, count, first source pixel, step)`` of the runs of output pixels whose source pixels
    are evenly spaced (step 1 to 1023), longest first from the left."""
    runs: list[tuple[int, int, int, int]] = []
    j, n = 0, len(sources)
    while j < n:
        step = int(sources[j + 1] - sources[j]) if j + 1 < n else 1
        if not 1 <= step <= 1023:
            runs.append((j, 1, int(sources[j]), 1))
            j += 1
            continue
        k = j + 1
        while k < n and k - j < 1023 and int(sources[k] - sources[k - 1]) == step:
            k += 1
        runs.append((j, k - j, int(sources[j]), step))
        j = k
    return runs


def pixel_move(layer: ir.Layer, move: Move, x: TensorPlacement, y: TensorPlacement) -> list[Lowered]:
    """A pixel permutation as one-tap MAXPOOL copies: per channel block and run of :func:`pixel_runs`, an
    instruction reading ``count`` rows ``step`` apart (a ``count x step`` input read by a 1x1 window at stride
    1: the output pixel ``i`` is the input row ``i * step``) and writing them one after the other."""
    hw_in, hw_out = x.h * x.w, y.h * y.w
    parts = []
    runs = pixel_runs(move.sources)
    for cb in range(y.blocks):
        for first, count, src, step in runs:
            fields = dict(opcode=Opcode.MAXPOOL, in_blocks=1, in_h=count, in_w=step, out_blocks=1, out_h=count,
                          out_w=1, k_h=1, k_w=1, stride_h=1, stride_w=1, pad_top=0, pad_left=0, dil_h=1, dil_w=1,
                          in_base=x.base + cb * hw_in + src, out_base=y.base + cb * hw_out + first)
            parts.append(Lowered(fields, note=f"pixel permutation: channel block {cb}, output pixels {first}.."
                                              f"{first + count - 1} from every {step}th row from {src}"))
    return parts
