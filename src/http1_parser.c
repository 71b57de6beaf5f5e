/*
 * Strict HTTP/1.1 head parsing (see http1_parser.h for the contract).
 *
 * How a head is handled: find where it ends (only in bytes not seen before, so a head trickling
 * in costs linear time), enforce the size limit, then check every byte of the start line and of
 * the field lines against RFC 9112 with legate's own scanner, then let picohttpparser slice the
 * same bytes and insist that it agrees, then derive the framing and connection semantics from
 * the fields. The byte scanner runs first because it names the violation precisely; picohttpparser
 * is kept as the slicer the rest of the code base expects.
 *
 * Not for: bodies (http1_chunked.c), anything stateful across messages.
 */
#include "http1_parser.h"

#include <limits.h>
#include <string.h>

/* RFC 9110 tchar, for the 7-bit range (nothing above 0x7F is a tchar). */
static const unsigned char tchar_table[128] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20  !"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 0-9:;<=>? */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @A-O */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 P-Z[\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `a-o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 p-z{|}~DEL */
};

static inline bool is_tchar(unsigned char c)
{
    return c < 128 && tchar_table[c];
}

/* field-vchar / SP / HTAB: everything but CTLs and DEL; obs-text (0x80-0xFF) is kept. */
static inline bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static inline bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t';
}

static inline bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static inline bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static inline unsigned char to_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + ('a' - 'A')) : c;
}

/* ---------------------------------------------------------------------------------------------
 * Errors.
 * ------------------------------------------------------------------------------------------- */

struct error_info {
    int status;
    const char *details;
    const char *message;
    const char *name;
};

static const struct error_info error_table[LG_HTTP1_ERR__COUNT] = {
#define LG_HTTP1_ERROR_ROW_(name, status, details, message) {status, details, message, #name},
    LG_HTTP1_ERRORS(LG_HTTP1_ERROR_ROW_)
#undef LG_HTTP1_ERROR_ROW_
};

void lg_http1_error_set(lg_http1_error_t *err, lg_http1_error_code_t code, size_t offset)
{
    if ((unsigned)code >= LG_HTTP1_ERR__COUNT)
        code = LG_HTTP1_ERR_CODEC_ERROR;
    err->code = code;
    err->status = error_table[code].status;
    err->details = error_table[code].details;
    err->message = error_table[code].message;
    err->offset = offset;
}

const char *lg_http1_error_name(lg_http1_error_code_t code)
{
    return (unsigned)code < LG_HTTP1_ERR__COUNT ? error_table[code].name : "?";
}

static int fail(lg_http1_error_t *err, lg_http1_error_code_t code, size_t offset)
{
    lg_http1_error_set(err, code, offset);
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Small validators shared with other modules.
 * ------------------------------------------------------------------------------------------- */

void lg_http1_options_init(lg_http1_options_t *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->max_header_bytes = LG_HTTP1_DEFAULT_MAX_HEADER_BYTES;
    opts->max_header_count = LG_HTTP1_DEFAULT_MAX_HEADER_COUNT;
    opts->headers_with_underscores = LG_HTTP1_UNDERSCORES_ALLOW;
    opts->allow_bare_lf = false;
    opts->accept_http_10 = false;
    opts->max_chunk_ext_bytes = LG_HTTP1_DEFAULT_MAX_CHUNK_EXT_BYTES;
}

bool lg_http1_field_name_valid(const char *name, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; ++i)
        if (!is_tchar((unsigned char)name[i]))
            return false;
    return true;
}

bool lg_http1_field_value_valid(const char *value, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (!is_value_char((unsigned char)value[i]))
            return false;
    return true;
}

bool lg_http1_token_eq(const char *s, size_t len, const char *lower_literal)
{
    size_t i = 0;
    for (; i < len; ++i) {
        unsigned char want = (unsigned char)lower_literal[i];
        if (want == '\0' || to_lower((unsigned char)s[i]) != want)
            return false;
    }
    return lower_literal[i] == '\0';
}

static bool is_reg_name_char(unsigned char c)
{
    if (is_alpha(c) || is_digit(c))
        return true;
    switch (c) {
    case '-': case '.': case '_': case '~':                                    /* unreserved */
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*':    /* sub-delims */
    case '+': case ',': case ';': case '=':
        return true;
    default:
        return false;
    }
}

