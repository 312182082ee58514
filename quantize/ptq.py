"""Post-training int8 quantization with onnxruntime's quantizer, configured for integer-exact results.

:func:`quantize_model` wraps ``onnxruntime.quantization.quantize_static``. It first runs onnxruntime's
``quant_pre_process`` (symbolic shape inference, then the basic graph optimizer, which folds
BatchNormalization into the preceding Conv, fuses MatMul+Add into Gemm and removes Identity and
Dropout). The default configuration -- QOperator format, int8 (S8) activations, int8 per-channel
weights -- is the one whose onnxruntime results are integer-exact on *any* x86 CPU: S8xS8 QOperator
nodes run MLAS's generic kernel, which never saturates (``docs/quantization.md`` explains the choice
and the alternatives). Every quantized model is checked after the fact; combinations that would run
onnxruntime's saturating U8xS8 kernel on CPUs without VNNI raise a :class:`QuantizationWarning`.

:func:`agreement` measures how often the float and the quantized model agree on the top-1 class.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
from rich.table import Table

from systolix.errors import SystolixError
from systolix.frontend.loader import check_finite_weights
from systolix.frontend.reference import reference_session

from .calibration import ArrayDataReader
from .datasets import load_inputs

__all__ = [
    "Agreement",
    "ModelInput",
    "QuantizationWarning",
    "QuantizeResult",
    "agreement",
    "agreement_table",
    "model_input",
    "quantize_model",
]

Method = Literal["minmax", "entropy", "percentile"]
Format = Literal["qoperator", "qdq"]
QType = Literal["int8", "uint8"]

_METHODS = ("minmax", "entropy", "percentile")
_FORMATS = ("qoperator", "qdq")
_QTYPES = ("int8", "uint8")
_CALIB_BATCH = 32

# Quantized compute ops: positions of (activation zero point, weight, weight zero point) inputs.
_MATMUL_LIKE = {"QLinearConv": (2, 3, 5), "QLinearMatMul": (2, 3, 5), "QGemm": (2, 3, 5)}
# Ops whose output is quantized: positions of (y_scale, y_zero_point).
_OUTPUT_QPARAMS = {
    "QuantizeLinear": (1, 2),
    "QLinearConv": (6, 7),
    "QLinearMatMul": (6, 7),
    "QGemm": (7, 8),
    "QLinearAdd": (6, 7),
    "QLinearMul": (6, 7),
    "QLinearGlobalAveragePool": (3, 4),
    "QLinearAveragePool": (3, 4),
    "QLinearLeakyRelu": (3, 4),
    "QLinearSigmoid": (3, 4),
    "QLinearConcat": (0, 1),
}
# Ops that pass quantization parameters through unchanged.
_PASSTHROUGH = {"MaxPool", "Resize", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"}


class QuantizationWarning(UserWarning):
    """The quantized model works, but is not integer-exact in onnxruntime on every x86 CPU."""


@dataclass(frozen=True)
class ModelInput:
    """The single input of a model: name, shape (``None`` for symbolic dimensions) and element type."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype


