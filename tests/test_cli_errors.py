"""Bad input tried as a new user would: each gives one clear line on stderr and exit code 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.cli import main
from tests.conftest import EXAMPLE


def _run(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _assert_one_line(code: int, err: str, *needles: str) -> None:
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert err.startswith("systolix: error: ")
    for needle in needles:
        assert needle in err, err


def test_missing_file(capsys, tmp_path):
    _assert_one_line(*_run(capsys, "inspect", str(tmp_path / "nope.onnx")), "no such file")


def test_truncated_model(capsys, tmp_path):
    data = (EXAMPLE / "model.onnx").read_bytes()
    bad = tmp_path / "truncated.onnx"
    bad.write_bytes(data[: len(data) // 2])
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "truncated.onnx")


def test_text_file_renamed(capsys, tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("these are my notes, not a model\n" * 20)
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "notes.onnx", "not")


def test_empty_file(capsys, tmp_path):
    bad = tmp_path / "empty.onnx"
    bad.write_bytes(b"")
    _assert_one_line(*_run(capsys, "inspect", str(bad)), "empty")


def _save(model: onnx.ModelProto, path) -> str:
    onnx.save(model, str(path))
    return str(path)


def _model(nodes, x_shape, inits=(), x_type=TensorProto.FLOAT) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", x_type, x_shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 6, 6])], list(inits))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)


def test_unsupported_op_names_node_and_op(capsys, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("LpNormalization", ["c"], ["y"], name="weird_norm")]
    path = _save(_model(nodes, [1, 1, 8, 8], [w]), tmp_path / "m.onnx")
    _assert_one_line(*_run(capsys, "inspect", path), "weird_norm", "LpNormalization", "supported:", "Conv")


def test_dynamic_spatial_shape(capsys, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = _save(_model(nodes, ["N", 1, "H", 8], [w]), tmp_path / "m.onnx")
    _assert_one_line(*_run(capsys, "inspect", path), "dynamic dimension 'H'", "axis 2")


def test_external_data_outside_folder_refused(capsys, tmp_path):
    w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 1, 3, 3])
    w.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../../etc/passwd"), ("offset", "0"), ("length", "72")):
        entry = w.external_data.add()
        entry.key, entry.value = k, v
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = tmp_path / "m.onnx"
    path.write_bytes(_model(nodes, [1, 1, 8, 8], [w]).SerializeToString())
    _assert_one_line(*_run(capsys, "inspect", str(path)), "external data", "refusing")


def test_simulate_float_model_asks_to_quantize(capsys):
    _assert_one_line(*_run(capsys, "simulate", str(EXAMPLE / "model.onnx"), "--random", "2"),
                     "float model", "systolix quantize")


@pytest.fixture(scope="module")
def int8_model(tmp_path_factory) -> str:
    """A one-layer QLinearConv model with an int8 input [N, 1, 6, 6]."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.float32(0.05), "xs"), numpy_helper.from_array(np.int8(3), "xz"),
        numpy_helper.from_array(rng.integers(-100, 100, (2, 1, 3, 3)).astype(np.int8), "w"),
        numpy_helper.from_array(np.float32(0.01), "ws"), numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(np.float32(0.2), "ys"), numpy_helper.from_array(np.int8(-5), "yz"),
    ]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="qconv")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.INT8, ["N", 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.INT8, ["N", 2, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return _save(model, tmp_path_factory.mktemp("m") / "int8.onnx")


def test_npz_wrong_shape(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 7, 6), np.int8))
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "shape", "(4, 1, 7, 6)")


def test_npz_wrong_dtype(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 6, 6), np.float32))
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "float32")


def test_npz_not_an_npz(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    data.write_text("1,2,3\n")
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--inputs", str(data)), "x.npz")


def test_simulate_tiny_int8_model_is_bit_exact(tmp_path, int8_model):
    report = tmp_path / "r.json"
    assert main(["simulate", int8_model, "--random", "20", "--layers", "--json", str(report)]) == 0
    import json

    data = json.loads(report.read_text())
    assert data["bit_exact"] is True and data["mismatches"] == 0 and data["samples"] == 20
    assert data["first_mismatch"] is None
    assert [layer["name"] for layer in data["layers"]] == ["qconv"]


def test_json_not_written_on_error(capsys, tmp_path, int8_model):
    data = tmp_path / "x.npz"
    np.savez(data, x=np.zeros((4, 1, 7, 6), np.int8))
    report = tmp_path / "r.json"
    code, _ = _run(capsys, "simulate", int8_model, "--inputs", str(data), "--json", str(report))
    assert code == 2 and not report.exists()


# -- reliability: every refusal is one line, checked before any work, and leaves nothing behind ---------
def _float_conv(path, x_shape=("N", 1, 8, 8), y_shape=("N", 2, 6, 6), w=None, extra_inits=(), y_value=None) -> str:
    """A float Conv + Relu model (the weight ``w`` [2, 1, 3, 3], random unless given)."""
    if w is None:
        w = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["y"], name="relu")]
    y = y_value if y_value is not None else helper.make_tensor_value_info("y", TensorProto.FLOAT, list(y_shape))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))], [y],
                              [numpy_helper.from_array(w, "w"), *extra_inits])
    return _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), path)


