"""Shared Amaranth building blocks for hwforge accelerators."""

from hwforge.rtl.lib.memport import MemPortSignature, mem_request_layout

__all__ = ["MemPortSignature", "mem_request_layout"]
