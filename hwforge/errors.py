"""Error types shared by every layer.

The CLI maps them to exit codes (docs/ARCHITECTURE.md, "The commands"): a `HwforgeError` whose ``exit_code``
is 2 means bad input or a missing tool and is printed as one line without a traceback; a `VerificationError` is
a mismatch (exit 1).
"""

from __future__ import annotations


class HwforgeError(Exception):
    """Base class: a problem the user can act on. The message is one line that says what and where."""

    exit_code: int = 2


class ConfigError(HwforgeError):
    """An impossible or malformed option, model file or configuration."""


class UnsupportedOpError(HwforgeError):
    """A model uses an operator that hwforge cannot lower."""


class MissingToolError(HwforgeError):
    """An external tool (Verilator, YoWASP, UPMEM SDK, Vitis) is not installed or not found."""


class IRError(HwforgeError):
    """A graph failed verification; the message names the node and op."""


class InternalError(HwforgeError):
    """An internal consistency check failed: a bug in hwforge, not in the user's input."""

    exit_code = 3


class VerificationError(HwforgeError):
    """Hardware output differs from the PyTorch reference."""

    exit_code = 1
