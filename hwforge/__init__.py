"""hwforge: a hardware-generation compiler from PyTorch models to verified hardware."""

from hwforge.errors import ConfigError, HwforgeError, MissingToolError, UnsupportedOpError, VerificationError

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "HwforgeError",
    "MissingToolError",
    "UnsupportedOpError",
    "VerificationError",
    "__version__",
]
