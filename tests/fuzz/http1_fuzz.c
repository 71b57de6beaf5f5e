/*
 * libFuzzer target for the HTTP/1 layer: request heads, response heads and the chunked decoder
 * (research/reliability-anchors.md (c) 1-3). Besides "no crash, no sanitizer report", it checks
 * the properties the smuggling defences rest on, and traps when one breaks:
 *  - a head fed in growing prefixes (with last_len) gives the one-shot answer at the same byte;
 *  - an accepted request never has both Content-Length and chunked framing, and every field it
 *    hands out is a valid token name and a value without CR, LF or NUL;
 *  - picohttpparser never disagrees with legate's byte scanner (that would show as CODEC_ERROR,
 *    which only a disagreement or a broken caller contract can produce);
 *  - the chunked decoder gives the same result (body bytes, trailers, error code, leftover) fed
 *    all at once or one byte at a time, and whatever it accepts a naive reference decoder reads
 *    as the same body.
 *
 * Input: one byte of options (bare LF, HTTP/1.0, underscore policy, small limits, which parser),
 * then the bytes. Build: cmake -DLG_FUZZ=ON (target http1_fuzz); seeds in tests/fuzz/http1_corpus.
 */
#include "http1_chunked.h"
#include "http1_parser.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            __builtin_trap();                                                                      \
    } while (0)

#define HCAP 128

struct chunked_run {
    lg_http1_chunked_status_t status;
    lg_http1_error_code_t code;
    unsigned char *body;
    size_t body_len, num_trailers, rest;
    uint64_t trailer_hash;
};

