"""Shared Amaranth building blocks for hwforge accelerators."""

from hwforge.rtl.lib.arbiter import MemArbiter
from hwforge.rtl.lib.lanebuf import LaneBuffer
from hwforge.rtl.lib.memcount import CountingMemPort
from hwforge.rtl.lib.memport import MemPortSignature, mem_request_layout
from hwforge.rtl.lib.pe import OSProcessingElement, WSProcessingElement
from hwforge.rtl.lib.requant import Requantizer

__all__ = ["CountingMemPort", "LaneBuffer", "MemArbiter", "MemPortSignature", "OSProcessingElement", "Requantizer",
           "WSProcessingElement", "mem_request_layout"]
