/*
 * Tests for src/http1_chunked.c: the strict chunked decoder fed in every way a socket can split
 * its input (all at once, byte by byte, every two-piece split), the rejections of
 * research/reliability-anchors.md (b) 18-20, trailers, and the encoder helpers.
 *
 * Feeding mimics a connection's input buffer: new bytes are appended, the decoder is called until
 * it needs more, and only what it reports consumed is dropped (trailer bytes stay until complete).
 */
#include "http1_chunked.h"
#include "lg_test.h"

#include <stdlib.h>

#define TCAP 16

/* What one decode run produced, copied out so that it survives the feeding buffer. */
struct outcome {
    lg_http1_chunked_status_t status; /* DONE, ERROR, or NEED_MORE when input ran out */
    lg_http1_error_code_t code;
    int error_status;
    char *body;
    size_t body_len;
    char trailers[4096]; /* "name=value;" for each trailer */
    size_t num_trailers, dropped;
    size_t rest; /* bytes left after DONE (the next message) */
};

static lg_http1_options_t defaults(void)
{
    lg_http1_options_t o;
    lg_http1_options_init(&o);
    return o;
}

/* Feeds `in` in pieces of `step` bytes (0: all at once) to a fresh decoder. */
static void run_opts(const lg_http1_options_t *o, bool is_response, const char *in, size_t len,
                     size_t step, struct outcome *out)
{
    lg_http1_chunked_decoder_t d;
    lg_http1_header_t trailers[TCAP];
    char *pending = malloc(len + 1);
    size_t pending_len = 0, fed = 0;

    memset(out, 0, sizeof(*out));
    out->body = malloc(len + 1);
    out->status = LG_HTTP1_CHUNKED_NEED_MORE;
    lg_http1_chunked_decoder_init(&d, o, is_response, trailers, TCAP);
    while (fed < len) {
        size_t n = step == 0 || len - fed < step ? len - fed : step;
        memcpy(pending + pending_len, in + fed, n);
        pending_len += n;
        fed += n;
        size_t off = 0;
        for (;;) {
            size_t consumed;
            lg_http1_slice_t data;
            lg_http1_chunked_status_t st = lg_http1_chunked_decode(&d, pending + off, pending_len - off,
                                                                   &consumed, &data);
            if (st == LG_HTTP1_CHUNKED_DATA) {
                LG_EXPECT(data.base >= pending + off && data.base + data.len <= pending + off + consumed);
                memcpy(out->body + out->body_len, data.base, data.len);
                out->body_len += data.len;
                off += consumed;
                continue;
            }
            off += consumed;
            if (st == LG_HTTP1_CHUNKED_NEED_MORE) {
                memmove(pending, pending + off, pending_len - off);
                pending_len -= off;
                break;
            }
            out->status = st;
            if (st == LG_HTTP1_CHUNKED_ERROR) {
                out->code = d.error.code;
                out->error_status = d.error.status;
            } else {
                size_t at = 0;
                for (size_t i = 0; i < d.num_trailers; ++i)
                    at += (size_t)snprintf(out->trailers + at, sizeof(out->trailers) - at, "%.*s=%.*s;",
                                           (int)d.trailers[i].name_len, d.trailers[i].name,
                                           (int)d.trailers[i].value_len, d.trailers[i].value);
                out->num_trailers = d.num_trailers;
                out->dropped = d.dropped_trailers;
                out->rest = (pending_len - off) + (len - fed);
            }
            goto end;
        }
    }
end:
    free(pending);
}

static void run(const char *in, size_t len, size_t step, struct outcome *out)
{
    lg_http1_options_t o = defaults();
    run_opts(&o, false, in, len, step, out);
}

static bool same(const struct outcome *a, const struct outcome *b)
{
    return a->status == b->status && a->code == b->code && a->body_len == b->body_len &&
           memcmp(a->body, b->body, a->body_len) == 0 && strcmp(a->trailers, b->trailers) == 0 &&
           a->rest == b->rest;
}

