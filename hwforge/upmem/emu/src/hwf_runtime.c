/* hwforge host-side emulation of the UPMEM SDK: the DPU side (runtime functions a DPU program calls).
 *
 * Linked into the host program and exported to the DPU programs it loads (hwf_exports.list): me(), HWF_COUNT,
 * mram_read/mram_write with the DMA rules, barriers, mutexes, the WRAM heap, perfcounters, and the launch of one
 * DPU's tasklets as POSIX threads. Written from the SDK's documented behaviour; no SDK code.
 *
 * A rule violation, a WRAM heap exhaustion, a deadlock or a memory fault prints one line
 * "hwforge-dpu-fault: DPU d tasklet t: ..." on stderr, writes the stats and exits with status 70.
 */
#include "hwf_internal.h"

const char *const hwfi_counter_names[C_NR] = {
    "alu", "mul8", "mul32", "wram_load", "wram_store", "branch",
    "dma_reads", "dma_read_bytes", "dma_writes", "dma_write_bytes", "barrier_waits", "mutex_locks",
};

static __thread struct hwf_tasklet *hwf_cur;

/* ------------------------------------------------------------------------------------------------ utilities */

void hwfi_sb_printf(struct sbuf *b, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        size_t room = b->cap - b->len;
        va_start(ap, fmt);
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)n) cap *= 2;
        char *data = realloc(b->data, cap);
        if (!data) return;
        b->data = data;
        b->cap = cap;
    }
}

/* Print one fault line and end the program; the stats written so far keep the fault message. */
_Noreturn void hwfi_fault(const struct hwf_tasklet *t, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char line[1200];
    if (t)
        snprintf(line, sizeof line, "DPU %u tasklet %u: %s", t->dpu->index, t->id, msg);
    else
        snprintf(line, sizeof line, "host: %s", msg);
    fflush(stdout);
    fprintf(stderr, "hwforge-dpu-fault: %s\n", line);
    fflush(stderr);
    hwfi_write_stats(line);
    _exit(HWF_FAULT_EXIT);
}

const char *hwfi_base_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* "0x... (symbol+off)" for an address inside a loaded DPU program. */
const char *hwfi_describe_addr(const void *addr, char *buf, size_t size) {
    Dl_info info;
    if (dladdr(addr, &info) && info.dli_sname && info.dli_saddr && (uintptr_t)addr >= (uintptr_t)info.dli_saddr)
        snprintf(buf, size, "%p (%s+%lu)", addr, info.dli_sname,
                 (unsigned long)((uintptr_t)addr - (uintptr_t)info.dli_saddr));
    else
        snprintf(buf, size, "%p", addr);
    return buf;
}

bool hwfi_inside(uintptr_t lo, uintptr_t hi, uintptr_t a, size_t n) { return a >= lo && a + n <= hi && a + n >= a; }

static bool overlaps(uintptr_t lo, uintptr_t hi, uintptr_t a, size_t n) { return a < hi && a + n > lo; }

bool hwfi_in_mram(const struct hwf_dpu *d, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    return hwfi_inside((uintptr_t)d->image.mram_begin, (uintptr_t)d->image.mram_end, a, n) ||
           hwfi_inside((uintptr_t)d->image.mram_noinit_begin, (uintptr_t)d->image.mram_noinit_end, a, n);
}

static bool touches_mram(const struct hwf_dpu *d, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    return overlaps((uintptr_t)d->image.mram_begin, (uintptr_t)d->image.mram_end, a, n) ||
           overlaps((uintptr_t)d->image.mram_noinit_begin, (uintptr_t)d->image.mram_noinit_end, a, n);
}

