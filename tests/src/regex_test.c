/*
 * Unit tests of the RE2 shim (src/regex.h, src/regex_re2.cc): full and partial matches, Envoy's
 * compile errors and program-size limit, GlobalReplace rewrites with back-references, and the
 * property that makes RE2 the engine: a pattern that backtracking engines take exponential time on
 * still answers (correctly) on a long hostile input.
 */
#include <stdlib.h>
#include <string.h>

#include "lg_test.h"
#include "regex.h"

static lg_error_t err;

static int full(const char *pattern, const char *s)
{
    lg_regex_t *re = lg_regex_compile(pattern, &err);
    if (re == NULL)
        return -1;
    int r = lg_regex_full_match(re, s, strlen(s));
    lg_regex_free(re);
    return r;
}

LG_TEST(test_full_match)
{
    LG_EXPECT_INT(full("/api/v[0-9]+/users", "/api/v12/users"), 1);
    LG_EXPECT_INT(full("/api/v[0-9]+/users", "/api/v12/users/7"), 0); /* whole string, not a prefix */
    LG_EXPECT_INT(full("abc", "xabcx"), 0);
    LG_EXPECT_INT(full("", ""), 1);
    LG_EXPECT_INT(full("a.c", "a\nc"), 0); /* RE2: '.' does not match a newline by default */
    LG_EXPECT_INT(full("(?i)HeLLo", "hello"), 1);
}

LG_TEST(test_partial_match_and_binary_input)
{
    lg_regex_t *re = lg_regex_compile("b+c", &err);
    LG_EXPECT(re != NULL);
    LG_EXPECT_INT(lg_regex_partial_match(re, "aaabbbcdd", 9), 1);
    LG_EXPECT_INT(lg_regex_partial_match(re, "aaac", 4), 0);
    /* Lengths are honoured: the match does not read past len, even with embedded NULs. */
    LG_EXPECT_INT(lg_regex_partial_match(re, "bc\0", 1), 0);
    LG_EXPECT_INT(lg_regex_full_match(re, "bbc\0zz", 3), 1);
    LG_EXPECT_STR(lg_regex_pattern(re), "b+c");
    lg_regex_free(re);
    lg_regex_free(NULL);
}

