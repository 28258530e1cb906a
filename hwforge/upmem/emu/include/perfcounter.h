/* hwforge emulation of the UPMEM DPU runtime: perfcounter.h.
 *
 * Under emulation there is no clock. The counter is one per DPU, as on hardware; perfcounter_get() returns an
 * estimate from the counts of all tasklets of the DPU since the last reset: COUNT_INSTRUCTIONS the HWF_COUNT
 * instructions (a 32-bit multiply counts 29), COUNT_CYCLES the cycles of hwforge.upmem.cost's model (issue, one
 * tasklet's chain, MRAM bandwidth). A launch starts with the counter off (COUNT_NOTHING, value 0).
 * hwforge.upmem.cost is the authoritative model; do not compare these numbers with hardware.
 */
#ifndef HWF_DPU_PERFCOUNTER_H
#define HWF_DPU_PERFCOUNTER_H

#include <stdbool.h>
#include <stdint.h>

typedef uint64_t perfcounter_t;
typedef enum _perfcounter_config_t {
    COUNT_SAME = 0,
    COUNT_CYCLES = 1,
    COUNT_INSTRUCTIONS = 2,
    COUNT_NOTHING = 3,
} perfcounter_config_t;

perfcounter_t hwf_perfcounter_config(perfcounter_config_t config, bool reset_value);
perfcounter_t hwf_perfcounter_get(void);
#define perfcounter_config(config, reset_value) hwf_perfcounter_config((config), (reset_value))
#define perfcounter_get() hwf_perfcounter_get()

#endif /* HWF_DPU_PERFCOUNTER_H */
