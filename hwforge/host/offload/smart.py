"""SmartUpdate engine (host side): one updater worker process per computational storage device.

Per step and subgroup the host only writes the gradient (dense or top-k) into the owning device's link slot and
copies the updated parameters back out; the device loads parameters and optimizer states from its own storage,
runs the compiled kernel, returns the parameters and writes the states back behind it.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.context
import os
import queue
import signal
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import torch

from hwforge.errors import HwforgeError
from hwforge.host.offload.config import OffloadConfig
from hwforge.host.offload.counters import Counters
from hwforge.host.offload.layout import Layout
from hwforge.host.offload.link import SLOTS, Link

Payload = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class WorkerCrashed(HwforgeError):
    """A device worker died or hung mid-step; ``OffloadTrainer.resume()`` continues from the last commit."""


def build_kernel(cfg: OffloadConfig) -> tuple[Any, Any]:
    """(spec, updater): the optimizer spec taken from the equivalent torch optimizer, compiled natively (cached)."""
    from hwforge.fpga import NativeUpdater
    from hwforge.ir.optim_spec import OptimizerSpec

    spec = OptimizerSpec.from_torch(cfg.make_optimizer([torch.nn.Parameter(torch.zeros(1))]),
                                    grad_format=cfg.grad_format, half_copy=False)
    return spec, NativeUpdater.build(spec, cache_dir=cfg.cache_dir)


_PRELOAD = ["hwforge.host.offload.worker", "hwforge.ir", "hwforge.fpga"]


def _context() -> multiprocessing.context.BaseContext:
    """A forkserver that has imported the worker and kernel modules once: workers then start in milliseconds
    (a spawned interpreter would import torch again, seconds per worker, on every resume)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


