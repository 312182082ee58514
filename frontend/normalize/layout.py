"""``cancel-layout-round-trips`` and ``reduce-mean-as-global-pool``: the layout shuffles exporters wrap around
every layer, and the channels-last mean that stands for a global average pool.

tf2onnx writes each layer of a Keras/TFLite Conv1D model in NCHW between NHWC tensors: after a layer
``Transpose(0,2,3,1) -> Reshape(N,L,C) -> Unsqueeze(1) -> Transpose(0,3,1,2)`` brings the tensor back to where
it was. A chain of data-movement ops (Transpose, Reshape, Squeeze, Unsqueeze, Flatten, Identity, each the only
reader of its input) whose composition leaves every element where it was is removed; in a quantized graph such
chains run on the int8 tensors between QuantizeLinear and DequantizeLinear.

Keras' ``GlobalAveragePooling1D/2D`` becomes ``ReduceMean`` over the channels-last spatial axes, often behind such a
chain; torch's dynamo exporter writes ``adaptive_avg_pool2d(x, 1)`` as ``ReduceMean`` over axes 2.. with
``keepdims=1``, which is ``GlobalAveragePool`` itself. A ``ReduceMean`` (``keepdims=0``) whose input comes, through
a data-movement chain and at most a per-tensor DequantizeLinear, from a tensor whose reduced elements are exactly
its spatial axes 2.. (channels first) becomes ``GlobalAveragePool`` on that tensor followed by a ``Flatten`` (after
the QuantizeLinear that reads the mean, in a quantized graph, so that ``DQ -> GlobalAveragePool -> Q`` stays one
group).

Both are decided on index arithmetic: the chain is applied by NumPy to ``arange`` at two batch sizes, and the
element sets being averaged are compared. onnxruntime's outputs are compared by the normaliser as for every
rewrite.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import copy_model, inferred_shapes

__all__ = ["CancelLayoutRoundTrips", "ReduceMeanAsGlobalPool"]

_MOVES = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity"})
_BATCHES = (2, 3)


class _Graph:
    """Readers, producers, constants and static shapes (batch symbolic) of a model."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.producer = {o: n for n in model.graph.node for o in n.output}
        self.readers: dict[str, list[onnx.NodeProto]] = {}
        for node in model.graph.node:
            for name in node.input:
                self.readers.setdefault(name, []).append(node)
        self.constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.outputs = {o.name for o in model.graph.output}
        self.shapes = inferred_shapes(model, fallback=True)

    def only_reader(self, tensor: str) -> onnx.NodeProto | None:
        readers = self.readers.get(tensor, [])
        return readers[0] if len(readers) == 1 and tensor not in self.outputs else None

    def concrete(self, tensor: str, batch: int) -> tuple[int, ...] | None:
        shape = self.shapes.get(tensor)
        if not shape or any(d is None for d in shape[1:]):
            return None
        return (batch, *shape[1:])

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        for a in node.attribute:
            if a.name == name:
                return helper.get_attribute_value(a)
        return default