/* WRAM under emulation: the program's data segments (minus MRAM), the mem_alloc heap, the tasklet stacks. */
bool hwfi_in_wram(const struct hwf_dpu *d, const void *p, size_t n) {
    uintptr_t a = (uintptr_t)p;
    if (touches_mram(d, p, n)) return false;
    for (int i = 0; i < d->nr_wram; i++)
        if (hwfi_inside(d->wram_lo[i], d->wram_hi[i], a, n)) return true;
    if (hwfi_inside((uintptr_t)d->heap, (uintptr_t)d->heap + d->heap_cap, a, n)) return true;
    for (uint32_t t = 0; t < d->image.nr_tasklets; t++)
        if (hwfi_inside(d->tasklets[t].stack_lo, d->tasklets[t].stack_hi, a, n)) return true;
    return false;
}

static struct hwf_tasklet *current(const char *what) {
    if (!hwf_cur) hwfi_fault(NULL, "%s called outside a DPU tasklet", what);
    return hwf_cur;
}

/* ---------------------------------------------------------------------------------------- DPU runtime side */

uint32_t hwf_me(void) { return current("me()")->id; }

void hwf_count(int kind, unsigned long long n) {
    struct hwf_tasklet *t = current("HWF_COUNT");
    if (kind < 0 || kind >= HWF_NR_COUNT_KINDS) hwfi_fault(t, "HWF_COUNT: unknown kind %d", kind);
    t->dpu->counts[t->id][kind] += n;
}

static void check_dma(struct hwf_tasklet *t, const char *op, const void *mram, const void *wram, unsigned n,
                      const char *file, int line) {
    struct hwf_dpu *d = t->dpu;
    char a[160];
    file = hwfi_base_name(file);
    if (n < HWF_DMA_MIN || n > HWF_DMA_MAX || n % 8)
        hwfi_fault(t, "%s: DMA size %u bytes is not a multiple of 8 in [8, 2048] at %s:%d", op, n, file, line);
    if ((uintptr_t)mram % 8)
        hwfi_fault(t, "%s: MRAM address %s is not 8-byte aligned (size %u) at %s:%d", op,
                   hwfi_describe_addr(mram, a, sizeof a), n, file, line);
    if ((uintptr_t)wram % 8)
        hwfi_fault(t, "%s: WRAM address %s is not 8-byte aligned (size %u) at %s:%d", op,
                   hwfi_describe_addr(wram, a, sizeof a), n, file, line);
    if (!hwfi_in_mram(d, mram, n)) {
        const char *why = hwfi_in_wram(d, mram, n) ? "points into WRAM, not MRAM"
                          : touches_mram(d, mram, n) ? "runs past the end of the MRAM variable region"
                                                     : "is outside this DPU's MRAM (__mram/__mram_noinit/heap)";
        hwfi_fault(t, "%s: MRAM range %s + %u bytes %s at %s:%d", op, hwfi_describe_addr(mram, a, sizeof a), n, why,
                   file, line);
    }
    if (!hwfi_in_wram(d, wram, n)) {
        const char *why = touches_mram(d, wram, n) ? "points into MRAM, not WRAM" : "is outside this DPU's WRAM";
        hwfi_fault(t, "%s: WRAM range %s + %u bytes %s at %s:%d", op, hwfi_describe_addr(wram, a, sizeof a), n, why,
                   file, line);
    }
}

void hwf_mram_read(const void *from, void *to, unsigned int n, const char *file, int line) {
    struct hwf_tasklet *t = current("mram_read");
    check_dma(t, "mram_read", from, to, n, file, line);
    memcpy(to, from, n);
    t->dpu->counts[t->id][C_DMA_READS] += 1;
    t->dpu->counts[t->id][C_DMA_READ_BYTES] += n;
}

void hwf_mram_write(const void *from, void *to, unsigned int n, const char *file, int line) {
    struct hwf_tasklet *t = current("mram_write");
    check_dma(t, "mram_write", to, from, n, file, line);
    memcpy(to, from, n);
    t->dpu->counts[t->id][C_DMA_WRITES] += 1;
    t->dpu->counts[t->id][C_DMA_WRITE_BYTES] += n;
}

