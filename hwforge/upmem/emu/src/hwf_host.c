/* hwforge host-side emulation of the UPMEM SDK: the host API of dpu.h and the stats file.
 *
 * Model: every DPU is its own dlopen()ed copy of the DPU program (a shared object built by
 * hwforge.upmem.emulator), so WRAM globals, __host variables and MRAM (the __mram/__mram_noinit sections plus the
 * MRAM heap, all inside the copy) are per DPU. dpu_launch runs the DPUs of a set one after another (hwf_runtime.c
 * runs each DPU's tasklets as threads). Transfers go by symbol name to __host or MRAM variables, with the SDK's
 * alignment rules. Counts per DPU and tasklet and every transfer go to the JSON file named by $HWFORGE_DPU_STATS,
 * written at dpu_free and at exit. Written from the SDK's documented behaviour; no SDK code.
 */
#include "hwf_internal.h"

static pthread_mutex_t global_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sbuf launches_json, transfers_json;
static uint64_t nr_launches, h2d_bytes, d2h_bytes;
static uint32_t nr_sets, stats_nr_dpus, stats_nr_tasklets, stats_wram_globals, stats_heap_peak;
static uint64_t stats_mram_variables;
static char tmp_dir[PATH_MAX];
static char last_error[512];
static bool atexit_installed;

static void set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    fprintf(stderr, "hwforge-dpu: error: %s\n", last_error);
}

static void record_launch_dpu(struct sbuf *b, const struct hwf_dpu *d, bool first) {
    hwfi_sb_printf(b, "%s\n    {\"dpu\": %u, \"heap_peak_bytes\": %u, \"tasklets\": [", first ? "" : ",", d->index,
                   d->heap_peak);
    for (uint32_t t = 0; t < d->image.nr_tasklets; t++) {
        hwfi_sb_printf(b, "%s{", t ? ", " : "");
        for (int k = 0; k < C_NR; k++)
            hwfi_sb_printf(b, "%s\"%s\": %llu", k ? ", " : "", hwfi_counter_names[k],
                           (unsigned long long)d->counts[t][k]);
        hwfi_sb_printf(b, "}");
    }
    hwfi_sb_printf(b, "]}");
}

/* ------------------------------------------------------------------------------------------------ host API */

static bool valid_set(struct dpu_set_t s) { return s.set && !s.set->freed && s.first + s.count <= s.set->nr_dpus; }

static void remove_tmp_dir(void) {
    if (!tmp_dir[0]) return;
    rmdir(tmp_dir); /* copies are unlinked right after dlopen, so the directory is empty */
}

static void at_exit(void) {
    hwfi_write_stats(NULL);
    remove_tmp_dir();
}

dpu_error_t dpu_alloc(uint32_t nr_dpus, const char *profile, struct dpu_set_t *dpu_set) {
    (void)profile;
    if (!dpu_set) return DPU_ERR_INTERNAL;
    if (nr_dpus == DPU_ALLOCATE_ALL) {
        const char *env = getenv("HWFORGE_EMU_NR_DPUS");
        nr_dpus = env && atoi(env) > 0 ? (uint32_t)atoi(env) : HWF_DEFAULT_ALL_DPUS;
    }
    if (nr_dpus == 0) {
        set_error("dpu_alloc: 0 DPUs requested");
        return DPU_ERR_ALLOCATION;
    }
    struct hwf_set *s = calloc(1, sizeof *s);
    struct hwf_dpu *dpus = aligned_alloc(128, (size_t)nr_dpus * sizeof *dpus); /* counters are cache-line aligned */
    if (!s || !dpus) return DPU_ERR_SYSTEM;
    memset(dpus, 0, (size_t)nr_dpus * sizeof *dpus);
    pthread_mutex_lock(&global_lock);
    s->id = nr_sets++;
    pthread_mutex_unlock(&global_lock);
    s->nr_dpus = nr_dpus;
    s->dpus = dpus;
    for (uint32_t i = 0; i < nr_dpus; i++) {
        dpus[i].set = s;
        dpus[i].index = i;
        pthread_mutex_init(&dpus[i].lock, NULL);
        pthread_cond_init(&dpus[i].cond, NULL);
    }
    if (!atexit_installed) {
        atexit_installed = true;
        atexit(at_exit);
    }
    hwfi_install_signal_handlers();
    if (nr_dpus > stats_nr_dpus) stats_nr_dpus = nr_dpus;
    dpu_set->set = s;
    dpu_set->first = 0;
    dpu_set->count = nr_dpus;
    return DPU_OK;
}

