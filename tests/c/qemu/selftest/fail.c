/* Returns 1 from main: run.sh must exit 1. */
#include <stdio.h>

int main(void)
{
    puts("selftest fail: returning 1");
    return 1;
}
