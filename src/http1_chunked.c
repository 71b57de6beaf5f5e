/*
 * The strict chunked decoder and encoder helpers (contract in http1_chunked.h).
 *
 * chunked-body = *chunk last-chunk trailer-section CRLF
 * chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 * chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ( token / quoted-string ) ] )
 *
 * Each framing byte moves the state machine one step, so any split of the input gives the same
 * result. Data bytes are handed out as ranges of the input. The trailer section is checked byte
 * by byte as it arrives but left in the caller's buffer until its empty line is seen, then sliced
 * in place by picohttpparser like a head.
 *
 * Not for: phr_decode_chunked, which this replaces (it decodes in place and accepts "0x5",
 * "0_2e" and bare LF).
 */
#include "http1_chunked.h"

#include <string.h>

enum {
    CS_SIZE_FIRST = 0, /* must be 0: a zeroed decoder starts here */
    CS_SIZE,
    CS_SIZE_BWS,        /* whitespace after the size: only a ';' may follow */
    CS_EXT_PRE_NAME,    /* after ';' */
    CS_EXT_NAME,
    CS_EXT_POST_NAME,   /* whitespace after a name: '=' or ';' must follow */
    CS_EXT_PRE_VALUE,   /* after '=' */
    CS_EXT_TOKEN,
    CS_EXT_QUOTED,
    CS_EXT_QUOTED_PAIR,
    CS_EXT_AFTER_QUOTE,
    CS_EXT_POST_VALUE,  /* whitespace after a value: only a ';' may follow */
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILERS,
    CS_DONE,
    CS_ERROR,
};

static inline int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_tchar(unsigned char c)
{
    return c < 128 && c > 0x20 && c != 0x7f && strchr("\"(),/:;<=>?@[\\]{}", c) == NULL;
}

/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
static inline bool is_qdtext(unsigned char c)
{
    return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) ||
           (c >= 0x5d && c != 0x7f);
}

void lg_http1_chunked_decoder_init(lg_http1_chunked_decoder_t *d, const lg_http1_options_t *opts,
                                   bool is_response, lg_http1_header_t *trailers,
                                   size_t trailers_cap)
{
    memset(d, 0, sizeof(*d));
    d->_opts = *opts;
    d->_is_response = is_response;
    d->trailers = trailers;
    d->_trailers_cap = trailers_cap;
    d->_state = CS_SIZE_FIRST;
}

/* Marks the decoder failed once d->error is filled; a broken upstream body is answered 502. */
static lg_http1_chunked_status_t failed(lg_http1_chunked_decoder_t *d)
{
    d->_state = CS_ERROR;
    if (d->_is_response)
        d->error.status = 502;
    return LG_HTTP1_CHUNKED_ERROR;
}

static lg_http1_chunked_status_t fail(lg_http1_chunked_decoder_t *d, lg_http1_error_code_t code,
                                      size_t offset)
{
    lg_http1_error_set(&d->error, code, offset);
    return failed(d);
}

/* Trailer fields that describe framing or routing: never taken from a trailer section. */
static bool is_forbidden_trailer(const lg_http1_header_t *h)
{
    static const char *const names[] = {"content-length", "transfer-encoding", "host",
                                        "connection", "keep-alive", "proxy-connection",
                                        "te", "trailer", "upgrade"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i)
        if (lg_http1_token_eq(h->name, h->name_len, names[i]))
            return true;
    return false;
}

/* The trailer section starts at buf[start]; part of it may have been checked by earlier calls. */
static lg_http1_chunked_status_t decode_trailers(lg_http1_chunked_decoder_t *d, const char *buf,
                                                 size_t len, size_t start, size_t *consumed)
{
    size_t cap = d->_opts.max_header_count < d->_trailers_cap ? d->_opts.max_header_count
                                                               : d->_trailers_cap;
    size_t from = start + d->_trailer_seen, scanned = 0;

    *consumed = start;
    if (from > len) /* the caller dropped bytes it was asked to keep */
        return fail(d, LG_HTTP1_ERR_CODEC_ERROR, len);
    /* Never look past the size limit, so that the answer does not depend on how the bytes
     * were split: the first byte over the limit is the error, whatever follows it. */
    size_t avail = len - from, allowance = d->_opts.max_header_bytes - d->_trailer_seen;
    size_t window = avail < allowance ? avail : allowance;
    int r = lg__http1_field_scan(&d->_trailer_scan, &d->_opts, cap, true, buf + from, window,
                                 &scanned, &d->error);
    if (r < 0) {
        d->error.offset += from;
        return failed(d);
    }
    d->_trailer_seen += scanned;
    if (r == 0) {
        if (window < avail)
            return fail(d, LG_HTTP1_ERR_TRAILERS_TOO_LARGE, from + window);
        return LG_HTTP1_CHUNKED_NEED_MORE;
    }

    size_t section = d->_trailer_seen, n = d->_trailer_scan._count;
    int pr = phr_parse_headers(buf + start, section, d->trailers, &n, 0);
    if (pr < 0 || (size_t)pr != section || n != d->_trailer_scan._count)
        return fail(d, LG_HTTP1_ERR_CODEC_ERROR, start); /* picohttpparser disagrees */
    if (lg__http1_fields_finish(&d->_opts, !d->_is_response, d->trailers, &n, &d->dropped_trailers,
                                &d->error) != 0) {
        d->error.offset = start;
        return failed(d);
    }
    size_t out = 0;
    for (size_t i = 0; i < n; ++i) {
        if (is_forbidden_trailer(&d->trailers[i])) {
            ++d->dropped_trailers;
            continue;
        }
        d->trailers[out++] = d->trailers[i];
    }
    d->num_trailers = out;
    d->_state = CS_DONE;
    *consumed = start + section;
    return LG_HTTP1_CHUNKED_DONE;
}

