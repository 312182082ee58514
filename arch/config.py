"""The one configuration object of the accelerator.

`AcceleratorConfig` holds the few numbers that size the hardware (array shape, widths, memory
depths). Everything else -- address widths, bytes of on-chip memory, multiply-accumulates per cycle
-- is derived from them as properties, so the HDL, the compiler and the simulators all read the
same values from the same object. It is frozen and checked on construction; it round-trips through
JSON so a build can be reproduced from a file.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from systolix.errors import SystolixError

__all__ = ["ADD_VARIANTS", "PRESETS", "VECTOR_UNITS", "AcceleratorConfig"]

#: Values of ``AcceleratorConfig.add_variant``.
ADD_VARIANTS = ("auto", "avx2", "sse2")

#: The vector engine's optional units, in canonical order, and the opcode each executes
#: (``systolix.arch.isa.OPCODE_UNIT``): ``maxpool`` (MAXPOOL), ``lut`` (LUT, and the copies of a Concat),
#: ``add`` (ADD, with its per-lane table memories), ``mul`` (MUL), ``resize`` (RESIZE). The MATMUL engine is
#: always built.
VECTOR_UNITS = ("maxpool", "lut", "add", "mul", "resize")


def _check_positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise SystolixError(f"{name} must be a positive int, not {value!r}")


def _address_width(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


@dataclasses.dataclass(frozen=True)
class AcceleratorConfig:
    """Size of the accelerator: systolic array shape, data widths, on-chip memory depths.

    Parameters
    ----------
    rows : int
        Rows of the systolic array: the length of an activation vector (the reduction dimension
        handled per pass).
    cols : int
        Columns of the systolic array: output channels computed in parallel.
    data_width : int
        Width of activations and weights in bits. Only 8 (int8) is supported.
    acc_width : int
        Width of the accumulators in bits. Only 32 is supported: onnxruntime accumulates in int32
        (with wrap-around), and bit-exactness depends on it.
    act_buffer_depth : int
        Entries of the activation buffer, each one `rows`-element vector.
    weight_buffer_depth : int
        Entries of the weight buffer, each one `cols`-element weight row.
    acc_memory_depth : int
        Entries of the accumulator memory, each one `cols`-element vector of accumulators.
    param_memory_depth : int
        Entries of the per-channel parameter memory (bias, requantization mantissa and exponent).
    program_memory_depth : int
        Instructions the controller's program memory holds.
    lut_memory_depth : int
        Rows of the lookup-table memory: 256 per table (one copy per lane in the hardware).
    add_table_depth : int
        Entries of the ADD unit's table memory: 256 per residual Add (one copy per lane).
    add_variant : {"auto", "avx2", "sse2"}
        Which of onnxruntime's two QLinearAdd kernels the ADD tables reproduce. It changes the tables
        the compiler writes, not the hardware. ``"auto"`` is resolved by the compiler to what the local
        onnxruntime uses; a build folder always records the resolved value.
    pe_product_register : bool
        Register the multiplier's operands and its product inside each processing element (two more
        cycles of latency; the DSP multiplier then sits between registers: a shorter critical path).
    vector_units : tuple of str
        Which of the vector engine's units (`VECTOR_UNITS`) are built; default all. A unit left out
        costs no logic and no memory (no ``lut`` memory without ``lut``, no ADD tables without ``add``);
        the compiler refuses a model with a layer that needs it.
    narrow_program : bool
        Keep the program in ``isa.PIECE_BITS``-bit pieces, ``isa.INSTRUCTION_PIECES`` words per instruction,
        fetched one per cycle into the controller's instruction register (``INSTRUCTION_PIECES - 1`` more
        cycles per instruction): the program memory then takes one 16-bit-wide block RAM column instead of
        one per 16 bits of an instruction, and the load bus and host staging register shrink to the next
        widest word. Off in the presets.
    spram_buffers : bool
        Build ``act`` and ``wgt`` as single-port memories, each with one address for its reads and writes, as
        the iCE40 UltraPlus's SB_SPRAM256KA are (``synth_ice40 -spram`` infers them): ``act`` as two banks
        of ``act_buffer_depth / 2`` rows (a power of two; the bank is the row's top address bit), the compiler
        placing every layer's output in the other bank than its inputs, so a layer reads one bank while it
        writes the other; ``wgt`` with two 8-bit rows per 16-bit word on a 1x1 array (whole words: rows are
        loaded in order from an even row). Off in the presets.
    """

    rows: int
    cols: int
    data_width: int = 8
    acc_width: int = 32
    act_buffer_depth: int = 4096
    weight_buffer_depth: int = 2048
    acc_memory_depth: int = 2048
    param_memory_depth: int = 512
    program_memory_depth: int = 512
    lut_memory_depth: int = 2048
    add_table_depth: int = 1024
    add_variant: str = "auto"
    pe_product_register: bool = True
    vector_units: tuple[str, ...] = VECTOR_UNITS
    narrow_program: bool = False
    spram_buffers: bool = False

    def __post_init__(self) -> None:
        units = self.vector_units
        if isinstance(units, str) or not isinstance(units, tuple | list) or \
                not all(isinstance(u, str) for u in units):
            raise SystolixError(f"vector_units must be a list of unit names, not {units!r}")
        unknown = [u for u in units if u not in VECTOR_UNITS]
        if unknown or len(set(units)) != len(units):
            raise SystolixError(f"vector_units must name each of {', '.join(VECTOR_UNITS)} at most once, "
                                f"not {list(units)!r}")
        # Canonical order (a JSON list round-trips to the same, equal, hashable configuration).
        object.__setattr__(self, "vector_units", tuple(u for u in VECTOR_UNITS if u in units))
        for field in dataclasses.fields(self):
            if field.name in ("pe_product_register", "add_variant", "vector_units", "narrow_program", "spram_buffers"):
                continue
            _check_positive_int(field.name, getattr(self, field.name))
        if self.data_width != 8:
            raise SystolixError(f"data_width must be 8 (only int8 is supported), not {self.data_width!r}")
        if self.acc_width != 32:
            raise SystolixError(
                f"acc_width must be 32 (onnxruntime accumulates in int32), not {self.acc_width!r}"
            )
        for name in ("pe_product_register", "narrow_program", "spram_buffers"):
            if not isinstance(getattr(self, name), bool):
                raise SystolixError(f"{name} must be a bool, not {getattr(self, name)!r}")
        if self.add_variant not in ADD_VARIANTS:
            raise SystolixError(f"add_variant must be one of {', '.join(ADD_VARIANTS)}, not {self.add_variant!r}")
        if self.spram_buffers and (self.act_buffer_depth < 2 or self.act_buffer_depth & (self.act_buffer_depth - 1)):
            raise SystolixError(f"act_buffer_depth must be a power of two (two banks) with spram_buffers, "
                                f"not {self.act_buffer_depth!r}")
        for name, limit in (("lut_memory_depth", 1 << 12), ("add_table_depth", 1 << 12)):
            value = getattr(self, name)
            if value % 256 or value > limit:
                raise SystolixError(f"{name} must be a multiple of 256 (one table) up to {limit:,}, not {value!r}")

    # -- derived values -------------------------------------------------------------------------

    @property
    def macs_per_cycle(self) -> int:
        """Multiply-accumulates the array performs per clock cycle."""
        return self.rows * self.cols

    @property
    def operand_width(self) -> int:
        """Width of a multiplier operand after its zero point is subtracted (signed)."""
        return self.data_width + 1

    @property
    def act_buffer_bytes(self) -> int:
        """Size of the activation buffer in bytes."""
        return self.act_buffer_depth * self.rows * self.data_width // 8

    @property
    def weight_buffer_bytes(self) -> int:
        """Size of the weight buffer in bytes."""
        return self.weight_buffer_depth * self.cols * self.data_width // 8

    @property
    def acc_memory_bytes(self) -> int:
        """Size of the accumulator memory in bytes."""
        return self.acc_memory_depth * self.cols * self.acc_width // 8

    @property
    def act_addr_width(self) -> int:
        """Bits of an activation buffer address."""
        return _address_width(self.act_buffer_depth)

    @property
    def weight_addr_width(self) -> int:
        """Bits of a weight buffer address."""
        return _address_width(self.weight_buffer_depth)

    @property
    def acc_addr_width(self) -> int:
        """Bits of an accumulator memory address."""
        return _address_width(self.acc_memory_depth)

    @property
    def param_addr_width(self) -> int:
        """Bits of a parameter memory address."""
        return _address_width(self.param_memory_depth)

    @property
    def program_addr_width(self) -> int:
        """Bits of a program memory address."""
        return _address_width(self.program_memory_depth)

    @property
    def lut_addr_width(self) -> int:
        """Bits of a lookup-table memory address."""
        return _address_width(self.lut_memory_depth)

    @property
    def add_table_addr_width(self) -> int:
        """Bits of an ADD table memory address."""
        return _address_width(self.add_table_depth)

    def has_unit(self, unit: str) -> bool:
        """Whether the vector unit ``unit`` (one of `VECTOR_UNITS`) is built."""
        return unit in self.vector_units

    @property
    def act_bank_rows(self) -> int:
        """Rows of one ``act`` bank with ``spram_buffers`` (half the buffer), else the whole buffer."""
        return self.act_buffer_depth // 2 if self.spram_buffers else self.act_buffer_depth

    @property
    def hardware_dict(self) -> dict[str, Any]:
        """The fields that shape the hardware (all but ``add_variant``, which only changes the tables)."""
        values = self.to_dict()
        del values["add_variant"]
        # Defaults of the fields added for small devices: the same key (config ID, design key) as before them.
        if self.vector_units == VECTOR_UNITS:
            del values["vector_units"]
        for name in ("narrow_program", "spram_buffers"):
            if not values[name]:
                del values[name]
        return values

    # -- presets and serialisation --------------------------------------------------------------

    @classmethod
    def preset(cls, name: str) -> AcceleratorConfig:
        """Return the named preset (one of `PRESETS`).

        Raises
        ------
        SystolixError
            If there is no preset of that name.
        """
        try:
            return PRESETS[name]
        except (KeyError, TypeError):
            known = ", ".join(PRESETS)
            raise SystolixError(f"unknown accelerator preset {name!r}; known presets: {known}") from None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (JSON types only)."""
        values = dataclasses.asdict(self)
        values["vector_units"] = list(self.vector_units)
        return values

    def to_json(self) -> str:
        """The configuration as a JSON object (text), readable by `from_json`."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> AcceleratorConfig:
        """Build a configuration from a mapping of field names to values.

        Raises
        ------
        SystolixError
            On unknown or missing keys, or bad values.
        """
        if not isinstance(values, Mapping):
            raise SystolixError(f"accelerator config must be a JSON object, not {type(values).__name__}")
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise SystolixError(
                f"unknown key(s) in accelerator config: {', '.join(map(repr, unknown))}; "
                f"known keys: {', '.join(known)}"
            )
        missing = [name for name in ("rows", "cols") if name not in values]
        if missing:
            raise SystolixError(f"accelerator config lacks required key(s): {', '.join(missing)}")
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> AcceleratorConfig:
        """Parse a configuration from JSON text (as written by `to_json`).

        Raises
        ------
        SystolixError
            On malformed JSON, unknown or missing keys, or bad values.
        """
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise SystolixError(f"accelerator config is not valid JSON: {error}") from None
        return cls.from_dict(values)

    @classmethod
    def from_file(cls, path: str | Path) -> AcceleratorConfig:
        """Read a configuration from a JSON file.

        Raises
        ------
        SystolixError
            If the file cannot be read, or as `from_json`.
        """
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise SystolixError(f"cannot read accelerator config {str(path)!r}: {error}") from None
        try:
            return cls.from_json(text)
        except SystolixError as error:
            raise SystolixError(f"{path}: {error}") from None


#: Named configurations for an ECP5 LFE5U-85F: memory depths sized so that the bundled example,
#: mnist_cnn_2018 and both MLPerf Tiny int8 models fit the 8x8 preset (ResNet-8 needs 7,168 activation and
#: 9,816 weight rows there) within the 85F's 208 DP16KD. None of them suits an iCE40 UP5K (the 4x4 one needs
#: about twice its LUTs); "16x16" needs more multipliers than the 85F's 156 MULT18X18D
#: (``systolix.hdl.devices.check_fits`` says which resource a configuration exceeds on which device).
PRESETS: Mapping[str, AcceleratorConfig] = MappingProxyType({
    "4x4": AcceleratorConfig(
        rows=4, cols=4, act_buffer_depth=4096, weight_buffer_depth=16384, acc_memory_depth=512,
        param_memory_depth=256, program_memory_depth=128,
    ),
    "8x8": AcceleratorConfig(
        rows=8, cols=8, act_buffer_depth=8192, weight_buffer_depth=16384, acc_memory_depth=1024,
        param_memory_depth=256, program_memory_depth=128,
    ),
    "16x16": AcceleratorConfig(
        rows=16, cols=16, act_buffer_depth=4096, weight_buffer_depth=8192, acc_memory_depth=512,
        param_memory_depth=256, program_memory_depth=128,
    ),
})
