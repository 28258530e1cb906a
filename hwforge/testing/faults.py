"""Deliberate faults, selected by tests only, to prove that each verifier can fail.

A verifier that cannot fail is worthless, so every target's generator knows a few broken variants (a dropped
tail, a flipped accumulator bit, a skipped bias correction, ...). They are not user options: `hwforge compile
--help` and `hwforge targets` show none of them. A test selects one with `inject` (in-process) or with the
environment variable ``HWFORGE_TEST_FAULTS=component=fault[,component=fault]`` (for CLI subprocesses); the
generator asks `active`. A compile that used a fault records it in the artifact's manifest (``"test_faults"``),
so `hwforge verify` regenerates the same broken variant and the mismatch is reported, never hidden.

Components and their faults are declared by the generators with `declare`, so a typo in a test is an error.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from hwforge.errors import ConfigError

ENV = "HWFORGE_TEST_FAULTS"
_DECLARED: dict[str, tuple[str, ...]] = {}
_INJECTED: dict[str, str] = {}


def declare(component: str, faults: tuple[str, ...]) -> None:
    """Declare the faults a generator knows (called at import by the generator's module)."""
    _DECLARED[component] = tuple(faults)


def known(component: str) -> tuple[str, ...]:
    """The faults ``component`` declares (importing the targets first, which is where generators declare)."""
    if component not in _DECLARED:
        import hwforge.compiler.targets  # noqa: F401  (registers targets, which declare their faults)
    return _DECLARED.get(component, ())


def _check(component: str, fault: str) -> None:
    if fault not in known(component):
        raise ConfigError(f"unknown fault {fault!r} for {component!r}; known: {', '.join(known(component)) or 'none'}")


def _from_env() -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (t.strip() for t in os.environ.get(ENV, "").split(","))):
        component, sep, fault = item.partition("=")
        if not sep:
            raise ConfigError(f"{ENV}: expected component=fault, got {item!r}")
        out[component.strip()] = fault.strip()
    return out


def active(component: str) -> str | None:
    """The fault selected for ``component`` (by `inject` or the environment), or None."""
    fault = _INJECTED.get(component) or _from_env().get(component)
    if fault is not None:
        _check(component, fault)
    return fault


def selected() -> dict[str, str]:
    """Every selected fault (component -> fault), for the manifest."""
    merged = {**_from_env(), **_INJECTED}
    for component, fault in merged.items():
        _check(component, fault)
    return dict(sorted(merged.items()))


@contextlib.contextmanager
def inject(component: str, fault: str) -> Iterator[None]:
    """Select ``fault`` for ``component`` inside the ``with`` block."""
    _check(component, fault)
    previous = _INJECTED.get(component)
    _INJECTED[component] = fault
    try:
        yield
    finally:
        if previous is None:
            _INJECTED.pop(component, None)
        else:
            _INJECTED[component] = previous
