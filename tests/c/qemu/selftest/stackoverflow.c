/* Deep recursion (~256 MiB of stack wanted, 64 KiB available): MSPLIM must
 * turn the overflow into a fault (exit 103) instead of corrupting RAM. */
#include <stddef.h>
#include <stdio.h>

static volatile unsigned budget = 1000000u; /* volatile: not provably infinite */

static int depth(volatile char *prev)
{
    volatile char frame[256];
    frame[0] = prev != NULL ? prev[0] : 0;
    if (budget-- == 0u) {
        return frame[0];
    }
    return depth(frame) + frame[0];
}

int main(void)
{
    puts("selftest stackoverflow: recursing");
    return depth(NULL);
}
