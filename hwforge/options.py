"""Typed, validated target options: one frozen dataclass per target, parsed once from ``--set key=value``.

Every target's options are a frozen dataclass whose fields are declared with `option`, which records the
default, a one-line meaning and what is allowed (a set of choices or an integer/float range). From that one
declaration come:

- `Options.from_sets`: ``--set`` strings -> a typed instance (unknown key, bad number, value outside the allowed
  set: a one-line `OptionError` naming the key);
- the checks of a directly constructed instance (`Options.check_fields`, called from ``__post_init__``), so a
  configuration built in Python gets the same errors as one from the command line;
- `Options.describe`: the options table of ``hwforge targets --json`` and the README;
- `Options.to_dict` / `Options.from_dict`: the JSON form stored in an artifact's manifest.

Cross-field rules (``acc_width`` depends on ``width``, ...) stay in each class's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from hwforge.errors import ConfigError

T = TypeVar("T", bound="Options")


class OptionError(ConfigError):
    """A bad option value: ``"<owner>: <key>=<value> <reason>"``; the parts stay available so a target that
    embeds another's options (``snf``'s combination engine is a ``gemm`` array) can rename the key."""

    def __init__(self, owner: str, key: str, value: Any, reason: str) -> None:
        self.owner, self.key, self.value, self.reason = owner, key, value, reason
        super().__init__(f"{owner}: {key}={value!r} {reason}")


def option(default: Any, help: str, *, choices: Sequence[Any] | None = None, lo: float | None = None,
           hi: float | None = None, kind: str = "") -> Any:
    """A dataclass field that is a user-visible option.

    ``choices``: the allowed values; ``lo``/``hi``: an inclusive numeric range; ``kind``: a free label shown in
    the options table (``hardware`` / ``program`` for the RTL targets, where only hardware fields change the
    Verilog).
    """
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None, "lo": lo, "hi": hi,
            "kind": kind}
    if isinstance(default, (list, dict, set)):
        raise TypeError("option defaults must be immutable (use a tuple)")
    return dataclasses.field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    if tp is str:
        return "str"
    if typing.get_origin(tp) is tuple:
        (inner, *_) = typing.get_args(tp)
        return f"list[{_type_name(inner)}]"
    raise TypeError(f"unsupported option type {tp!r}")


def _parse_scalar(tp: Any, text: str) -> Any:
    text = text.strip()
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected 0/1 (or true/false)")
    if tp is int:
        return int(text, 0)
    if tp is float:
        return float(text)
    return text


def range_text(lo: float | None, hi: float | None) -> str:
    """``1..32``, ``>= 1e-30`` or ``<= 8``: an inclusive range as error messages and option tables show it."""
    if lo is not None and hi is not None:
        return f"{lo}..{hi}"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def allowed_text(allowed: Any, quote: str = "") -> str:
    """The ``allowed`` entry of a `Options.describe` row as text (choices joined, a range, or empty)."""
    if isinstance(allowed, list):
        return ", ".join(f"{quote}{a}{quote}" for a in allowed)
    if isinstance(allowed, dict):
        return range_text(allowed["min"], allowed["max"])
    return ""


_EXPECTED = {"int": "an integer", "float": "a number", "bool": "0 or 1", "list[int]": "a comma-separated integer list"}


class Options:
    """Mixin for frozen option dataclasses. Subclasses set `OWNER` (the target name in error messages) and call
    `check_fields` first thing in ``__post_init__``."""

    OWNER: ClassVar[str] = "options"
    LOWER_CASE: ClassVar[tuple[str, ...]] = ()
    """String options whose ``--set`` value is case-insensitive (stored lower-case)."""

    # ---- schema ---------------------------------------------------------------------------------------
    @classmethod
    def _fields(cls) -> list[dataclasses.Field]:
        return [f for f in dataclasses.fields(cls) if "help" in f.metadata]  # type: ignore[arg-type]

    @classmethod
    def _types(cls) -> dict[str, Any]:
        return typing.get_type_hints(cls)

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        """One JSON-ready row per option: name, type, default, allowed values, kind, meaning."""
        hints = cls._types()
        rows = []
        for f in cls._fields():
            meta = f.metadata
            if meta["choices"] is not None:
                allowed: Any = list(meta["choices"])
            elif meta["lo"] is not None or meta["hi"] is not None:
                allowed = {"min": meta["lo"], "max": meta["hi"]}
            else:
                allowed = None
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            rows.append({"name": f.name, "type": _type_name(hints[f.name]), "default": default, "allowed": allowed,
                         "kind": meta["kind"], "help": meta["help"]})
        return rows

    # ---- construction ---------------------------------------------------------------------------------
    @classmethod
    def from_sets(cls: type[T], sets: Mapping[str, str]) -> T:
        """Parse ``--set`` strings. Each key must be an option of this class; values are converted by the
        field's type and then checked by the constructor."""
        hints = cls._types()
        known = {f.name: f for f in cls._fields()}
        kwargs: dict[str, Any] = {}
        for key, raw in sets.items():
            if key not in known:
                raise ConfigError(f"{cls.OWNER}: unknown option {key!r}; known options: {', '.join(known)}")
            tp = hints[key]
            name = _type_name(tp)
            try:
                if typing.get_origin(tp) is tuple:
                    (inner, *_) = typing.get_args(tp)
                    kwargs[key] = tuple(_parse_scalar(inner, t) for t in str(raw).split(",") if t.strip())
                else:
                    kwargs[key] = _parse_scalar(tp, str(raw))
            except ValueError:
                raise OptionError(cls.OWNER, key, raw, f"is not {_EXPECTED.get(name, name)}") from None
            if key in cls.LOWER_CASE:
                kwargs[key] = kwargs[key].lower()
        return cls.from_fields(kwargs)

    @classmethod
    def from_fields(cls: type[T], kwargs: Mapping[str, Any]) -> T:
        """Construct from typed values (hook for classes that resolve defaults, e.g. an automatic ``p``)."""
        return cls(**kwargs)

    @classmethod
    def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
        """The instance a manifest's ``options`` describe (lists become tuples; unknown keys are an error)."""
        hints = cls._types()
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        extra = sorted(set(data) - known)
        if extra:
            raise ConfigError(f"{cls.OWNER}: the artifact's options have unknown keys {extra}; recompile it")
        kwargs = {k: tuple(v) if typing.get_origin(hints[k]) is tuple and isinstance(v, list) else v
                  for k, v in data.items()}
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (tuples as lists), every field, in declaration order."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    # ---- checks ---------------------------------------------------------------------------------------
    def check_fields(self) -> None:
        """Type, choice and range checks of every declared option (call from ``__post_init__``)."""
        hints = self._types()
        for f in self._fields():
            value = getattr(self, f.name)
            tp = hints[f.name]
            meta = f.metadata
            if not _is_instance(value, tp):
                raise OptionError(self.OWNER, f.name, value, f"is not {_EXPECTED.get(_type_name(tp), _type_name(tp))}")
            if meta["choices"] is not None and value not in meta["choices"]:
                allowed = ", ".join(str(c) for c in meta["choices"])
                raise OptionError(self.OWNER, f.name, value, f"is not allowed; choose one of {allowed}")
            lo, hi = meta["lo"], meta["hi"]
            if (lo is not None and value < lo) or (hi is not None and value > hi):
                raise OptionError(self.OWNER, f.name, value, f"must be in {range_text(lo, hi)}")


def _is_instance(value: Any, tp: Any) -> bool:
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if typing.get_origin(tp) is tuple:
        (inner, *_) = typing.get_args(tp)
        return isinstance(value, tuple) and all(_is_instance(v, inner) for v in value)
    if isinstance(tp, types.UnionType):
        return any(_is_instance(value, t) for t in typing.get_args(tp))
    return isinstance(value, tp)


def options_table_markdown(cls: type[Options]) -> str:
    """The README's options table for one options class (generated, so docs and code cannot drift)."""
    lines = ["| key | type | default | allowed | meaning |", "|---|---|---|---|---|"]
    for row in cls.describe():
        allowed = allowed_text(row["allowed"], quote="`")
        default = row["default"]
        default_text = ",".join(map(str, default)) if isinstance(default, list) else str(default)
        kind = f" ({row['kind']})" if row["kind"] else ""
        lines.append(f"| `{row['name']}` | {row['type']} | `{default_text}` | {allowed} | {row['help']}{kind} |")
    return "\n".join(lines) + "\n"
