/* Linked into every emulated DPU program (.so): tells the host library where this DPU's memories are.
 *
 * Compiled by hwforge.upmem.emulator with -DNR_TASKLETS, -DHWF_WRAM_GLOBALS_BYTES (WRAM globals of the DPU object,
 * measured from its ELF sections) and -DHWF_MRAM_HEAP_BYTES (64 MB minus the MRAM variables). The section bounds
 * come from hwf_mram.ld.
 */
#include <stdint.h>
#include "defs.h"
#include "hwf_image.h"

extern char __hwf_host_begin[], __hwf_host_end[];
extern char __hwf_mram_begin[], __hwf_mram_end[];
extern char __hwf_mram_noinit_begin[], __hwf_mram_noinit_end[];

/* The MRAM heap: the rest of the DPU's 64 MB MRAM, after all MRAM variables (last in hwf_mram_noinit). */
__attribute__((section(".bss.hwf_mram_zheap"), aligned(8), used)) uint8_t __sys_used_mram_end[HWF_MRAM_HEAP_BYTES];

int main(void);

void hwf_dpu_describe(struct hwf_image *image) {
    image->abi = HWF_IMAGE_ABI;
    image->nr_tasklets = NR_TASKLETS;
    image->stack_size = STACK_SIZE_DEFAULT;
    image->wram_globals_bytes = HWF_WRAM_GLOBALS_BYTES;
    image->host_begin = __hwf_host_begin;
    image->host_end = __hwf_host_end;
    image->mram_begin = __hwf_mram_begin;
    image->mram_end = __hwf_mram_end;
    image->mram_noinit_begin = __hwf_mram_noinit_begin;
    image->mram_noinit_end = __hwf_mram_noinit_end;
    image->mram_heap = __sys_used_mram_end;
    image->mram_heap_bytes = HWF_MRAM_HEAP_BYTES;
    image->main_fn = main;
}
