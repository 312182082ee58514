"""One handler per ONNX op family, registered by op type (a duplicate registration is an error)."""

from __future__ import annotations

from collections.abc import Callable

import onnx

from ..context import ImportContext

Handler = Callable[[onnx.NodeProto, ImportContext], None]
HANDLERS: dict[str, Handler] = {}


def register(*op_types: str) -> Callable[[Handler], Handler]:
    def wrap(fn: Handler) -> Handler:
        for op in op_types:
            if op in HANDLERS:
                raise RuntimeError(f"two handlers registered for ONNX op {op}")
            HANDLERS[op] = fn
        return fn
    return wrap


def _load_all() -> None:
    from . import activation, conv, dense, elementwise, pool, resize, shape  # noqa: F401


_load_all()
