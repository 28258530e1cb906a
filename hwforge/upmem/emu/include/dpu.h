/* hwforge host-side emulation of the UPMEM host API: dpu.h.
 *
 * Written from the documented behaviour of the SDK's host library (no SDK code). A DPU program is a shared object
 * built by hwforge (hwforge.upmem.emulator.build_emulation); dpu_load gives every DPU its own loaded copy, so each
 * DPU has its own WRAM globals, __host variables and MRAM. dpu_launch runs the DPUs of the set one after another,
 * each with NR_TASKLETS POSIX threads. A rule violation ("DPU fault") prints one line starting with
 * "hwforge-dpu-fault:" on stderr and ends the host program with exit status 70.
 */
#ifndef HWF_HOST_DPU_H
#define HWF_HOST_DPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum _dpu_error_t {
    DPU_OK = 0,
    DPU_ERR_INTERNAL,
    DPU_ERR_SYSTEM,
    DPU_ERR_DRIVER,
    DPU_ERR_ALLOCATION,
    DPU_ERR_INVALID_DPU_SET,
    DPU_ERR_INVALID_THREAD_ID,
    DPU_ERR_INVALID_NOTIFY_ID,
    DPU_ERR_INVALID_WRAM_ACCESS,
    DPU_ERR_INVALID_IRAM_ACCESS,
    DPU_ERR_INVALID_MRAM_ACCESS,
    DPU_ERR_INVALID_SYMBOL_ACCESS,
    DPU_ERR_MRAM_BUSY,
    DPU_ERR_TRANSFER_ALREADY_SET,
    DPU_ERR_DIFFERENT_DPU_PROGRAMS,
    DPU_ERR_CORRUPTED_MEMORY,
    DPU_ERR_DPU_DISABLED,
    DPU_ERR_DPU_ALREADY_RUNNING,
    DPU_ERR_INVALID_MEMORY_TRANSFER,
    DPU_ERR_INVALID_LAUNCH_POLICY,
    DPU_ERR_DPU_FAULT,
    DPU_ERR_ELF_INVALID_FILE,
    DPU_ERR_ELF_NO_SUCH_FILE,
    DPU_ERR_ELF_NO_SUCH_SECTION,
    DPU_ERR_TIMEOUT,
    DPU_ERR_INVALID_PROFILE,
    DPU_ERR_UNKNOWN_SYMBOL,
    DPU_ERR_OVERFLOW,
} dpu_error_t;

typedef enum _dpu_launch_policy_t { DPU_ASYNCHRONOUS = 0, DPU_SYNCHRONOUS = 1 } dpu_launch_policy_t;
typedef enum _dpu_xfer_t { DPU_XFER_TO_DPU = 0, DPU_XFER_FROM_DPU = 1 } dpu_xfer_t;
typedef enum _dpu_xfer_flags_t {
    DPU_XFER_DEFAULT = 0,
    DPU_XFER_NO_RESET = 1,
    DPU_XFER_ASYNC = 2,
} dpu_xfer_flags_t;

/* All DPUs of the machine. Under emulation: $HWFORGE_EMU_NR_DPUS (default 64). */
#define DPU_ALLOCATE_ALL ((uint32_t)(-1))
/* Symbol name of the MRAM heap (DPU_MRAM_HEAP_POINTER on the DPU side) for dpu_copy_to/dpu_push_xfer. */
#define DPU_MRAM_HEAP_POINTER_NAME "__sys_used_mram_end"

struct hwf_set;
struct dpu_program_t;

/* A set of DPUs, or one DPU of a set: DPUs [first, first + count) of an allocation. */
struct dpu_set_t {
    struct hwf_set *set;
    uint32_t first;
    uint32_t count;
};

