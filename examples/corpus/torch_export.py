"""PyTorch models exported with ``torch.onnx.export``, as users export them.

Five small CNNs, each exported at opset 13 and 17 with a dynamic batch axis (``dynamic_axes``, the way the
PyTorch tutorials do it). The TorchScript exporter is used (``dynamo=False``): torch 2.13's default, the
dynamo exporter, needs the ``onnxscript`` package, which systolix does not install.

- ``lenet5``: LeNet-5 as in the PyTorch tutorials (Conv5x5-ReLU-MaxPool twice, three Linear), 1x32x32;
- ``conv1d``: a 1-D signal net (Conv1d, BatchNorm1d, ReLU, MaxPool1d, ``x.view(x.size(0), -1)``, Linear), 1x128;
- ``dwsep``: depthwise-separable blocks as in MobileNet (Conv, depthwise Conv ``groups=C``, pointwise Conv,
  BatchNorm, ReLU6 = Clip), 3x32x32;
- ``resnet``: residual blocks with a channel ``torch.cat`` (channel counts multiples of 8) and a residual Add;
- ``hardswish``: HardSwish and SiLU activations (exported as ``HardSwish`` and ``x * Sigmoid(x)``);
- ``se``: squeeze-and-excite blocks as in MobileNet-v3 / EfficientNet (``x * sigmoid(fc2(relu(fc1(avgpool(x)))))``
  with 1x1 convolutions: a ``Mul`` of ``[N, C, H, W]`` and ``[N, C, 1, 1]``), 3x16x16.

Nothing heavy is trained: weights are PyTorch's random init (fixed seed), and a few training-mode passes on
synthetic data set every BatchNorm's running statistics, so BatchNorm folds into something other than the
identity. ``--small`` uses fewer channels (the fixtures committed under ``tests/corpus/``).

Usage: ``python examples/corpus/torch_export.py OUT_DIR [--small]`` (needs ``pip install -e .[train]``).
"""

from __future__ import annotations

import argparse
import io
import warnings
from pathlib import Path

import torch
from torch import nn

OPSETS = (13, 17)


class LeNet5(nn.Module):
    """The PyTorch tutorial's LeNet-5 ("Neural Networks" tutorial), 1x32x32 input, 10 classes."""

    def __init__(self, c1: int = 6, c2: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(1, c1, 5)
        self.conv2 = nn.Conv2d(c1, c2, 5)
        self.fc1 = nn.Linear(c2 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv1(x)), (2, 2))
        x = nn.functional.max_pool2d(nn.functional.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = nn.functional.relu(self.fc1(x))
        x = nn.functional.relu(self.fc2(x))
        return self.fc3(x)


class Conv1dNet(nn.Module):
    """A 1-D signal classifier (keyword spotting / ECG style), 1x128 input."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, c, 7, padding=3), nn.BatchNorm1d(c), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(c, 2 * c, 5, padding=2), nn.BatchNorm1d(2 * c), nn.ReLU(), nn.MaxPool1d(2),
            nn.Conv1d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU())
        self.classifier = nn.Linear(2 * c * 16, 8)

    def forward(self, x):
        x = self.features(x)
        return self.classifier(x.view(x.size(0), -1))  # the flatten of many user scripts


def _dw_block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6())


class DepthwiseSeparable(nn.Module):
    """MobileNet-v1-style: a stem Conv, depthwise-separable blocks, global average pool, Linear; 3x32x32."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU6())
        self.blocks = nn.Sequential(_dw_block(c, 2 * c, 1), _dw_block(2 * c, 2 * c, 2), _dw_block(2 * c, 4 * c, 2))
        self.head = nn.Linear(4 * c, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class ResConcat(nn.Module):
    """Residual blocks (Conv-BN-ReLU, Conv-BN, Add, ReLU) and an Inception-like channel concat; 3x32x32."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.res_a = nn.Sequential(nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU(),
                                   nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c))
        self.branch1 = nn.Sequential(nn.Conv2d(c, c, 1), nn.ReLU())
        self.branch3 = nn.Sequential(nn.Conv2d(c, c // 2, 3, padding=1), nn.ReLU())
        self.down = nn.Sequential(nn.Conv2d(c + c // 2, 2 * c, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(2 * c, 10)

    def forward(self, x):
        x = self.stem(x)
        x = nn.functional.relu(x + self.res_a(x))
        x = torch.cat([self.branch1(x), self.branch3(x)], dim=1)
        x = nn.functional.max_pool2d(self.down(x), 2)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class HardSwishNet(nn.Module):
    """MobileNet-v3-style activations: HardSwish and SiLU (x * sigmoid(x)); 3x32x32."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, c, 3, 2, 1), nn.BatchNorm2d(c), nn.Hardswish(),
            nn.Conv2d(c, c, 3, 1, 1, groups=c), nn.BatchNorm2d(c), nn.SiLU(),
            nn.Conv2d(c, 2 * c, 1), nn.Hardswish(), nn.MaxPool2d(2))
        self.fc = nn.Linear(2 * c * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.body(x), 1))


