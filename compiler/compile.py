"""The compiler's entry point: an integer IR model -> a program and the memory images.

:func:`compile_model` classifies the layers (host transforms at the graph input, aliases, accelerator
layers), places every tensor in ``act`` (:mod:`.layout`), lowers each accelerator layer to one
instruction (:mod:`.lower`), places weight tiles, parameter rows and tables one after the other, checks
every size against the configuration, and returns a :class:`Program`.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from systolix.arch import isa, mul_arith
from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError
from systolix.frontend import ir

from .cycles import predicted_cycles
from .im2col import Window, im2col, im2col_conv, im2col_tiles
from .images import MemoryImages
from .layout import TensorPlacement, allocate, allocate_banked, storage_geometry
from .lower import (
    Lowered,
    average_pool_refusal,
    channel_broadcast,
    concat_axis,
    concat_scratch_channels,
    is_global_average,
    lower_add,
    lower_average_pool,
    lower_channel_lookup,
    lower_concat,
    lower_conv,
    lower_dense,
    lower_gap,
    lower_lookup,
    lower_maxpool,
    lower_mul,
    lower_resize,
    resize_runs,
)
from .moves import Move, channel_move, pixel_move, plan_moves

__all__ = ["PROGRAM_FORMAT", "HostTransform", "LayerPlan", "Program", "compile_model", "resolve_add_variant"]

#: ``format`` of :meth:`Program.to_json` (``program.json`` of a build folder).
PROGRAM_FORMAT = "systolix-program/1"


@dataclasses.dataclass(frozen=True)
class HostTransform:
    """Work done by the host on the graph input before writing ``act``.

    A Transpose (``perm``) or Reshape (``shape``) layer at the graph input, or the im2col form of the
    input of a convolution (op ``"Im2col"``, ``window`` and ``pad_value``: :mod:`.im2col`; ``layer``
    names the convolution, ``output`` is a tensor of its own that replaces the convolution's input).
    """

    layer: str
    op: str
    input: str
    output: str
    perm: tuple[int, ...] | None = None
    shape: tuple[int, ...] | None = None
    window: Window | None = None
    pad_value: int = 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Apply to a batch (axis 0 is the batch)."""
        if self.window is not None:
            return im2col(x, self.window, self.pad_value)
        if self.perm is not None:
            return np.ascontiguousarray(np.transpose(x, self.perm))
        return x.reshape(x.shape[0], *self.shape[1:])

    def to_json(self) -> dict:
        return {"layer": self.layer, "op": self.op, "input": self.input, "output": self.output,
                "perm": None if self.perm is None else list(self.perm),
                "shape": None if self.shape is None else list(self.shape),
                "window": None if self.window is None else self.window.to_json(), "pad_value": self.pad_value}

    @classmethod
    def from_json(cls, data: dict) -> HostTransform:
        """Inverse of :meth:`to_json`."""
        return cls(data["layer"], data["op"], data["input"], data["output"],
                   None if data["perm"] is None else tuple(data["perm"]),
                   None if data["shape"] is None else tuple(data["shape"]),
                   None if data["window"] is None else Window.from_json(data["window"]), int(data["pad_value"]))


@dataclasses.dataclass(frozen=True)
class LayerPlan:
    """What the compiler made of one IR layer."""

    name: str
    op: str
    kind: str
    instructions: tuple[int, ...]
    macs: int
    cycles: int
    act_rows: int
    wgt_rows: int
    prm_rows: int
    lut_rows: int
    note: str
    output: str = ""

    def to_json(self) -> dict:
        return dataclasses.asdict(self) | {"instructions": list(self.instructions)}

    @classmethod
    def from_json(cls, data: dict) -> LayerPlan:
        """Inverse of :meth:`to_json`."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        return cls(**(values | {"instructions": tuple(values["instructions"])}))


@dataclasses.dataclass(frozen=True, eq=False)
class Program:
    """A compiled model: instructions, memory images, and where every tensor is.

    Attributes
    ----------
    instructions : list of Instruction
        Ending with HALT.
    images : MemoryImages
        Initial memory contents (``prog`` holds the encoded instructions).
    tensors : dict
        Tensor name -> :class:`~systolix.compiler.layout.TensorPlacement` (graph inputs as written by
        the host, every layer output, aliases).
    layers : list of LayerPlan
        One per IR layer.
    input_transform : list of HostTransform
        Done by the host on the graph input before writing it (Transpose / Reshape at the input, im2col
        of a first convolution). :meth:`host_inputs` applies them; :meth:`device_inputs` selects what the
        host writes into ``act`` (a tensor only read through its im2col form is not written).
    inputs, outputs : tuple of str
        Graph input and output tensor names.
    readable : frozenset of str
        Tensors whose rows still hold them after the run (all of them with ``keep_all``).
    config : AcceleratorConfig
    keep_all : bool
    act_rows, act_rows_reuse, act_rows_keep_all : int
        ``act`` rows used by this program, and by the two allocation policies.
    """

    instructions: list[isa.Instruction]
    images: MemoryImages
    tensors: dict[str, TensorPlacement]
    layers: list[LayerPlan]
    input_transform: list[HostTransform]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    readable: frozenset[str]
    config: AcceleratorConfig
    keep_all: bool
    act_rows: int
    act_rows_reuse: int
    act_rows_keep_all: int
    model_name: str = ""

    @property
    def add_variant(self) -> str:
        """QLinearAdd kernel variant the ADD tables reproduce ("avx2" / "sse2"): the configuration's."""
        return self.config.add_variant

    @property
    def predicted_cycles(self) -> int:
        """Sum of the predicted cycles of every instruction."""
        return sum(predicted_cycles(i, self.config) for i in self.instructions)

    def host_inputs(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The graph inputs and the host-transformed tensors computed from them (batched)."""
        tensors = dict(inputs)
        for t in self.input_transform:
            tensors[t.output] = t.apply(np.asarray(tensors[t.input]))
        return tensors

    @property
    def internal_tensors(self) -> frozenset[str]:
        """Tensors of the compiler's own (im2col forms, aligned Concat copies), not tensors of the model."""
        return frozenset(t.output for t in self.input_transform if t.window is not None) | frozenset(
            name for name in self.tensors if name.endswith(":aligned"))

    def device_inputs(self, host_inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The tensors of :meth:`host_inputs` the host writes into ``act`` (those with a placement)."""
        return {name: value for name, value in host_inputs.items()
                if name in self.tensors and self.tensors[name].layout == "channel-blocked"}

    def to_json(self) -> dict:
        """Everything about the program for ``report.json`` (JSON types only)."""
        used = self.images.used()
        return {
            "format": PROGRAM_FORMAT,
            "model": self.model_name,
            "config": self.config.to_dict(),
            "keep_all": self.keep_all,
            "memory_use": {
                "act_rows": self.act_rows, "act_rows_reuse": self.act_rows_reuse,
                "act_rows_keep_all": self.act_rows_keep_all, "act_depth": self.config.act_buffer_depth,
                "wgt_rows": used["wgt"], "wgt_depth": self.config.weight_buffer_depth,
                "prm_rows": used["prm"], "prm_depth": self.config.param_memory_depth,
                "lut_rows": used["lut"], "addtab_entries": used["addtab"],
                "instructions": used["prog"], "prog_depth": self.config.program_memory_depth,
            },
            "predicted_cycles": self.predicted_cycles,
            "input_transform": [t.to_json() for t in self.input_transform],
            "inputs": list(self.inputs),
            "outputs": list(self.outputs),
            "layers": [p.to_json() for p in self.layers],
            "tensors": {n: p.to_json() | {"readable_after_run": n in self.readable} for n, p in self.tensors.items()},
            "instructions": [{k: (int(v) if not isinstance(v, str) else v) for k, v in dataclasses.asdict(i).items()}
                             | {"opcode": i.opcode.name, "mode": i.mode.name} for i in self.instructions],
            "add_variant": self.add_variant,
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)

    @classmethod
    def from_json(cls, data: dict, images: MemoryImages) -> Program:
        """The program a build folder describes: ``program.json`` (:meth:`to_json`) and its memory images.

        What the host needs to run it on the accelerator (tensor placements, host transforms, the
        instructions and the per-layer plan). The instructions must be those encoded in ``images.prog``.

        Raises
        ------
        SystolixError
            If the JSON is not a program, or its instructions differ from ``images.prog``.
        """
        try:
            config = AcceleratorConfig.from_dict(data["config"])
            names = [name for name, _ in isa.FIELDS]
            instructions = [isa.Instruction(**{k: (isa.Opcode[v] if k == "opcode" else isa.Mode[v] if k == "mode"
                                                   else int(v)) for k, v in i.items() if k in names})
                            for i in data["instructions"]]
            tensors = {n: TensorPlacement.from_json(p) for n, p in data["tensors"].items()}
            readable = frozenset(n for n, p in data["tensors"].items() if p["readable_after_run"])
            memory = data["memory_use"]
            program = cls(instructions=instructions, images=images, tensors=tensors,
                          layers=[LayerPlan.from_json(p) for p in data["layers"]],
                          input_transform=[HostTransform.from_json(t) for t in data["input_transform"]],
                          inputs=tuple(data["inputs"]), outputs=tuple(data["outputs"]), readable=readable,
                          config=config, keep_all=bool(data["keep_all"]), act_rows=int(memory["act_rows"]),
                          act_rows_reuse=int(memory["act_rows_reuse"]),
                          act_rows_keep_all=int(memory["act_rows_keep_all"]), model_name=str(data["model"]))
        except (KeyError, TypeError, ValueError) as error:
            raise SystolixError(f"not a systolix program description ({type(error).__name__}: {error})") from None
        if [isa.encode(i) for i in instructions] != [int(w) for w in images.prog]:
            raise SystolixError("the program's instructions differ from the program memory image")
        return program


# ---------------------------------------------------------------------------------------------------


def _tensor_quant(model: ir.Model, name: str) -> ir.QuantParams | None:
    info = model.tensors.get(name)
    if info is not None and info.quant is not None:
        return info.quant
    for layer in model.layers:  # a graph input without quantization: its consumer's input quantization
        if name in layer.inputs:
            q = getattr(layer, "x_quant", None) or getattr(layer, "a_quant", None)
            if q is not None and not q.per_channel:
                return q
    return None


def _dtype_zp(model: ir.Model, name: str) -> tuple[str, int]:
    q = _tensor_quant(model, name)
    if q is not None:
        return q.dtype, int(q.zero_point)
    info = model.tensors.get(name)
    dtype = info.dtype if info is not None else "int8"
    if dtype not in ("int8", "uint8"):
        raise SystolixError(f"tensor {name!r} has type {dtype}; the accelerator holds int8/uint8 tensors only")
    return dtype, 0


def _unsupported(layer: ir.Layer) -> str | None:
    """Why a layer cannot run on the accelerator (None if it can)."""
    if isinstance(layer, ir.AveragePool) and not is_global_average(layer):
        return average_pool_refusal(layer)
    if isinstance(layer, ir.Add | ir.Mul):
        try:
            channel_broadcast(layer)
            if isinstance(layer, ir.Mul) and layer.y_quant is not None:
                mul_arith.mul_params(layer.a_quant, layer.b_quant, layer.y_quant)
        except SystolixError as e:
            return str(e).removeprefix(f"layer {layer.name} ({layer.op}): ")
    if isinstance(layer, ir.Resize):
        maps = layer.maps if len(layer.maps) == 2 else ((0,), *layer.maps)
        try:
            for index_map, length in zip(maps, (1,) * (2 - len(layer.maps)) + tuple(layer.in_shapes[0][2:]),
                                         strict=True):
                resize_runs(index_map, length)
        except SystolixError as e:
            return str(e)
    if isinstance(layer, ir.Concat):
        try:
            concat_axis(layer)
        except SystolixError as e:
            return str(e).removeprefix(f"layer {layer.name} ({layer.op}): ")
    if isinstance(layer, ir.MatMul):
        return "a matrix product of two activations is not supported by the accelerator (only constant weights)"
    if isinstance(layer, ir.Transpose):
        return ("a Transpose is supported on the graph input (done by the host) and before a Flatten/Reshape into "
                "a fully connected layer (folded into its weights)")
    if isinstance(layer, ir.Activation | ir.ChannelConstant):
        return "a float layer: quantize the model first"
    if layer.host:
        return "this operation is left to the host and cannot be part of the accelerator program"
    if not isinstance(layer, ir.Conv | ir.Dense | ir.MaxPool | ir.AveragePool | ir.GlobalAveragePool | ir.Lookup
                      | ir.ChannelLookup | ir.Add | ir.Mul | ir.Resize | ir.Reshape | ir.Concat):
        return f"{type(layer).__name__} layers are not supported by the accelerator"
    return None


def resolve_add_variant(config: AcceleratorConfig) -> AcceleratorConfig:
    """``config`` with ``add_variant="auto"`` replaced by the QLinearAdd kernel the local onnxruntime runs."""
    if config.add_variant != "auto":
        return config
    from systolix.quantize.golden.qlinear_add import probe_qlinear_add_variant

    return dataclasses.replace(config, add_variant=probe_qlinear_add_variant())


def _fit_error(layer: str, need: int, what: str, field: str, depth: int, total: int) -> SystolixError:
    """``layer``: "layer NAME", or "the graph input NAME"."""
    if need >= total:
        return SystolixError(f"{layer} needs {need:,} {what} but {field} is {depth:,}; "
                             f"use {field} >= {total:,} or a larger preset")
    return SystolixError(f"the model needs {total:,} {what} but {field} is {depth:,} ({layer} is the first that "
                         f"does not fit); use {field} >= {total:,} or a larger preset")


def compile_model(model: ir.Model, config: AcceleratorConfig, *, keep_all: bool = False,
                  im2col: bool = True) -> Program:
    """Compile an integer IR model for an accelerator configuration.

    The passes run one after the other, each returning a small dataclass: :func:`_classify` (host transforms,
    aliases, accelerator layers), :func:`_plan_im2col` (first convolutions the host feeds in im2col form),
    :func:`_place` (liveness and ``act`` rows of every tensor), :func:`_lower_layers` (instruction fields and
    memory contents of each layer), :func:`_pack` (``wgt``/``prm``/``lut``/ADD-table bases, size checks,
    instructions and images), then the per-layer plan.

    Parameters
    ----------
    model : ir.Model
        Integer canonical form (``model.quantized``).
    config : AcceleratorConfig
        Square array (``rows == cols``). ``add_variant="auto"`` is resolved to the local onnxruntime's
        QLinearAdd kernel; the program records the resolved configuration.
    keep_all : bool
        Give every tensor its own ``act`` rows, so that every intermediate can be read after the run; by default
        rows of dead tensors are reused (the hardware backends read layers back between instructions instead).
    im2col : bool
        Let the host write the input of a convolution that reads the graph input in im2col form when
        that needs fewer weight tiles (:mod:`.im2col`; the input tensor is then not written into
        ``act`` unless another layer reads it). Not done when the activations would no longer fit.

    Returns
    -------
    Program

    Raises
    ------
    SystolixError
        A layer the accelerator cannot run, or anything that does not fit the configuration (the message
        names the layer and the size that would fit).
    """
    if not model.quantized:
        raise SystolixError(f"{model.name} is a float model; quantize it first")
    if config.rows != config.cols:
        raise SystolixError(f"the compiler needs a square array (rows == cols), not {config.rows}x{config.cols}")
    config = resolve_add_variant(config)
    classified = _classify(model)
    layers, placed = list(classified.layers), None
    if im2col:
        layers, classified_im2col = _plan_im2col(model, classified, config.rows)
        placed = _place(model, layers, classified_im2col, config, keep_all)
        if placed.fits:
            classified = classified_im2col
        else:  # the im2col tensors make the activations overflow act: without them
            layers, placed = list(classified.layers), None
    if placed is None:
        placed = _place(model, layers, classified, config, keep_all)
    if not placed.fits:
        raise placed.error
    lowered = _lower_layers(layers, classified, placed, config)
    packed = _pack(lowered, config)
    plans = _plans(model, layers, classified, lowered, packed, config)
    return Program(instructions=packed.instructions, images=packed.images, tensors=placed.placements, layers=plans,
                   input_transform=classified.transforms, inputs=tuple(t.name for t in model.inputs),
                   outputs=tuple(t.name for t in model.outputs), readable=placed.readable, config=config,
                   keep_all=keep_all, act_rows=placed.rows, act_rows_reuse=placed.rows_reuse,
                   act_rows_keep_all=placed.rows_keep_all, model_name=model.name)


# -- pass 1: classify -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Classified:
    """Host transforms at the graph input, aliases (Reshape), the accelerator layers; im2col sources."""

    transforms: list[HostTransform]
    alias: dict[str, str]  # alias tensor -> storage tensor
    device: list[int]  # indices of accelerator layers (aliases included: they get no instruction)
    host_tensors: frozenset[str]
    layers: list[ir.Layer]  # the model's layers, Dense layers behind a Transpose with permuted weights
    views: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = dataclasses.field(default_factory=dict)
    im2col_source: dict[str, str] = dataclasses.field(default_factory=dict)  # im2col tensor -> its source
    moves: dict[int, Move] = dataclasses.field(default_factory=dict)  # Reshape/Transpose layers that move data
    folds: frozenset[int] = frozenset()  # convolutions reading a channel permutation through their weights

    def root(self, name: str) -> str:
        return self.alias.get(name, name)


def transpose_views(model: ir.Model) -> dict[str, tuple[tuple[int, ...], tuple[int, ...]]]:
    """Tensors that are a Transpose (then Reshapes) of another one and are read only by fully connected layers:
    tensor -> (perm, shape of the transposed tensor). Such a Transpose moves no data: the Dense layers read
    the rows as stored, with their weight rows permuted (tf2onnx writes NCHW -> NHWC before every Keras
    Flatten)."""
    readers: dict[str, list[ir.Layer]] = {}
    for layer in model.layers:
        for name in layer.inputs:
            readers.setdefault(name, []).append(layer)
    outputs = {t.name for t in model.outputs}

    def dense_only(name: str) -> bool:
        users = readers.get(name, [])
        return bool(users) and name not in outputs and all(
            isinstance(u, ir.Dense) or (isinstance(u, ir.Reshape) and dense_only(u.output)) for u in users)

    host = {t.name for t in model.inputs}
    views: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for layer in model.layers:
        if isinstance(layer, ir.Transpose | ir.Reshape) and layer.inputs[0] in host:
            host.add(layer.output)
        elif isinstance(layer, ir.Transpose) and layer.perm[0] == 0 and layer.inputs[0] not in views \
                and dense_only(layer.output):
            views[layer.output] = (tuple(layer.perm), tuple(layer.in_shapes[0]))
        elif isinstance(layer, ir.Reshape) and layer.inputs[0] in views:
            views[layer.output] = views[layer.inputs[0]]
    return views


def _permuted_dense(layer: ir.Dense, view: tuple[tuple[int, ...], tuple[int, ...]]) -> ir.Dense:
    """``layer`` reading the rows of the untransposed tensor: weight row ``k`` (its position in the stored
    order) takes the row of the element's position in the transposed order."""
    perm, source = view
    order = np.arange(int(np.prod(source[1:]))).reshape(source[1:]).transpose([p - 1 for p in perm[1:]])
    weight = np.empty_like(layer.weight)
    weight[order.reshape(-1)] = layer.weight
    return dataclasses.replace(layer, weight=weight)


def host_tensors(model: ir.Model) -> set[str]:
    """The graph inputs and the outputs of the Transpose / Reshape layers the host applies to them."""
    host = {t.name for t in model.inputs}
    for layer in model.layers:
        if isinstance(layer, ir.Transpose | ir.Reshape) and layer.inputs[0] in host:
            host.add(layer.output)
    return host


def _classify(model: ir.Model) -> _Classified:
    host = {t.name for t in model.inputs}
    transforms: list[HostTransform] = []
    device: list[int] = []
    views = transpose_views(model)
    plan = plan_moves(model, host_tensors(model), views)
    layers = list(model.layers)
    for index, layer in enumerate(model.layers):
        if isinstance(layer, ir.Transpose | ir.Reshape) and layer.inputs[0] in host:
            perm = tuple(layer.perm) if isinstance(layer, ir.Transpose) else None
            shape = None if perm is not None else tuple(layer.out_shape)
            transforms.append(HostTransform(layer.name, layer.op, layer.inputs[0], layer.output, perm, shape))
            host.add(layer.output)
            continue
        if isinstance(layer, ir.Transpose | ir.Reshape | ir.Slice):  # an alias, a view or a move (:mod:`.moves`)
            if index in plan.refused:
                raise SystolixError(f"layer {layer.name} ({layer.op}): {plan.refused[index]}")
            device.append(index)
            continue
        why = _unsupported(layer)
        if why is not None:
            raise SystolixError(f"layer {layer.name} ({layer.op}): {why}")
        if isinstance(layer, ir.Dense) and layer.inputs[0] in views:
            layers[index] = _permuted_dense(layer, views[layer.inputs[0]])
        if index in plan.folds:  # reads a channel permutation of the stored tensor: weights permuted instead
            weight = np.zeros((layer.weight.shape[0], len(plan.folds[index]), *layer.weight.shape[2:]),
                              layer.weight.dtype)
            weight[:, plan.folds[index]] = layer.weight
            layers[index] = dataclasses.replace(layer, weight=weight)
        device.append(index)
    return _Classified(transforms, dict(plan.alias), device, frozenset(host), layers, dict(plan.views),
                       moves=dict(plan.moves), folds=frozenset(plan.folds))


# -- pass 2: im2col of first convolutions -------------------------------------------------------------------


def _plan_im2col(model: ir.Model, classified: _Classified, lanes: int) -> tuple[list[ir.Layer], _Classified]:
    """Convolutions reading a host tensor: the host writes their input in im2col form where that pays."""
    layers = list(classified.layers)
    transforms = list(classified.transforms)
    source: dict[str, str] = {}
    taken = set(model.tensors) | {t.name for t in model.inputs} | {lay.output for lay in layers}
    for i in classified.device:
        layer = layers[i]
        if not (isinstance(layer, ir.Conv) and layer.inputs[0] in classified.host_tensors):
            continue
        name = f"{layer.name}:im2col"
        while name in taken:
            name += "_"
        conv = im2col_conv(layer, lanes, name)
        if conv is None:
            continue
        # Padding cells hold the convolution's own input zero point (they add 0), whatever the input's
        # placement records (:func:`.lower.input_zero_point`).
        zp = int(np.asarray(layer.x_quant.zero_point).reshape(-1)[0]) if layer.x_quant is not None else \
            _dtype_zp(model, layer.inputs[0])[1]
        transforms.append(HostTransform(layer.name, "Im2col", layer.inputs[0], name, window=Window.of(layer),
                                        pad_value=zp))
        layers[i] = conv
        source[name] = layer.inputs[0]
        taken.add(name)
    return layers, dataclasses.replace(classified, transforms=transforms, im2col_source=source)


# -- pass 3: liveness and act rows ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Placed:
    """Where every tensor is in ``act`` (or why the activations do not fit)."""

    placements: dict[str, TensorPlacement]
    rows: int
    rows_reuse: int
    rows_keep_all: int
    readable: frozenset[str]
    error: SystolixError | None = None

    @property
    def fits(self) -> bool:
        return self.error is None


def _place(model: ir.Model, layers: list[ir.Layer], classified: _Classified, config: AcceleratorConfig,
           keep_all: bool) -> _Placed:
    lanes = config.rows
    root = classified.root
    graph_inputs = [t.name for t in model.inputs]
    sizes: dict[str, int] = {}
    geometry: dict[str, tuple[int, int, int]] = {}
    live: dict[str, list[int]] = {}
    shapes = {t.name: t.shape for t in model.tensors.values()} | {t.name: t.shape for t in model.inputs}
    for layer in layers:
        shapes[layer.output] = tuple(layer.out_shape)
        for name, shape in zip(layer.inputs, layer.in_shapes, strict=True):
            shapes.setdefault(name, tuple(shape))
    internal: dict[str, str] = {}  # the compiler's own tensors (aligned Concat copies) -> the tensor they become
    consumed = {root(n) for i in classified.device for n in layers[i].inputs}
    for name in [*graph_inputs, *(t.output for t in classified.transforms)]:
        if name in consumed:
            geometry[name] = storage_geometry(shapes[name], f"tensor {name!r}")
            live[name] = [-1, -1]
    for i in classified.device:
        layer = layers[i]
        for name in layer.inputs:
            r = root(name)
            if r not in live:
                raise SystolixError(f"layer {layer.name}: its input {name!r} is not produced on the accelerator")
            live[r][1] = max(live[r][1], i)
        if not isinstance(layer, ir.Reshape | ir.Transpose | ir.Slice) or i in classified.moves:
            if isinstance(layer, ir.Concat) and concat_scratch_channels(layer, lanes):
                c, h, w = storage_geometry(layer.out_shape, f"layer {layer.name}")
                geometry[scratch_name(layer)] = (concat_scratch_channels(layer, lanes), h, w)
                live[scratch_name(layer)] = [i, i]
                internal[scratch_name(layer)] = layer.output
                shapes[scratch_name(layer)] = (1, concat_scratch_channels(layer, lanes), *layer.out_shape[2:])
            geometry[layer.output] = storage_geometry(layer.out_shape, f"layer {layer.name}")
            live[layer.output] = [i, i]
    for t in model.outputs:
        if root(t.name) in live:
            live[root(t.name)][1] = len(layers)
    for name, (c, h, w) in geometry.items():
        sizes[name] = -(-c // lanes) * h * w

    if config.spram_buffers:  # two act banks: each layer's output in the other bank than its inputs
        reads = {layers[i].output: [root(n) for n in layers[i].inputs] for i in classified.device
                 if not isinstance(layers[i], ir.Reshape | ir.Transpose)}
        spans = {n: tuple(v) for n, v in live.items()}
        reuse = allocate_banked(sizes, spans, reads, config.act_bank_rows, keep_all=False)[0]
        # Every tensor kept: banked when asked for (it is then the allocation), else only a figure for the report.
        separate = (allocate_banked(sizes, spans, reads, config.act_bank_rows, keep_all=True)[0] if keep_all
                    else allocate(sizes, spans, keep_all=True))
    else:
        reuse = allocate(sizes, {n: tuple(v) for n, v in live.items()}, keep_all=False)
        separate = allocate(sizes, {n: tuple(v) for n, v in live.items()}, keep_all=True)
    alloc = separate if keep_all else reuse
    if alloc.rows > config.act_buffer_depth:
        top = 0
        for name in sizes:  # the first tensor that ends beyond the memory: name its producer
            top = max(top, alloc.bases[name] + sizes[name])
            if top > config.act_buffer_depth:
                producer = next((f"layer {lay.name}" for lay in layers if lay.output == name),
                                f"the graph input {name}")
                error = _fit_error(producer, top, "activation rows", "act_buffer_depth", config.act_buffer_depth,
                                   alloc.rows)
                return _Placed({}, alloc.rows, reuse.rows, separate.rows, frozenset(), error)

    placements: dict[str, TensorPlacement] = {}
    for name, (c, h, w) in geometry.items():
        dtype, zp = _dtype_zp(model, internal.get(name, classified.im2col_source.get(name, name)))
        placements[name] = TensorPlacement(name, alloc.bases[name], c, h, w, -(-c // lanes), lanes, dtype, zp,
                                           tuple(shapes[name]))
    for name, src in classified.alias.items():
        s = placements[src]
        perm, source = classified.views.get(name, (None, None))
        placements[name] = dataclasses.replace(s, name=name, shape=tuple(shapes[name]), layout=f"alias of {src}",
                                               perm=perm, source_shape=source)
    readable = frozenset(n for n in placements if root(n) in alloc.intact)
    return _Placed(placements, alloc.rows, reuse.rows, separate.rows, readable)


# -- pass 4: lowering -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _LayerLowered:
    """One accelerator layer lowered: instruction fields without memory bases, and what goes into memories."""

    index: int
    layer: ir.Layer
    fields: dict
    lowered: Lowered
    act_rows: int


def _check_unit(layer: ir.Layer, opcode: isa.Opcode, config: AcceleratorConfig) -> None:
    """Refuse a layer whose instruction needs a vector unit the configuration leaves out."""
    unit = isa.OPCODE_UNIT.get(isa.Opcode(opcode))
    if unit is not None and not config.has_unit(unit):
        raise SystolixError(f"layer {layer.name} ({layer.op}): this configuration has no {unit.upper()} unit "
                            f"(vector_units: {', '.join(config.vector_units) or 'none'}); use --array 8x8 (every "
                            f"preset has every unit) or add {unit!r} to vector_units")


def _lower_layers(layers: list[ir.Layer], classified: _Classified, placed: _Placed,
                  config: AcceleratorConfig) -> list[_LayerLowered]:
    out = []
    for index in classified.device:
        layer = layers[index]
        if isinstance(layer, ir.Reshape | ir.Transpose | ir.Slice):
            if index in classified.moves:
                out.extend(_lower_move(layer, classified.moves[index], placed, config, index))
            continue
        xs = [placed.placements[n] for n in layer.inputs]
        y = placed.placements[layer.output]
        _check_input_layout(layer, xs)
        result = _lower(layer, xs, y, config.rows, config, config.add_variant,
                        placed.placements.get(scratch_name(layer)))
        for lowered in result if isinstance(result, list) else [result]:
            _check_unit(layer, lowered.fields["opcode"], config)
            fields = dict(in_base=xs[0].base, out_base=y.base, layer=index)
            if len(xs) > 1 and not isinstance(layer, ir.Concat):
                fields["in2_base"] = xs[1].base
            fields.update(lowered.fields)
            out.append(_LayerLowered(index, layer, fields, lowered, y.rows))
    return out


# -- pass 5: memory images --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Packed:
    """Instructions (one per lowered layer, then HALT) with their memory bases, and the images."""

    instructions: list[isa.Instruction]
    images: MemoryImages


def _pack(lowered: list[_LayerLowered], config: AcceleratorConfig) -> _Packed:
    lanes = config.rows
    wgt_parts, prm_rows, lut_parts, addtab_parts = [], [], [], []
    tops = {"wgt": 0, "prm": 0, "lut": 0, "addtab": 0}
    lut_bases: dict[bytes, int] = {}
    need: dict[str, list[tuple[str, int]]] = {key: [] for key in tops}
    all_fields = []
    for low in lowered:
        fields, parts = dict(low.fields), low.lowered
        if parts.tiles is not None:
            fields["w_base"] = tops["wgt"]
            wgt_parts.append(parts.tiles)
            tops["wgt"] += parts.tiles.shape[0]
        if parts.prm:
            fields["p_base"] = len(prm_rows)
            prm_rows.extend(parts.prm)
            tops["prm"] = len(prm_rows)
        if parts.lut is not None:  # identical tables (concat copies, repeated activations) are stored once
            key = parts.lut.tobytes()
            if key not in lut_bases:
                lut_bases[key] = tops["lut"]
                lut_parts.append(parts.lut)
                tops["lut"] += parts.lut.shape[0]
            fields["lut_base"] = lut_bases[key]
        if parts.addtab is not None:
            fields["lut_base"] = tops["addtab"]
            addtab_parts.append(parts.addtab)
            tops["addtab"] += parts.addtab.shape[0] if parts.addtab.ndim else 1
        for key in tops:
            need[key].append((low.layer.name, tops[key]))
        all_fields.append(fields)

    for key, field, depth, what in (("wgt", "weight_buffer_depth", config.weight_buffer_depth, "weight rows"),
                                    ("prm", "param_memory_depth", config.param_memory_depth, "parameter rows"),
                                    ("lut", "lut_memory_depth", config.lut_memory_depth, "lookup-table rows"),
                                    ("addtab", "add_table_depth", config.add_table_depth, "ADD table entries")):
        total = tops[key]
        if total > depth:
            name, rows = next((n, r) for n, r in need[key] if r > depth)
            raise _fit_error(f"layer {name}", rows, what, field, depth, total)
    if len(lowered) + 1 > config.program_memory_depth:
        raise SystolixError(f"the program has {len(lowered) + 1:,} instructions but program_memory_depth is "
                            f"{config.program_memory_depth:,}; use program_memory_depth >= {len(lowered) + 1:,}")

    instructions = []
    for low, fields in zip(lowered, all_fields, strict=True):
        try:
            instructions.append(isa.Instruction(**fields))
        except SystolixError as e:
            raise SystolixError(f"layer {low.layer.name} ({low.layer.op}): {e}") from None
    instructions.append(isa.Instruction(opcode=isa.Opcode.HALT))

    wgt = np.zeros((config.weight_buffer_depth, lanes), dtype=np.int8)
    if wgt_parts:
        stacked = np.concatenate(wgt_parts)
        wgt[: stacked.shape[0]] = stacked
    lut = np.concatenate(lut_parts) if lut_parts else np.zeros((0, lanes), dtype=np.int8)
    addtab = np.concatenate([np.atleast_1d(a) for a in addtab_parts]) if addtab_parts else np.zeros(0, np.int64)
    images = MemoryImages(wgt=wgt, prm=prm_rows, lut=lut, addtab=addtab, prog=[isa.encode(i) for i in instructions])
    return _Packed(instructions, images)


# -- pass 6: the per-layer plan ---------------------------------------------------------------------------


def _plans(model: ir.Model, layers: list[ir.Layer], classified: _Classified, lowered: list[_LayerLowered],
           packed: _Packed, config: AcceleratorConfig) -> list[LayerPlan]:
    lanes = config.rows
    device = set(classified.device)
    by_index: dict[int, list[tuple[int, _LayerLowered]]] = {}
    for k, low in enumerate(lowered):
        by_index.setdefault(low.index, []).append((k, low))
    plans = []
    for index, layer in enumerate(layers):
        original = model.layers[index]
        if index not in by_index:
            note = "alias: no data moved" if index in device else "host (before writing the input)"
            plans.append(LayerPlan(layer.name, layer.op, layer.kind, (), layer.macs, 0, 0, 0, 0, 0, note, layer.output))
            continue
        entries = by_index[index]
        parts = [low.lowered for _, low in entries]
        note = "; ".join(p.note for p in parts)
        if index in classified.folds:
            note += " (input channels permuted in its weights: it reads the stored tensor before a channel shuffle)"
        elif layer is not original and isinstance(layer, ir.Dense):
            note += " (weight rows permuted: it reads the rows stored before a Transpose)"
        elif layer is not original:
            before, after = im2col_tiles(original, lanes)
            note += (f" over the host's im2col input ({layer.in_shapes[0][1]} values per pixel: {after} tiles per "
                     f"output block instead of {before})")
        plans.append(LayerPlan(
            layer.name, layer.op, layer.kind, tuple(k for k, _ in entries), original.macs,
            sum(predicted_cycles(packed.instructions[k], config) for k, _ in entries), entries[0][1].act_rows,
            sum(0 if p.tiles is None else p.tiles.shape[0] for p in parts), sum(len(p.prm) for p in parts),
            sum(0 if p.lut is None else p.lut.shape[0] for p in parts), note, layer.output))
    return plans


def _lower_move(layer: ir.Layer, move: Move, placed: _Placed, config: AcceleratorConfig,
                index: int) -> list[_LayerLowered]:
    x, y = placed.placements[move.source], placed.placements[layer.output]
    if move.kind == "channels":
        parts = [channel_move(layer, move, x, y, config.rows, config.acc_memory_depth)]
    else:
        parts = pixel_move(layer, move, x, y)
    out = []
    for lowered in parts:
        fields = dict(in_base=x.base, out_base=y.base, layer=index)
        fields.update(lowered.fields)
        out.append(_LayerLowered(index, layer, fields, lowered, y.rows))
    return out


def _check_input_layout(layer: ir.Layer, xs: list[TensorPlacement]) -> None:
    """An aliased input must be stored as the layer reads it (same channels and pixel count), except for Dense."""
    if isinstance(layer, ir.Dense):
        return
    for x, shape in zip(xs, layer.in_shapes, strict=True):
        c, h, w = storage_geometry(shape, f"layer {layer.name}")
        if (c, h * w) != (x.channels, x.h * x.w):
            raise SystolixError(
                f"layer {layer.name} ({layer.op}) reads {x.name!r} as {c}x{h}x{w} but it is stored as "
                f"{x.channels}x{x.h}x{x.w} (a Reshape that moves data between channels and pixels); only a Dense "
                "layer can follow such a reshape on the accelerator")


def scratch_name(layer: ir.Layer) -> str:
    """The compiler's own tensor of a layer that needs one (a Concat's aligned copy)."""
    return f"{layer.output}:aligned"


def _lower(layer: ir.Layer, xs: list[TensorPlacement], y: TensorPlacement, lanes: int, config: AcceleratorConfig,
           add_variant: str, scratch: TensorPlacement | None = None) -> Lowered | list[Lowered]:
    if not isinstance(layer, ir.Dense):  # read with the layer's own H x W (an alias may split pixels otherwise)
        geoms = [storage_geometry(shape, f"layer {layer.name}") for shape in layer.in_shapes]
        xs = [dataclasses.replace(p, h=h, w=w) for p, (_, h, w) in zip(xs, geoms, strict=True)]
    x = xs[0]
    if isinstance(layer, ir.Conv):
        return lower_conv(layer, x, y, lanes, config.acc_memory_depth)
    if isinstance(layer, ir.Dense):
        return lower_dense(layer, x, y, lanes)
    if isinstance(layer, ir.AveragePool) and not is_global_average(layer):
        return lower_average_pool(layer, x, y, lanes, config.acc_memory_depth)
    if isinstance(layer, ir.GlobalAveragePool | ir.AveragePool):
        return lower_gap(layer, x, y, lanes)
    if isinstance(layer, ir.MaxPool):
        return lower_maxpool(layer, x, y)
    if isinstance(layer, ir.Lookup):
        return lower_lookup(layer, x, y, lanes)
    if isinstance(layer, ir.ChannelLookup):
        return lower_channel_lookup(layer, x, y, lanes, config.acc_memory_depth)
    if isinstance(layer, ir.Add):
        return lower_add(layer, xs[0], xs[1], y, add_variant)
    if isinstance(layer, ir.Mul):
        return lower_mul(layer, xs[0], xs[1], y)
    if isinstance(layer, ir.Resize):
        return lower_resize(layer, x, y)
    if isinstance(layer, ir.Concat):
        return lower_concat(layer, xs, y, lanes, config.acc_memory_depth, scratch)
    raise SystolixError(f"layer {layer.name} ({layer.op}): no lowering for {type(layer).__name__}")
