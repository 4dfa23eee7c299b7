/*
 * SysTick based 64-bit tick counter; see bench_clock.h for the units.
 *
 * SysTick counts down on the processor clock: ..., 2, 1, 0, RVR, RVR-1, ...
 * The step 1 -> 0 pends the SysTick exception (as architected, and as QEMU
 * does it: not the reload), so within a period of RVR+1 ticks the counter
 * reads 0, RVR, ..., 1 = 0, 1, ..., RVR ticks elapsed. The handler counts
 * periods; a reader combines that count with the current value. Reads
 * happen with interrupts masked, and a wrap that has happened but not yet
 * been handled (ICSR.PENDSTSET) is accounted for, so the result never goes
 * backwards. Right after init the counter reads 0 until its first tick
 * loads RVR (no exception), which also reads as 0 then 1 elapsed ticks.
 */
#include "bench_clock.h"

#define REG32(addr) (*(volatile uint32_t *)(addr))
#define SYST_CSR REG32(0xE000E010u)
#define SYST_RVR REG32(0xE000E014u)
#define SYST_CVR REG32(0xE000E018u)
#define SCB_ICSR REG32(0xE000ED04u)

#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define ICSR_PENDSTCLR (1u << 25)
#define ICSR_PENDSTSET (1u << 26)

static volatile uint32_t wraps;
static uint32_t period = 1u << 24;

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    wraps = wraps + 1;
}

void bench_clock_init_period(uint32_t ticks)
{
    if (ticks < 2u || ticks > (1u << 24)) {
        ticks = 1u << 24;
    }
    SYST_CSR = 0;
    SCB_ICSR = ICSR_PENDSTCLR;
    period = ticks;
    wraps = 0;
    SYST_RVR = ticks - 1u;
    SYST_CVR = 0; /* any write clears the counter; it reloads on the next tick */
    SYST_CSR = SYST_CSR_CLKSOURCE_CPU | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

void bench_clock_init(void)
{
    bench_clock_init_period(1u << 24);
}

uint64_t bench_clock_now(void)
{
    uint32_t primask;
    __asm__ volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask) : : "memory");

    uint32_t w = wraps;
    uint32_t v = SYST_CVR;
    if (SCB_ICSR & ICSR_PENDSTSET) {
        /* Wrapped, handler not run yet: re-read so v is after the wrap. */
        v = SYST_CVR;
        w++;
    }

    __asm__ volatile("msr primask, %0" : : "r"(primask) : "memory");
    uint32_t in_period = (v == 0u) ? 0u : period - v;
    return (uint64_t)w * period + in_period;
}