def _move(graph: _Graph, node: onnx.NodeProto) -> Callable[[np.ndarray], np.ndarray] | None:
    """The NumPy meaning of one data-movement node, or None when it depends on something not constant."""
    op = node.op_type
    if op == "Identity":
        return lambda a: a
    if op == "Transpose":
        perm = graph.attr(node, "perm")
        return (lambda a: np.transpose(a, perm)) if perm is not None else (lambda a: np.transpose(a))
    if op == "Flatten":
        axis = graph.attr(node, "axis", 1)
        return lambda a: a.reshape(int(np.prod(a.shape[:axis])), -1)
    if op in ("Squeeze", "Unsqueeze"):
        axes = graph.attr(node, "axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            if node.input[1] not in graph.constants:
                return None
            axes = graph.constants[node.input[1]].tolist()
        if op == "Squeeze":
            return lambda a: np.squeeze(a, axis=tuple(axes) if axes is not None else None)
        return lambda a: np.expand_dims(a, tuple(axes))
    if op == "Reshape":
        if len(node.input) < 2 or node.input[1] not in graph.constants or graph.attr(node, "allowzero", 0):
            return None
        target = graph.constants[node.input[1]].astype(np.int64).tolist()

        def reshape(a: np.ndarray) -> np.ndarray:
            shape = [a.shape[i] if d == 0 else d for i, d in enumerate(target)]
            return a.reshape(shape)

        return reshape
    return None


#: Ops that act on each element alone, so they commute with any data movement (their other inputs must be
#: one-value constants: a per-tensor QuantizeLinear/DequantizeLinear, Clip bounds, a LeakyRelu slope).
_ELEMENTWISE = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu",
                          "Softplus", "Softsign", "Gelu", "Erf", "Exp", "Abs", "Neg", "Sqrt", "QuantizeLinear",
                          "DequantizeLinear", "Cast", "Identity"})


def _elementwise(graph: _Graph, node: onnx.NodeProto) -> bool:
    if node.op_type not in _ELEMENTWISE or len(node.output) != 1:
        return False
    return all(name == "" or (name in graph.constants and graph.constants[name].size == 1)
               for name in node.input[1:])


def _chain(graph: _Graph, start: str) -> list[onnx.NodeProto]:
    """The longest run of data-movement and elementwise nodes from ``start``, each the only reader of its input."""
    nodes, tensor = [], start
    while True:
        node = graph.only_reader(tensor)
        if node is None or not node.input or node.input[0] != tensor:
            return nodes
        if node.op_type not in _MOVES and not _elementwise(graph, node):
            return nodes
        nodes.append(node)
        tensor = node.output[0]


def _apply(graph: _Graph, nodes: list[onnx.NodeProto], a: np.ndarray) -> np.ndarray | None:
    for node in nodes:
        if node.op_type not in _MOVES:  # elementwise: every element stays where it is
            continue
        f = _move(graph, node)
        if f is None:
            return None
        try:
            a = f(a)
        except (ValueError, IndexError, TypeError):
            return None
    return a


def _rewire(model: onnx.ModelProto, removed: set[int], renames: dict[str, str]) -> onnx.ModelProto:
    out = copy_model(model)
    keep = [n for i, n in enumerate(model.graph.node) if i not in removed]
    del out.graph.node[:]
    for node in keep:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        for i, name in enumerate(new.input):
            new.input[i] = renames.get(name, name)
        out.graph.node.append(new)
    return out


class CancelLayoutRoundTrips:
    name = "cancel-layout-round-trips"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        graph = _Graph(model)
        index = {id(n): i for i, n in enumerate(model.graph.node)}
        removed: set[int] = set()
        renames: dict[str, str] = {}
        chains = 0
        starts = [*(v.name for v in model.graph.input), *(o for n in model.graph.node for o in n.output)]
        for start in starts:
            nodes = _chain(graph, start)
            if len(nodes) < 2 or any(index[id(n)] in removed for n in nodes):
                continue
            # the longest prefix that composes to the identity
            for end in range(len(nodes), 1, -1):
                prefix = nodes[:end]
                moves = [n for n in prefix if n.op_type in _MOVES]
                if prefix[-1].op_type not in _MOVES or len(moves) < 2:
                    continue  # end on a move; a lone move is not a round trip
                if all(_identity(graph, start, prefix, batch) for batch in _BATCHES):
                    # the moves go; the elementwise nodes stay, each reading the one before (or ``start``)
                    removed.update(index[id(n)] for n in moves)
                    previous = start
                    for node in prefix:
                        if node.op_type in _MOVES:
                            renames[node.output[0]] = previous
                        else:
                            previous = node.output[0]
                    chains += 1
                    break
        if not chains:
            return None
        # a renamed tensor may itself be renamed (chains are disjoint, but be safe)
        for key, value in list(renames.items()):
            while value in renames and renames[value] != value:
                value = renames[value]
            renames[key] = value
        out = _rewire(model, removed, renames)
        return out, f"{chains} chain(s) of {len(removed)} Transpose/Reshape/Squeeze/Unsqueeze node(s) that " \
                    "leave every element where it was removed (elementwise ops between them kept)"