static uint64_t hash_bytes(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Feeds `in` in pieces of `step` bytes (0: at once), keeping unconsumed bytes as a socket buffer. */
static void chunked_feed(const lg_http1_options_t *o, bool is_response, const char *in, size_t len,
                         size_t step, struct chunked_run *out)
{
    lg_http1_chunked_decoder_t d;
    lg_http1_header_t trailers[HCAP];
    char *pending = malloc(len + 1);
    size_t pending_len = 0, fed = 0;

    memset(out, 0, sizeof(*out));
    out->body = malloc(len + 1);
    out->status = LG_HTTP1_CHUNKED_NEED_MORE;
    lg_http1_chunked_decoder_init(&d, o, is_response, trailers, HCAP);
    while (fed < len) {
        size_t n = step == 0 || len - fed < step ? len - fed : step;
        memcpy(pending + pending_len, in + fed, n);
        pending_len += n;
        fed += n;
        size_t off = 0;
        for (;;) {
            size_t consumed = 0;
            lg_http1_slice_t data;
            lg_http1_chunked_status_t st =
                lg_http1_chunked_decode(&d, pending + off, pending_len - off, &consumed, &data);
            CHECK(consumed <= pending_len - off);
            if (st == LG_HTTP1_CHUNKED_DATA) {
                CHECK(data.len > 0 && data.base >= pending + off &&
                      data.base + data.len <= pending + off + consumed);
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
                CHECK(d.error.code != LG_HTTP1_ERR_NONE && d.error.code != LG_HTTP1_ERR_CODEC_ERROR);
            } else {
                out->num_trailers = d.num_trailers;
                for (size_t i = 0; i < d.num_trailers; ++i) {
                    const lg_http1_header_t *t = &d.trailers[i];
                    CHECK(lg_http1_field_name_valid(t->name, t->name_len));
                    CHECK(lg_http1_field_value_valid(t->value, t->value_len));
                    CHECK(!lg_http1_token_eq(t->name, t->name_len, "content-length"));
                    CHECK(!lg_http1_token_eq(t->name, t->name_len, "transfer-encoding"));
                    out->trailer_hash = hash_bytes(out->trailer_hash, t->name, t->name_len);
                    out->trailer_hash = hash_bytes(out->trailer_hash, "\0", 1);
                    out->trailer_hash = hash_bytes(out->trailer_hash, t->value, t->value_len);
                    out->trailer_hash = hash_bytes(out->trailer_hash, "\n", 1);
                }
                out->rest = (pending_len - off) + (len - fed);
            }
            goto end;
        }
    }
end:
    free(pending);
}

/* A naive reading of chunked framing: sizes, skipped extensions, data, CRLFs, trailers to the
 * empty line. Returns the body length (body into `body`) or -1 when it cannot read it. */
static long reference_chunked(const char *in, size_t len, unsigned char *body)
{
    size_t i = 0, out = 0;
    for (;;) {
        uint64_t size = 0;
        size_t digits = 0;
        while (i < len && strchr("0123456789abcdefABCDEF", in[i]) != NULL && in[i] != '\0') {
            char c = in[i++];
            size = size * 16 + (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
            if (++digits > 16)
                return -1;
        }
        if (digits == 0)
            return -1;
        while (i < len && in[i] != '\r')
            ++i;
        if (len - i < 2 || in[i + 1] != '\n')
            return -1;
        i += 2;
        if (size == 0)
            break;
        if (size > len - i || len - i - size < 2 || in[i + size] != '\r' || in[i + size + 1] != '\n')
            return -1;
        memcpy(body + out, in + i, size);
        out += size;
        i += size + 2;
    }
    return (long)out;
}

static void check_chunked(const lg_http1_options_t *o, bool is_response, const char *in, size_t len)
{
    struct chunked_run once, bytewise;
    chunked_feed(o, is_response, in, len, 0, &once);
    chunked_feed(o, is_response, in, len, 1, &bytewise);
    CHECK(once.status == bytewise.status);
    CHECK(once.code == bytewise.code);
    CHECK(once.body_len == bytewise.body_len);
    CHECK(memcmp(once.body, bytewise.body, once.body_len) == 0);
    if (once.status == LG_HTTP1_CHUNKED_DONE) {
        CHECK(once.num_trailers == bytewise.num_trailers);
        CHECK(once.trailer_hash == bytewise.trailer_hash);
        CHECK(once.rest == bytewise.rest);
        unsigned char *ref = malloc(len + 1);
        long n = reference_chunked(in, len, ref);
        CHECK(n >= 0 && (size_t)n == once.body_len && memcmp(ref, once.body, once.body_len) == 0);
        free(ref);
    }
    free(once.body);
    free(bytewise.body);
}

static void check_fields(const lg_http1_header_t *h, size_t n, size_t max)
{
    CHECK(n <= max);
    for (size_t i = 0; i < n; ++i) {
        CHECK(lg_http1_field_name_valid(h[i].name, h[i].name_len));
        CHECK(lg_http1_field_value_valid(h[i].value, h[i].value_len));
        CHECK(h[i].value_len == 0 || (h[i].value[0] != ' ' && h[i].value[h[i].value_len - 1] != ' '));
    }
}

static void check_request(const lg_http1_options_t *o, const char *in, size_t len)
{
    static lg_http1_header_t headers[HCAP];
    lg_http1_request_t req;
    lg_http1_error_t err;
    int r = lg_http1_parse_request(o, in, len, 0, &req, headers, HCAP, &err);
    lg_http1_error_code_t code = err.code;

    CHECK(r == -2 || r == -1 || (r > 0 && (size_t)r <= len));
    CHECK((r == -1) == (code != LG_HTTP1_ERR_NONE));
    CHECK(code != LG_HTTP1_ERR_CODEC_ERROR);
    if (r == -2)
        CHECK(len <= o->max_header_bytes);
    if (r == -1)
        CHECK(err.status >= 400 && err.status < 600 && err.details != NULL);
    if (r > 0) {
        CHECK((size_t)r <= o->max_header_bytes);
        CHECK(!(req.body == LG_HTTP1_BODY_CHUNKED && req.has_content_length));
        CHECK(req.body == LG_HTTP1_BODY_NONE || req.body == LG_HTTP1_BODY_CHUNKED ||
              req.body == LG_HTTP1_BODY_CONTENT_LENGTH);
        CHECK(req.minor_version == 1 || (req.minor_version == 0 && o->accept_http_10));
        CHECK(lg_http1_field_name_valid(req.method.base, req.method.len));
        CHECK(req.minor_version == 0 || req.host.len > 0);
        check_fields(req.headers, req.num_headers, o->max_header_count);
        if (req.body == LG_HTTP1_BODY_CHUNKED)
            check_chunked(o, false, in + r, len - (size_t)r);
    }

    /* Growing prefixes give the same answer once the head is complete (or too large). */
    size_t last = 0;
    for (size_t k = 1; k <= len; ++k) {
        int rk = lg_http1_parse_request(o, in, k, last, &req, headers, HCAP, &err);
        last = k;
        if (rk == -2)
            continue;
        CHECK(rk == r);
        CHECK(err.code == code);
        break;
    }
}

static void check_response(const lg_http1_options_t *o, unsigned flags, const char *in, size_t len)
{
    static lg_http1_header_t headers[HCAP];
    lg_http1_response_t resp;
    lg_http1_error_t err;
    int r = lg_http1_parse_response(o, in, len, 0, flags, &resp, headers, HCAP, &err);
    lg_http1_error_code_t code = err.code;

    CHECK(r == -2 || r == -1 || (r > 0 && (size_t)r <= len));
    CHECK((r == -1) == (code != LG_HTTP1_ERR_NONE));
    CHECK(code != LG_HTTP1_ERR_CODEC_ERROR);
    if (r == -1)
        CHECK(err.status == 502);
    if (r > 0) {
        CHECK(resp.status >= 100 && resp.status <= 599);
        CHECK(!(resp.body == LG_HTTP1_BODY_CHUNKED && resp.has_content_length));
        CHECK(resp.body != LG_HTTP1_BODY_TUNNEL || resp.status == 101 || (flags & LG_HTTP1_REQ_CONNECT));
        CHECK(resp.body != LG_HTTP1_BODY_CLOSE_DELIMITED || !resp.keep_alive);
        check_fields(resp.headers, resp.num_headers, o->max_header_count);
        if (resp.body == LG_HTTP1_BODY_CHUNKED)
            check_chunked(o, true, in + r, len - (size_t)r);
    }
    size_t last = 0;
    for (size_t k = 1; k <= len; ++k) {
        int rk = lg_http1_parse_response(o, in, k, last, flags, &resp, headers, HCAP, &err);
        last = k;
        if (rk == -2)
            continue;
        CHECK(rk == r);
        CHECK(err.code == code);
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t flags = data[0];
    const char *in = (const char *)data + 1;
    size_t len = size - 1;

    lg_http1_options_t o;
    lg_http1_options_init(&o);
    o.allow_bare_lf = flags & 0x01;
    o.accept_http_10 = flags & 0x02;
    o.headers_with_underscores = (lg_http1_underscores_t)((flags >> 2) % 3);
    if (flags & 0x10) {
        o.max_header_bytes = 256;
        o.max_header_count = 4;
        o.max_chunk_ext_bytes = 16;
    }
    switch (flags >> 5) {
    case 0:
    case 1:
    case 2:
        check_request(&o, in, len);
        break;
    case 3:
    case 4:
        check_chunked(&o, (flags >> 5) == 4, in, len);
        break;
    default: /* 5, 6, 7: a response to a plain request, to HEAD, to CONNECT */
        check_response(&o, (unsigned)(flags >> 5) - 5, in, len);
        break;
    }
    return 0;
}
