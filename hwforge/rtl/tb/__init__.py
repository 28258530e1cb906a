"""Simulation helpers shared by hwforge accelerators: a memory-model wrapper template, cached Verilator builds
and the cocotb test that runs a program to completion."""

from hwforge.rtl.tb.verilator import TbRun, render_mem_tb, run_mem_tb

__all__ = ["TbRun", "render_mem_tb", "run_mem_tb"]