/* Unaligned variants: the DMA engine still moves whole aligned 8-byte words, so the emulator checks and counts the
 * enclosing aligned block (what the runtime transfers), and copies only the requested bytes on a write. */
void *hwf_mram_read_unaligned(const void *from, void *buffer, unsigned int n, const char *file, int line) {
    struct hwf_tasklet *t = current("mram_read_unaligned");
    if (n == 0 || n > HWF_DMA_MAX)
        hwfi_fault(t, "mram_read_unaligned: size %u bytes is not in [1, 2048] at %s:%d", n, hwfi_base_name(file),
                   line);
    uintptr_t lo = (uintptr_t)from & ~(uintptr_t)7, hi = ((uintptr_t)from + n + 7) & ~(uintptr_t)7;
    for (uintptr_t off = 0; off < hi - lo; off += HWF_DMA_MAX) {
        unsigned chunk = (unsigned)(hi - lo - off < HWF_DMA_MAX ? hi - lo - off : HWF_DMA_MAX);
        hwf_mram_read((const void *)(lo + off), (char *)buffer + off, chunk, file, line);
    }
    return (char *)buffer + ((uintptr_t)from - lo);
}

void hwf_mram_write_unaligned(const void *from, void *to, unsigned int n, const char *file, int line) {
    struct hwf_tasklet *t = current("mram_write_unaligned");
    if (n == 0 || n > HWF_DMA_MAX)
        hwfi_fault(t, "mram_write_unaligned: size %u bytes is not in [1, 2048] at %s:%d", n, hwfi_base_name(file),
                   line);
    if (((uintptr_t)from & 7) != ((uintptr_t)to & 7))
        hwfi_fault(t, "mram_write_unaligned: WRAM source %p and MRAM destination %p differ modulo 8 at %s:%d", from,
                   to, hwfi_base_name(file), line);
    uintptr_t lo = (uintptr_t)to & ~(uintptr_t)7, hi = ((uintptr_t)to + n + 7) & ~(uintptr_t)7;
    uintptr_t wlo = (uintptr_t)from & ~(uintptr_t)7;
    unsigned first = (unsigned)(hi - lo > HWF_DMA_MAX ? HWF_DMA_MAX : hi - lo);
    check_dma(t, "mram_write_unaligned", (const void *)lo, (const void *)wlo, first, file, line);
    if (!hwfi_in_mram(t->dpu, (const void *)lo, hi - lo))
        hwfi_fault(t, "mram_write_unaligned: MRAM range %p + %u bytes is outside this DPU's MRAM at %s:%d", to, n,
                   hwfi_base_name(file), line);
    memcpy(to, from, n);
    uint64_t *c = t->dpu->counts[t->id];
    uint64_t edges = ((uintptr_t)to != lo) + (((uintptr_t)to + n) != hi);
    c[C_DMA_READS] += edges; /* read-modify-write of partial words at either end */
    c[C_DMA_READ_BYTES] += 8 * edges;
    c[C_DMA_WRITES] += (hi - lo + HWF_DMA_MAX - 1) / HWF_DMA_MAX;
    c[C_DMA_WRITE_BYTES] += hi - lo;
}

/* Called with d->lock held by a tasklet about to block: if no tasklet can wake it, report the deadlock. */
static void check_deadlock(struct hwf_tasklet *t, const char *what, const void *obj, const char *file, int line) {
    struct hwf_dpu *d = t->dpu;
    if (d->blocked >= d->live) {
        char a[160];
        hwfi_fault(t, "deadlock: %s %s waits, but all %d running tasklets are blocked (%u of %u tasklets have "
                   "finished) at %s:%d", what, hwfi_describe_addr(obj, a, sizeof a), d->live,
                   d->image.nr_tasklets - (uint32_t)d->live, d->image.nr_tasklets, hwfi_base_name(file), line);
    }
}

