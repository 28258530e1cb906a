"""The DPU kernel contract (`DpuKernel`) between the kernel emitters, the generic host program and the emulator,
and the generic host side of it: how work is split across DPUs (`grid`), the data files the host program reads
(`kernel_files`), the host program itself (`host_source`) and the Makefile for the real SDK (`makefile`).

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

The host side is one program for every kernel (templates/host.c.j2): it reads ``layout.txt``, ``args.bin`` and
one ``<symbol>.bin`` per MRAM input from a data directory that `kernel_files` writes. The kernels themselves are
in `hwforge.upmem.lutkernel` (LOCALUT) and `hwforge.upmem.baselines` (integer MAC, bit-serial).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from hwforge.errors import ConfigError
from hwforge.generated import header

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


@cache
def _env():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                              trim_blocks=False, lstrip_blocks=False)


def render(template: str, **values) -> str:
    return _env().get_template(template).render(**values)


def shard(n: int, nr_dpus: int) -> list[tuple[int, int]]:
    """Contiguous blocks of output channels, ``(start, count)`` per DPU; at most ``n`` DPUs get work."""
    if nr_dpus < 1:
        raise ConfigError(f"dpus must be >= 1, got {nr_dpus}")
    per = -(-n // min(nr_dpus, n))
    return [(s, min(per, n - s)) for s in range(0, n, per)]


#: Below this many output channels per DPU, the DPUs split the activation rows instead (see `grid`).
MIN_CHANNELS_PER_DPU = 8


def grid(m: int, n: int, nr_dpus: int) -> list[tuple[int, int, int, int]]:
    """Work of each DPU as ``(m_start, m_count, n_start, n_count)``; one rule for every kernel.

    Output channels go to DPUs in contiguous blocks while that leaves at least `MIN_CHANNELS_PER_DPU` per DPU.
    A layer with fewer channels (digits-fc2: 10 over 4 DPUs) would leave each DPU a few channels and all activation
    rows, and every kernel repeats per-row work on every DPU (LOCALUT: keys and slices; bit-serial: tables; MAC:
    tile copies); then the channels go in blocks of `MIN_CHANNELS_PER_DPU` (at least one block) and the remaining
    DPUs split the activation rows. Same DPU count and data for every kernel; never more DPUs than ``nr_dpus``."""
    if nr_dpus < 1:
        raise ConfigError(f"dpus must be >= 1, got {nr_dpus}")
    if -(-n // min(nr_dpus, n)) >= MIN_CHANNELS_PER_DPU:
        return [(0, m, s, c) for s, c in shard(n, nr_dpus)]
    nsh = shard(n, max(1, n // MIN_CHANNELS_PER_DPU))
    msh = shard(m, max(1, nr_dpus // len(nsh)))
    return [(ms, mc, ns, nc) for ms, mc in msh for ns, nc in nsh]


# ------------------------------------------------------------------------------------------------ host side
_SIZES = {"uint32_t": 4, "int32_t": 4, "uint64_t": 8}
_FORMATS = {"uint32_t": "<u4", "int32_t": "<i4", "uint64_t": "<u8"}


def pack_args(kernel: DpuKernel, values: dict[str, int]) -> bytes:
    """One DPU's ``DPU_INPUT_ARGUMENTS`` bytes with C struct alignment (fields 4 or 8 bytes, size rounded up)."""
    out = bytearray()
    align = 4
    for c_type, name in kernel.args:
        size = _SIZES[c_type]
        align = max(align, size)
        out += bytes(-len(out) % size)
        out += np.array([values[name]], dtype=_FORMATS[c_type]).tobytes()
    out += bytes(-len(out) % max(align, 8))  # 8-byte multiple: the SDK moves WRAM in 8-byte-aligned blocks
    return bytes(out)


def kernel_files(kernel: DpuKernel) -> dict[str, bytes]:
    """The data directory the generic host program reads: layout.txt, args.bin, one .bin per MRAM input.

    A symbol whose bytes are the same on every DPU (activations, tables) is stored once and broadcast
    (``dpu_broadcast_to``); the others hold every DPU's buffer back to back for ``dpu_push_xfer``.
    """
    args = b"".join(pack_args(kernel, values) for values in kernel.dpu_args)
    files = {"args.bin": args}
    lines = [f"nr_dpus {kernel.nr_dpus}", f"args_bytes {len(args) // kernel.nr_dpus}"]
    for symbol in sorted(kernel.mram_inputs[0]):
        bufs = [inputs[symbol] for inputs in kernel.mram_inputs]
        size = max(len(b) for b in bufs)
        if all(b == bufs[0] for b in bufs[1:]):
            files[f"{symbol}.bin"] = bufs[0]
            lines.append(f"broadcast {symbol} {size}")
        else:
            files[f"{symbol}.bin"] = b"".join(b.ljust(size, b"\0") for b in bufs)
            lines.append(f"symbol {symbol} {size}")
    lines.append(f"output {kernel.output_symbol} {kernel.output_bytes}")
    if kernel.meta.get("cycles_symbol"):
        lines.append(f"cycles {kernel.meta['cycles_symbol']}")
    files["layout.txt"] = ("\n".join(lines) + "\n").encode()
    return files


MAX_SYMBOLS = 8


def host_source() -> str:
    """The generic host program (one for every kernel and layer)."""
    config = {"max_symbols": MAX_SYMBOLS}
    return render("host.c.j2", max_symbols=MAX_SYMBOLS, header=header("hwforge.upmem.dpu_kernel.host_source", config))


def count_header_stub() -> str:
    """``hwforge_count.h`` for real DPU builds: the counters compile to nothing (the emulator ships its own)."""
    return render("hwforge_count_stub.h.j2", header=header("hwforge.upmem.dpu_kernel.count_header_stub", {}))


def count_header() -> str:
    """``hwforge_count.h`` for an artifact: the emulator's header (counters that compile to nothing without
    ``HWFORGE_EMULATION``) behind a generated-file header, or `count_header_stub` if the emulator's is absent."""
    from hwforge.upmem.emulator import include_dir

    path = include_dir() / "hwforge_count.h"
    if not path.exists():
        return count_header_stub()
    config = {"copy_of": "hwforge.upmem.emu/include/hwforge_count.h"}
    return header("hwforge.upmem.dpu_kernel.count_header", config) + "\n" + path.read_text()


def makefile(layers: list[str], nr_tasklets: int) -> str:
    """Makefile for the real UPMEM toolchain (one DPU binary per layer, one host program)."""
    return render("Makefile.j2", layers=layers, nr_tasklets=nr_tasklets)
