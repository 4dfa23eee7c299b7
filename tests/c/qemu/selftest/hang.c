/* Never exits: run.sh must be stopped by QEMU_TIMEOUT and exit 124. */
#include <stdio.h>

int main(void)
{
    puts("selftest hang: looping forever");
    for (;;) {
        __asm__ volatile("");
    }
}
