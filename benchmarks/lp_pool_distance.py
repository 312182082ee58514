"""LpPool (p = 2): systolix's integer definition against onnxruntime's float32 LpPool, on real activations.

onnxruntime has no quantized LpPool: a quantized model computes ``Q(LpPool(DQ(x)))`` in float32. This script
takes real activations -- ``mnist_cnn_2018.onnx``'s two Conv+Relu outputs (../shared) on MNIST images -- quantizes
them (per-tensor, minmax over the same images, onnxruntime's quantizer formula: uint8 asymmetric or int8
symmetric), calibrates the pool's output the same way, and compares, code for code, onnxruntime running
``DequantizeLinear -> LpPool(p=2) -> QuantizeLinear`` with ``quantize/golden/lp_pool.py`` (``RNE(sqrt(sum((x -
x_zp)**2)) * x_s / y_s) + y_zp``, exact). Prints, per case, compared codes, differing codes and the largest
difference. Usage: ``python benchmarks/lp_pool_distance.py [--images N]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _activations(images: np.ndarray) -> dict[str, np.ndarray]:
    """The float outputs of mnist_cnn_2018's Relu nodes for ``images`` [N, 1, 28, 28] (0..255)."""
    model = onnx.load(str(SHARED / "models" / "mnist_cnn_2018.onnx"))
    relus = [n.output[0] for n in model.graph.node if n.op_type == "Relu"]
    del model.graph.output[:]
    model.graph.output.extend(helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in relus)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    outs = [sess.run(relus, {name: images[i:i + 1]}) for i in range(len(images))]
    return {r: np.concatenate([o[k] for o in outs]) for k, r in enumerate(relus)}


def _params(values: np.ndarray, dtype: str) -> tuple[np.float32, int]:
    """onnxruntime's quantizer: the range widened to include 0; uint8 asymmetric, int8 symmetric."""
    lo, hi = min(float(values.min()), 0.0), max(float(values.max()), 0.0)
    if dtype == "uint8":
        scale = np.float32((hi - lo) / 255.0)
        return scale, int(np.rint(0 - lo / scale))
    return np.float32(max(abs(lo), abs(hi)) / 127.5), 0


def _ort_pool(x: np.ndarray, xs, xz, ys, yz, dtype: str, kernel, strides) -> np.ndarray:
    t = TensorProto.UINT8 if dtype == "uint8" else TensorProto.INT8
    np_t = np.uint8 if dtype == "uint8" else np.int8
    inits = [numpy_helper.from_array(np.array(xs, np.float32), "xs"), numpy_helper.from_array(np.array(xz, np_t), "xz"),
             numpy_helper.from_array(np.array(ys, np.float32), "ys"), numpy_helper.from_array(np.array(yz, np_t), "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("LpPool", ["xf"], ["yf"], p=2, kernel_shape=list(kernel), strides=list(strides)),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "lp", [helper.make_tensor_value_info("x", t, list(x.shape))],
                              [helper.make_tensor_value_info("y", t, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def main(argv: list[str] | None = None) -> int:
    from systolix.quantize.golden.lp_pool import lp_pool2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="MNIST images (every 5th of mnist5k.npz)")
    args = parser.parse_args(argv)
    data = np.load(SHARED / "data" / "mnist5k.npz", allow_pickle=False)
    images = data["x"][np.arange(0, 5000, 5)[: args.images], None].astype(np.float32)
    acts = _activations(images)
    for (name, act), dtype, (kernel, strides) in (
            (pair, dtype, geom) for pair in acts.items() for dtype in ("uint8", "int8")
            for geom in (((2, 2), (2, 2)), ((3, 3), (1, 1)))):
        info = np.iinfo(dtype)
        xs, xz = _params(act, dtype)
        x = np.clip(np.rint(act / xs) + xz, info.min, info.max).astype(dtype)
        xf = (x.astype(np.float64) - xz) * xs
        pooled = np.sqrt(np.lib.stride_tricks.sliding_window_view(xf * xf, kernel, axis=(2, 3))
                         [:, :, ::strides[0], ::strides[1]].sum(axis=(-2, -1)))
        ys, yz = _params(pooled, dtype)
        want = _ort_pool(x, xs, xz, ys, yz, dtype, kernel, strides).astype(np.int64)
        got = lp_pool2(x, xs, xz, ys, yz, info.min, info.max, kernel=kernel, strides=strides).astype(np.int64)
        diff = np.abs(got - want)
        print(f"{name} {dtype} kernel {kernel[0]}x{kernel[1]} stride {strides[0]}: {want.size:,} codes, "
              f"{int((diff > 0).sum()):,} differ ({(diff > 0).mean():.5%}), max |diff| {int(diff.max())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