/* One framing byte (anything but chunk data and trailers): LG_HTTP1_ERR_NONE or why it is wrong. */
static lg_http1_error_code_t step(lg_http1_chunked_decoder_t *d, unsigned char c)
{
    const lg_http1_error_code_t bad_ext = LG_HTTP1_ERR_INVALID_CHUNK_EXT;

    ++d->_overhead;
    /* Extension bytes: from the ';' (or the whitespace before it) up to the CR. */
    if (d->_state >= CS_SIZE_BWS && d->_state <= CS_EXT_POST_VALUE && c != '\r' &&
        ++d->_ext_bytes > d->_opts.max_chunk_ext_bytes)
        return LG_HTTP1_ERR_CHUNK_EXT_TOO_LONG;
    /* In a size line an LF is only valid after its CR. */
    if (c == '\n' && d->_state < CS_SIZE_LF)
        return LG_HTTP1_ERR_BARE_LF;

    switch (d->_state) {
    case CS_SIZE_FIRST: {
        int v = hex_value(c);
        if (v < 0)
            return LG_HTTP1_ERR_INVALID_CHUNK_SIZE; /* "", " 5", "+5", "-5", ";" */
        d->_size = (uint64_t)v;
        d->_hex_digits = 1;
        d->_ext_bytes = 0;
        d->_state = CS_SIZE;
        return LG_HTTP1_ERR_NONE;
    }
    case CS_SIZE: {
        int v = hex_value(c);
        if (v >= 0) {
            if (++d->_hex_digits > 16 || d->_size > ((uint64_t)INT64_MAX - (uint64_t)v) / 16)
                return LG_HTTP1_ERR_CHUNK_SIZE_TOO_LARGE;
            d->_size = d->_size * 16 + (uint64_t)v;
        } else if (c == '\r') {
            d->_state = CS_SIZE_LF;
        } else if (c == ';') {
            d->_state = CS_EXT_PRE_NAME;
            ++d->_ext_bytes;
        } else if (is_ws(c)) {
            d->_state = CS_SIZE_BWS;
            ++d->_ext_bytes;
        } else {
            return LG_HTTP1_ERR_INVALID_CHUNK_SIZE; /* "0x5", "0_2e", "5\0" */
        }
        return LG_HTTP1_ERR_NONE;
    }
    case CS_SIZE_BWS:
        if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (!is_ws(c))
            return LG_HTTP1_ERR_INVALID_CHUNK_SIZE; /* "5 \r\n", "5 5" */
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_PRE_NAME:
        if (is_tchar(c))
            d->_state = CS_EXT_NAME;
        else if (!is_ws(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_NAME:
        if (c == '\r')
            d->_state = CS_SIZE_LF;
        else if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (c == '=')
            d->_state = CS_EXT_PRE_VALUE;
        else if (is_ws(c))
            d->_state = CS_EXT_POST_NAME;
        else if (!is_tchar(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_POST_NAME:
        if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (c == '=')
            d->_state = CS_EXT_PRE_VALUE;
        else if (!is_ws(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_PRE_VALUE:
        if (c == '"')
            d->_state = CS_EXT_QUOTED;
        else if (is_tchar(c))
            d->_state = CS_EXT_TOKEN;
        else if (!is_ws(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_TOKEN:
        if (c == '\r')
            d->_state = CS_SIZE_LF;
        else if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (is_ws(c))
            d->_state = CS_EXT_POST_VALUE;
        else if (!is_tchar(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_QUOTED:
        if (c == '"')
            d->_state = CS_EXT_AFTER_QUOTE;
        else if (c == '\\')
            d->_state = CS_EXT_QUOTED_PAIR;
        else if (!is_qdtext(c))
            return bad_ext; /* CR, NUL, other CTLs inside quotes */
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_QUOTED_PAIR:
        if (!(c == '\t' || (c >= 0x20 && c != 0x7f)))
            return bad_ext;
        d->_state = CS_EXT_QUOTED;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_AFTER_QUOTE:
        if (c == '\r')
            d->_state = CS_SIZE_LF;
        else if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (is_ws(c))
            d->_state = CS_EXT_POST_VALUE;
        else
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_EXT_POST_VALUE:
        if (c == ';')
            d->_state = CS_EXT_PRE_NAME;
        else if (!is_ws(c))
            return bad_ext;
        return LG_HTTP1_ERR_NONE;
    case CS_SIZE_LF:
        if (c != '\n')
            return LG_HTTP1_ERR_BARE_CR;
        /* h2o's rule of thumb: past a floor, framing may not outweigh the data 3 to 1. */
        if (d->_overhead >= LG_HTTP1_CHUNK_OVERHEAD_FLOOR && d->_overhead / 3 > d->body_bytes)
            return LG_HTTP1_ERR_CHUNK_OVERHEAD;
        d->_state = d->_size == 0 ? CS_TRAILERS : CS_DATA;
        return LG_HTTP1_ERR_NONE;
    case CS_DATA_CR:
        if (c != '\r')
            return LG_HTTP1_ERR_MISSING_CHUNK_CRLF;
        d->_state = CS_DATA_LF;
        return LG_HTTP1_ERR_NONE;
    case CS_DATA_LF:
        if (c != '\n')
            return LG_HTTP1_ERR_MISSING_CHUNK_CRLF;
        d->_state = CS_SIZE_FIRST;
        return LG_HTTP1_ERR_NONE;
    default:
        return LG_HTTP1_ERR_CODEC_ERROR;
    }
}

lg_http1_chunked_status_t lg_http1_chunked_decode(lg_http1_chunked_decoder_t *d, const char *buf,
                                                  size_t len, size_t *consumed,
                                                  lg_http1_slice_t *data)
{
    size_t i = 0;

    *consumed = 0;
    switch (d->_state) {
    case CS_DONE:
        return LG_HTTP1_CHUNKED_DONE;
    case CS_ERROR:
        return LG_HTTP1_CHUNKED_ERROR;
    case CS_TRAILERS:
        return decode_trailers(d, buf, len, 0, consumed);
    default:
        break;
    }
    while (i < len) {
        if (d->_state == CS_DATA) {
            size_t n = d->_size < (uint64_t)(len - i) ? (size_t)d->_size : len - i;
            data->base = buf + i;
            data->len = n;
            d->_size -= n;
            d->body_bytes += n;
            if (d->_size == 0)
                d->_state = CS_DATA_CR;
            *consumed = i + n;
            return LG_HTTP1_CHUNKED_DATA;
        }
        lg_http1_error_code_t code = step(d, (unsigned char)buf[i]);
        if (code != LG_HTTP1_ERR_NONE)
            return fail(d, code, i);
        ++i;
        if (d->_state == CS_TRAILERS)
            return decode_trailers(d, buf, len, i, consumed);
    }
    *consumed = len;
    return LG_HTTP1_CHUNKED_NEED_MORE;
}

size_t lg_http1_chunked_encode_size(char *buf, uint64_t size)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[size & 15];
        size >>= 4;
    } while (size != 0);
    for (size_t i = 0; i < n; ++i)
        buf[i] = tmp[n - 1 - i];
    buf[n] = '\r';
    buf[n + 1] = '\n';
    return n + 2;
}

size_t lg_http1_chunked_last_len(const lg_http1_header_t *trailers, size_t num_trailers)
{
    size_t total = 5; /* "0\r\n" ... "\r\n" */
    for (size_t i = 0; i < num_trailers; ++i)
        total += trailers[i].name_len + 2 + trailers[i].value_len + 2;
    return total;
}

size_t lg_http1_chunked_encode_last(char *buf, size_t cap, const lg_http1_header_t *trailers,
                                    size_t num_trailers)
{
    size_t need = lg_http1_chunked_last_len(trailers, num_trailers), at = 0;
    if (need > cap)
        return 0;
    for (size_t i = 0; i < num_trailers; ++i)
        if (!lg_http1_field_name_valid(trailers[i].name, trailers[i].name_len) ||
            !lg_http1_field_value_valid(trailers[i].value, trailers[i].value_len))
            return 0;
    memcpy(buf, "0\r\n", 3);
    at = 3;
    for (size_t i = 0; i < num_trailers; ++i) {
        memcpy(buf + at, trailers[i].name, trailers[i].name_len);
        at += trailers[i].name_len;
        memcpy(buf + at, ": ", 2);
        at += 2;
        if (trailers[i].value_len > 0)
            memcpy(buf + at, trailers[i].value, trailers[i].value_len);
        at += trailers[i].value_len;
        memcpy(buf + at, "\r\n", 2);
        at += 2;
    }
    memcpy(buf + at, "\r\n", 2);
    return at + 2;
}