void hwf_barrier_wait(barrier_t *b, const char *file, int line) {
    struct hwf_tasklet *t = current("barrier_wait");
    struct hwf_dpu *d = t->dpu;
    if (!hwfi_in_wram(d, b, sizeof *b))
        hwfi_fault(t, "barrier_wait: %p is not a barrier in WRAM at %s:%d", (void *)b, hwfi_base_name(file), line);
    if (b->initial_count == 0 || b->initial_count > d->image.nr_tasklets)
        hwfi_fault(t, "barrier_wait: barrier for %u tasklets, but the program runs %u at %s:%d", b->initial_count,
                   d->image.nr_tasklets, hwfi_base_name(file), line);
    pthread_mutex_lock(&d->lock);
    d->counts[t->id][C_BARRIER_WAITS] += 1;
    if (++b->waiting == b->initial_count) {
        /* Release: the waiters stop counting as blocked now, before they get to run again. */
        d->blocked -= b->initial_count - 1;
        b->waiting = 0;
        b->generation++;
        pthread_cond_broadcast(&d->cond);
    } else {
        uint16_t gen = b->generation;
        d->blocked++;
        check_deadlock(t, "barrier", b, file, line);
        while (gen == b->generation) pthread_cond_wait(&d->cond, &d->lock);
    }
    pthread_mutex_unlock(&d->lock);
}

void hwf_mutex_lock(mutex_id_t m, const char *file, int line) {
    struct hwf_tasklet *t = current("mutex_lock");
    struct hwf_dpu *d = t->dpu;
    pthread_mutex_lock(&d->lock);
    d->counts[t->id][C_MUTEX_LOCKS] += 1;
    if (m->locked) {
        /* Wait for a hand-over: mutex_unlock passes the lock to one waiter and un-blocks it at once. */
        m->waiters++;
        d->blocked++;
        check_deadlock(t, "mutex", m, file, line);
        while (m->grants == 0) pthread_cond_wait(&d->cond, &d->lock);
        m->grants--;
    }
    m->locked = 1;
    m->owner = (uint8_t)t->id;
    pthread_mutex_unlock(&d->lock);
}

void hwf_mutex_unlock(mutex_id_t m, const char *file, int line) {
    struct hwf_tasklet *t = current("mutex_unlock");
    struct hwf_dpu *d = t->dpu;
    pthread_mutex_lock(&d->lock);
    if (!m->locked) hwfi_fault(t, "mutex_unlock of a mutex that is not locked at %s:%d", hwfi_base_name(file), line);
    if (m->waiters) {
        m->waiters--;
        m->grants++;
        d->blocked--;
        pthread_cond_broadcast(&d->cond);
    } else {
        m->locked = 0;
    }
    pthread_mutex_unlock(&d->lock);
}

void hwf_sem_take(sem_t *sem, const char *file, int line) {
    struct hwf_tasklet *t = current("sem_take");
    struct hwf_dpu *d = t->dpu;
    pthread_mutex_lock(&d->lock);
    if (sem->count > 0) {
        sem->count--;
    } else {
        /* Wait for a hand-over: sem_give passes its unit to one waiter and un-blocks it at once. */
        sem->waiters++;
        d->blocked++;
        check_deadlock(t, "semaphore", sem, file, line);
        while (sem->grants == 0) pthread_cond_wait(&d->cond, &d->lock);
        sem->grants--;
    }
    pthread_mutex_unlock(&d->lock);
}

void hwf_sem_give(sem_t *sem, const char *file, int line) {
    struct hwf_tasklet *t = current("sem_give");
    struct hwf_dpu *d = t->dpu;
    pthread_mutex_lock(&d->lock);
    if (sem->waiters) {
        sem->waiters--;
        sem->grants++;
        d->blocked--;
        pthread_cond_broadcast(&d->cond);
    } else if (sem->count == UINT8_MAX) {
        hwfi_fault(t, "sem_give: semaphore count overflows 255 at %s:%d", hwfi_base_name(file), line);
    } else {
        sem->count++;
    }
    pthread_mutex_unlock(&d->lock);
}

