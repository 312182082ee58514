"""The typed layer IR: one frozen dataclass per layer kind, validated on construction.

A :class:`Model` is a list of layers in execution order. Each layer reads named tensors and writes one
named tensor. Shapes are those of one sample: the batch dimension is kept and is always 1 in the IR
(models with a symbolic batch run any batch size; the executors prepend the real batch).

The same classes describe float models (``quant`` fields are ``None``; used by ``systolix inspect``)
and integer models in canonical form (every compute layer carries the quantization parameters of its
inputs and output; weights are integer arrays, biases int32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from systolix.errors import SystolixError

Shape = tuple[int, ...]

_QRANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise SystolixError(msg)


def _positive_ints(name: str, what: str, values: tuple[int, ...]) -> None:
    for v in values:
        _check(isinstance(v, int | np.integer) and v > 0, f"{name}: {what} must be positive ints, not {values}")


@dataclass(frozen=True, eq=False)
class QuantParams:
    """Quantization of one tensor: ``real = scale * (q - zero_point)``.

    Parameters
    ----------
    scale : numpy.ndarray
        float32, shape ``()`` (per tensor) or ``(C,)`` (per channel, axis 0 of a weight).
    zero_point : numpy.ndarray
        int64 values, same shape as ``scale``.
    dtype : str
        ``"int8"`` or ``"uint8"`` (``"int32"`` for biases).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    dtype: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", np.asarray(self.scale, dtype=np.float32))
        object.__setattr__(self, "zero_point", np.asarray(self.zero_point, dtype=np.int64))
        _check(self.dtype in ("int8", "uint8", "int32"), f"quantized dtype must be int8 or uint8, not {self.dtype}")
        _check(self.scale.shape == self.zero_point.shape,
               f"scale shape {self.scale.shape} differs from zero point shape {self.zero_point.shape}")
        _check(bool(np.all(np.isfinite(self.scale)) and np.all(self.scale > 0)),
               "quantization scales must be finite and positive")

    @property
    def per_channel(self) -> bool:
        return self.scale.ndim == 1

    @property
    def qmin(self) -> int:
        return _QRANGE[self.dtype][0]

    @property
    def qmax(self) -> int:
        return _QRANGE[self.dtype][1]

    @property
    def np_dtype(self) -> type:
        return {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}[self.dtype]

    def describe(self) -> str:
        if self.per_channel:
            return f"{self.dtype} per-channel[{self.scale.size}]"
        return f"{self.dtype} s={float(self.scale):.6g} zp={int(self.zero_point)}"


@dataclass(frozen=True, eq=False)
class TensorInfo:
    """A named tensor of the model: shape (batch 1), element type, quantization if integer."""

    name: str
    shape: Shape
    dtype: str
    quant: QuantParams | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Layer:
    """Base of all layer kinds. ``kind`` names the kind; ``op`` the ONNX op it came from."""

    kind: ClassVar[str] = "layer"
    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    in_shapes: tuple[Shape, ...]
    out_shape: Shape

    def __post_init__(self) -> None:
        _check(bool(self.name), "layer name must not be empty")
        _check(len(self.inputs) == len(self.in_shapes),
               f"{self.name}: {len(self.inputs)} inputs but {len(self.in_shapes)} input shapes")
        for s in (*self.in_shapes, self.out_shape):
            _check(all(isinstance(d, int | np.integer) and d > 0 for d in s),
                   f"{self.name}: shapes must be static and positive, not {s}")

    @property
    def params(self) -> int:
        """Number of trained parameters (weights + biases)."""
        return 0

    @property
    def macs(self) -> int:
        """Multiply-accumulates for one sample."""
        return 0

    @property
    def host(self) -> bool:
        """True for layers left to the host CPU (not run by the accelerator)."""
        return False

    def geometry(self) -> str:
        """Kernel / stride / padding / dilation / groups, for reports."""
        return ""


def _spatial(name: str, what: str, values: tuple[int, ...], n: int) -> tuple[int, ...]:
    values = tuple(int(v) for v in values)
    _check(len(values) == n, f"{name}: {what} must have {n} values, not {values}")
    return values


