"""systolix: ONNX models to a systolic-array FPGA accelerator, bit-exact with onnxruntime.

The Python API (:mod:`systolix.api`)::

    model = systolix.load("model.onnx")
    q = model.quantize("calib.npz", out="model_int8.onnx")
    build = q.compile(config="8x8", out="build_8x8")
    result = build.simulate(inputs="test.npz", backend="verilator", layers=True)
    result.bit_exact, result.mismatches, result.report
"""

from .api import Build, Model, Quantization, Simulation, build, load, open_build, simulate
from .arch.config import AcceleratorConfig
from .errors import SystolixError

# systolix.quantize and systolix.synth are subpackages: their API functions are systolix.api.quantize and
# systolix.api.synth (or Model.quantize and Build.synth)
__all__ = ["AcceleratorConfig", "Build", "Model", "Quantization", "Simulation", "SystolixError", "build", "load",
           "open_build", "simulate"]
__version__ = "0.1.0"
