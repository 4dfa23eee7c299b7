/*
 * A tiny test runner for the C tests (host and bare-metal QEMU alike).
 *
 * A failed CHECK prints "file:line: what" (statuses by chunkprov_status_name)
 * plus the current context line, ends the test case (longjmp back to the
 * runner) and makes test_run() return non-zero, so main can return it.
 */
#ifndef CHUNKPROV_TEST_TEST_H
#define CHUNKPROV_TEST_TEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chunkprov.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct test_case {
    const char *name;
    void (*fn)(void);
} test_case;

#define TEST_CASE(fn) {#fn, fn}
#define TEST_COUNT(cases) (sizeof(cases) / sizeof((cases)[0]))

/* Runs the cases in order; prints one line per case and a summary. Returns 0
 * if all passed, 1 otherwise. */
int test_run(const char *suite, const test_case *cases, size_t n);

/* Describes what the current case is doing (printed with a failure);
 * printf-style, replaces the previous context. */
void test_context(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Runs fn(arg) as a sub-case: a failed CHECK inside it prints as usual but
 * ends only fn, and test_try returns false (true if fn returned). Lets a
 * sweep count its failures and go on. Nests; never call it (or CHECK) from a
 * library callback: the jump must not cross the library's frames. */
bool test_try(void (*fn)(void *), void *arg);

/* Fails the current case (or the innermost test_try). */
__attribute__((noreturn, format(printf, 3, 4))) void test_fail(const char *file, int line,
                                                               const char *fmt, ...);

#define CHECK(cond)                                                       \
    do {                                                                  \
        if (!(cond)) {                                                    \
            test_fail(__FILE__, __LINE__, "CHECK(%s) failed", #cond);     \
        }                                                                 \
    } while (0)

/* Compares two integers (as 64-bit unsigned values). */
#define CHECK_EQ(a, b)                                                              \
    do {                                                                            \
        uint64_t a_ = (uint64_t)(a), b_ = (uint64_t)(b);                            \
        if (a_ != b_) {                                                             \
            test_fail(__FILE__, __LINE__, "CHECK_EQ(%s, %s) failed: %lu != %lu", #a, #b, \
                      (unsigned long)a_, (unsigned long)b_);                        \
        }                                                                           \
    } while (0)

/* Compares a chunkprov_status with the expected one, printing both names. */
#define CHECK_STATUS(expr, want)                                                        \
    do {                                                                                \
        uint32_t got_ = (uint32_t)(expr), want_ = (uint32_t)(want);                     \
        if (got_ != want_) {                                                            \
            test_fail(__FILE__, __LINE__, "%s: got %s (%lu), want %s (%lu)", #expr,    \
                      chunkprov_status_name(got_), (unsigned long)got_,                 \
                      chunkprov_status_name(want_), (unsigned long)want_);              \
        }                                                                               \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif /* CHUNKPROV_TEST_TEST_H */
