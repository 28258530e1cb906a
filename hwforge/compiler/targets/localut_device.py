"""Device side of the `localut` target: pick and emit a layer's DPU kernel, run it on the emulator, cost it.

Kept apart from the target class so the benchmark can drive single GEMMs through exactly the code the target
uses (kernel choice, host data files, emulation, decoding, cost model) without an IR graph.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

import hwforge.upmem as upmem
from hwforge.errors import ConfigError, InternalError
from hwforge.options import OptionError, Options, option
from hwforge.testing import faults
from hwforge.upmem import dpu_kernel
from hwforge.upmem.dpu_kernel import DpuKernel

SCHEMES = ("full", "weight-canonical", "activation-canonical", "joint")
#: Deliberate faults (tests only, `hwforge.testing.faults`): every kernel can drop its last K group; the LUT kernel
#: can also read the slice of the wrong activation group.
FAULTS = ("drop_last_k_group", "slice_off_by_one")
DEFAULT_TABLE_BYTES = 1 << 20  # MRAM budget of the tables when p is not given
DEFAULT_SLICE_BYTES = 512  # WRAM slice (= MRAM bytes per built slice) at most, when p is not given
_LUT_FAULT = {"drop_last_k_group": "skip_last_group", "slice_off_by_one": "slice_off_by_one"}


KERNELS = ("localut", "mac", "bitserial")
faults.declare("localut", FAULTS)


def auto_p(wbits: int, abits: int, scheme: str, tasklets: int) -> int:
    """The default p: the largest whose tables take at most `DEFAULT_TABLE_BYTES` of MRAM and whose slice at most
    `DEFAULT_SLICE_BYTES`.

    The kernel builds one slice per activation row and group, so the slice size sets the MRAM traffic, and it
    grows as ``2**(p * wbits)`` while the lookups only fall as 1/p: the benchmark's best p has a slice of at most
    about 512 bytes on the digits layers (W1A1 p=8, W2A2 p=4, W3A3 p=2, W4A4 p=2, which these caps give); larger
    layers gain a little from a larger p (``--set p=...``). The 1 MiB table cap keeps artifacts and host-to-DPU
    pushes small."""
    from hwforge.ir.quant_lowbit import odd_levels
    from hwforge.upmem import lut

    levels = odd_levels(wbits)
    p = upmem.max_p(wbits, abits, scheme, tasklets, w_levels=levels, mram_table_budget=DEFAULT_TABLE_BYTES)
    while p > 1 and lut.lut_layout(scheme, p, wbits, abits, levels).slice_bytes > DEFAULT_SLICE_BYTES:
        p -= 1
    return p


@dataclass(frozen=True)
class LocalutOptions(Options):
    """The `localut` target's options. ``p=0`` means "choose" (`auto_p`); parsing resolves it, so an artifact's
    manifest always records the p its kernels use."""

    OWNER: ClassVar[str] = "localut"

    wbits: int = option(2, "weight bits", lo=1, hi=4)
    abits: int = option(2, "activation bits", lo=1, hi=4)
    kernel: str = option("localut", "localut (LUT kernel), mac (integer MAC baseline), bitserial (T-MAC-style "
                                    "baseline)", choices=KERNELS)
    scheme: str = option("full", "LUT scheme (kernel localut)", choices=SCHEMES)
    p: int = option(0, "weight/activation pairs per look-up; 0: the largest with a slice <= 512 B and tables "
                       "<= 1 MiB (W1A1 8, W2A2 4, W3A3/W4A4 2); a p that does not fit WRAM/MRAM is refused", lo=0,
                    hi=8)
    g: int = option(4, "bit-serial group size (kernel bitserial)", choices=(2, 4, 8))
    dpus: int = option(8, "DPUs per layer", lo=1, hi=2560)
    tasklets: int = option(16, "tasklets per DPU", lo=1, hi=24)
    seed: int = option(0, "seed of verify's extra run on random activation codes", lo=0, hi=2**31 - 1)

    def __post_init__(self) -> None:
        self.check_fields()
        if self.kernel != "localut":
            return
        from hwforge.ir.quant_lowbit import odd_levels
        from hwforge.upmem import lut

        lut.check_config(self.scheme, max(self.p, 1), self.wbits, self.abits)
        best = upmem.max_p(self.wbits, self.abits, self.scheme, self.tasklets, w_levels=odd_levels(self.wbits))
        if self.p > best:
            raise OptionError(self.OWNER, "p", self.p,
                              f"is too large: the {self.scheme} LUT for W{self.wbits}A{self.abits} fits WRAM/MRAM "
                              f"only up to p={best} with {self.tasklets} tasklets")

    @classmethod
    def from_fields(cls, kwargs: Mapping[str, Any]) -> LocalutOptions:
        return cls(**kwargs).resolved()

    def resolved(self) -> LocalutOptions:
        """These options with ``p=0`` replaced by `auto_p` (LUT kernel only; the baselines ignore p)."""
        if self.kernel == "localut" and self.p == 0:
            return dataclasses.replace(self, p=auto_p(self.wbits, self.abits, self.scheme, self.tasklets))
        return self


def build_kernel(kernel_name: str, wc: np.ndarray, levels: np.ndarray, ac: np.ndarray, options: LocalutOptions,
                 nr_dpus: int | None = None, fault: str | None = None) -> DpuKernel:
    """One GEMM's kernel (``kernel_name`` = localut, mac or bitserial) for weight codes ``wc`` (N x K) and
    activation codes ``ac`` (M x K). ``fault`` (tests only, see `hwforge.testing.faults`) breaks it on purpose."""
    dpus = nr_dpus or options.dpus
    common = (wc, levels, ac, options.wbits, options.abits)
    if kernel_name == "localut":
        if options.p == 0:
            raise ConfigError("localut kernel: p=0 is unresolved; build options with LocalutOptions.from_sets")
        return upmem.localut_kernel(*common, options.p, options.scheme, dpus, options.tasklets,
                                    fault=_LUT_FAULT[fault] if fault else None)
    if fault == "slice_off_by_one":
        raise ConfigError(f"fault slice_off_by_one applies to the LUT kernel only, not {kernel_name!r}")
    if kernel_name == "mac":
        return upmem.mac_kernel(*common, dpus, options.tasklets, fault=fault)
    if kernel_name == "bitserial":
        return upmem.bitserial_kernel(*common, dpus, options.tasklets, g=options.g, fault=fault)
    raise ConfigError(f"unknown kernel {kernel_name!r}")


def make_kernel(graph, node, ac: np.ndarray, options: LocalutOptions, fault: str | None = None) -> DpuKernel:
    """The kernel of one ``lowbit_matmul`` node for input codes ``ac``."""
    wc = np.asarray(graph.constant_value(node.inputs[1]), dtype=np.int64)
    levels = np.asarray(graph.constant_value(node.inputs[2]), dtype=np.int64)
    return build_kernel(options.kernel, wc, levels, np.asarray(ac, dtype=np.int64), options, fault=fault)


def decode(kernel: DpuKernel, raw: bytes) -> np.ndarray:
    if kernel.meta.get("kernel") == "localut":
        return np.asarray(upmem.decode_localut_output(kernel, raw), dtype=np.int64)
    return upmem.decode_output(kernel, raw)


kernel_files = upmem.kernel_files
host_source = upmem.host_source
makefile = upmem.makefile


count_header = dpu_kernel.count_header
"""``dpu/hwforge_count.h`` of the artifact: the emulator's counting header behind a generated-file header."""


