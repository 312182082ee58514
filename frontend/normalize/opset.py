"""``upgrade-opset``: old opsets (6-12) upgraded to 13 with ``onnx.version_converter``.

The importer reads ops as opset 13 defines them (Gemm without the broadcast attribute, BatchNormalization
without ``spatial``, Reshape/Squeeze/Unsqueeze with shape inputs, Clip with min/max inputs...). The
converter keeps the arithmetic; where it fails the model is left as it is and the importer says which node
it cannot read.
"""

from __future__ import annotations

import onnx
from onnx import version_converter

from .base import copy_model

__all__ = ["TARGET_OPSET", "UpgradeOpset"]

TARGET_OPSET = 13


def _default_opset(model: onnx.ModelProto) -> int | None:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return o.version
    return None


class UpgradeOpset:
    name = "upgrade-opset"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        version = _default_opset(model)
        if version is None or version >= TARGET_OPSET:
            return None
        source = copy_model(model)
        try:
            out = version_converter.convert_version(source, TARGET_OPSET)
        except Exception:
            return None
        if out.ir_version < 7:
            out.ir_version = 7  # opset 13 needs IR 7
        return out, f"opset {version} -> {TARGET_OPSET} (onnx.version_converter)"
