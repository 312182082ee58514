"""An accelerator configuration sized to an FPGA: ``systolix compile --device``.

The array is the largest square (16x16, 8x8, 4x4, 2x2) whose multipliers, logic cells, flip-flops and pins
fit the device (:func:`systolix.hdl.devices.estimate`); its memories are sized to what the model needs,
measured by compiling it once with memories as large as the instruction set addresses: ``act``, ``wgt``,
``prm`` and the program get exactly the rows the model uses, the tables whole 256-row tables, and the
accumulator memory starts at the presets' 2,048 rows and is halved (more, shorter chunks: more cycles, same
results) while the block RAMs exceed the device, down to the widest output row. A model is refused only
when no array fits the device with the memories it needs; the message names the array, each memory's
block RAMs and rows, the layer behind the largest ones, and the device's budget.
"""

from __future__ import annotations

from systolix.arch import isa
from systolix.arch.config import AcceleratorConfig
from systolix.errors import SystolixError
from systolix.frontend import ir
from systolix.hdl.devices import block_rams, estimate, get_device

from .compile import Program, compile_model

__all__ = ["ARRAYS", "config_for_device", "describe"]

#: Square arrays tried, largest first.
ARRAYS = (16, 8, 4, 2)
_LOGIC = ("DSP", "LUT4", "FF", "IO")


def _roomy(lanes: int, add_variant: str) -> AcceleratorConfig:
    """Memories as large as the instruction fields address (16-bit act/wgt rows, 12-bit prm/table rows)."""
    return AcceleratorConfig(rows=lanes, cols=lanes, act_buffer_depth=1 << 16, weight_buffer_depth=1 << 16,
                             param_memory_depth=1 << 12, program_memory_depth=1 << 12, lut_memory_depth=1 << 12,
                             add_table_depth=1 << 12, add_variant=add_variant)


def _sized(program: Program, lanes: int, add_variant: str, acc_depth: int) -> AcceleratorConfig:
    use = program.to_json()["memory_use"]

    def tables(n: int) -> int:
        return max(256, -(-n // 256) * 256)

    return AcceleratorConfig(rows=lanes, cols=lanes, act_buffer_depth=max(1, use["act_rows"]),
                             weight_buffer_depth=max(1, use["wgt_rows"]), acc_memory_depth=acc_depth,
                             param_memory_depth=max(1, use["prm_rows"]),
                             program_memory_depth=max(2, use["instructions"]),
                             lut_memory_depth=tables(use["lut_rows"]), add_table_depth=tables(use["addtab_entries"]),
                             add_variant=add_variant)


def _widest_row(program: Program) -> int:
    return max([i.out_w for i in program.instructions if i.opcode == isa.Opcode.MATMUL and i.mode != isa.Mode.DENSE]
               or [1])


def _largest(program: Program, field: str) -> str:
    plan = max(program.layers, key=lambda p: getattr(p, field))
    return f"layer {plan.name}: {getattr(plan, field):,}"


def config_for_device(model: ir.Model, device_name: str, *, add_variant: str = "auto") -> AcceleratorConfig:
    """The configuration for ``model`` on the device ``device_name`` (module docstring).

    Raises
    ------
    SystolixError
        When no array's logic fits the device (the smallest array's excess is named), or the memories the
        model needs exceed the device's block RAMs on every array whose logic fits (need and budget per
        memory, and the layers behind them), or the model cannot be compiled at all.
    """
    device = get_device(device_name)
    attempts = []
    for lanes in ARRAYS:
        small = AcceleratorConfig(rows=lanes, cols=lanes, act_buffer_depth=16, weight_buffer_depth=16,
                                  acc_memory_depth=16, param_memory_depth=16, program_memory_depth=16,
                                  lut_memory_depth=256, add_table_depth=256)
        need = estimate(small, device)
        over = [f"{r} needs about {need[r]:,} {device.cells.get(r, r)}, the device has {device.budget(r):,}"
                for r in _LOGIC if need[r] > device.budget(r)]
        if over:
            attempts.append(("logic", lanes, "; ".join(over)))
            continue
        program = compile_model(model, _roomy(lanes, add_variant))
        acc, floor = 2048, _widest_row(program)
        while True:
            config = _sized(program, lanes, add_variant, acc)
            blocks = block_rams(config, device)
            total = sum(blocks.values())
            if total <= device.bram_blocks or acc // 2 < floor:
                break
            acc //= 2
        if total <= device.bram_blocks and all(estimate(config, device)[r] <= device.budget(r) for r in _LOGIC):
            return config
        attempts.append(("memory", lanes, (config, blocks, total, program)))
    memory = [a for a in attempts if a[0] == "memory"]
    if not memory:
        _, lanes, why = attempts[-1]
        raise SystolixError(f"no accelerator fits {device.name} ({device.part}): even the {lanes}x{lanes} array's "
                            f"logic does not: {why}")
    _, lanes, (config, blocks, total, program) = min(memory, key=lambda a: a[2][2])
    use = program.to_json()["memory_use"]
    cell = device.cells.get("BRAM", "BRAM")
    parts = [f"act {blocks['act']} ({use['act_rows']:,} rows; largest tensor {_largest(program, 'act_rows')} rows)",
             f"wgt {blocks['wgt']} ({use['wgt_rows']:,} rows; {_largest(program, 'wgt_rows')} rows)",
             f"prm {blocks['prm']} ({use['prm_rows']:,} rows)",
             f"acc {blocks['acc']} ({config.acc_memory_depth:,} rows)",
             f"lut {blocks['lut']} ({config.lut_memory_depth:,} rows per lane)",
             f"ADD tables {blocks['tab']} ({config.add_table_depth:,} entries per lane)",
             f"prog {blocks['prog']} ({use['instructions']:,} instructions)"]
    raise SystolixError(f"the model does not fit {device.name} ({device.part}): on the {lanes}x{lanes} array its "
                        f"memories need {total:,} {cell} block RAMs, the device has {device.bram_blocks:,}: "
                        + ", ".join(parts))


def describe(config: AcceleratorConfig, device_name: str) -> str:
    """One line: the array, the memories and the estimated use of the device."""
    device = get_device(device_name)
    need = estimate(config, device)
    return (f"{device.name}: {config.rows}x{config.cols} array, act {config.act_buffer_depth:,} rows, wgt "
            f"{config.weight_buffer_depth:,}, acc {config.acc_memory_depth:,}, prm {config.param_memory_depth:,}, "
            f"lut {config.lut_memory_depth:,}, ADD tables {config.add_table_depth:,}, program "
            f"{config.program_memory_depth:,}; estimated " + ", ".join(
                f"{r} {need[r]:,}/{device.budget(r):,}" for r in ("BRAM", "DSP", "LUT4", "FF")))