/* Decodes `in` all at once and in pieces of every size from 1 byte up; all must agree. */
static void run_all_ways(const char *in, size_t len, struct outcome *out)
{
    struct outcome other;
    run(in, len, 0, out);
    run(in, len, 1, &other);
    LG_EXPECT(same(out, &other));
    free(other.body);
    for (size_t k = 1; k < len; ++k) {
        lg_http1_options_t o = defaults();
        run_opts(&o, false, in, len, k, &other);
        if (!same(out, &other))
            fprintf(stderr, "pieces of %zu bytes differ\n", k);
        LG_EXPECT(same(out, &other));
        free(other.body);
    }
}

#define ACCEPT(lit, body_lit)                                                                      \
    do {                                                                                           \
        struct outcome o_;                                                                         \
        run_all_ways((lit), sizeof(lit) - 1, &o_);                                                 \
        LG_EXPECT_INT(o_.status, LG_HTTP1_CHUNKED_DONE);                                           \
        LG_EXPECT_INT(o_.body_len, sizeof(body_lit) - 1);                                          \
        LG_EXPECT(o_.body_len == sizeof(body_lit) - 1 && memcmp(o_.body, body_lit, o_.body_len) == 0); \
        free(o_.body);                                                                             \
    } while (0)

#define REJECT(lit, code_)                                                                         \
    do {                                                                                           \
        struct outcome o_;                                                                         \
        run_all_ways((lit), sizeof(lit) - 1, &o_);                                                 \
        LG_EXPECT_INT(o_.status, LG_HTTP1_CHUNKED_ERROR);                                          \
        LG_EXPECT_STR(lg_http1_error_name(o_.code), lg_http1_error_name(code_));                   \
        LG_EXPECT_INT(o_.error_status, 400);                                                       \
        free(o_.body);                                                                             \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Well-formed bodies.
 * ------------------------------------------------------------------------------------------- */

LG_TEST(simple_body)
{
    ACCEPT("5\r\nhello\r\n0\r\n\r\n", "hello");
    ACCEPT("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world");
    ACCEPT("0\r\n\r\n", "");
    ACCEPT("A\r\n0123456789\r\na\r\nabcdefghij\r\n000\r\n\r\n", "0123456789abcdefghij");
    ACCEPT("005\r\nhello\r\n0000000000000000\r\n\r\n", "hello");
    ACCEPT("1\r\n\0\r\n1\r\n\n\r\n0\r\n\r\n", "\0\n"); /* data is opaque */
}

LG_TEST(data_is_not_copied)
{
    static const char in[] = "5\r\nhello\r\n0\r\n\r\n";
    lg_http1_options_t o = defaults();
    lg_http1_chunked_decoder_t d;
    size_t consumed;
    lg_http1_slice_t data;
    lg_http1_chunked_decoder_init(&d, &o, false, NULL, 0);
    LG_EXPECT_INT(lg_http1_chunked_decode(&d, in, sizeof(in) - 1, &consumed, &data), LG_HTTP1_CHUNKED_DATA);
    LG_EXPECT(data.base == in + 3);
    LG_EXPECT_INT(data.len, 5);
    LG_EXPECT_INT(consumed, 8);
    LG_EXPECT_INT(lg_http1_chunked_decode(&d, in + 8, sizeof(in) - 1 - 8, &consumed, &data),
                  LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(consumed, sizeof(in) - 1 - 8);
    LG_EXPECT_INT(d.body_bytes, 5);
    LG_EXPECT_INT(d.num_trailers, 0);
    /* DONE stays DONE and consumes nothing more */
    LG_EXPECT_INT(lg_http1_chunked_decode(&d, "x", 1, &consumed, &data), LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(consumed, 0);
}

LG_TEST(big_chunk_in_pieces)
{
    /* A chunk larger than any one read arrives as several DATA results. */
    size_t n = 100000;
    char *in = malloc(n + 32);
    size_t len = (size_t)sprintf(in, "%zx\r\n", n);
    memset(in + len, 'z', n);
    len += n;
    memcpy(in + len, "\r\n0\r\n\r\n", 7);
    len += 7;
    struct outcome a, b;
    run(in, len, 0, &a);
    run(in, len, 4096, &b);
    LG_EXPECT_INT(a.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(a.body_len, n);
    LG_EXPECT(same(&a, &b));
    free(a.body);
    free(b.body);
    free(in);
}

LG_TEST(next_message_after_done)
{
    static const char in[] = "3\r\nabc\r\n0\r\nX-T: 1\r\n\r\nGET / HTTP/1.1\r\n";
    struct outcome o;
    run_all_ways(in, sizeof(in) - 1, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(o.rest, 16);
    LG_EXPECT_STR(o.trailers, "X-T=1;");
    free(o.body);
}

LG_TEST(extensions_are_ignored)
{
    ACCEPT("5;foo=bar\r\nhello\r\n0\r\n\r\n", "hello");
    ACCEPT("5;foo\r\nhello\r\n0;last\r\n\r\n", "hello");
    ACCEPT("5 ; a = b ; c=\"q \\\" ;\"\r\nhello\r\n0\r\n\r\n", "hello");
    ACCEPT("5;a;b;c=d\r\nhello\r\n0\r\n\r\n", "hello");
    ACCEPT("5;n=\"\"\r\nhello\r\n0\r\n\r\n", "hello");
    ACCEPT("5;n=\"caf\xc3\xa9\"\r\nhello\r\n0\r\n\r\n", "hello");
}

/* ---------------------------------------------------------------------------------------------
 * Rejections (anchor 18).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(bad_chunk_sizes)
{
    REJECT("0x5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("0X5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("0_2e\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("_5\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("+5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("-5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT(" 5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("\t5\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("5 \r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("5 5\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("\r\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("g\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("5\0\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("\0\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("5,5\r\n", LG_HTTP1_ERR_INVALID_CHUNK_SIZE);
    REJECT("10000000000000000\r\n", LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE);  /* 17 digits */
    REJECT("00000000000000005\r\n", LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE);  /* 17 digits too */
    REJECT("8000000000000000\r\n", LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE);   /* 2^63 */
    REJECT("ffffffffffffffffffff\r\n", LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE);
    REJECT("1000000000000000000000000000000005\r\nhello\r\n", LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE);

    /* The largest legal size is read, then waits for its data. */
    struct outcome o;
    run_all_ways("7fffffffffffffff\r\nabc", 21, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_NEED_MORE);
    LG_EXPECT_INT(o.body_len, 3);
    free(o.body);
}

LG_TEST(bare_line_ends)
{
    REJECT("5\nhello\r\n0\r\n\r\n", LG_HTTP1_ERR_BARE_LF);
    REJECT("5\rhello\r\n0\r\n\r\n", LG_HTTP1_ERR_BARE_CR);
    REJECT("5\r\nhello\n0\r\n\r\n", LG_HTTP1_ERR_MISSING_CHUNK_CRLF); /* bare LF after data */
    REJECT("5\r\nhello\r\r\n0\r\n\r\n", LG_HTTP1_ERR_MISSING_CHUNK_CRLF);
    REJECT("5\r\nhello\r\n0\n\r\n", LG_HTTP1_ERR_BARE_LF);
    REJECT("5\r\nhello\r\n0\r\n\n", LG_HTTP1_ERR_BARE_LF);
    REJECT("5\r\nhello\r\n0\r\n\r\r", LG_HTTP1_ERR_BARE_CR);
    REJECT("5;a=b\nhello\r\n", LG_HTTP1_ERR_BARE_LF);
    REJECT("5;a=b\rhello\r\n", LG_HTTP1_ERR_BARE_CR);
    REJECT("5;a=\"b\rc\"\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
}

LG_TEST(data_not_followed_by_crlf)
{
    /* The length says 5; a sender that means 6 must not desynchronise us (GARDEN transducer). */
    REJECT("5\r\nhelloX\r\n0\r\n\r\n", LG_HTTP1_ERR_MISSING_CHUNK_CRLF);
    REJECT("5\r\nhell\r\n0\r\n\r\n", LG_HTTP1_ERR_MISSING_CHUNK_CRLF);
    REJECT("5\r\nhello0\r\n\r\n", LG_HTTP1_ERR_MISSING_CHUNK_CRLF);
    REJECT("5\r\nhello\rX", LG_HTTP1_ERR_MISSING_CHUNK_CRLF);
}

LG_TEST(bad_extensions)
{
    REJECT("5;\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;=b\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a\x01\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=b\x7f\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=b c\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a b\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a \r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=\"b\"c\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=\"b\0\"\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=\"b\\\x01\"\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=b;\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
    REJECT("5;a=\"unterminated\r\nhello\r\n", LG_HTTP1_ERR_INVALID_CHUNK_EXT);
}

static char *make_ext_body(size_t ext_len, size_t *len)
{
    char *b = malloc(ext_len + 64);
    size_t n = 0;
    memcpy(b, "5;a=", 4);
    n = 4;
    memset(b + n, 'x', ext_len - 3); /* ";a=" is part of the extension too */
    n += ext_len - 3;
    memcpy(b + n, "\r\nhello\r\n0\r\n\r\n", 14);
    *len = n + 14;
    return b;
}

LG_TEST(extension_length_bound)
{
    size_t len;
    struct outcome o;
    char *b = make_ext_body(LG_HTTP1_DEFAULT_MAX_CHUNK_EXT_BYTES, &len);
    run(b, len, 1, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    free(o.body);
    free(b);
    b = make_ext_body(LG_HTTP1_DEFAULT_MAX_CHUNK_EXT_BYTES + 1, &len);
    run(b, len, 0, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(o.code, LG_HTTP1_ERR_CHUNK_EXT_TOO_LONG);
    free(o.body);
    free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Framing overhead (anchor 19).
 * ------------------------------------------------------------------------------------------- */

static char *repeat_chunks(size_t count, size_t size, size_t ext, size_t *len)
{
    size_t per = 24 + size + ext;
    char *b = malloc(count * per + 16);
    size_t n = 0;
    for (size_t i = 0; i < count; ++i) {
        n += (size_t)sprintf(b + n, "%zx", size);
        if (ext > 0) {
            memcpy(b + n, ";e=", 3);
            memset(b + n + 3, 'v', ext - 3);
            n += ext;
        }
        memcpy(b + n, "\r\n", 2);
        n += 2;
        memset(b + n, 'd', size);
        n += size;
        memcpy(b + n, "\r\n", 2);
        n += 2;
    }
    memcpy(b + n, "0\r\n\r\n", 5);
    *len = n + 5;
    return b;
}

LG_TEST(chunk_overhead)
{
    size_t len;
    struct outcome o;
    char *b = repeat_chunks(1000000, 1, 0, &len);
    run(b, len, 0, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(o.code, LG_HTTP1_ERR_CHUNK_OVERHEAD);
    LG_EXPECT(o.body_len < 40000); /* stopped early, not at the end */
    free(o.body);
    free(b);

    b = repeat_chunks(1000, 100, 1000, &len);
    run(b, len, 0, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(o.code, LG_HTTP1_ERR_CHUNK_OVERHEAD);
    free(o.body);
    free(b);

    b = repeat_chunks(1000, 1000, 0, &len);
    run(b, len, 0, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(o.body_len, 1000000);
    free(o.body);
    free(b);

    /* small chunks are fine while the total overhead stays under the floor */
    b = repeat_chunks(10000, 1, 0, &len);
    run(b, len, 0, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    free(o.body);
    free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Trailers (anchor 20).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(trailers_parsed)
{
    static const char in[] = "2\r\nok\r\n0\r\nGrpc-Status: 0\r\nGrpc-Message:  all good \r\nX-E:\r\n\r\n";
    struct outcome o;
    run_all_ways(in, sizeof(in) - 1, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(o.num_trailers, 3);
    LG_EXPECT_STR(o.trailers, "Grpc-Status=0;Grpc-Message=all good;X-E=;");
    LG_EXPECT_INT(o.rest, 0);
    free(o.body);
}

LG_TEST(trailers_framing_fields_dropped)
{
    static const char in[] = "0\r\nContent-Length: 5\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n"
                             "Connection: close\r\nTE: trailers\r\nTrailer: x\r\nUpgrade: h2c\r\n"
                             "Keep-Alive: 1\r\nProxy-Connection: x\r\n\r\n";
    struct outcome o;
    run_all_ways(in, sizeof(in) - 1, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_STR(o.trailers, "X-A=1;");
    LG_EXPECT_INT(o.dropped, 9);
    free(o.body);
}

LG_TEST(trailers_rejected)
{
    REJECT("0\r\nX: a\r\n b\r\n\r\n", LG_HTTP1_ERR_OBS_FOLD);
    REJECT("0\r\n X: a\r\n\r\n", LG_HTTP1_ERR_OBS_FOLD);
    REJECT("0\r\nX: a\nY: b\r\n\r\n", LG_HTTP1_ERR_BARE_LF);
    REJECT("0\r\nX: a\rY: b\r\n\r\n", LG_HTTP1_ERR_BARE_CR);
    REJECT("0\r\nNoColon\r\n\r\n", LG_HTTP1_ERR_MISSING_COLON);
    REJECT("0\r\nX : a\r\n\r\n", LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON);
    REJECT("0\r\nX: a\0\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE);
    REJECT("0\r\nX\x80: a\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME);
    REJECT("0\r\n: a\r\n\r\n", LG_HTTP1_ERR_EMPTY_HEADER_NAME);
}

LG_TEST(trailer_limits)
{
    lg_http1_options_t o = defaults();
    struct outcome out;
    char in[512];
    size_t n = (size_t)sprintf(in, "0\r\n");
    for (int i = 0; i < 5; ++i)
        n += (size_t)sprintf(in + n, "X-%d: v\r\n", i);
    n += (size_t)sprintf(in + n, "\r\n");

    o.max_header_count = 4;
    run_opts(&o, false, in, n, 1, &out);
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(out.code, LG_HTTP1_ERR_TOO_MANY_TRAILERS);
    LG_EXPECT_INT(out.error_status, 431);
    free(out.body);

    o = defaults();
    o.max_header_bytes = 20;
    run_opts(&o, false, in, n, 1, &out);
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(out.code, LG_HTTP1_ERR_TRAILERS_TOO_LARGE);
    LG_EXPECT_INT(out.error_status, 431);
    free(out.body);
    run_opts(&o, false, in, n, 0, &out);
    LG_EXPECT_INT(out.code, LG_HTTP1_ERR_TRAILERS_TOO_LARGE);
    free(out.body);

    /* A bad byte past the limit: the limit is what is reported, however the bytes arrive
     * (found by the fuzzer: all-at-once reported the bad byte, byte-by-byte the size). */
    static const char late[] = "0\r\nX: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\0\r\n\r\n";
    for (size_t step = 0; step < 3; ++step) {
        run_opts(&o, false, late, sizeof(late) - 1, step, &out);
        LG_EXPECT_INT(out.code, LG_HTTP1_ERR_TRAILERS_TOO_LARGE);
        free(out.body);
    }

    o.max_header_bytes = n - 3; /* the whole section exactly */
    run_opts(&o, false, in, n, 1, &out);
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(out.num_trailers, 5);
    free(out.body);
}

LG_TEST(trailer_underscores)
{
    static const char in[] = "0\r\nX_A: 1\r\nX-B: 2\r\n\r\n";
    lg_http1_options_t o = defaults();
    struct outcome out;
    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_REJECT_REQUEST;
    run_opts(&o, false, in, sizeof(in) - 1, 0, &out);
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(out.code, LG_HTTP1_ERR_UNDERSCORE_IN_HEADER);
    free(out.body);
    run_opts(&o, true, in, sizeof(in) - 1, 0, &out); /* responses: not applied */
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT_INT(out.num_trailers, 2);
    free(out.body);
    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_DROP_HEADER;
    run_opts(&o, false, in, sizeof(in) - 1, 1, &out);
    LG_EXPECT_STR(out.trailers, "X-B=2;");
    LG_EXPECT_INT(out.dropped, 1);
    free(out.body);
}

LG_TEST(response_errors_are_502)
{
    static const char in[] = "0x5\r\nhello\r\n";
    lg_http1_options_t o = defaults();
    struct outcome out;
    run_opts(&o, true, in, sizeof(in) - 1, 0, &out);
    LG_EXPECT_INT(out.status, LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(out.error_status, 502);
    free(out.body);
}

LG_TEST(error_is_sticky)
{
    lg_http1_options_t o = defaults();
    lg_http1_chunked_decoder_t d;
    size_t consumed;
    lg_http1_slice_t data;
    lg_http1_chunked_decoder_init(&d, &o, false, NULL, 0);
    LG_EXPECT_INT(lg_http1_chunked_decode(&d, "zz", 2, &consumed, &data), LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(d.error.offset, 0);
    LG_EXPECT_STR(d.error.details, "http1.codec_error");
    LG_EXPECT_INT(lg_http1_chunked_decode(&d, "5\r\n", 3, &consumed, &data), LG_HTTP1_CHUNKED_ERROR);
    LG_EXPECT_INT(consumed, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Encoder.
 * ------------------------------------------------------------------------------------------- */

LG_TEST(encode_size_lines)
{
    char b[LG_HTTP1_CHUNK_SIZE_LINE_MAX];
    LG_EXPECT_INT(lg_http1_chunked_encode_size(b, 0x1a), 4);
    LG_EXPECT(memcmp(b, "1a\r\n", 4) == 0);
    LG_EXPECT_INT(lg_http1_chunked_encode_size(b, 1), 3);
    LG_EXPECT(memcmp(b, "1\r\n", 3) == 0);
    LG_EXPECT_INT(lg_http1_chunked_encode_size(b, UINT64_MAX), 18);
    LG_EXPECT(memcmp(b, "ffffffffffffffff\r\n", 18) == 0);
}

LG_TEST(encode_last_and_round_trip)
{
    lg_http1_header_t t[2] = {{"grpc-status", 11, "0", 1}, {"grpc-message", 12, "", 0}};
    char b[128];
    size_t n = lg_http1_chunked_encode_last(b, sizeof(b), t, 2);
    LG_EXPECT_INT(n, lg_http1_chunked_last_len(t, 2));
    LG_EXPECT(n == 37 && memcmp(b, "0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n", 37) == 0);
    LG_EXPECT_INT(lg_http1_chunked_encode_last(b, n - 1, t, 2), 0);
    LG_EXPECT_INT(lg_http1_chunked_encode_last(b, sizeof(b), NULL, 0), 5);
    LG_EXPECT(memcmp(b, "0\r\n\r\n", 5) == 0);

    lg_http1_header_t inject = {"x", 1, "a\r\nContent-Length: 0", 20};
    LG_EXPECT_INT(lg_http1_chunked_encode_last(b, sizeof(b), &inject, 1), 0);
    lg_http1_header_t badname = {"x y", 3, "a", 1};
    LG_EXPECT_INT(lg_http1_chunked_encode_last(b, sizeof(b), &badname, 1), 0);

    /* encode -> decode gives the same body and trailers */
    char wire[256];
    size_t w = lg_http1_chunked_encode_size(wire, 11);
    memcpy(wire + w, "hello world\r\n", 13);
    w += 13;
    w += lg_http1_chunked_encode_last(wire + w, sizeof(wire) - w, t, 2);
    struct outcome o;
    run_all_ways(wire, w, &o);
    LG_EXPECT_INT(o.status, LG_HTTP1_CHUNKED_DONE);
    LG_EXPECT(o.body_len == 11 && memcmp(o.body, "hello world", 11) == 0);
    LG_EXPECT_STR(o.trailers, "grpc-status=0;grpc-message=;");
    free(o.body);
}

int main(void)
{
    LG_RUN(simple_body);
    LG_RUN(data_is_not_copied);
    LG_RUN(big_chunk_in_pieces);
    LG_RUN(next_message_after_done);
    LG_RUN(extensions_are_ignored);
    LG_RUN(bad_chunk_sizes);
    LG_RUN(bare_line_ends);
    LG_RUN(data_not_followed_by_crlf);
    LG_RUN(bad_extensions);
    LG_RUN(extension_length_bound);
    LG_RUN(chunk_overhead);
    LG_RUN(trailers_parsed);
    LG_RUN(trailers_framing_fields_dropped);
    LG_RUN(trailers_rejected);
    LG_RUN(trailer_limits);
    LG_RUN(trailer_underscores);
    LG_RUN(response_errors_are_502);
    LG_RUN(error_is_sticky);
    LG_RUN(encode_size_lines);
    LG_RUN(encode_last_and_round_trip);
    return LG_TEST_END();
}
