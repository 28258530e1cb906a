"""The UPMEM SDK emulation: a real kernel over several DPUs checked against numpy, exact counts, per-DPU state."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from hwforge.errors import ConfigError
from hwforge.upmem import DpuFaultError, build_emulation, dpu_cycles, layer_time, missing_sdk_tools, run_emulation
from hwforge.upmem.emulator import DPU_CFLAGS, elf_section_sizes, include_dir

NR_DPUS, NR_TASKLETS, N = 4, 16, 4096  # N int32 elements per DPU
BLOCK = 256  # bytes per DMA

VEC_DPU = r"""
#include <stdint.h>
#include <defs.h>
#include <mram.h>
#include <alloc.h>
#include <barrier.h>
#include <hwforge_count.h>

#define BLOCK 256
__host uint32_t n_elems;
__host int64_t dot;
int64_t partial[NR_TASKLETS];
__mram_noinit int32_t A[1 << 16];
__mram_noinit int32_t B[1 << 16];
__mram_noinit int32_t C[1 << 16];
BARRIER_INIT(bar, NR_TASKLETS);

int main(void) {
    unsigned id = me();
    if (id == 0) mem_reset();
    barrier_wait(&bar);
    int32_t *a = mem_alloc(BLOCK), *b = mem_alloc(BLOCK), *c = mem_alloc(BLOCK);
    int64_t acc = 0;
    for (uint32_t off = id * (BLOCK / 4); off < n_elems; off += NR_TASKLETS * (BLOCK / 4)) {
        mram_read(&A[off], a, BLOCK);
        mram_read(&B[off], b, BLOCK);
        for (int i = 0; i < BLOCK / 4; i++) {
            c[i] = a[i] + b[i];
            acc += (int64_t)a[i] * b[i];
        }
        HWF_COUNT(HWF_ALU, 2 * BLOCK / 4);
        HWF_COUNT(HWF_MUL32, BLOCK / 4);
        HWF_COUNT(HWF_BRANCH, 1);
        mram_write(c, &C[off], BLOCK);
    }
    partial[id] = acc;
    barrier_wait(&bar);
    if (id == 0) {
        int64_t s = 0;
        for (int t = 0; t < NR_TASKLETS; t++) s += partial[t];
        dot = s;
    }
    return 0;
}
"""

VEC_HOST = r"""
#include <dpu.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int32_t *load(const char *path, size_t n) {
    int32_t *p = malloc(4 * n);
    FILE *f = fopen(path, "rb");
    if (!f || fread(p, 4, n, f) != n) exit(3);
    fclose(f);
    return p;
}

