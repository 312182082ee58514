"""Models written with ``onnx.helper`` the way old exporters wrote them (and one the way new code does).

Old exporters (caffe2, early PyTorch, onnx-tensorflow, keras2onnx, CNTK) wrote low IR versions and opsets,
listed every initializer again as a graph input (IR < 4 requires it), fixed the batch dimension and used
attributes later removed (Gemm ``broadcast``, BatchNormalization ``spatial``, Clip ``min``/``max``):

- ``old_ir3_op6``: IR 3, opset 6, batch 1: Conv, BatchNormalization(spatial=1), Relu, MaxPool, Flatten,
  Gemm(broadcast=1, transB=1); initializers listed as inputs;
- ``old_ir3_op7_b5``: IR 3, opset 7, batch 5: Conv, BatchNormalization(spatial=1), Clip(min, max attributes =
  ReLU6), GlobalAveragePool, Flatten, Gemm; initializers listed as inputs;
- ``old_ir4_op8``: IR 4, opset 8, batch 1: Conv, BatchNormalization(spatial=1), LeakyRelu, MaxPool, Reshape
  (shape as an input), Gemm;
- ``old_ir5_op10_b5``: IR 5, opset 10, batch 5: Conv, Relu, MaxPool(ceil_mode), Conv, Sigmoid, Flatten,
  Gemm; initializers listed as inputs;
- ``old_ir7_op12``: IR 7, opset 12, batch 1: 1-D Conv, Clip (inputs), MaxPool, Flatten, MatMul + Add;
- ``helper_default``: ``helper.make_model`` with all its defaults (the newest IR version, 14, and opset, 28,
  this ``onnx`` writes), symbolic batch: Conv, Relu, Conv, Add (residual), Relu, GlobalAveragePool, Flatten,
  Gemm;
- ``helper_ir14_op13``: the same with ``opset_imports=[opset 13]`` as most code passes, and the default IR 14.

Every model is float32 with fixed-seed random weights. Usage: ``python examples/corpus/old_style.py OUT_DIR``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Graph:
    """Collects nodes and fixed-seed random initializers."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def weight(self, name: str, shape: tuple[int, ...], fan_in: int | None = None) -> str:
        scale = 1.0 / np.sqrt(fan_in or int(np.prod(shape[1:])))
        self.inits.append(numpy_helper.from_array(self.rng.normal(0, scale, shape).astype(np.float32), name))
        return name

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def bn(self, x: str, y: str, c: int, **attrs) -> None:
        names = [self.const(f"{y}_{k}", v.astype(np.float32)) for k, v in (
            ("gamma", self.rng.uniform(0.5, 1.5, c)), ("beta", self.rng.normal(0, 0.2, c)),
            ("mean", self.rng.normal(0, 0.2, c)), ("var", self.rng.uniform(0.5, 2.0, c)))]
        self.nodes.append(helper.make_node("BatchNormalization", [x, *names], [y], name=y, **attrs))

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def model(self, name: str, x_shape: list, y_shape: list, *, ir: int | None, opset: int | None,
              inits_as_inputs: bool = False) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, x_shape)]
        if inits_as_inputs:
            inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in self.inits]
        graph = helper.make_graph(self.nodes, name, inputs,
                                  [helper.make_tensor_value_info("output", TensorProto.FLOAT, y_shape)], self.inits)
        if opset is None:  # helper.make_model's defaults, as new code writes it
            return helper.make_model(graph, producer_name="onnx.helper")
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="old-exporter")
        if ir is not None:  # None: make_model's default IR version
            model.ir_version = ir
        return model


