"""PyTorch -> IR frontend.

`aten_lowering`: a ``torch.export`` program (or an ``nn.Module``, exported first) -> float IR graph.
`model_loading`: MODEL specs (zoo name, ``path/to/file.py:function``, ``.pt2``) -> `LoadedModel`.
"""

from hwforge.compiler.frontend.aten_lowering import from_exported, from_torch, where
from hwforge.compiler.frontend.model_loading import LoadedModel, call_user_file, load_model

__all__ = ["LoadedModel", "call_user_file", "from_exported", "from_torch", "load_model", "where"]
