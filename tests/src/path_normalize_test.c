/*
 * Unit tests of request path normalization (src/path_normalize.c): the attacks it exists for
 * (dot segments, escaped dots and slashes, backslashes) and that queries are left alone.
 */
#include <string.h>

#include "lg_test.h"
#include "path_normalize.h"

static h2o_mem_pool_t pool;

static const char *norm(const char *in, int normalize, int merge)
{
    h2o_iovec_t out;
    if (lg_path_normalize(h2o_iovec_init(in, strlen(in)), normalize, merge, &pool, &out) != 0)
        return "ERROR";
    return out.base;
}

LG_TEST(test_dot_segments)
{
    LG_EXPECT_STR(norm("/public/../admin", 1, 0), "/admin");
    LG_EXPECT_STR(norm("/a/./b/../c", 1, 0), "/a/c");
    LG_EXPECT_STR(norm("/../../etc/passwd", 1, 0), "/etc/passwd");
    LG_EXPECT_STR(norm("/a/b/..", 1, 0), "/a/");
    LG_EXPECT_STR(norm("/a/.", 1, 0), "/a/");
    LG_EXPECT_STR(norm("/", 1, 0), "/");
    LG_EXPECT_STR(norm("/..", 1, 0), "/");
}

LG_TEST(test_escapes_and_backslashes)
{
    LG_EXPECT_STR(norm("/%2e%2e/admin", 1, 0), "/admin"); /* escaped dots are dots */
    LG_EXPECT_STR(norm("/a%7eb", 1, 0), "/a~b");
    LG_EXPECT_STR(norm("/a%2fb", 1, 0), "/a%2Fb"); /* escaped slash stays escaped, upper-cased */
    LG_EXPECT_STR(norm("/a\\..\\admin", 1, 0), "/admin");
    LG_EXPECT_STR(norm("/a%zz", 1, 0), "ERROR");
    LG_EXPECT_STR(norm("/a%00b", 1, 0), "ERROR");
    LG_EXPECT_STR(norm("/a%2", 1, 0), "ERROR");
    LG_EXPECT_STR(norm("*", 1, 0), "ERROR");
}

LG_TEST(test_merge_slashes_and_query)
{
    LG_EXPECT_STR(norm("//a///b", 0, 1), "/a/b");
    LG_EXPECT_STR(norm("/a/../b?x=/../y//z", 1, 1), "/b?x=/../y//z"); /* the query is not a path */
    LG_EXPECT_STR(norm("/a//b", 0, 0), "/a//b");
}

LG_TEST(test_escaped_slashes)
{
    LG_EXPECT(lg_path_has_escaped_slash(h2o_iovec_init("/a%2Fb", 6)));
    LG_EXPECT(lg_path_has_escaped_slash(h2o_iovec_init("/a%5cb", 6)));
    LG_EXPECT(!lg_path_has_escaped_slash(h2o_iovec_init("/a?x=%2F", 8)));
    h2o_iovec_t u = lg_path_unescape_slashes(h2o_iovec_init("/a%2Fb%5C?q=%2F", 15), &pool);
    LG_EXPECT_STR(u.base, "/a/b\\?q=%2F");
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_dot_segments);
    LG_RUN(test_escapes_and_backslashes);
    LG_RUN(test_merge_slashes_and_query);
    LG_RUN(test_escaped_slashes);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
