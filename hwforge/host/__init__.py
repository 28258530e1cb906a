"""Host runtime: open a compiled artifact and run inputs on its backend.

The backend is chosen by the artifact's target (Verilator for RTL targets; DPU emulation and native HLS kernels
arrive with their targets). Example::

    from hwforge.host import load_artifact
    art = load_artifact("A")
    outputs = art.run({"x": images})   # numpy in, dequantised numpy out, computed by the simulated RTL
    print(art.verify(seed=3)["passed"])
"""

from hwforge.host.runtime import Artifact, load_artifact

__all__ = ["Artifact", "load_artifact"]
