/* Internal declarations shared by hwf_runtime.c (the DPU side) and hwf_host.c (the host API) of hwforge's
 * host-side UPMEM SDK emulation. Names starting with hwfi_ stay inside the host program; hwf_ names are exported
 * to the DPU programs (hwf_exports.list). */
#ifndef HWF_INTERNAL_H
#define HWF_INTERNAL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "barrier.h"
#include "dpu.h"
#include "hwf_image.h"
#include "hwforge_count.h"
#include "mutex.h"
#include "perfcounter.h"
#include "sem.h"

#define HWF_FAULT_EXIT 70
#define HWF_WRAM_BYTES 65536u
#define HWF_MRAM_BYTES (64u << 20)
#define HWF_MAX_TASKLETS 24
#define HWF_DMA_MIN 8u
#define HWF_DMA_MAX 2048u
#define HWF_RANK_SIZE 64u
#define HWF_DEFAULT_ALL_DPUS 64u
/* Constants of the perfcounter estimate (see perfcounter.h); hwforge.upmem.cost holds the documented model. */
#define HWF_REVOLVER_CYCLES 11u
#define HWF_DMA_READ_ALPHA 77u
#define HWF_DMA_WRITE_ALPHA 61u
#define HWF_MUL32_INSTRUCTIONS 29u

/* Counter slots per tasklet; the first HWF_NR_COUNT_KINDS are the HWF_COUNT kinds. */
enum {
    C_DMA_READS = HWF_NR_COUNT_KINDS,
    C_DMA_READ_BYTES,
    C_DMA_WRITES,
    C_DMA_WRITE_BYTES,
    C_BARRIER_WAITS,
    C_MUTEX_LOCKS,
    C_NR
};
_Static_assert(C_NR <= 16, "a tasklet's counter row holds 16 counters");
extern const char *const hwfi_counter_names[C_NR];

struct hwf_dpu;

struct hwf_tasklet {
    struct hwf_dpu *dpu;
    uint32_t id;
    pthread_t thread;
    uintptr_t stack_lo, stack_hi;
};

struct hwf_dpu {
    struct hwf_set *set;
    uint32_t index;
    void *handle;
    char *so_path;
    struct hwf_image image;
    uintptr_t wram_lo[8], wram_hi[8]; /* non-executable segments of this DPU's copy */
    int nr_wram;
    uint8_t *heap;
    uint32_t heap_cap, heap_used, heap_peak;
    void *xfer_buffer;
    struct hwf_tasklet tasklets[HWF_MAX_TASKLETS];
    /* current launch; rows of 16 counters (128 bytes) so tasklets do not share cache lines */
    uint64_t counts[HWF_MAX_TASKLETS][16] __attribute__((aligned(128)));
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int live, blocked;
    perfcounter_config_t perf_mode; /* one perfcounter per DPU */
    uint64_t perf_base;
};

struct hwf_set {
    uint32_t id;
    uint32_t nr_dpus;
    struct hwf_dpu *dpus;
    bool freed;
};

/* A growable text buffer for the stats JSON. */
struct sbuf {
    char *data;
    size_t len, cap;
};

/* Shared helpers (hwf_runtime.c). */
void hwfi_sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
_Noreturn void hwfi_fault(const struct hwf_tasklet *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *hwfi_base_name(const char *path);
const char *hwfi_describe_addr(const void *addr, char *buf, size_t size);
bool hwfi_inside(uintptr_t lo, uintptr_t hi, uintptr_t a, size_t n);
bool hwfi_in_mram(const struct hwf_dpu *d, const void *p, size_t n);
bool hwfi_in_wram(const struct hwf_dpu *d, const void *p, size_t n);
void hwfi_install_signal_handlers(void);
/* Run one DPU's tasklets to completion (one launch); its counts are in d->counts afterwards. */
void hwfi_run_dpu(struct hwf_dpu *d);

/* Stats (hwf_host.c): rewrite $HWFORGE_DPU_STATS; fault is the fault line or NULL. */
void hwfi_write_stats(const char *fault);

#endif /* HWF_INTERNAL_H */