bool lg_http1_authority_valid(const char *s, size_t len, bool require_port)
{
    size_t i = 0;

    if (len == 0)
        return false;
    if (s[0] == '[') {
        /* IP-literal: kept loose (hex, ':' and '.'); enough to keep delimiters out. */
        for (i = 1; i < len && s[i] != ']'; ++i) {
            unsigned char c = (unsigned char)s[i];
            if (!is_hex(c) && c != ':' && c != '.')
                return false;
        }
        if (i == len || i == 1)
            return false;
        ++i;
    } else {
        /* reg-name or IPv4; '@' (userinfo) and every delimiter of a path are refused. */
        while (i < len && s[i] != ':') {
            unsigned char c = (unsigned char)s[i];
            if (c == '%') {
                if (len - i < 3 || !is_hex((unsigned char)s[i + 1]) ||
                    !is_hex((unsigned char)s[i + 2]))
                    return false;
                i += 3;
                continue;
            }
            if (!is_reg_name_char(c))
                return false;
            ++i;
        }
        if (i == 0)
            return false;
    }
    if (i == len)
        return !require_port;
    if (s[i] != ':')
        return false;
    ++i;
    size_t port_start = i;
    unsigned long port = 0;
    for (; i < len; ++i) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        port = port * 10 + (unsigned long)(s[i] - '0');
        if (port > 65535)
            return false;
    }
    return i > port_start || !require_port;
}

/* ---------------------------------------------------------------------------------------------
 * The field-section scanner (heads and trailers).
 * ------------------------------------------------------------------------------------------- */

enum {
    FS_LINE_START = 0, /* must be 0: a zeroed scanner starts here */
    FS_NAME,
    FS_VALUE,
    FS_VALUE_CR,
    FS_END_CR,
    FS_DONE,
};

int lg__http1_field_scan(lg__http1_field_scan_t *scan, const lg_http1_options_t *opts,
                         size_t max_count, bool trailers, const char *buf, size_t len,
                         size_t *scanned, lg_http1_error_t *err)
{
    size_t i = 0;

#define SCAN_FAIL(code)                                                                            \
    do {                                                                                           \
        *scanned = i;                                                                              \
        return fail(err, (code), i);                                                               \
    } while (0)

    if (scan->_state == FS_DONE) {
        *scanned = 0;
        return 1;
    }
    for (; i < len; ++i) {
        unsigned char c = (unsigned char)buf[i];
        switch (scan->_state) {
        case FS_LINE_START:
            if (c == '\r') {
                scan->_state = FS_END_CR;
            } else if (c == '\n') {
                if (!opts->allow_bare_lf)
                    SCAN_FAIL(LG_HTTP1_ERR_BARE_LF);
                scan->_state = FS_DONE;
                *scanned = i + 1;
                return 1;
            } else if (is_ws(c)) {
                /* obs-fold, or whitespace before the first field line (RFC 9112 §2.2, §5.2) */
                SCAN_FAIL(LG_HTTP1_ERR_OBS_FOLD);
            } else if (c == ':') {
                SCAN_FAIL(LG_HTTP1_ERR_EMPTY_HEADER_NAME);
            } else if (!is_tchar(c)) {
                SCAN_FAIL(LG_HTTP1_ERR_INVALID_HEADER_NAME);
            } else {
                if (++scan->_count > max_count)
                    SCAN_FAIL(trailers ? LG_HTTP1_ERR_TOO_MANY_TRAILERS
                                       : LG_HTTP1_ERR_TOO_MANY_HEADERS);
                scan->_state = FS_NAME;
            }
            break;
        case FS_NAME:
            if (is_tchar(c))
                break;
            if (c == ':')
                scan->_state = FS_VALUE;
            else if (is_ws(c))
                SCAN_FAIL(LG_HTTP1_ERR_WHITESPACE_BEFORE_COLON);
            else if (c == '\r' || c == '\n')
                SCAN_FAIL(LG_HTTP1_ERR_MISSING_COLON);
            else
                SCAN_FAIL(LG_HTTP1_ERR_INVALID_HEADER_NAME);
            break;
        case FS_VALUE:
            /* The hot loop: skip plain value bytes without going through the switch. */
            while (i < len && is_value_char((unsigned char)buf[i]))
                ++i;
            if (i == len)
                break;
            c = (unsigned char)buf[i];
            if (c == '\r') {
                scan->_state = FS_VALUE_CR;
            } else if (c == '\n') {
                if (!opts->allow_bare_lf)
                    SCAN_FAIL(LG_HTTP1_ERR_BARE_LF);
                scan->_state = FS_LINE_START;
            } else {
                SCAN_FAIL(LG_HTTP1_ERR_INVALID_HEADER_VALUE);
            }
            break;
        case FS_VALUE_CR:
            if (c != '\n')
                SCAN_FAIL(LG_HTTP1_ERR_BARE_CR);
            scan->_state = FS_LINE_START;
            break;
        case FS_END_CR:
            if (c != '\n')
                SCAN_FAIL(LG_HTTP1_ERR_BARE_CR);
            scan->_state = FS_DONE;
            *scanned = i + 1;
            return 1;
        default:
            SCAN_FAIL(LG_HTTP1_ERR_CODEC_ERROR);
        }
        if (i == len)
            break;
    }
    *scanned = len;
    return 0;
#undef SCAN_FAIL
}