class _Worker:
    """One worker process and the thread that reads its replies."""

    def __init__(self, device: int, wcfg: dict[str, Any], timeout: float) -> None:
        from hwforge.host.offload import worker

        self.device, self.timeout = device, timeout
        self.conn, child = multiprocessing.Pipe()
        self.proc = _context().Process(target=worker.run, args=(wcfg, child), daemon=True,
                                       name=f"hwforge-offload-dev{device:02d}")
        self.proc.start()
        child.close()
        self.pid = int(self.proc.pid)
        self.replies: queue.Queue[dict[str, Any] | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                self.replies.put(json.loads(self.conn.recv_bytes()))
            except (EOFError, OSError, TypeError):  # closed by the worker's death, or by stop() (TypeError)
                self.replies.put(None)
                return

    def send(self, cmd: dict[str, Any]) -> None:
        try:
            self.conn.send_bytes(json.dumps(cmd).encode())
        except (BrokenPipeError, OSError):
            raise self._dead() from None

    def recv(self) -> dict[str, Any]:
        try:
            r = self.replies.get(timeout=self.timeout)
        except queue.Empty:
            raise WorkerCrashed(f"offload: device {self.device} worker (pid {self.pid}) did not answer within "
                                f"{self.timeout:.0f} s") from None
        if r is None:
            raise self._dead()
        if "error" in r:
            raise WorkerCrashed(f"offload: device {self.device} worker failed: {r['error']}")
        return r

    def _dead(self) -> WorkerCrashed:
        self.proc.join(timeout=5)
        code = self.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return WorkerCrashed(f"offload: device {self.device} worker (pid {self.pid}) died ({how}); "
                             "call resume() to continue from the last committed step")

    def stop(self) -> None:
        if self.proc.is_alive():
            try:  # queued commands finish first, then the worker drains its write-backs and exits
                self.send({"op": "exit"})
                self.proc.join(timeout=min(self.timeout, 60))
            except WorkerCrashed:
                pass
            if self.proc.is_alive():
                os.kill(self.pid, signal.SIGKILL)
                self.proc.join()
        self.conn.close()


class SmartUpdateEngine:
    """Near-storage updates on ``cfg.devices`` worker processes."""

    def __init__(self, cfg: OffloadConfig, layout: Layout, counters: Counters) -> None:
        self.cfg, self.layout, self.counters = cfg, layout, counters
        self.spec, self.updater = build_kernel(cfg)
        self.state_names: tuple[str, ...] = tuple(self.updater.state_names)
        self.subgroups = layout.subgroups
        self.workers: list[_Worker] = []
        self.links: list[Link] = []

    def open(self, step: int | None) -> None:
        """Start the workers (they wait for a stale predecessor's lock) and roll storage back to ``step``."""
        self.close()
        cap = self.layout.max_subgroup
        kmax = self.cfg.topk_count(cap) if self.cfg.topk is not None else 0
        for d in range(self.cfg.devices):
            link = Link.create(d, cap, kmax)
            sizes = {sg: b - a for sg, (a, b) in enumerate(self.subgroups) if self.layout.owner(sg) == d}
            wcfg = {"device": d, "root": str(self.cfg.root), "link": str(link.path), "cap": cap, "kmax": kmax,
                    "spec": self.spec.to_json(), "library": str(self.updater.library_path), "sizes": sizes,
                    "nbuf": self.cfg.buffers, "overlap": self.cfg.overlap, "fsync": self.cfg.fsync}
            self.links.append(link)
            self.workers.append(_Worker(d, wcfg, self.cfg.worker_timeout))
        for w, link in zip(self.workers, self.links, strict=True):
            w.recv()  # ready: the worker has mapped the link, so its name can go
            link.unlink()
        self._all({"op": "open", "step": step})

    @property
    def pids(self) -> list[int]:
        return [w.pid for w in self.workers]

    def _all(self, cmd: dict[str, Any]) -> list[dict[str, Any]]:
        for w in self.workers:
            w.send(cmd)
        return [w.recv() for w in self.workers]

    def init(self, flat: torch.Tensor) -> None:
        """Store the initial parameters (version 0) and zero optimizer states on the devices."""
        for sg, (a, b) in enumerate(self.subgroups):
            d = self.layout.owner(sg)
            torch.from_numpy(self.links[d].param(0, b - a)).copy_(flat[a:b])
            self.counters.add("host", "init", (b - a) * 4)
            self.workers[d].send({"op": "init", "sg": sg, "slot": 0})
            r = self.workers[d].recv()
            self.counters.add(f"dev{d}", "init", r["param_write"] + r["state_write"])
        self._all({"op": "init_done"})

    def begin(self, step: int) -> None:
        """Start prefetching this step's subgroups (overlaps the host's forward and backward)."""
        self._all({"op": "begin", "step": step})

    def update(self, step: int, payload: Callable[[int], Payload], flat: torch.Tensor, lr: float | None) -> None:
        """Send every subgroup's gradient to its device and copy the updated parameters into ``flat``."""
        free = [list(range(SLOTS)) for _ in self.workers]
        inflight: list[deque[tuple[int, int]]] = [deque() for _ in self.workers]
        dtype = self.cfg.grad_dtype
        for sg, (a, b) in enumerate(self.subgroups):
            d = self.layout.owner(sg)
            if not free[d]:
                self._complete(d, inflight[d], free[d], flat)
            slot = free[d].pop(0)
            g = payload(sg)
            if isinstance(g, tuple):
                idx, vals = self.links[d].topk(slot, len(g[0]), dtype)
                torch.from_numpy(idx).copy_(g[0])
                torch.from_numpy(vals).copy_(g[1])
                k, nbytes = len(g[0]), idx.nbytes + vals.nbytes
            else:
                dense = self.links[d].dense(slot, b - a, dtype)
                torch.from_numpy(dense).copy_(g)
                k, nbytes = None, dense.nbytes
            self.counters.add("host", "grad_down", nbytes)
            self.workers[d].send({"op": "update", "sg": sg, "slot": slot, "step": step, "k": k, "dtype": dtype,
                                  "lr": lr})
            inflight[d].append((sg, slot))
        for d in range(len(self.workers)):
            while inflight[d]:
                self._complete(d, inflight[d], free[d], flat)

    def _complete(self, d: int, inflight: deque[tuple[int, int]], free: list[int], flat: torch.Tensor) -> None:
        r = self.workers[d].recv()
        sg, slot = inflight.popleft()
        a, b = self.subgroups[sg]
        flat[a:b].copy_(torch.from_numpy(self.links[d].param(slot, b - a)))
        self.counters.add("host", "param_up", (b - a) * 4)
        for phase in ("param_read", "state_read", "param_write", "state_write"):
            self.counters.add(f"dev{d}", phase, r[phase])
        free.append(slot)

    def commit(self, step: int) -> None:
        """Every device drains its write-backs and replaces its manifest (the device-level ack)."""
        self._all({"op": "commit", "step": step})

    def read_params(self, step: int, flat: torch.Tensor) -> None:
        """Fetch the parameters of committed ``step`` (resume): one transfer up per subgroup."""
        for sg, (a, b) in enumerate(self.subgroups):
            d = self.layout.owner(sg)
            self.workers[d].send({"op": "read", "sg": sg, "slot": 0, "step": step})
            r = self.workers[d].recv()
            flat[a:b].copy_(torch.from_numpy(self.links[d].param(0, b - a)))
            self.counters.add(f"dev{d}", "resume", r["param_read"])
            self.counters.add("host", "resume", (b - a) * 4)

    def stats(self) -> dict[str, Any]:
        """Per-device seconds spent loading, writing back, waiting for a prefetch, and in the kernel."""
        return {f"dev{i}": r for i, r in enumerate(self._all({"op": "stats"}))}

    def close(self) -> None:
        for w in self.workers:
            w.stop()
        for link in self.links:
            link.unlink()
        self.workers, self.links = [], []
