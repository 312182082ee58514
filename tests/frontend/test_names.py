"""Short unique layer names for tables (the full names stay in JSON)."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

import systolix
from systolix.frontend.names import short_names

CORPUS = Path(__file__).resolve().parents[1] / "corpus"


def test_tflite_joined_names_keep_the_distinguishing_part() -> None:
    names = ["functional_1/activation_1/Relu;functional_1/conv2d_1/BiasAdd;functional_1/conv2d_1/Conv2D",
             "functional_1/activation_2/Relu;functional_1/conv2d_2/BiasAdd;functional_1/conv2d_2/Conv2D",
             "functional_1/dense/MatMul"]
    assert short_names(names) == {names[0]: "activation_1/Relu", names[1]: "activation_2/Relu",
                                  names[2]: "MatMul"}


def test_torch_paths_and_shared_first_aliases() -> None:
    names = ["/layer1/conv1/Conv", "/layer2/conv1/Conv", "/fc/Gemm", "a/Relu;a/conv_q__67", "a/Relu;a/conv_q"]
    short = short_names(names)
    assert short["/layer1/conv1/Conv"] == "layer1/conv1/Conv" and short["/fc/Gemm"] == "Gemm"
    assert short["a/Relu;a/conv_q__67"] == "conv_q__67" and short["a/Relu;a/conv_q"] == "conv_q"
    assert len(set(short.values())) == len(names)


def test_a_short_name_never_equals_another_layers_name() -> None:
    short = short_names(["x/b", "b_other", "b"])
    assert short["x/b"] == "x/b" and short["b"] == "b"
    assert len(set(short.values())) == 3


def test_inspect_shows_every_tflite_layer_whole_and_distinct() -> None:
    model = systolix.load(CORPUS / "tf_keras_cnn_tflite_int8.onnx")
    out = io.StringIO()
    Console(file=out, width=240).print(model.table())
    shown = short_names([layer["name"] for layer in model.layers])
    text = out.getvalue()
    assert len(set(shown.values())) == len(model.layers)
    for name in shown.values():
        assert f"│ {name} " in text
    assert [layer["name"] for layer in model.to_json()["layers"]] == list(shown)  # JSON keeps the full names


def test_converted_layers_share_a_line_per_reason() -> None:
    model = systolix.load(CORPUS / "torch_resnet_small_op13_ortqdq_s8.onnx")
    lines = model.converted_lines
    assert len(lines) < len(model.converted)
    convs = [line for line in lines if "(QLinearConv)" in line]
    assert len(convs) == 1 and convs[0].count(",") == sum("(QLinearConv)" in c for c in model.converted) - 1