_FACT_KEYS = ("kernel", "m", "k", "n", "scheme", "p", "g", "wram_bytes", "lut_table_bytes", "lut_image_bytes",
              "lut_bytes", "reorder_bytes", "weight_bytes_per_dpu", "fault")


def layer_facts(kernel: DpuKernel) -> dict[str, Any]:
    """Kernel facts for reports (JSON-friendly, deterministic)."""
    facts = {k: kernel.meta[k] for k in _FACT_KEYS if k in kernel.meta and kernel.meta[k] is not None}
    facts["dpus"] = kernel.nr_dpus
    facts["tasklets"] = kernel.nr_tasklets
    facts["mram_input_bytes_per_dpu"] = sum(len(v) for v in kernel.mram_inputs[0].values())
    return facts


def check_shipped(artifact_dir: Path, layer: str, kernel: DpuKernel) -> None:
    """The kernel rebuilt from the artifact's IR and inputs must be the one the artifact ships (what is emulated,
    or built with the SDK, is exactly what the artifact says)."""
    if (artifact_dir / "dpu" / f"{layer}.c").read_text() != kernel.dpu_source:
        raise ConfigError(f"{artifact_dir}: dpu/{layer}.c does not match the artifact's IR and options")
    for fname, data in kernel_files(kernel).items():
        if (artifact_dir / "data" / layer / fname).read_bytes() != data:
            raise ConfigError(f"{artifact_dir}: data/{layer}/{fname} does not match the artifact's IR and inputs")