int main(int argc, char **argv) {
    uint32_t nr = (uint32_t)atoi(argv[1]), n = (uint32_t)atoi(argv[2]), i;
    struct dpu_set_t set, dpu;
    DPU_ASSERT(dpu_alloc(nr, NULL, &set));
    DPU_ASSERT(dpu_load(set, DPU_BINARY, NULL));
    uint32_t got;
    DPU_ASSERT(dpu_get_nr_dpus(set, &got));
    int32_t *a = load("a.bin", (size_t)n * nr), *b = load("b.bin", (size_t)n * nr), *c = malloc(4ull * n * nr);
    DPU_FOREACH(set, dpu, i) DPU_ASSERT(dpu_prepare_xfer(dpu, a + (size_t)i * n));
    DPU_ASSERT(dpu_push_xfer(set, DPU_XFER_TO_DPU, "A", 0, 4ull * n, DPU_XFER_DEFAULT));
    DPU_FOREACH(set, dpu, i) DPU_ASSERT(dpu_prepare_xfer(dpu, b + (size_t)i * n));
    DPU_ASSERT(dpu_push_xfer(set, DPU_XFER_TO_DPU, "B", 0, 4ull * n, DPU_XFER_DEFAULT));
    DPU_ASSERT(dpu_broadcast_to(set, "n_elems", 0, &n, sizeof n, DPU_XFER_DEFAULT));
    DPU_ASSERT(dpu_launch(set, DPU_SYNCHRONOUS));
    DPU_FOREACH(set, dpu, i) DPU_ASSERT(dpu_prepare_xfer(dpu, c + (size_t)i * n));
    DPU_ASSERT(dpu_push_xfer(set, DPU_XFER_FROM_DPU, "C", 0, 4ull * n, DPU_XFER_DEFAULT));
    printf("dpus %u\n", got);
    DPU_FOREACH(set, dpu, i) {
        int64_t d;
        DPU_ASSERT(dpu_copy_from(dpu, "dot", 0, &d, sizeof d));
        printf("dot %u %lld\n", i, (long long)d);
    }
    FILE *f = fopen("c.bin", "wb");
    fwrite(c, 4, (size_t)n * nr, f);
    fclose(f);
    DPU_ASSERT(dpu_free(set));
    return 0;
}
"""


@pytest.fixture(scope="module")
def vec_build():
    return build_emulation(VEC_DPU, VEC_HOST, NR_TASKLETS)


def test_vector_kernel_matches_numpy_with_exact_counts(vec_build, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    a = rng.integers(-1000, 1000, NR_DPUS * N, dtype=np.int32)
    b = rng.integers(-1000, 1000, NR_DPUS * N, dtype=np.int32)
    a.tofile(tmp_path / "a.bin")
    b.tofile(tmp_path / "b.bin")
    run = run_emulation(vec_build, [str(NR_DPUS), str(N)], tmp_path)
    assert run.returncode == 0, run.stderr
    c = np.fromfile(tmp_path / "c.bin", dtype=np.int32)
    np.testing.assert_array_equal(c, a + b)
    dots = [int(line.split()[2]) for line in run.stdout.splitlines() if line.startswith("dot")]
    expect = [int(np.dot(a[d * N:(d + 1) * N].astype(np.int64), b[d * N:(d + 1) * N])) for d in range(NR_DPUS)]
    assert dots == expect
    assert f"dpus {NR_DPUS}" in run.stdout

    s = run.stats
    assert s["nr_dpus"] == NR_DPUS and s["nr_tasklets"] == NR_TASKLETS and s["nr_launches"] == 1
    assert s["fault"] is None
    assert s["host_to_dpu_bytes"] == 2 * NR_DPUS * 4 * N + NR_DPUS * 4
    assert s["dpu_to_host_bytes"] == NR_DPUS * 4 * N + NR_DPUS * 8
    assert s["heap_peak_bytes"] == NR_TASKLETS * 3 * BLOCK
    # Every tasklet handles N*4 / BLOCK / NR_TASKLETS = 4 blocks of 64 elements.
    blocks = N * 4 // BLOCK // NR_TASKLETS
    per_tasklet = {"alu": blocks * 128, "mul8": 0, "mul32": blocks * 64, "wram_load": 0, "wram_store": 0,
                   "branch": blocks, "dma_reads": 2 * blocks, "dma_read_bytes": 2 * blocks * BLOCK,
                   "dma_writes": blocks, "dma_write_bytes": blocks * BLOCK, "barrier_waits": 2, "mutex_locks": 0}
    launch = s["launches"][0]
    assert [d["dpu"] for d in launch["dpus"]] == list(range(NR_DPUS))
    for d in launch["dpus"]:
        assert d["tasklets"] == [per_tasklet] * NR_TASKLETS
    assert s["dpus"][3]["total"]["dma_read_bytes"] == NR_TASKLETS * 2 * blocks * BLOCK
    pushes = [t for t in s["transfers"] if t["kind"] == "push"]
    assert [(t["direction"], t["symbol"], t["nr_dpus"], t["bytes_per_dpu"], t["after_launch"]) for t in pushes] == [
        ("to_dpu", "A", NR_DPUS, 4 * N, 0), ("to_dpu", "B", NR_DPUS, 4 * N, 0), ("from_dpu", "C", NR_DPUS, 4 * N, 1)]

    # The cost model on these counts: 16 tasklets of 7,940 instructions each (a 32-bit multiply is 29) keep the
    # pipeline busy, so instruction issue bounds the launch.
    instr = blocks * 128 + blocks * 64 * 29 + blocks
    cyc = dpu_cycles(s, NR_TASKLETS)
    assert cyc["cycles"] == NR_TASKLETS * instr and cyc["per_launch"][0]["bound"] == "issue"
    dma = 2 * blocks * 77 + blocks * 61 + 0.5 * 3 * blocks * BLOCK
    assert cyc["per_launch"][0]["bounds"]["chain"] == 11 * instr + dma
    t = layer_time(s, NR_TASKLETS)
    assert t["host_to_dpu_bytes"] == s["host_to_dpu_bytes"] and t["dpu_to_host_bytes"] == s["dpu_to_host_bytes"]
    assert t["total_s"] == pytest.approx(t["host_to_dpu_s"] + NR_TASKLETS * instr / 350e6 + t["dpu_to_host_s"])


def test_build_is_cached_by_content(vec_build) -> None:
    again = build_emulation(VEC_DPU, VEC_HOST, NR_TASKLETS)
    assert again.build_dir == vec_build.build_dir
    assert again.host_binary.stat().st_mtime_ns == vec_build.host_binary.stat().st_mtime_ns
    other = build_emulation(VEC_DPU, VEC_HOST, 8)
    assert other.build_dir != vec_build.build_dir
    # 8 bytes of __host dot + 16 int64 partial sums + the 4-byte barrier, padded to their alignment.
    assert vec_build.wram_globals_bytes >= 8 + 8 * NR_TASKLETS + 4
    assert vec_build.mram_variables_bytes == 3 * 4 * (1 << 16)


STATE_DPU = r"""
#include <stdint.h>
#include <defs.h>
#include <mutex.h>
#include <barrier.h>
#include <perfcounter.h>
#include <mram.h>
#include <hwforge_count.h>

