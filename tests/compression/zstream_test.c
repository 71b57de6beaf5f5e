/*
 * Unit tests of the zlib streams the compression filters share (filters/compression/zstream.c):
 * inflating frame by frame whatever the frame boundaries, the per-call output limit that stops a
 * gzip bomb before memory grows, and input that is not gzip.
 */
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "filters/compression/zstream.h"
#include "lg_test.h"

/* Gzips `len` bytes in one go with the deflating stream. */
static size_t gzip_all(const void *in, size_t len, char *out, size_t cap)
{
    lg_zstream_t s;
    lg_data_t d;
    lg_zstream_deflate_init(&s, 9, 15, 8, Z_DEFAULT_STRATEGY, 4096);
    lg_zstream_run(&s, in, len, 1, UINT64_MAX, &d);
    size_t n = d.len < cap ? d.len : cap;
    memcpy(out, d.base, n);
    lg_zstream_dispose(&s);
    return n;
}

LG_TEST(test_inflate_any_frame_boundaries)
{
    static char plain[200000], packed[200000], back[200000];
    for (size_t i = 0; i < sizeof(plain); ++i)
        plain[i] = (char)('a' + (i * 7 + i / 100) % 26);
    size_t n = gzip_all(plain, sizeof(plain), packed, sizeof(packed));
    size_t steps[] = {1, 7, 4096, 65536};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); ++k) {
        lg_zstream_t s;
        LG_EXPECT_INT(lg_zstream_inflate_init(&s, 15, 4096), 0);
        size_t got = 0;
        for (size_t off = 0; off < n; off += steps[k]) {
            size_t take = n - off < steps[k] ? n - off : steps[k];
            lg_data_t d;
            LG_EXPECT_INT(lg_zstream_run(&s, packed + off, take, 0, 1000 * take, &d), 0);
            memcpy(back + got, d.base, d.len);
            got += d.len;
        }
        LG_EXPECT_INT(got, sizeof(plain));
        LG_EXPECT(memcmp(back, plain, sizeof(plain)) == 0);
        LG_EXPECT_INT(s.ended, 1);
        lg_zstream_dispose(&s);
    }
}

LG_TEST(test_inflate_limit_stops_a_bomb)
{
    size_t big = 32 << 20;
    char *zeros = calloc(1, big), *packed = malloc(1 << 20);
    size_t n = gzip_all(zeros, big, packed, 1 << 20);
    LG_EXPECT(n < (64 << 10));
    lg_zstream_t s;
    lg_zstream_inflate_init(&s, 15, 4096);
    lg_data_t d;
    LG_EXPECT_INT(lg_zstream_run(&s, packed, n, 0, 100 * n, &d), LG_ZSTREAM_TOO_LARGE);
    /* The buffer (which grows by doubling) stayed within twice the limit, far from the 32 MiB the
     * input would inflate to: the refusal came before the allocation. */
    LG_EXPECT(s.out->capacity <= 2 * (100 * n + 4096));
    lg_zstream_dispose(&s);
    free(zeros);
    free(packed);
}

LG_TEST(test_inflate_rejects_what_is_not_gzip)
{
    lg_zstream_t s;
    lg_zstream_inflate_init(&s, 15, 4096);
    lg_data_t d;
    LG_EXPECT_INT(lg_zstream_run(&s, "definitely not gzip", 19, 0, 1900, &d), Z_DATA_ERROR);
    lg_zstream_dispose(&s);
    /* A zeroed stream disposes cleanly too (a body that never started). */
    memset(&s, 0, sizeof(s));
    lg_zstream_dispose(&s);
}

int main(void)
{
    LG_RUN(test_inflate_any_frame_boundaries);
    LG_RUN(test_inflate_limit_stops_a_bomb);
    LG_RUN(test_inflate_rejects_what_is_not_gzip);
    return LG_TEST_END();
}