def _calib(path, n: int) -> str:
    np.save(path, np.random.default_rng(1).standard_normal((n, 1, 8, 8)).astype(np.float32))
    return str(path)


def _listing(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("n", [64, 128])
def test_quantize_fixed_batch_of_one_with_a_multiple_of_64_samples(capsys, tmp_path, n):
    # was: "onnxruntime could not quantize the model: No data is collected."
    model = _float_conv(tmp_path / "b1.onnx", x_shape=(1, 1, 8, 8), y_shape=(1, 2, 6, 6))
    out = tmp_path / "q.onnx"
    code, err = _run(capsys, "quantize", model, "--calib", _calib(tmp_path / "c.npy", n), "-o", str(out))
    assert (code, err) == (0, "")
    assert out.is_file() and _listing(tmp_path) == ["b1.onnx", "c.npy", "q.onnx"]


def test_simulate_fixed_batch_qdq_model_with_float_layers(capsys, tmp_path):
    # onnxruntime leaves this Conv in float; the float-execution report ran the original [1, ...] graph on all
    # 8 samples at once: "Got invalid dimensions for input: x ... Got: 8 Expected: 1".
    from tests.frontend.test_canonical import conv_group

    model = conv_group()
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    path = _save(model, tmp_path / "qdq_b1.onnx")
    report = tmp_path / "r.json"
    code, err = _run(capsys, "simulate", path, "--random", "8", "--backend", "golden", "--json", str(report))
    assert (code, err) == (0, "")
    import json

    data = json.loads(report.read_text())
    assert data["bit_exact"] and data["samples"] == 8
    assert [(d["op"], d["float_in_original"], d["elements"]) for d in data["float_execution"]] == [
        ("QLinearConv", True, 8 * 4 * 6 * 6), ("graph output", False, 8 * 4 * 6 * 6)]


@pytest.fixture
def no_work(monkeypatch):
    """Make any model loading or quantization fail loudly: an output path must be refused before them."""
    import systolix.frontend.importer
    import systolix.frontend.loader
    import systolix.quantize.ptq

    def boom(*args, **kwargs):
        raise AssertionError("work started before the output path was checked")

    for module, name in ((systolix.frontend.importer, "import_model"), (systolix.frontend.loader, "load_onnx"),
                         (systolix.quantize.ptq, "quantize_model")):
        monkeypatch.setattr(module, name, boom)


def test_quantize_output_is_a_folder(capsys, tmp_path, no_work):
    # was: IsADirectoryError after the whole quantization
    folder = tmp_path / "out"
    folder.mkdir()
    code, err = _run(capsys, "quantize", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"),
                     "-o", str(folder))
    assert (code, err) == (2, f"systolix: error: {folder}: is a folder; -o takes a file name")
    assert _listing(tmp_path) == ["out"] and _listing(folder) == []


def test_quantize_output_would_overwrite_the_model(capsys, tmp_path, no_work):
    model = _float_conv(tmp_path / "m.onnx")
    code, err = _run(capsys, "quantize", model, "--calib", str(EXAMPLE / "calib.npz"), "-o", model)
    assert (code, err) == (2, f"systolix: error: {model}: -o would overwrite an input of the command; "
                              "choose another path")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["inspect", "simulate"])
def test_json_under_proc(capsys, command, int8_model, no_work):
    # was: FileNotFoundError: [Errno 2] No such file or directory: '/proc/.x.json.u_u73eau'
    argv = [command, str(EXAMPLE / "model.onnx")] if command == "inspect" else [command, int8_model, "--random", "2"]
    code, err = _run(capsys, *argv, "--json", "/proc/x.json")
    assert (code, err) == (2, "systolix: error: /proc/x.json: cannot create files in /proc (No such file or directory)")


