/*
 * Deliberately failing test: asserts something false through the same
 * assertion macros as the real tests. CTest registers it with WILL_FAIL, so
 * the suite passes only if a failed CHECK really makes the program exit
 * non-zero (on the host and under QEMU).
 */
#include "chunkprov.h"
#include "test.h"

static void a_false_status_check_fails(void)
{
    /* chunkprov_sha256 with out == NULL is NULL_ARGUMENT, not OK. */
    CHECK_STATUS(chunkprov_sha256(NULL, 0, NULL), CHUNKPROV_STATUS_OK);
}

static void a_false_check_fails(void)
{
    CHECK_EQ(1 + 1, 3);
}

int main(void)
{
    static const test_case cases[] = {
        TEST_CASE(a_false_status_check_fails),
        TEST_CASE(a_false_check_fails),
    };
    return test_run("must_fail", cases, TEST_COUNT(cases));
}
