/*
 * Stack use of a call, measured on the Cortex-M33 (QEMU mps2-an505), and a
 * stack budget enforced by the hardware.
 *
 *   static stack_entry e = STACK_ENTRY("my_function");
 *   STACK_CALL(&e, 1024, r = my_function(a, b));
 *
 * STACK_CALL paints the stack below the caller's stack pointer with a
 * pattern (the budget, or STACK_PAINT bytes when the budget is 0), runs the
 * statement, then finds the deepest word the statement changed: its
 * high-water mark in bytes below the SP it was called with, callbacks and
 * interrupts during the call included. e->max keeps the largest, e->calls
 * the count.
 *
 * With a budget > 0, MSPLIM (the Main stack limit of ARMv8-M) is moved to
 * SP - budget for the duration of the call: a call that needs more raises a
 * stack-limit fault (UsageFault STKOF, escalated to HardFault: exit status
 * 103, "CFSR=0x00100000"), and the fault report names the entry and its
 * budget. So the code runs on a stack exactly that small, and a regression
 * fails the run instead of going unnoticed.
 *
 * Painting and scanning are inline in the caller (no call between painting
 * and the measured statement), with volatile stores so the compiler cannot
 * turn them into a memset() that would paint over its own frame. Calls that
 * nest (a callback calling back into a measured function) are run, counted
 * but not measured, by the outer call's measurement.
 *
 * At exit, stack_report() (registered by stack.c) prints one line per entry
 * that was called:
 *
 *   STACK <name> <max bytes> <calls> <budget bytes>
 */
#ifndef CHUNKPROV_QEMU_STACK_H
#define CHUNKPROV_QEMU_STACK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes painted below the SP when no budget is given: deeper than anything
 * measured so far (the C ABI's entry points needed up to ~4 KiB). */
#define STACK_PAINT 8192u
/* The paint: a word no pointer, length or ASCII text is likely to equal. */
#define STACK_PATTERN 0xA5C35AC3u

typedef struct stack_entry {
    const char *name;
    uint32_t calls;
    uint32_t max;    /* bytes below the caller's SP, the deepest any call reached */
    uint32_t budget; /* bytes; 0: measured, not limited */
    struct stack_entry *next;
    uint8_t registered;
} stack_entry;

#define STACK_ENTRY(n) {.name = (n)}

/* Harness state shared with the macro (stack.c). */
extern volatile uint32_t stack_depth; /* volatile: the fault handler reads it */
extern stack_entry *stack_current;
extern uint32_t __stack_limit[];

/* Links the entry into the report (once) and returns the lowest address the
 * paint may reach for a stack top of `top` (above the harness's own limit). */
volatile uint32_t *stack_begin(stack_entry *e, uint32_t budget, uint32_t *top);

/* Records one measured call. */
void stack_end(stack_entry *e, uint32_t used);

/* Prints the STACK lines (at exit; callable any time). */
void stack_report(void);

#define STACK_CALL(entry, budget_bytes, stmt)                                          \
    do {                                                                               \
        stack_entry *stack_e_ = (entry);                                               \
        if (stack_depth != 0u) {                                                       \
            stack_e_->calls++;                                                         \
            stmt;                                                                      \
            break;                                                                     \
        }                                                                              \
        uint32_t *stack_top_;                                                          \
        __asm__ volatile("mov %0, sp" : "=r"(stack_top_));                             \
        volatile uint32_t *stack_low_ = stack_begin(stack_e_, (budget_bytes), stack_top_); \
        for (volatile uint32_t *p_ = stack_low_; p_ < (volatile uint32_t *)stack_top_; p_++) { \
            *p_ = STACK_PATTERN;                                                       \
        }                                                                              \
        uint32_t stack_old_limit_;                                                     \
        __asm__ volatile("mrs %0, msplim" : "=r"(stack_old_limit_));                   \
        if ((budget_bytes) != 0u) {                                                    \
            uint32_t limit_ = ((uint32_t)(uintptr_t)stack_top_ - (budget_bytes)) & ~7u; \
            __asm__ volatile("msr msplim, %0" : : "r"(limit_) : "memory");            \
        }                                                                              \
        stack_depth = 1u;                                                              \
        stmt;                                                                          \
        stack_depth = 0u;                                                              \
        __asm__ volatile("msr msplim, %0" : : "r"(stack_old_limit_) : "memory");      \
        volatile uint32_t *q_ = stack_low_;                                            \
        while (q_ < (volatile uint32_t *)stack_top_ && *q_ == STACK_PATTERN) {         \
            q_++;                                                                      \
        }                                                                              \
        stack_end(stack_e_, (uint32_t)((uintptr_t)stack_top_ - (uintptr_t)q_));       \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_QEMU_STACK_H */
