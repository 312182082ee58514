"""systolix: ONNX models to a systolic-array FPGA accelerator, bit-exact with onnxruntime."""

from .errors import SystolixError

__all__ = ["SystolixError"]
__version__ = "0.1.0"
