"""``systolix simulate``: run a backend and onnxruntime on the same samples and compare every element.

Flow: import the model (quantized models are brought to the integer canonical form, which is what
onnxruntime runs as the reference); load the samples (float samples go through the model's input
quantization on the host, done both by onnxruntime's QuantizeLinear and the golden one, and compared);
run onnxruntime with the compared tensors exposed as graph outputs; run the backend; compare.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from systolix.errors import SystolixError
from systolix.frontend.importer import Imported, import_model
from systolix.frontend.ir import Add, Model, QuantParams
from systolix.frontend.reference import reference_session, run_session
from systolix.quantize.datasets import load_inputs
from systolix.quantize.golden.quantize_linear import quantize_linear

from .backends import get_backend
from .compare import Comparison, compare_tensors
from .onnxruntime_runner import run_onnxruntime


@dataclass
class SimulationResult:
    """Everything ``simulate`` found, for the summary table and the JSON report."""

    model: str
    backend: str
    comparison: Comparison
    converted: tuple[str, ...] = ()
    host_ops: tuple[str, ...] = ()
    accuracy: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    float_execution: list = field(default_factory=list)
    hardware: dict | None = None
    normalized: tuple[str, ...] = ()
    input_notes: tuple[str, ...] = ()
    waveform: dict | None = None

    @property
    def bit_exact(self) -> bool:
        return self.comparison.bit_exact

    def to_json(self) -> dict:
        compared = self.comparison.to_json()
        if self.hardware is not None:  # measured cycles, MACs and utilisation beside each compared layer
            by_name = {layer["name"]: layer for layer in self.hardware["hardware_layers"]}
            for layer in compared["layers"]:
                hw = by_name.get(layer["name"])
                if hw is not None:
                    layer.update(cycles=hw["cycles"], predicted_cycles=hw["predicted_cycles"], macs=hw["macs"],
                                 utilization=hw["utilization"])
        return {"model": self.model, "backend": self.backend, **compared,
                "converted_layers": list(self.converted), "host_ops": list(self.host_ops),
                "accuracy": self.accuracy, "seconds": self.seconds,
                "float_execution": [dataclasses.asdict(d) for d in self.float_execution],
                "normalized": list(self.normalized), "input_notes": list(self.input_notes),
                **({} if self.waveform is None else {"waveform": self.waveform}),
                **({} if self.hardware is None else self.hardware)}


def _onnx_quantize_linear(x: np.ndarray, q: QuantParams) -> np.ndarray:
    """onnxruntime's own QuantizeLinear on the samples (the reference for the host's input quantization)."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(q.np_dtype))
    shape = ["N", *x.shape[1:]]
    graph = helper.make_graph(
        [helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["y"])], "quantize_input",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", elem, shape)],
        [helper.make_tensor("s", onnx.TensorProto.FLOAT, [], [float(q.scale)]),
         helper.make_tensor("zp", elem, [], [int(q.zero_point)])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    (y,) = run_session(reference_session(model), ["y"], {"x": x})
    return y


def input_prefix(imported: Imported, name: str) -> onnx.ModelProto | None:
    """The host input prefix (:mod:`systolix.frontend.canonical_prefix`) before the canonical input ``name``, if any."""
    prefix = getattr(imported.canonical, "input_prefix", {}).get(name) if imported.canonical is not None else None
    return None if prefix is None else prefix.model


def run_input_prefix(prefix: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """The host's preprocessing of float samples: onnxruntime runs the prefix model (exact by construction)."""
    (feed,), (out,) = prefix.graph.input, prefix.graph.output
    (y,) = run_session(reference_session(prefix), [out.name], {feed.name: x})
    return y


def prepare_inputs(imported: Imported, inputs: str | Path | None, random: int | None, seed: int = 0,
                   notes: list[str] | None = None, prefix: onnx.ModelProto | None = None
                   ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray | None, QuantParams | None, np.ndarray | None]:
    """Samples for the model's one input.

    Returns (input name, samples for onnxruntime, samples for the backend, labels, input quantization,
    the float samples) — the two sample arrays differ only if the host quantization disagrees. ``notes``
    receives a line per adaptation of the data (see :func:`~systolix.quantize.datasets.load_inputs`).
    When the model has a host input prefix (``prefix``: a build's ``input_prefix.onnx``, else the imported
    model's own) the float samples go through it, run by onnxruntime, for both.
    """
    ir = imported.ir
    if len(ir.inputs) != 1:
        raise SystolixError(f"{ir.name}: models with {len(ir.inputs)} inputs are not supported yet (one input)")
    info = ir.inputs[0]
    q = ir.input_quant.get(info.name)
    if (inputs is None) == (random is None):
        raise SystolixError("give exactly one of --inputs FILE and --random N")
    if random is not None:
        if random < 1:
            raise SystolixError(f"--random must be a positive number of samples, not {random}")
        if info.dtype not in ("int8", "uint8"):
            raise SystolixError(f"input {info.name!r} has type {info.dtype}; --random makes int8/uint8 codes")
        dtype = np.dtype(info.dtype)
        lo, hi = np.iinfo(dtype).min, np.iinfo(dtype).max
        x = np.random.default_rng(seed).integers(lo, hi + 1, size=(random, *info.shape[1:])).astype(dtype)
        return info.name, x, x, None, None, None
    canon = imported.canonical
    user_name = getattr(canon, "input_map", {}).get(info.name, info.name) if canon is not None else info.name
    prefix = prefix if prefix is not None else input_prefix(imported, info.name)
    if prefix is not None:
        x, y = load_inputs(inputs, user_name, (None, *info.shape[1:]), np.float32, notes)
        codes = run_input_prefix(prefix, x)
        return info.name, codes, codes, y, None, x
    if q is not None:
        x, y = load_inputs(inputs, user_name, (None, *info.shape[1:]), np.float32, notes)
        ref = _onnx_quantize_linear(x, q)
        mine = quantize_linear(x, q.scale, int(q.zero_point), q.qmin, q.qmax).astype(q.np_dtype)
        return info.name, ref, mine, y, q, x
    x, y = load_inputs(inputs, user_name, (None, *info.shape[1:]), np.dtype(info.dtype), notes)
    return info.name, x, x, y, None, None


def simulate(model_path: str | Path, *, inputs: str | Path | None = None, random: int | None = None,
             backend: str = "golden", layers: bool = False, seed: int = 0,
             progress: Callable[[str, int, int], None] | None = None, config=None,
             clock_mhz: float | None = None, waveform: str | Path | None = None,
             trace_sample: int | None = None, runner=None, trace_layer: str | None = None,
             trace_depth: int | None = None) -> SimulationResult:
    """Run ``backend`` and onnxruntime on every sample and compare every output element.

    With ``layers`` every intermediate tensor is compared too. ``progress(stage, done, total)`` is
    called as samples complete. ``runner``: a backend object to use instead of ``backend`` (its ``name``
    names it; the link backend of ``systolix run``).
    """
    t0 = time.perf_counter()
    build = None
    if Path(model_path).is_dir():
        from systolix.compiler.build import load_build

        if config is not None:
            raise SystolixError(f"{model_path} is a build folder: its config.json is the configuration "
                                "(--array/--config apply to a model file)")
        build = load_build(model_path)
        model_path, config = build.model, build.config
    if config is None:
        from systolix.arch.config import AcceleratorConfig

        config = AcceleratorConfig.preset("8x8")
    if runner is not None:
        backend = runner.name
    elif backend == "auto":
        from .backends import default_backend

        backend = default_backend()
    if waveform is not None and backend != "verilator":
        raise SystolixError("--waveform needs --backend verilator")
    if waveform is None and (trace_sample, trace_layer, trace_depth) != (None, None, None):
        raise SystolixError("--trace-sample, --trace-layer and --trace-depth need --waveform FILE")
    if trace_depth is not None and trace_depth < 1:
        raise SystolixError(f"--trace-depth must be at least 1 (levels of the module hierarchy), not {trace_depth}")
    imported = import_model(model_path)
    ir: Model = imported.ir
    if not ir.quantized:
        raise SystolixError(f"{ir.name} is a float model; quantize it first: systolix quantize {model_path} "
                            "--calib DATA -o MODEL_int8.onnx")
    config = _check_add_variant(ir, config)
    if trace_layer is not None and trace_layer not in {layer.name for layer in ir.layers}:
        raise SystolixError(f"--trace-layer {trace_layer!r} is not a layer of {ir.name}; layers: "
                            + ", ".join(layer.name for layer in ir.layers))
    if runner is None:
        runner = get_backend(backend, config, layers, **({"build": build} if build is not None and backend != "golden"
                                                         else {}))
    input_notes: list[str] = []
    prefix = None
    if build is not None and build.input_prefix is not None:
        prefix = onnx.load(str(build.input_prefix))
        if input_prefix(imported, ir.inputs[0].name) is None:
            raise SystolixError(f"{build.folder}: input_prefix.onnx does not belong to its model.onnx; compile again")
    name, x_ref, x_backend, labels, q, x_float = prepare_inputs(imported, inputs, random, seed, input_notes, prefix)
    n = len(x_ref)
    seconds = {"import": time.perf_counter() - t0}
    compared = [(layer.name, layer.op, layer.output) for layer in ir.layers if layer.output in
                {o.name for o in ir.outputs} or layers]
    ref_names = list(dict.fromkeys(t for _, _, t in compared))

    t = time.perf_counter()
    # onnxruntime's QLinearAdd picks its kernel form from the batched shapes: an add of one element per sample
    # is the swapped scalar form at batch 1 but the general form in a batch. The hardware and the golden model
    # compute one sample at a time, as a deployed accelerator does, so such models are run sample by sample.
    one = any(isinstance(layer, Add) and int(np.prod(layer.out_shape[1:])) == 1 for layer in ir.layers)
    reference = run_onnxruntime(imported.reference, {name: x_ref}, ref_names, chunk=1 if one else 128,
                                progress=None if progress is None else lambda d: progress("onnxruntime", d, n))
    seconds["onnxruntime"] = time.perf_counter() - t

    t = time.perf_counter()
    produced = runner.run(ir, {name: x_backend},
                          progress=None if progress is None else lambda d: progress(backend, d, n))
    seconds[backend] = time.perf_counter() - t
    if getattr(runner, "build_seconds", None) is not None and hasattr(runner, "simulate_seconds"):
        # a hardware backend: getting the simulator (a build, or the cache) apart from simulating
        del seconds[backend]
        seconds[f"{backend} build"] = runner.build_seconds
        seconds[backend] = runner.simulate_seconds

    t = time.perf_counter()
    comparison = Comparison(samples=n)
    if q is not None:
        compare_tensors(comparison, "input quantization", "QuantizeLinear", name, x_backend, x_ref)
    for layer_name, op, tensor in compared:
        compare_tensors(comparison, layer_name, op, tensor, produced.get(tensor), reference[tensor])
    accuracy = {}
    if labels is not None:
        out = ir.outputs[0].name
        accuracy = {"onnxruntime": float(np.mean(reference[out].reshape(n, -1).argmax(1) == labels)),
                    backend: float(np.mean(produced[out].reshape(n, -1).argmax(1) == labels))}
    seconds["compare"] = time.perf_counter() - t
    float_execution = []
    if imported.canonical is not None and imported.canonical.converted:
        # onnxruntime runs some groups of the original graph in float: say how far that is from the
        # integer meaning the canonical form (and the hardware) computes.
        from systolix.frontend.canonical_report import float_execution_report

        t = time.perf_counter()
        float_execution = float_execution_report(imported.original, imported.canonical, {name: x_ref},
                                                 None if x_float is None else {name: x_float})
        seconds["float_report"] = time.perf_counter() - t
    waveform_info = None
    if waveform is not None:
        sample = trace_sample
        if sample is None:
            sample = comparison.first_mismatch.sample if comparison.first_mismatch is not None else 0
        seconds["waveform"] = _write_waveform(ir, name, x_backend, sample, config, layers, waveform, build,
                                              trace_layer, trace_depth)
        waveform_info = {"path": str(waveform), "sample": int(sample), "layer": trace_layer, "depth": trace_depth,
                         "bytes": Path(waveform).stat().st_size}
    seconds["total"] = time.perf_counter() - t0
    hardware = None
    if getattr(runner, "last_run", None) is not None:
        clock_source = "given" if clock_mhz is not None else ""
        if clock_mhz is None:
            from systolix.cache import measured_fmax
            from systolix.hdl.export import verilog_for

            text = build.verilog if build is not None else verilog_for(runner.config)
            fmax = measured_fmax(text, build.folder if build is not None else None)
            if fmax is not None:
                clock_mhz, clock_source = fmax
        hardware = hardware_report(runner, seconds[backend], clock_mhz, clock_source)
    # a build folder's model is model.onnx: title it with the model the user compiled
    title = ir.name if build is None else f"{build.report.get('model', ir.name)} (build {build.folder.name})"
    return SimulationResult(title, backend, comparison, ir.converted, ir.host_ops, accuracy, seconds,
                            float_execution, hardware, imported.normalized, tuple(input_notes), waveform_info)


def _check_add_variant(ir: Model, config):
    """The configuration's QLinearAdd variant must be the local onnxruntime's when the model has an Add."""
    from systolix.compiler.compile import resolve_add_variant

    local = resolve_add_variant(dataclasses.replace(config, add_variant="auto")).add_variant
    if config.add_variant == "auto":
        return dataclasses.replace(config, add_variant=local)
    if config.add_variant != local and any(isinstance(layer, Add) for layer in ir.layers):
        raise SystolixError(f"this build reproduces onnxruntime's {config.add_variant} QLinearAdd kernel but the "
                            f"local onnxruntime runs the {local} one, so their results may differ; compare on a "
                            f"machine with the {config.add_variant} kernel or compile with add_variant {local}")
    return config


def _write_waveform(ir, name, x, sample, config, layers, path, build, trace_layer=None, trace_depth=None) -> float:
    """Re-run one sample on Verilator with tracing on and write its waveform (FST, or VCD by extension)."""
    if not 0 <= sample < len(x):
        raise SystolixError(f"--trace-sample {sample} is not one of the {len(x)} samples")
    from systolix.outputs import temporary_beside

    from .backends import get_backend

    started = time.perf_counter()
    with temporary_beside(path) as tmp:  # written under a temporary name (same suffix), renamed when complete
        tracer = get_backend("verilator", config, layers, trace_sample=0, trace_path=str(tmp),
                             trace_layer=trace_layer, trace_depth=trace_depth,
                             **({"build": build} if build is not None else {}))
        tracer.run(ir, {name: x[sample:sample + 1]})
    return time.perf_counter() - started


def latency_text(hw: dict) -> str:
    """The latency line of a :func:`hardware_report`: at the measured Fmax (or the given clock), or how to measure
    it (the console and the HTML report say the same)."""
    if hw.get("latency_ms") is None:
        return ("latency: no Fmax measured for this design (systolix synth BUILD --device ecp5-85f, or give "
                "--clock-mhz)")
    source = "given clock" if hw.get("clock_source") == "given" else f"Fmax: {hw.get('clock_source')}"
    return f"latency {hw['latency_ms']:.3f} ms per inference at {hw['clock_mhz']:.1f} MHz ({source})"


def hardware_report(runner, wall_seconds: float, clock_mhz: float | None, clock_source: str = "") -> dict:
    """Measured cycles per layer next to the compiler's prediction, MACs and array utilisation; the latency at
    ``clock_mhz`` (the Fmax nextpnr measured for the design, or a clock the user gave), None without one."""
    run, program, config = runner.last_run, runner.program, runner.config
    wall_seconds = getattr(runner, "simulate_seconds", 0.0) or wall_seconds  # without the (cached) build
    macs_per_cycle = config.rows * config.cols
    per_instruction = {pc: float(np.mean(c)) for pc, c in run.layer_cycles.items()}
    layers = []
    for plan in program.layers:
        measured = sum(per_instruction.get(i, 0.0) for i in plan.instructions)
        layers.append({"name": plan.name, "op": plan.op, "instructions": list(plan.instructions),
                       "macs": plan.macs, "cycles": measured, "predicted_cycles": plan.cycles,
                       "utilization": plan.macs / (measured * macs_per_cycle) if measured and plan.macs else 0.0})
    cycles = float(np.mean(run.cycles))
    macs = sum(plan.macs for plan in program.layers)
    total_cycles = float(np.sum(run.cycles))
    return {"cycles": cycles, "predicted_cycles": program.predicted_cycles,
            "config": config.to_dict(), "clock_mhz": clock_mhz, "clock_source": clock_source,
            "latency_ms": cycles / (clock_mhz * 1e3) if clock_mhz else None,
            "utilization": macs / (cycles * macs_per_cycle),
            "simulated_cycles_per_second": total_cycles / wall_seconds if wall_seconds else 0.0,
            "samples_per_second": len(run.cycles) / wall_seconds if wall_seconds else 0.0,
            "hardware_layers": layers}
