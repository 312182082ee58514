"""Reading ONNX files safely: clear errors for bad files, external data kept inside the model's folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper, numpy_helper

from systolix.errors import SystolixError

MAX_MODEL_BYTES = 2 * 1024**3


def _external_locations(model: onnx.ModelProto) -> list[str]:
    locations = []
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            info = {e.key: e.value for e in tensor.external_data}
            locations.append(info.get("location", ""))
    return locations


def _check_external_path(model_path: Path, location: str) -> None:
    """External-data paths come from the file: never let them point outside the model's folder."""
    base = model_path.resolve().parent
    if not location or os.path.isabs(location) or ".." in Path(location).parts:
        raise SystolixError(f"{model_path}: external data path {location!r} is not a plain relative path "
                            "inside the model's folder; refusing to read it")
    target = (base / location).resolve()
    if base not in target.parents:
        raise SystolixError(f"{model_path}: external data path {location!r} leaves the model's folder; "
                            "refusing to read it")
    if not target.is_file():
        raise SystolixError(f"{model_path}: external data file {location!r} is missing")


def _constants(model: onnx.ModelProto):
    """(what, name, TensorProto) of every initializer and every Constant node's tensor value, in the main graph."""
    for init in model.graph.initializer:
        yield "initializer", init.name, init
    for node in model.graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.name == "value" and attr.HasField("t"):
                    yield "constant", node.output[0], attr.t


def check_finite_weights(model: onnx.ModelProto, path: str | os.PathLike) -> None:
    """Refuse a model whose float constants (weights, biases, scales) hold NaN or infinity.

    An infinite bound of a Clip (its min or max input) is allowed: it means "no bound".

    Raises
    ------
    SystolixError
        Naming the first such constant, what reads it and where the bad value is.
    """
    users: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in model.graph.node:
        for position, name in enumerate(node.input):
            users.setdefault(name, []).append((node, position))
    for kind, name, tensor in _constants(model):
        if tensor.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                                    onnx.TensorProto.BFLOAT16):
            continue
        value = numpy_helper.to_array(tensor).astype(np.float64)
        bad = ~np.isfinite(value)
        if not bad.any():
            continue
        readers = users.get(name, [])
        if readers and all(n.op_type == "Clip" and k in (1, 2) and not np.isnan(value).any() for n, k in readers):
            continue
        index = tuple(int(i) for i in np.argwhere(bad)[0]) if value.ndim else ()
        bad_value = value[index]
        what = "NaN" if np.isnan(bad_value) else ("Inf" if bad_value > 0 else "-Inf")
        reader = f", input {readers[0][1]} of {readers[0][0].op_type} node {readers[0][0].name!r}" if readers else ""
        raise SystolixError(f"{path}: {kind} {name!r}{reader} holds {what} at index {index} "
                            f"({int(bad.sum())} of {bad.size} values are not finite); a model's weights must be "
                            "finite numbers")


def load_onnx(path: str | os.PathLike) -> onnx.ModelProto:
    """Load and check an ONNX model file.

    Raises :class:`SystolixError` with one clear line for a missing, truncated or non-ONNX file, and for
    external-data references that leave the model's folder.
    """
    path = Path(path)
    if not path.exists():
        raise SystolixError(f"{path}: no such file")
    if not path.is_file():
        raise SystolixError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise SystolixError(f"{path}: the file is empty, not an ONNX model")
    if size > MAX_MODEL_BYTES:
        raise SystolixError(f"{path}: {size} bytes is larger than the 2 GiB protobuf limit")
    data = path.read_bytes()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise SystolixError(f"{path}: not a valid ONNX model (truncated, or not a protobuf file): {exc}") from None
    if not model.HasField("graph") or len(model.graph.node) == 0 or not model.opset_import:
        raise SystolixError(f"{path}: not an ONNX model (no graph, nodes or opset; truncated or another kind "
                            "of file?)")
    for location in _external_locations(model):
        _check_external_path(path, location)
    if _external_locations(model):
        external_data_helper.load_external_data_for_model(model, str(path.resolve().parent))
    for kind, values in (("input", model.graph.input), ("output", model.graph.output)):
        for value in values:
            if value.type.HasField("tensor_type") and not value.type.tensor_type.HasField("shape"):
                raise SystolixError(f"{path}: graph {kind} {value.name!r} has no shape (ONNX requires one on graph "
                                    "inputs and outputs); export the model with shapes")
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid model"
        raise SystolixError(f"{path}: the ONNX model is invalid (truncated or corrupt?): {first}") from None
    check_finite_weights(model, path)
    return model
