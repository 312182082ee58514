"""A fuzz campaign for the operators of issue 7: QLinearMul of two activations (same shape, and the
squeeze-and-excite broadcast in either order), broadcast QLinearAdd, nearest Resize; data movement (channel
shuffle, Transpose of H and W), QLinearConcat along H / W / the length, PRelu with one slope per channel.

Each seed builds a QOperator model with ``onnx.helper`` (int8 or uint8; 1-9 channels, so channel blocks end
inside a block; 1-D or 2-D, H and W from 1; random scales and zero points, the MUL ratio sometimes near the
unit's limit) of 1-4 steps among: ``x * x``, ``x * conv1x1(x)``, ``x * gate(x)`` / ``gate(x) * x`` with
``gate = QLinearSigmoid(QLinearGlobalAveragePool(x))``, ``x + gap(x)`` / ``gap(x) + x``, Resize nearest (random
factors 1-3, transformation and nearest mode), a channel shuffle (Reshape -> Transpose -> Reshape on the integer
tensor, any group count that divides the channels), a Transpose of H and W, ``QLinearConcat`` of the tensor with a
1x1 convolution of it along H, W or the length (requantizing), DequantizeLinear -> PRelu (random slope per channel,
some negative) -> QuantizeLinear, a Slice of one axis (channels, H or W; step 1 or 2), and runs it on a backend with
every layer compared with
onnxruntime. Outcomes: exact, mismatch (a defect), refused (a clean one-line SystolixError: e.g. a map the
RESIZE instruction cannot walk, a ratio beyond the MUL unit), crash (a defect).

Usage: ``python benchmarks/fuzz_ops.py [--cases N] [--start S] [--backend golden|verilator] [--array 4x4]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import traceback
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# (not tf_half_pixel_for_nn: onnxruntime logs a deprecation notice per session; tests/frontend covers it)
TRANSFORMS = ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric")
NEAREST = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")


class _Builder:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.dtype = str(self.rng.choice(["int8", "uint8"]))
        self.lo, self.hi = (-128, 127) if self.dtype == "int8" else (0, 255)
        self.nodes, self.inits, self.count, self.layers = [], [], 0, []

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, prefix: str = "k") -> str:
        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), n))
        return n

    def q(self, scale: float) -> tuple[str, str, float]:
        zp = int(self.rng.integers(self.lo, self.hi + 1)) if self.rng.random() < 0.7 else (self.lo + self.hi + 1) // 2
        return self.const(np.float32(scale), "s"), self.const(np.array(zp).astype(self.dtype), "z"), scale

    def node(self, op: str, inputs: list[str], domain: str | None = "com.microsoft", **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def side_conv(self, x: str, xs: str, xz: str, xsv: float, c: int, dims: int) -> tuple[str, str, str, float]:
        """A random 1x1 QLinearConv of ``x`` (``c`` channels to ``c``): a second operand for a two-input op."""
        rng = self.rng
        w = rng.integers(-127, 128, (c, c, *([1] * dims))).astype(np.int8)
        os_, oz, osv = self.q(xsv * rng.uniform(0.5, 2))
        ws = self.const(np.float32(rng.uniform(0.005, 0.02)), "ws")
        other = self.node("QLinearConv", [x, xs, xz, self.const(w, "w"), ws,
                                          self.const(np.array(0, np.int8), "wz"), os_, oz], domain=None)
        return other, os_, oz, osv

    def build(self):
        rng = self.rng
        dims = 1 if rng.random() < 0.25 else 2
        shape = [int(rng.integers(1, 10))] + [int(rng.integers(1, 8)) for _ in range(dims)]
        shape0 = list(shape)
        x, (xs, xz, xsv) = "x", self.q(float(np.exp(rng.uniform(-5, -2))))
        for _ in range(int(rng.integers(1, 5)) + 4 * 3):  # the first 1-4 steps that add a layer
            if len(self.layers) >= 4 or (self.layers and rng.random() < 0.35):
                break
            step = str(rng.choice(["square", "mul_branch", "se", "badd", "resize", "shuffle", "transpose", "concat",
                                   "prelu", "slice"]))
            if step == "slice":
                axis = int(rng.integers(1, 2 + dims))
                size = shape[axis - 1]
                start, stride = int(rng.integers(0, size)), int(rng.integers(1, 3))
                stop = int(rng.integers(start + 1, size + 1))
                if (start, stop, stride) == (0, size, 1) or (axis == 1 and dims == 2 and rng.random() < 0.3):
                    continue
                x = self.node("Slice", [x, self.const(np.array([start], np.int64), "st"),
                                        self.const(np.array([stop], np.int64), "en"),
                                        self.const(np.array([axis], np.int64), "ax"),
                                        self.const(np.array([stride], np.int64), "sp")], domain=None)
                shape = list(shape)
                shape[axis - 1] = len(range(start, stop, stride))
                self.layers.append(f"Slice axis {axis}")
                continue
            if step == "shuffle":
                groups = [g for g in range(2, shape[0] + 1) if shape[0] % g == 0]
                if not groups:
                    continue
                g = int(rng.choice(groups))
                s1 = self.const(np.array([0, g, shape[0] // g, *shape[1:]], np.int64), "shape")
                x = self.node("Reshape", [x, s1], domain=None)
                x = self.node("Transpose", [x], domain=None, perm=[0, 2, 1, *range(3, 3 + dims)])
                x = self.node("Reshape", [x, self.const(np.array([0, *shape], np.int64), "shape")], domain=None)
                self.layers.append(f"shuffle {shape[0]} channels in {g} groups")
                continue
            if step == "transpose":
                if dims != 2:
                    continue
                x = self.node("Transpose", [x], domain=None, perm=[0, 1, 3, 2])
                shape = [shape[0], shape[2], shape[1]]
                self.layers.append("Transpose H/W")
                continue
            if step == "concat":
                axis = int(rng.integers(2, 2 + dims))
                c = shape[0]
                other, os_, oz, osv = self.side_conv(x, xs, xz, xsv, c, dims)
                ys, yz, ysv = self.q(max(xsv, osv) * rng.uniform(1, 1.5))
                pair = [x, xs, xz, other, os_, oz] if rng.random() < 0.5 else [other, os_, oz, x, xs, xz]
                x = self.node("QLinearConcat", [ys, yz, *pair], axis=axis)
                shape = list(shape)
                shape[axis - 1] *= 2
                xs, xz, xsv = ys, yz, ysv
                self.layers.append(f"QLinearConcat axis {axis}")
                continue
            if step == "prelu":
                c = shape[0]
                slope = self.const(rng.uniform(-1.5, 1.5, (c, *([1] * dims))).astype(np.float32), "slope")
                f = self.node("DequantizeLinear", [x, xs, xz], domain=None)
                f = self.node("PRelu", [f, slope], domain=None)
                ys, yz, ysv = self.q(xsv * rng.uniform(0.5, 1.5))
                x = self.node("QuantizeLinear", [f, ys, yz], domain=None)
                xs, xz, xsv = ys, yz, ysv
                self.layers.append(f"PRelu per channel ({c})")
                continue
            if step == "resize" and dims == 2 and max(shape[1:]) <= 12:
                f = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
                t, nm = str(rng.choice(TRANSFORMS)), str(rng.choice(NEAREST))
                sc = self.const(np.array([1, 1, *f], np.float32), "sc")
                x = self.node("Resize", [x, "", sc], domain=None, mode="nearest",
                              coordinate_transformation_mode=t, nearest_mode=nm)
                shape = [shape[0], shape[1] * f[0], shape[2] * f[1]]
                self.layers.append(f"Resize x{f[0]}x{f[1]} {t} {nm}")
                continue
            if step in ("se", "badd"):
                gs, gz, _ = self.q(xsv * rng.uniform(0.3, 1.0))
                g = self.node("QLinearGlobalAveragePool", [x, xs, xz, gs, gz], channels_last=0)
                if step == "se":
                    ss, ssv = self.const(np.float32(1 / 256), "s"), 1 / 256
                    sz = self.const(np.array(self.lo).astype(self.dtype))
                    g = self.node("QLinearSigmoid", [g, gs, gz, ss, sz])
                    gs, gz, gsv = ss, sz, ssv
                else:
                    gsv = xsv
                ys, yz, ysv = self.q(xsv * (gsv * 255 * rng.uniform(0.3, 2.0) if step == "se" else rng.uniform(1, 2)))
                op = "QLinearMul" if step == "se" else "QLinearAdd"
                pair = [x, xs, xz, g, gs, gz] if rng.random() < 0.5 else [g, gs, gz, x, xs, xz]
                x = self.node(op, [*pair, ys, yz])
                xs, xz, xsv = ys, yz, ysv
                self.layers.append(f"{op} broadcast ({'x first' if pair[0] != g else 'gate first'})")
                continue
            if step == "square":
                other, os_, oz, osv = x, xs, xz, xsv
            else:
                c = shape[0]
                other, os_, oz, osv = self.side_conv(x, xs, xz, xsv, c, dims)
            # output scale: the product's range over 255 codes, times a factor (near the ratio limit sometimes)
            factor = rng.choice([rng.uniform(0.5, 4), rng.uniform(0.005, 0.02)])
            ys, yz, ysv = self.q(xsv * osv * 128 * factor)
            x = self.node("QLinearMul", [x, xs, xz, other, os_, oz, ys, yz])
            xs, xz, xsv = ys, yz, ysv
            self.layers.append(f"QLinearMul ({step})")
        elem = TensorProto.INT8 if self.dtype == "int8" else TensorProto.UINT8
        graph = helper.make_graph(self.nodes, "fuzz_ops", [helper.make_tensor_value_info("x", elem, ["N", *shape0])],
                                  [helper.make_tensor_value_info(x, elem, ["N", *shape])], self.inits)
        opsets = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
        return helper.make_model(graph, opset_imports=opsets, ir_version=8)


def build(seed: int) -> tuple[onnx.ModelProto, list[str]]:
    """The model of ``seed`` and its layer descriptions."""
    b = _Builder(seed)
    return b.build(), b.layers


def main(argv: list[str] | None = None) -> int:
    from systolix.arch.config import AcceleratorConfig
    from systolix.errors import SystolixError
    from systolix.sim.simulate import simulate

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=200)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--backend", default="golden", choices=["golden", "verilator"])
    parser.add_argument("--array", default="4x4")
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args(argv)
    config = AcceleratorConfig.preset(args.array)
    counts, elements, ops = Counter(), 0, Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.start, args.start + args.cases):
            model, layers = build(seed)
            path = Path(tmp) / f"case{seed}.onnx"
            onnx.save(model, str(path))
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    result = simulate(path, random=args.samples, backend=args.backend, layers=True, config=config,
                                      seed=seed)
                cmp = result.comparison
                outcome = "exact" if cmp.mismatches == 0 else "mismatch"
                elements += cmp.elements
                if outcome == "exact":
                    ops.update(layer.split(" ")[0] + (" broadcast" if "broadcast" in layer else "")
                               + (f" axis {layer[-1]}" if layer.startswith(("QLinearConcat", "Slice")) else "")
                               for layer in layers)
                else:
                    print(f"seed {seed}: MISMATCH {cmp.first_mismatch} layers {layers}")
            except SystolixError as e:
                outcome = "refused"
                print(f"seed {seed}: refused: {e}")
            except Exception:
                outcome = "crash"
                print(f"seed {seed}: CRASH layers {layers}\n{traceback.format_exc()}")
            counts[outcome] += 1
    print(f"{args.cases} cases on {args.backend} ({args.array}): " + ", ".join(f"{k} {counts[k]}" for k in
          ("exact", "mismatch", "refused", "crash")) + f"; {elements:,} elements compared")
    print("layers in exact cases: " + ", ".join(f"{k} {v}" for k, v in sorted(ops.items())))
    return 1 if counts["mismatch"] or counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
