"""Host runtime: open a compiled artifact and run inputs on its backend; storage-offloaded training.

The backend is chosen by the artifact's target (Verilator for RTL targets; DPU emulation and native HLS kernels
arrive with their targets). Example::

    from hwforge.host import load_artifact
    art = load_artifact("A")
    outputs = art.run({"x": images})   # numpy in, dequantised numpy out, computed by the simulated RTL
    print(art.verify(seed=3).passed)

`OffloadTrainer` trains a model with its optimizer step offloaded to (emulated) storage devices, ZeRO-Infinity
style or with Smart-Infinity's near-storage updater (see docs/offload.md)::

    from hwforge.host import OffloadConfig, OffloadTrainer
"""

from hwforge.host.offload import OffloadConfig, OffloadTrainer, ResumeState, WorkerCrashed
from hwforge.host.runtime import Artifact, load_artifact

__all__ = ["Artifact", "OffloadConfig", "OffloadTrainer", "ResumeState", "WorkerCrashed", "load_artifact"]