def old_ir3_op6() -> onnx.ModelProto:
    g = _Graph(1)
    g.node("Conv", ["input", g.weight("w1", (8, 1, 3, 3)), g.weight("b1", (8,), 9)], "conv1", pads=[1, 1, 1, 1],
           kernel_shape=[3, 3])
    g.bn("conv1", "bn1", 8, spatial=1, epsilon=1e-5, is_test=1)
    g.node("Relu", ["bn1"], "relu1")
    g.node("MaxPool", ["relu1"], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    g.node("Flatten", ["pool1"], "flat", axis=1)
    g.node("Gemm", ["flat", g.weight("fc_w", (10, 8 * 8 * 8)), g.weight("fc_b", (10,), 512)], "output",
           broadcast=1, transB=1)
    return g.model("old_ir3_op6", [1, 1, 16, 16], [1, 10], ir=3, opset=6, inits_as_inputs=True)


def old_ir3_op7_b5() -> onnx.ModelProto:
    g = _Graph(2)
    g.node("Conv", ["input", g.weight("w1", (16, 3, 3, 3))], "conv1", pads=[1, 1, 1, 1], strides=[2, 2])
    g.bn("conv1", "bn1", 16, spatial=1)
    g.node("Clip", ["bn1"], "relu6", min=0.0, max=6.0)
    g.node("Conv", ["relu6", g.weight("w2", (16, 16, 3, 3)), g.weight("b2", (16,), 144)], "conv2",
           pads=[1, 1, 1, 1])
    g.bn("conv2", "bn2", 16, spatial=1)
    g.node("Clip", ["bn2"], "relu6b", min=0.0, max=6.0)
    g.node("GlobalAveragePool", ["relu6b"], "gap")
    g.node("Flatten", ["gap"], "flat")
    g.node("Gemm", ["flat", g.weight("fc_w", (16, 10)), g.weight("fc_b", (10,), 16)], "output")
    return g.model("old_ir3_op7_b5", [5, 3, 16, 16], [5, 10], ir=3, opset=7, inits_as_inputs=True)


def old_ir4_op8() -> onnx.ModelProto:
    g = _Graph(3)
    g.node("Conv", ["input", g.weight("w1", (8, 1, 5, 5)), g.weight("b1", (8,), 25)], "conv1")
    g.bn("conv1", "bn1", 8, spatial=1)
    g.node("LeakyRelu", ["bn1"], "lrelu", alpha=0.1)
    g.node("MaxPool", ["lrelu"], "pool", kernel_shape=[2, 2], strides=[2, 2])
    g.node("Reshape", ["pool", g.const("shape", np.array([1, 8 * 6 * 6], dtype=np.int64))], "flat")
    g.node("Gemm", ["flat", g.weight("fc_w", (8 * 6 * 6, 10)), g.weight("fc_b", (10,), 288)], "output")
    return g.model("old_ir4_op8", [1, 1, 16, 16], [1, 10], ir=4, opset=8, inits_as_inputs=False)


def old_ir5_op10_b5() -> onnx.ModelProto:
    g = _Graph(4)
    g.node("Conv", ["input", g.weight("w1", (8, 1, 3, 3)), g.weight("b1", (8,), 9)], "conv1")
    g.node("Relu", ["conv1"], "relu1")
    g.node("MaxPool", ["relu1"], "pool1", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1)
    g.node("Conv", ["pool1", g.weight("w2", (16, 8, 3, 3)), g.weight("b2", (16,), 72)], "conv2", pads=[1, 1, 1, 1])
    g.node("Sigmoid", ["conv2"], "sig")
    g.node("Flatten", ["sig"], "flat")
    g.node("Gemm", ["flat", g.weight("fc_w", (10, 16 * 7 * 7)), g.weight("fc_b", (10,), 784)], "output", transB=1)
    return g.model("old_ir5_op10_b5", [5, 1, 15, 15], [5, 10], ir=5, opset=10, inits_as_inputs=True)


def old_ir7_op12() -> onnx.ModelProto:
    g = _Graph(5)
    g.node("Conv", ["input", g.weight("w1", (8, 2, 5)), g.weight("b1", (8,), 10)], "conv1", pads=[2, 2])
    g.node("Clip", ["conv1", g.const("lo", np.float32(0)), g.const("hi", np.float32(6))], "clip")
    g.node("MaxPool", ["clip"], "pool", kernel_shape=[4], strides=[4])
    g.node("Flatten", ["pool"], "flat")
    g.node("MatMul", ["flat", g.weight("fc_w", (8 * 16, 6))], "mm")
    g.node("Add", ["mm", g.weight("fc_b", (6,), 128)], "output")
    return g.model("old_ir7_op12", [1, 2, 64], [1, 6], ir=7, opset=12, inits_as_inputs=False)


def helper_default(opset: int | None = None, name: str = "helper_default") -> onnx.ModelProto:
    g = _Graph(6)
    g.node("Conv", ["input", g.weight("w1", (8, 3, 3, 3)), g.weight("b1", (8,), 27)], "conv1", pads=[1, 1, 1, 1])
    g.node("Relu", ["conv1"], "relu1")
    g.node("Conv", ["relu1", g.weight("w2", (8, 8, 3, 3)), g.weight("b2", (8,), 72)], "conv2", pads=[1, 1, 1, 1])
    g.node("Add", ["relu1", "conv2"], "res")
    g.node("Relu", ["res"], "relu2")
    g.node("GlobalAveragePool", ["relu2"], "gap")
    g.node("Flatten", ["gap"], "flat")
    g.node("Gemm", ["flat", g.weight("fc_w", (10, 8)), g.weight("fc_b", (10,), 8)], "output", transB=1)
    return g.model(name, ["N", 3, 12, 12], ["N", 10], ir=None, opset=opset)


def helper_ir14_op13() -> onnx.ModelProto:
    return helper_default(13, "helper_ir14_op13")


MODELS = {f.__name__: f for f in (old_ir3_op6, old_ir3_op7_b5, old_ir4_op8, old_ir5_op10_b5, old_ir7_op12,
                                  helper_default, helper_ir14_op13)}


def write(out_dir: str | Path) -> list[Path]:
    """Write every model as ``{name}.onnx`` into ``out_dir`` (no checker run: old files are written as is)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, make in MODELS.items():
        path = out_dir / f"{name}.onnx"
        path.write_bytes(make().SerializeToString())
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    args = parser.parse_args()
    for path in write(args.out_dir):
        model = onnx.load(str(path))
        print(f"{path}: IR {model.ir_version}, opset {model.opset_import[0].version}, {path.stat().st_size:,} bytes")