static void trim_ows(const char **s, size_t *len)
{
    while (*len > 0 && is_ws((unsigned char)(*s)[0])) {
        ++*s;
        --*len;
    }
    while (*len > 0 && is_ws((unsigned char)(*s)[*len - 1]))
        --*len;
}

int lg__http1_fields_finish(const lg_http1_options_t *opts, bool apply_underscores,
                            lg_http1_header_t *headers, size_t *num_headers, size_t *dropped,
                            lg_http1_error_t *err)
{
    size_t out = 0;
    for (size_t i = 0; i < *num_headers; ++i) {
        lg_http1_header_t h = headers[i];
        trim_ows(&h.value, &h.value_len);
        if (h.value_len == 0)
            h.value = h.name + h.name_len; /* never NULL, still inside the buffer */
        if (apply_underscores && opts->headers_with_underscores != LG_HTTP1_UNDERSCORES_ALLOW &&
            memchr(h.name, '_', h.name_len) != NULL) {
            if (opts->headers_with_underscores == LG_HTTP1_UNDERSCORES_REJECT_REQUEST)
                return fail(err, LG_HTTP1_ERR_UNDERSCORE_IN_HEADER, 0);
            ++*dropped;
            continue;
        }
        headers[out++] = h;
    }
    *num_headers = out;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Start lines.
 * ------------------------------------------------------------------------------------------- */

/* Where the end of the head is: just past the first empty line, searched from `last_len - 2`
 * (an LF seen before may start "\n\r\n" with new bytes). 0 when not there yet. A bare-LF empty
 * line ("\n\n") also ends the search; the strict scan then decides whether it is allowed. */
static size_t find_head_end(const char *buf, size_t len, size_t last_len)
{
    size_t i = last_len >= 2 ? last_len - 2 : 0;
    while (i < len) {
        const char *lf = memchr(buf + i, '\n', len - i);
        if (lf == NULL)
            return 0;
        size_t k = (size_t)(lf - buf);
        if (k + 1 < len && buf[k + 1] == '\n')
            return k + 2;
        if (k + 2 < len && buf[k + 1] == '\r' && buf[k + 2] == '\n')
            return k + 3;
        i = k + 1;
    }
    return 0;
}

/* After the version: a line end. Sets *pos past it. */
static int expect_line_end(const lg_http1_options_t *opts, const char *buf, size_t end, size_t *pos,
                           lg_http1_error_code_t otherwise, lg_http1_error_t *err)
{
    size_t i = *pos;
    if (i < end && buf[i] == '\r') {
        if (i + 1 >= end || buf[i + 1] != '\n')
            return fail(err, LG_HTTP1_ERR_BARE_CR, i);
        *pos = i + 2;
        return 0;
    }
    if (i < end && buf[i] == '\n') {
        if (!opts->allow_bare_lf)
            return fail(err, LG_HTTP1_ERR_BARE_LF, i);
        *pos = i + 1;
        return 0;
    }
    return fail(err, otherwise, i);
}

/* "HTTP/" DIGIT "." DIGIT at buf[*pos]; *pos moves past it. */
static bool scan_version(const char *buf, size_t end, size_t *pos, int *major, int *minor)
{
    size_t i = *pos;
    if (end - i < 8 || memcmp(buf + i, "HTTP/", 5) != 0 || !is_digit((unsigned char)buf[i + 5]) ||
        buf[i + 6] != '.' || !is_digit((unsigned char)buf[i + 7]))
        return false;
    *major = buf[i + 5] - '0';
    *minor = buf[i + 7] - '0';
    *pos = i + 8;
    return true;
}

struct request_line {
    size_t method_off, method_len, target_off, target_len;
    int minor;
};

/* request-line = method SP request-target SP HTTP-version CRLF, one optional empty line first.
 * On success *pos is where the field lines start. */
static int scan_request_line(const lg_http1_options_t *opts, const char *buf, size_t end,
                             size_t *pos, struct request_line *rl, lg_http1_error_t *err)
{
    size_t i = 0;
    int major, minor;

    /* RFC 9112 §2.2: one empty line before a request line is ignored (picohttpparser too). */
    if (buf[0] == '\r') {
        if (end < 2 || buf[1] != '\n')
            return fail(err, LG_HTTP1_ERR_BARE_CR, 0);
        i = 2;
    } else if (buf[0] == '\n') {
        if (!opts->allow_bare_lf)
            return fail(err, LG_HTTP1_ERR_BARE_LF, 0);
        i = 1;
    }

    rl->method_off = i;
    while (i < end && is_tchar((unsigned char)buf[i]))
        ++i;
    if (i == end)
        return fail(err, LG_HTTP1_ERR_BAD_REQUEST_LINE, i);
    if (buf[i] != ' ' || i == rl->method_off) {
        unsigned char c = (unsigned char)buf[i];
        bool structural = c == ' ' || c == '\t' || c == '\r' || c == '\n';
        return fail(err, structural ? LG_HTTP1_ERR_BAD_REQUEST_LINE : LG_HTTP1_ERR_INVALID_METHOD,
                    i);
    }
    rl->method_len = i - rl->method_off;
    ++i;

    rl->target_off = i;
    for (; i < end && buf[i] != ' '; ++i) {
        unsigned char c = (unsigned char)buf[i];
        if (c == '\r' || c == '\n' || c == '\t')
            return fail(err, LG_HTTP1_ERR_BAD_REQUEST_LINE, i); /* HTTP/0.9, TAB as separator */
        /* CTLs, DEL and raw non-ASCII are not URI characters; '#' starts a fragment, which a
         * request-target never carries (RFC 9112 §3.2). */
        if (c < 0x20 || c >= 0x7f || c == '#')
            return fail(err, LG_HTTP1_ERR_INVALID_TARGET, i);
    }
    if (i == end || i == rl->target_off)
        return fail(err, LG_HTTP1_ERR_BAD_REQUEST_LINE, i); /* two SPs, or no version */
    rl->target_len = i - rl->target_off;
    ++i;

    if (!scan_version(buf, end, &i, &major, &minor))
        return fail(err, LG_HTTP1_ERR_BAD_VERSION, i);
    if (i < end && is_digit((unsigned char)buf[i]))
        return fail(err, LG_HTTP1_ERR_BAD_VERSION, i); /* HTTP/1.10 */
    if (expect_line_end(opts, buf, end, &i, LG_HTTP1_ERR_BAD_REQUEST_LINE, err) != 0)
        return -1;
    if (major != 1 || minor > 1)
        return fail(err, LG_HTTP1_ERR_VERSION_NOT_SUPPORTED, rl->target_off + rl->target_len + 1);
    rl->minor = minor;
    *pos = i;
    return 0;
}

struct status_line {
    int minor, status;
    size_t reason_off, reason_len;
};

/* status-line = HTTP-version SP 3DIGIT SP [ reason-phrase ] CRLF */
static int scan_status_line(const lg_http1_options_t *opts, const char *buf, size_t end,
                            size_t *pos, struct status_line *sl, lg_http1_error_t *err)
{
    size_t i = 0;
    int major, minor;

    if (!scan_version(buf, end, &i, &major, &minor))
        return fail(err, LG_HTTP1_ERR_BAD_STATUS_LINE, 0);
    if (end - i < 5 || buf[i] != ' ' || !is_digit((unsigned char)buf[i + 1]) ||
        !is_digit((unsigned char)buf[i + 2]) || !is_digit((unsigned char)buf[i + 3]) ||
        buf[i + 4] != ' ')
        return fail(err, LG_HTTP1_ERR_BAD_STATUS_LINE, i);
    sl->status = (buf[i + 1] - '0') * 100 + (buf[i + 2] - '0') * 10 + (buf[i + 3] - '0');
    if (sl->status < 100 || sl->status > 599)
        return fail(err, LG_HTTP1_ERR_BAD_STATUS_LINE, i + 1);
    i += 5;
    sl->reason_off = i;
    while (i < end && is_value_char((unsigned char)buf[i]))
        ++i;
    sl->reason_len = i - sl->reason_off;
    if (expect_line_end(opts, buf, end, &i, LG_HTTP1_ERR_BAD_STATUS_LINE, err) != 0)
        return -1;
    if (major != 1 || minor > 1)
        return fail(err, LG_HTTP1_ERR_VERSION_NOT_SUPPORTED, 0);
    sl->minor = minor;
    *pos = i;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Field semantics: framing and connection management.
 * ------------------------------------------------------------------------------------------- */

/* Parses one Content-Length field value: 1*DIGIT, at most 19 digits and at most INT64_MAX.
 * RFC 9110 §8.6 would let identical duplicates through; Envoy refuses any second value (a list,
 * or another line: *have), and so does legate. Returns 0, or the error code. */
static lg_http1_error_code_t parse_content_length(const char *v, size_t len, bool *have,
                                                  uint64_t *value)
{
    size_t i = 0;
    for (;;) {
        while (i < len && is_ws((unsigned char)v[i]))
            ++i;
        size_t start = i;
        uint64_t x = 0;
        while (i < len && is_digit((unsigned char)v[i])) {
            if (i - start == 19)
                return LG_HTTP1_ERR_INVALID_CONTENT_LENGTH;
            x = x * 10 + (uint64_t)(v[i] - '0');
            ++i;
        }
        if (i == start || x > (uint64_t)INT64_MAX)
            return LG_HTTP1_ERR_INVALID_CONTENT_LENGTH;
        while (i < len && is_ws((unsigned char)v[i]))
            ++i;
        if (i < len && v[i] != ',')
            return LG_HTTP1_ERR_INVALID_CONTENT_LENGTH;
        if (*have)
            return LG_HTTP1_ERR_CONFLICTING_CONTENT_LENGTH;
        *have = true;
        *value = x;
        if (i == len)
            return LG_HTTP1_ERR_NONE;
        ++i; /* ',' then another element, which must not be empty */
    }
}

/* Transfer-Encoding classification; the decision is documented at LG_HTTP1_ERRORS. */
static lg_http1_error_code_t classify_transfer_encoding(const char *v, size_t len)
{
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress"};
    bool saw_chunked = false, saw_other = false;
    size_t i = 0;

    for (;;) {
        while (i < len && is_ws((unsigned char)v[i]))
            ++i;
        size_t start = i;
        while (i < len && is_tchar((unsigned char)v[i]))
            ++i;
        if (i == start)
            return LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING; /* empty element or not a token */
        const char *coding = v + start;
        size_t coding_len = i - start;
        while (i < len && is_ws((unsigned char)v[i]))
            ++i;
        if (i < len && v[i] != ',')
            return LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING; /* parameters or junk */
        if (saw_chunked)
            return LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING; /* chunked is final and only once */
        if (lg_http1_token_eq(coding, coding_len, "chunked")) {
            saw_chunked = true;
        } else {
            bool is_known = false;
            for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); ++k)
                is_known = is_known || lg_http1_token_eq(coding, coding_len, known[k]);
            if (!is_known)
                return LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING;
            saw_other = true;
        }
        if (i == len)
            break;
        ++i;
    }
    if (saw_chunked && !saw_other)
        return LG_HTTP1_ERR_NONE;
    return LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING;
}

