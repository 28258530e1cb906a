"""The memory port every hwforge accelerator uses to reach off-chip memory.

One contract for all RTL targets, so that the cocotb wrapper, the on-FPGA BRAM wrapper and every accelerator
agree: a request stream (read or write, word address) and an in-order read-response stream, both
`amaranth.lib.stream` ready/valid interfaces. Writes produce no response. Addresses count words of
``data_width`` bits (not bytes); byte counters multiply by ``data_width // 8``.

Seen from the accelerator (the initiator), ``MemPortSignature`` is used as ``Out(...)``: the accelerator drives
``req`` and receives ``resp``.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out


def mem_request_layout(addr_width: int, data_width: int) -> data.StructLayout:
    """Payload of one memory request: ``addr`` (word address), ``write`` (1 = write) and ``wdata``."""
    return data.StructLayout({"addr": unsigned(addr_width), "write": unsigned(1), "wdata": unsigned(data_width)})


class MemPortSignature(wiring.Signature):
    """Initiator side of a memory port: ``req`` out, ``resp`` (read data, in request order) in."""

    def __init__(self, addr_width: int = 32, data_width: int = 32):
        if addr_width < 1 or addr_width > 32:
            raise ValueError(f"memory port addr_width must be 1..32, got {addr_width}")
        if data_width not in (8, 16, 32, 64, 128, 256, 512):
            raise ValueError(f"memory port data_width must be 8, 16, 32, 64, 128, 256 or 512 bits, got {data_width}")
        self.addr_width = addr_width
        self.data_width = data_width
        super().__init__({
            "req": Out(stream.Signature(mem_request_layout(addr_width, data_width))),
            "resp": In(stream.Signature(unsigned(data_width))),
        })

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, MemPortSignature) and other.addr_width == self.addr_width
                and other.data_width == self.data_width)

    def __hash__(self) -> int:
        return hash((MemPortSignature, self.addr_width, self.data_width))

    def __repr__(self) -> str:
        return f"MemPortSignature(addr_width={self.addr_width}, data_width={self.data_width})"
