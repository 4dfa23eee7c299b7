/*
 * Stack measurement and budgets for the QEMU harness: see stack.h.
 */
#include "stack.h"

#include <stdio.h>
#include <stdlib.h>

#include "semihost.h"

volatile uint32_t stack_depth;
stack_entry *stack_current;

static stack_entry *entries;
static stack_entry **entries_tail = &entries;

/* The paint never goes below the harness's own limit, plus room for the
 * fault handler's exception frame. */
#define STACK_FLOOR_SLACK 256u

volatile uint32_t *stack_begin(stack_entry *e, uint32_t budget, uint32_t *top)
{
    if (!e->registered) {
        e->registered = 1;
        *entries_tail = e;
        entries_tail = &e->next;
        if (entries == e) {
            atexit(stack_report);
        }
    }
    e->budget = budget;
    stack_current = e;
    uint32_t depth = budget != 0u ? budget : STACK_PAINT;
    uintptr_t floor = (uintptr_t)__stack_limit + STACK_FLOOR_SLACK;
    uintptr_t low = (uintptr_t)top - depth;
    if (low < floor || low > (uintptr_t)top) {
        low = floor;
    }
    return (volatile uint32_t *)(low & ~(uintptr_t)3u);
}

void stack_end(stack_entry *e, uint32_t used)
{
    e->calls++;
    if (used > e->max) {
        e->max = used;
    }
    stack_current = NULL;
}

void stack_report(void)
{
    for (stack_entry *e = entries; e != NULL; e = e->next) {
        printf("STACK %s %lu %lu %lu\n", e->name, (unsigned long)e->max, (unsigned long)e->calls,
               (unsigned long)e->budget);
    }
    fflush(stdout);
}

/* ---- called by the fault handler (startup.c) ---- */

static char *put(char *p, const char *s)
{
    while (*s != '\0') {
        *p++ = *s++;
    }
    return p;
}

static char *put_u32(char *p, uint32_t v)
{
    char tmp[10];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10u);
        v /= 10u;
    } while (v != 0u);
    while (n > 0) {
        *p++ = tmp[--n];
    }
    return p;
}

/* Names the measured call a fault happened in, and its budget: a fault with
 * CFSR STKOF there means the call needed more stack than that. */
void harness_fault_note(void);
void harness_fault_note(void)
{
    stack_entry *e = stack_current;
    if (stack_depth == 0u || e == NULL) {
        return;
    }
    static char line[160];
    char *p = line;
    p = put(p, "*** in ");
    p = put(p, e->name);
    if (e->budget != 0u) {
        p = put(p, ", run on a stack budget of ");
        p = put_u32(p, e->budget);
        p = put(p, " bytes (CFSR 0x00100000 = STKOF: it needed more)");
    }
    p = put(p, "\n");
    semihost_write(1, line, (size_t)(p - line));
}
