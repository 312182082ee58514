"""systolix.quantize.golden: the integer golden model, one onnxruntime operator per module.

Plain functions on numpy arrays with explicit parameters; each reproduces onnxruntime's CPU
kernel bit for bit (see the module docstrings for the exact arithmetic).
"""

from systolix.quantize.golden.lookup import lookup
from systolix.quantize.golden.max_pool import max_pool
from systolix.quantize.golden.qgemm import matmul_accumulate, qgemm
from systolix.quantize.golden.qlinear_add import fma_f32, probe_qlinear_add_variant, qlinear_add
from systolix.quantize.golden.qlinear_average_pool import qlinear_average_pool
from systolix.quantize.golden.qlinear_concat import qlinear_concat
from systolix.quantize.golden.qlinear_conv import conv_accumulate, qlinear_conv
from systolix.quantize.golden.qlinear_global_average_pool import qlinear_global_average_pool
from systolix.quantize.golden.qlinear_mul import qlinear_mul
from systolix.quantize.golden.quantize_linear import dequantize_linear, quantize_linear
from systolix.quantize.golden.table import leaky_relu_table, requant_table, unary_table

__all__ = [
    "conv_accumulate",
    "dequantize_linear",
    "fma_f32",
    "leaky_relu_table",
    "lookup",
    "matmul_accumulate",
    "max_pool",
    "probe_qlinear_add_variant",
    "qgemm",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_concat",
    "qlinear_conv",
    "qlinear_global_average_pool",
    "qlinear_mul",
    "quantize_linear",
    "requant_table",
    "unary_table",
]
