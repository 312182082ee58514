"""systolix.arch: the hardware contract that the HDL and the compiler both import.

The accelerator's configuration (:mod:`.config`), instruction set (:mod:`.isa`), per-channel parameter
layout (:mod:`.params`), the ADD unit's integer arithmetic and table format (:mod:`.add_arith`), the
loadable memories and their word layouts (:mod:`.memory`) and the units' pipeline latencies
(:mod:`.latency`). Nothing here imports :mod:`systolix.hdl` or :mod:`systolix.compiler`.
"""
