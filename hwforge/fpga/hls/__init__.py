"""Vitis HLS C++ for near-storage optimizer updates (Smart-Infinity): the emitter, its C simulation with g++,
and `NativeUpdater`, the compiled kernel as a Python-callable updater."""

from hwforge.fpga.hls.emit import FAULTS, LANES, HlsOptions, kernel_model, kernel_source, render
from hwforge.fpga.hls.native import NativeUpdater, compile_kernel

__all__ = ["FAULTS", "LANES", "HlsOptions", "NativeUpdater", "compile_kernel", "kernel_model", "kernel_source",
           "render"]