dpu_error_t dpu_alloc(uint32_t nr_dpus, const char *profile, struct dpu_set_t *dpu_set);
dpu_error_t dpu_alloc_ranks(uint32_t nr_ranks, const char *profile, struct dpu_set_t *dpu_set);
dpu_error_t dpu_free(struct dpu_set_t dpu_set);
dpu_error_t dpu_get_nr_ranks(struct dpu_set_t dpu_set, uint32_t *nr_ranks);
dpu_error_t dpu_get_nr_dpus(struct dpu_set_t dpu_set, uint32_t *nr_dpus);
dpu_error_t dpu_load(struct dpu_set_t dpu_set, const char *binary_path, struct dpu_program_t **program);
dpu_error_t dpu_launch(struct dpu_set_t dpu_set, dpu_launch_policy_t policy);
dpu_error_t dpu_sync(struct dpu_set_t dpu_set);
dpu_error_t dpu_copy_to(struct dpu_set_t dpu_set, const char *symbol_name, uint32_t symbol_offset, const void *src,
                        size_t length);
dpu_error_t dpu_copy_from(struct dpu_set_t dpu_set, const char *symbol_name, uint32_t symbol_offset, void *dst,
                          size_t length);
dpu_error_t dpu_broadcast_to(struct dpu_set_t dpu_set, const char *symbol_name, uint32_t symbol_offset,
                             const void *src, size_t length, dpu_xfer_flags_t flags);
dpu_error_t dpu_prepare_xfer(struct dpu_set_t dpu_set, void *buffer);
dpu_error_t dpu_push_xfer(struct dpu_set_t dpu_set, dpu_xfer_t xfer, const char *symbol_name, uint32_t symbol_offset,
                          size_t length, dpu_xfer_flags_t flags);
/* DPU printf output goes straight to the host's stdout under emulation; this only flushes it. */
dpu_error_t dpu_log_read(struct dpu_set_t dpu_set, FILE *log);
const char *dpu_error_to_string(dpu_error_t status);

/* Internal helpers of the iteration and assertion macros. */
bool hwf_foreach_dpu(struct dpu_set_t set, uint32_t index, struct dpu_set_t *dpu);
bool hwf_foreach_rank(struct dpu_set_t set, uint32_t index, struct dpu_set_t *rank);
_Noreturn void hwf_assert_failed(dpu_error_t status, const char *statement, const char *file, int line);

#define HWF_FOREACH_PICK(_a, _b, NAME, ...) NAME
#define _DPU_FOREACH_X(set, dpu) for (uint32_t __hwf_i = 0; hwf_foreach_dpu((set), __hwf_i, &(dpu)); __hwf_i++)
#define _DPU_FOREACH_I(set, dpu, i) for ((i) = 0; hwf_foreach_dpu((set), (i), &(dpu)); (i)++)
/* DPU_FOREACH(set, dpu) or DPU_FOREACH(set, dpu, index): iterate over the DPUs of a set. */
#define DPU_FOREACH(set, ...) HWF_FOREACH_PICK(__VA_ARGS__, _DPU_FOREACH_I, _DPU_FOREACH_X, )(set, __VA_ARGS__)
#define _DPU_RANK_FOREACH_X(set, rank) \
    for (uint32_t __hwf_r = 0; hwf_foreach_rank((set), __hwf_r, &(rank)); __hwf_r++)
#define _DPU_RANK_FOREACH_I(set, rank, i) for ((i) = 0; hwf_foreach_rank((set), (i), &(rank)); (i)++)
#define DPU_RANK_FOREACH(set, ...) \
    HWF_FOREACH_PICK(__VA_ARGS__, _DPU_RANK_FOREACH_I, _DPU_RANK_FOREACH_X, )(set, __VA_ARGS__)

#define DPU_ASSERT(statement) \
    do { \
        dpu_error_t __hwf_status = (statement); \
        if (__hwf_status != DPU_OK) \
            hwf_assert_failed(__hwf_status, #statement, __FILE__, __LINE__); \
    } while (0)
#define DPU_CHECK(statement, on_error) \
    do { \
        dpu_error_t __hwf_status = (statement); \
        if (__hwf_status != DPU_OK) { \
            fprintf(stderr, "%s: %s at %s:%d\n", #statement, dpu_error_to_string(__hwf_status), __FILE__, __LINE__); \
            on_error; \
        } \
    } while (0)

#endif /* HWF_HOST_DPU_H */
