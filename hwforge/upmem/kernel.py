"""The contract between a DPU kernel emitter, the generic host program and the emulator.

A kernel emitter (LOCALUT LUT kernel, integer MAC baseline, bit-serial baseline) returns one `DpuKernel`: the
complete DPU C source, the fields of its ``__host`` argument block, and for every DPU the argument values and
the bytes of each ``__mram_noinit`` input array. The generic host C program (one template for every kernel)
reads those per-DPU buffers from files the compiler writes, pushes them to the DPUs with
``dpu_prepare_xfer``/``dpu_push_xfer``, launches, and pulls ``output_symbol`` back. The same DPU C and host C
build for a real UPMEM system (``dpu-upmem-dpurte-clang``) and for hwforge's host-side emulation.

Operation counts for the cost model come from ``HWF_COUNT(kind, n)`` statements in the DPU C (header
``hwforge_count.h``, shipped with the emulation): they compile to nothing with the real SDK and count per
tasklet in the emulator. Kinds: ``HWF_ALU`` (add, sub, logic, shift, compare: one instruction each),
``HWF_MUL8`` (8x8-bit multiply: one instruction), ``HWF_MUL32`` (32-bit multiply, done in software on a DPU),
``HWF_WRAM_LOAD`` and ``HWF_WRAM_STORE`` (WRAM accesses), ``HWF_BRANCH`` (loop/branch overhead).
DMA calls and bytes (``mram_read``/``mram_write``) are counted by the emulator itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: C types allowed in the ``__host`` argument block (all 4 or 8 bytes, so the block stays 8-byte aligned).
ARG_TYPES = ("uint32_t", "int32_t", "uint64_t")


@dataclass(frozen=True)
class DpuKernel:
    """One DPU program and the data every DPU gets.

    ``args`` are the ``__host`` block's fields in declaration order as ``(c_type, name)``; the block is named
    ``DPU_INPUT_ARGUMENTS`` in the DPU C. ``dpu_args[d][name]`` is DPU ``d``'s value of each field.
    ``mram_inputs[d][symbol]`` is the content of the ``__mram_noinit`` array ``symbol`` on DPU ``d``; each
    symbol's per-DPU lengths are padded to one size (a multiple of 8) because ``dpu_push_xfer`` moves one
    size to every DPU. ``output_symbol`` names the array the host reads back, ``output_bytes`` bytes from
    each DPU (a multiple of 8).
    """

    name: str
    dpu_source: str
    nr_tasklets: int
    args: tuple[tuple[str, str], ...]
    dpu_args: tuple[dict[str, int], ...]
    mram_inputs: tuple[dict[str, bytes], ...]
    output_symbol: str
    output_bytes: int
    meta: dict = field(default_factory=dict)  # kernel-specific facts for reports (scheme, p, LUT bytes, ...)

    @property
    def nr_dpus(self) -> int:
        return len(self.dpu_args)

    def __post_init__(self) -> None:
        if not 1 <= self.nr_tasklets <= 24:
            raise ValueError(f"{self.name}: nr_tasklets must be 1..24, got {self.nr_tasklets}")
        if not (len(self.dpu_args) == len(self.mram_inputs) >= 1):
            raise ValueError(f"{self.name}: dpu_args and mram_inputs must list the same DPUs (at least one)")
        for c_type, arg in self.args:
            if c_type not in ARG_TYPES:
                raise ValueError(f"{self.name}: argument {arg!r} has type {c_type}; allowed: {ARG_TYPES}")
        names = [arg for _, arg in self.args]
        for d, values in enumerate(self.dpu_args):
            if sorted(values) != sorted(names):
                raise ValueError(f"{self.name}: DPU {d} arguments {sorted(values)} differ from {sorted(names)}")
        symbols = sorted(self.mram_inputs[0])
        for d, bufs in enumerate(self.mram_inputs):
            if sorted(bufs) != symbols:
                raise ValueError(f"{self.name}: DPU {d} MRAM inputs {sorted(bufs)} differ from {symbols}")
            for sym, data in bufs.items():
                if len(data) % 8:
                    raise ValueError(f"{self.name}: MRAM input {sym!r} on DPU {d} is {len(data)} bytes, "
                                     "not a multiple of 8")
        if self.output_bytes <= 0 or self.output_bytes % 8:
            raise ValueError(f"{self.name}: output_bytes must be a positive multiple of 8, got {self.output_bytes}")
