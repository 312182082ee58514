"""``lower-opset``: an opset newer than onnxruntime implements, when no op the graph uses changed since.

``onnx.helper.make_model`` of the pinned onnx, called without ``opset_imports``, writes the newest opset
(28) and IR version 14; onnxruntime 1.31 implements the default domain up to opset 26 and refuses the file.
When every op of the graph has the same definition (the same ``since_version``) at opset 26 as at the
model's opset, the model means the same at 26: the opset is lowered (and then the IR version, by
``lower-ir-version``). An op whose newer definition only *admits more types* (the same attributes, inputs,
outputs and text; QuantizeLinear/DequantizeLinear/Cast-28 added the float6 types) means the same at 26 for the types
opset 26 admits: it is lowered when onnx's full type check at opset 26 passes (an int8 QDQ graph does, a float6
one does not). Otherwise the model is left as it is and onnxruntime's error says why.
"""

from __future__ import annotations

import onnx
from onnx import defs

from .base import copy_model

__all__ = ["ONNXRUNTIME_MAX_OPSET", "LowerOpset"]

#: The newest default-domain opset the pinned onnxruntime (1.31) implements.
ONNXRUNTIME_MAX_OPSET = 26


def _since(op: str, version: int) -> int | None:
    try:
        return defs.get_schema(op, version, "").since_version
    except Exception:
        return None


class LowerOpset:
    name = "lower-opset"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        entries = [o for o in model.opset_import if o.domain in ("", "ai.onnx")]
        if len(entries) != 1 or entries[0].version <= ONNXRUNTIME_MAX_OPSET:
            return None
        version = entries[0].version
        nodes = [n for n in model.graph.node if n.domain in ("", "ai.onnx")]
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in nodes for a in n.attribute):
            return None  # subgraphs (If, Loop, Scan): not in CNNs, not checked here
        changed = sorted({n.op_type for n in nodes
                          if _since(n.op_type, version) is None
                          or _since(n.op_type, version) != _since(n.op_type, ONNXRUNTIME_MAX_OPSET)})
        if not all(_only_types_added(op, version) for op in changed):
            return None
        out = copy_model(model)
        for o in out.opset_import:
            if o.domain in ("", "ai.onnx"):
                o.version = ONNXRUNTIME_MAX_OPSET
        if changed:
            checked = copy_model(out)
            checked.ir_version = min(checked.ir_version, onnx.IR_VERSION)
            try:
                onnx.checker.check_model(checked, full_check=True)  # the node types, against the opset-26 schemas
            except Exception:
                return None
            return out, (f"opset {version} -> {ONNXRUNTIME_MAX_OPSET} (the newest onnxruntime implements; "
                         f"{', '.join(changed)} only gained types since, and the graph uses none of them)")
        return out, (f"opset {version} -> {ONNXRUNTIME_MAX_OPSET} (the newest onnxruntime implements; no op of "
                     "the graph changed since)")


def _only_types_added(op: str, version: int) -> bool:
    """The definition of ``op`` at ``version`` differs from opset 26's only by admitting more types."""
    try:
        new, old = defs.get_schema(op, version, ""), defs.get_schema(op, ONNXRUNTIME_MAX_OPSET, "")
    except Exception:
        return False
    if sorted(new.attributes) != sorted(old.attributes) or new.doc != old.doc:  # a changed text: changed meaning
        return False
    if [(i.name, i.option) for i in new.inputs] != [(i.name, i.option) for i in old.inputs]:
        return False
    if [(o.name, o.option) for o in new.outputs] != [(o.name, o.option) for o in old.outputs]:
        return False
    allowed = {t.type_param_str: set(t.allowed_type_strs) for t in new.type_constraints}
    return all(t.type_param_str in allowed and set(t.allowed_type_strs) <= allowed[t.type_param_str]
               for t in old.type_constraints)