@dataclass
class KernelRun:
    output: np.ndarray          # M x N int64, decoded from the DPUs' output buffers
    report: dict[str, Any]      # modelled cycles/time, counts, DMA and host-transfer bytes
    stats: dict[str, Any]       # the emulator's raw stats


def cost_report(stats: dict[str, Any], nr_tasklets: int) -> dict[str, Any]:
    """Cost-model figures of one launch from the emulator's counts (`hwforge.upmem.cost`): the slowest DPU's
    cycles and its bound, kernel seconds, and host<->DPU transfer seconds and bytes (the transfers include the
    one-off upload of weights and tables, which a deployed model pays once, not per inference)."""
    cyc = upmem.dpu_cycles(stats, nr_tasklets)
    t = upmem.layer_time(stats, nr_tasklets)
    launch = cyc["per_launch"][0]
    dma = sum(d["total"].get("dma_read_bytes", 0) + d["total"].get("dma_write_bytes", 0)
              for d in stats.get("dpus", []))
    return {"cycles": int(cyc["cycles"]), "bound": launch["bound"], "critical_dpu": launch["critical_dpu"],
            "kernel_s": t["kernel_s"], "host_to_dpu_s": t["host_to_dpu_s"], "dpu_to_host_s": t["dpu_to_host_s"],
            "total_s": t["total_s"], "host_to_dpu_bytes": int(t["host_to_dpu_bytes"]),
            "dpu_to_host_bytes": int(t["dpu_to_host_bytes"]), "dma_bytes": int(dma),
            "per_dpu_cycles": [int(c) for c in cyc["per_dpu"]]}


def run_kernel(kernel: DpuKernel, timeout: float = 600) -> KernelRun:
    """Build (cached) and run ``kernel`` with the generic host program on the emulator; decode its output."""
    build = upmem.build_emulation(kernel.dpu_source, host_source(), kernel.nr_tasklets)
    with tempfile.TemporaryDirectory(prefix="hwforge_localut_") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir()
        for fname, blob in kernel_files(kernel).items():
            (data / fname).write_bytes(blob)
        run = upmem.run_emulation(build, [str(build.dpu_binary), "data", "out.bin"], cwd=work, timeout=timeout)
        if run.returncode != 0:
            raise InternalError(f"{kernel.name}: host program exited {run.returncode}: "
                                f"{(run.stderr.strip().splitlines() or ['(no output)'])[-1]}")
        raw = (work / "out.bin").read_bytes()
    output = decode(kernel, raw)
    report = cost_report(run.stats, kernel.nr_tasklets)
    report["perfcounter_cycles"] = [int(line.split()[3]) for line in run.stdout.splitlines()
                                    if line.startswith("dpu ") and " cycles " in line]
    return KernelRun(output, report, run.stats)


def totals(layers: list[dict[str, Any]]) -> dict[str, Any]:
    """Whole-network sums of the per-layer cost figures that add up (cycles, seconds, bytes)."""
    out: dict[str, Any] = {}
    names = {"cycles": "cycles", "kernel_s": "kernel_s", "total_s": "time_s", "host_to_dpu_bytes": "host_to_dpu_bytes",
             "dpu_to_host_bytes": "dpu_to_host_bytes", "dma_bytes": "dma_bytes"}
    for key, name in names.items():
        vals = [entry[key] for entry in layers if isinstance(entry.get(key), (int, float))]
        if vals:
            out[f"total_{name}"] = sum(vals)
    return out


def build_emulation_binaries(artifact_dir: Path, options: LocalutOptions, layers: list[str]) -> list[str]:
    """Emulation builds of the artifact's own DPU C and host C, one per layer, under ``build/emu/<layer>``."""
    host = (artifact_dir / "host" / "host.c").read_text()
    made = []
    for layer in layers:
        out = artifact_dir / "build" / "emu" / layer
        source = (artifact_dir / "dpu" / f"{layer}.c").read_text()
        b = upmem.build_emulation(source, host, options.tasklets, out_dir=out)
        made += [str(Path(b.dpu_binary).relative_to(artifact_dir.resolve())),
                 str(Path(b.host_binary).relative_to(artifact_dir.resolve()))]
    return made
