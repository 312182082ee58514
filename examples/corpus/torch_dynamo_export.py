"""Networks exported by ``torch.onnx.export``'s default exporter (``dynamo=True``, torch 2.13 with onnxscript):
what a PyTorch user gets today without choosing an exporter. Opset 20, IR 10, static shapes unless a dynamic
batch is asked for, BatchNormalization left in the graph, ``adaptive_avg_pool2d(x, 1)`` and ``x.mean((2, 3))``
written as ``ReduceMean``, ``ReLU6`` as ``Clip`` with constant inputs, ``Linear`` as ``Gemm``.

- ``mbnet``: a MobileNetV2-style stem and two inverted-residual blocks (1x1 expand, 3x3 depthwise, 1x1 project,
  BatchNorm, ReLU6, residual Add), adaptive average pool, Linear; 3x32x32;
- ``lenet``: LeNet-5 with ``x.view(x.size(0), -1)``; 1x28x28;
- ``mean``: Conv, BatchNorm, SiLU, ``x.mean((2, 3))``, Linear; 3x16x16.

Each as ``torch_dynamo_{name}_static.onnx`` (batch 1 fixed in the file) and ``_dynbatch.onnx`` (a dynamic batch).
Usage: ``python examples/corpus/torch_dynamo_export.py OUT_DIR`` (needs ``pip install torch==2.13.0 onnxscript``).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _nets():
    import torch
    import torch.nn.functional as F
    from torch import nn

    class Block(nn.Module):
        def __init__(self, c: int, e: int) -> None:
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(c, c * e, 1, bias=False), nn.BatchNorm2d(c * e), nn.ReLU6())
            self.d = nn.Sequential(nn.Conv2d(c * e, c * e, 3, padding=1, groups=c * e, bias=False),
                                   nn.BatchNorm2d(c * e), nn.ReLU6())
            self.p = nn.Sequential(nn.Conv2d(c * e, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.p(self.d(self.a(x)))

    class MobileNetish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8),
                                      nn.ReLU6())
            self.b1, self.b2, self.head = Block(8, 2), Block(8, 2), nn.Linear(8, 5)

        def forward(self, x):
            return self.head(F.adaptive_avg_pool2d(self.b2(self.b1(self.stem(x))), 1).flatten(1))

    class LeNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 5), nn.Conv2d(6, 16, 5)
            self.f1, self.f2 = nn.Linear(256, 32), nn.Linear(32, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.c2(F.max_pool2d(F.relu(self.c1(x)), 2))), 2)
            return self.f2(F.relu(self.f1(x.view(x.size(0), -1))))

    class Mean(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c, self.bn, self.f = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 4)

        def forward(self, x):
            return self.f(F.silu(self.bn(self.c(x))).mean((2, 3)))

    torch.manual_seed(0)
    nets = {"mbnet": (MobileNetish(), (3, 32, 32)), "lenet": (LeNet(), (1, 28, 28)), "mean": (Mean(), (3, 16, 16))}
    for net, _ in nets.values():
        net.eval()
        for m in net.modules():  # BatchNorm statistics other than the identity
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    return nets


def export(out_dir: str | Path, names: tuple[str, ...] = ()) -> list[tuple[Path, str]]:
    """Write ``torch_dynamo_{name}_{static,dynbatch}.onnx``; returns (path, exporter) pairs."""
    import torch

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (net, shape) in _nets().items():
        if names and name not in names:
            continue
        x = torch.randn(1, *shape)
        for kind in ("static", "dynbatch"):
            options = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if kind == "dynbatch" else {}
            program = torch.onnx.export(net, (x,), input_names=["x"], dynamo=True, **options)
            path = out_dir / f"torch_dynamo_{name}_{kind}.onnx"
            program.save(str(path))
            batch = "a fixed batch of 1" if kind == "static" else "a dynamic batch"
            written.append((path, f"torch {torch.__version__} torch.onnx.export(dynamo=True), {batch}"))
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--only", nargs="*", default=(), help="network names (default: all)")
    args = parser.parse_args()
    for path, exporter in export(args.out_dir, tuple(args.only)):
        print(f"{path} ({path.stat().st_size:,} bytes): {exporter}")