dpu_error_t dpu_alloc_ranks(uint32_t nr_ranks, const char *profile, struct dpu_set_t *dpu_set) {
    if (nr_ranks == DPU_ALLOCATE_ALL) return dpu_alloc(DPU_ALLOCATE_ALL, profile, dpu_set);
    return dpu_alloc(nr_ranks * HWF_RANK_SIZE, profile, dpu_set);
}

dpu_error_t dpu_get_nr_dpus(struct dpu_set_t s, uint32_t *nr_dpus) {
    if (!valid_set(s) || !nr_dpus) return DPU_ERR_INVALID_DPU_SET;
    *nr_dpus = s.count;
    return DPU_OK;
}

dpu_error_t dpu_get_nr_ranks(struct dpu_set_t s, uint32_t *nr_ranks) {
    if (!valid_set(s) || !nr_ranks) return DPU_ERR_INVALID_DPU_SET;
    *nr_ranks = (s.count + HWF_RANK_SIZE - 1) / HWF_RANK_SIZE;
    return DPU_OK;
}

bool hwf_foreach_dpu(struct dpu_set_t s, uint32_t index, struct dpu_set_t *dpu) {
    if (!valid_set(s) || index >= s.count) return false;
    dpu->set = s.set;
    dpu->first = s.first + index;
    dpu->count = 1;
    return true;
}

bool hwf_foreach_rank(struct dpu_set_t s, uint32_t index, struct dpu_set_t *rank) {
    if (!valid_set(s) || index * HWF_RANK_SIZE >= s.count) return false;
    rank->set = s.set;
    rank->first = s.first + index * HWF_RANK_SIZE;
    rank->count = s.count - index * HWF_RANK_SIZE < HWF_RANK_SIZE ? s.count - index * HWF_RANK_SIZE : HWF_RANK_SIZE;
    return true;
}

static int find_segments(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    struct hwf_dpu *d = data;
    if (!info->dlpi_name || strcmp(info->dlpi_name, d->so_path) != 0) return 0;
    d->nr_wram = 0;
    for (int i = 0; i < info->dlpi_phnum && d->nr_wram < 8; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || (ph->p_flags & PF_X)) continue;
        d->wram_lo[d->nr_wram] = info->dlpi_addr + ph->p_vaddr;
        d->wram_hi[d->nr_wram] = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        d->nr_wram++;
    }
    return 1;
}

static int copy_file(const char *from, const char *to) {
    int in = open(from, O_RDONLY);
    if (in < 0) return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0700);
    if (out < 0) {
        close(in);
        return -1;
    }
    char buf[1 << 16];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t)n) != n) {
            rc = -1;
            break;
        }
    if (n < 0) rc = -1;
    close(in);
    close(out);
    return rc;
}

static void unload_dpu(struct hwf_dpu *d) {
    if (d->handle) dlclose(d->handle);
    d->handle = NULL;
    free(d->heap);
    d->heap = NULL;
    free(d->so_path);
    d->so_path = NULL;
}