def _identity(graph: _Graph, start: str, nodes: list[onnx.NodeProto], batch: int) -> bool:
    shape = graph.concrete(start, batch)
    if shape is None:
        return False
    a = np.arange(int(np.prod(shape))).reshape(shape)
    b = _apply(graph, nodes, a)
    return b is not None and b.shape == a.shape and np.array_equal(a, b)


class ReduceMeanAsGlobalPool:
    name = "reduce-mean-as-global-pool"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        graph = _Graph(model)
        index = {id(n): i for i, n in enumerate(model.graph.node)}
        out_nodes = list(model.graph.node)
        removed: set[int] = set()
        replaced: dict[int, list[onnx.NodeProto]] = {}
        done = 0
        for node in model.graph.node:
            if node.op_type != "ReduceMean":
                continue
            axes = graph.attr(node, "axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = graph.constants.get(node.input[1])
                axes = None if axes is None else axes.tolist()
            if not axes:
                continue
            if graph.attr(node, "keepdims", 1):
                # torch's adaptive_avg_pool2d(x, 1) from the dynamo exporter: the mean over axes 2.. kept as size 1
                rank = len(graph.shapes.get(node.input[0]) or [])
                if rank >= 3 and sorted(a % rank for a in axes) == list(range(2, rank)):
                    replaced[index[id(node)]] = [helper.make_node("GlobalAveragePool", [node.input[0]],
                                                                  [node.output[0]], name=node.name)]
                    done += 1
                continue
            found = self._source(graph, node, axes)
            if found is None:
                continue
            source, moves, dq = found
            quantize = graph.only_reader(node.output[0])
            quantized = dq is not None and quantize is not None and quantize.op_type == "QuantizeLinear"
            if dq is not None and not quantized:
                continue
            pooled = f"{node.output[0]}__global_pool"
            removed.update(index[id(n)] for n in moves)
            if quantized:
                # src -> DQ -> GlobalAveragePool -> Q -> Flatten: the DQ/Q group stays whole
                new_dq = onnx.NodeProto()
                new_dq.CopyFrom(dq)
                new_dq.input[0] = source
                pool = helper.make_node("GlobalAveragePool", [dq.output[0]], [pooled], name=f"{node.name}__pool")
                new_q = onnx.NodeProto()
                new_q.CopyFrom(quantize)
                new_q.input[0] = pooled
                new_q.output[0] = f"{quantize.output[0]}__pooled"
                flat = helper.make_node("Flatten", [new_q.output[0]], [quantize.output[0]],
                                        name=f"{node.name}__flatten")
                replaced[index[id(dq)]] = [new_dq]
                replaced[index[id(node)]] = [pool]
                replaced[index[id(quantize)]] = [new_q, flat]
            else:
                pool = helper.make_node("GlobalAveragePool", [source], [pooled], name=f"{node.name}__pool")
                flat = helper.make_node("Flatten", [pooled], [node.output[0]], name=f"{node.name}__flatten")
                replaced[index[id(node)]] = [pool, flat]
            done += 1
        if not done:
            return None
        out = copy_model(model)
        del out.graph.node[:]
        for i, node in enumerate(out_nodes):
            if i in removed:
                continue
            out.graph.node.extend(replaced.get(i, [node]))
        return out, f"{done} ReduceMean node(s) over the spatial axes as GlobalAveragePool (+ Flatten where the " \
                    "mean drops the axes)"

    @staticmethod
    def _source(graph: _Graph, node: onnx.NodeProto, axes: list[int]):
        """``(tensor, data-movement nodes, DequantizeLinear or None)``: the channels-first tensor whose spatial
        mean the ReduceMean computes, or None."""
        tensor, dq = node.input[0], None
        producer = graph.producer.get(tensor)
        if producer is not None and producer.op_type == "DequantizeLinear":
            scale = graph.constants.get(producer.input[1])
            if scale is None or scale.size != 1 or graph.only_reader(tensor) is None:
                return None
            dq, tensor = producer, producer.input[0]
        moves = []
        while True:  # walk up the data-movement chain, each node read only by the next
            producer = graph.producer.get(tensor)
            if producer is None or producer.op_type not in _MOVES or graph.only_reader(tensor) is None:
                break
            moves.insert(0, producer)
            tensor = producer.input[0]
        for batch in _BATCHES:
            shape = graph.concrete(tensor, batch)
            if shape is None or len(shape) < 3:
                return None
            a = np.arange(int(np.prod(shape))).reshape(shape)
            b = _apply(graph, moves, a)
            if b is None:
                return None
            reduced = [ax % b.ndim for ax in axes]
            kept = [ax for ax in range(b.ndim) if ax not in reduced]
            if len(kept) != 2:  # the mean must be (N, C), as GlobalAveragePool + Flatten gives
                return None
            rows = int(np.prod([b.shape[k] for k in kept]))
            groups = np.sort(np.transpose(b, [*kept, *reduced]).reshape(rows, -1), 1)
            want = np.sort(a.reshape(shape[0] * shape[1], -1), 1)
            if groups.shape != want.shape or not np.array_equal(groups, want):
                return None
        return tensor, moves, dq


_BINARY = frozenset({"Add", "Sub", "Mul", "Div"})
#: Elementwise, but a Transpose is not hoisted over them on their own: they delimit quantized groups
#: (DQ -> op -> Q). A chain of whole groups (per-tensor Q/DQ) between two layout changes is hoisted over.
_KEEP_IN_PLACE = frozenset({"QuantizeLinear", "DequantizeLinear", "Cast", "Identity"})
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})


