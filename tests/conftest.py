"""Shared test helpers: where ../shared is, and building small ONNX models with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "keras_mnist"

needs_shared = pytest.mark.skipif(not (SHARED / "models").is_dir(),
                                  reason="../shared (real models and data) is not beside the checkout")



# -- "N slow tests not run": counted where the tests are collected (each xdist worker, or this process) ----------
_SLOW_NOT_RUN = "systolix_slow_not_run"


def pytest_deselected(items) -> None:
    if items:
        config = items[0].config
        count = sum(item.get_closest_marker("slow") is not None for item in items)
        setattr(config, _SLOW_NOT_RUN, getattr(config, _SLOW_NOT_RUN, 0) + count)


def pytest_sessionfinish(session) -> None:
    if hasattr(session.config, "workeroutput"):  # an xdist worker: hand the count to the controller
        session.config.workeroutput[_SLOW_NOT_RUN] = getattr(session.config, _SLOW_NOT_RUN, 0)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    count = getattr(node, "workeroutput", {}).get(_SLOW_NOT_RUN, 0)  # every worker collects the whole suite
    setattr(node.config, _SLOW_NOT_RUN, max(getattr(node.config, _SLOW_NOT_RUN, 0), count))


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """Say how many slow tests the default marker expression left out, and how to run them."""
    count = getattr(config, _SLOW_NOT_RUN, 0)
    if count:
        terminalreporter.write_line(f"{count} slow tests not run (the default suite leaves them to the benchmarks; "
                                    "run them with: .venv/bin/python -m pytest -m slow)")
