"""``lower-ir-version``: a file newer than onnxruntime reads, written with an IR version its opsets do not need.

``onnx.helper.make_model`` of the pinned onnx writes IR version 14, which onnxruntime 1.31 refuses ("IR
version 14 is newer than this onnxruntime supports (13)"), although the opsets of most such models were
defined under older IR versions. The IR version is lowered to the newest that onnxruntime reads, when the
model's opsets existed at that version.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .base import copy_model

__all__ = ["ONNXRUNTIME_MAX_IR", "LowerIrVersion"]

#: The newest IR version the pinned onnxruntime (1.31) loads.
ONNXRUNTIME_MAX_IR = 13


def _min_ir_for_opset(domain: str, version: int) -> int | None:
    """The IR version of the first onnx release that defined ``version`` of the default (or ML) opset."""
    column = {"": 2, "ai.onnx": 2, "ai.onnx.ml": 3}.get(domain)
    if column is None:
        return 0  # other domains (com.microsoft, ...) do not constrain the IR version
    for row in helper.VERSION_TABLE:
        if row[column] >= version:
            return row[1]
    return None


class LowerIrVersion:
    name = "lower-ir-version"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        if model.ir_version <= ONNXRUNTIME_MAX_IR:
            return None
        needed = [_min_ir_for_opset(o.domain, o.version) for o in model.opset_import]
        if any(n is None for n in needed) or max(needed, default=0) > ONNXRUNTIME_MAX_IR:
            return None  # the opsets need the new IR: the importer's own error (or onnxruntime's) says so
        out = copy_model(model)
        out.ir_version = ONNXRUNTIME_MAX_IR
        return out, (f"IR version {model.ir_version} -> {ONNXRUNTIME_MAX_IR} (the newest onnxruntime reads; the "
                     "opsets allow it)")
