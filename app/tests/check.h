/*
 * A minimal test runner for the application tests: CHECK and CHECK_EQ print file:line and end
 * the current case; RUN runs a case and counts it; main returns 1 if any case failed.
 */
#ifndef APP_TESTS_CHECK_H
#define APP_TESTS_CHECK_H

#include <setjmp.h>
#include <stdio.h>

extern jmp_buf check_jump;
extern int check_failures;
extern int check_cases;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);          \
            longjmp(check_jump, 1);                                                           \
        }                                                                                     \
    } while (0)

#define CHECK_EQ(a, b)                                                                        \
    do {                                                                                      \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                       \
        if (check_a_ != check_b_) {                                                           \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__,    \
                    __LINE__, #a, #b, check_a_, check_b_);                                    \
            longjmp(check_jump, 1);                                                           \
        }                                                                                     \
    } while (0)

#define RUN(fn)                                                                               \
    do {                                                                                      \
        check_cases++;                                                                        \
        if (setjmp(check_jump) == 0) {                                                        \
            fn();                                                                             \
            printf("ok   %s\n", #fn);                                                         \
        } else {                                                                              \
            check_failures++;                                                                 \
            printf("FAIL %s\n", #fn);                                                         \
        }                                                                                     \
    } while (0)

#define CHECK_MAIN_END()                                                                      \
    do {                                                                                      \
        printf("%d of %d cases passed\n", check_cases - check_failures, check_cases);         \
        return check_failures == 0 ? 0 : 1;                                                   \
    } while (0)

#define CHECK_STATE                                                                           \
    jmp_buf check_jump;                                                                       \
    int check_failures;                                                                       \
    int check_cases

#endif /* APP_TESTS_CHECK_H */