def test_output_on_a_read_only_file_system(capsys, tmp_path, monkeypatch, no_work):
    # was: OSError: [Errno 30] Read-only file system (after the work); tests run as root, so the
    # file system's refusal is simulated where files are created.
    import errno
    import os

    import systolix.outputs

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(systolix.outputs.tempfile, "mkstemp", read_only)
    out = tmp_path / "q.onnx"
    code, err = _run(capsys, "quantize", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"),
                     "-o", str(out))
    assert (code, err) == (2, f"systolix: error: {out}: cannot create files in {tmp_path} (Read-only file system)")
    assert _listing(tmp_path) == []


def test_output_folder_missing(capsys, tmp_path, no_work):
    report = tmp_path / "nope" / "r.json"
    code, err = _run(capsys, "inspect", str(EXAMPLE / "model.onnx"), "--json", str(report))
    assert (code, err) == (2, f"systolix: error: {report}: folder {report.parent} does not exist")


def test_compile_output_is_a_file(capsys, tmp_path, no_work):
    out = tmp_path / "notes.txt"
    out.write_text("mine\n")
    code, err = _run(capsys, "compile", str(EXAMPLE / "model.onnx"), "-o", str(out))
    assert (code, err) == (2, f"systolix: error: {out}: exists and is not a systolix build folder; choose another -o")
    assert out.read_text() == "mine\n"


def test_simulate_waveform_is_a_folder(capsys, tmp_path, int8_model, no_work):
    code, err = _run(capsys, "simulate", int8_model, "--random", "2", "--waveform", str(tmp_path))
    assert (code, err) == (2, f"systolix: error: {tmp_path}: is a folder; --waveform takes a file name")


def test_written_files_get_the_users_permissions(capsys, tmp_path):
    # Written under a temporary name (mkstemp: 0600) and renamed: the file gets the umask's permissions.
    import os

    out = tmp_path / "q.onnx"
    report = tmp_path / "i.json"
    model = _float_conv(tmp_path / "m.onnx")
    assert _run(capsys, "quantize", model, "--calib", _calib(tmp_path / "c.npy", 8), "-o", str(out))[0] == 0
    assert _run(capsys, "inspect", model, "--json", str(report))[0] == 0
    umask = os.umask(0)
    os.umask(umask)
    assert [p.stat().st_mode & 0o777 for p in (out, report)] == [0o666 & ~umask] * 2
    assert _listing(tmp_path) == ["c.npy", "i.json", "m.onnx", "q.onnx"]


@pytest.mark.parametrize("kind", ["dynamic", "no_output_shape"])
def test_quantize_refusal_leaves_nothing(capsys, tmp_path, kind):
    # was: the quantized model written, then the refusal (exit 2)
    if kind == "dynamic":
        model = _float_conv(tmp_path / "m.onnx", x_shape=("N", 1, "H", "W"), y_shape=("N", 2, "h", "w"))
        want = ("model input 'x' has a dynamic dimension 'H' at axis 2; only the batch axis may be dynamic (fix the "
                "spatial shape when exporting)")
    else:
        model = _float_conv(tmp_path / "m.onnx", y_value=helper.make_tensor_value_info("y", TensorProto.FLOAT, None))
        want = (f"{model}: graph output 'y' has no shape (ONNX requires one on graph inputs and outputs); export the "
                "model with shapes")
    calib = _calib(tmp_path / "c.npy", 8)
    code, err = _run(capsys, "quantize", model, "--calib", calib, "-o", str(tmp_path / "q.onnx"))
    assert (code, err) == (2, f"systolix: error: {want}")
    assert _listing(tmp_path) == ["c.npy", "m.onnx"]


@pytest.mark.parametrize(("value", "shown"), [(np.inf, "Inf"), (-np.inf, "-Inf"), (np.nan, "NaN")])
@pytest.mark.parametrize("command", ["quantize", "inspect"])
def test_non_finite_weight_refused(capsys, tmp_path, value, shown, command):
    # was: quantized with four NumPy warnings (exit 0) into a model that simulate refused
    w = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    w[1, 0, 2, 1] = value
    model = _float_conv(tmp_path / "m.onnx", w=w)
    calib = _calib(tmp_path / "c.npy", 8)
    argv = ["quantize", model, "--calib", calib, "-o", str(tmp_path / "q.onnx")] if command == "quantize" else [
        "inspect", model]
    code, err = _run(capsys, *argv)
    assert (code, err) == (2, f"systolix: error: {model}: initializer 'w', input 1 of Conv node 'conv' holds {shown} "
                              "at index (1, 0, 2, 1) (1 of 18 values are not finite); a model's weights must be "
                              "finite numbers")
    assert _listing(tmp_path) == ["c.npy", "m.onnx"]


