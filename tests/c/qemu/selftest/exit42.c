/* exit(42) from a nested call: run.sh must exit 42 and stdout is flushed. */
#include <stdio.h>
#include <stdlib.h>

static void leave(int code)
{
    printf("selftest exit42: exit(%d)", code); /* no newline: exit must flush */
    exit(code);
}

int main(void)
{
    leave(42);
}
