/* Branches to an address with no memory behind it: must end in HardFault (103). */
#include <stdint.h>
#include <stdio.h>

int main(void)
{
    puts("selftest fault: calling 0x0ffffff1");
    /* volatile: keep the compiler from reasoning about the call */
    void (*volatile bad)(void) = (void (*)(void))(uintptr_t)0x0ffffff1u;
    bad();
    puts("selftest fault: survived?!");
    return 0;
}
