"""Running the reference: onnxruntime on the model it is held to, with intermediate tensors exposed."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import onnx

from systolix.frontend.reference import add_outputs, fixed_batch, reference_session, run_session


def run_onnxruntime(model: onnx.ModelProto, inputs: dict[str, np.ndarray], tensors: Sequence[str],
                    *, chunk: int = 128, progress: Callable[[int], None] | None = None) -> dict[str, np.ndarray]:
    """Run ``model`` on every sample of ``inputs`` and return the named tensors (batched on axis 0).

    Models with a fixed batch are run sample by sample; the others in chunks of ``chunk`` samples.
    ``progress`` is called with the number of samples done after each run.
    """
    existing = {o.name for o in model.graph.output}
    extra = [t for t in tensors if t not in existing]
    if extra:
        model = add_outputs(model, extra)
    session = reference_session(model)
    names = list(tensors)
    n = len(next(iter(inputs.values())))
    fixed = fixed_batch(model)
    step = fixed if fixed is not None else chunk
    results: dict[str, list[np.ndarray]] = {t: [] for t in names}
    for start in range(0, n, step):
        feed = {k: v[start:start + step] for k, v in inputs.items()}
        for name, value in zip(names, run_session(session, names, feed), strict=True):
            results[name].append(np.asarray(value))
        if progress is not None:
            progress(min(start + step, n))
    return {t: np.concatenate(v, axis=0) for t, v in results.items()}
