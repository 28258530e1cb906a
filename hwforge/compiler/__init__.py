"""The compiler: frontends (PyTorch -> IR), passes and the pass pipeline.

    from hwforge.compiler import load_model, run_pipeline, default_int8_pipeline
    m = load_model("mlp-digits")
    q = run_pipeline(m.graph, default_int8_pipeline(bits=8), Calibration(m.calibration)).graph

    spec = OptimizerSpec.from_torch(torch_optimizer)      # optimizer -> spec -> IR (smartupdate target)
    g = lower_optimizer(spec, n=10007)
"""

from hwforge.compiler.frontend import LoadedModel, from_exported, from_torch, load_model
from hwforge.compiler.passes import PASSES, Calibration, Pass, calibrate, default_int8_pipeline, register_pass
from hwforge.compiler.pipeline import PipelineResult, run_pipeline
from hwforge.ir.optim_lowering import lower_optimizer  # re-exported: the optimizer spec and lowering live in ir
from hwforge.ir.optim_spec import OptimizerSpec

__all__ = [
    "PASSES",
    "Calibration",
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
