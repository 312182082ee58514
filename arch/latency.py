"""Pipeline latencies of the hardware units, as functions of the configuration.

The compiler's cycle model (:mod:`systolix.compiler.cycles`) and the HDL both read them here: each HDL unit
takes its pipeline depth from this module (or asserts that the pipeline it builds has this depth), and the
unit tests measure it against the simulated hardware. A unit whose depth does not depend on the
configuration still takes it, so every caller asks the same question the same way.

All values are clock cycles. "Latency" is from an input transfer to the output it produces when nothing
downstream stalls.
"""

from __future__ import annotations

from .config import AcceleratorConfig
from .isa import INSTRUCTION_PIECES

__all__ = [
    "ACCUMULATOR_STAGES",
    "ADD_UNIT_STAGES",
    "MUL_UNIT_STAGES",
    "PE_PRODUCT_STAGES",
    "REQUANTIZER_STAGES",
    "accumulator_latency",
    "add_unit_latency",
    "controller_dispatch_cycles",
    "program_fetch_extra_cycles",
    "controller_halt_cycles",
    "latencies",
    "lookup_unit_latency",
    "matmul_engine_fixed_cycles",
    "matmul_unit_drain_cycles",
    "matmul_unit_latency",
    "matmul_unit_pipeline_latency",
    "max_pool_unit_latency",
    "mul_unit_latency",
    "pe_product_latency",
    "requantizer_latency",
    "sync_reader_latency",
    "vector_engine_setup_cycles",
    "systolic_array_latency",
    "window_setup_cycles",
]

#: Register stages of the `Requantizer` (one per step of its integer pipeline).
REQUANTIZER_STAGES = 19
#: Register stages of the `AddUnit` (the table read is its stage 0).
ADD_UNIT_STAGES = 25
#: Register stages of the `MulUnit` (operands less their zero points, product, ..., the ADD unit's rounding).
MUL_UNIT_STAGES = 23
#: Register stages between a PE's ``x_in`` and its adder: the multiplier's operands, its product, the product
#: again next to the adder (with ``pe_product_register``).
PE_PRODUCT_STAGES = 3
#: Read, register the row read, add and write back (the sum leaves on its last tap).
ACCUMULATOR_STAGES = 3


def sync_reader_latency(config: AcceleratorConfig | None = None) -> int:
    """`SyncReader`: from a read request to its row on the output (the read, then the landing register)."""
    return 2


def pe_product_latency(config: AcceleratorConfig) -> int:
    """`ProcessingElement`: cycles by which ``psum_in`` lags the ``x_in`` it is combined with:
    `PE_PRODUCT_STAGES` with the multiplier's operand and product registers (``pe_product_register``), else 0."""
    return PE_PRODUCT_STAGES if config.pe_product_register else 0


def systolic_array_latency(config: AcceleratorConfig) -> int:
    """`SystolicArray`: from ``x_in[0]`` to ``psum_out[0]`` (add ``c`` for column ``c``).

    Element ``rows - 1`` of a vector is presented ``rows - 1`` cycles after element 0; the bottom PE of
    column 0 adds its product (after the operand and product registers, if any) into its registered partial
    sum.
    """
    return (config.rows - 1) + pe_product_latency(config) + 1


def matmul_unit_pipeline_latency(config: AcceleratorConfig) -> int:
    """`MatMulUnit`: from the transfer on ``x`` to the result being written into its output FIFO.

    The entry register (zero point subtracted), the grid, the output de-skew.
    """
    return 1 + systolic_array_latency(config) + (config.cols - 1)


def matmul_unit_latency(config: AcceleratorConfig) -> int:
    """`MatMulUnit`: from the transfer on ``x`` to ``y.valid`` (its output FIFO: write, output register)."""
    return matmul_unit_pipeline_latency(config) + 2


def matmul_unit_drain_cycles(config: AcceleratorConfig) -> int:
    """`MatMulUnit`: cycles after the last vector using a weight bank before that bank may be rewritten.

    The vector reaches the last column's PEs of grid row ``r`` ``cols + r`` cycles after its transfer and the
    rows of a tile are written in order, one per cycle (see `MatMulUnit.drain_cycles`).
    """
    return config.cols


def accumulator_latency(config: AcceleratorConfig | None = None) -> int:
    """`Accumulator`: from the ``last`` transfer of a sum to the sum on the output."""
    return ACCUMULATOR_STAGES


def requantizer_latency(config: AcceleratorConfig | None = None) -> int:
    """`Requantizer`: from an accumulator to its int8 code."""
    return REQUANTIZER_STAGES


def add_unit_latency(config: AcceleratorConfig | None = None) -> int:
    """`AddUnit`: from a pair of codes to their sum's code (the table read included)."""
    return ADD_UNIT_STAGES


def mul_unit_latency(config: AcceleratorConfig | None = None) -> int:
    """`MulUnit`: from a pair of codes to their product's code."""
    return MUL_UNIT_STAGES


def lookup_unit_latency(config: AcceleratorConfig | None = None) -> int:
    """`LookupUnit`: the table read, then the output register."""
    return 2


def max_pool_unit_latency(config: AcceleratorConfig | None = None) -> int:
    """`MaxPoolUnit`: from a window's last tap to its maximum."""
    return 1


def window_setup_cycles(config: AcceleratorConfig | None = None) -> int:
    """`WindowAddresser`: from ``start`` to the first item (the per-instruction products and limits)."""
    return 4


def controller_dispatch_cycles(config: AcceleratorConfig | None = None) -> int:
    """`Controller`: between an engine's ``done`` and the next engine's ``start`` (fetch and decode)."""
    return 2


def program_fetch_extra_cycles(config: AcceleratorConfig | None = None) -> int:
    """`Controller`: cycles a narrow program memory (``narrow_program``) adds to every instruction's fetch,
    HALT's too (one per piece after the first)."""
    return INSTRUCTION_PIECES - 1 if config is not None and config.narrow_program else 0


def vector_engine_setup_cycles(config: AcceleratorConfig | None = None) -> int:
    """`VectorEngine`: cycles from ``start`` to its first ``act`` read (its copy of the instruction, then the
    loop state, products and limits from it, then the rows the loops start from)."""
    return 2


def controller_halt_cycles(config: AcceleratorConfig | None = None) -> int:
    """`Controller`: cycles a HALT instruction adds to a run (its decode, then ``done``)."""
    return 2


def matmul_engine_fixed_cycles(config: AcceleratorConfig) -> int:
    """`MatMulEngine`: cycles of an instruction besides the streaming of its weight tiles.

    The first tile's rows (``rows``, through the weight reader), the pipelines behind the array
    (`MatMulUnit`, the accumulator, the parameter fetch -- one stage plus two for the first ``prm`` read --,
    the requantizer, the per-lane clamp register), start and done.
    """
    return (config.rows + (sync_reader_latency(config) - 1) + matmul_unit_latency(config)
            + accumulator_latency(config) + 3 + requantizer_latency(config) + 3)


def latencies(config: AcceleratorConfig) -> dict[str, int]:
    """The latencies the cycle model uses, by unit name (``matmul``, ``drain``, ``accumulator``,
    ``requantizer``, ``add``, ``mul``, ``sync_reader``, ``matmul_fixed``)."""
    return {
        "matmul": matmul_unit_latency(config),
        "drain": matmul_unit_drain_cycles(config),
        "accumulator": accumulator_latency(config),
        "requantizer": requantizer_latency(config),
        "add": add_unit_latency(config),
        "mul": mul_unit_latency(config),
        "sync_reader": sync_reader_latency(config),
        "matmul_fixed": matmul_engine_fixed_cycles(config),
    }
