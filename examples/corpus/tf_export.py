"""Keras models converted by tf2onnx, as TensorFlow users get them: float (``from_function``) and full-integer
TFLite (``TFLiteConverter`` with a representative dataset, then ``from_tflite``).

- ``keras_cnn``: the Keras MNIST tutorial's shape (Conv2D-ReLU, MaxPool twice, Flatten, Dense), NHWC 28x28x1;
- ``keras_dwsep``: Conv2D, DepthwiseConv2D, BatchNormalization, ReLU6, a 1x1 Conv2D, a residual Add,
  GlobalAveragePooling2D, Dense; NHWC 32x32x3;
- ``keras_conv1d``: Conv1D-ReLU, MaxPooling1D, Conv1D-ReLU, GlobalAveragePooling1D (a ``ReduceMean`` after
  TFLite), Dense; NLC 64x3. tf2onnx brackets each layer with ``Transpose``/``Reshape``/``Unsqueeze`` round trips;
- ``keras_preproc``: ``Rescaling(1/255)`` and ``Normalization`` on the NHWC input, Conv2D-ReLU, BatchNormalization
  after the activation, MaxPool, Conv2D, LeakyReLU, GlobalAveragePooling2D, Dropout, Dense with softmax;
- ``keras_conv1d_pool``: Conv1D, MaxPooling1D, AveragePooling1D (a window of 3, and a window of 3 with stride 2),
  a ``padding="same"`` Conv1D, Flatten, Dense; NLC 64x3;
- ``keras_prefix``: ``Rescaling(1/255)`` and ``Normalization`` (ImageNet's mean and variance) then a plain CNN,
  NHWC 24x24x3. Its TFLite int8 model starts with ``Q -> DQ -> Mul -> Q -> DQ -> Sub -> Q -> DQ -> Mul -> Q`` on
  the NHWC input, which systolix leaves to the host (``systolix.frontend.canonical_prefix``).

tf2onnx writes the NHWC input with a Transpose to NCHW, and a Transpose back before every Flatten; the TFLite
model becomes QDQ (QuantizeLinear/DequantizeLinear around float ops) with int8 activations. Weights are Keras'
random init (fixed seed). Usage: ``python examples/corpus/tf_export.py OUT_DIR`` (needs ``pip install -e .[tf]``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

OPSET = 13
#: Models whose input is pixels (0..255, scaled by a ``Rescaling`` layer): calibrated on uniform 0..255 samples
#: (the others on random-normal ones).
PIXEL_INPUTS = ("keras_prefix",)


def _models():
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    cnn = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(10)],
        name="keras_cnn")
    x = inp = keras.Input((32, 32, 3))
    x = layers.ReLU(6.0)(layers.BatchNormalization()(layers.Conv2D(16, 3, strides=2, padding="same")(x)))
    y = layers.ReLU(6.0)(layers.BatchNormalization()(layers.DepthwiseConv2D(3, padding="same")(x)))
    y = layers.BatchNormalization()(layers.Conv2D(16, 1)(y))
    x = layers.ReLU()(layers.Add()([x, y]))
    x = layers.Dense(10)(layers.GlobalAveragePooling2D()(x))
    dwsep = keras.Model(inp, x, name="keras_dwsep")
    rng = np.random.default_rng(0)
    for layer in dwsep.layers:  # BatchNorm statistics other than the identity
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2.0, c)])
    conv1d = keras.Sequential([  # a sensor / keyword-spotting shape: tf2onnx wraps every layer in NHWC transposes
        keras.Input((64, 3)), layers.Conv1D(8, 5, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(16, 3, activation="relu"), layers.GlobalAveragePooling1D(), layers.Dense(4)],
        name="keras_conv1d")
    preproc = keras.Sequential([  # input scaling and normalisation layers in the model, as Keras tutorials write
        keras.Input((32, 32, 3)), layers.Rescaling(1 / 255.0),
        layers.Normalization(mean=[0.5, 0.4, 0.3], variance=[0.04, 0.05, 0.06]),
        layers.Conv2D(8, 3, activation="relu"), layers.BatchNormalization(), layers.MaxPooling2D(),
        layers.Conv2D(16, 3, padding="same"), layers.LeakyReLU(0.1), layers.GlobalAveragePooling2D(),
        layers.Dropout(0.2), layers.Dense(4, activation="softmax")], name="keras_preproc")
    for layer in preproc.layers:
        if isinstance(layer, layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, c), rng.normal(0, 0.2, c), rng.normal(0, 0.2, c),
                               rng.uniform(0.5, 2.0, c)])
    # the 1-D pooling layers of Keras (odd windows: an even number of cells makes rounding ties that onnxruntime's
    # float32 average decides value by value, which no integer window sum reproduces; systolix refuses those)
    conv1d_pool = keras.Sequential([
        keras.Input((64, 3)), layers.Conv1D(8, 5, activation="relu"), layers.MaxPooling1D(2),
        layers.Conv1D(16, 3, activation="relu"), layers.AveragePooling1D(3),
        layers.Conv1D(16, 3, padding="same", activation="relu"), layers.AveragePooling1D(3, strides=2),
        layers.Flatten(), layers.Dense(4)], name="keras_conv1d_pool")
    prefix = keras.Sequential([  # preprocessing layers, then a plain CNN: TFLite int8 keeps them as int8 ops
        keras.Input((24, 24, 3)), layers.Rescaling(1 / 255.0),
        layers.Normalization(mean=[0.485, 0.456, 0.406], variance=[0.052, 0.050, 0.051]),
        layers.Conv2D(8, 3, activation="relu"), layers.MaxPooling2D(), layers.Conv2D(16, 3, activation="relu"),
        layers.GlobalAveragePooling2D(), layers.Dense(4)], name="keras_prefix")
    return {"keras_cnn": cnn, "keras_dwsep": dwsep, "keras_conv1d": conv1d, "keras_preproc": preproc,
            "keras_conv1d_pool": conv1d_pool, "keras_prefix": prefix}


def export(out_dir: str | Path, only: tuple[str, ...] = ()) -> list[tuple[Path, str]]:
    """Write ``tf_{name}.onnx`` (float) and ``tf_{name}_tflite_int8.onnx``; returns (path, exporter) pairs."""
    import tensorflow as tf
    import tf2onnx

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    versions = f"tf {tf.__version__}, tf2onnx {tf2onnx.__version__}"
    for name, model in _models().items():
        if only and name not in only:
            continue
        shape = tuple(model.inputs[0].shape[1:])
        spec = (tf.TensorSpec((None, *shape), tf.float32, name="input"),)
        path = out_dir / f"tf_{name}.onnx"
        # from_keras fails on Keras 3 models (KeyError on the output's keras_tensor name, a known tf2onnx 1.17
        # limitation); the usual workaround is converting the model's tf.function
        function = tf.function(lambda x, model=model: model(x, training=False))
        tf2onnx.convert.from_function(function, input_signature=spec, opset=OPSET, output_path=str(path))
        written.append((path, f"{versions} from_function(keras model), opset {OPSET}"))

        def representative(shape=shape, pixels=name in PIXEL_INPUTS):
            rng = np.random.default_rng(1)
            for _ in range(32):
                x = rng.uniform(0, 255, (1, *shape)) if pixels else rng.normal(0, 1, (1, *shape))
                yield [x.astype(np.float32)]

        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.float32  # float in and out, int8 inside (the default)
        converter.inference_output_type = tf.float32
        with tempfile.TemporaryDirectory() as tmp:
            tflite = Path(tmp) / f"{name}.tflite"
            tflite.write_bytes(converter.convert())
            qpath = out_dir / f"tf_{name}_tflite_int8.onnx"
            tf2onnx.convert.from_tflite(str(tflite), opset=OPSET, output_path=str(qpath))
        written.append((qpath, f"{versions} TFLite int8 -> from_tflite, opset {OPSET}"))
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--only", nargs="*", default=(), help="model names (default: all)")
    args = parser.parse_args()
    for path, exporter in export(args.out_dir, tuple(args.only)):
        print(f"{path} ({path.stat().st_size:,} bytes): {exporter}")