static dpu_error_t load_dpu(struct hwf_dpu *d, const char *path) {
    unload_dpu(d);
    if (!tmp_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmp_dir, sizeof tmp_dir, "%s/hwforge-dpus-XXXXXX", base && base[0] ? base : "/tmp");
        if (!mkdtemp(tmp_dir)) {
            tmp_dir[0] = 0;
            set_error("dpu_load: cannot create a temporary directory: %s", strerror(errno));
            return DPU_ERR_SYSTEM;
        }
    }
    char copy[PATH_MAX + 64];
    snprintf(copy, sizeof copy, "%s/set%u-dpu%u.so", tmp_dir, d->set->id, d->index);
    /* A private copy per DPU: dlopen of the same file would share one set of globals between DPUs. */
    if (copy_file(path, copy)) {
        set_error("dpu_load: cannot read DPU program %s: %s", path, strerror(errno));
        return DPU_ERR_ELF_NO_SUCH_FILE;
    }
    d->handle = dlopen(copy, RTLD_NOW | RTLD_LOCAL);
    if (!d->handle) {
        set_error("dpu_load: %s is not an emulated DPU program: %s", path, dlerror());
        unlink(copy);
        return DPU_ERR_ELF_INVALID_FILE;
    }
    d->so_path = strdup(copy);
    void (*describe)(struct hwf_image *) = (void (*)(struct hwf_image *))dlsym(d->handle, "hwf_dpu_describe");
    if (!describe) {
        set_error("dpu_load: %s was not built by hwforge's build_emulation (no hwf_dpu_describe)", path);
        return DPU_ERR_ELF_INVALID_FILE;
    }
    describe(&d->image);
    dl_iterate_phdr(find_segments, d);
    unlink(copy);
    if (d->image.abi != HWF_IMAGE_ABI) {
        set_error("dpu_load: %s has image ABI %u, expected %u", path, d->image.abi, HWF_IMAGE_ABI);
        return DPU_ERR_ELF_INVALID_FILE;
    }
    struct hwf_tasklet t0 = {.dpu = d, .id = 0};
    if (d->image.nr_tasklets < 1 || d->image.nr_tasklets > HWF_MAX_TASKLETS)
        hwfi_fault(&t0, "NR_TASKLETS = %u, a DPU runs 1..24 tasklets", d->image.nr_tasklets);
    uint64_t fixed = (uint64_t)d->image.wram_globals_bytes + (uint64_t)d->image.nr_tasklets * d->image.stack_size;
    if (fixed > HWF_WRAM_BYTES)
        hwfi_fault(&t0, "WRAM overflow: globals %u bytes + %u tasklets x %u stack bytes = %llu > %u bytes of WRAM",
                   d->image.wram_globals_bytes, d->image.nr_tasklets, d->image.stack_size, (unsigned long long)fixed,
                   HWF_WRAM_BYTES);
    d->heap_cap = (uint32_t)(HWF_WRAM_BYTES - fixed);
    if (posix_memalign((void **)&d->heap, 64, HWF_WRAM_BYTES)) return DPU_ERR_SYSTEM;
    memset(d->heap, 0, HWF_WRAM_BYTES);
    if (d->image.nr_tasklets > stats_nr_tasklets) stats_nr_tasklets = d->image.nr_tasklets;
    if (d->image.wram_globals_bytes > stats_wram_globals) stats_wram_globals = d->image.wram_globals_bytes;
    uint64_t mram_vars = (uint64_t)(d->image.mram_end - d->image.mram_begin) +
                         (uint64_t)(d->image.mram_noinit_end - d->image.mram_noinit_begin) - d->image.mram_heap_bytes;
    if (mram_vars > stats_mram_variables) stats_mram_variables = mram_vars;
    return DPU_OK;
}

dpu_error_t dpu_load(struct dpu_set_t s, const char *binary_path, struct dpu_program_t **program) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    if (!binary_path) return DPU_ERR_ELF_NO_SUCH_FILE;
    for (uint32_t i = 0; i < s.count; i++) {
        dpu_error_t e = load_dpu(&s.set->dpus[s.first + i], binary_path);
        if (e != DPU_OK) return e;
    }
    if (program) *program = NULL;
    return DPU_OK;
}

dpu_error_t dpu_launch(struct dpu_set_t s, dpu_launch_policy_t policy) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    if (policy != DPU_SYNCHRONOUS && policy != DPU_ASYNCHRONOUS) return DPU_ERR_INVALID_LAUNCH_POLICY;
    for (uint32_t i = 0; i < s.count; i++)
        if (!s.set->dpus[s.first + i].handle) {
            set_error("dpu_launch: DPU %u has no program (call dpu_load first)", s.first + i);
            return DPU_ERR_DPU_DISABLED;
        }
    fflush(stdout);
    struct sbuf rec = {0};
    hwfi_sb_printf(&rec, "%s\n  {\"launch\": %llu, \"set\": %u, \"dpus\": [", nr_launches ? "," : "",
                   (unsigned long long)nr_launches, s.set->id);
    for (uint32_t i = 0; i < s.count; i++) {
        struct hwf_dpu *d = &s.set->dpus[s.first + i];
        hwfi_run_dpu(d);
        if (d->heap_peak > stats_heap_peak) stats_heap_peak = d->heap_peak;
        record_launch_dpu(&rec, d, i == 0);
    }
    hwfi_sb_printf(&rec, "]}");
    pthread_mutex_lock(&global_lock);
    hwfi_sb_printf(&launches_json, "%s", rec.data ? rec.data : "");
    nr_launches++;
    pthread_mutex_unlock(&global_lock);
    free(rec.data);
    fflush(stdout);
    return DPU_OK; /* DPU_ASYNCHRONOUS also completes here: dpu_sync has nothing left to wait for */
}

