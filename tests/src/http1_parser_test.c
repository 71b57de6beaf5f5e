/*
 * Tests for src/http1_parser.c: strict request and response heads, the framing decision, and
 * every request-smuggling case of research/reliability-anchors.md (b) 15-27 and 64 that a head
 * parser can decide on its own. Each rejection is checked for its code, status and Envoy detail.
 *
 * Not covered here: chunked bodies (http1_chunked_test.c).
 */
#include "http1_parser.h"
#include "lg_test.h"

#include <stdlib.h>

#define HCAP 128

static lg_http1_header_t hdrs[HCAP];
static lg_http1_request_t req;
static lg_http1_response_t resp;
static lg_http1_error_t err;

static lg_http1_options_t defaults(void)
{
    lg_http1_options_t o;
    lg_http1_options_init(&o);
    return o;
}

static int parse_opts(const lg_http1_options_t *o, const char *s, size_t len)
{
    return lg_http1_parse_request(o, s, len, 0, &req, hdrs, HCAP, &err);
}

static int parse_n(const char *s, size_t len)
{
    lg_http1_options_t o = defaults();
    return parse_opts(&o, s, len);
}

/* Literals may hold NUL bytes: their length comes from sizeof. */
#define PARSE(lit) parse_n((lit), sizeof(lit) - 1)

static int parse_resp_n(const char *s, size_t len, unsigned flags)
{
    lg_http1_options_t o = defaults();
    return lg_http1_parse_response(&o, s, len, 0, flags, &resp, hdrs, HCAP, &err);
}

#define PARSE_RESP(lit, flags) parse_resp_n((lit), sizeof(lit) - 1, (flags))

static bool slice_is(lg_http1_slice_t s, const char *lit)
{
    return s.len == strlen(lit) && (s.len == 0 || memcmp(s.base, lit, s.len) == 0);
}

static const lg_http1_header_t *find(const lg_http1_header_t *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; ++i)
        if (lg_http1_token_eq(h[i].name, h[i].name_len, name))
            return &h[i];
    return NULL;
}

static bool value_is(const lg_http1_header_t *h, const char *lit)
{
    return h != NULL && h->value_len == strlen(lit) && memcmp(h->value, lit, h->value_len) == 0;
}

/* A request rejected with this code, status and detail. */
#define EXPECT_REJECT(lit, code_, status_, details_)                                               \
    do {                                                                                           \
        LG_EXPECT_INT(PARSE(lit), -1);                                                             \
        LG_EXPECT_STR(lg_http1_error_name(err.code), lg_http1_error_name(code_));                  \
        LG_EXPECT_INT(err.status, status_);                                                        \
        LG_EXPECT_STR(err.details, details_);                                                      \
    } while (0)

#define EXPECT_BAD(lit, code_) EXPECT_REJECT(lit, code_, 400, err.details)

#define EXPECT_RESP_REJECT(lit, flags, code_)                                                      \
    do {                                                                                           \
        LG_EXPECT_INT(PARSE_RESP(lit, flags), -1);                                                 \
        LG_EXPECT_STR(lg_http1_error_name(err.code), lg_http1_error_name(code_));                  \
        LG_EXPECT_INT(err.status, 502);                                                            \
    } while (0)

/* ---------------------------------------------------------------------------------------------
 * Well-formed requests.
 * ------------------------------------------------------------------------------------------- */

LG_TEST(simple_get)
{
    static const char r[] = "GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n";
    LG_EXPECT_INT(PARSE(r), sizeof(r) - 1);
    LG_EXPECT(slice_is(req.method, "GET"));
    LG_EXPECT(slice_is(req.target, "/a?b=c"));
    LG_EXPECT(slice_is(req.path, "/a?b=c"));
    LG_EXPECT(slice_is(req.authority, "example.com"));
    LG_EXPECT(slice_is(req.host, "example.com"));
    LG_EXPECT_INT(req.target_form, LG_HTTP1_TARGET_ORIGIN);
    LG_EXPECT_INT(req.minor_version, 1);
    LG_EXPECT_INT(req.num_headers, 2);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(req.keep_alive);
    LG_EXPECT(!req.expect_continue);
    LG_EXPECT(!req.upgrade);
    LG_EXPECT(!req.is_connect);
    LG_EXPECT_INT(req.head_len, sizeof(r) - 1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_NONE);
}

