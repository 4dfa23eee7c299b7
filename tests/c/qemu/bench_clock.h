/*
 * Instruction counter for benchmarks under QEMU mps2-an505 (Cortex-M33).
 *
 * QEMU models no DWT cycle counter, so this counts SysTick ticks, extended
 * from 24 to 64 bits by the SysTick interrupt (one interrupt every 2^24
 * ticks, ~0.84 s of virtual time; it costs a handful of instructions).
 *
 * Units. SysTick runs from the processor clock (CLKSOURCE=1), which QEMU
 * models as the board's SYSCLK: 20 MHz on mps2-an505, i.e. one tick per
 * 50 ns of QEMU's virtual clock. Run QEMU with `-icount shift=0` and the
 * virtual clock advances exactly 1 ns per executed instruction, so
 *
 *     instructions = ticks * BENCH_CLOCK_INSNS_PER_TICK   (= ticks * 50)
 *
 * with a resolution of 50 instructions (+-1 tick per measurement).
 * Measured (tests/c/qemu/selftest/bench.c): loops of 2*10^5 .. 9*10^8
 * instructions read back exactly, or within one tick; the only error is
 * bench_clock_now()'s own ~20 instructions and that one-tick granularity.
 * These are instruction counts, not Cortex-M33 cycles: every instruction
 * (load, multiply, taken branch) counts as one.
 *
 *   run.sh bench.elf -icount shift=0        # deterministic, reproducible
 *
 * Without -icount the virtual clock follows host wall time and the numbers
 * are only a noisy wall-clock measure. With `-icount shift=N` one tick is
 * 50 / 2^N instructions.
 *
 * Usage:
 *   bench_clock_init();
 *   uint64_t t0 = bench_clock_now();
 *   work();
 *   uint64_t insns = bench_clock_ticks_to_insns(bench_clock_now() - t0);
 */
#ifndef CHUNKPROV_QEMU_BENCH_CLOCK_H
#define CHUNKPROV_QEMU_BENCH_CLOCK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* SysTick input clock on QEMU mps2-an505 (SYSCLK). */
#define BENCH_CLOCK_HZ 20000000u

/* Instructions per tick under `-icount shift=0` (10^9 ns/s / 20 MHz). */
#define BENCH_CLOCK_INSNS_PER_TICK 50u

/* Start SysTick (processor clock, interrupt on wrap) and reset the count
 * to ~0. Uses the SysTick exception; the harness defines its handler. */
void bench_clock_init(void);

/* Ticks since bench_clock_init(); monotonic, safe to call from any context.
 * Takes about 20 instructions; masks interrupts briefly. */
uint64_t bench_clock_now(void);

static inline uint64_t bench_clock_ticks_to_insns(uint64_t ticks)
{
    return ticks * BENCH_CLOCK_INSNS_PER_TICK;
}

/* Self-test hook: like bench_clock_init() but wrapping every `ticks` ticks
 * (2..2^24) so that the 64-bit extension can be exercised quickly. */
void bench_clock_init_period(uint32_t ticks);

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_QEMU_BENCH_CLOCK_H */
