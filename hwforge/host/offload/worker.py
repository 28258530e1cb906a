"""A computational storage device's updater process (started by `SmartUpdateEngine` from a forkserver).

It owns one device directory (held with an exclusive ``flock`` so a stale worker of a killed trainer can never
write next to its replacement), loads the natively compiled HLS updater kernel (`NativeUpdater.load`), and
serves JSON commands on a pipe (JSON, never pickle, in both directions).
Gradients arrive in, and updated parameters leave through, the shared-memory link; parameters and optimizer
states move only between the device's storage and its fixed buffers, through the transfer handler.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from hwforge.host.offload.link import Link
from hwforge.host.offload.storage import DeviceStore
from hwforge.host.offload.transfer import TransferHandler


def _lock(store: DeviceStore, timeout: float = 60.0) -> int:
    """Exclusive lock on the device directory; waits for a dying predecessor to let go."""
    fd = os.open(store.dir / ".lock", os.O_CREAT | os.O_RDWR, 0o644)
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"device directory {store.dir} is locked by another process") from None
            time.sleep(0.02)


def load_updater(library: str, spec_json: str) -> Any:
    """The compiled kernel, loaded from its shared library (built by the host with `NativeUpdater.build`)."""
    from hwforge.fpga import NativeUpdater
    from hwforge.ir.optim_spec import OptimizerSpec

    return NativeUpdater.load(library, OptimizerSpec.from_json(spec_json))


class Device:
    """State of one worker: store, link, kernel, transfer handler."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.store = DeviceStore(cfg["root"], cfg["device"], cfg["fsync"])
        self.lock_fd = _lock(self.store)
        self.sizes = {int(k): int(v) for k, v in cfg["sizes"].items()}
        self.sgs = sorted(self.sizes)
        self.updater = load_updater(cfg["library"], cfg["spec"])
        self.names = tuple(self.updater.state_names)
        self.link = Link(cfg["link"], cfg["cap"], cfg["kmax"], "r+")
        self.handler = TransferHandler(self.store, self.sizes, self.names, cfg["nbuf"], cfg["overlap"])
        self.update_s = 0.0

    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "open":
            if cmd["step"] is not None:
                self.store.rollback(cmd["step"], self.sizes, ("param", *self.names))
                self.handler.reset(cmd["step"])
            return {}
        if op == "init":
            sg, n = cmd["sg"], self.sizes[cmd["sg"]]
            nbytes = self.store.write(sg, 0, "param", self.link.param(cmd["slot"], n))
            init = self.updater.spec.initial_state(n)  # zeros, or e.g. Adagrad's initial_accumulator_value
            return {"param_write": nbytes, "state_write": sum(self.store.write(sg, 0, k, init[k]) for k in self.names)}
        if op == "init_done":
            self.handler.reset(0)
            self.store.write_manifest(0, self.sizes, ("param", *self.names))
            return {}
        if op == "begin":
            self.store.gc(cmd["step"] - 1)
            self.handler.schedule(cmd["step"] - 1, self.sgs)
            return {}
        if op == "update":
            return self.update(cmd)
        if op == "commit":
            self.handler.drain()
            self.store.write_manifest(cmd["step"], self.sizes, ("param", *self.names))
            return {}
        if op == "read":
            out = self.link.param(cmd["slot"], self.sizes[cmd["sg"]])
            return {"param_read": self.store.read_into(cmd["sg"], cmd["step"], "param", out)}
        if op == "stats":
            s = self.handler.stats
            return {"load_s": s.load_s, "write_s": s.write_s, "wait_load_s": s.wait_load_s,
                    "wait_write_s": s.wait_write_s, "update_s": self.update_s}
        raise ValueError(f"unknown command {op!r}")

    def update(self, cmd: dict[str, Any]) -> dict[str, Any]:
        sg, slot, step = cmd["sg"], cmd["slot"], cmd["step"]
        bs = self.handler.acquire(sg)
        param, states = bs.views()
        grad: Any = (self.link.topk(slot, cmd["k"], cmd["dtype"]) if cmd["k"] is not None
                     else self.link.dense(slot, bs.n, cmd["dtype"]))
        t0 = time.perf_counter()
        self.updater.step(param, states, grad, step, loss_scale=cmd.get("loss_scale", 1.0), lr=cmd.get("lr"))
        dt = time.perf_counter() - t0
        self.update_s += dt
        n, read = bs.n, bs.bytes_read
        self.link.param(slot, n)[:] = param  # updated parameters go up before the states go back to storage
        self.handler.release(bs, step)
        return {"param_read": n * 4, "state_read": read - n * 4,
                "param_write": n * 4, "state_write": n * 4 * len(self.names), "update_s": dt}


def run(cfg: dict[str, Any], conn: Connection) -> None:
    """Worker process body: serve JSON commands from ``conn`` until ``exit`` or until the trainer is gone."""
    try:
        dev = Device(cfg)
    except BaseException as exc:  # noqa: BLE001  (reported to the host as one line)
        conn.send_bytes(json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    conn.send_bytes(json.dumps({"ok": "ready", "pid": os.getpid(), "state_names": list(dev.names)}).encode())
    while True:
        try:
            cmd = json.loads(conn.recv_bytes())
        except (EOFError, OSError):
            os._exit(0)  # the trainer died: whatever is not committed is rolled back by the next resume
        if cmd["op"] == "exit":
            dev.handler.drain()
            dev.handler.close()
            conn.send_bytes(b'{"ok": "exit"}')
            return
        try:
            out = {"ok": cmd["op"], **dev.handle(cmd)}
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            out = {"error": f"{type(exc).__name__}: {exc}"}
        conn.send_bytes(json.dumps(out).encode())
