"""Storage-offloaded training: ZeRO-Infinity-style baseline and Smart-Infinity near-storage updates.

    from hwforge.host import OffloadConfig, OffloadTrainer
    cfg = OffloadConfig("ckpt", mode="smartupdate", devices=2, optimizer="adamw", optimizer_params={"lr": 1e-3})
    with OffloadTrainer(model, cfg) as trainer:
        start = trainer.resume()
        for t in range(start.step, 100):
            trainer.step(lambda m: loss_of(m, t), user_state={"position": t + 1})
        print(trainer.counters.per_param_step("host"))   # bytes per parameter per step on the shared link

See docs/offload.md.
"""

from hwforge.host.offload.config import OffloadConfig
from hwforge.host.offload.counters import Counters
from hwforge.host.offload.layout import Layout
from hwforge.host.offload.smart import WorkerCrashed
from hwforge.host.offload.trainer import OffloadTrainer, ResumeState

__all__ = ["Counters", "Layout", "OffloadConfig", "OffloadTrainer", "ResumeState", "WorkerCrashed"]
