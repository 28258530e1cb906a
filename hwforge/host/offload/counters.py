"""Byte counters per link and per phase: the measurement the whole design is about.

Links: ``host`` is the shared host interconnect every device hangs off (the bottleneck Smart-Infinity removes);
``dev<i>`` is device i's internal storage<->FPGA link; ``host_local`` is the host's own checkpoint traffic
(top-k residual), which crosses neither. Counts are actual bytes placed in a link buffer or read from / written
to a file, never estimates.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

ONE_OFF = frozenset({"init", "resume"})


class Counters:
    """Thread-safe ``(link, phase) -> bytes`` with the number of completed optimizer steps."""

    def __init__(self, numel: int) -> None:
        self.numel = numel
        self.steps = 0
        self._bytes: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def add(self, link: str, phase: str, nbytes: int) -> None:
        with self._lock:
            self._bytes[(link, phase)] += int(nbytes)

    def bytes(self, link: str | None = None, phase: str | None = None, one_off: bool = True) -> int:
        """Total bytes, optionally restricted to one link and/or one phase (a ``dev`` link matches ``dev*``).

        ``one_off=False`` leaves out the initial parameter upload and resume reads, which are not per-step.
        """
        with self._lock:
            return sum(v for (ln, ph), v in self._bytes.items()
                       if (link is None or ln == link or (link == "dev" and ln.startswith("dev")))
                       and (phase is None or ph == phase) and (one_off or ph not in ONE_OFF))

    def per_param_step(self, link: str = "host", phase: str | None = None, steps: int | None = None) -> float:
        """Bytes per parameter per completed step on ``link`` (the paper's 32 / 8 / ~4.1 figures)."""
        steps = self.steps if steps is None else steps
        return self.bytes(link, phase, one_off=False) / (self.numel * steps) if steps else 0.0

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{link: {phase: bytes}}``, sorted, for JSON reports."""
        out: dict[str, dict[str, int]] = {}
        with self._lock:
            for (ln, ph), v in sorted(self._bytes.items()):
                out.setdefault(ln, {})[ph] = v
        return out

    def reset(self) -> None:
        with self._lock:
            self._bytes.clear()
            self.steps = 0

    def to_dict(self) -> dict[str, Any]:
        return {"numel": self.numel, "steps": self.steps, "bytes": self.snapshot(),
                "host_bytes_per_param_step": round(self.per_param_step("host"), 4)}
