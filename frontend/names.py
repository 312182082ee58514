"""Short, unique display names for layers.

Exporters write long names: TFLite via tf2onnx joins every fused op's path with ``;``
(``functional_1/activation_1/Relu;functional_1/conv2d_1/BiasAdd;...``), torch writes ``/layer1/layer1.0/conv1/Conv``.
Cut to a column's width they all read ``functional_1/ac…``. :func:`short_names` keeps, for each name, the
first of its ``;``-joined aliases and then the fewest trailing ``/``-separated parts that tell it apart from
every other layer's; the full names stay in the JSON reports.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["short_names"]


def _first_alias(name: str) -> list[str]:
    first = name.split(";")[0]
    return [p for p in first.split("/") if p] or [name]


def _all_parts(name: str) -> list[str]:
    return [p for alias in name.split(";") for p in alias.split("/") if p] or [name]


def _unique_suffix(name: str, parts: dict[str, list[str]]) -> str | None:
    own = parts[name]
    for k in range(1, len(own) + 1):
        if not any(other != name and theirs[-k:] == own[-k:] for other, theirs in parts.items()):
            return "/".join(own[-k:])
    return None


def short_names(names: Sequence[str]) -> dict[str, str]:
    """Map each name to a short name unique among ``names``.

    Parameters
    ----------
    names
        Layer names (duplicates map to themselves).

    Returns
    -------
    dict
        ``name -> short name``: the shortest unique ``/`` suffix of the name's first ``;`` alias; when two layers
        share that alias, the shortest unique suffix of all its parts; else the whole name.
    """
    unique = list(dict.fromkeys(names))
    first = {name: _first_alias(name) for name in unique}
    every = {name: _all_parts(name) for name in unique}
    result = {name: _unique_suffix(name, first) or _unique_suffix(name, every) or name for name in unique}
    # a short name may equal another layer's full name (a/b vs b), or another short name of the second kind
    taken = set(unique)
    seen: set[str] = set()
    for name, short in result.items():
        if short != name and (short in taken or short in seen):
            result[name] = name
        seen.add(result[name])
    return result