LG_TEST(values_trimmed_and_obs_text_kept)
{
    static const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A:  b c \t\r\nX-B:\r\nX-C:\tv\r\n"
                            "X-D: caf\xc3\xa9 \x80\xff\r\n\r\n";
    LG_EXPECT_INT(PARSE(r), sizeof(r) - 1);
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x-a"), "b c"));
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x-b"), ""));
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x-c"), "v"));
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x-d"), "caf\xc3\xa9 \x80\xff"));
}

LG_TEST(post_with_content_length)
{
    static const char r[] = "POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello";
    LG_EXPECT_INT(PARSE(r), sizeof(r) - 1 - 5);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_CONTENT_LENGTH);
    LG_EXPECT(req.has_content_length);
    LG_EXPECT_INT(req.content_length, 5);

    LG_EXPECT_INT(PARSE("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") > 0, 1);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(req.has_content_length);
    LG_EXPECT_INT(PARSE("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n") > 0, 1);
    LG_EXPECT(req.content_length == (uint64_t)INT64_MAX);
    LG_EXPECT_INT(PARSE("POST /u HTTP/1.1\r\nHost: a\r\nContent-Length:  007 \r\n\r\n") > 0, 1);
    LG_EXPECT_INT(req.content_length, 7);
}

LG_TEST(chunked_request)
{
    static const char r[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    LG_EXPECT_INT(PARSE(r) > 0, 1);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_CHUNKED);
    LG_EXPECT(!req.has_content_length);
    /* case-insensitive coding, OWS around it (RFC-valid, and safe: legate re-serialises) */
    LG_EXPECT_INT(PARSE("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \tCHUNKED \r\n\r\n") > 0, 1);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_CHUNKED);
}

LG_TEST(pipelined_requests_in_one_buffer)
{
    static const char r[] = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n"
                            "POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc"
                            "GET /3 HTTP/1.1\r\nHost: a\r\n\r\n"
                            "GET /4 HTTP/1.1\r\nHost\0: a\r\n\r\n";
    size_t len = sizeof(r) - 1, off = 0;
    int n = PARSE(r);
    LG_EXPECT_INT(n, 28);
    LG_EXPECT(slice_is(req.path, "/1"));
    off += (size_t)n;
    n = parse_n(r + off, len - off);
    LG_EXPECT(n > 0);
    LG_EXPECT(slice_is(req.path, "/2"));
    off += (size_t)n + req.content_length;
    n = parse_n(r + off, len - off);
    LG_EXPECT(n > 0);
    LG_EXPECT(slice_is(req.path, "/3"));
    off += (size_t)n;
    /* valid + invalid: the third answered, the fourth rejected */
    LG_EXPECT_INT(parse_n(r + off, len - off), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_INVALID_HEADER_NAME);
}

LG_TEST(partial_heads_are_incomplete)
{
    static const char r[] = "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nok";
    size_t head = sizeof(r) - 1 - 2;
    for (size_t k = 0; k < head; ++k)
        LG_EXPECT_INT(parse_n(r, k), -2);
    LG_EXPECT_INT(parse_n(r, head), (int)head);

    /* Incremental with last_len gives the same answer at the same byte. */
    lg_http1_options_t o = defaults();
    size_t last = 0;
    int got = -2;
    size_t k = 1;
    for (; k <= sizeof(r) - 1 && got == -2; ++k) {
        got = lg_http1_parse_request(&o, r, k, last, &req, hdrs, HCAP, &err);
        last = k;
    }
    LG_EXPECT_INT(got, (int)head);
    LG_EXPECT_INT(k - 1, head);
    LG_EXPECT_INT(req.content_length, 2);
}

