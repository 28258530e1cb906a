"""Target registry: each target is one vertical slice (passes, emitter, verifier, build, runtime backend).

A target module subclasses `Target` and registers an instance with `register_target`. Targets whose issue has
not landed yet are registered as *planned* so that `hwforge targets` shows the whole roadmap, and compiling for
them exits 2 with a line that says so.
"""

from __future__ import annotations

# Importing a target module registers it.
from hwforge.compiler.targets import gemm as _gemm  # noqa: E402,F401  (registration side effect)
from hwforge.compiler.targets import localut as _localut  # noqa: E402,F401
from hwforge.compiler.targets import smartupdate as _smartupdate  # noqa: E402,F401
from hwforge.compiler.targets import snf as _snf  # noqa: E402,F401
from hwforge.compiler.targets.base import OwnModel, PlannedTarget, Target, get_target, register_target, targets

for _name, _desc, _issue in [
    ("sgcn", "SGCN GCN accelerator with compressed-sparse features (Amaranth RTL)", 12),
]:
    register_target(PlannedTarget(_name, _desc, _issue))

__all__ = ["OwnModel", "PlannedTarget", "Target", "get_target", "register_target", "targets"]
