/* A failed assert() calls abort(): run.sh must exit 98. */
#include <assert.h>
#include <stdio.h>

int main(void)
{
    volatile int one = 1;
    puts("selftest abort: failing an assert");
    assert(one == 2);
    return 0;
}
