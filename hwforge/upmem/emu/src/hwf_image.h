/* What an emulated DPU program tells the host library about itself (see hwf_dpu_stub.c). */
#ifndef HWF_IMAGE_H
#define HWF_IMAGE_H

#include <stdint.h>

#define HWF_IMAGE_ABI 1

struct hwf_image {
    uint32_t abi;
    uint32_t nr_tasklets;
    uint32_t stack_size;
    uint32_t wram_globals_bytes;
    char *host_begin, *host_end;               /* __host variables (WRAM) */
    char *mram_begin, *mram_end;               /* __mram variables */
    char *mram_noinit_begin, *mram_noinit_end; /* __mram_noinit variables, then the MRAM heap */
    uint8_t *mram_heap;
    uint64_t mram_heap_bytes;
    int (*main_fn)(void);
};

#endif /* HWF_IMAGE_H */