void *hwf_mem_alloc(size_t size, const char *file, int line) {
    struct hwf_tasklet *t = current("mem_alloc");
    struct hwf_dpu *d = t->dpu;
    pthread_mutex_lock(&d->lock);
    uint32_t start = (d->heap_used + 7u) & ~7u;
    if (size > d->heap_cap || start + size > d->heap_cap)
        hwfi_fault(t, "mem_alloc(%zu): WRAM heap exhausted (%u of %u heap bytes used; WRAM %u = globals %u + "
                   "%u tasklets x %u stack + heap) at %s:%d", size, d->heap_used, d->heap_cap, HWF_WRAM_BYTES,
                   d->image.wram_globals_bytes, d->image.nr_tasklets, d->image.stack_size, hwfi_base_name(file), line);
    d->heap_used = start + (uint32_t)size;
    if (d->heap_used > d->heap_peak) d->heap_peak = d->heap_used;
    pthread_mutex_unlock(&d->lock);
    return d->heap + start;
}

void hwf_mem_reset(void) {
    struct hwf_tasklet *t = current("mem_reset");
    pthread_mutex_lock(&t->dpu->lock);
    t->dpu->heap_used = 0;
    pthread_mutex_unlock(&t->dpu->lock);
}

/* The perfcounter is one per DPU, as on hardware. Its values are estimates from the counts so far, with the rules
 * of hwforge.upmem.cost (instructions with a 32-bit multiply as HWF_MUL32_INSTRUCTIONS; cycles as the largest of
 * issue, one tasklet's chain and MRAM bandwidth). Counters of other tasklets are read without a lock: a snapshot. */
static uint64_t tasklet_instructions(const uint64_t *c) {
    uint64_t n = 0;
    for (int k = 0; k < HWF_NR_COUNT_KINDS; k++) n += k == HWF_MUL32 ? c[k] * HWF_MUL32_INSTRUCTIONS : c[k];
    return n;
}

static uint64_t dpu_estimate(const struct hwf_dpu *d, bool cycles) {
    uint64_t issue = 0, chain = 0, bytes = 0;
    for (uint32_t t = 0; t < d->image.nr_tasklets; t++) {
        const uint64_t *c = d->counts[t];
        uint64_t i = tasklet_instructions(c);
        uint64_t b = c[C_DMA_READ_BYTES] + c[C_DMA_WRITE_BYTES];
        uint64_t ch = HWF_REVOLVER_CYCLES * i + c[C_DMA_READS] * HWF_DMA_READ_ALPHA +
                      c[C_DMA_WRITES] * HWF_DMA_WRITE_ALPHA + b / 2;
        issue += i;
        bytes += b;
        if (ch > chain) chain = ch;
    }
    if (!cycles) return issue;
    uint64_t best = issue > chain ? issue : chain;
    return best > bytes / 2 ? best : bytes / 2;
}

perfcounter_t hwf_perfcounter_get(void) {
    struct hwf_dpu *d = current("perfcounter_get")->dpu;
    switch (d->perf_mode) {
    case COUNT_INSTRUCTIONS: return dpu_estimate(d, false) - d->perf_base;
    case COUNT_CYCLES: return dpu_estimate(d, true) - d->perf_base;
    default: return 0;
    }
}

perfcounter_t hwf_perfcounter_config(perfcounter_config_t config, bool reset_value) {
    struct hwf_dpu *d = current("perfcounter_config")->dpu;
    perfcounter_t now = hwf_perfcounter_get();
    if (config != COUNT_SAME) d->perf_mode = config;
    if (reset_value) d->perf_base = d->perf_mode == COUNT_INSTRUCTIONS ? dpu_estimate(d, false)
                                    : d->perf_mode == COUNT_CYCLES       ? dpu_estimate(d, true)
                                                                          : 0;
    return now;
}

/* ------------------------------------------------------------------------------------------ fault signals */