class SqueezeExcite(nn.Module):
    """The squeeze-and-excite gate: global average pool, 1x1 conv (reduce), ReLU, 1x1 conv (expand), sigmoid."""

    def __init__(self, c: int, reduced: int):
        super().__init__()
        self.fc1 = nn.Conv2d(c, reduced, 1)
        self.fc2 = nn.Conv2d(reduced, c, 1)

    def forward(self, x):
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(nn.functional.relu(self.fc1(s))))


class SENet(nn.Module):
    """Conv-BN-ReLU, a squeeze-and-excite block, a depthwise conv, another SE block, pool, Linear; 3x16x16."""

    def __init__(self, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c), nn.ReLU())
        self.se1 = SqueezeExcite(c, max(2, c // 4))
        self.dw = nn.Sequential(nn.Conv2d(c, c, 3, 2, 1, groups=c), nn.BatchNorm2d(c), nn.ReLU())
        self.se2 = SqueezeExcite(c, max(2, c // 4))
        self.fc = nn.Linear(c, 10)

    def forward(self, x):
        x = self.se2(self.dw(self.se1(self.stem(x))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def models(small: bool = False) -> dict[str, tuple[nn.Module, tuple[int, ...]]]:
    """name -> (network, input shape without the batch)."""
    c = 8 if small else 16
    return {
        "lenet5": (LeNet5(), (1, 32, 32)),
        "conv1d": (Conv1dNet(c), (1, 128)),
        "dwsep": (DepthwiseSeparable(c), (3, 32, 32)),
        "resnet": (ResConcat(c), (3, 32, 32)),
        "hardswish": (HardSwishNet(c), (3, 32, 32)),
        "se": (SENet(c), (3, 16, 16)),
    }


def _settle_batchnorm(net: nn.Module, shape: tuple[int, ...], generator: torch.Generator) -> None:
    """A few training-mode passes on synthetic data: BatchNorm running statistics become those of real data."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        return
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = None  # cumulative average over the passes below
    net.train()
    with torch.no_grad():
        for _ in range(8):
            net(torch.randn(32, *shape, generator=generator))


def export(out_dir: str | Path, *, small: bool = False, opsets=OPSETS, names=None) -> list[Path]:
    """Export every network at every opset into ``out_dir`` as ``torch_{name}_op{opset}.onnx``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index, (name, (net, shape)) in enumerate(models(small).items()):
        if names is not None and name not in names:
            continue
        torch.manual_seed(index)
        net = models(small)[name][0]  # built after the seed: the same weights on every run
        _settle_batchnorm(net, shape, torch.Generator().manual_seed(100 + index))
        net.eval()
        dummy = torch.randn(1, *shape, generator=torch.Generator().manual_seed(200 + index))
        for opset in opsets:
            path = out_dir / f"torch_{name}{'_small' if small else ''}_op{opset}.onnx"
            buffer = io.BytesIO()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(net, dummy, buffer, opset_version=opset, dynamo=False,
                                  input_names=["input"], output_names=["output"],
                                  dynamic_axes={"input": {0: "batch_size"}, "output": {0: "batch_size"}})
            path.write_bytes(buffer.getvalue())
            written.append(path)
    return written


def input_shapes(small: bool = False) -> dict[str, tuple[int, ...]]:
    """name -> input shape without the batch, without building the networks' weights twice."""
    return {name: shape for name, (_, shape) in models(small).items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--small", action="store_true", help="fewer channels (the committed fixtures)")
    args = parser.parse_args()
    for path in export(args.out_dir, small=args.small):
        print(f"{path} ({path.stat().st_size:,} bytes)")
