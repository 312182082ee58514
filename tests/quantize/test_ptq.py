"""systolix.quantize.ptq: post-training quantization with onnxruntime, and float/int8 agreement."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console

from systolix.errors import SystolixError
from systolix.frontend.reference import reference_session
from systolix.quantize.calibration import ArrayDataReader
from systolix.quantize.ptq import (
    QuantizationWarning,
    agreement,
    agreement_table,
    model_input,
    quantize_model,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
MNIST_MODEL = SHARED / "models" / "mnist_cnn_2018.onnx"
MNIST_DATA = SHARED / "data" / "mnist5k.npz"


def _float_model(
    path: Path, *, batch: int | str = "N", matmul_add: bool = False, ir_version: int = 8
) -> Path:
    """Conv, BatchNormalization, Relu, MaxPool, Dropout, Identity, Flatten, then Gemm or MatMul + Add."""
    rng = np.random.default_rng(1)

    def init(name: str, a: np.ndarray) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(a, dtype=np.float32), name)

    inits = [
        init("w1", rng.normal(0, 0.3, (6, 2, 3, 3))),
        init("b1", rng.normal(0, 0.1, 6)),
        init("gamma", rng.uniform(0.5, 1.5, 6)),
        init("beta", rng.normal(0, 0.1, 6)),
        init("mean", rng.normal(0, 0.1, 6)),
        init("var", rng.uniform(0.5, 1.5, 6)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c1", "gamma", "beta", "mean", "var"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Dropout", ["p1"], ["d1"]),
        helper.make_node("Identity", ["d1"], ["i1"]),
        helper.make_node("Flatten", ["i1"], ["f1"]),
    ]
    w2 = rng.normal(0, 0.2, (6 * 4 * 4, 10))
    if matmul_add:
        inits += [init("w2", w2), init("b2", rng.normal(0, 0.1, (1, 10)))]
        nodes += [
            helper.make_node("MatMul", ["f1", "w2"], ["mm"]),
            helper.make_node("Add", ["mm", "b2"], ["y"]),
        ]
    else:
        inits += [init("w2", w2.T), init("b2", rng.normal(0, 0.1, 10))]
        nodes.append(helper.make_node("Gemm", ["f1", "w2", "b2"], ["y"], transB=1))
    graph = helper.make_graph(
        nodes,
        "small_cnn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=ir_version)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _data(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 1, (n, 2, 8, 8)).astype(np.float32)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("ptq")
    model = _float_model(d / "small.onnx")
    np.savez(d / "calib.npz", x=_data(64))
    return model, d / "calib.npz"


def _inits(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in vi.type.tensor_type.shape.dim]


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_default_is_s8s8_qoperator_per_channel(small: tuple[Path, Path], tmp_path: Path, method: str) -> None:
    model_path, calib = small
    out = tmp_path / "q.onnx"
    result = quantize_model(model_path, calib, out, method=method)
    assert result.out_path == out and out.is_file()
    assert result.calib_samples == 64 and result.exact_on_any_x86 and result.notes == ()
    q = onnx.load(str(out))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("QLinearConv") == 1 and ops.count("QGemm") == 1
    # pre-processing folded BatchNormalization and removed Dropout/Identity; Relu became the output clamp
    assert not {"BatchNormalization", "Dropout", "Identity", "Relu", "Conv", "Gemm"} & set(ops)
    assert result.op_counts == {op: ops.count(op) for op in set(ops)}
    inits = _inits(q)
    for node in q.graph.node:
        if node.op_type in ("QLinearConv", "QGemm"):
            assert inits[node.input[2]].dtype == np.int8  # activation zero point: S8 activations
            assert inits[node.input[3]].dtype == np.int8  # weights: S8
            assert inits[node.input[4]].shape == (6 if node.op_type == "QLinearConv" else 10,)  # per channel
        if node.op_type == "QuantizeLinear":
            assert inits[node.input[2]].dtype == np.int8
    # the symbolic batch dimension survives and the model runs with any batch
    assert _dims(q.graph.input[0]) == ["N", 2, 8, 8]
    session = reference_session(out)
    for n in (1, 5):
        (y,) = session.run(None, {"x": _data(n, seed=9)})
        assert y.shape == (n, 10) and y.dtype == np.float32


def test_agreement_is_sane(small: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, calib = small
    out = tmp_path / "q.onnx"
    quantize_model(model_path, calib, out)
    x = _data(200, seed=5)
    # labels = the float model's own choices, so float accuracy must be 1 and int8 accuracy = agreement
    f = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    labels = f.argmax(axis=1)
    a = agreement(model_path, out, x, labels, batch_size=64)
    assert a.samples == 200 and a.float_correct == 200 and a.int8_correct == a.agree
    assert a.agreement >= 0.8, a
    assert a.max_abs_diff is not None and 0 < a.max_abs_diff < float(np.abs(f).max())
    assert a.output_range == pytest.approx(float(f.max() - f.min()))  # float-only figure
    assert "% of the float output's range" in a.difference_text
    q = reference_session(out).run(None, {"x": x})[0]
    assert a.agree == int((q.argmax(axis=1) == labels).sum())
    text = _render(agreement_table(a))
    assert "top-1 agreement" in text and f"{a.agree}/200" in text and "int8 accuracy" in text
    no_labels = agreement(model_path, out, x)
    assert no_labels.float_correct is None and no_labels.int8_accuracy is None
    assert no_labels.agree == a.agree


def _render(table) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=120).print(table)
    return buffer.getvalue()


def test_matmul_add_bias_and_fixed_batch(tmp_path: Path) -> None:
    # MatMul + Add(1, N) is fused to Gemm with a (1, N) bias, on which onnxruntime's per-channel
    # quantizer fails unless the bias is reshaped; the batch is fixed at 1 (fed one sample at a time).
    model_path = _float_model(tmp_path / "mm.onnx", batch=1, matmul_add=True)
    np.save(tmp_path / "c.npy", _data(20))
    out = tmp_path / "q.onnx"
    result = quantize_model(model_path, tmp_path / "c.npy", out, max_calib_samples=7)
    assert result.calib_samples == 7 and result.exact_on_any_x86
    q = onnx.load(str(out))
    assert "QGemm" in [n.op_type for n in q.graph.node]
    assert _dims(q.graph.input[0]) == [1, 2, 8, 8]
    a = agreement(model_path, out, _data(30, seed=3))
    assert a.samples == 30 and a.agreement >= 0.7


def test_fixed_batch_calibration_uses_every_sample(tmp_path: Path) -> None:
    # A batch-1 model is fed one sample per run. onnxruntime's MinMax calibrator with
    # CalibMaxIntermediateOutputs=64 dropped the feeds on reaching 64 (64 samples: "No data is collected";
    # more: ranges from the last feeds only). The extreme sample comes first: the input scale must see it.
    model_path = _float_model(tmp_path / "b1.onnx", batch=1)
    for n in (64, 70):
        x = _data(n)
        x[0, 0, 0, 0] = 40.0
        np.save(tmp_path / "c.npy", x)
        out = tmp_path / f"q{n}.onnx"
        result = quantize_model(model_path, tmp_path / "c.npy", out)
        assert result.calib_samples == n
        q = onnx.load(str(out))
        inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
        (quant,) = [node for node in q.graph.node if node.op_type == "QuantizeLinear" and node.input[0] == "x"]
        scale = float(inits[quant.input[1]])
        assert scale * 255 >= 40.0 - float(np.abs(x).min()) - 1e-3, (n, scale)


def test_uint8_activations(small: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, calib = small
    # default reduce_range=None: 7-bit weights, exact everywhere
    r = quantize_model(model_path, calib, tmp_path / "a.onnx", activation_type="uint8")
    assert r.reduce_range and r.exact_on_any_x86
    q = onnx.load(str(tmp_path / "a.onnx"))
    inits = _inits(q)
    for node in q.graph.node:
        if node.op_type in ("QLinearConv", "QGemm"):
            assert inits[node.input[2]].dtype == np.uint8
            w = inits[node.input[3]]
            assert w.dtype == np.int8 and int(np.abs(w.astype(np.int32)).max()) <= 64
    # explicit full-range int8 weights with uint8 activations: saturating kernel without VNNI -> warning
    with pytest.warns(QuantizationWarning, match="uint8-activation x int8-weight"):
        r = quantize_model(
            model_path, calib, tmp_path / "b.onnx", activation_type="uint8", reduce_range=False
        )
    assert not r.exact_on_any_x86 and "beyond [-64, 64]" in r.notes[0]
    # U8U8 per tensor is exact
    r = quantize_model(
        model_path,
        calib,
        tmp_path / "c.onnx",
        activation_type="uint8",
        weight_type="uint8",
        per_channel=False,
    )
    assert r.exact_on_any_x86 and not r.reduce_range
    # uint8-activation models get the exact reference session and run
    (y,) = reference_session(tmp_path / "b.onnx").run(None, {"x": _data(2)})
    assert y.shape == (2, 10)


def test_qdq_warns(small: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, calib = small
    with pytest.warns(QuantizationWarning, match="QDQ format"):
        r = quantize_model(model_path, calib, tmp_path / "q.onnx", quant_format="qdq")
    assert not r.exact_on_any_x86
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "kl"}, "unsupported calibration method 'kl'; choose one of minmax, entropy, percentile"),
        ({"quant_format": "qlinear"}, "unsupported quantization format 'qlinear'; choose qoperator or qdq"),
        ({"activation_type": "int4"}, "unsupported activation_type 'int4'; choose int8 or uint8"),
        (
            {"weight_type": "uint8"},
            "int8 activations with uint8 weights are not supported by onnxruntime; use int8 weights",
        ),
        ({"max_calib_samples": 0}, "max_calib_samples must be a positive int, not 0"),
    ],
)
def test_bad_options(small: tuple[Path, Path], tmp_path: Path, kwargs: dict, message: str) -> None:
    model_path, calib = small
    with pytest.raises(SystolixError) as e:
        quantize_model(model_path, calib, tmp_path / "q.onnx", **kwargs)
    assert str(e.value) == message
    assert list(tmp_path.iterdir()) == []


def test_errors_leave_output_untouched(small: tuple[Path, Path], tmp_path: Path) -> None:
    model_path, _ = small
    out = tmp_path / "q.onnx"
    out.write_bytes(b"previous")
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 8, 8), np.float32))
    with pytest.raises(SystolixError) as e:
        quantize_model(model_path, tmp_path / "bad.npz", out)
    assert (
        str(e.value) == "bad.npz: array 'x' has shape (4, 8, 8), the model's input 'x' expects (N, 2, 8, 8)"
    )
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(SystolixError, match=r"^text\.onnx: not an ONNX model"):
        quantize_model(tmp_path / "text.onnx", tmp_path / "bad.npz", out)
    with pytest.raises(SystolixError) as e:
        quantize_model(model_path, tmp_path / "bad.npz", model_path)
    assert str(e.value) == f"{model_path}: the output would overwrite the input model; choose another path"
    assert out.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.npz", "q.onnx", "text.onnx"]


def test_ir_version_newer_than_onnxruntime_reads_is_normalised(tmp_path: Path) -> None:
    """``onnx.helper.make_model`` writes IR 14, which onnxruntime 1.31 refuses: the normaliser lowers it."""
    model_path = _float_model(tmp_path / "new.onnx", ir_version=14)
    np.savez(tmp_path / "c.npz", x=_data(4))
    result = quantize_model(model_path, tmp_path / "c.npz", tmp_path / "q.onnx")
    assert any(n.startswith("normalised: lower-ir-version: IR version 14 -> 13") for n in result.notes)
    assert onnx.load(str(tmp_path / "q.onnx")).ir_version <= 13


def test_model_onnxruntime_cannot_load(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="org.example")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("org.example", 1)],
                              ir_version=8)
    onnx.save(model, str(tmp_path / "new.onnx"))
    np.savez(tmp_path / "c.npz", x=np.zeros((4, 4), np.float32))
    with pytest.raises(SystolixError) as e:
        quantize_model(tmp_path / "new.onnx", tmp_path / "c.npz", tmp_path / "q.onnx")
    message = str(e.value)
    assert message.startswith("new.onnx: onnxruntime cannot load the model: ")
    assert "\n" not in message
    assert not (tmp_path / "q.onnx").exists()


def test_two_input_model_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["c"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [1])],
    )
    with pytest.raises(SystolixError) as e:
        model_input(helper.make_model(graph))
    assert str(e.value) == "the model has 2 inputs ('a', 'b'); systolix handles one-input models"


def test_array_data_reader() -> None:
    x = np.arange(10, dtype=np.float32).reshape(10, 1)
    r = ArrayDataReader("in", x, 4)
    feeds = list(r)
    assert len(r) == 3 and [f["in"].shape[0] for f in feeds] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([f["in"] for f in feeds]), x)
    r.set_range(1, 2)
    assert [f["in"][0, 0] for f in r] == [4.0]
    r.rewind()
    assert r.get_next() is not None and r.get_next() is None
    with pytest.raises(ValueError, match="not a multiple of the fixed batch 4"):
        ArrayDataReader("in", x, 4, fixed_batch=True)


@pytest.mark.shared
@pytest.mark.skipif(not (MNIST_MODEL.exists() and MNIST_DATA.exists()), reason="../shared is absent")
def test_mnist_cnn(tmp_path: Path) -> None:
    # mnist5k is sorted by class: calibrate on every 5th image (1000, 100 per class), evaluate on the
    # next residue class (1000 other images, also 100 per class).
    with np.load(MNIST_DATA, allow_pickle=False) as d:
        x = d["x"].reshape(-1, 1, 28, 28).astype(np.float32)
        y = d["y"].astype(np.int64)
    np.savez(tmp_path / "calib.npz", Input3=x[0::5])
    out = tmp_path / "mnist_int8.onnx"
    start = time.perf_counter()
    result = quantize_model(MNIST_MODEL, tmp_path / "calib.npz", out)
    seconds = time.perf_counter() - start
    assert result.calib_samples == 1000 and result.exact_on_any_x86
    assert {"QLinearConv", "QGemm"} <= set(result.op_counts)
    assert seconds < 60
    a = agreement(MNIST_MODEL, out, x[1::5], y[1::5])
    print(
        f"\nmnist_cnn_2018 int8 (minmax, S8S8 QOperator per-channel): quantized in {seconds:.1f} s; "
        f"top-1 agreement {a.agree}/{a.samples}, float accuracy {a.float_correct}/{a.samples}, "
        f"int8 accuracy {a.int8_correct}/{a.samples}"
    )
    assert a.agreement >= 0.98
    assert a.float_accuracy is not None and a.float_accuracy >= 0.97
    assert a.int8_accuracy is not None and a.int8_accuracy >= a.float_accuracy - 0.01


def test_x64quantprecision_breaks_s8s8_qoperator(small: tuple[Path, Path], tmp_path: Path) -> None:
    # Pins the onnxruntime 1.31.1 behaviour reference_session works around: the option rewrites the
    # int8 weights of S8xS8 QLinearConv/QGemm to uint8, and no CPU kernel takes int8 x uint8.
    model_path, calib = small
    out = tmp_path / "q.onnx"
    quantize_model(model_path, calib, out)
    so = ort.SessionOptions()
    so.add_session_config_entry("session.x64quantprecision", "1")
    so.log_severity_level = 4
    with pytest.raises(Exception, match="Failed to find kernel"):
        ort.InferenceSession(str(out), so, providers=["CPUExecutionProvider"])
    reference_session(out)  # without the option: loads


@pytest.mark.parametrize("n", [64, 128, 65])
def test_fixed_batch_of_one_calibrates_on_every_sample(tmp_path: Path, n: int) -> None:
    # onnxruntime's CalibMaxIntermediateOutputs clears what it collected every 64 feeds without using it:
    # a multiple of 64 one-sample feeds ended in "No data is collected.", 65 calibrated on the last one.
    model_path = _float_model(tmp_path / "b1.onnx", batch=1)
    x = _data(n, seed=4)
    x[0] *= 10  # the widest sample comes first
    np.save(tmp_path / "c.npy", x)
    out = tmp_path / "q.onnx"
    result = quantize_model(model_path, tmp_path / "c.npy", out)
    assert result.calib_samples == n
    q = onnx.load(str(out))
    (qx,) = [node for node in q.graph.node if node.op_type == "QuantizeLinear" and node.input[0] == "x"]
    lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
    np.testing.assert_allclose(_inits(q)[qx.input[1]], (hi - lo) / 255, rtol=1e-6)


def test_difference_is_reported_against_the_output_range_and_step() -> None:
    from systolix.quantize.ptq import Agreement

    a = Agreement(samples=4, agree=4, max_abs_diff=0.5, output_range=10.0, output_step=0.25)
    assert a.difference_text == "0.5 (5.00% of the float output's range 10; 2 output quantization steps of 0.25)"
    assert Agreement(samples=4, agree=4).difference_text is None
    assert Agreement(samples=4, agree=4, max_abs_diff=0.5).difference_text == "0.5"