static void on_signal(int sig, siginfo_t *info, void *ctx) {
    (void)ctx;
    char buf[400];
    const struct hwf_tasklet *t = hwf_cur;
    const char *name = sig == SIGSEGV ? "SIGSEGV" : sig == SIGBUS ? "SIGBUS" : sig == SIGFPE ? "SIGFPE" : "SIGILL";
    int n;
    if (t)
        n = snprintf(buf, sizeof buf, "hwforge-dpu-fault: DPU %u tasklet %u: memory or arithmetic fault (%s) at "
                     "address %p\n", t->dpu->index, t->id, name, info ? info->si_addr : NULL);
    else
        n = snprintf(buf, sizeof buf, "hwforge-dpu-fault: host: %s at address %p (host program)\n", name,
                     info ? info->si_addr : NULL);
    if (n > 0) {
        ssize_t w = write(2, buf, (size_t)n);
        (void)w;
    }
    _exit(HWF_FAULT_EXIT);
}

void hwfi_install_signal_handlers(void) {
    static bool done;
    if (done) return;
    done = true;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
}

/* ------------------------------------------------------------------------------------------------ launch */

static void *tasklet_main(void *arg) {
    struct hwf_tasklet *t = arg;
    struct hwf_dpu *d = t->dpu;
    stack_t alt;
    alt.ss_sp = malloc(SIGSTKSZ * 4);
    alt.ss_size = SIGSTKSZ * 4;
    alt.ss_flags = 0;
    if (alt.ss_sp) sigaltstack(&alt, NULL);
    hwf_cur = t;
    d->image.main_fn();
    hwf_cur = NULL;
    pthread_mutex_lock(&d->lock);
    d->live--;
    if (d->live > 0 && d->blocked >= d->live) {
        hwf_cur = t;
        hwfi_fault(t, "deadlock: tasklet %u returned from main while the %d other running tasklets wait at a "
                   "barrier or mutex", t->id, d->live);
    }
    pthread_mutex_unlock(&d->lock);
    return NULL;
}

void hwfi_run_dpu(struct hwf_dpu *d) {
    uint32_t n = d->image.nr_tasklets;
    memset(d->counts, 0, sizeof d->counts);
    d->perf_mode = COUNT_NOTHING; /* a launch boots the DPU: the perfcounter is off until configured */
    d->perf_base = 0;
    d->heap_used = 0; /* a launch boots the DPU: the heap starts empty */
    d->heap_peak = 0;
    d->live = (int)n;
    d->blocked = 0;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 8u << 20);
    for (uint32_t i = 0; i < n; i++) {
        struct hwf_tasklet *t = &d->tasklets[i];
        memset(t, 0, sizeof *t);
        t->dpu = d;
        t->id = i;
    }
    /* Stack bounds are known before any tasklet runs, so a DMA into another tasklet's stack is recognised. */
    void *stacks[HWF_MAX_TASKLETS];
    for (uint32_t i = 0; i < n; i++) {
        if (posix_memalign(&stacks[i], 4096, 8u << 20)) hwfi_fault(NULL, "out of host memory for tasklet stacks");
        d->tasklets[i].stack_lo = (uintptr_t)stacks[i];
        d->tasklets[i].stack_hi = (uintptr_t)stacks[i] + (8u << 20);
    }
    for (uint32_t i = 0; i < n; i++) {
        pthread_attr_setstack(&attr, stacks[i], 8u << 20);
        if (pthread_create(&d->tasklets[i].thread, &attr, tasklet_main, &d->tasklets[i]))
            hwfi_fault(NULL, "cannot start tasklet %u of DPU %u", i, d->index);
    }
    for (uint32_t i = 0; i < n; i++) pthread_join(d->tasklets[i].thread, NULL);
    for (uint32_t i = 0; i < n; i++) {
        free(stacks[i]);
        d->tasklets[i].stack_lo = d->tasklets[i].stack_hi = 0;
    }
    pthread_attr_destroy(&attr);
}