__host uint64_t heap_sum;
__dma_aligned uint64_t heap_words[2];
__host uint32_t dpu_id;
__host uint32_t launches_seen;
__host uint32_t counter;
__host uint64_t instr;
uint32_t launches;      /* WRAM global: must be per DPU and survive launches */
MUTEX_INIT(lock);
BARRIER_INIT(bar, NR_TASKLETS);

int main(void) {
    if (me() == 0) {
        launches++;
        counter = 0;
        mram_read(DPU_MRAM_HEAP_POINTER, heap_words, sizeof heap_words);
        heap_sum = heap_words[0] + heap_words[1];
    }
    perfcounter_config(COUNT_INSTRUCTIONS, true);
    barrier_wait(&bar);
    for (int i = 0; i < 100; i++) {
        mutex_lock(lock);
        counter += dpu_id + 1;
        mutex_unlock(lock);
    }
    HWF_COUNT(HWF_ALU, 7);
    barrier_wait(&bar);
    if (me() == 0) { launches_seen = launches; instr = perfcounter_get(); }
    return 0;
}
"""

STATE_HOST = r"""
#include <dpu.h>
#include <stdint.h>
#include <stdio.h>

int main(void) {
    struct dpu_set_t set, dpu;
    uint32_t i, ids[3] = {0, 1, 2};
    uint64_t words[2] = {40, 2};
    DPU_ASSERT(dpu_alloc(3, NULL, &set));
    DPU_ASSERT(dpu_load(set, DPU_BINARY, NULL));
    DPU_ASSERT(dpu_copy_to(set, DPU_MRAM_HEAP_POINTER_NAME, 8, &words[1], 8));
    DPU_ASSERT(dpu_copy_to(set, DPU_MRAM_HEAP_POINTER_NAME, 0, &words[0], 8));
    DPU_FOREACH(set, dpu, i) DPU_ASSERT(dpu_prepare_xfer(dpu, &ids[i]));
    DPU_ASSERT(dpu_push_xfer(set, DPU_XFER_TO_DPU, "dpu_id", 0, sizeof(uint32_t), DPU_XFER_DEFAULT));
    DPU_ASSERT(dpu_launch(set, DPU_SYNCHRONOUS));
    DPU_ASSERT(dpu_launch(set, DPU_SYNCHRONOUS));
    DPU_FOREACH(set, dpu, i) {
        uint32_t seen, counter;
        uint64_t instr, sum;
        DPU_ASSERT(dpu_copy_from(dpu, "heap_sum", 0, &sum, 8));
        if (sum != 42) return 5;
        DPU_ASSERT(dpu_copy_from(dpu, "launches_seen", 0, &seen, 4));
        DPU_ASSERT(dpu_copy_from(dpu, "counter", 0, &counter, 4));
        DPU_ASSERT(dpu_copy_from(dpu, "instr", 0, &instr, 8));
        printf("dpu %u seen %u counter %u instr %llu\n", i, seen, counter, (unsigned long long)instr);
    }
    DPU_ASSERT(dpu_free(set));
    return 0;
}
"""


def test_dpus_keep_their_own_state_and_mutexes_serialise(tmp_path: Path) -> None:
    build = build_emulation(STATE_DPU, STATE_HOST, 12)
    run = run_emulation(build, [], tmp_path)
    assert run.returncode == 0, run.stderr  # 5: the MRAM heap did not hold what dpu_copy_to put there
    lines = [line.split() for line in run.stdout.splitlines()]
    assert [(int(w[1]), int(w[3]), int(w[5]), int(w[7])) for w in lines] == [
        (d, 2, 12 * 100 * (d + 1), 12 * 7) for d in range(3)]  # one perfcounter per DPU: all tasklets' ALU ops
    assert run.stats["nr_launches"] == 2
    assert all(t["mutex_locks"] == 100 for launch in run.stats["launches"] for d in launch["dpus"]
               for t in d["tasklets"])


def test_out_dir_build_and_wrapping_arithmetic(tmp_path: Path) -> None:
    dpu = ("#include <stdint.h>\n#include <defs.h>\n__host int32_t x;\n"
           "int main(void) { if (me() == 0) x = x + 1; return 0; }\n")
    host = ("#include <dpu.h>\n#include <stdio.h>\n#include <stdint.h>\n"
            "int main(void) { struct dpu_set_t s; int32_t v = INT32_MAX;\n"
            "  DPU_ASSERT(dpu_alloc(1, NULL, &s)); DPU_ASSERT(dpu_load(s, DPU_BINARY, NULL));\n"
            '  DPU_ASSERT(dpu_copy_to(s, "x", 0, &v, 4)); DPU_ASSERT(dpu_launch(s, DPU_SYNCHRONOUS));\n'
            '  DPU_ASSERT(dpu_copy_from(s, "x", 0, &v, 4)); printf("%d\\n", v); return 0; }\n')
    build = build_emulation(dpu, host, 2, out_dir=tmp_path / "b")
    assert build.build_dir == (tmp_path / "b").resolve() and build.dpu_binary.exists()
    run = run_emulation(build, [], tmp_path)
    assert run.stdout.strip() == str(-(2**31))  # int32 wraps as on the DPU
    assert run.stats["dpus"][0]["total"]["dma_reads"] == 0
    assert build_emulation(dpu, host, 2, out_dir=tmp_path / "b").key == build.key


def test_fault_keeps_the_stats_so_far(vec_build, tmp_path: Path) -> None:
    # 4 DPUs of 4,096 elements, but the MRAM arrays hold 65,536: asking for 70,000 elements overruns MRAM.
    np.zeros(4 * 70_000, dtype=np.int32).tofile(tmp_path / "a.bin")
    np.zeros(4 * 70_000, dtype=np.int32).tofile(tmp_path / "b.bin")
    with pytest.raises(DpuFaultError, match="runs past its end") as info:
        run_emulation(vec_build, ["4", "70000"], tmp_path)
    assert info.value.stats["fault"].startswith("host: DPU_ASSERT(dpu_push_xfer")
    assert info.value.stats["nr_launches"] == 0


EXTRA_DPU = r"""
#include <stdint.h>
#include <defs.h>
#include <mram.h>
#include <sem.h>