dpu_error_t dpu_sync(struct dpu_set_t s) { return valid_set(s) ? DPU_OK : DPU_ERR_INVALID_DPU_SET; }

/* Resolve a host-visible symbol on one DPU: a __host variable (WRAM) or an MRAM variable. */
static dpu_error_t resolve(struct hwf_dpu *d, const char *fn, const char *name, uint32_t offset, size_t length,
                           char **addr) {
    if (!d->handle) {
        set_error("%s: DPU %u has no program (call dpu_load first)", fn, d->index);
        return DPU_ERR_DPU_DISABLED;
    }
    void *sym = name ? dlsym(d->handle, name) : NULL;
    ElfW(Sym) *entry = NULL;
    Dl_info info;
    if (!sym || !dladdr1(sym, &info, (void **)&entry, RTLD_DL_SYMENT) || !entry) {
        set_error("%s: no symbol '%s' in the DPU program", fn, name ? name : "(null)");
        return DPU_ERR_UNKNOWN_SYMBOL;
    }
    size_t size = entry->st_size;
    bool mram = hwfi_in_mram(d, sym, size ? size : 1);
    bool host =
        hwfi_inside((uintptr_t)d->image.host_begin, (uintptr_t)d->image.host_end, (uintptr_t)sym, size ? size : 1);
    if (!mram && !host) {
        set_error("%s: '%s' is neither a __host nor an __mram/__mram_noinit variable, so the host cannot access it",
                  fn, name);
        return DPU_ERR_INVALID_SYMBOL_ACCESS;
    }
    uint32_t align = mram ? 8 : 4;
    if (offset % align || length % align) {
        set_error("%s: '%s' offset %u and length %zu must be multiples of %u for %s", fn, name, offset, length, align,
                  mram ? "MRAM" : "WRAM");
        return mram ? DPU_ERR_INVALID_MRAM_ACCESS : DPU_ERR_INVALID_WRAM_ACCESS;
    }
    if ((uint64_t)offset + length > size) {
        set_error("%s: '%s' is %zu bytes; offset %u + length %zu runs past its end", fn, name, size, offset, length);
        return DPU_ERR_INVALID_SYMBOL_ACCESS;
    }
    *addr = (char *)sym + offset;
    return DPU_OK;
}

static void record_transfer(const char *kind, dpu_xfer_t dir, const char *symbol, uint32_t nr_dpus, size_t length) {
    pthread_mutex_lock(&global_lock);
    uint64_t bytes = (uint64_t)nr_dpus * length;
    if (dir == DPU_XFER_TO_DPU)
        h2d_bytes += bytes;
    else
        d2h_bytes += bytes;
    hwfi_sb_printf(&transfers_json,
                   "%s\n  {\"direction\": \"%s\", \"kind\": \"%s\", \"symbol\": \"%s\", \"nr_dpus\": %u, "
                   "\"bytes_per_dpu\": %zu, \"bytes\": %llu, \"after_launch\": %llu}",
                   transfers_json.len ? "," : "", dir == DPU_XFER_TO_DPU ? "to_dpu" : "from_dpu", kind, symbol, nr_dpus,
                   length, (unsigned long long)bytes, (unsigned long long)nr_launches);
    pthread_mutex_unlock(&global_lock);
}

dpu_error_t dpu_prepare_xfer(struct dpu_set_t s, void *buffer) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    for (uint32_t i = 0; i < s.count; i++) s.set->dpus[s.first + i].xfer_buffer = buffer;
    return DPU_OK;
}

