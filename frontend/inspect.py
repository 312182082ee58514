"""``systolix inspect``: one row per layer with shapes, geometry, parameters and MACs, then totals."""

from __future__ import annotations

from rich.table import Table

from .ir import Model


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
    table.add_column("layer", footer="total")
    table.add_column("op")
    table.add_column("input -> output")
    table.add_column("kernel/stride/pad/dil/groups")
    table.add_column("params", justify="right", footer=f"{model.params:,}")
    table.add_column("MACs", justify="right", footer=f"{model.macs:,}")
    if runs_on is not None:
        table.add_column("runs on")
    for layer in model.layers:
        shapes = " + ".join(_shape(s) for s in layer.in_shapes)
        op = layer.op + (" (host)" if layer.host else "")
        where = [] if runs_on is None else [runs_on.get(layer.name, "")]
        style = "red" if where and where[0].startswith("refused") else None
        table.add_row(layer.name, op, f"{shapes} -> {_shape(layer.out_shape)}", layer.geometry(),
                      f"{layer.params:,}", f"{layer.macs:,}", *where, style=style)
    return table
