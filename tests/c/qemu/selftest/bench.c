/*
 * Bench clock accuracy check; run with `-icount shift=0`.
 *
 * 1. Loops of known length (2 instructions per iteration) must read back
 *    within 1% as instructions (ticks * BENCH_CLOCK_INSNS_PER_TICK), also
 *    across a wrap of the real 2^24-tick period.
 * 2. With a 100-tick SysTick period (a wrap every 5000 instructions) the
 *    64-bit extension must stay monotonic over thousands of wraps and still
 *    measure a loop correctly.
 * Prints one "bench: ..." line per measurement; exits 0 if all pass.
 */
#include <stdio.h>

#include "bench_clock.h"

/* Exactly 2*n instructions: SUBS + BNE per iteration (n >= 1). */
static void spin(uint32_t n)
{
    __asm__ volatile("1:\n\tsubs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
}

static int measure(const char *what, uint32_t iterations)
{
    uint64_t expected = 2u * (uint64_t)iterations;
    uint64_t t0 = bench_clock_now();
    spin(iterations);
    uint64_t t1 = bench_clock_now();
    uint64_t got = bench_clock_ticks_to_insns(t1 - t0);
    uint64_t diff = got > expected ? got - expected : expected - got;
    uint64_t ppm = diff * 1000000u / expected;
    int ok = ppm <= 10000u; /* 1% */
    /* newlib-nano's printf has no %llu: all values here fit in 32 bits. */
    printf("bench: %s expected=%lu measured=%lu insns error=%lu ppm %s\n", what,
           (unsigned long)expected, (unsigned long)got, (unsigned long)ppm, ok ? "ok" : "FAIL");
    return ok;
}

int main(void)
{
    int ok = 1;

    bench_clock_init();
    ok &= measure("loop 2e5", 100000u);
    ok &= measure("loop 2e6", 1000000u);
    ok &= measure("loop 2e7", 10000000u);
    /* 9e8 instructions = 18e6 ticks: crosses one full 2^24-tick wrap (~2.5 s). */
    ok &= measure("loop 9e8 (crosses a 2^24-tick wrap)", 450000000u);

    /* Exercise the wrap extension: wrap every 100 ticks. */
    bench_clock_init_period(100u);
    uint64_t prev = bench_clock_now();
    uint64_t start = prev;
    uint32_t backwards = 0;
    for (uint32_t i = 0; i < 200000u; i++) {
        uint64_t now = bench_clock_now();
        if (now < prev) {
            backwards++;
        }
        prev = now;
    }
    uint64_t wraps = (prev - start) / 100u;
    int mono = backwards == 0u && wraps > 1000u;
    printf("bench: monotonic over %lu wraps, %lu backward steps %s\n", (unsigned long)wraps,
           (unsigned long)backwards, mono ? "ok" : "FAIL");
    ok &= mono;
    ok &= measure("loop 2e7 with 100-tick wraps", 10000000u);

    return ok ? 0 : 1;
}