dpu_error_t dpu_push_xfer(struct dpu_set_t s, dpu_xfer_t xfer, const char *symbol_name, uint32_t symbol_offset,
                          size_t length, dpu_xfer_flags_t flags) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    if (xfer != DPU_XFER_TO_DPU && xfer != DPU_XFER_FROM_DPU) return DPU_ERR_INVALID_MEMORY_TRANSFER;
    uint32_t moved = 0;
    for (uint32_t i = 0; i < s.count; i++) {
        struct hwf_dpu *d = &s.set->dpus[s.first + i];
        if (!d->xfer_buffer) continue; /* DPUs without a prepared buffer take no part */
        char *addr;
        dpu_error_t e = resolve(d, "dpu_push_xfer", symbol_name, symbol_offset, length, &addr);
        if (e != DPU_OK) return e;
        if (xfer == DPU_XFER_TO_DPU)
            memcpy(addr, d->xfer_buffer, length);
        else
            memcpy(d->xfer_buffer, addr, length);
        moved++;
    }
    if (!(flags & DPU_XFER_NO_RESET))
        for (uint32_t i = 0; i < s.count; i++) s.set->dpus[s.first + i].xfer_buffer = NULL;
    if (moved) record_transfer("push", xfer, symbol_name, moved, length);
    return DPU_OK;
}

static dpu_error_t copy_to_all(const char *fn, struct dpu_set_t s, const char *symbol_name, uint32_t symbol_offset,
                               const void *src, size_t length) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    for (uint32_t i = 0; i < s.count; i++) {
        char *addr;
        dpu_error_t e = resolve(&s.set->dpus[s.first + i], fn, symbol_name, symbol_offset, length, &addr);
        if (e != DPU_OK) return e;
        memcpy(addr, src, length);
    }
    record_transfer(s.count == 1 ? "serial" : "broadcast", DPU_XFER_TO_DPU, symbol_name, s.count, length);
    return DPU_OK;
}

dpu_error_t dpu_broadcast_to(struct dpu_set_t s, const char *symbol_name, uint32_t symbol_offset, const void *src,
                             size_t length, dpu_xfer_flags_t flags) {
    (void)flags;
    return copy_to_all("dpu_broadcast_to", s, symbol_name, symbol_offset, src, length);
}

dpu_error_t dpu_copy_to(struct dpu_set_t s, const char *symbol_name, uint32_t symbol_offset, const void *src,
                        size_t length) {
    return copy_to_all("dpu_copy_to", s, symbol_name, symbol_offset, src, length);
}

dpu_error_t dpu_copy_from(struct dpu_set_t s, const char *symbol_name, uint32_t symbol_offset, void *dst,
                          size_t length) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    if (s.count != 1) {
        set_error("dpu_copy_from: the set has %u DPUs; copy from one DPU (DPU_FOREACH) or use dpu_push_xfer",
                  s.count);
        return DPU_ERR_INVALID_DPU_SET;
    }
    char *addr;
    dpu_error_t e = resolve(&s.set->dpus[s.first], "dpu_copy_from", symbol_name, symbol_offset, length, &addr);
    if (e != DPU_OK) return e;
    memcpy(dst, addr, length);
    record_transfer("serial", DPU_XFER_FROM_DPU, symbol_name, 1, length);
    return DPU_OK;
}

dpu_error_t dpu_log_read(struct dpu_set_t s, FILE *log) {
    (void)log;
    fflush(stdout);
    return valid_set(s) ? DPU_OK : DPU_ERR_INVALID_DPU_SET;
}

dpu_error_t dpu_free(struct dpu_set_t s) {
    if (!valid_set(s)) return DPU_ERR_INVALID_DPU_SET;
    if (s.first != 0 || s.count != s.set->nr_dpus) {
        set_error("dpu_free: free the whole set returned by dpu_alloc, not a part of it");
        return DPU_ERR_INVALID_DPU_SET;
    }
    for (uint32_t i = 0; i < s.count; i++) unload_dpu(&s.set->dpus[i]);
    s.set->freed = true;
    hwfi_write_stats(NULL);
    return DPU_OK;
}