def test_quantize_api_refuses_non_finite_weight(tmp_path):
    from systolix.errors import SystolixError
    from systolix.quantize.ptq import quantize_model

    w = np.ones((2, 1, 3, 3), np.float32)
    w[0, 0, 0, 0] = np.inf
    model = _float_conv(tmp_path / "m.onnx", w=w)
    with pytest.raises(SystolixError, match=r"initializer 'w', input 1 of Conv node 'conv' holds Inf at index"):
        quantize_model(model, _calib(tmp_path / "c.npy", 8), tmp_path / "q.onnx")
    assert _listing(tmp_path) == ["c.npy", "m.onnx"]


def test_infinite_clip_bound_is_allowed(capsys, tmp_path):
    inits = [numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w"),
             numpy_helper.from_array(np.float32(0), "lo"), numpy_helper.from_array(np.float32(np.inf), "hi")]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip")]
    path = _save(_model(nodes, ["N", 1, 8, 8], inits), tmp_path / "m.onnx")
    assert _run(capsys, "inspect", path)[0] == 0


def test_onnxruntime_log_lines_and_numpy_warnings_never_reach_stderr(capfd, tmp_path):
    # An unused initializer makes onnxruntime log "[W:onnxruntime:...] Removing initializer 'unused'" (to the
    # process's stderr), a bias of 3e38 makes its quantizer overflow (NumPy RuntimeWarning, then exit 0).
    extra = [numpy_helper.from_array(np.ones(3, np.float32), "unused")]
    quiet = _float_conv(tmp_path / "quiet.onnx", extra_inits=extra)
    calib = _calib(tmp_path / "c.npy", 8)
    assert main(["quantize", quiet, "--calib", calib, "-o", str(tmp_path / "q.onnx")]) == 0
    assert capfd.readouterr().err == ""

    w = np.random.default_rng(0).standard_normal((2, 1, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([3e38, 1], np.float32), "b"), *extra]
    huge = _save(_model(nodes, ["N", 1, 8, 8], inits), tmp_path / "huge.onnx")
    code = main(["quantize", huge, "--calib", calib, "-o", str(tmp_path / "q2.onnx")])
    err = capfd.readouterr().err
    assert (code, err) == (2, "systolix: error: huge.onnx: onnxruntime could not quantize the model: overflow "
                              "encountered in scalar multiply\n")
    assert not (tmp_path / "q2.onnx").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["compile", "m.onnx", "--array", "-4x-4", "-o", "b"],
     "argument --array: expected one argument (see systolix compile --help)"),
    (["simulate", "m.onnx", "--random", "many"], "argument --random: invalid int value: 'many' (see systolix "
                                                 "simulate --help)"),
    (["inspect", "m.onnx", "--jsn", "x"], "unrecognized arguments: --jsn x (see systolix --help)"),
    ([], "the following arguments are required: command (see systolix --help)"),
])
def test_usage_errors_are_one_line(capsys, argv, message):
    # was: argparse's usage block (four lines) before the error
    code, err = _run(capsys, *argv)
    assert (code, err) == (2, f"systolix: error: {message}")


def test_zero_size_dimension_is_not_called_dynamic(capsys, tmp_path):
    w = numpy_helper.from_array(np.ones((2, 1, 3, 3), np.float32), "w")
    path = _save(_model([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], ["N", 1, 0, 8], [w]),
                 tmp_path / "m.onnx")
    code, err = _run(capsys, "inspect", path)
    assert (code, err) == (2, "systolix: error: model input 'x' has a zero-size dimension at axis 2 (shape "
                              "[N, 1, 0, 8]): it holds no elements; export it with the real size")


def test_lstm_refused_for_the_op_not_its_input_shape(capsys, tmp_path):
    # was: "model input 'x' has a fixed batch of 5" (the sequence length comes first in an LSTM's input)
    from systolix.frontend.importer import supported_ops

    inits = [numpy_helper.from_array(np.zeros((1, 16, 8), np.float32), "W"),
             numpy_helper.from_array(np.zeros((1, 16, 4), np.float32), "R")]
    graph = helper.make_graph([helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm", hidden_size=4)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [5, 1, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [5, 1, 1, 4])], inits)
    path = _save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8),
                 tmp_path / "lstm.onnx")
    want = f"systolix: error: node lstm: op LSTM is not supported; supported: {', '.join(supported_ops(False))}"
    assert _run(capsys, "inspect", path) == (2, want)
    assert _run(capsys, "quantize", path, "--calib", _calib(tmp_path / "c.npy", 4), "-o",
                str(tmp_path / "q.onnx")) == (2, want)
    assert _listing(tmp_path) == ["c.npy", "lstm.onnx"]