__mram_noinit uint8_t M[256];
__host uint32_t got[NR_TASKLETS];
__host uint32_t window_sum;
uint32_t value;
SEMAPHORE_INIT(ready, 0);
__dma_aligned uint8_t buf[32];
__dma_aligned uint8_t src[16];

int main(void) {
    if (me() == 0) {
        uint8_t *p = mram_read_unaligned(&M[3], buf, 10);
        uint32_t s = 0;
        for (int i = 0; i < 10; i++) s += p[i];
        window_sum = s;
        for (int i = 0; i < 16; i++) src[i] = 0xAA;
        mram_write_unaligned(&src[3], &M[3], 5);
        value = 1234;
        for (int t = 1; t < NR_TASKLETS; t++) sem_give(&ready);
    } else {
        sem_take(&ready);
        got[me()] = value + me();
    }
    return 0;
}
"""

EXTRA_HOST = r"""
#include <dpu.h>
#include <stdint.h>
#include <stdio.h>
int main(void) {
    struct dpu_set_t set;
    uint8_t m[256];
    uint32_t got[NR_TASKLETS], sum;
    for (int i = 0; i < 256; i++) m[i] = (uint8_t)i;
    DPU_ASSERT(dpu_alloc(1, NULL, &set));
    DPU_ASSERT(dpu_load(set, DPU_BINARY, NULL));
    DPU_ASSERT(dpu_copy_to(set, "M", 0, m, sizeof m));
    DPU_ASSERT(dpu_launch(set, DPU_SYNCHRONOUS));
    DPU_ASSERT(dpu_copy_from(set, "M", 0, m, sizeof m));
    DPU_ASSERT(dpu_copy_from(set, "got", 0, got, sizeof got));
    DPU_ASSERT(dpu_copy_from(set, "window_sum", 0, &sum, 4));
    printf("%u", sum);
    for (int i = 0; i < 12; i++) printf(" %u", m[i]);
    for (int t = 1; t < NR_TASKLETS; t++) printf(" %u", got[t]);
    printf("\n");
    return 0;
}
"""


def test_semaphores_and_unaligned_mram_access(tmp_path: Path) -> None:
    run = run_emulation(build_emulation(EXTRA_DPU, EXTRA_HOST, 6), [], tmp_path)
    assert run.returncode == 0, run.stderr
    words = [int(w) for w in run.stdout.split()]
    assert words[0] == sum(range(3, 13))
    assert words[1:13] == [0, 1, 2, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 8, 9, 10, 11]
    assert words[13:] == [1234 + t for t in range(1, 6)]
    t0 = run.stats["launches"][0]["dpus"][0]["tasklets"][0]
    # read: the aligned block [0, 16); write: the block [0, 8), whose partly written word is read first (bytes 3..7
    # end exactly at 8, so there is no partial word at the end)
    assert (t0["dma_reads"], t0["dma_read_bytes"], t0["dma_writes"], t0["dma_write_bytes"]) == (2, 16 + 8, 1, 8)


def test_hwf_count_compiles_to_nothing_for_the_real_sdk(tmp_path: Path) -> None:
    src = tmp_path / "k.c"
    src.write_text('#include "hwforge_count.h"\nint main(void) { HWF_COUNT(HWF_ALU, 3); return 0; }\n')
    out = subprocess.run(["gcc", f"-I{include_dir()}", "-Wall", "-Werror", str(src), "-o", str(tmp_path / "k")],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr  # links without the emulator: no hwf_count reference remains
    assert subprocess.run([str(tmp_path / "k")]).returncode == 0


def test_elf_sizes_and_config_errors(tmp_path: Path) -> None:
    src = tmp_path / "s.c"
    src.write_text('#include <attributes.h>\n#include <stdint.h>\nuint8_t w[1000];\nconst uint32_t t[10] = {1};\n'
                   '__mram_noinit uint64_t m[512];\n__host uint32_t h;\n')
    subprocess.run(["gcc", "-c", *DPU_CFLAGS, f"-I{include_dir()}", str(src), "-o", str(tmp_path / "s.o")], check=True)
    sizes = elf_section_sizes(tmp_path / "s.o")
    assert sizes["mram"] == 4096
    assert 1000 + 40 + 4 <= sizes["wram"] <= 1000 + 40 + 4 + 16  # x86-64 aligns arrays >= 16 bytes to 16
    with pytest.raises(ConfigError, match="1..24 tasklets"):
        build_emulation(VEC_DPU, VEC_HOST, 25)
    with pytest.raises(ConfigError, match=r"MRAM overflow: the DPU program's MRAM variables take 68157440 bytes"):
        build_emulation("#include <mram.h>\n__mram_noinit uint8_t huge[65 << 20];\nint main(void) { return 0; }\n",
                        VEC_HOST, 1)
    with pytest.raises(ConfigError, match="pass nr_tasklets instead"):
        build_emulation(VEC_DPU, VEC_HOST, 4, defines={"NR_TASKLETS": "8"})
    with pytest.raises(ConfigError, match="DPU program does not compile"):
        build_emulation("int main(void) { return undefined_thing; }\n", VEC_HOST, 1)
    assert set(missing_sdk_tools()) <= {"dpu-upmem-dpurte-clang", "dpu-pkg-config"}


def test_fault_error_is_a_verification_error() -> None:
    from hwforge.errors import VerificationError

    assert issubclass(DpuFaultError, VerificationError) and DpuFaultError("x").exit_code == 1
