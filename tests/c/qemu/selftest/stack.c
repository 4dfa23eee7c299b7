/* The stack instrument (stack.h): a call using n bytes of stack is measured
 * as n plus its own frame, within a small margin; a call within its budget
 * runs normally. */
#include <stdint.h>
#include <stdio.h>

#include "stack.h"

/* Touches n bytes of stack below its own frame. */
__attribute__((noinline)) static uint32_t use(uint32_t n)
{
    volatile uint8_t buf[n];
    for (uint32_t i = 0; i < n; i++) {
        buf[i] = (uint8_t)i;
    }
    return buf[n / 2];
}

int main(void)
{
    static stack_entry measured = STACK_ENTRY("use");
    static stack_entry limited = STACK_ENTRY("use_limited");
    int failures = 0;
    static const uint32_t sizes[] = {64, 500, 1500, 4000};
    for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        uint32_t n = sizes[k], r = 0;
        measured.max = 0;
        STACK_CALL(&measured, 0u, r = use(n));
        (void)r;
        /* use()'s own frame (saved registers, alignment) is a few words. */
        int ok = measured.max >= n && measured.max <= n + 64u;
        printf("stack: use(%lu) measured %lu bytes %s\n", (unsigned long)n,
               (unsigned long)measured.max, ok ? "ok" : "WRONG");
        failures += !ok;
    }
    uint32_t r = 0;
    STACK_CALL(&limited, 1024u, r = use(900));
    (void)r;
    printf("stack: use(900) within a budget of 1024: %lu bytes %s\n", (unsigned long)limited.max,
           limited.max <= 1024u ? "ok" : "WRONG");
    failures += limited.max > 1024u;
    return failures;
}
