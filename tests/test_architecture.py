"""The package layering: no import cycle between systolix's packages, and the hardware contract at the bottom.

Every import counts, including those inside functions (they hide a dependency, they do not remove it).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("systolix", "frontend", "quantize", "arch", "hdl", "compiler", "sim")


def _imports() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = {p: {} for p in PACKAGES}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else (
                    [a.name for a in node.names] if isinstance(node, ast.Import) else [])
                for name in names:
                    parts = name.split(".")
                    if parts[0] == "systolix" and len(parts) > 1 and parts[1] in PACKAGES and parts[1] != package:
                        graph[package].setdefault(parts[1], []).append(str(path.relative_to(ROOT)))
    return graph


def test_no_import_cycle_between_packages():
    graph = _imports()
    closure = {p: set(graph[p]) for p in PACKAGES}
    for _ in PACKAGES:  # transitive closure
        for p in PACKAGES:
            closure[p] |= set(itertools.chain.from_iterable(closure[q] for q in closure[p]))
    cycles = sorted(p for p in PACKAGES if p in closure[p])
    assert not cycles, {p: graph[p] for p in cycles}


def test_hardware_contract_is_the_bottom_of_the_hardware_stack():
    """``arch`` imports neither the HDL nor the compiler; the HDL imports only ``arch`` (and errors)."""
    graph = _imports()
    assert not {"hdl", "compiler", "sim"} & set(graph["arch"]), graph["arch"]
    assert set(graph["hdl"]) <= {"arch"}, graph["hdl"]
    assert "hdl" not in graph["frontend"] and "compiler" not in graph["frontend"], graph["frontend"]


def test_cycle_model_reads_latencies_from_the_contract():
    """``compiler/cycles.py`` takes the units' latencies from ``arch.latency``, not from the HDL classes."""
    graph = _imports()
    assert not [f for f in graph["compiler"].get("hdl", []) if f.endswith("cycles.py")], graph["compiler"]


def test_every_package_folder_is_installed():
    """A non-editable install (``pip install .``) ships exactly the folders pyproject lists: a package folder
    missing there imports in the checkout and fails after installation (it happened: frontend/normalize)."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {str(path.parent.relative_to(ROOT)) for root in PACKAGES
               for path in (ROOT / root).rglob("*.py") if path.parent.joinpath("__init__.py").is_file()}
    folders |= {str(path.parent.relative_to(ROOT)) for path in (ROOT / "sim").rglob("*.cpp")}  # package data
    mapped = {folder for name, folder in setuptools["package-dir"].items()}
    assert folders == mapped
    assert set(setuptools["packages"]) == set(setuptools["package-dir"])
