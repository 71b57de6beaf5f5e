/*
 * Unit tests of process logging (src/log.c): --log-path sends lines to a file (reopened for
 * rotation), --log-format patterns with spdlog's flags, Envoy's default pattern accepted as the
 * default line, unknown flags refused (the default kept).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lg_test.h"
#include "log.h"
#include "regex.h"

static char path[] = "/tmp/lg_log_test_XXXXXX";

static char *slurp(const char *p)
{
    FILE *f = fopen(p, "rb");
    static char buf[8192];
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    buf[n] = '\0';
    if (f != NULL)
        fclose(f);
    return buf;
}

static int matches(const char *text, const char *re)
{
    /* RE2, multi-line: ^ and $ at line ends. */
    char pattern[512];
    lg_error_t e;
    snprintf(pattern, sizeof(pattern), "(?m)%s", re);
    lg_regex_t *r = lg_regex_compile(pattern, &e);
    if (r == NULL)
        return 0;
    int ok = lg_regex_partial_match(r, text, strlen(text));
    lg_regex_free(r);
    return ok;
}

LG_TEST(path_and_formats)
{
    char err[256];
    int fd = mkstemp(path);
    LG_EXPECT(fd >= 0);
    close(fd);
    LG_EXPECT_INT(lg_log_set_path("/nonexistent-dir/x.log", err, sizeof(err)), -1);
    LG_EXPECT_CONTAINS(err, "/nonexistent-dir/x.log");
    LG_EXPECT_INT(lg_log_set_path(path, err, sizeof(err)), 0);

    lg_info(main, "default %d", 1);
    LG_EXPECT(matches(slurp(path), "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\]"
                                   "\\[[0-9]+\\]\\[info\\]\\[main\\] default 1$"));

    /* The pattern the brief of --log-format names, and Envoy's own default (= legate's default). */
    LG_EXPECT_INT(lg_log_set_format("[%Y-%m-%d %T.%e][%t][%l][%n] %v"), 0);
    lg_warn(upstream, "custom %s", "two");
    LG_EXPECT(matches(slurp(path), "^\\[[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}\\]"
                                   "\\[[0-9]+\\]\\[warning\\]\\[upstream\\] custom two$"));
    LG_EXPECT_INT(lg_log_set_format("%L|%n|%v|%%"), 0);
    lg_err(router, "three");
    LG_EXPECT(matches(slurp(path), "^E\\|router\\|three\\|%$"));
    LG_EXPECT_INT(lg_log_set_format("%j %v"), -1); /* unknown flag: the last pattern stays */
    LG_EXPECT_INT(lg_log_set_format("%v %v"), -1);
    lg_err(router, "four");
    LG_EXPECT(matches(slurp(path), "^E\\|router\\|four\\|%$"));
    LG_EXPECT_INT(lg_log_set_format("[%Y-%m-%d %T.%e][%t][%l][%n] [%g:%#] %v"), 0);
    lg_info(admin, "five");
    LG_EXPECT(matches(slurp(path), "\\]\\[info\\]\\[admin\\] five$"));

    /* Rotation: the file moved away, reopen starts a new one at the path. */
    char moved[64];
    snprintf(moved, sizeof(moved), "%s.1", path);
    LG_EXPECT_INT(rename(path, moved), 0);
    lg_log_reopen();
    lg_info(main, "after rotation");
    LG_EXPECT(matches(slurp(path), "\\[main\\] after rotation$"));
    LG_EXPECT(!matches(slurp(path), "five"));
    LG_EXPECT(matches(slurp(moved), "five$"));
    unlink(moved);
    unlink(path);
}

int main(void)
{
    LG_RUN(path_and_formats);
    return LG_TEST_END();
}
