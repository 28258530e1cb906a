"""Tensor types of the IR: shape, element type and optional annotations.

Element types are strings so that they survive the JSON round trip unchanged and read well in the printer:

- ``f32``, ``f16``: IEEE floats.
- ``int8`` and ``intN`` for N in 2..32: signed two's-complement integers of exactly N bits. Hardware cares
  about the bit width, so the IR keeps it even though values are held in a wider host container.
- ``fixed(Qm.n)``: signed fixed point with ``m`` integer bits (sign included) and ``n`` fraction bits, held as
  an ``m+n``-bit integer (the raw value ``v`` means ``v * 2**-n``).

``quant`` and ``sparsity`` are free-form JSON annotations that passes attach for targets (for example
``{"scale": 0.01, "bits": 8}``); they never change the semantics of an op, so type inference ignores them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

_INT_RE = re.compile(r"^int([0-9]+)$")
_FIXED_RE = re.compile(r"^fixed\(Q([0-9]+)\.([0-9]+)\)$")

FLOAT_DTYPES = ("f32", "f16")


def int_dtype(bits: int) -> str:
    """The dtype string for a signed ``bits``-wide integer (``int8`` for 8 bits)."""
    if not 2 <= bits <= 32:
        raise ValueError(f"integer widths must be 2..32 bits, got {bits}")
    return f"int{bits}"


def parse_dtype(dtype: str) -> tuple[str, int, int]:
    """Split a dtype string into ``(kind, bits, frac_bits)``; kind is ``float``, ``int`` or ``fixed``.

    Raises ValueError for anything that is not a valid dtype, so callers can turn it into an IRError that
    names the node.
    """
    if not isinstance(dtype, str):
        raise ValueError(f"dtype must be a string, got {dtype!r}")
    if dtype == "f32":
        return "float", 32, 0
    if dtype == "f16":
        return "float", 16, 0
    m = _INT_RE.match(dtype)
    if m:
        bits = int(m.group(1))
        if 2 <= bits <= 32 and m.group(1) == str(bits):
            return "int", bits, 0
    m = _FIXED_RE.match(dtype)
    if m:
        ib, fb = int(m.group(1)), int(m.group(2))
        if ib >= 1 and 2 <= ib + fb <= 32 and m.group(1) == str(ib) and m.group(2) == str(fb):
            return "fixed", ib + fb, fb
    raise ValueError(f"unknown dtype {dtype!r} (expected f32, f16, int2..int32 or fixed(Qm.n))")


def is_float(dtype: str) -> bool:
    return parse_dtype(dtype)[0] == "float"


def is_int(dtype: str) -> bool:
    """True for ``intN`` (fixed point is integer-stored but is not an ``int`` for op verifiers)."""
    return parse_dtype(dtype)[0] == "int"


def dtype_bits(dtype: str) -> int:
    return parse_dtype(dtype)[1]


def storage_numpy_dtype(dtype: str) -> np.dtype:
    """Host container for values of ``dtype``: the smallest numpy type that holds every value."""
    kind, bits, _ = parse_dtype(dtype)
    if kind == "float":
        return np.dtype(np.float32 if bits == 32 else np.float16)
    for container, width in ((np.int8, 8), (np.int16, 16), (np.int32, 32)):
        if bits <= width:
            return np.dtype(container)
    raise ValueError(f"no container for {dtype}")  # pragma: no cover - parse_dtype bounds bits


_NP_TO_TORCH = {
    np.dtype(np.float32): torch.float32,
    np.dtype(np.float16): torch.float16,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.int32): torch.int32,
    np.dtype(np.int64): torch.int64,
}


def storage_torch_dtype(dtype: str) -> torch.dtype:
    return _NP_TO_TORCH[storage_numpy_dtype(dtype)]


def value_range(dtype: str) -> tuple[int, int] | None:
    """Inclusive raw-value range of an integer or fixed dtype (None for floats)."""
    kind, bits, _ = parse_dtype(dtype)
    if kind == "float":
        return None
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def _check_json(value: Any, where: str) -> None:
    """Reject anything that would not survive a JSON round trip unchanged."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{where}: non-finite float {value!r} is not valid JSON")
        return
    if isinstance(value, list):
        for v in value:
            _check_json(v, where)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ValueError(f"{where}: dictionary keys must be strings, got {k!r}")
            _check_json(v, where)
        return
    raise ValueError(f"{where}: {type(value).__name__} value {value!r} is not a plain JSON value")


def to_plain(value: Any) -> Any:
    """Convert tuples and numpy scalars to plain JSON values (lists, int, float, bool)."""
    if isinstance(value, (tuple, list)):
        return [to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def plain_json(value: Any, where: str) -> Any:
    """Normalise ``value`` with `to_plain` and check it is plain JSON (ValueError otherwise)."""
    v = to_plain(value)
    _check_json(v, where)
    return v


@dataclass(frozen=True)
class TensorType:
    """Shape, element type and optional quantisation/sparsity annotations of one value."""

    shape: tuple[int, ...]
    dtype: str
    quant: dict | None = field(default=None, compare=True)
    sparsity: dict | None = field(default=None, compare=True)

    def __post_init__(self) -> None:
        shape = tuple(int(d) for d in self.shape)
        if any(d < 0 for d in shape):
            raise ValueError(f"negative dimension in shape {shape}")
        object.__setattr__(self, "shape", shape)
        parse_dtype(self.dtype)
        if self.quant is not None:
            object.__setattr__(self, "quant", plain_json(dict(self.quant), "quant annotation"))
        if self.sparsity is not None:
            object.__setattr__(self, "sparsity", plain_json(dict(self.sparsity), "sparsity annotation"))

    def __hash__(self) -> int:  # dict annotations are unhashable; shape+dtype identify the type well enough
        return hash((self.shape, self.dtype))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    def with_(self, **changes: Any) -> TensorType:
        """A copy with some fields replaced (dataclasses.replace, but reads better at call sites)."""
        fields = {"shape": self.shape, "dtype": self.dtype, "quant": self.quant, "sparsity": self.sparsity}
        fields.update(changes)
        return TensorType(**fields)

    def same_value_type(self, other: TensorType) -> bool:
        """Shape and dtype equal; annotations are informational and ignored."""
        return self.shape == other.shape and self.dtype == other.dtype

    def to_json(self) -> dict:
        d: dict[str, Any] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.quant is not None:
            d["quant"] = self.quant
        if self.sparsity is not None:
            d["sparsity"] = self.sparsity
        return d

    @staticmethod
    def from_json(d: Any) -> TensorType:
        if not isinstance(d, dict) or "shape" not in d or "dtype" not in d:
            raise ValueError(f"a type needs 'shape' and 'dtype', got {d!r}")
        if not isinstance(d["shape"], list) or not all(
            isinstance(x, int) and not isinstance(x, bool) for x in d["shape"]
        ):
            raise ValueError(f"shape must be a list of integers, got {d['shape']!r}")
        return TensorType(tuple(d["shape"]), d["dtype"], d.get("quant"), d.get("sparsity"))

    def __str__(self) -> str:
        return f"{self.dtype}[{', '.join(str(d) for d in self.shape)}]"
