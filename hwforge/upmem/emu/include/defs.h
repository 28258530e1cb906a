/* hwforge emulation of the UPMEM DPU runtime: defs.h (tasklet identity and program limits). */
#ifndef HWF_DPU_DEFS_H
#define HWF_DPU_DEFS_H

#include <stdint.h>
#include "attributes.h"

#ifndef NR_TASKLETS
#define NR_TASKLETS 1
#endif
#if NR_TASKLETS < 1 || NR_TASKLETS > 24
#error "NR_TASKLETS must be 1..24 (a DPU runs at most 24 hardware threads)"
#endif

/* Default per-tasklet stack in WRAM (bytes); counted against the 64 KB WRAM. Override with -DSTACK_SIZE_DEFAULT. */
#ifndef STACK_SIZE_DEFAULT
#define STACK_SIZE_DEFAULT 1024
#endif

typedef uint32_t sysname_t;

sysname_t hwf_me(void);
/* The calling tasklet's id, 0..NR_TASKLETS-1. */
#define me() hwf_me()

#endif /* HWF_DPU_DEFS_H */