def _dq_constant(graph: _Graph, name: str) -> tuple[onnx.NodeProto, np.ndarray] | None:
    """(the DequantizeLinear, its integer constant) when ``name`` is a per-tensor DequantizeLinear of an
    initializer: a quantized graph's constant operand."""
    dq = graph.producer.get(name)
    if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in graph.constants:
        return None
    if any(i and (i not in graph.constants or graph.constants[i].size != 1) for i in dq.input[1:]):
        return None
    return dq, graph.constants[dq.input[0]]


def _constant_operands(graph: _Graph, node: onnx.NodeProto) -> list[str]:
    """The inputs of a binary elementwise node that are constants (or DequantizeLinear of one)."""
    return [name for name in node.input if name in graph.constants or _dq_constant(graph, name) is not None]


def _constant_value(graph: _Graph, name: str) -> np.ndarray:
    found = _dq_constant(graph, name)
    return graph.constants[name] if found is None else found[1]


class HoistTransposeOverElementwise:
    """``hoist-transpose``: a Transpose after elementwise ops moves before them, their constants transposed.

    Keras' ``Rescaling`` and ``Normalization`` layers at a model's NHWC input become ``Mul``/``Add`` by constants of
    shape ``[1, 1, 1, C]`` followed by tf2onnx's ``Transpose`` to NCHW: per-channel constants on the wrong axis for the
    importer. Elementwise ops commute with a transposition (each element meets the same constants), so the
    Transpose goes first and the constants are transposed with it: ``[1, C, 1, 1]``, per channel. The input's
    Transpose is then done by the host, as any layout change of the graph input.
    """

    name = "hoist-transpose"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        graph = _Graph(model)
        out = copy_model(model)
        nodes = list(model.graph.node)  # the objects ``graph`` knows; copied into ``out`` at the end
        hoisted = 0
        for transpose in [n for n in nodes if n.op_type == "Transpose"]:
            perm = graph.attr(transpose, "perm")
            if perm is None:
                continue
            chain = self._chain(graph, transpose.input[0])
            # only for what it is for: a constant of several values on an axis the Transpose moves (a lone
            # activation before a Transpose is left where the exporter put it)
            if not any(node.op_type in _BINARY and any(_constant_value(graph, name).size > 1
                                                       for name in _constant_operands(graph, node))
                       for node in chain):
                continue
            if any(node.op_type in _QDQ for node in chain) and (
                    chain[0].op_type != "DequantizeLinear" or chain[-1].op_type != "QuantizeLinear"
                    or graph.producer.get(self._data_input(graph, chain[0])) is None):
                continue  # quantized: whole groups only, and not up to a float graph input (its host quantizes)
            rank = len(perm)
            head = self._data_input(graph, chain[0])
            moved = f"{head}__hoisted_{transpose.name or hoisted}"
            new_nodes = [helper.make_node("Transpose", [head], [moved], name=f"{transpose.name}__hoisted", perm=perm)]
            previous = moved
            for i, node in enumerate(chain):
                new = onnx.NodeProto()
                new.CopyFrom(node)
                data = self._data_input(graph, node)
                for k, name in enumerate(new.input):
                    if name == data:
                        new.input[k] = previous
                    elif node.op_type in _BINARY:
                        c = _constant_value(graph, name)
                        c = c.reshape((1,) * (rank - c.ndim) + c.shape)
                        const = f"{name}__t{hoisted}_{i}"
                        moved_const = np.ascontiguousarray(np.transpose(c, perm))
                        out.graph.initializer.append(numpy_helper.from_array(moved_const, const))
                        found = _dq_constant(graph, name)
                        if found is not None:  # a quantized constant: its DequantizeLinear reads the moved codes
                            dq = onnx.NodeProto()
                            dq.CopyFrom(found[0])
                            dq.name, dq.input[0], dq.output[0] = f"{const}__dq", const, f"{const}__dq"
                            new_nodes.append(dq)
                            const = dq.output[0]
                        new.input[k] = const
                last = i == len(chain) - 1
                new.output[0] = transpose.output[0] if last else f"{node.output[0]}__hoisted"
                previous = new.output[0]
                new_nodes.append(new)
            position = min(nodes.index(n) for n in chain)
            gone = {id(n) for n in (*chain, transpose)}
            nodes = [n for n in nodes if id(n) not in gone]
            nodes[position:position] = new_nodes
            graph = None  # one hoist per pass over a fresh graph view keeps the bookkeeping simple
            hoisted += 1
            break
        if not hoisted:
            return None
        del out.graph.node[:]
        for node in nodes:
            out.graph.node.add().CopyFrom(node)
        # more hoists: repeat on the result (each moves one Transpose)
        again = self.apply(out)
        total = hoisted
        if again is not None:
            out, detail = again
            total += int(detail.split()[0])
        return out, f"{total} Transpose node(s) moved before the elementwise ops with constants that preceded them"

    @staticmethod
    def _data_input(graph: _Graph, node: onnx.NodeProto) -> str:
        if node.op_type in _BINARY:
            consts = _constant_operands(graph, node)
            return next(name for name in node.input if name not in consts)
        return node.input[0]

    @classmethod
    def _chain(cls, graph: _Graph, tensor: str) -> list[onnx.NodeProto]:
        """The elementwise nodes (unary, or binary with one constant) ending in ``tensor``, each read only by the
        next; outermost first."""
        chain: list[onnx.NodeProto] = []
        while True:
            node = graph.producer.get(tensor)
            if node is None or graph.only_reader(tensor) is None:
                break
            if node.op_type in _BINARY:
                consts = _constant_operands(graph, node)
                if len(node.input) != 2 or len(consts) != 1:
                    break
            elif not _elementwise(graph, node) or (node.op_type in _KEEP_IN_PLACE and node.op_type not in _QDQ):
                break
            chain.insert(0, node)
            tensor = cls._data_input(graph, node)
        return chain
