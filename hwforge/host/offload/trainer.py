"""`OffloadTrainer`: a model's optimizer step offloaded to storage, with a crash-safe commit per step.

    trainer = OffloadTrainer(model, OffloadConfig("ckpt", mode="smartupdate", devices=4,
                                                  optimizer_params={"lr": 1e-3}))
    start = trainer.resume()                 # fresh storage: step 0; otherwise the last committed step
    for t in range(start.step, steps):
        loss = trainer.step(lambda m: m.loss(*batch(t)), user_state={"position": t + 1})
    print(trainer.counters.per_param_step("host"))
    trainer.close()

The model's parameters become views into one flat fp32 vector (the host's working copy); the master parameters
and optimizer states live on the devices. A step is committed when every device has acknowledged it and the
global ``commit.json`` (step, user state such as the data position, RNG states, top-k residual file) has been
renamed into place; `resume()` after any crash continues from exactly that point.
"""

from __future__ import annotations

import fcntl
import json
import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hwforge.errors import ConfigError
from hwforge.host.offload.baseline import BaselineEngine
from hwforge.host.offload.config import OffloadConfig
from hwforge.host.offload.counters import Counters
from hwforge.host.offload.layout import Layout
from hwforge.host.offload.smart import SmartUpdateEngine
from hwforge.host.offload.storage import atomic_write_bytes, atomic_write_json

SCHEMA = 1


@dataclass(frozen=True)
class ResumeState:
    """Where training continues: the last committed step and the user state saved with it."""

    step: int
    user_state: Any