@dataclass(frozen=True)
class QuantizeResult:
    """What :func:`quantize_model` did.

    Attributes
    ----------
    out_path
        The quantized model.
    method, quant_format, activation_type, weight_type, per_channel, reduce_range
        The configuration used (``reduce_range`` after resolving ``None``).
    calib_samples
        Number of calibration samples fed.
    seconds
        Wall-clock time of pre-processing, calibration and quantization.
    op_counts
        Node count per op type in the quantized model.
    exact_on_any_x86
        onnxruntime computes every quantized node with exact integer sums on any x86 CPU, even
        without the ``session.x64quantprecision`` session option (see ``docs/quantization.md``).
    notes
        Human-readable remarks (float layers left, precision caveats), one line each.
    """

    out_path: Path
    method: str
    quant_format: str
    activation_type: str
    weight_type: str
    per_channel: bool
    reduce_range: bool
    calib_samples: int
    seconds: float
    op_counts: dict[str, int] = field(default_factory=dict)
    exact_on_any_x86: bool = True
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Agreement:
    """Top-1 agreement between a float model and its quantized version on the same samples.

    Attributes
    ----------
    samples
        Number of samples compared.
    agree
        Samples on which both models pick the same class.
    float_correct, int8_correct
        Samples classified correctly by each model; ``None`` without labels.
    max_abs_diff
        Largest ``|float output - dequantized int8 output|``; ``None`` if the int8 model's integer
        output could not be dequantized.
    output_range
        ``max - min`` of the float model's first output over the samples (the scale ``max_abs_diff`` is read on).
    output_step
        The int8 output's quantization step (its largest scale) when the quantized model's output is integer,
        else ``None`` (an output computed in float, e.g. a Softmax after the last DequantizeLinear).
    """

    samples: int
    agree: int
    float_correct: int | None = None
    int8_correct: int | None = None
    max_abs_diff: float | None = None
    output_range: float | None = None
    output_step: float | None = None

    @property
    def difference_text(self) -> str | None:
        """``max_abs_diff`` with its scale: the share of the float output's range and, for an integer output, the
        number of output quantization steps; ``None`` without ``max_abs_diff``."""
        if self.max_abs_diff is None:
            return None
        parts = []
        if self.output_range:
            parts.append(f"{100 * self.max_abs_diff / self.output_range:.2f}% of the float output's range "
                         f"{self.output_range:.6g}")
        if self.output_step:
            steps = self.max_abs_diff / self.output_step
            parts.append(f"{steps:.3g} output quantization steps of {self.output_step:.6g}")
        return f"{self.max_abs_diff:.6g}" + (f" ({'; '.join(parts)})" if parts else "")

    @property
    def agreement(self) -> float:
        """Fraction of samples on which the two models agree."""
        return self.agree / self.samples

    @property
    def float_accuracy(self) -> float | None:
        """Top-1 accuracy of the float model, when labels were given."""
        return None if self.float_correct is None else self.float_correct / self.samples

    @property
    def int8_accuracy(self) -> float | None:
        """Top-1 accuracy of the quantized model, when labels were given."""
        return None if self.int8_correct is None else self.int8_correct / self.samples


# ---------------------------------------------------------------------------------------------
# Model helpers


def _load_model(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise SystolixError(f"{path}: no such model file")
    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf raises its own DecodeError; anything else is just as fatal
        raise SystolixError(
            f"{path.name}: not an ONNX model ({' '.join(str(e).split()) or type(e).__name__})"
        ) from e


def model_input(model: onnx.ModelProto | str | Path) -> ModelInput:
    """Describe a model's single (non-initializer) input.

    Parameters
    ----------
    model
        A loaded model or the path of one.

    Returns
    -------
    ModelInput
        Name, shape (``None`` where symbolic or unknown) and numpy element type.

    Raises
    ------
    SystolixError
        If the model has no input, several inputs, or an input that is not a tensor.
    """
    if not isinstance(model, onnx.ModelProto):
        model = _load_model(Path(model))
    inits = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in inits]
    if len(inputs) != 1:
        names = ", ".join(repr(i.name) for i in inputs) or "none"
        raise SystolixError(
            f"the model has {len(inputs)} inputs ({names}); systolix handles one-input models"
        )
    vi = inputs[0]
    if not vi.type.HasField("tensor_type"):
        raise SystolixError(f"the model's input {vi.name!r} is not a tensor")
    tt = vi.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim)
    return ModelInput(vi.name, dims, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)))


def _clean_ort_message(e: BaseException) -> str:
    text = " ".join(str(e).split())
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text)
    m = re.search(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)", text)
    if m:
        return (
            f"the model's IR version {m.group(1)} is newer than this onnxruntime supports ({m.group(2)}); "
            f"save it with ir_version <= {m.group(2)}"
        )
    # Drop C++ source locations: "/onnxruntime_src/onnxruntime/core/graph/model.cc:256 onnxruntime::X(...)".
    text = re.sub(r"/onnxruntime_src/\S+:\d+ (\S+\(.*?\)(?: const)? )?", "", text)
    return text if len(text) <= 300 else text[:297] + "..."


class _LogCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def errors(self) -> list[str]:
        return [r.getMessage() for r in self.records if r.levelno >= logging.ERROR]