@dataclass(frozen=True, eq=False, kw_only=True)
class _Window(Layer):
    """Common part of layers that slide a window over 1 or 2 spatial dimensions (NC[H]W)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]  # ONNX order: begin of each spatial axis, then end of each
    dilations: tuple[int, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self.in_shapes[0]) - 2
        _check(n in (1, 2), f"{self.name}: only 1D and 2D windows are supported, input shape {self.in_shapes[0]}")
        object.__setattr__(self, "kernel", _spatial(self.name, "kernel", self.kernel, n))
        object.__setattr__(self, "strides", _spatial(self.name, "strides", self.strides, n))
        object.__setattr__(self, "dilations", _spatial(self.name, "dilations", self.dilations, n))
        object.__setattr__(self, "pads", _spatial(self.name, "pads", self.pads, 2 * n))
        _positive_ints(self.name, "kernel", self.kernel)
        _positive_ints(self.name, "strides", self.strides)
        _positive_ints(self.name, "dilations", self.dilations)
        _check(all(p >= 0 for p in self.pads), f"{self.name}: pads must be >= 0, not {self.pads}")

    @property
    def spatial_dims(self) -> int:
        return len(self.kernel)

    def geometry(self) -> str:
        k = "x".join(map(str, self.kernel))
        s = "x".join(map(str, self.strides))
        n = len(self.kernel)
        p = ",".join(f"{b}/{e}" for b, e in zip(self.pads[:n], self.pads[n:], strict=True))
        g = f"k{k} s{s} p{p}"
        if any(d != 1 for d in self.dilations):
            g += " d" + "x".join(map(str, self.dilations))
        return g


def window_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int,
                       ceil_mode: bool = False) -> int:
    """O = floor((I + pad_begin + pad_end - dilation*(K-1) - 1) / S) + 1 (ceil with ``ceil_mode``)."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:  # last window must start inside input or begin pad
        out -= 1
    return out


@dataclass(frozen=True, eq=False, kw_only=True)
class Conv(_Window):
    """Convolution, 1D or 2D, with groups (depthwise when groups == input channels).

    ``weight`` is ``[M, C/groups, *kernel]``; ``bias`` ``[M]`` or None. In integer form the weight
    is int8/uint8 and the bias int32 (scale ``x_scale * w_scale``), and ``x_quant``, ``w_quant``,
    ``y_quant`` are set; ``clamp`` narrows the output range for a fused ReLU/Clip, as codes.
    """

    kind: ClassVar[str] = "conv"
    group: int
    weight: np.ndarray
    bias: np.ndarray | None = None
    x_quant: QuantParams | None = None
    w_quant: QuantParams | None = None
    y_quant: QuantParams | None = None
    clamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        c_in = self.in_shapes[0][1]
        m = self.weight.shape[0]
        _check(isinstance(self.group, int) and self.group > 0, f"{self.name}: groups must be a positive int")
        _check(c_in % self.group == 0 and m % self.group == 0,
               f"{self.name}: groups={self.group} must divide input channels {c_in} and output channels {m}")
        expect = (m, c_in // self.group, *self.kernel)
        _check(self.weight.shape == expect, f"{self.name}: weight shape {self.weight.shape}, expected {expect}")
        if self.bias is not None:
            _check(self.bias.shape == (m,), f"{self.name}: bias shape {self.bias.shape}, expected ({m},)")

    @property
    def depthwise(self) -> bool:
        return self.group > 1 and self.group == self.in_shapes[0][1] and self.weight.shape[1] == 1

    @property
    def params(self) -> int:
        return int(self.weight.size + (0 if self.bias is None else self.bias.size))

    @property
    def macs(self) -> int:
        return int(np.prod(self.out_shape[1:])) * int(np.prod(self.weight.shape[1:]))

    def geometry(self) -> str:
        g = super().geometry()
        if self.group != 1:
            g += " dw" if self.depthwise else f" g{self.group}"
        return g


@dataclass(frozen=True, eq=False, kw_only=True)
class Dense(Layer):
    """Fully connected ``y = x @ weight + bias`` with ``weight`` ``[K, M]`` (Gemm, MatMul, QGemm).

    ``scale_alpha`` is QGemm's alpha (1 otherwise); it is part of the integer output scale.
    """

    kind: ClassVar[str] = "dense"
    weight: np.ndarray
    bias: np.ndarray | None = None
    x_quant: QuantParams | None = None
    w_quant: QuantParams | None = None
    y_quant: QuantParams | None = None
    alpha: float = 1.0
    clamp: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.weight.ndim == 2, f"{self.name}: weight must be 2D, not {self.weight.shape}")
        _check(self.in_shapes[0][-1] == self.weight.shape[0],
               f"{self.name}: input {self.in_shapes[0]} does not match weight {self.weight.shape}")
        if self.bias is not None:
            _check(self.bias.shape == (self.weight.shape[1],),
                   f"{self.name}: bias shape {self.bias.shape}, expected ({self.weight.shape[1]},)")

    @property
    def params(self) -> int:
        return int(self.weight.size + (0 if self.bias is None else self.bias.size))

    @property
    def macs(self) -> int:
        rows = int(np.prod(self.in_shapes[0][:-1]))
        return rows * int(self.weight.size)

    def geometry(self) -> str:
        return f"{self.weight.shape[0]}->{self.weight.shape[1]}"