/* True when the comma-separated list `v` holds `token` (case-insensitive). */
static bool list_has_token(const char *v, size_t len, const char *token)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (is_ws((unsigned char)v[i]) || v[i] == ','))
            ++i;
        size_t start = i;
        while (i < len && v[i] != ',')
            ++i;
        size_t n = i - start;
        while (n > 0 && is_ws((unsigned char)v[start + n - 1]))
            --n;
        if (n > 0 && lg_http1_token_eq(v + start, n, token))
            return true;
    }
    return false;
}

/* What the fields say about framing and the connection, common to requests and responses. */
struct field_facts {
    size_t host_count, te_count, expect_continue;
    const lg_http1_header_t *host, *te;
    bool has_cl, conn_close, conn_keep_alive, conn_upgrade, has_upgrade;
    uint64_t cl;
    lg_http1_error_code_t cl_error;
};

static void collect_facts(const lg_http1_header_t *h, size_t n, struct field_facts *f)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < n; ++i) {
        const char *name = h[i].name, *value = h[i].value;
        size_t nl = h[i].name_len, vl = h[i].value_len;
        if (lg_http1_token_eq(name, nl, "host")) {
            if (f->host_count++ == 0)
                f->host = &h[i];
        } else if (lg_http1_token_eq(name, nl, "content-length")) {
            if (f->cl_error == LG_HTTP1_ERR_NONE)
                f->cl_error = parse_content_length(value, vl, &f->has_cl, &f->cl);
            f->has_cl = true;
        } else if (lg_http1_token_eq(name, nl, "transfer-encoding")) {
            if (f->te_count++ == 0)
                f->te = &h[i];
        } else if (lg_http1_token_eq(name, nl, "connection")) {
            f->conn_close = f->conn_close || list_has_token(value, vl, "close");
            f->conn_keep_alive = f->conn_keep_alive || list_has_token(value, vl, "keep-alive");
            f->conn_upgrade = f->conn_upgrade || list_has_token(value, vl, "upgrade");
        } else if (lg_http1_token_eq(name, nl, "expect")) {
            if (lg_http1_token_eq(value, vl, "100-continue"))
                ++f->expect_continue;
        } else if (lg_http1_token_eq(name, nl, "upgrade")) {
            f->has_upgrade = f->has_upgrade || vl > 0;
        }
    }
}

