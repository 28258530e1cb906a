"""Built-in models (``hwforge zoo``): trained weights ship inside the package, data comes from libraries
installed with hwforge, so nothing is downloaded at run time.

Add a model with the `register` decorator (see `hwforge.zoo.registry`); ``get(name)`` returns a `ZooModel`.
"""

from hwforge.zoo import digits_models as _digits_models  # noqa: F401  (registers mlp-digits, cnn-digits)
from hwforge.zoo.digits import accuracy, digits_split
from hwforge.zoo.registry import ZooEntry, ZooModel, entry, get, list_models, names, register

__all__ = ["ZooEntry", "ZooModel", "accuracy", "digits_split", "entry", "get", "list_models", "names", "register"]
