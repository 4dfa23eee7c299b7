/* A call that needs more than its stack budget (stack.h) must fault
 * (exit 103, CFSR STKOF) and the report must name it and the budget. */
#include <stdint.h>
#include <stdio.h>

#include "stack.h"

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
    static stack_entry e = STACK_ENTRY("use_2000");
    uint32_t r = 0;
    puts("stackbudget: 2000 bytes on a budget of 1024");
    STACK_CALL(&e, 1024u, r = use(2000));
    printf("stackbudget: not stopped (%lu)\n", (unsigned long)r);
    return 0;
}