@dataclass(frozen=True, eq=False, kw_only=True)
class MatMul(Layer):
    """Product of two activations (QLinearMatMul with no constant operand)."""

    kind: ClassVar[str] = "matmul"
    a_quant: QuantParams | None = None
    b_quant: QuantParams | None = None
    y_quant: QuantParams | None = None

    @property
    def macs(self) -> int:
        a, b = self.in_shapes
        return int(np.prod(self.out_shape)) * int(a[-1])


@dataclass(frozen=True, eq=False, kw_only=True)
class MaxPool(_Window):
    """Max pooling (integer max in integer form; padding cells are ignored)."""

    kind: ClassVar[str] = "maxpool"
    ceil_mode: bool = False


@dataclass(frozen=True, eq=False, kw_only=True)
class AveragePool(_Window):
    """Average pooling; in integer form QLinearAveragePool's float32 arithmetic."""

    kind: ClassVar[str] = "avgpool"
    count_include_pad: bool = False
    ceil_mode: bool = False
    x_quant: QuantParams | None = None
    y_quant: QuantParams | None = None

    def geometry(self) -> str:
        return super().geometry() + (" incl-pad" if self.count_include_pad else "")


@dataclass(frozen=True, eq=False, kw_only=True)
class GlobalAveragePool(Layer):
    """Mean over all spatial positions of each channel."""

    kind: ClassVar[str] = "gap"
    x_quant: QuantParams | None = None
    y_quant: QuantParams | None = None


ACTIVATIONS = ("relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_sigmoid", "elu", "softplus", "selu", "celu",
               "hard_swish", "gelu", "mish", "softsign", "thresholded_relu", "prelu", "exp", "log", "erf", "abs",
               "neg", "sqrt", "reciprocal", "sin", "cos", "floor", "ceil", "round", "sign", "identity")


@dataclass(frozen=True, eq=False, kw_only=True)
class Activation(Layer):
    """A float elementwise activation (float models only; integer models use :class:`Lookup`)."""

    kind: ClassVar[str] = "activation"
    func: str
    attrs: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        base = self.func.removeprefix("x*")  # x * f(x): SiLU, HardSwish as exporters decompose them
        _check(base in ACTIVATIONS, f"{self.name}: activation {self.func!r} is not one of {ACTIVATIONS} (or x*f)")

    def geometry(self) -> str:
        attrs = ", ".join(f"{k}={v:g}" for k, v in self.attrs)
        if self.func.startswith("x*"):
            return f"x * {self.func[2:]}(x)" + (f" ({attrs})" if attrs else "")
        return attrs


@dataclass(frozen=True, eq=False, kw_only=True)
class Lookup(Layer):
    """A unary op on integer codes as a 256-entry table: ``y = table[x - qmin(x)]``.

    The table is computed by running onnxruntime itself on all 256 input codes, so it is exactly
    what onnxruntime computes for this op on this machine. ``func`` says what it came from.
    """

    kind: ClassVar[str] = "lookup"
    func: str
    table: np.ndarray
    x_quant: QuantParams
    y_quant: QuantParams

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(self.table.shape == (256,), f"{self.name}: a lookup table has 256 entries, not {self.table.shape}")

    def geometry(self) -> str:
        return self.func


@dataclass(frozen=True, eq=False, kw_only=True)
class ChannelConstant(Layer):
    """A float ``x + c`` or ``x * c`` by a constant of one value or one value per channel (float models only)
    that no Conv/Dense right before can absorb; quantized, it is a :class:`Lookup` (one value) or a
    :class:`ChannelLookup` (one table per channel)."""

    kind: ClassVar[str] = "channel_constant"
    func: str
    constant: np.ndarray

    def geometry(self) -> str:
        what = "one value" if self.constant.size == 1 else f"{self.constant.size} values (one per channel)"
        return f"{self.func} {what}"


