"""``systolix inspect``: one row per layer with shapes, geometry, parameters and MACs, then totals."""

from __future__ import annotations

from rich.table import Table

from .ir import Model
from .names import short_names


def _shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape[1:])) if len(shape) > 1 else "x".join(map(str, shape))


def layer_rows(model: Model, runs_on: dict[str, str] | None = None) -> list[dict]:
    """The inspect table as plain rows (also written to JSON); ``runs_on``: layer name -> where it runs."""
    rows = []
    for layer in model.layers:
        rows.append({
            **({"runs_on": runs_on.get(layer.name, "")} if runs_on is not None else {}),
            "name": layer.name,
            "op": layer.op,
            "kind": layer.kind,
            "input": [list(s) for s in layer.in_shapes],
            "output": list(layer.out_shape),
            "geometry": layer.geometry(),
            "params": layer.params,
            "macs": layer.macs,
            "host": layer.host,
        })
    return rows


def inspect_table(model: Model, runs_on: dict[str, str] | None = None) -> Table:
    title = f"{model.name}: {'integer (canonical form)' if model.quantized else 'float'} model"
    table = Table(title=title, show_footer=True)
    table.add_column("layer", footer="total", overflow="fold")  # short unique names, never cut
    table.add_column("op")
    table.add_column("input -> output")
    table.add_column("kernel/stride/pad/dil/groups")
    table.add_column("params", justify="right", footer=f"{model.params:,}")
    table.add_column("MACs", justify="right", footer=f"{model.macs:,}")
    if runs_on is not None:
        table.add_column("runs on")
    short = short_names([*(step.name for step in model.input_prefix), *(layer.name for layer in model.layers)])
    for step in model.input_prefix:  # elementwise preprocessing the host runs before the accelerator's input
        where = [] if runs_on is None else [runs_on.get(step.name, "host (input)")]
        table.add_row(short[step.name], f"{step.op} (host)", f"{_shape(step.shape)} -> {_shape(step.shape)}",
                      step.what, "0", "0", *where)
    for layer in model.layers:
        shapes = " + ".join(_shape(s) for s in layer.in_shapes)
        op = layer.op + (" (host)" if layer.host else "")
        where = [] if runs_on is None else [runs_on.get(layer.name, "")]
        style = "red" if where and where[0].startswith("refused") else None
        table.add_row(short[layer.name], op, f"{shapes} -> {_shape(layer.out_shape)}", layer.geometry(),
                      f"{layer.params:,}", f"{layer.macs:,}", *where, style=style)
    return table


def converted_lines(model: Model) -> list[str]:
    """The ``converted to integer:`` notes, one line per reason with the layers' short names.

    ``model.converted`` holds ``"NAME (OP): WHY"`` per layer (full names, as in the JSON report); layers converted
    for the same reason share a line: ``"conv1, conv2 (QLinearConv): WHY"``.
    """
    names = sorted((layer.name for layer in model.layers), key=len, reverse=True)
    short = short_names([layer.name for layer in model.layers])
    groups: dict[str, list[str]] = {}
    for line in model.converted:
        name = next((n for n in names if line.startswith(f"{n} (")), None)
        if name is None:
            groups.setdefault(line, [])
            continue
        op, _, why = line[len(name) + 2:].partition("): ")
        groups.setdefault(f"({op}): {why}", []).append(short[name])
    return [f"{', '.join(layers)} {key}" if layers else key for key, layers in groups.items()]
