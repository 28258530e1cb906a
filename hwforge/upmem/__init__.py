"""LOCALUT on UPMEM: LUT construction, DPU C and host C emitters, host-side DPU emulation, cost model."""

from hwforge.upmem.baselines import bitserial_kernel, decode_output, mac_kernel
from hwforge.upmem.cost import dpu_cycles, layer_time
from hwforge.upmem.dpu_kernel import DpuKernel, grid, host_source, kernel_files, makefile
from hwforge.upmem.emulator import (
    DpuFaultError,
    EmulationBuild,
    EmulationRun,
    build_emulation,
    find_sdk,
    missing_sdk_tools,
    run_emulation,
)
from hwforge.upmem.lut import SCHEMES, PackedLut, build_lut, entry_count, lut_layout, reduction_factor
from hwforge.upmem.lutgemm import int_gemm, lut_gemm
from hwforge.upmem.lutkernel import decode_localut_output, localut_kernel, max_p

__all__ = [
    # host-side UPMEM SDK emulation (hwforge.upmem.emulator)
    "DpuFaultError",
    "EmulationBuild",
    "EmulationRun",
    "build_emulation",
    "find_sdk",
    "missing_sdk_tools",
    "run_emulation",
    # DPU cost model (hwforge.upmem.cost)
    "dpu_cycles",
    "layer_time",
    # LOCALUT tables, LUT-GEMM model and DPU kernel (hwforge.upmem.lut, .lutgemm, .lutkernel)
    "SCHEMES",
    "PackedLut",
    "build_lut",
    "decode_localut_output",
    "entry_count",
    "int_gemm",
    "localut_kernel",
    "lut_gemm",
    "lut_layout",
    "max_p",
    "reduction_factor",
    # baseline kernels: integer MAC, bit-serial (hwforge.upmem.baselines)
    "bitserial_kernel",
    "decode_output",
    "mac_kernel",
    # the DPU kernel contract and the generic host program (hwforge.upmem.dpu_kernel)
    "DpuKernel",
    "grid",
    "host_source",
    "kernel_files",
    "makefile",
]