static bool keep_alive_for(int minor, const struct field_facts *f)
{
    if (f->conn_close)
        return false;
    return minor >= 1 || f->conn_keep_alive;
}

/* Framing checks shared by both directions, in Envoy's order. Sets *te_kind to the
 * classification of the Transfer-Encoding value when there is one. */
static int check_length_fields(int minor, const struct field_facts *f,
                               lg_http1_error_code_t *te_kind, lg_http1_error_t *err)
{
    *te_kind = LG_HTTP1_ERR_NONE;
    if (f->te_count > 0) {
        /* RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means the framing is faulty. */
        if (minor == 0 || f->te_count > 1)
            return fail(err, LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING, 0);
    }
    if (f->cl_error != LG_HTTP1_ERR_NONE)
        return fail(err, f->cl_error, 0);
    if (f->te_count > 0 && f->has_cl)
        return fail(err, LG_HTTP1_ERR_CONTENT_LENGTH_AND_CHUNKED, 0);
    if (f->te_count > 0) {
        *te_kind = classify_transfer_encoding(f->te->value, f->te->value_len);
        if (*te_kind == LG_HTTP1_ERR_INVALID_TRANSFER_ENCODING)
            return fail(err, *te_kind, 0);
    }
    return 0;
}

/* request-target forms (RFC 9112 §3.2), and the authority/path they give. */
static int analyze_target(lg_http1_request_t *req, lg_http1_error_t *err)
{
    const char *t = req->target.base;
    size_t len = req->target.len, off = 0;

    if (req->is_connect) {
        if (!lg_http1_authority_valid(t, len, true))
            return fail(err, LG_HTTP1_ERR_INVALID_URL, 0);
        req->target_form = LG_HTTP1_TARGET_AUTHORITY;
        req->authority = req->target;
        req->path = (lg_http1_slice_t){t + len, 0};
        return 0;
    }
    if (t[0] == '/') {
        req->target_form = LG_HTTP1_TARGET_ORIGIN;
        req->path = req->target;
        return 0;
    }
    if (len == 1 && t[0] == '*') {
        if (!(req->method.len == 7 && memcmp(req->method.base, "OPTIONS", 7) == 0))
            return fail(err, LG_HTTP1_ERR_INVALID_URL, 0);
        req->target_form = LG_HTTP1_TARGET_ASTERISK;
        req->path = req->target;
        return 0;
    }
    /* absolute-form: scheme "://" authority path-abempty [ "?" query ] */
    if (!is_alpha((unsigned char)t[0]))
        return fail(err, LG_HTTP1_ERR_INVALID_URL, 0);
    while (off < len && (is_alpha((unsigned char)t[off]) || is_digit((unsigned char)t[off]) ||
                         t[off] == '+' || t[off] == '-' || t[off] == '.'))
        ++off;
    if (len - off < 3 || memcmp(t + off, "://", 3) != 0)
        return fail(err, LG_HTTP1_ERR_INVALID_URL, off);
    req->scheme = (lg_http1_slice_t){t, off};
    if (!lg_http1_token_eq(t, off, "http") && !lg_http1_token_eq(t, off, "https"))
        return fail(err, LG_HTTP1_ERR_INVALID_SCHEME, 0);
    size_t a = off + 3, e = a;
    while (e < len && t[e] != '/' && t[e] != '?')
        ++e;
    if (!lg_http1_authority_valid(t + a, e - a, false))
        return fail(err, LG_HTTP1_ERR_INVALID_URL, a);
    req->target_form = LG_HTTP1_TARGET_ABSOLUTE;
    req->authority = (lg_http1_slice_t){t + a, e - a};
    req->path = (lg_http1_slice_t){t + e, len - e};
    return 0;
}

