"""The integer canonical form: any quantized ONNX model -> one ONNX model of onnxruntime integer operators.

A quantized model comes as QDQ (``DequantizeLinear -> float op -> QuantizeLinear``, as written by
onnxruntime's quantizer or by tf2onnx from TFLite), as QOperator (``QLinearConv``, ``QGemm``, ...) or
as a mix. onnxruntime fuses some QDQ groups into integer kernels and runs others in float32, so its
result on a QDQ graph is not an integer function of the declared quantization parameters. The
canonical form states that integer meaning explicitly:

- ``DQ -> Conv -> [Relu|Clip] -> Q``                  => ``QLinearConv`` (int32 bias)
- ``DQ -> MatMul(DQ(w)) -> [Add(bias)] -> [Relu] -> Q`` => ``QGemm``; ``Gemm`` likewise;
  MatMul of two activations => ``QLinearMatMul``
- ``DQ, DQ -> Add|Mul -> [Relu] -> Q``                => ``QLinearAdd`` / ``QLinearMul``
- ``DQ -> AveragePool|GlobalAveragePool -> Q``        => ``QLinearAveragePool`` / ``QLinearGlobalAveragePool``
- ``DQ -> Concat -> Q``                               => ``QLinearConcat``
- ``DQ -> MaxPool|Reshape|Flatten|Transpose|Squeeze|Unsqueeze -> Q`` (same parameters) => the op on integers
- ``DQ -> unary elementwise op -> Q``                 => kept: a 256-entry table for the frontend
- a float input read by one ``QuantizeLinear``        => an integer input (the host quantizes)
- trailing ``DQ``, ``DQ -> Softmax [-> Q]`` at outputs => removed (the host computes them)
- QOperator nodes and integer layout ops              => unchanged

A Relu or Clip between the op and its Q is dropped when the output range clamp already performs it
(Relu: output zero point = qmin); otherwise the op writes the integer tensor with the Q's parameters and
the Relu/Clip stays as a ``DQ -> Relu -> Q`` table, which is exact because Q is monotonic.

Canonical nodes take the name of the original compute node and write the original Q's output tensor,
so intermediate tensors can be compared by name against the original model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from systolix.errors import SystolixError
from systolix.frontend.canonical_edges import quantize_inputs, strip_outputs
from systolix.frontend.canonical_graph import QOP_OUTPUT_ZP_INPUT, GraphView, describe, elem_types
from systolix.frontend.canonical_operands import CLAMP_OPS, clamp_is_requant, output_params
from systolix.frontend.canonical_prefix import InputPrefix
from systolix.frontend.canonical_report import LayerDisagreement, float_execution_report, ort_executed_tensors
from systolix.frontend.canonical_rules import LAYOUT_OPS, RULES, Group, matmul
from systolix.frontend.reference import ORT_ERRORS, session_options

__all__ = [
    "UNARY_OPS",
    "CanonicalModel",
    "ConvertedLayer",
    "LayerDisagreement",
    "canonicalize",
    "float_execution_report",
]

#: Elementwise one-input ops kept as ``DQ -> op -> Q`` (the frontend turns them into 256-entry tables).
UNARY_OPS = frozenset(
    {
        "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Celu", "Clip", "Cos", "Cosh",
        "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "Identity", "LeakyRelu", "Log",
        "Mish", "Neg", "PRelu", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
        "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu",
    }
)  # fmt: skip

#: onnxruntime integer operators passed through unchanged (com.microsoft or the default domain).
INTEGER_OPS = frozenset(QOP_OUTPUT_ZP_INPUT) - {"QLinearSoftmax"}

_INT_TYPES = (TensorProto.INT8, TensorProto.UINT8)
_SUPPORTED = (
    "Conv, MatMul, Gemm, Add, Mul (+ Relu/Clip), AveragePool, GlobalAveragePool, Concat, "
    f"{', '.join(LAYOUT_OPS)} between DequantizeLinear and QuantizeLinear; unary elementwise ops as "
    "DQ->op->Q tables; onnxruntime QLinear*/QGemm operators"
)


@dataclass(frozen=True)
class ConvertedLayer:
    """One QDQ group rewritten into an onnxruntime integer operator.

    Attributes
    ----------
    name : str
        Name of the original compute node (and of the canonical node replacing it).
    op : str
        Canonical op type (``QLinearConv``, ``QGemm``, ...).
    why : str
        Why the result may differ from onnxruntime on the original graph, or how it was expressed.
    tensor : str
        The integer tensor the group writes (the original QuantizeLinear's output).
    """

    name: str
    op: str
    why: str
    tensor: str = ""


@dataclass(frozen=True)
class CanonicalModel:
    """Result of :func:`canonicalize`.

    Attributes
    ----------
    model : onnx.ModelProto
        The canonical model: onnxruntime integer operators, integer layout ops and ``DQ -> unary -> Q``.
    converted : list[ConvertedLayer]
        Groups whose canonical result may differ from onnxruntime running the original graph: those
        onnxruntime leaves in float32, and those whose bias had to be re-quantized.
    input_quant : dict[str, tuple[numpy.float32, int, numpy.dtype]]
        For each canonical input that replaces a float input quantized by a leading QuantizeLinear:
        (scale, zero point, integer type). The host performs that quantization. Keyed by canonical input
        name (the QuantizeLinear's output); :attr:`input_map` gives the original input.
    host_ops : list[str]
        Trailing ops removed from the graph outputs (left to the host), one sentence each.
    output_map : dict[str, str]
        Canonical output name -> the original graph output it stands for (through :attr:`host_ops`).
    input_map : dict[str, str]
        Canonical input name -> original input name.
    rewritten : list[ConvertedLayer]
        Every QDQ group that was rewritten (a superset of :attr:`converted`).
    input_prefix : dict[str, InputPrefix]
        Canonical input -> the elementwise preprocessing before it that the host runs with onnxruntime
        (:mod:`~systolix.frontend.canonical_prefix`); such an input has no :attr:`input_quant` entry.
    """

    model: onnx.ModelProto
    converted: list[ConvertedLayer]
    input_quant: dict[str, tuple[np.float32, int, np.dtype]]
    host_ops: list[str]
    output_map: dict[str, str]
    input_map: dict[str, str] = field(default_factory=dict)
    rewritten: list[ConvertedLayer] = field(default_factory=list)
    input_prefix: dict[str, InputPrefix] = field(default_factory=dict)


def _ranks(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:
        inferred = model
    g = inferred.graph
    return {v.name: v for v in (*g.value_info, *g.input, *g.output)}


def _rank(info: dict[str, onnx.ValueInfoProto], name: str) -> int | None:
    vi = info.get(name)
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return None
    return len(vi.type.tensor_type.shape.dim)


def _ort_shapes(model: onnx.ModelProto, names: list[str], types: dict[str, int]) -> dict[str, list]:
    """Shapes onnxruntime infers for the tensors ``names`` (dims: int, symbolic name or None)."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    del probe.graph.value_info[:]
    for name in names:
        vi = onnx.ValueInfoProto()
        vi.name = name
        vi.type.tensor_type.elem_type = types[name]
        probe.graph.output.append(vi)
    options = session_options(exact=False)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
    except ORT_ERRORS as exc:
        raise SystolixError(
            f"onnxruntime cannot load the canonical model: {str(exc).splitlines()[0]}"
        ) from exc
    return {o.name: [d if isinstance(d, int | str) else None for d in o.shape] for o in session.get_outputs()}


class _Canonicalizer:
    def __init__(self, model: onnx.ModelProto) -> None:
        copy = onnx.ModelProto()
        copy.CopyFrom(model)
        self.info = _ranks(copy)
        self.ort_tensors = ort_executed_tensors(model)
        self.view = GraphView(copy)
        self.rewritten: list[ConvertedLayer] = []
        self.converted: list[ConvertedLayer] = []
        self.removed: set[int] = set()
        self.inserted: dict[int, list[onnx.NodeProto]] = {}

    # -- matching ----------------------------------------------------------------------------------
    def _single_use(self, tensor: str, reader: onnx.NodeProto, owner: onnx.NodeProto) -> None:
        if self.view.only_consumer(tensor) is not reader:
            users = ", ".join(describe(u) for u in self.view.consumers.get(tensor, []) if u is not reader)
            raise SystolixError(
                f"{describe(owner)}: its float result {tensor!r} is also used by "
                f"{users or 'the graph outputs'}; it must be read only by the next node of its group"
            )

    def _rewrite_q(self, q: onnx.NodeProto) -> None:
        view = self.view
        node = view.producer.get(q.input[0])
        if node is None or node.op_type == "QuantizeLinear":
            return  # a float graph input: handled (or rejected) by quantize_inputs
        if node.op_type == "DequantizeLinear":
            self._requantize(node, q)
            return
        if node.op_type in UNARY_OPS and view.producer_op(node.input[0]) == "DequantizeLinear":
            return  # a table: kept
        chain = [q]
        act = None
        if node.op_type in CLAMP_OPS and view.producer.get(node.input[0]) is not None:
            self._single_use(node.output[0], q, node)
            act, node = node, view.producer[node.input[0]]
            chain.insert(0, act)
        extra: tuple[onnx.NodeProto, ...] = ()
        if node.op_type == "Add":
            mm = next(
                (
                    view.producer[t]
                    for t in node.input
                    if view.producer_op(t) == "MatMul" and view.only_consumer(t) is node
                ),
                None,
            )
            if mm is not None:
                self._single_use(node.output[0], chain[0], node)
                extra, node = (node,), mm
                chain.insert(0, extra[0])
        if node.op_type != "MatMul" and node.op_type not in RULES:
            raise SystolixError(
                f"{describe(node)} before {describe(q)} is not supported; supported: {_SUPPORTED}"
            )
        self._single_use(node.output[0], chain[0], node)
        out = output_params(view, q, node)
        fused = act is None or clamp_is_requant(view, act, out)
        out_name = q.output[0] if fused else view.unique(f"{q.output[0]}_before_{act.op_type}")
        group = Group(node, extra, q, out, out_name)
        if node.op_type == "MatMul":
            rewrite = matmul(view, group, _rank(self.info, node.input[0]))
        else:
            rewrite = RULES[node.op_type](view, group)
        new_nodes = list(rewrite.nodes)
        self.removed.update(id(n) for n in rewrite.removed)
        notes = list(rewrite.notes)
        if fused:
            self.removed.add(id(q))
            if act is not None:
                self.removed.add(id(act))
        else:
            dq_inputs = [out_name, *q.input[1:]]
            new_nodes.append(
                helper.make_node(
                    "DequantizeLinear", dq_inputs, [act.input[0]], name=view.unique(f"{act.name}_dequantize")
                )
            )
        self.inserted[id(node)] = new_nodes
        self._record(node, chain, q, rewrite.op, notes, act, fused)

    def _requantize(self, dq: onnx.NodeProto, q: onnx.NodeProto) -> None:
        """DQ -> Q: Identity on the integers when the parameters agree, else a DQ -> Identity -> Q table."""
        view = self.view
        if view.dq_params(dq).same_as(view.qparams(q)):
            self.removed.add(id(q))
            self.inserted[id(q)] = [helper.make_node("Identity", [dq.input[0]], [q.output[0]], name=q.name)]
        else:
            mid = view.unique(f"{q.input[0]}_identity")
            self.inserted[id(q)] = [
                helper.make_node("Identity", [q.input[0]], [mid], name=view.unique(f"{q.name}_identity"))
            ]
            q.input[0] = mid

    def _record(self, node, chain, q, op, notes, act, fused) -> None:
        pattern = "DQ->" + "->".join(n.op_type for n in [node, *chain[:-1]]) + "->Q"
        internal = [o for n in [node, *chain[:-1]] for o in n.output if o]
        # Layout ops give the same integers in float (DQ/Q round trip exactly, max commutes with them).
        in_float = (
            node.op_type not in LAYOUT_OPS
            and self.ort_tensors is not None
            and any(t in self.ort_tensors for t in internal)
        )
        reasons = ([f"onnxruntime leaves {pattern} in float"] if in_float else []) + notes
        how = f"{pattern} expressed as {op}"
        if act is not None:
            how += (
                f" (its {act.op_type} is the output range clamp)"
                if fused
                else f", {act.op_type} kept as a table"
            )
        layer = ConvertedLayer(node.name, op, "; ".join([*reasons, how]), q.output[0])
        self.rewritten.append(layer)
        if reasons:
            self.converted.append(layer)

    # -- driver ------------------------------------------------------------------------------------
    def run(self) -> CanonicalModel:
        view = self.view
        host_ops, output_map, outputs = strip_outputs(view)
        self._set_outputs(outputs)
        view.commit()  # drops the host's trailing nodes before matching groups
        input_quant, input_map, input_prefix = quantize_inputs(view, UNARY_OPS)
        for node in list(view.nodes):
            if node.op_type == "QuantizeLinear" and id(node) not in self.removed:
                self._rewrite_q(node)
        nodes: list[onnx.NodeProto] = []
        for node in view.nodes:
            nodes.extend(self.inserted.get(id(node), []))
            if id(node) not in self.removed:
                nodes.append(node)
        view.nodes = nodes
        view.commit()
        self._unshare_weights()
        self._exact_matmul_weights()
        self._validate()
        model = view.model
        if any(n.domain == "com.microsoft" for n in model.graph.node) and not any(
            o.domain == "com.microsoft" for o in model.opset_import
        ):
            model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
        self._set_value_info()
        try:
            onnx.checker.check_model(model)
        except onnx.checker.ValidationError as exc:
            raise SystolixError(f"the canonical model does not pass onnx.checker: {exc}") from exc
        return CanonicalModel(
            model, self.converted, input_quant, host_ops, output_map, input_map, self.rewritten, input_prefix
        )

    def _unshare_weights(self) -> None:
        """Give each integer matrix op its own int8 weight and weight zero point.

        With ``session.x64quantprecision`` onnxruntime rewrites them to uint8 under a name derived from
        the original, and fails ("Attempt to replace the existing tensor") when two nodes share one.
        """
        view = self.view
        seen: set[str] = set()
        for node in view.nodes:
            if node.op_type not in ("QLinearConv", "QLinearMatMul", "QGemm"):
                continue
            for idx in (3, 5):
                name = node.input[idx] if len(node.input) > idx else ""
                if name not in view.initializers:
                    continue
                if name in seen:
                    value = view.const(name)
                    node.input[idx] = view.add_initializer(value, f"{name}_{node.name}")
                seen.add(name)
        view.commit()

    def _exact_matmul_weights(self) -> None:
        """uint8 x int8 ``QLinearMatMul`` with constant weights -> uint8 x uint8 (weights and zero points + 128).

        ``session.x64quantprecision`` does not reach QLinearMatMul: on x86 CPUs without VNNI onnxruntime runs
        it on the saturating U8S8 kernel (measured: 1,282 of the outputs of 30 random cases differ when some
        ``|w| > 64``). ``(w + 128) - (w_zp + 128) = w - w_zp``, so the integer meaning is unchanged, and the
        U8U8 kernel is exact on every x86 CPU.
        """
        view = self.view
        types = elem_types(view)
        for node in view.nodes:
            if node.op_type != "QLinearMatMul" or types.get(node.input[0]) != TensorProto.UINT8:
                continue
            w, w_zp = view.const(node.input[3]), view.const(node.input[5])
            if w is None or w_zp is None or w.dtype != np.int8 or w_zp.dtype != np.int8:
                continue
            node.input[3] = view.add_initializer((w.astype(np.int16) + 128).astype(np.uint8), f"{node.input[3]}_u8")
            node.input[5] = view.add_initializer((w_zp.astype(np.int16) + 128).astype(np.uint8),
                                                 f"{node.input[5]}_u8")
        view.commit()

    def _set_outputs(self, outputs: list[str]) -> None:
        graph = self.view.graph
        del graph.output[:]
        for name in outputs:
            vi = onnx.ValueInfoProto()
            vi.name = name
            graph.output.append(vi)

    def _set_value_info(self) -> None:
        """Give every canonical tensor its type and shape (graph outputs need both for onnx.checker).

        Shapes come from onnx shape inference on the original model where the tensor existed there,
        else from onnxruntime's own inference (which knows the com.microsoft operators).
        """
        view = self.view
        types = elem_types(view)
        inputs = {v.name for v in view.graph.input}
        names = [o for n in view.nodes for o in n.output if o and o not in inputs and o in types]
        shapes = _ort_shapes(view.model, names, types)

        def info(name: str) -> onnx.ValueInfoProto:
            old = self.info.get(name)
            if (
                old is not None
                and old.type.tensor_type.elem_type == types[name]
                and old.type.tensor_type.HasField("shape")
            ):
                vi = onnx.ValueInfoProto()
                vi.CopyFrom(old)
                return vi
            if name not in shapes:
                raise SystolixError(f"cannot determine the shape of canonical tensor {name!r}")
            return helper.make_tensor_value_info(name, types[name], shapes[name])

        outputs = {o.name for o in view.graph.output}
        for out in view.graph.output:
            if out.name not in types:
                raise SystolixError(
                    f"graph output {out.name!r} has no integer producer in the canonical model"
                )
            out.CopyFrom(info(out.name))
        del view.graph.value_info[:]
        view.graph.value_info.extend(info(n) for n in names if n not in outputs)

    def _validate(self) -> None:
        """Every node must be an integer op, an integer layout op or part of a DQ -> unary -> Q table."""
        view = self.view
        types = elem_types(view)
        for node in view.nodes:
            op = node.op_type
            if op == "Constant":
                continue
            if op in INTEGER_OPS and node.domain in ("", "com.microsoft"):
                if op == "QGemm" and (len(node.input) < 8 or not node.input[7]):
                    raise SystolixError(
                        f"{describe(node)} has a float output; only integer outputs are supported"
                    )
                continue
            if op in LAYOUT_OPS and types.get(node.input[0]) in _INT_TYPES:
                continue
            if op == "DequantizeLinear" and types.get(node.input[0]) in _INT_TYPES:
                users = view.consumers.get(node.output[0], [])
                if users and all(u.op_type in UNARY_OPS for u in users):
                    continue
                bad = next((u for u in users if u.op_type not in UNARY_OPS), None)
                raise SystolixError(
                    f"{describe(bad)} reads the float output of {describe(node)}"
                    f" and is not supported; supported: {_SUPPORTED}"
                    if bad is not None
                    else f"{describe(node)}: its float output is a graph output"
                )
            if op in UNARY_OPS and view.producer_op(node.input[0]) == "DequantizeLinear":
                users = view.consumers.get(node.output[0], [])
                if (
                    len(users) == 1
                    and users[0].op_type == "QuantizeLinear"
                    and node.output[0] not in view.output_names
                ):
                    continue
            if op == "QuantizeLinear":
                src = view.producer.get(node.input[0])
                if src is not None and src.op_type in UNARY_OPS:
                    continue
            raise SystolixError(f"{describe(node)} is not supported here; supported: {_SUPPORTED}")


def canonicalize(model: onnx.ModelProto) -> CanonicalModel:
    """Bring a quantized model (QDQ, QOperator or a mix) to the integer canonical form.

    Parameters
    ----------
    model : onnx.ModelProto
        The quantized model (not modified).

    Returns
    -------
    CanonicalModel
        The canonical model and what was converted, quantized by the host, or left to the host.

    Raises
    ------
    SystolixError
        Naming the first node that has no integer form, its op type and what is supported.
    """
    return _Canonicalizer(model).run()
