"""Resize (nearest, integer factors): the importer's index maps against onnxruntime, and its refusals."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.frontend.ir import Resize
from systolix.frontend.ops.resize import NEAREST_MODES, TRANSFORMS


def _model(shape, scales=None, sizes=None, opset=19, **attrs) -> onnx.ModelProto:
    inits, inputs = [], ["x", ""]
    if scales is not None:
        inits.append(numpy_helper.from_array(np.array(scales, np.float32), "scales"))
        inputs.append("scales")
    else:
        inits.append(numpy_helper.from_array(np.array(sizes, np.int64), "sizes"))
        inputs += ["", "sizes"]
    out = [int(d * s) for d, s in zip(shape, scales, strict=True)] if scales is not None else list(sizes)
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    graph = helper.make_graph([node], "r", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=9)


def _ort_maps(model: onnx.ModelProto, shape) -> tuple[tuple[int, ...], ...]:
    """The input coordinate onnxruntime reads for every output coordinate, per spatial axis."""
    so = ort.SessionOptions()
    so.log_severity_level = 4  # not the tf_half_pixel_for_nn deprecation notice
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    h, w = shape[2:]
    x = np.broadcast_to(np.arange(h)[:, None] * 1000 + np.arange(w)[None, :], shape).astype(np.float32)
    y = sess.run(None, {"x": x})[0][0, 0].astype(np.int64)
    return tuple(int(v) for v in y[:, 0] // 1000), tuple(int(v) for v in y[0, :] % 1000)


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_maps_match_onnxruntime(tmp_path, transform) -> None:
    """Every nearest mode, factors 1-4 on each axis (mixed), input sizes 1-7."""
    path = tmp_path / "m.onnx"
    checked = 0
    for nearest in NEAREST_MODES:
        for fh, fw, h, w in ((1, 2, 3, 5), (2, 1, 4, 1), (2, 2, 1, 7), (3, 3, 5, 2), (4, 3, 2, 3), (3, 4, 7, 6)):
            shape = [1, 1, h, w]
            model = _model(shape, scales=[1, 1, fh, fw], mode="nearest", coordinate_transformation_mode=transform,
                           nearest_mode=nearest)
            onnx.save(model, str(path))
            (layer,) = import_model(path).ir.layers
            assert isinstance(layer, Resize)
            assert layer.maps == _ort_maps(model, shape), (nearest, fh, fw, h, w)
            checked += 1
    assert checked == 24


def test_sizes_give_the_same_maps_as_scales(tmp_path) -> None:
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    onnx.save(_model([1, 2, 3, 4], scales=[1, 1, 2, 3], mode="nearest"), str(a))
    onnx.save(_model([1, 2, 3, 4], sizes=[1, 2, 6, 12], mode="nearest"), str(b))
    (la,), (lb,) = import_model(a).ir.layers, import_model(b).ir.layers
    assert la.maps == lb.maps and la.out_shape == lb.out_shape == (1, 2, 6, 12)


@pytest.mark.parametrize("kwargs,message", [
    (dict(scales=[1, 1, 2, 2], mode="linear"),
     "mode 'linear' is not supported (only 'nearest': a copy of input pixels)"),
    (dict(scales=[1, 1, 1.5, 2], mode="nearest"),
     "only upsampling of the spatial axes by integer factors is supported ([1, 2, 4, 4] -> [1, 2, 6, 8])"),
    (dict(scales=[1, 2, 2, 2], mode="nearest"),
     "only upsampling of the spatial axes by integer factors is supported ([1, 2, 4, 4] -> [1, 4, 8, 8])"),
    (dict(scales=[1, 1, 2, 2], mode="nearest", coordinate_transformation_mode="tf_crop_and_resize"),
     "coordinate_transformation_mode 'tf_crop_and_resize' is not supported (one of half_pixel, pytorch_half_pixel, "
     "align_corners, asymmetric, tf_half_pixel_for_nn, half_pixel_symmetric)"),
])
def test_refusals(tmp_path, kwargs, message) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(_model([1, 2, 4, 4], **kwargs), str(path))
    with pytest.raises(SystolixError, match=r"^node .*\(Resize\): " + re.escape(message) + "$"):
        import_model(path)


def test_a_map_starting_past_zero_is_refused_by_the_compiler(tmp_path) -> None:
    """tf_half_pixel_for_nn with ceil reads input coordinate 1 first: imported, but not an instruction's walk."""
    path = tmp_path / "m.onnx"
    model = _model([1, 2, 3, 3], scales=[1, 1, 2, 2], mode="nearest",
                   coordinate_transformation_mode="tf_half_pixel_for_nn", nearest_mode="ceil")
    onnx.save(model, str(path))
    ir = import_model(path).ir
    ir = dataclasses.replace(ir, quantized=True)  # the refusal is the op's, not the float's
    (layer,) = ir.layers
    assert layer.maps == ((1, 1, 2, 2, 2, 2), (1, 1, 2, 2, 2, 2)) == _ort_maps(model, [1, 2, 3, 3])
    why = runs_on(ir)[layer.name]
    assert why == ("refused: a nearest map [1, 1, 2, 2, 2, 2] that the RESIZE instruction cannot walk (from input "
                   "coordinate 0, a first run of 1-255 outputs, then runs of one length, 1-15)")
    with pytest.raises(SystolixError, match="cannot walk"):
        compile_model(ir, AcceleratorConfig.preset("4x4"))
