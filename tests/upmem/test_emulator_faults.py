"""Every DMA/WRAM/tasklet rule broken on purpose must stop the run with one clear fault line (DpuFaultError).

One DPU program holds all DMA cases; the host picks one at run time (argv[1], pushed to ``which_case``), so the
whole table costs a single build. WRAM overflows need their own builds (they change the program's layout).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hwforge.upmem import DpuFaultError, build_emulation, run_emulation
from hwforge.upmem.emulator import include_dir

# name: (DPU statement run by tasklet 3 of DPU 0, host statement before the launch, expected message pattern;
# {line} is the line of the statement in dpu.c or host.c)
CASES = {
    "mram_misaligned": ("mram_read((__mram_ptr uint8_t *)A + 4, wbuf, 8);", "",
                        r"DPU 0 tasklet 3: mram_read: MRAM address 0x[0-9a-f]+ \(A\+4\) is not 8-byte aligned "
                        r"\(size 8\) at dpu\.c:{line}$"),
    "wram_misaligned": ("mram_read(A, (uint8_t *)wbuf + 4, 8);", "",
                        r"DPU 0 tasklet 3: mram_read: WRAM address 0x[0-9a-f]+ \(wbuf\+4\) is not 8-byte aligned "
                        r"\(size 8\) at dpu\.c:{line}$"),
    "size_not_multiple_of_8": ("mram_read(A, wbuf, 12);", "",
                               r"DPU 0 tasklet 3: mram_read: DMA size 12 bytes is not a multiple of 8 in \[8, 2048\] "
                               r"at dpu\.c:{line}$"),
    "size_above_2048": ("mram_write(wbuf, B, 4096);", "",
                        r"DPU 0 tasklet 3: mram_write: DMA size 4096 bytes is not a multiple of 8 in \[8, 2048\] "
                        r"at dpu\.c:{line}$"),
    "size_zero": ("mram_read(A, wbuf, 0);", "", r"DMA size 0 bytes is not a multiple of 8 in \[8, 2048\]"),
    "mram_address_in_wram": ("mram_read(wbuf, wbuf + 8, 8);", "",
                             r"DPU 0 tasklet 3: mram_read: MRAM range 0x[0-9a-f]+ \(wbuf\+0\) \+ 8 bytes points "
                             r"into WRAM, not MRAM at dpu\.c:{line}$"),
    "wram_pointer_in_mram": ("mram_read(A, B, 8);", "",
                             r"DPU 0 tasklet 3: mram_read: WRAM range 0x[0-9a-f]+ \(B\+0\) \+ 8 bytes points into "
                             r"MRAM, not WRAM at dpu\.c:{line}$"),
    "wram_outside": ("mram_read(A, (void *)0x1000, 16);", "",
                     r"WRAM range 0x1000 \+ 16 bytes is outside this DPU's WRAM at dpu\.c:{line}$"),
    "write_unaligned_modulo": ("mram_write_unaligned(wbuf, (__mram_ptr uint8_t *)A + 3, 5);", "",
                               r"DPU 0 tasklet 3: mram_write_unaligned: WRAM source 0x[0-9a-f]+ and MRAM destination "
                               r"0x[0-9a-f]+ differ modulo 8 at dpu\.c:{line}$"),
    "heap_exhausted": ("mem_alloc(70000);", "",
                       r"DPU 0 tasklet 3: mem_alloc\(70000\): WRAM heap exhausted \(0 of \d+ heap bytes used; "
                       r"WRAM 65536 = globals \d+ \+ 16 tasklets x 1024 stack \+ heap\) at dpu\.c:{line}$"),
    "barrier_deadlock": ("barrier_wait(&bar);", "",
                         r"DPU 0 tasklet \d+: deadlock: .*barrier|returned from main while"),
    "segfault": ("*(volatile int *)16 = 1;", "", r"DPU 0 tasklet 3: memory or arithmetic fault \(SIGSEGV\)"),
    "unknown_symbol": ("", 'DPU_ASSERT(dpu_copy_to(set, "nope", 0, &x, 4));',
                       r"host: DPU_ASSERT\(dpu_copy_to\(set, \"nope\", 0, &x, 4\)\) failed with "
                       r"DPU_ERR_UNKNOWN_SYMBOL: dpu_copy_to: no symbol 'nope' in the DPU program at host\.c:{line}$"),
    "not_a_host_variable": ("", 'DPU_ASSERT(dpu_copy_to(set, "wbuf", 0, &x, 4));',
                            r"'wbuf' is neither a __host nor an __mram/__mram_noinit variable"),
    "mram_transfer_misaligned": ("", 'DPU_ASSERT(dpu_copy_to(set, "A", 4, &x, 4));',
                                 r"'A' offset 4 and length 4 must be multiples of 8 for MRAM"),
    "transfer_past_symbol": ("", 'DPU_ASSERT(dpu_copy_to(set, "host_small", 4, &x, 8));',
                             r"'host_small' is 8 bytes; offset 4 \+ length 8 runs past its end"),
    "copy_from_many_dpus": ("", 'DPU_ASSERT(dpu_copy_from(set, "host_small", 0, &x, 4));',
                            r"DPU_ERR_INVALID_DPU_SET: dpu_copy_from: the set has 2 DPUs"),
}
NAMES = sorted(CASES)


def _dpu_source(globals_: str = "") -> str:
    deadlock = NAMES.index("barrier_deadlock")
    lines = ["#include <stdint.h>", "#include <defs.h>", "#include <mram.h>", "#include <alloc.h>",
             "#include <barrier.h>",
             "__mram_noinit uint64_t A[1024];", "__mram_noinit uint64_t B[1024];", "__dma_aligned uint64_t wbuf[512];",
             "__host uint32_t which_case;", "__host __dma_aligned uint8_t host_small[8];",
             "BARRIER_INIT(bar, NR_TASKLETS);", globals_,
             "int main(void) {",
             f"    if (which_case == {deadlock} && me() == 0) return 0;",
             f"    if (me() != 3) {{ if (which_case == {deadlock}) barrier_wait(&bar); return 0; }}",
             "    switch (which_case) {"]
    for i, name in enumerate(NAMES):
        if CASES[name][0]:
            lines.append(f"    case {i}: {CASES[name][0]} break; /* {name} */")
    lines += ["    default: mram_read(A, wbuf, 2048); break;", "    }", "    return 0;", "}", ""]
    return "\n".join(lines)


def _host_source() -> str:
    lines = ["#include <dpu.h>", "#include <stdint.h>", "#include <stdlib.h>",
             "int main(int argc, char **argv) {",
             "    struct dpu_set_t set;",
             "    uint32_t x = 5, which = argc > 1 ? (uint32_t)atoi(argv[1]) : 999;",
             "    DPU_ASSERT(dpu_alloc(2, NULL, &set));",
             "    DPU_ASSERT(dpu_load(set, DPU_BINARY, NULL));",
             '    DPU_ASSERT(dpu_broadcast_to(set, "which_case", 0, &which, 4, DPU_XFER_DEFAULT));',
             "    switch (which) {"]
    for i, name in enumerate(NAMES):
        if CASES[name][1]:
            lines.append(f"    case {i}: {CASES[name][1]} break; /* {name} */")
    lines += ["    default: break;", "    }", "    (void)x;",
              "    DPU_ASSERT(dpu_launch(set, DPU_SYNCHRONOUS));", "    DPU_ASSERT(dpu_free(set));", "    return 0;",
              "}", ""]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def fault_build():
    return build_emulation(_dpu_source(), _host_source(), 16)


def _line_of(source: str, name: str) -> int:
    return next(i for i, text in enumerate(source.splitlines(), 1) if text.endswith(f"/* {name} */"))


@pytest.mark.parametrize("name", NAMES)
def test_rule_violation_is_reported(name: str, fault_build, tmp_path: Path) -> None:
    dpu_stmt, _, pattern = CASES[name]
    line = _line_of(_dpu_source() if dpu_stmt else _host_source(), name)
    with pytest.raises(DpuFaultError) as info:
        run_emulation(fault_build, [str(NAMES.index(name))], tmp_path, timeout=60)
    message = str(info.value)
    assert message.startswith("hwforge-dpu-fault: ") and "\n" not in message
    assert re.search(pattern.replace("{line}", str(line)), message), message


def test_clean_case_runs(fault_build, tmp_path: Path) -> None:
    """With no case selected the program is legal: only the selected statement makes the runs above fail."""
    run = run_emulation(fault_build, [], tmp_path)
    assert run.returncode == 0 and run.stats["fault"] is None
    assert run.stats["launches"][0]["dpus"][1]["tasklets"][3]["dma_read_bytes"] == 2048


@pytest.mark.parametrize(("globals_", "defines", "pattern"), [
    ("uint8_t big[70000];", None,
     r"DPU 0 tasklet 0: WRAM overflow: globals 7\d{4} bytes \+ 16 tasklets x 1024 stack bytes = \d+ > 65536 bytes"),
    ("", {"STACK_SIZE_DEFAULT": "4096"}, r"WRAM overflow: globals \d+ bytes \+ 16 tasklets x 4096 stack bytes"),
])
def test_wram_overflow_is_reported_at_load(globals_: str, defines, pattern: str, tmp_path: Path) -> None:
    build = build_emulation(_dpu_source(globals_), _host_source(), 16, defines=defines)
    with pytest.raises(DpuFaultError, match=pattern):
        run_emulation(build, [], tmp_path)


def test_more_than_24_tasklets_fails_to_compile(tmp_path: Path) -> None:
    src = tmp_path / "k.c"
    src.write_text("#include <defs.h>\nint main(void) { return me(); }\n")
    out = subprocess.run(["gcc", "-fsyntax-only", "-DNR_TASKLETS=25", f"-I{include_dir()}", str(src)],
                         capture_output=True, text=True)
    assert out.returncode != 0 and "NR_TASKLETS must be 1..24" in out.stderr
