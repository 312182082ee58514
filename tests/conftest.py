"""Shared test helpers: where ../shared is, and building small ONNX models with onnx.helper."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
EXAMPLE = REPO / "examples" / "keras_mnist"

needs_shared = pytest.mark.skipif(not (SHARED / "models").is_dir(),
                                  reason="../shared (real models and data) is not beside the checkout")
