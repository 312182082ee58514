"""What a rewrite of the normaliser is, and what it reports."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import onnx
from onnx import shape_inference

__all__ = ["Fired", "Rewrite", "copy_model", "inferred_shapes"]


class Rewrite(Protocol):
    """A named graph rewrite: ``apply`` returns ``(new model, what it did)``, or None when it does not apply.

    It must not modify its argument.
    """

    name: str

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None: ...


@dataclasses.dataclass(frozen=True)
class Fired:
    """A rewrite that applied (or was refused because onnxruntime's result would change)."""

    name: str
    detail: str
    applied: bool
    check: str = ""

    def line(self) -> str:
        verdict = "" if self.applied else "NOT APPLIED: "
        check = f" [{self.check}]" if self.check else ""
        return f"{verdict}{self.name}: {self.detail}{check}"


def copy_model(model: onnx.ModelProto) -> onnx.ModelProto:
    out = onnx.ModelProto()
    out.CopyFrom(model)
    return out


def inferred_shapes(model: onnx.ModelProto, *, fallback: bool = False) -> dict[str, list[int | None]] | None:
    """Tensor name -> its dimensions after onnx shape inference (None for a symbolic or unknown one).

    When inference fails: the shapes the model declares if ``fallback``, else None.
    """
    try:
        inferred = shape_inference.infer_shapes(model)
    except Exception:
        if not fallback:
            return None
        inferred = model
    return {v.name: [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                     for d in v.type.tensor_type.shape.dim]
            for v in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]}
