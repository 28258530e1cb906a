"""Built-in models (``hwforge zoo``): trained weights ship inside the package, data comes from libraries
installed with hwforge, so nothing is downloaded at run time.

Optimizer settings for the ``smartupdate`` target live in their own registry (`hwforge.zoo.optimizers`).
Add a model with the `register` decorator (see `hwforge.zoo.registry`); ``get(name)`` returns a `ZooModel`.
"""

from hwforge.zoo import digits_models as _digits_models  # noqa: F401  (registers mlp-digits, cnn-digits)
from hwforge.zoo import gcn_models as _gcn_models  # noqa: F401  (registers the GCN/ResGCN models)
from hwforge.zoo.digits import accuracy, digits_split
from hwforge.zoo.gcn import gcn_graph, resgcn_graph
from hwforge.zoo.gcn_models import gcn_from_graph_file
from hwforge.zoo.optimizers import get_optimizer, list_optimizers, optimizer_names
from hwforge.zoo.registry import ZooEntry, ZooModel, entry, get, list_models, names, register

__all__ = [
    "ZooEntry",
    "ZooModel",
    "accuracy",
    "digits_split",
    "entry",
    "gcn_from_graph_file",
    "gcn_graph",
    "get",
    "get_optimizer",
    "list_models",
    "list_optimizers",
    "names",
    "optimizer_names",
    "register",
    "resgcn_graph",
]