static int analyze_request(const lg_http1_options_t *opts, lg_http1_request_t *req,
                           lg_http1_error_t *err)
{
    struct field_facts f;
    lg_http1_error_code_t te_kind;

    req->is_connect = req->method.len == 7 && memcmp(req->method.base, "CONNECT", 7) == 0;
    req->is_head = req->method.len == 4 && memcmp(req->method.base, "HEAD", 4) == 0;
    collect_facts(req->headers, req->num_headers, &f);

    /* Framing first, as Envoy's codec does: these are the smuggling cases. */
    if (check_length_fields(req->minor_version, &f, &te_kind, err) != 0)
        return -1;
    if (f.te_count > 0) {
        /* CONNECT has no body semantics; Envoy answers any Transfer-Encoding on it 501. */
        if (te_kind != LG_HTTP1_ERR_NONE || req->is_connect)
            return fail(err, LG_HTTP1_ERR_UNSUPPORTED_TRANSFER_ENCODING, 0);
        req->body = LG_HTTP1_BODY_CHUNKED;
    } else if (f.has_cl) {
        if (req->is_connect && f.cl != 0)
            return fail(err, LG_HTTP1_ERR_BODY_DISALLOWED, 0);
        req->body = f.cl > 0 ? LG_HTTP1_BODY_CONTENT_LENGTH : LG_HTTP1_BODY_NONE;
    } else {
        req->body = LG_HTTP1_BODY_NONE;
    }
    req->has_content_length = f.has_cl;
    req->content_length = f.has_cl ? f.cl : 0;

    if (analyze_target(req, err) != 0)
        return -1;
    if (req->minor_version == 0 && !opts->accept_http_10)
        return fail(err, LG_HTTP1_ERR_HTTP10_NOT_ALLOWED, 0);

    /* Host (RFC 9112 §3.2): exactly one, valid, in HTTP/1.1 even with an absolute-form target,
     * whose authority then wins (a proxy MUST ignore Host); optional in HTTP/1.0. */
    if (f.host_count > 1)
        return fail(err, LG_HTTP1_ERR_MULTIPLE_HOST, 0);
    if (f.host_count == 1 && f.host->value_len > 0) {
        if (!lg_http1_authority_valid(f.host->value, f.host->value_len, false))
            return fail(err, LG_HTTP1_ERR_INVALID_HOST, 0);
        req->host = (lg_http1_slice_t){f.host->value, f.host->value_len};
    } else if (req->minor_version == 1) {
        return fail(err, LG_HTTP1_ERR_MISSING_HOST, 0);
    }
    if (req->target_form == LG_HTTP1_TARGET_ORIGIN || req->target_form == LG_HTTP1_TARGET_ASTERISK)
        req->authority = req->host;

    req->keep_alive = keep_alive_for(req->minor_version, &f);
    req->expect_continue = req->minor_version == 1 && f.expect_continue > 0;
    req->upgrade = f.has_upgrade && f.conn_upgrade;
    return 0;
}