def _bug(*args, **kwargs):
    raise ZeroDivisionError("division by zero")


def test_unexpected_exception_is_one_line_naming_the_command(capsys, monkeypatch):
    import systolix.frontend.importer

    monkeypatch.setattr(systolix.frontend.importer, "import_model", _bug)
    code, err = _run(capsys, "inspect", str(EXAMPLE / "model.onnx"))
    assert (code, err) == (3, "systolix: error: inspect: internal error, a bug in systolix (ZeroDivisionError: "
                              f"division by zero in {__name__}._bug); rerun with --debug for the traceback")


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback(monkeypatch, where):
    import systolix.frontend.importer

    monkeypatch.setattr(systolix.frontend.importer, "import_model", _bug)
    argv = ["inspect", str(EXAMPLE / "model.onnx")]
    with pytest.raises(ZeroDivisionError):
        main(["--debug", *argv] if where == "before" else [*argv, "--debug"])


def _overflow(*args, **kwargs):
    return np.float32(3e38) * np.float32(10)


def test_numpy_float_error_is_one_line(capsys, monkeypatch):
    # NumPy's RuntimeWarning ("overflow encountered in ...") was printed on the way; now it is the error.
    import systolix.frontend.importer

    monkeypatch.setattr(systolix.frontend.importer, "import_model", _overflow)
    code, err = _run(capsys, "inspect", str(EXAMPLE / "model.onnx"))
    assert (code, err) == (2, "systolix: error: load: numerical error (overflow encountered in scalar multiply in "
                              f"{__name__}._overflow): a weight or sample too large for float32 arithmetic?")


def test_numpy_float_error_is_a_systolix_error_in_the_api(monkeypatch):
    import systolix
    import systolix.frontend.importer

    monkeypatch.setattr(systolix.frontend.importer, "import_model", _overflow)
    with pytest.raises(systolix.SystolixError, match=r"^load: numerical error \(overflow encountered"):
        systolix.load(EXAMPLE / "model.onnx")


def test_non_finite_constant_node_refused(capsys, tmp_path):
    value = np.ones((2, 1, 3, 3), np.float32)
    value[0, 0, 1, 1] = np.nan
    nodes = [helper.make_node("Constant", [], ["w"], name="const", value=numpy_helper.from_array(value, "wv")),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    path = _save(_model(nodes, ["N", 1, 8, 8]), tmp_path / "m.onnx")
    assert _run(capsys, "inspect", path) == (2, f"systolix: error: {path}: constant 'w', input 1 of Conv node 'conv' "
                                                "holds NaN at index (0, 0, 1, 1) (1 of 18 values are not finite); a "
                                                "model's weights must be finite numbers")


def test_images_without_channel_axis_are_simulated_with_a_note(capsys, tmp_path, int8_model):
    data, report = tmp_path / "x.npz", tmp_path / "r.json"
    np.savez(data, x=np.arange(4 * 36).reshape(4, 6, 6).astype(np.int8))
    assert main(["simulate", int8_model, "--inputs", str(data), "--backend", "golden", "--json", str(report)]) == 0
    import json

    notes = json.loads(report.read_text())["input_notes"]
    assert notes == ["x.npz: array 'x' has shape (4, 6, 6): inserted the model's size-1 axis 1 to make it "
                     "(4, 1, 6, 6) ('x' expects (N, 1, 6, 6))"]
    assert "inputs: x.npz: array 'x' has shape (4, 6, 6)" in capsys.readouterr().out


def test_trace_options_need_a_waveform_and_a_real_layer(capsys, tmp_path, int8_model):
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--random", "2", "--trace-depth", "1"),
                     "need --waveform FILE")
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--random", "2", "--backend", "verilator", "--array",
                           "4x4", "--waveform", str(tmp_path / "w.vcd"), "--trace-layer", "nope"),
                     "--trace-layer 'nope' is not a layer", "qconv")
    assert not (tmp_path / "w.vcd").exists()
    _assert_one_line(*_run(capsys, "simulate", int8_model, "--random", "2", "--backend", "verilator", "--array",
                           "4x4", "--waveform", str(tmp_path / "w.vcd"), "--trace-depth", "0"), "at least 1")
