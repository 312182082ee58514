"""The graph normaliser in front of the importer: named rewrites that bring the graphs common exporters
write (old IR and opsets, an opset or IR newer than onnxruntime reads, initializers listed as graph inputs,
a fixed batch, arithmetic on constants, Reshape targets computed from Shape, ops onnxruntime has no integer
kernel for) to the form
the importer and onnxruntime take, one rewrite per file, each reported when it fires.

Every rewrite here leaves onnxruntime's result unchanged by construction (they change metadata and shapes,
not arithmetic). :func:`normalize` still checks it on every run where both graphs load in onnxruntime:
a quantized graph must give identical outputs on random integer inputs, or the rewrite is not applied and
that is reported; for a float graph the largest difference is measured and reported.
"""

from __future__ import annotations

import dataclasses

import onnx

from .base import Fired, Rewrite
from .constant_folding import FoldConstants
from .fixed_batch import SymbolicBatch
from .global_max_pool import GlobalMaxPoolAsMaxPool
from .initializer_inputs import DropInitializerInputs
from .input_affine import FoldInputScaling
from .ir_version import LowerIrVersion
from .layout import CancelLayoutRoundTrips, HoistTransposeOverElementwise, ReduceMeanAsGlobalPool
from .lower_opset import LowerOpset
from .opset import UpgradeOpset
from .pool_1d import AveragePoolAs1d
from .shape_computation import FoldShapeComputation
from .split_slices import SplitAsSlices
from .unused_inputs import DropUnusedInputs

__all__ = ["REWRITES", "Fired", "Normalized", "Rewrite", "normalize"]

#: The rewrites, in the order they run.
REWRITES: tuple[Rewrite, ...] = (LowerOpset(), LowerIrVersion(), DropInitializerInputs(), DropUnusedInputs(),
                                 UpgradeOpset(),
                                 SymbolicBatch(), FoldConstants(), FoldShapeComputation(),
                                 HoistTransposeOverElementwise(), FoldInputScaling(), AveragePoolAs1d(),
                                 CancelLayoutRoundTrips(),
                                 ReduceMeanAsGlobalPool(), GlobalMaxPoolAsMaxPool(), SplitAsSlices())


@dataclasses.dataclass(frozen=True)
class Normalized:
    """The normalised model and the rewrites that fired (or were refused)."""

    model: onnx.ModelProto
    fired: tuple[Fired, ...]

    def lines(self) -> list[str]:
        """One line per rewrite for the console."""
        return [f.line() for f in self.fired]


def normalize(model: onnx.ModelProto, *, quantized: bool) -> Normalized:
    """Run every rewrite of :data:`REWRITES` on a copy of ``model``.

    Parameters
    ----------
    model : onnx.ModelProto
    quantized : bool
        The graph holds quantization ops: a rewrite must keep onnxruntime's integer outputs identical.
    """
    from .check import compare

    current = onnx.ModelProto()
    current.CopyFrom(model)
    fired = []
    for rewrite in REWRITES:
        result = rewrite.apply(current)
        if result is None:
            continue
        candidate, detail = result
        verdict = compare(current, candidate, quantized=quantized)
        if quantized and verdict.differs:
            fired.append(Fired(rewrite.name, detail, applied=False, check=verdict.text))
            continue
        fired.append(Fired(rewrite.name, detail, applied=True, check=verdict.text))
        current = candidate
    return Normalized(current, tuple(fired))