class OffloadTrainer:
    """Storage-offloaded training of ``model`` (fp32 parameters on the CPU) as ``config`` describes."""

    def __init__(self, model: torch.nn.Module, config: OffloadConfig) -> None:
        if not isinstance(config, OffloadConfig):
            raise ConfigError("OffloadTrainer needs an OffloadConfig")
        self.model, self.cfg = model, config
        self.layout = Layout.from_model(model, config.subgroup_size, config.devices)
        self.counters = Counters(self.layout.numel)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.flat = torch.empty(self.layout.numel, dtype=torch.float32)
        for p, (a, b) in zip(self.params, self.layout.offsets, strict=True):
            self.flat[a:b].copy_(p.detach().reshape(-1))
            p.data = self.flat[a:b].view(p.shape)
        self.grad = torch.zeros(self.layout.numel, dtype=torch.float32)
        self.residual = (torch.zeros(self.layout.numel) if config.topk is not None and config.error_feedback
                         else None)
        self.root = config.root
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / ".trainer.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise ConfigError(f"offload storage_dir {self.root} is in use by another trainer") from None
        engine_cls = SmartUpdateEngine if config.mode == "smartupdate" else BaselineEngine
        try:
            self.engine = engine_cls(config, self.layout, self.counters)  # smartupdate: builds the kernel
        except BaseException:
            os.close(self._lock_fd)
            raise
        self.step_count: int | None = None
        self._failed = False

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def __enter__(self) -> OffloadTrainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the device workers (smartupdate mode)."""
        return list(self.engine.pids)

    def resume(self) -> ResumeState:
        """Open the storage: continue from its last committed step, or initialise it (step 0) when empty.

        Also the way back after a crash: restarts every worker, rolls the devices back to the global commit and
        restores the parameters, RNG states, top-k residual and user state of that step.
        """
        self._failed = False
        commit = self._read_commit()
        if commit is None:
            self._check_empty()
            self.engine.open(None)
            self.engine.init(self.flat)
            self._write_layout()
            self._commit(0, None)
            return ResumeState(0, None)
        self._check_layout()
        step = int(commit["step"])
        self.engine.open(step)
        self.engine.read_params(step, self.flat)
        self._restore_host(commit)
        self.step_count = step
        return ResumeState(step, commit.get("user_state"))

    def close(self) -> None:
        """Stop the workers (write-backs of the last step are already on storage) and release the storage."""
        self.engine.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- one step ----------------------------------------------------------------------------------------
    def step(self, loss_fn: Callable[[torch.nn.Module], torch.Tensor] | None = None, *,
             grads: torch.Tensor | Sequence[torch.Tensor] | None = None, user_state: Any = None,
             lr: float | None = None) -> float | None:
        """One training step; returns the loss when ``loss_fn`` is given.

        Gradients come from ``loss_fn(model)`` (backward is run here), from ``grads`` (a flat tensor of all
        trainable elements or one tensor per parameter, in ``model.parameters()`` order), or, with neither, from
        the ``.grad`` of the parameters (the caller ran backward). ``user_state`` (JSON-serialisable, e.g. the
        data loader position after this step) is committed with the step; ``lr`` overrides the learning rate.
        """
        if self.step_count is None:
            raise ConfigError("offload: call resume() before step() (it initialises or reopens storage_dir)")
        if loss_fn is not None and grads is not None:
            raise ConfigError("offload step: pass loss_fn or grads, not both")
        try:
            json.dumps(user_state)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"offload step: user_state must be JSON-serialisable ({exc})") from None
        if self._failed:
            raise ConfigError(f"offload: a previous step failed; call resume() to continue from step "
                              f"{self.step_count}")
        t = self.step_count + 1
        try:
            self.engine.begin(t)  # devices start prefetching this step's subgroups now
            loss = self._gradients(loss_fn, grads)
            self.engine.update(t, self._payload, self.flat, lr)
            self.engine.commit(t)
            self._commit(t, user_state)
        except BaseException:
            # prefetches, link slots and the model's working copy are mid-step: only resume() may continue
            self._failed = True
            raise
        self.counters.steps += 1
        return loss

    def _gradients(self, loss_fn: Callable[[torch.nn.Module], torch.Tensor] | None,
                   grads: torch.Tensor | Sequence[torch.Tensor] | None) -> float | None:
        loss = None
        if loss_fn is not None:
            for p in self.params:
                p.grad = None
            out = loss_fn(self.model)
            out.backward()
            loss = float(out.detach())
        if grads is not None:
            if isinstance(grads, torch.Tensor):
                if grads.numel() != self.layout.numel:
                    raise ConfigError(f"offload step: flat grads have {grads.numel()} elements, the model "
                                      f"{self.layout.numel}")
                self.grad.copy_(grads.reshape(-1))
                return loss
            grads = list(grads)
            if len(grads) != len(self.params):
                raise ConfigError(f"offload step: {len(grads)} gradients for {len(self.params)} parameters")
            srcs = grads
        else:
            srcs = [p.grad for p in self.params]
        for name, g, (a, b) in zip(self.layout.names, srcs, self.layout.offsets, strict=True):
            if g is None:
                self.grad[a:b].zero_()
            elif g.numel() != b - a:
                raise ConfigError(f"offload step: gradient of {name!r} has {g.numel()} elements, expected {b - a}")
            else:
                self.grad[a:b].copy_(g.reshape(-1))
        return loss

    def _payload(self, sg: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Subgroup ``sg``'s gradient as sent: dense, or top-k (ascending int32 indices, values)."""
        a, b = self.layout.subgroups[sg]
        g = self.grad[a:b]
        if self.cfg.topk is None:
            return g
        acc = g + self.residual[a:b] if self.residual is not None else g
        k = self.cfg.topk_count(b - a)
        idx = torch.topk(acc.abs(), k, sorted=False).indices.sort().values
        vals = acc[idx]
        if self.residual is not None:  # error feedback: what was not sent (or lost to fp16) is sent later
            sent = vals.half().float() if self.cfg.grad_dtype == "fp16" else vals
            res = self.residual[a:b]
            res.copy_(acc)
            res[idx] = acc[idx] - sent
        return idx.to(torch.int32), vals

    # ---- commit records --------------------------------------------------------------------------------------
    def _read_commit(self) -> dict[str, Any] | None:
        path = self.root / "commit.json"
        return json.loads(path.read_text()) if path.exists() else None

    def _check_empty(self) -> None:
        """No commit record: the directory must be empty or hold only an interrupted initialisation of ours."""
        ours = re.compile(r"^(dev\d{2}|host|layout\.json|\.trainer\.lock)$")
        stray = [p.name for p in self.root.iterdir() if not ours.match(p.name)]
        if stray:
            raise ConfigError(f"offload storage_dir {self.root} is not empty and holds no commit record "
                              f"(found {', '.join(sorted(stray)[:3])}); use an empty directory")
        for sub in self.root.iterdir():  # a crash before the step-0 commit: start the initialisation over
            if sub.is_dir():
                for f in sub.iterdir():
                    if f.name != ".lock":
                        f.unlink()

    def _identity(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "layout": self.layout.to_dict(), "config": self.cfg.describe(),
                "state_names": list(self.engine.state_names)}

    def _write_layout(self) -> None:
        atomic_write_json(self.root / "layout.json", self._identity(), self.cfg.fsync)

    def _check_layout(self) -> None:
        saved = json.loads((self.root / "layout.json").read_text())
        mine = self._identity()
        for key in ("schema", "layout", "config", "state_names"):
            if saved.get(key) != mine[key]:
                raise ConfigError(f"offload storage_dir {self.root} was written with a different {key}: "
                                  f"{_short(saved.get(key))} (now {_short(mine[key])})")

    def _commit(self, step: int, user_state: Any) -> None:
        """The global step commit: host-side state files first, then one atomic rename of commit.json."""
        host = self.root / "host"
        host.mkdir(exist_ok=True)
        rng = torch.get_rng_state().numpy()
        atomic_write_bytes(host / f"rng.v{step:08d}.u8", memoryview(rng), self.cfg.fsync)
        record: dict[str, Any] = {"schema": SCHEMA, "step": step, "user_state": user_state,
                                  "torch_rng": f"host/rng.v{step:08d}.u8", "python_rng": _py_rng(),
                                  "numpy_rng": _np_rng()}
        if self.residual is not None:
            atomic_write_bytes(host / f"residual.v{step:08d}.f32", memoryview(self.residual.numpy()),
                               self.cfg.fsync)
            self.counters.add("host_local", "residual_ckpt", self.residual.numel() * 4)
            record["residual"] = f"host/residual.v{step:08d}.f32"
        atomic_write_json(self.root / "commit.json", record, self.cfg.fsync)
        self.step_count = step
        for p in host.iterdir():  # host files of older steps are no longer reachable from the record
            if ".v" in p.name and not p.name.endswith(f".v{step:08d}.u8") and not p.name.endswith(
                    f".v{step:08d}.f32"):
                p.unlink()

    def _restore_host(self, commit: dict[str, Any]) -> None:
        rng = np.fromfile(self.root / commit["torch_rng"], dtype=np.uint8)
        torch.set_rng_state(torch.from_numpy(rng.copy()))
        py = commit["python_rng"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        npr = commit["numpy_rng"]
        np.random.set_state((npr[0], np.asarray(npr[1], dtype=np.uint32), *npr[2:]))
        if self.residual is not None:
            res = np.fromfile(self.root / commit["residual"], dtype=np.float32)
            self.residual.copy_(torch.from_numpy(res))
            self.counters.add("host_local", "resume", res.nbytes)

    # ---- reporting -----------------------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Transfer-handler and kernel timings per device (seconds, cumulative since the workers started)."""
        return self.engine.stats()


def _py_rng() -> list[Any]:
    s = random.getstate()
    return [s[0], list(s[1]), s[2]]


def _np_rng() -> list[Any]:
    s = np.random.get_state()
    return [s[0], s[1].tolist(), int(s[2]), int(s[3]), float(s[4])]


def _short(v: Any) -> str:
    text = json.dumps(v, sort_keys=True)
    return text if len(text) < 120 else text[:117] + "..."


__all__ = ["OffloadTrainer", "ResumeState"]
