"""Baseline engine, ZeRO-Infinity style: the host does the update, so everything crosses the shared host link.

Per step and subgroup: the gradient is offloaded to storage during the step and read back for the update
(4 + 4 bytes/param with fp32), parameters and optimizer states are read (12) and written back (12): 32 bytes per
parameter for Adam, the paper's figure. The update itself is ``torch.optim`` (the same class and arguments as an
in-memory run) on views of the fixed buffers, so its semantics are torch's exactly. The same transfer handler
as the devices prefetches and writes behind (as ZeRO-Infinity's pipelined NVMe reads and writes do).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from hwforge.host.offload.config import OffloadConfig
from hwforge.host.offload.counters import Counters
from hwforge.host.offload.layout import Layout
from hwforge.host.offload.storage import DeviceStore
from hwforge.host.offload.transfer import TransferHandler


def torch_state_names(cfg: OffloadConfig) -> tuple[str, ...]:
    """Names of the tensor states the torch optimizer keeps (found by one step on a 1-element parameter)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = cfg.make_optimizer([p])
    p.grad = torch.ones(1)
    opt.step()
    return tuple(k for k, v in opt.state[p].items() if k != "step" and isinstance(v, torch.Tensor))


class BaselineEngine:
    """Host-side updates over ``cfg.devices`` plain storage directories."""

    def __init__(self, cfg: OffloadConfig, layout: Layout, counters: Counters) -> None:
        self.cfg, self.layout, self.counters = cfg, layout, counters
        self.state_names = torch_state_names(cfg)
        self.subgroups = layout.subgroups
        self.stores = [DeviceStore(cfg.root, d, cfg.fsync) for d in range(cfg.devices)]
        self.sizes = [{sg: b - a for sg, (a, b) in enumerate(self.subgroups) if layout.owner(sg) == d}
                      for d in range(cfg.devices)]
        self.handlers: list[TransferHandler] = []
        self.grad_buf = np.zeros(layout.max_subgroup, np.float32)  # fixed, reused for every subgroup
        self.update_s = 0.0
        self.pids: list[int] = []

    def _names(self) -> tuple[str, ...]:
        return ("param", *self.state_names)

    def open(self, step: int | None) -> None:
        self.close()
        self.handlers = [TransferHandler(s, sz, self.state_names, self.cfg.buffers, self.cfg.overlap)
                         for s, sz in zip(self.stores, self.sizes, strict=True)]
        if step is not None:
            for store, sizes, h in zip(self.stores, self.sizes, self.handlers, strict=True):
                store.rollback(step, sizes, self._names())
                h.reset(step)

    def init(self, flat: torch.Tensor) -> None:
        for sg, (a, b) in enumerate(self.subgroups):
            store = self.stores[self.layout.owner(sg)]
            n = store.write(sg, 0, "param", flat[a:b].numpy())
            zeros = np.zeros(b - a, np.float32)
            n += sum(store.write(sg, 0, k, zeros) for k in self.state_names)
            self.counters.add("host", "init", n)
        for store, sizes, h in zip(self.stores, self.sizes, self.handlers, strict=True):
            store.write_manifest(0, sizes, self._names())
            h.reset(0)

    def begin(self, step: int) -> None:
        for store, sizes, h in zip(self.stores, self.sizes, self.handlers, strict=True):
            store.gc(step - 1)
            h.schedule(step - 1, sorted(sizes))

    def update(self, step: int, payload: Callable[[int], torch.Tensor], flat: torch.Tensor,
               lr: float | None) -> None:
        for sg in range(len(self.subgroups)):  # gradient offload to storage (ZeRO-Infinity's NVMe grad path)
            store = self.stores[self.layout.owner(sg)]
            self.counters.add("host", "grad_offload", store.write(sg, step, "grad", payload(sg).numpy()))
        for sg, (a, b) in enumerate(self.subgroups):
            d = self.layout.owner(sg)
            bs = self.handlers[d].acquire(sg)
            param, states = bs.views()
            grad = self.grad_buf[: b - a]
            self.counters.add("host", "grad_read", self.stores[d].read_into(sg, step, "grad", grad))
            self.counters.add("host", "param_read", param.nbytes)
            self.counters.add("host", "state_read", sum(v.nbytes for v in states.values()))
            t0 = time.perf_counter()
            self._torch_step(step, param, states, grad, lr)
            self.update_s += time.perf_counter() - t0
            flat[a:b].copy_(torch.from_numpy(param))
            self.counters.add("host", "param_write", param.nbytes)
            self.counters.add("host", "state_write", sum(v.nbytes for v in states.values()))
            self.handlers[d].release(bs, step)

    def _torch_step(self, step: int, param: np.ndarray, states: dict[str, np.ndarray], grad: np.ndarray,
                    lr: float | None) -> None:
        """One torch.optim step on a subgroup, in place on the buffers (step 1 lets torch create its state)."""
        p = torch.nn.Parameter(torch.from_numpy(param))
        opt = self.cfg.make_optimizer([p])
        if lr is not None:
            opt.param_groups[0]["lr"] = lr
        p.grad = torch.from_numpy(grad)
        if step > 1:
            opt.state[p] = {"step": torch.tensor(float(step - 1)),
                            **{k: torch.from_numpy(v) for k, v in states.items()}}
        opt.step()
        for k, v in states.items():
            t = opt.state[p][k]
            if t.data_ptr() != v.ctypes.data:
                v[:] = t.numpy()
        if p.data_ptr() != param.ctypes.data:
            param[:] = p.detach().numpy()

    def commit(self, step: int) -> None:
        for store, sizes, h in zip(self.stores, self.sizes, self.handlers, strict=True):
            h.drain()
            store.write_manifest(step, sizes, self._names())

    def read_params(self, step: int, flat: torch.Tensor) -> None:
        for sg, (a, b) in enumerate(self.subgroups):
            n = self.stores[self.layout.owner(sg)].read_into(sg, step, "param", flat[a:b].numpy())
            self.counters.add("host", "resume", n)

    def stats(self) -> dict[str, dict[str, float]]:
        out = {}
        for d, h in enumerate(self.handlers):
            s = h.stats
            out[f"dev{d}"] = {"load_s": s.load_s, "write_s": s.write_s, "wait_load_s": s.wait_load_s,
                              "wait_write_s": s.wait_write_s}
        out["host"] = {"update_s": self.update_s}
        return out

    def close(self) -> None:
        for h in self.handlers:
            h.drain()
            h.close()
        self.handlers = []