@contextlib.contextmanager
def _captured_logs() -> Iterator[_LogCapture]:
    """Route the quantizer's ``logging`` output (it logs to the root logger) into a list, not stderr."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    capture = _LogCapture()
    root.handlers = [capture]
    root.setLevel(logging.WARNING)
    try:
        yield capture
    finally:
        root.handlers = saved_handlers
        root.setLevel(saved_level)


def _normalize_gemm_bias(model: onnx.ModelProto) -> int:
    """Give each Gemm's constant bias the shape ``(N,)``; return how many were changed.

    ``MatMul + Add`` fused by the pre-processor keeps the Add's ``(1, N)`` constant, on which
    onnxruntime's per-channel bias check fails ("truth value of an array ... is ambiguous").
    ``(N,)``, ``(1, N)``, ``(1,)`` and ``()`` broadcast identically in Gemm, so this changes nothing.
    """
    inits = {i.name: i for i in model.graph.initializer}
    users = Counter(name for node in model.graph.node for name in node.input)
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Gemm" or len(node.input) < 3 or node.input[2] not in inits:
            continue
        bias = inits[node.input[2]]
        weight = inits.get(node.input[1])
        if weight is None or users[bias.name] != 1 or len(weight.dims) != 2:
            continue
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        n = weight.dims[0] if trans_b else weight.dims[1]
        value = numpy_helper.to_array(bias)
        if value.shape == (n,) or value.size not in (1, n) or (value.ndim == 2 and value.shape[0] != 1):
            continue
        bias.CopyFrom(numpy_helper.from_array(np.broadcast_to(value.reshape(-1), (n,)).copy(), bias.name))
        changed += 1
    return changed


def _initializer(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _saturation_risks(model: onnx.ModelProto) -> list[str]:
    """Names of U8-activation x S8-weight nodes with some |w| > 64 (saturating kernel without VNNI)."""
    risky = []
    for node in model.graph.node:
        positions = _MATMUL_LIKE.get(node.op_type)
        if positions is None:
            continue
        xzp_i, w_i, wzp_i = positions
        xzp = _initializer(model, node.input[xzp_i])
        w = _initializer(model, node.input[w_i])
        wzp = _initializer(model, node.input[wzp_i])
        if xzp is None or w is None or wzp is None:
            risky.append(node.name or node.op_type)  # not constant: cannot tell, assume the worst
            continue
        if xzp.dtype == np.uint8 and w.dtype == np.int8 and int(np.abs(w.astype(np.int32)).max()) > 64:
            risky.append(node.name or node.op_type)
    return risky


def _float_islands(model: onnx.ModelProto) -> list[str]:
    """Nodes of a QOperator model that compute in float between a DequantizeLinear and a QuantizeLinear."""
    dequantized = {node.output[0] for node in model.graph.node if node.op_type == "DequantizeLinear"}
    outputs = {o.name for o in model.graph.output}
    return [
        f"{node.op_type} ({node.name})" if node.name else node.op_type
        for node in model.graph.node
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear")
        and any(i in dequantized and i not in outputs for i in node.input)
    ]


def _first(names: list[str], k: int) -> str:
    return ", ".join(names[:k]) + (", ..." if len(names) > k else "")


def _atomic_write(data: bytes, out_path: Path) -> None:
    """Write ``data`` to ``out_path`` via a temporary file in the same directory and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out_path.name}.", suffix=".tmp", dir=out_path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600: the model gets the user's usual permissions
        os.replace(tmp, out_path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _check_options(method: str, quant_format: str, activation_type: str, weight_type: str) -> None:
    if method not in _METHODS:
        raise SystolixError(f"unsupported calibration method {method!r}; choose one of {', '.join(_METHODS)}")
    if quant_format not in _FORMATS:
        raise SystolixError(f"unsupported quantization format {quant_format!r}; choose qoperator or qdq")
    for what, value in (("activation_type", activation_type), ("weight_type", weight_type)):
        if value not in _QTYPES:
            raise SystolixError(f"unsupported {what} {value!r}; choose int8 or uint8")
    if activation_type == "int8" and weight_type == "uint8":
        raise SystolixError(
            "int8 activations with uint8 weights are not supported by onnxruntime; use int8 weights"
        )


def _subsample(x: np.ndarray, limit: int | None, batch: int | None) -> np.ndarray:
    """At most ``limit`` samples, evenly spaced over the file (so class-sorted data stays balanced)."""
    if limit is None or limit >= x.shape[0]:
        return x
    if batch is not None:
        limit = max(batch, limit - limit % batch)
    index = np.linspace(0, x.shape[0] - 1, limit).round().astype(np.int64)
    return x[index]


# ---------------------------------------------------------------------------------------------
# Quantization


def _integer_form(qdq: onnx.ModelProto, model_path: Path) -> onnx.ModelProto:
    """QDQ from onnxruntime's quantizer -> the integer canonical form, with the float input and output
    edges put back. onnxruntime's own QOperator writer leaves MaxPool after a float Tanh in float; the
    canonical form turns every DQ -> op -> Q group into its integer op."""
    from systolix.frontend.canonical import canonicalize

    from .drop_in import with_host_edges

    try:
        return with_host_edges(canonicalize(qdq), qdq)
    except SystolixError as e:
        raise SystolixError(f"{model_path.name}: the quantized model has no integer form: {e}") from None


def _op_types_to_quantize(quant_format: str) -> list[str]:
    """All op types onnxruntime can quantize but Softmax: a Softmax at the output is left to the host in
    float (QLinearSoftmax is a lookup-and-divide kernel with no integer contract we reproduce)."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    # onnxruntime's own default is both registries together (the QDQ one alone lacks Add, Concat, ...).
    del quant_format
    return sorted(op for op in {*QLinearOpsRegistry, *QDQRegistry} if op != "Softmax")


def quantize_model(
    model_path: str | Path,
    calib_path: str | Path,
    out_path: str | Path,
    *,
    method: Method = "minmax",
    per_channel: bool = True,
    quant_format: Format = "qoperator",
    activation_type: QType = "int8",
    weight_type: QType = "int8",
    reduce_range: bool | None = None,
    max_calib_samples: int | None = None,
) -> QuantizeResult:
    """Quantize a float ONNX model to int8 with onnxruntime, calibrated on the samples in a file.

    Parameters
    ----------
    model_path
        The float32 model (one input). Never modified; nothing is written beside it.
    calib_path
        Calibration samples, ``.npz`` or ``.npy`` (see :func:`systolix.quantize.datasets.load_inputs`).
    out_path
        Where to write the quantized model. Written atomically: on any error nothing is left there.
    method
        Calibration: ``"minmax"``, ``"entropy"`` (histogram + KL divergence) or ``"percentile"``
        (99.999th percentile of ``|x|``).
    per_channel
        One weight scale per output channel.
    quant_format
        ``"qoperator"`` (QLinearConv, QGemm, ...: the default, exact) or ``"qdq"`` (Q/DQ pairs around
        float ops; onnxruntime's result then depends on its fusions, see the docs; warns).
    activation_type, weight_type
        ``"int8"`` (default) or ``"uint8"``. int8 activations need int8 weights.
    reduce_range
        Quantize weights to 7 bits ([-64, 64]). ``None`` (default) picks the exact-safe choice: on for
        uint8 activations (U8xS8 is only exact with |w| <= 64), off otherwise.
    max_calib_samples
        Use at most this many samples, evenly spaced over the file (rounded down to a multiple of a
        fixed batch).

    Returns
    -------
    QuantizeResult

    Raises
    ------
    SystolixError
        Bad options, unreadable model or data, or a model onnxruntime cannot pre-process or quantize.

    Warns
    -----
    QuantizationWarning
        When onnxruntime would not compute the result exactly on every x86 CPU (QDQ format, or U8xS8
        nodes with weights beyond [-64, 64]).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    _check_options(method, quant_format, activation_type, weight_type)
    if max_calib_samples is not None and (not isinstance(max_calib_samples, int) or max_calib_samples < 1):
        raise SystolixError(f"max_calib_samples must be a positive int, not {max_calib_samples!r}")
    if reduce_range is None:
        reduce_range = activation_type == "uint8" and (weight_type == "int8" or per_channel)

    model_path, calib_path, out_path = Path(model_path), Path(calib_path), Path(out_path)
    from systolix.frontend.normalize import normalize

    model = _load_model(model_path)
    check_finite_weights(model, model_path)
    normalized = normalize(model, quantized=False)
    model = normalized.model
    if out_path.resolve() == model_path.resolve():
        raise SystolixError(f"{out_path}: the output would overwrite the input model; choose another path")
    if not out_path.parent.is_dir():
        raise SystolixError(f"{out_path.parent}: output directory does not exist")
    spec = model_input(model)
    if spec.dtype != np.float32:
        raise SystolixError(
            f"the model's input {spec.name!r} is {spec.dtype}; only float32 models can be quantized"
        )
    input_notes: list[str] = []
    x, _ = load_inputs(calib_path, spec.name, spec.shape, spec.dtype, input_notes)
    fixed_batch = spec.shape[0]
    x = _subsample(x, max_calib_samples, fixed_batch)

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="systolix-ptq-") as tmp_dir:
        tmp = Path(tmp_dir)
        src, pre, out = tmp / "model.onnx", tmp / "pre.onnx", tmp / "quantized.onnx"
        onnx.save(model, str(src))
        try:
            reference_session(src)
        except Exception as e:
            raise SystolixError(
                f"{model_path.name}: onnxruntime cannot load the model: {_clean_ort_message(e)}"
            ) from e

        with _captured_logs() as logs:
            try:
                quant_pre_process(str(src), str(pre))
            except Exception as e:
                raise SystolixError(
                    f"{model_path.name}: quantization pre-processing (shape inference, BatchNorm folding) "
                    "failed: "
                    f"{_clean_ort_message(e)}"
                ) from e
        if logs.errors():
            reason = next(
                (line for msg in logs.errors() for line in reversed(msg.splitlines()) if line.strip()), ""
            )
            raise SystolixError(
                f"{model_path.name}: quantization pre-processing (graph optimization) failed: "
                f"{' '.join(reason.split())[:300]}"
            )
        pre_model = onnx.load(str(pre))
        if _normalize_gemm_bias(pre_model):
            onnx.save(pre_model, str(pre))

        reader = ArrayDataReader(
            spec.name, x, fixed_batch or _CALIB_BATCH, fixed_batch=fixed_batch is not None
        )
        # No CalibMaxIntermediateOutputs: onnxruntime 1.31's MinMax calibrator clears what it collected every
        # that many feeds without merging it into the ranges (only the feeds after the last multiple count,
        # and an exact multiple ends in "No data is collected."). What it keeps per feed is one min and max
        # per tensor, so holding every feed costs little.
        extra: dict[str, object] = {}
        # MaxPool/Flatten after a float op (Tanh) would otherwise stay float: quantize them anyway, so that
        # the op runs on integers and the Tanh becomes a DQ -> Tanh -> Q table.
        extra["ForceQuantizeNoInputCheck"] = True
        qtype = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}
        # The histogram calibrators print() their progress: keep it off the user's console.
        with _captured_logs(), contextlib.redirect_stdout(io.StringIO()):
            try:
                quantize_static(
                    str(pre),
                    str(out),
                    reader,
                    # The integer (QOperator) model is made from QDQ by our canonical form (see below).
                    quant_format=QuantFormat.QDQ,
                    per_channel=per_channel,
                    reduce_range=reduce_range,
                    activation_type=qtype[activation_type],
                    weight_type=qtype[weight_type],
                    calibrate_method={
                        "minmax": CalibrationMethod.MinMax,
                        "entropy": CalibrationMethod.Entropy,
                        "percentile": CalibrationMethod.Percentile,
                    }[method],
                    extra_options=extra,
                    op_types_to_quantize=_op_types_to_quantize(quant_format),
                )
            except Exception as e:
                raise SystolixError(
                    f"{model_path.name}: onnxruntime could not quantize the model: {_clean_ort_message(e)}"
                ) from e
        quantized = onnx.load(str(out))
        if quant_format == "qoperator":
            quantized = _integer_form(quantized, model_path)
            onnx.save(quantized, str(out))
        try:
            session = reference_session(out)
            session.run(None, {spec.name: x[: fixed_batch or 1]})
        except Exception as e:
            raise SystolixError(
                f"{model_path.name}: the quantized model does not run in onnxruntime: {_clean_ort_message(e)}"
            ) from e
        seconds = time.perf_counter() - started

        op_counts = dict(sorted(Counter(n.op_type for n in quantized.graph.node).items()))
        notes: list[str] = [f"normalised: {line}" for line in normalized.lines()]
        notes += [f"calibration data: {line}" for line in input_notes]
        exact = True
        if quant_format == "qdq":
            exact = False
            notes.append(
                "QDQ format: onnxruntime fuses Q/DQ groups only at optimization level EXTENDED or higher and "
                "not always; int8 activations are rewritten to uint8 (saturating U8xS8 kernel without VNNI)"
            )
        else:
            if not any(op in op_counts for op in _MATMUL_LIKE):
                raise SystolixError(
                    f"{model_path.name}: onnxruntime quantized no Conv, MatMul or Gemm (ops: "
                    f"{', '.join(op_counts)})"
                )
            risky = _saturation_risks(quantized)
            if risky:
                exact = False
                notes.append(
                    f"{len(risky)} uint8-activation x int8-weight node(s) have weights beyond [-64, 64] "
                    f"({_first(risky, 4)}): onnxruntime saturates on x86 CPUs without VNNI unless "
                    "session.x64quantprecision=1; use reduce_range or int8 activations"
                )
            islands = _float_islands(quantized)
            if islands:
                notes.append(f"{len(islands)} node(s) stay in float: {_first(islands, 6)}")
        if model_input(quantized).shape != spec.shape:
            raise SystolixError(
                f"{model_path.name}: quantization changed the input shape from {spec.shape} to "
                f"{model_input(quantized).shape}"
            )
        _atomic_write(out.read_bytes(), out_path)

    if not exact:
        first = next(n for n in notes if not n.startswith("normalised: "))
        warnings.warn(f"{out_path.name}: {first}", QuantizationWarning, stacklevel=2)
    return QuantizeResult(
        out_path=out_path,
        method=method,
        quant_format=quant_format,
        activation_type=activation_type,
        weight_type=weight_type,
        per_channel=per_channel,
        reduce_range=reduce_range,
        calib_samples=int(x.shape[0]),
        seconds=seconds,
        op_counts=op_counts,
        exact_on_any_x86=exact,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# Agreement


def _producer_qparams(model: onnx.ModelProto, tensor: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Scale and zero point of an integer tensor, found by walking back through pass-through ops."""
    producers = {o: n for n in model.graph.node for o in n.output}
    seen = 0
    while tensor in producers and seen < 64:
        node = producers[tensor]
        if node.op_type in _OUTPUT_QPARAMS:
            s_i, z_i = _OUTPUT_QPARAMS[node.op_type]
            if len(node.input) <= z_i:
                return None
            scale, zp = _initializer(model, node.input[s_i]), _initializer(model, node.input[z_i])
            if scale is None or zp is None or scale.size != 1 or zp.size != 1:
                return None
            return scale.reshape(()), zp.reshape(())
        if node.op_type not in _PASSTHROUGH:
            return None
        tensor = node.input[0]
        seen += 1
    return None


def _input_qparams(model: onnx.ModelProto, name: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Scale and zero point of an integer graph input, from the DequantizeLinear that reads it."""
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] == name and len(node.input) >= 3:
            scale, zp = _initializer(model, node.input[1]), _initializer(model, node.input[2])
            if scale is not None and zp is not None and scale.size == 1 and zp.size == 1:
                return scale.reshape(()), zp.reshape(())
    return None


def _quantize_linear(x: np.ndarray, scale: np.ndarray, zp: np.ndarray) -> np.ndarray:
    """ONNX QuantizeLinear: round-half-even of a float32 division, saturated, plus the zero point."""
    info = np.iinfo(zp.dtype)
    v = np.rint(x.astype(np.float32) / scale.astype(np.float32)) + zp.astype(np.float32)
    return np.clip(v, info.min, info.max).astype(zp.dtype)


def _run_batches(session: ort.InferenceSession, name: str, x: np.ndarray, batch: int) -> np.ndarray:
    out = [session.run(None, {name: x[i : i + batch]})[0] for i in range(0, x.shape[0], batch)]
    return np.concatenate(out, axis=0)


def agreement(
    float_model: str | Path,
    int8_model: str | Path,
    x: np.ndarray,
    y: np.ndarray | None = None,
    *,
    batch_size: int = 64,
) -> Agreement:
    """Compare the top-1 class of a float model and its quantized version.

    The float model runs in a default onnxruntime session, the quantized one in
    :func:`reference_session` (exact on any x86). If the quantized model takes integer input, ``x``
    is quantized with the parameters of the DequantizeLinear reading it; an integer output is
    dequantized with the parameters of the node producing it (top-1 does not depend on that).

    Parameters
    ----------
    float_model, int8_model
        Paths of the two models (first input and first output are used).
    x
        Float samples, batch first, as the float model takes them.
    y
        Optional integer labels, one per sample.
    batch_size
        Samples per run for models with a symbolic batch (a fixed batch is respected).

    Returns
    -------
    Agreement
    """
    from systolix.frontend.normalize import normalize

    # the float model as it was quantized: normalised (an unused input dropped, an opset lowered, ...)
    fmodel, qmodel = normalize(_load_model(Path(float_model)), quantized=False).model, _load_model(Path(int8_model))
    fspec, qspec = model_input(fmodel), model_input(qmodel)
    if x.ndim == 0 or x.shape[0] == 0:
        raise SystolixError("agreement needs at least one sample")
    if y is not None and (y.ndim != 1 or y.shape[0] != x.shape[0]):
        raise SystolixError(f"{y.shape} labels for {x.shape[0]} samples")
    for spec, what in ((fspec, "float"), (qspec, "quantized")):
        if spec.shape[0] is not None and x.shape[0] % spec.shape[0]:
            raise SystolixError(
                f"the {what} model has a fixed batch of {spec.shape[0]}; "
                f"{x.shape[0]} samples are not a multiple of it"
            )
    fbatch, qbatch = fspec.shape[0] or batch_size, qspec.shape[0] or batch_size

    fsess = ort.InferenceSession(fmodel.SerializeToString(), providers=["CPUExecutionProvider"])
    qsess = reference_session(int8_model)
    fout = _run_batches(fsess, fspec.name, x.astype(fspec.dtype, copy=False), fbatch)
    qx = x
    if qspec.dtype.kind in "iu":
        params = _input_qparams(qmodel, qspec.name)
        if params is None:
            raise SystolixError(
                f"the quantized model's input {qspec.name!r} is {qspec.dtype} with unknown scale"
            )
        qx = _quantize_linear(x, *params)
    qout = _run_batches(qsess, qspec.name, qx.astype(qspec.dtype, copy=False), qbatch)

    max_abs: float | None = None
    step: float | None = None
    if qout.dtype.kind in "iu":
        params = _producer_qparams(qmodel, qmodel.graph.output[0].name)
        if params is not None:
            scale, zp = params
            step = float(np.max(scale))
            qout = (qout.astype(np.float32) - zp.astype(np.float32)) * scale.astype(np.float32)
    if qout.dtype.kind == "f" and qout.shape == fout.shape:
        max_abs = float(np.abs(qout.astype(np.float64) - fout.astype(np.float64)).max())
    n = x.shape[0]
    ftop = fout.reshape(n, -1).argmax(axis=1)
    qtop = qout.reshape(n, -1).argmax(axis=1)
    return Agreement(
        samples=n,
        agree=int((ftop == qtop).sum()),
        float_correct=None if y is None else int((ftop == y).sum()),
        int8_correct=None if y is None else int((qtop == y).sum()),
        max_abs_diff=max_abs,
        output_range=float(np.ptp(fout)) if fout.size and np.all(np.isfinite(fout)) else None,
        output_step=step,
    )


def agreement_table(result: Agreement, title: str = "float vs int8") -> Table:
    """Render an :class:`Agreement` as a rich table.

    Parameters
    ----------
    result
        The comparison to show.
    title
        Table title.
    """
    table = Table(title=title)
    table.add_column("measure")
    table.add_column("value", justify="right")
    n = result.samples
    table.add_row("samples", str(n))
    table.add_row("top-1 agreement", f"{result.agree}/{n} ({100 * result.agreement:.2f}%)")
    if result.float_correct is not None and result.int8_correct is not None:
        table.add_row("float accuracy", f"{result.float_correct}/{n} ({100 * result.float_correct / n:.2f}%)")
        table.add_row("int8 accuracy", f"{result.int8_correct}/{n} ({100 * result.int8_correct / n:.2f}%)")
    if result.max_abs_diff is not None:
        table.add_row("max |float - int8| output", result.difference_text)
    return table
