"""Build-cache keys cover everything that feeds a build: editing a module the RTL generator imports (even outside
``hwforge/rtl``) gives a new key and a fresh conversion; editing a module it never imports does not."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import hwforge
from hwforge.buildcache import digest, module_closure, sources_key, tool_version

# Prints the generator key of the hwforge on PYTHONPATH, converts one tiny design through the disk cache, and
# says which copy of hwforge it ran.
_PROBE = """
import hwforge.rtl.emit as emit
from hwforge.rtl.gemm import GemmConfig
from hwforge.rtl.gemm.sim import emit_verilog
emit_verilog(GemmConfig(rows=1, cols=1, op_depth=4, out_depth=4))
print(emit.__file__)
print(emit.generator_hash())
"""


def _copy_package(dest: Path) -> Path:
    src = Path(hwforge.__file__).resolve().parent
    shutil.copytree(src, dest / "hwforge", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest / "hwforge"


def _probe(src: Path, cache: Path) -> tuple[str, list[str]]:
    """(generator key, files in the emit cache) as a fresh process using the copy at ``src`` sees them."""
    env = {**os.environ, "PYTHONPATH": str(src), "HWFORGE_BUILD_CACHE": str(cache)}
    proc = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, cwd=src,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    where, key = proc.stdout.split()
    assert Path(where).resolve().is_relative_to(src.resolve()), f"the probe imported {where}, not the copy"
    return key, sorted(p.name for p in (cache / "emit").iterdir())


def test_generator_key_follows_transitive_imports(tmp_path: Path) -> None:
    pkg = _copy_package(tmp_path / "src")
    cache = tmp_path / "cache"
    key0, files0 = _probe(tmp_path / "src", cache)
    assert len(files0) == 1

    # hwforge/ir/quant.py is outside hwforge/rtl but the RTL imports it (MULT_BITS): new key, new conversion
    quant = pkg / "ir" / "quant.py"
    quant.write_text(quant.read_text() + "\n# edited by test_generator_key_follows_transitive_imports\n")
    key1, files1 = _probe(tmp_path / "src", cache)
    assert key1 != key0
    assert len(files1) == 2 and set(files0) < set(files1)

    # control: the offload runtime is not imported by the RTL: same key, the cached conversion is reused
    host = pkg / "host" / "offload" / "config.py"
    host.write_text(host.read_text() + "\n# edited by test_generator_key_follows_transitive_imports\n")
    key2, files2 = _probe(tmp_path / "src", cache)
    assert key2 == key1 and files2 == files1


def test_module_closure_is_static_sorted_and_transitive() -> None:
    closure = module_closure("hwforge.rtl")
    assert list(closure) == sorted(closure)
    assert {"hwforge", "hwforge.rtl", "hwforge.rtl.emit", "hwforge.rtl.gemm.top", "hwforge.ir.quant",
            "hwforge.errors", "hwforge.buildcache"} <= set(closure)
    assert not any(m.startswith(("hwforge.host", "hwforge.compiler", "hwforge.zoo")) for m in closure)
    # parents are included: importing hwforge.ir.quant runs hwforge/ir/__init__.py first
    assert "hwforge.ir" in module_closure("hwforge.ir.quant")
    assert sources_key("hwforge.rtl") == sources_key("hwforge.rtl")
    assert sources_key("hwforge.rtl") != sources_key("hwforge.upmem.emulator")


def test_digest_separates_parts() -> None:
    assert digest("ab", "c") != digest("a", "bc")
    assert digest("a", b"b") == digest(b"a", "b")


def test_tool_version_reports_missing_and_caches() -> None:
    assert tool_version("hwforge-no-such-tool-xyz", "--version") == "missing"
    first = tool_version(sys.executable, "--version")
    assert first.startswith("Python ") and tool_version(sys.executable, "--version") is first
