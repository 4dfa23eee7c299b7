/*
 * Everything the harness promises before and around main():
 * .data copied, .bss zeroed, constructors run, FPU usable (hard-float build),
 * malloc from the heap (and NULL when it is exhausted), stdout/stderr.
 * Exits 0 only if all of it holds.
 */
#include <stdio.h>
#include <stdlib.h>

static volatile int data_value = 1234;
static volatile int bss_value;
static int constructor_ran;

__attribute__((constructor)) static void set_flag(void)
{
    constructor_ran = 1;
}

#define CHECK(cond)                                                  \
    do {                                                             \
        if (!(cond)) {                                               \
            printf("selftest pass: check failed: %s\n", #cond);      \
            failures++;                                              \
        }                                                            \
    } while (0)

int main(void)
{
    int failures = 0;

#if defined(__ARM_PCS_VFP)
    const char *abi = "hard";
#else
    const char *abi = "soft";
#endif

    CHECK(data_value == 1234);
    CHECK(bss_value == 0);
    CHECK(constructor_ran == 1);

    /* FP arithmetic: VFP instructions in the hard-float build (faults if
     * the FPU were not enabled), libgcc soft-float calls otherwise. */
    volatile float a = 1.5f, b = 2.25f;
    CHECK(a * b == 3.375f);

    char *small = malloc(100000);
    CHECK(small != NULL);
    if (small != NULL) {
        small[0] = small[99999] = 'x';
    }
    free(small);
    CHECK(malloc(16u << 20) == NULL); /* more than the 4 MiB of RAM */

    fprintf(stderr, "selftest pass: this line goes to stderr\n");
    printf("selftest pass: float ABI %s, %s\n", abi, failures == 0 ? "ok" : "FAILED");
    return failures == 0 ? 0 : 1;
}
