"""The compiler: frontends (PyTorch -> IR), passes and the pass pipeline.

    from hwforge.compiler import load_model, run_pipeline, default_int8_pipeline
    m = load_model("mlp-digits")
    q = run_pipeline(m.graph, default_int8_pipeline(), {"calibration": m.calibration}).graph

    spec = OptimizerSpec.from_torch(torch_optimizer)      # optimizer -> spec -> IR (smartupdate target)
    g = lower_optimizer(spec, n=10007)
"""

from hwforge.compiler.frontend import LoadedModel, from_exported, from_torch, load_model
from hwforge.compiler.optim import OptimizerSpec, lower_optimizer
from hwforge.compiler.passes import PASSES, Pass, calibrate, default_int8_pipeline, register_pass
from hwforge.compiler.pipeline import PipelineResult, run_pipeline

__all__ = [
    "PASSES",
    "LoadedModel",
    "OptimizerSpec",
    "Pass",
    "PipelineResult",
    "calibrate",
    "default_int8_pipeline",
    "from_exported",
    "from_torch",
    "load_model",
    "lower_optimizer",
    "register_pass",
    "run_pipeline",
]
