/*
 * A minimal unit-test harness: each *_test.c is one executable (one ctest case) holding a few
 * LG_TEST functions registered in its main() with LG_RUN. A failed expectation prints the file,
 * line and the values compared, marks the current test failed and carries on, so one run shows
 * every failure. The closing line is "N passed, N failed", which CI reads.
 *
 * Not for: fixtures, mocks or timing. Tests that need a fake peer build it themselves.
 */
#ifndef LG_TEST_H
#define LG_TEST_H

#include <stdio.h>
#include <string.h>

static int lg_test_failed_checks;
static int lg_test_passed, lg_test_failed;

#define LG_TEST(name) static void name(void)

#define LG_EXPECT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: expected %s\n", __FILE__, __LINE__, #cond);                    \
            ++lg_test_failed_checks;                                                               \
        }                                                                                          \
    } while (0)

#define LG_EXPECT_INT(a, b)                                                                        \
    do {                                                                                           \
        long long lg_a_ = (long long)(a), lg_b_ = (long long)(b);                                  \
        if (lg_a_ != lg_b_) {                                                                      \
            fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__, __LINE__, #a, lg_a_,   \
                    lg_b_);                                                                        \
            ++lg_test_failed_checks;                                                               \
        }                                                                                          \
    } while (0)

#define LG_EXPECT_STR(a, b)                                                                        \
    do {                                                                                           \
        const char *lg_a_ = (a), *lg_b_ = (b);                                                     \
        if (lg_a_ == NULL || lg_b_ == NULL || strcmp(lg_a_, lg_b_) != 0) {                         \
            fprintf(stderr, "%s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,      \
                    lg_a_ ? lg_a_ : "(null)", lg_b_ ? lg_b_ : "(null)");                           \
            ++lg_test_failed_checks;                                                               \
        }                                                                                          \
    } while (0)

/* Substring check: error messages are asserted by the part that matters. */
#define LG_EXPECT_CONTAINS(hay, needle)                                                            \
    do {                                                                                           \
        const char *lg_h_ = (hay), *lg_n_ = (needle);                                              \
        if (lg_h_ == NULL || strstr(lg_h_, lg_n_) == NULL) {                                       \
            fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, __LINE__,         \
                    lg_h_ ? lg_h_ : "(null)", lg_n_);                                              \
            ++lg_test_failed_checks;                                                               \
        }                                                                                          \
    } while (0)

#define LG_RUN(name)                                                                               \
    do {                                                                                           \
        int lg_before_ = lg_test_failed_checks;                                                    \
        name();                                                                                    \
        if (lg_test_failed_checks == lg_before_) {                                                 \
            ++lg_test_passed;                                                                      \
        } else {                                                                                   \
            ++lg_test_failed;                                                                      \
            fprintf(stderr, "FAIL %s\n", #name);                                                   \
        }                                                                                          \
    } while (0)

#define LG_TEST_END()                                                                              \
    (printf("%d passed, %d failed\n", lg_test_passed, lg_test_failed), lg_test_failed != 0)

#endif
