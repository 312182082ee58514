"""Where each layer of a model runs: the array, the vector unit, the host, or nowhere (and why).

The same classification the compiler applies (:func:`systolix.compiler.compile._unsupported` and the host
transforms at the graph input), so ``inspect`` never shows as "accelerator" a layer ``compile`` refuses for
its op. Whether a layer *fits* the configured memories is a separate question, answered by ``compile``.
A float model is shown as it will run once quantized (its float activations become lookup tables).
"""

from __future__ import annotations

from systolix.arch.config import AcceleratorConfig
from systolix.frontend import ir

from .compile import _unsupported, host_tensors, transpose_views
from .lower import channel_broadcast, channel_lookup_affine, is_global_average
from .moves import plan_moves

__all__ = ["runs_on"]


def _unit(layer: ir.Layer) -> str:
    if isinstance(layer, ir.Conv | ir.Dense | ir.GlobalAveragePool):
        return "array"
    if isinstance(layer, ir.AveragePool) and is_global_average(layer):
        return "array"
    if isinstance(layer, ir.AveragePool):
        if layer.x_quant is None:
            return "array (window sums; exactness checked once quantized)"
        return "array (window sums, one scale per divisor)"
    if isinstance(layer, ir.MaxPool):
        return "vector (max)"
    if isinstance(layer, ir.ChannelLookup):
        if channel_lookup_affine(layer):
            return "array (per-channel tables as a requantized depthwise pass)"
        return "vector (per-channel tables, one per lane)"
    if isinstance(layer, ir.Lookup):
        return "vector (table)"
    if isinstance(layer, ir.Add):
        return "vector (add)" if channel_broadcast(layer) is None else "vector (add, per-channel broadcast)"
    if isinstance(layer, ir.Mul):
        return "vector (mul)" if channel_broadcast(layer) is None else "vector (mul, per-channel broadcast)"
    if isinstance(layer, ir.Concat):
        return "vector (copy)"
    if isinstance(layer, ir.Resize):
        return "vector (nearest upsampling)"
    if isinstance(layer, ir.Reshape):
        return "alias (no data moved)"
    return "array"


#: What each "vector (...)" placement runs on (``AcceleratorConfig.vector_units``; a Concat is LUT copies).
_VECTOR_UNIT = (("vector (max)", "maxpool"), ("vector (pixel copies)", "maxpool"), ("vector (table", "lut"),
                ("vector (per-channel tables", "lut"), ("vector (copy)", "lut"),
                ("vector (add", "add"), ("vector (mul", "mul"), ("vector (nearest", "resize"))


def _absent_unit(where: str, config: AcceleratorConfig | None) -> str | None:
    """The vector unit ``where`` needs, if ``config`` leaves it out (else None)."""
    if config is None:
        return None
    unit = next((u for prefix, u in _VECTOR_UNIT if where.startswith(prefix)), None)
    return None if unit is None or config.has_unit(unit) else unit


def runs_on(model: ir.Model, config: AcceleratorConfig | None = None) -> dict[str, str]:
    """Layer name -> where it runs: ``"array"``, ``"vector (...)"``, ``"alias (no data moved)"`` (the
    accelerator), ``"host (input)"``, ``"host (output)"``, or ``"refused: why"``; the ops of the host input
    prefix (``model.input_prefix``) first, as ``"host (input)"``. With ``config``, a vector layer whose unit it
    leaves out (``vector_units``) is refused, as ``compile`` refuses it."""
    where = _runs_on(model)
    for name, text in where.items():
        unit = _absent_unit(text, config)
        if unit is not None:
            where[name] = f"refused: this configuration has no {unit.upper()} unit"
    return where


def _runs_on(model: ir.Model) -> dict[str, str]:
    host = {t.name for t in model.inputs}
    views = transpose_views(model)
    plan = plan_moves(model, host_tensors(model), views)
    folded = {model.layers[i].inputs[0] for i in plan.folds}
    where = {step.name: "host (input)" for step in model.input_prefix}
    for index, layer in enumerate(model.layers):
        if isinstance(layer, ir.Transpose) and layer.output in views:
            where[layer.name] = "alias (folded into the dense weights)"
            continue
        if isinstance(layer, ir.Transpose | ir.Reshape) and layer.inputs[0] in host:
            where[layer.name] = "host (input)"
            host.add(layer.output)
            continue
        if isinstance(layer, ir.Transpose | ir.Reshape | ir.Slice):
            if index in plan.refused:
                where[layer.name] = f"refused: {plan.refused[index]}"
            elif index in plan.moves:
                what = "selection" if isinstance(layer, ir.Slice) else "permutation"
                where[layer.name] = (f"array (channel {what} as a 1x1 convolution)"
                                     if plan.moves[index].kind == "channels" else "vector (pixel copies)")
            elif layer.output in folded:
                where[layer.name] = "alias (folded into the next convolution's weights)"
            elif isinstance(layer, ir.Transpose):
                where[layer.name] = "alias (a view: no data moved)"
            else:
                where[layer.name] = "alias (no data moved)"
            continue
        if not model.quantized and isinstance(layer, ir.Activation):
            per_channel = any(key == "slopes" for key, _ in layer.attrs)
            where[layer.name] = ("vector (per-channel tables, once quantized)" if per_channel else
                                 "vector (table, once quantized)")
            continue
        if isinstance(layer, ir.ChannelConstant):
            where[layer.name] = ("vector (table, once quantized)" if layer.constant.size == 1 else
                                 "array (per-channel tables, once quantized)")
            continue
        if layer.host:
            where[layer.name] = "host (output)"
            continue
        why = _unsupported(layer)
        where[layer.name] = f"refused: {why}" if why is not None else _unit(layer)
    return where