@dataclass(frozen=True, eq=False, kw_only=True)
class ChannelLookup(Layer):
    """A unary op on integer codes with one 256-entry table per channel: ``y[:, c] = tables[c, x[:, c] - qmin(x)]``.

    QLinearAdd / QLinearMul of an activation and a per-channel constant (shape ``[C, 1, 1]``, ``[1, C, 1, 1]``,
    ...): onnxruntime runs each channel with that channel's value as a scalar operand, and the tables are
    computed by running onnxruntime itself on all 256 codes of every channel. ``slope`` and ``offset`` give the
    ideal real map of each channel, ``y ~ slope * (x - x_zp) + offset + y_zp`` (a hint for the compiler, which
    checks every code against the tables). ``channel_axis`` is 1 (the last axis of a 2-D tensor is axis 1 too).
    """

    kind: ClassVar[str] = "channel_lookup"
    func: str
    tables: np.ndarray
    slope: np.ndarray
    offset: np.ndarray
    x_quant: QuantParams
    y_quant: QuantParams

    def __post_init__(self) -> None:
        super().__post_init__()
        c = int(self.out_shape[1])
        _check(self.tables.shape == (c, 256), f"{self.name}: per-channel tables must be [{c}, 256], not "
               f"{list(self.tables.shape)}")
        _check(np.shape(self.slope) == (c,) and np.shape(self.offset) == (c,),
               f"{self.name}: one slope and offset per channel")

    def geometry(self) -> str:
        return self.func