LG_TEST(test_compile_errors)
{
    LG_EXPECT(lg_regex_compile("(abc", &err) == NULL);
    LG_EXPECT_STR(err.msg, "invalid regex: missing ): (abc");
    LG_EXPECT(lg_regex_compile("a**", &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "invalid regex: bad repetition operator");
    /* Perl back-references are not RE2 (they cannot run in linear time). */
    LG_EXPECT(lg_regex_compile("(a)\\1", &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "invalid regex: invalid escape sequence");
}

LG_TEST(test_program_size_limit)
{
    /* Envoy refuses programs past 100 instructions unless the config raises the limit. */
    const char *big = "(abcdefghij|klmnopqrst|uvwxyz0123|456789ABCD|EFGHIJKLMN){3}";
    lg_regex_t *re = lg_regex_compile_ex(big, strlen(big), LG_REGEX_NO_PROGRAM_SIZE_LIMIT, 0, &err);
    LG_EXPECT(re != NULL);
    int size = re != NULL ? lg_regex_program_size(re) : 0;
    LG_EXPECT(size > 100);
    lg_regex_free(re);

    LG_EXPECT(lg_regex_compile(big, &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "RE2 program size of ");
    LG_EXPECT_CONTAINS(err.msg, "> max program size of 100 set for the error level threshold");

    LG_EXPECT(lg_regex_compile_ex(big, strlen(big), 10, 1, &err) == NULL);
    LG_EXPECT_CONTAINS(err.msg, "> max program size of 10. Increase configured max program size");
    re = lg_regex_compile_ex(big, strlen(big), (uint32_t)size, 1, &err);
    LG_EXPECT(re != NULL);
    lg_regex_free(re);
}

static const char *replace(const char *pattern, const char *s, const char *sub, h2o_mem_pool_t *pool)
{
    lg_regex_t *re = lg_regex_compile(pattern, &err);
    if (re == NULL)
        return NULL;
    size_t n;
    char *out = lg_regex_replace_all(re, s, strlen(s), sub, pool, &n);
    lg_regex_free(re);
    return strlen(out) == n ? out : "(length mismatch)";
}

LG_TEST(test_replace_all)
{
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    /* Envoy's documented regex_rewrite examples. */
    LG_EXPECT_STR(replace("^/service/([^/]+)(/.*)$", "/service/foo/v1/api", "\\2/instance/\\1", &pool),
                  "/v1/api/instance/foo");
    LG_EXPECT_STR(replace("one", "/xxx/one/yyy/one/zzz", "two", &pool), "/xxx/two/yyy/two/zzz");
    LG_EXPECT_STR(replace("^(.*?)one(.*)$", "/xxx/one/yyy/one/zzz", "\\1two\\2", &pool), "/xxx/two/yyy/one/zzz");
    LG_EXPECT_STR(replace("(?i)/xxx/", "/aaa/XxX/bbb", "/yyy/", &pool), "/aaa/yyy/bbb");
    /* \0 is the whole match; \\ a backslash; no match leaves the text as it was. */
    LG_EXPECT_STR(replace("b+", "abbbc", "[\\0\\\\]", &pool), "a[bbb\\]c");
    LG_EXPECT_STR(replace("q", "abc", "z", &pool), "abc");
    /* Empty matches advance: every position gets the substitution once. */
    LG_EXPECT_STR(replace("x*", "ab", "-", &pool), "-a-b-");
    h2o_mem_clear_pool(&pool);
}

LG_TEST(test_check_substitution)
{
    lg_regex_t *re = lg_regex_compile("(a)(b)", &err);
    LG_EXPECT_INT(lg_regex_check_substitution(re, "\\2\\1\\0", &err), 0);
    LG_EXPECT_INT(lg_regex_check_substitution(re, "x\\\\y", &err), 0);
    LG_EXPECT_INT(lg_regex_check_substitution(re, "\\3", &err), -1);
    LG_EXPECT_CONTAINS(err.msg, "invalid substitution \"\\3\"");
    LG_EXPECT_INT(lg_regex_check_substitution(re, "\\q", &err), -1);
    lg_regex_free(re);
}

LG_TEST(test_catastrophic_pattern_is_linear)
{
    /* (a+)+$ against 100k 'a' and a final 'b': a backtracking engine never returns (CVE-2019-15225
     * in Envoy's std::regex days). RE2 answers; only correctness is asserted here. */
    size_t n = 100000;
    char *s = malloc(n + 2);
    memset(s, 'a', n);
    s[n] = 'b';
    s[n + 1] = '\0';
    lg_regex_t *re = lg_regex_compile("(a+)+$", &err);
    LG_EXPECT(re != NULL);
    LG_EXPECT_INT(lg_regex_full_match(re, s, n + 1), 0);
    LG_EXPECT_INT(lg_regex_partial_match(re, s, n + 1), 0);
    LG_EXPECT_INT(lg_regex_full_match(re, s, n), 1);
    lg_regex_free(re);
    re = lg_regex_compile("(a|aa)*c", &err);
    LG_EXPECT_INT(lg_regex_full_match(re, s, n), 0);
    lg_regex_free(re);
    free(s);
}

int main(void)
{
    LG_RUN(test_full_match);
    LG_RUN(test_partial_match_and_binary_input);
    LG_RUN(test_compile_errors);
    LG_RUN(test_program_size_limit);
    LG_RUN(test_replace_all);
    LG_RUN(test_check_substitution);
    LG_RUN(test_catastrophic_pattern_is_linear);
    return LG_TEST_END();
}
