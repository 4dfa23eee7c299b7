/*
 * The tiny test runner: see test.h.
 */
#include "test.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>

static jmp_buf test_jump;
/* Where a failure jumps: the runner's test_jump, or the innermost test_try. */
static jmp_buf *jump_to = &test_jump;
static char context[160];

void test_context(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(context, sizeof context, fmt, ap);
    va_end(ap);
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    printf("%s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (context[0] != '\0') {
        printf("    while: %s\n", context);
    }
    fflush(stdout);
    longjmp(*jump_to, 1);
}

bool test_try(void (*fn)(void *), void *arg)
{
    jmp_buf here;
    jmp_buf *outer = jump_to; /* not modified after setjmp: keeps its value */
    jump_to = &here;
    if (setjmp(here) == 0) {
        fn(arg);
        jump_to = outer;
        return true;
    }
    jump_to = outer;
    return false;
}

int test_run(const char *suite, const test_case *cases, size_t n)
{
    /* Static: survive the longjmp without volatile. */
    static unsigned passed, failed;
    static size_t i;
    passed = 0;
    failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("%s: %lu cases\n", suite, (unsigned long)n);
    for (i = 0; i < n; i++) {
        context[0] = '\0';
        jump_to = &test_jump;
        if (setjmp(test_jump) == 0) {
            cases[i].fn();
            passed++;
            printf("ok   %s\n", cases[i].name);
        } else {
            failed++;
            printf("FAIL %s\n", cases[i].name);
        }
        fflush(stdout);
    }
    printf("%s: %u passed, %u failed\n", suite, passed, failed);
    fflush(stdout);
    return failed == 0 ? 0 : 1;
}