static int analyze_response(unsigned request_flags, lg_http1_response_t *resp,
                            lg_http1_error_t *err)
{
    struct field_facts f;
    lg_http1_error_code_t te_kind;
    int status = resp->status;

    collect_facts(resp->headers, resp->num_headers, &f);
    if (check_length_fields(resp->minor_version, &f, &te_kind, err) != 0)
        return -1;
    resp->has_content_length = f.has_cl;
    resp->content_length = f.has_cl ? f.cl : 0;
    resp->keep_alive = keep_alive_for(resp->minor_version, &f);
    resp->is_interim = status / 100 == 1 && status != 101;

    /* 1xx and 204 never have a body (RFC 9110 §15.2, §15.3.5): a Transfer-Encoding or a non-zero
     * length there would leave bytes on the connection for the next response to be read from. */
    if ((status / 100 == 1 || status == 204) && (f.te_count > 0 || (f.has_cl && f.cl != 0)))
        return fail(err, LG_HTTP1_ERR_BODY_DISALLOWED, 0);

    if (status == 101 || ((request_flags & LG_HTTP1_REQ_CONNECT) && status / 100 == 2)) {
        resp->body = LG_HTTP1_BODY_TUNNEL;
        resp->keep_alive = false;
    } else if ((request_flags & LG_HTTP1_REQ_HEAD) || status / 100 == 1 || status == 204 ||
               status == 304) {
        resp->body = LG_HTTP1_BODY_NONE;
    } else if (f.te_count > 0) {
        /* Only "chunked" is decoded; RFC 9112 would read other codings to the close, which would
         * hand the client bytes in a coding nobody announced to it. */
        if (te_kind != LG_HTTP1_ERR_NONE)
            return fail(err, te_kind, 0);
        resp->body = LG_HTTP1_BODY_CHUNKED;
    } else if (f.has_cl) {
        resp->body = f.cl > 0 ? LG_HTTP1_BODY_CONTENT_LENGTH : LG_HTTP1_BODY_NONE;
    } else {
        resp->body = LG_HTTP1_BODY_CLOSE_DELIMITED;
        resp->keep_alive = false;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points.
 * ------------------------------------------------------------------------------------------- */

/* Common front half: find the end, enforce the size, and scan the fields after the start line
 * (whose scanner is passed in). Returns the head length, -2, or -1. */
static int locate_head(const lg_http1_options_t *opts, const char *buf, size_t len, size_t last_len,
                       lg_http1_error_t *err, size_t *end)
{
    *end = find_head_end(buf, len, last_len);
    if (*end == 0) {
        if (len > opts->max_header_bytes)
            return fail(err, LG_HTTP1_ERR_HEADERS_TOO_LARGE, opts->max_header_bytes);
        return -2;
    }
    if (*end > opts->max_header_bytes || *end > INT_MAX)
        return fail(err, LG_HTTP1_ERR_HEADERS_TOO_LARGE, opts->max_header_bytes);
    return 0;
}

static int scan_fields_to(const lg_http1_options_t *opts, size_t max_count, const char *buf,
                          size_t pos, size_t end, size_t *count, lg_http1_error_t *err)
{
    lg__http1_field_scan_t scan = {0};
    size_t scanned = 0;
    int r = lg__http1_field_scan(&scan, opts, max_count, false, buf + pos, end - pos, &scanned,
                                 err);
    if (r < 0) {
        err->offset += pos;
        return -1;
    }
    if (r == 0 || pos + scanned != end)
        return fail(err, LG_HTTP1_ERR_CODEC_ERROR, pos + scanned); /* see find_head_end */
    *count = scan._count;
    return 0;
}

int lg_http1_parse_request(const lg_http1_options_t *opts, const char *buf, size_t len,
                           size_t last_len, lg_http1_request_t *req, lg_http1_header_t *headers,
                           size_t headers_cap, lg_http1_error_t *err)
{
    size_t max_count = opts->max_header_count < headers_cap ? opts->max_header_count : headers_cap;
    size_t end, pos = 0, count = 0;
    struct request_line rl;
    int r;

    memset(req, 0, sizeof(*req));
    lg_http1_error_set(err, LG_HTTP1_ERR_NONE, 0);
    if ((r = locate_head(opts, buf, len, last_len, err, &end)) != 0)
        return r;
    if (scan_request_line(opts, buf, end, &pos, &rl, err) != 0)
        return -1;
    if (scan_fields_to(opts, max_count, buf, pos, end, &count, err) != 0)
        return -1;

    /* The bytes are clean; picohttpparser slices them and must see what we saw. */
    const char *method, *path;
    size_t method_len, path_len, n = count;
    int minor;
    r = phr_parse_request(buf, end, &method, &method_len, &path, &path_len, &minor, headers, &n, 0);
    if (r != (int)end || n != count || method != buf + rl.method_off ||
        method_len != rl.method_len || path != buf + rl.target_off || path_len != rl.target_len ||
        minor != rl.minor)
        return fail(err, LG_HTTP1_ERR_CODEC_ERROR, 0);

    req->method = (lg_http1_slice_t){method, method_len};
    req->target = (lg_http1_slice_t){path, path_len};
    req->minor_version = minor;
    req->headers = headers;
    req->num_headers = n;
    req->head_len = end;
    if (lg__http1_fields_finish(opts, true, headers, &req->num_headers, &req->dropped_headers,
                                err) != 0)
        return -1;
    if (analyze_request(opts, req, err) != 0)
        return -1;
    return (int)end;
}

int lg_http1_parse_response(const lg_http1_options_t *opts, const char *buf, size_t len,
                            size_t last_len, unsigned request_flags, lg_http1_response_t *resp,
                            lg_http1_header_t *headers, size_t headers_cap, lg_http1_error_t *err)
{
    size_t max_count = opts->max_header_count < headers_cap ? opts->max_header_count : headers_cap;
    size_t end, pos = 0, count = 0, dropped = 0;
    struct status_line sl;
    int r;

    memset(resp, 0, sizeof(*resp));
    lg_http1_error_set(err, LG_HTTP1_ERR_NONE, 0);
    r = locate_head(opts, buf, len, last_len, err, &end);
    if (r == -2)
        return -2;
    if (r == 0 && scan_status_line(opts, buf, end, &pos, &sl, err) == 0 &&
        scan_fields_to(opts, max_count, buf, pos, end, &count, err) == 0) {
        const char *msg;
        size_t msg_len, n = count;
        int minor, status;
        r = phr_parse_response(buf, end, &minor, &status, &msg, &msg_len, headers, &n, 0);
        if (r != (int)end || n != count || minor != sl.minor || status != sl.status ||
            msg != buf + sl.reason_off || msg_len != sl.reason_len) {
            fail(err, LG_HTTP1_ERR_CODEC_ERROR, 0);
        } else {
            resp->minor_version = minor;
            resp->status = status;
            resp->reason = (lg_http1_slice_t){msg, msg_len};
            resp->headers = headers;
            resp->num_headers = n;
            resp->head_len = end;
            if (lg__http1_fields_finish(opts, false, headers, &resp->num_headers, &dropped,
                                        err) == 0 &&
                analyze_response(request_flags, resp, err) == 0)
                return (int)end;
        }
    }
    /* Whatever the reason, a broken upstream response is answered 502 to the client. */
    err->status = 502;
    return -1;
}
