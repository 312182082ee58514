"""What a rewrite of the normaliser is, and what it reports."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import onnx

__all__ = ["Fired", "Rewrite", "copy_model"]


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