const char *dpu_error_to_string(dpu_error_t status) {
    static const char *const names[] = {
        "DPU_OK", "DPU_ERR_INTERNAL", "DPU_ERR_SYSTEM", "DPU_ERR_DRIVER", "DPU_ERR_ALLOCATION",
        "DPU_ERR_INVALID_DPU_SET", "DPU_ERR_INVALID_THREAD_ID", "DPU_ERR_INVALID_NOTIFY_ID",
        "DPU_ERR_INVALID_WRAM_ACCESS", "DPU_ERR_INVALID_IRAM_ACCESS", "DPU_ERR_INVALID_MRAM_ACCESS",
        "DPU_ERR_INVALID_SYMBOL_ACCESS", "DPU_ERR_MRAM_BUSY", "DPU_ERR_TRANSFER_ALREADY_SET",
        "DPU_ERR_DIFFERENT_DPU_PROGRAMS", "DPU_ERR_CORRUPTED_MEMORY", "DPU_ERR_DPU_DISABLED",
        "DPU_ERR_DPU_ALREADY_RUNNING", "DPU_ERR_INVALID_MEMORY_TRANSFER", "DPU_ERR_INVALID_LAUNCH_POLICY",
        "DPU_ERR_DPU_FAULT", "DPU_ERR_ELF_INVALID_FILE", "DPU_ERR_ELF_NO_SUCH_FILE", "DPU_ERR_ELF_NO_SUCH_SECTION",
        "DPU_ERR_TIMEOUT", "DPU_ERR_INVALID_PROFILE", "DPU_ERR_UNKNOWN_SYMBOL", "DPU_ERR_OVERFLOW",
    };
    if ((unsigned)status < sizeof names / sizeof names[0]) return names[status];
    return "DPU_ERR_UNKNOWN";
}

_Noreturn void hwf_assert_failed(dpu_error_t status, const char *statement, const char *file, int line) {
    hwfi_fault(NULL, "DPU_ASSERT(%s) failed with %s%s%s at %s:%d", statement, dpu_error_to_string(status),
               last_error[0] ? ": " : "", last_error, hwfi_base_name(file), line);
}

/* ------------------------------------------------------------------------------------------------- stats */

void hwfi_write_stats(const char *fault) {
    const char *path = getenv("HWFORGE_DPU_STATS");
    if (!path || !path[0]) return;
    pthread_mutex_lock(&global_lock);
    struct sbuf b = {0};
    hwfi_sb_printf(&b, "{\n\"schema\": 1,\n\"nr_dpus\": %u,\n\"nr_tasklets\": %u,\n\"counters\": [", stats_nr_dpus,
                   stats_nr_tasklets);
    for (int k = 0; k < C_NR; k++) hwfi_sb_printf(&b, "%s\"%s\"", k ? ", " : "", hwfi_counter_names[k]);
    hwfi_sb_printf(&b, "],\n\"wram_bytes\": %u,\n\"wram_globals_bytes\": %u,\n\"heap_peak_bytes\": %u,\n"
                   "\"mram_bytes\": %u,\n\"mram_variables_bytes\": %llu,\n\"nr_launches\": %llu,\n"
                   "\"host_to_dpu_bytes\": %llu,\n\"dpu_to_host_bytes\": %llu,\n",
                   HWF_WRAM_BYTES, stats_wram_globals, stats_heap_peak, HWF_MRAM_BYTES,
                   (unsigned long long)stats_mram_variables, (unsigned long long)nr_launches,
                   (unsigned long long)h2d_bytes, (unsigned long long)d2h_bytes);
    hwfi_sb_printf(&b, "\"fault\": ");
    if (fault) {
        hwfi_sb_printf(&b, "\"");
        for (const char *p = fault; *p; p++) {
            if (*p == '"' || *p == '\\')
                hwfi_sb_printf(&b, "\\%c", *p);
            else if ((unsigned char)*p < 0x20)
                hwfi_sb_printf(&b, " ");
            else
                hwfi_sb_printf(&b, "%c", *p);
        }
        hwfi_sb_printf(&b, "\",\n");
    } else {
        hwfi_sb_printf(&b, "null,\n");
    }
    hwfi_sb_printf(&b, "\"transfers\": [%s\n],\n\"launches\": [%s\n]\n}\n",
                   transfers_json.data ? transfers_json.data : "",
                   launches_json.data ? launches_json.data : "");
    pthread_mutex_unlock(&global_lock);
    char tmp[PATH_MAX + 16];
    snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (f) {
        fwrite(b.data, 1, b.len, f);
        fclose(f);
        rename(tmp, path);
    } else {
        fprintf(stderr, "hwforge-dpu: error: cannot write stats to %s: %s\n", path, strerror(errno));
    }
    free(b.data);
}