LG_TEST(absolute_form)
{
    LG_EXPECT(PARSE("GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n") > 0);
    LG_EXPECT_INT(req.target_form, LG_HTTP1_TARGET_ABSOLUTE);
    LG_EXPECT(slice_is(req.scheme, "http"));
    LG_EXPECT(slice_is(req.authority, "a.example:8080")); /* never Host's "b" */
    LG_EXPECT(slice_is(req.path, "/p?q"));
    LG_EXPECT(slice_is(req.host, "b"));
    LG_EXPECT(PARSE("GET HTTPS://[::1] HTTP/1.1\r\nHost: b\r\n\r\n") > 0);
    LG_EXPECT(slice_is(req.authority, "[::1]"));
    LG_EXPECT(slice_is(req.path, ""));
    LG_EXPECT(PARSE("GET http://a?x HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    LG_EXPECT(slice_is(req.path, "?x"));

    EXPECT_REJECT("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_SCHEME, 400,
                  "http1.invalid_scheme");
    EXPECT_REJECT("GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400,
                  "http1.invalid_url");
    EXPECT_REJECT("GET http:/a HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");
    EXPECT_REJECT("GET http:///p HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");
    EXPECT_REJECT("GET a.example/p HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");
    /* still needs a Host in HTTP/1.1 (RFC 9112 §3.2) */
    EXPECT_BAD("GET http://a/ HTTP/1.1\r\n\r\n", LG_HTTP1_ERR_MISSING_HOST);
}

LG_TEST(asterisk_and_connect)
{
    LG_EXPECT(PARSE("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    LG_EXPECT_INT(req.target_form, LG_HTTP1_TARGET_ASTERISK);
    LG_EXPECT(slice_is(req.authority, "a"));
    EXPECT_REJECT("GET * HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");

    LG_EXPECT(PARSE("CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n") > 0);
    LG_EXPECT(req.is_connect);
    LG_EXPECT_INT(req.target_form, LG_HTTP1_TARGET_AUTHORITY);
    LG_EXPECT(slice_is(req.authority, "a.example:443"));
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(PARSE("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n") > 0);

    EXPECT_REJECT("CONNECT a.example HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");
    EXPECT_REJECT("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_URL, 400, "http1.invalid_url");
    EXPECT_REJECT("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n", LG_HTTP1_ERR_BODY_DISALLOWED,
                  400, "http1.body_disallowed");
    EXPECT_REJECT("CONNECT a:443 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
                  LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 501, "http1.invalid_transfer_encoding");
}

LG_TEST(connection_semantics)
{
    LG_EXPECT(PARSE("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n") > 0);
    LG_EXPECT(!req.keep_alive);
    LG_EXPECT(PARSE("GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n") > 0);
    LG_EXPECT(req.keep_alive);

    lg_http1_options_t o = defaults();
    o.accept_http_10 = true;
    static const char r10[] = "GET / HTTP/1.0\r\n\r\n";
    LG_EXPECT(parse_opts(&o, r10, sizeof(r10) - 1) > 0);
    LG_EXPECT_INT(req.minor_version, 0);
    LG_EXPECT(!req.keep_alive);
    LG_EXPECT(slice_is(req.authority, "")); /* no Host needed in 1.0 */
    static const char r10ka[] = "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nExpect: 100-continue\r\n\r\n";
    LG_EXPECT(parse_opts(&o, r10ka, sizeof(r10ka) - 1) > 0);
    LG_EXPECT(req.keep_alive);
    LG_EXPECT(!req.expect_continue); /* RFC 9110 §10.1.1: ignored for HTTP/1.0 */
    static const char r10h[] = "GET / HTTP/1.0\r\nHost: h\r\n\r\n";
    LG_EXPECT(parse_opts(&o, r10h, sizeof(r10h) - 1) > 0);
    LG_EXPECT(slice_is(req.authority, "h"));

    EXPECT_REJECT("GET / HTTP/1.0\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_HTTP10_NOT_ALLOWED, 426, "low_version");
}

LG_TEST(expect_and_upgrade)
{
    LG_EXPECT(PARSE("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n") > 0);
    LG_EXPECT(req.expect_continue);
    LG_EXPECT(PARSE("POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n") > 0);
    LG_EXPECT(!req.expect_continue);
    LG_EXPECT(PARSE("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n") > 0);
    LG_EXPECT(req.upgrade);
    LG_EXPECT(PARSE("GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n") > 0);
    LG_EXPECT(!req.upgrade);
}

LG_TEST(leading_empty_line)
{
    LG_EXPECT(PARSE("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    LG_EXPECT(slice_is(req.method, "GET"));
    EXPECT_BAD("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BARE_LF);
}

/* ---------------------------------------------------------------------------------------------
 * Smuggling: Content-Length and Transfer-Encoding (anchors 15-17).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(cl_te_both_orders)
{
    static const char *detail = "http1.content_length_and_chunked_not_allowed";
    /* CL.TE and TE.CL with a smuggled request in the body: rejected at the head, so nothing of
     * the body is ever read as a request. */
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n",
                  LG_HTTP1_ERR_CONTENT_LENGTH_AND_CHUNKED, 400, detail);
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
                  "5c\r\nGET /admin HTTP/1.1\r\n\r\n0\r\n\r\n",
                  LG_HTTP1_ERR_CONTENT_LENGTH_AND_CHUNKED, 400, detail);
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: gzip\r\n\r\n",
                  LG_HTTP1_ERR_CONTENT_LENGTH_AND_CHUNKED, 400, detail);
}

LG_TEST(content_length_values)
{
#define CL_BAD(v, code)                                                                            \
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " v "\r\n\r\n", code, 400,         \
                  "http1.codec_error")
    CL_BAD("-1", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("+5", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("0x5", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("5_0", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("5 0", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("5,", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD(",5", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("5.0", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("1e3", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("1234567890123456789012345", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("9223372036854775808", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    CL_BAD("18446744073709551621", LG_HTTP1_ERR_INVALID_CONTENT_LENGTH); /* wraps to 5 */
    CL_BAD("5, 6", LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH);
#undef CL_BAD
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                  LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: x\r\n\r\n",
                  LG_HTTP1_ERR_INVALID_CONTENT_LENGTH, 400, "http1.codec_error");
    EXPECT_BAD("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\0\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE);

    /* Even identical duplicates are refused, as Envoy does: a framing header given twice is a
     * smuggling attempt more often than a harmless repeat (reliability-anchors §a.3). */
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
                  LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n",
                  LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH, 400, "http1.codec_error");
}

LG_TEST(transfer_encoding_values)
{
#define TE_REJECT(v, code, status)                                                                 \
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " v "\r\n\r\n", code, status,   \
                  "http1.invalid_transfer_encoding")
    TE_REJECT("gzip", LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 501);
    TE_REJECT("gzip, chunked", LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 501);
    TE_REJECT("deflate,chunked", LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 501);
    TE_REJECT("chunked, gzip", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chunked, chunked", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT(",chunked", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chunked,", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("xchunked", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chunkedx", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chunked, identity", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("identity", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chunked;q=1", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("\"chunked\"", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("chun ked", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
    TE_REJECT("", LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400);
#undef TE_REJECT
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
                  LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400, "http1.invalid_transfer_encoding");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
                  LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 400, "http1.invalid_transfer_encoding");

    /* Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1). */
    lg_http1_options_t o = defaults();
    o.accept_http_10 = true;
    static const char r10[] = "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n";
    LG_EXPECT_INT(parse_opts(&o, r10, sizeof(r10) - 1), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING);
    LG_EXPECT_INT(err.status, 400);
}

LG_TEST(te_te_obfuscations)
{
    /* Each shape some server reads as chunked and another does not. */
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n",
                  LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n",
                  LG_HTTP1_ERR_OBS_FOLD, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n",
                  LG_HTTP1_ERR_OBS_FOLD, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n",
                  LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400, "http1.invalid_characters");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n",
                  LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400, "http1.invalid_characters");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n",
                  LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON, 400, "http1.codec_error");
    EXPECT_REJECT("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\rX: y\r\n\r\n",
                  LG_HTTP1_ERR_BARE_CR, 400, "http1.codec_error");

    /* With underscores allowed, "Transfer_Encoding" is just another field: no chunked framing. */
    LG_EXPECT(PARSE("POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n") > 0);
    LG_EXPECT_INT(req.body, LG_HTTP1_BODY_NONE);
    lg_http1_options_t o = defaults();
    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_REJECT_REQUEST;
    static const char r[] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n";
    LG_EXPECT_INT(parse_opts(&o, r, sizeof(r) - 1), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_UNDERSCORE_IN_HEADER);
}

/* ---------------------------------------------------------------------------------------------
 * Field syntax, line ends and obs-fold (anchors 21-23).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(field_name_syntax)
{
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost : a\r\n\r\n", LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX Y: b\r\n\r\n", LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX\0Y: b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX\x7fY: b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX\x80Y: b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX\"Y: b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\n\x80X: b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_NAME, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", LG_HTTP1_ERR_EMPTY_HEADER_NAME, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\n:authority: b\r\n\r\n", LG_HTTP1_ERR_EMPTY_HEADER_NAME, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", LG_HTTP1_ERR_MISSING_COLON, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\n Host: a\r\n\r\n", LG_HTTP1_ERR_OBS_FOLD, 400, "http1.codec_error");
}

LG_TEST(field_value_syntax)
{
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01" "b\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b[0m\r\n\r\n", LG_HTTP1_ERR_INVALID_HEADER_VALUE, 400,
                  "http1.invalid_characters");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", LG_HTTP1_ERR_OBS_FOLD, 400,
                  "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", LG_HTTP1_ERR_OBS_FOLD, 400,
                  "http1.codec_error");
}

LG_TEST(line_ends)
{
    EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", LG_HTTP1_ERR_BARE_CR);
    EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\r\n\rX: b\r\n\r\n", LG_HTTP1_ERR_BARE_CR);
    EXPECT_BAD("GET / HTTP/1.1\rHost: a\r\n\r\n", LG_HTTP1_ERR_BARE_CR);
    EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", LG_HTTP1_ERR_BARE_LF);
    EXPECT_BAD("GET / HTTP/1.1\nHost: a\r\n\r\n", LG_HTTP1_ERR_BARE_LF);
    EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\r\n\n", LG_HTTP1_ERR_BARE_LF);
    EXPECT_BAD("GET / HTTP/1.1\r\nHost: a\n\n", LG_HTTP1_ERR_BARE_LF);

    /* RFC 9112 §2.2 leniency, off by default. */
    lg_http1_options_t o = defaults();
    o.allow_bare_lf = true;
    static const char r[] = "GET / HTTP/1.1\nHost: a\nX: b\r\n\n";
    LG_EXPECT_INT(parse_opts(&o, r, sizeof(r) - 1), sizeof(r) - 1);
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x"), "b"));
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "host"), "a"));
    static const char r2[] = "GET / HTTP/1.1\nHost: a\rX: b\n\n";
    LG_EXPECT_INT(parse_opts(&o, r2, sizeof(r2) - 1), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_BARE_CR); /* a lone CR is never a line end */
}

/* ---------------------------------------------------------------------------------------------
 * Request line (anchor 25) and Host (anchor 24).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(request_line)
{
    EXPECT_BAD("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_VERSION);
    EXPECT_BAD("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD("GET / HTTP/1.10\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_VERSION);
    EXPECT_BAD("GET / http/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_VERSION);
    EXPECT_BAD("GET / HTTP/1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_VERSION);
    EXPECT_BAD("GET /\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE); /* HTTP/0.9 */
    EXPECT_BAD("GET\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_BAD(" GET / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);
    EXPECT_REJECT("GET / HTTP/2.0\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_VERSION_NOT_SUPPORTED, 505, "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/1.2\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_VERSION_NOT_SUPPORTED, 505, "http1.codec_error");
    EXPECT_REJECT("GET / HTTP/0.9\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_VERSION_NOT_SUPPORTED, 505, "http1.codec_error");

    EXPECT_BAD("G\"T / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_METHOD);
    EXPECT_BAD("GE\0T / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_METHOD);
    EXPECT_BAD("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_METHOD);
    EXPECT_BAD("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_TARGET);
    EXPECT_BAD("GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_TARGET);
    EXPECT_BAD("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_TARGET);
    EXPECT_BAD("GET /admin#x HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_INVALID_TARGET);
    EXPECT_BAD("GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_BAD_REQUEST_LINE);

    /* Unknown but well-formed methods pass (Envoy forwards them); methods are case-sensitive. */
    LG_EXPECT(PARSE("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    LG_EXPECT(slice_is(req.method, "PURGE"));
    LG_EXPECT(PARSE("connect a:1 HTTP/1.1\r\nHost: a\r\n\r\n") == -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_INVALID_URL);
}

LG_TEST(host_header)
{
    EXPECT_REJECT("GET / HTTP/1.1\r\n\r\n", LG_HTTP1_ERR_MISSING_HOST, 400, "missing_host_header");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost:\r\n\r\n", LG_HTTP1_ERR_MISSING_HOST, 400, "missing_host_header");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", LG_HTTP1_ERR_MULTIPLE_HOST, 400,
                  "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", LG_HTTP1_ERR_MULTIPLE_HOST, 400,
                  "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    EXPECT_REJECT("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", LG_HTTP1_ERR_INVALID_HOST, 400, "http.invalid_authority");
    LG_EXPECT(PARSE("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n") > 0);
    LG_EXPECT(slice_is(req.authority, "[::1]:8080"));
    LG_EXPECT(PARSE("GET / HTTP/1.1\r\nHost: xn--bcher-kva.example.:80\r\n\r\n") > 0);
}

LG_TEST(authority_validator)
{
    LG_EXPECT(lg_http1_authority_valid("a", 1, false));
    LG_EXPECT(lg_http1_authority_valid("1.2.3.4:0", 9, true));
    LG_EXPECT(lg_http1_authority_valid("a%41b", 5, false));
    LG_EXPECT(lg_http1_authority_valid("a:", 2, false));
    LG_EXPECT(!lg_http1_authority_valid("a:", 2, true));
    LG_EXPECT(!lg_http1_authority_valid("a%4", 3, false));
    LG_EXPECT(!lg_http1_authority_valid(":80", 3, false));
    LG_EXPECT(!lg_http1_authority_valid("[]", 2, false));
    LG_EXPECT(!lg_http1_authority_valid("[::1]x", 6, false));
    LG_EXPECT(!lg_http1_authority_valid("a:65536", 7, false));
    LG_EXPECT(!lg_http1_authority_valid("a\\b", 3, false));
    LG_EXPECT(!lg_http1_authority_valid("", 0, false));
    LG_EXPECT(lg_http1_field_name_valid("x-a_b!", 6));
    LG_EXPECT(!lg_http1_field_name_valid("x:a", 3));
    LG_EXPECT(!lg_http1_field_name_valid("", 0));
    LG_EXPECT(lg_http1_field_value_valid("a b\t\x80", 5));
    LG_EXPECT(!lg_http1_field_value_valid("a\r\nb", 4));
    LG_EXPECT(!lg_http1_field_value_valid("a\0", 2));
}

/* ---------------------------------------------------------------------------------------------
 * Limits (anchor 26) and headers_with_underscores.
 * ------------------------------------------------------------------------------------------- */

static char *build_request(size_t extra_headers, size_t filler, size_t *len)
{
    size_t cap = 64 + extra_headers * 32 + filler + 64;
    char *b = malloc(cap);
    size_t n = (size_t)snprintf(b, cap, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (size_t i = 0; i < extra_headers; ++i)
        n += (size_t)snprintf(b + n, cap - n, "X-H%zu: v\r\n", i);
    if (filler > 0) {
        memcpy(b + n, "X-F: ", 5);
        n += 5;
        memset(b + n, 'f', filler);
        n += filler;
        memcpy(b + n, "\r\n", 2);
        n += 2;
    }
    memcpy(b + n, "\r\n", 2);
    n += 2;
    *len = n;
    return b;
}

LG_TEST(header_count_limit)
{
    size_t len;
    char *b = build_request(99, 0, &len); /* 100 with Host */
    LG_EXPECT_INT(parse_n(b, len), (int)len);
    LG_EXPECT_INT(req.num_headers, 100);
    free(b);
    b = build_request(100, 0, &len);
    LG_EXPECT_INT(parse_n(b, len), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_TOO_MANY_HEADERS);
    LG_EXPECT_INT(err.status, 431);
    LG_EXPECT_STR(err.details, "http1.too_many_headers");
    free(b);

    /* The caller's array bounds the count too. */
    lg_http1_options_t o = defaults();
    lg_http1_header_t small[3];
    static const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    LG_EXPECT_INT(lg_http1_parse_request(&o, r, sizeof(r) - 1, 0, &req, small, 3, &err), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_TOO_MANY_HEADERS);
    static const char r3[] = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n";
    LG_EXPECT_INT(lg_http1_parse_request(&o, r3, sizeof(r3) - 1, 0, &req, small, 3, &err), sizeof(r3) - 1);
    LG_EXPECT_INT(lg_http1_parse_request(&o, "GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27, 0, &req, small, 1, &err), 27);
}

LG_TEST(header_size_limit)
{
    size_t len;
    char *b = build_request(0, 61 * 1024, &len);
    LG_EXPECT_INT(parse_n(b, len), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_HEADERS_TOO_LARGE);
    LG_EXPECT_INT(err.status, 431);
    LG_EXPECT_STR(err.details, "http1.headers_too_large");
    /* still incomplete but already past the limit: rejected without waiting for the end */
    LG_EXPECT_INT(parse_n(b, 61 * 1024), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_HEADERS_TOO_LARGE);
    LG_EXPECT_INT(parse_n(b, 60 * 1024), -2);
    free(b);

    /* exactly at the limit passes, one byte more does not */
    lg_http1_options_t o = defaults();
    b = build_request(0, 1000, &len);
    o.max_header_bytes = len;
    LG_EXPECT_INT(parse_opts(&o, b, len), (int)len);
    o.max_header_bytes = len - 1;
    LG_EXPECT_INT(parse_opts(&o, b, len), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_HEADERS_TOO_LARGE);
    free(b);

    /* a 70 KiB request line: Envoy answers 431 */
    size_t n = 70 * 1024;
    b = malloc(n + 64);
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', n);
    memcpy(b + 5 + n, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
    LG_EXPECT_INT(parse_n(b, 5 + n + 22), -1);
    LG_EXPECT_INT(err.status, 431);
    free(b);
}

LG_TEST(headers_with_underscores)
{
    static const char r[] = "GET / HTTP/1.1\r\nHost: a\r\nX_Y: 1\r\nX-Z: 2\r\nA_B: 3\r\n\r\n";
    lg_http1_options_t o = defaults();
    LG_EXPECT_INT(parse_opts(&o, r, sizeof(r) - 1), sizeof(r) - 1);
    LG_EXPECT_INT(req.num_headers, 4);

    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_DROP_HEADER;
    LG_EXPECT_INT(parse_opts(&o, r, sizeof(r) - 1), sizeof(r) - 1);
    LG_EXPECT_INT(req.num_headers, 2);
    LG_EXPECT_INT(req.dropped_headers, 2);
    LG_EXPECT(find(hdrs, req.num_headers, "x_y") == NULL);
    LG_EXPECT(value_is(find(hdrs, req.num_headers, "x-z"), "2"));

    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_REJECT_REQUEST;
    LG_EXPECT_INT(parse_opts(&o, r, sizeof(r) - 1), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_UNDERSCORE_IN_HEADER);
    LG_EXPECT_INT(err.status, 400);
    LG_EXPECT_STR(err.details, "http1.unexpected_underscore");
}

LG_TEST(error_table)
{
    lg_http1_error_t e;
    lg_http1_error_set(&e, LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 7);
    LG_EXPECT_INT(e.status, 501);
    LG_EXPECT_INT(e.offset, 7);
    LG_EXPECT_STR(e.details, "http1.invalid_transfer_encoding");
    LG_EXPECT_STR(lg_http1_error_name(LG_HTTP1_ERR_BARE_CR), "BARE_CR");
    LG_EXPECT_STR(lg_http1_error_name(LG_HTTP1_ERR__COUNT), "?");
    for (int c = 1; c < LG_HTTP1_ERR__COUNT; ++c) {
        lg_http1_error_set(&e, (lg_http1_error_code_t)c, 0);
        LG_EXPECT(e.status >= 400 && e.status < 600);
        LG_EXPECT(e.details[0] != '\0' && e.message[0] != '\0');
    }
}

/* ---------------------------------------------------------------------------------------------
 * Responses (anchor 64).
 * ------------------------------------------------------------------------------------------- */

LG_TEST(response_framing)
{
    static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    LG_EXPECT_INT(PARSE_RESP(r, 0), sizeof(r) - 1 - 3);
    LG_EXPECT_INT(resp.status, 200);
    LG_EXPECT(slice_is(resp.reason, "OK"));
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_CONTENT_LENGTH);
    LG_EXPECT_INT(resp.content_length, 3);
    LG_EXPECT(resp.keep_alive);

    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_CHUNKED);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 \r\n\r\n", 0) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_CLOSE_DELIMITED);
    LG_EXPECT(!resp.keep_alive);
    LG_EXPECT(slice_is(resp.reason, ""));
    LG_EXPECT(PARSE_RESP("HTTP/1.1 404 Not\tFound \x80\r\nContent-Length: 0\r\n\r\n", 0) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 0) > 0);
    LG_EXPECT(!resp.keep_alive);
    LG_EXPECT(PARSE_RESP("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0) > 0);
    LG_EXPECT(!resp.keep_alive);
    LG_EXPECT(PARSE_RESP("HTTP/1.0 200 OK\r\nContent-Length: 1\r\nConnection: keep-alive\r\n\r\n", 0) > 0);
    LG_EXPECT(resp.keep_alive);
}

LG_TEST(response_without_body)
{
    LG_EXPECT(PARSE_RESP("HTTP/1.1 204 No Content\r\n\r\n", 0) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(resp.keep_alive);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", 0) > 0);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 0) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT_INT(resp.content_length, 99);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", LG_HTTP1_REQ_HEAD) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", LG_HTTP1_REQ_HEAD) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);

    EXPECT_RESP_REJECT("HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 0,
                       LG_HTTP1_ERR_BODY_DISALLOWED);
    EXPECT_RESP_REJECT("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 0, LG_HTTP1_ERR_BODY_DISALLOWED);
    EXPECT_RESP_REJECT("HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n", 0, LG_HTTP1_ERR_BODY_DISALLOWED);
}

LG_TEST(response_interim_and_tunnel)
{
    static const char r[] = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    int n = PARSE_RESP(r, 0);
    LG_EXPECT_INT(n, 25);
    LG_EXPECT(resp.is_interim);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_NONE);
    LG_EXPECT_INT(parse_resp_n(r + n, sizeof(r) - 1 - (size_t)n, 0), sizeof(r) - 1 - (size_t)n);
    LG_EXPECT(!resp.is_interim);
    LG_EXPECT_INT(resp.status, 200);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n", 0) > 0);
    LG_EXPECT(resp.is_interim);

    LG_EXPECT(PARSE_RESP("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n", 0) > 0);
    LG_EXPECT(!resp.is_interim);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_TUNNEL);
    LG_EXPECT(!resp.keep_alive);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 200 Connection established\r\n\r\n", LG_HTTP1_REQ_CONNECT) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_TUNNEL);
    LG_EXPECT(PARSE_RESP("HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", LG_HTTP1_REQ_CONNECT) > 0);
    LG_EXPECT_INT(resp.body, LG_HTTP1_BODY_CONTENT_LENGTH);
}

LG_TEST(response_rejections)
{
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
                       LG_HTTP1_ERR_CONTENT_LENGTH_AND_CHUNKED);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0,
                       LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
                       LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n", LG_HTTP1_REQ_HEAD,
                       LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING);
    EXPECT_RESP_REJECT("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
                       LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 0,
                       LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, LG_HTTP1_ERR_INVALID_CONTENT_LENGTH);
    EXPECT_RESP_REJECT("HTTP/1.1 200\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/1.1  200 OK\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/1.1 099 OK\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/1.1 600 OK\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/1.1 2000 OK\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/1.1 200 O\0K\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("ICY 200 OK\r\n\r\n", 0, LG_HTTP1_ERR_BAD_STATUS_LINE);
    EXPECT_RESP_REJECT("HTTP/2.0 200 OK\r\n\r\n", 0, LG_HTTP1_ERR_VERSION_NOT_SUPPORTED);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", 0, LG_HTTP1_ERR_OBS_FOLD);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nX: a\0b\r\n\r\n", 0, LG_HTTP1_ERR_INVALID_HEADER_VALUE);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\nX: a\r\n\r\n", 0, LG_HTTP1_ERR_BARE_LF);
    EXPECT_RESP_REJECT("HTTP/1.1 200 OK\r\nX : a\r\n\r\n", 0, LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON);

    size_t n = 61 * 1024;
    char *b = malloc(n + 64);
    memcpy(b, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(b + 20, 'x', n);
    memcpy(b + 20 + n, "\r\n\r\n", 4);
    LG_EXPECT_INT(parse_resp_n(b, n + 24, 0), -1);
    LG_EXPECT_INT(err.code, LG_HTTP1_ERR_HEADERS_TOO_LARGE);
    LG_EXPECT_INT(err.status, 502);
    free(b);

    /* Responses ignore the underscore policy (Envoy applies it to client requests only). */
    lg_http1_options_t o = defaults();
    o.headers_with_underscores = LG_HTTP1_UNDERSCORES_REJECT_REQUEST;
    static const char r[] = "HTTP/1.1 200 OK\r\nX_Y: 1\r\nContent-Length: 0\r\n\r\n";
    LG_EXPECT_INT(lg_http1_parse_response(&o, r, sizeof(r) - 1, 0, 0, &resp, hdrs, HCAP, &err), sizeof(r) - 1);
    LG_EXPECT_INT(resp.num_headers, 2);
}

LG_TEST(response_partial)
{
    static const char r[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (size_t k = 0; k < sizeof(r) - 1; ++k)
        LG_EXPECT_INT(parse_resp_n(r, k, 0), -2);
    LG_EXPECT_INT(parse_resp_n(r, sizeof(r) - 1, 0), sizeof(r) - 1);
}

int main(void)
{
    LG_RUN(simple_get);
    LG_RUN(values_trimmed_and_obs_text_kept);
    LG_RUN(post_with_content_length);
    LG_RUN(chunked_request);
    LG_RUN(pipelined_requests_in_one_buffer);
    LG_RUN(partial_heads_are_incomplete);
    LG_RUN(absolute_form);
    LG_RUN(asterisk_and_connect);
    LG_RUN(connection_semantics);
    LG_RUN(expect_and_upgrade);
    LG_RUN(leading_empty_line);
    LG_RUN(cl_te_both_orders);
    LG_RUN(content_length_values);
    LG_RUN(transfer_encoding_values);
    LG_RUN(te_te_obfuscations);
    LG_RUN(field_name_syntax);
    LG_RUN(field_value_syntax);
    LG_RUN(line_ends);
    LG_RUN(request_line);
    LG_RUN(host_header);
    LG_RUN(authority_validator);
    LG_RUN(header_count_limit);
    LG_RUN(header_size_limit);
    LG_RUN(headers_with_underscores);
    LG_RUN(error_table);
    LG_RUN(response_framing);
    LG_RUN(response_without_body);
    LG_RUN(response_interim_and_tunnel);
    LG_RUN(response_rejections);
    LG_RUN(response_partial);
    return LG_TEST_END();
}