@dataclass(frozen=True, eq=False, kw_only=True)
class Add(Layer):
    """Elementwise sum of two activations (residual); in integer form QLinearAdd's float arithmetic."""

    kind: ClassVar[str] = "add"
    a_quant: QuantParams | None = None
    b_quant: QuantParams | None = None
    y_quant: QuantParams | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Mul(Layer):
    """Elementwise product of two activations (numpy broadcasting: same shape, or the squeeze-and-excite
    ``[N, C, H, W] * [N, C, 1, 1]``); in integer form QLinearMul's arithmetic (``quantize/golden/qlinear_mul``)."""

    kind: ClassVar[str] = "mul"
    a_quant: QuantParams | None = None
    b_quant: QuantParams | None = None
    y_quant: QuantParams | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Resize(Layer):
    """Nearest-neighbour upsampling by integer factors: ``y[..., i, j] = x[..., maps[0][i], maps[-1][j]]``
    (``maps``: the input coordinate of every output coordinate, one tuple per spatial axis; same codes, same
    quantization)."""

    kind: ClassVar[str] = "resize"
    maps: tuple[tuple[int, ...], ...]
    attrs: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        spatial_in, spatial_out = self.in_shapes[0][2:], self.out_shape[2:]
        _check(len(self.maps) == len(spatial_in) == len(spatial_out), f"{self.name}: one map per spatial axis")
        for m, d, o in zip(self.maps, spatial_in, spatial_out, strict=True):
            _check(len(m) == o and all(0 <= i < d for i in m), f"{self.name}: a map must give {o} input "
                   f"coordinates in [0, {d})")

    def geometry(self) -> str:
        factors = "x".join(str(o // i) for i, o in zip(self.in_shapes[0][2:], self.out_shape[2:], strict=True))
        return f"nearest x{factors} ({self.attrs.get('transform', '')}, {self.attrs.get('nearest_mode', '')})"


@dataclass(frozen=True, eq=False, kw_only=True)
class Concat(Layer):
    """Concatenation along ``axis``; in integer form QLinearConcat (inputs requantized by tables)."""

    kind: ClassVar[str] = "concat"
    axis: int
    in_quant: tuple[QuantParams, ...] | None = None
    y_quant: QuantParams | None = None


@dataclass(frozen=True, eq=False, kw_only=True)
class Reshape(Layer):
    """Reshape / Flatten / Squeeze / Unsqueeze: data unchanged, shape ``out_shape``."""

    kind: ClassVar[str] = "reshape"

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(int(np.prod(self.in_shapes[0])) == int(np.prod(self.out_shape)),
               f"{self.name}: cannot reshape {self.in_shapes[0]} to {self.out_shape}")


@dataclass(frozen=True, eq=False, kw_only=True)
class Transpose(Layer):
    """Axis permutation (layout changes at the graph edges)."""

    kind: ClassVar[str] = "transpose"
    perm: tuple[int, ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        _check(sorted(self.perm) == list(range(len(self.in_shapes[0]))),
               f"{self.name}: perm {self.perm} is not a permutation of {len(self.in_shapes[0])} axes")

    def geometry(self) -> str:
        return "perm " + ",".join(map(str, self.perm))


@dataclass(frozen=True, eq=False, kw_only=True)
class Slice(Layer):
    """Elements ``start, start + step, ... < stop`` of one axis (Slice; a Split is one Slice per output): data
    selected, not changed. ``axis`` is positive and not the batch; ``start``/``stop`` are within the axis."""

    kind: ClassVar[str] = "slice"
    axis: int
    start: int
    stop: int
    step: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        rank = len(self.in_shapes[0])
        _check(1 <= self.axis < rank, f"{self.name}: slice axis {self.axis} must be one of 1..{rank - 1}")
        _check(self.step >= 1, f"{self.name}: slice step must be a positive int, not {self.step}")
        size = len(range(self.start, self.stop, self.step))
        expect = tuple(size if i == self.axis else d for i, d in enumerate(self.in_shapes[0]))
        _check(0 <= self.start < self.in_shapes[0][self.axis] and tuple(self.out_shape) == expect,
               f"{self.name}: slice {self.start}:{self.stop}:{self.step} of axis {self.axis} of "
               f"{list(self.in_shapes[0])} does not give {list(self.out_shape)}")

    def index(self) -> tuple[slice, ...]:
        """The NumPy index of the selection (batch axis first)."""
        return (slice(None),) * self.axis + (slice(self.start, self.stop, self.step),)

    def geometry(self) -> str:
        return f"axis {self.axis} [{self.start}:{self.stop}" + (f":{self.step}]" if self.step != 1 else "]")


@dataclass(frozen=True, eq=False, kw_only=True)
class Softmax(Layer):
    """Softmax at the output: left to the host."""

    kind: ClassVar[str] = "softmax"
    axis: int = -1

    @property
    def host(self) -> bool:
        return True


LAYER_KINDS: tuple[type[Layer], ...] = (
    Conv, Dense, MatMul, MaxPool, AveragePool, GlobalAveragePool, Activation, Lookup, ChannelLookup, ChannelConstant,
    Add, Mul, Resize, Concat, Reshape, Transpose, Slice, Softmax,
)


@dataclass(frozen=True)
class HostStep:
    """One op of a host input prefix: run by the host (onnxruntime) before the accelerator's input.

    Parameters
    ----------
    name : str
        The ONNX node's name.
    op : str
        Its op type.
    shape : tuple of int
        The tensor's shape (elementwise: input and output alike), batch 1.
    what : str
        What it does, for the user (``"sub a constant of shape [1, 1, 1, 3]"``).
    """

    name: str
    op: str
    shape: Shape
    what: str


@dataclass(frozen=True, eq=False)
class Model:
    """A whole network in execution order.

    Parameters
    ----------
    name : str
        Where it came from (file name).
    inputs, outputs : tuple of TensorInfo
        Graph inputs and outputs (integer in canonical form).
    layers : tuple of Layer
        In execution order.
    quantized : bool
        True for the integer canonical form.
    input_quant : dict
        For integer models whose original input was float: the host-side QuantizeLinear parameters
        of each input (name -> QuantParams).
    host_ops : tuple of str
        Operations removed from the graph and left to the host, described for the user.
    converted : tuple of str
        Layers the canonical form computes in integer where onnxruntime ran the original in float.
    input_prefix : tuple of HostStep
        The elementwise preprocessing before the accelerator's input that the host runs with onnxruntime
        (:mod:`systolix.frontend.canonical_prefix`), in order.
    """

    name: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    layers: tuple[Layer, ...]
    quantized: bool
    input_quant: dict[str, QuantParams] = field(default_factory=dict)
    host_ops: tuple[str, ...] = ()
    converted: tuple[str, ...] = ()
    tensors: dict[str, TensorInfo] = field(default_factory=dict)
    input_prefix: tuple[HostStep, ...] = ()

    @property
    def params(self) -> int:
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        return sum(layer.macs for layer in self.layers)

    def layer(self, name: str) -> Layer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)
