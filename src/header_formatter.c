/*
 * Header values with command operators, and header mutations: see header_formatter.h.
 *
 * A compiled formatter is an array of parts. Evaluation computes each part's value (pointing into
 * the request or response when it can, into small pool buffers otherwise), then copies them into
 * one pool allocation. A formatter without operators is a constant and evaluates to itself.
 */
#include "header_formatter.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* HeaderValueOption.append is deprecated, yet Envoy still honours it, and so does legate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

/* GRPC_STATUS(...) renderings, and RESPONSE_CODE_DETAILS(ALLOW_WHITESPACES). */
enum { GRPC_CAMEL, GRPC_SNAKE, GRPC_NUMBER };
enum { DETAILS_UNDERSCORES, DETAILS_ALLOW_WHITESPACES };

typedef struct st_lg_format_part_t {
    lg_format_op_t op;
    h2o_iovec_t text; /* literal text, or the argument (header name, time format) */
    h2o_iovec_t alt;  /* REQ(a?b) / RESP(a?b) / TRAILER(a?b): the header tried when `a` is absent */
    size_t max_len;   /* 0: no truncation */
    int variant;      /* GRPC_* or DETAILS_* */
} lg_format_part_t;

struct st_lg_header_formatter_t {
    lg_format_part_t *parts;
    size_t n_parts;
    unsigned flags;
    h2o_iovec_t constant; /* the whole value when n_parts == 1 and it is literal, or empty */
    int is_constant;
};

static const struct {
    const char *name;
    int arg;
    int numeric;
} operators[] = {
    {"", 0, 0},
#define LG_X(name, arg, num) {#name, arg, num},
    LG_FORMAT_OPERATORS(LG_X)
#undef LG_X
};

static void *xmalloc(size_t n)
{
    void *p = malloc(n != 0 ? n : 1);
    if (p == NULL)
        lg_fatal("out of memory");
    return p;
}

static h2o_iovec_t xdup(const char *s, size_t len, int lower)
{
    char *p = xmalloc(len + 1);
    for (size_t i = 0; i < len; ++i)
        p[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    p[len] = '\0';
    return h2o_iovec_init(p, len);
}

/* ------------------------------------------------------------------------------------------- */
/* Compiling                                                                                   */
/* ------------------------------------------------------------------------------------------- */

static void add_part(lg_header_formatter_t *f, size_t *cap, lg_format_part_t part)
{
    if (f->n_parts == *cap) {
        *cap = *cap != 0 ? *cap * 2 : 4;
        lg_format_part_t *p = realloc(f->parts, *cap * sizeof(*p));
        if (p == NULL)
            lg_fatal("out of memory");
        f->parts = p;
    }
    f->parts[f->n_parts++] = part;
}

static void flush_literal(lg_header_formatter_t *f, size_t *cap, char *lit, size_t *lit_len)
{
    if (*lit_len == 0)
        return;
    add_part(f, cap, (lg_format_part_t){LG_FORMAT_LITERAL, xdup(lit, *lit_len, 0), {NULL, 0}, 0, 0});
    *lit_len = 0;
}

static int lookup_operator(const char *name, size_t len)
{
    for (int i = 1; i < LG_FORMAT_OP__COUNT; ++i)
        if (strlen(operators[i].name) == len && memcmp(operators[i].name, name, len) == 0)
            return i;
    return -1;
}

/* Fills the argument of REQ/RESP: "name" or "name?alternative", lowercased. */
static int header_arg(lg_format_part_t *part, const char *arg, size_t len, const char *opname,
                      lg_error_t *err)
{
    const char *q = memchr(arg, '?', len);
    size_t main_len = q != NULL ? (size_t)(q - arg) : len;
    if (q != NULL && memchr(q + 1, '?', len - main_len - 1) != NULL)
        return lg_error_set(err, "More than 1 alternative header specified in token: %.*s", (int)len, arg);
    if (main_len == 0 || (q != NULL && main_len + 1 == len))
        return lg_error_set(err, "%%%s(...)%% needs a header name: %.*s", opname, (int)len, arg);
    part->text = xdup(arg, main_len, 1);
    if (q != NULL)
        part->alt = xdup(q + 1, len - main_len - 1, 1);
    return 0;
}

/* Parses one `%NAME(arg):N%` at text[pos] (text[pos] == '%'); returns the position after it. */
static ssize_t parse_command(lg_header_formatter_t *f, size_t *cap, const char *text, size_t len,
                             size_t pos, lg_error_t *err)
{
    size_t p = pos + 1, name_start = p;
    while (p < len && (isupper((unsigned char)text[p]) || isdigit((unsigned char)text[p]) || text[p] == '_'))
        ++p;
    size_t name_len = p - name_start;
    const char *arg = NULL;
    size_t arg_len = 0, max_len = 0;
    int bad = name_len == 0;
    if (!bad && p < len && text[p] == '(') {
        const char *close = memchr(text + p + 1, ')', len - p - 1);
        if (close == NULL) {
            bad = 1;
        } else {
            arg = text + p + 1;
            arg_len = (size_t)(close - arg);
            p = (size_t)(close - text) + 1;
        }
    }
    if (!bad && p < len && text[p] == ':') {
        size_t d = ++p;
        while (p < len && isdigit((unsigned char)text[p]) && p - d < 9)
            max_len = max_len * 10 + (size_t)(text[p++] - '0');
        bad = p == d;
    }
    if (bad || p >= len || text[p] != '%')
        return lg_error_set(err, "Incorrect configuration: %.*s. Couldn't find valid command at position %zu",
                            (int)len, text, pos);
    int op = lookup_operator(text + name_start, name_len);
    if (op < 0)
        return lg_error_set(err, "Not supported field in StreamInfo: %.*s", (int)name_len, text + name_start);
    if (operators[op].arg == 0 && arg != NULL)
        return lg_error_set(err, "%%%s%% takes no argument", operators[op].name);
    if (operators[op].arg == 2 && arg == NULL)
        return lg_error_set(err, "%%%s%% needs an argument: %%%s(...)%%", operators[op].name, operators[op].name);
    lg_format_part_t part = {(lg_format_op_t)op, {NULL, 0}, {NULL, 0}, max_len, 0};
    if (op == LG_FORMAT_OP_REQ || op == LG_FORMAT_OP_RESP || op == LG_FORMAT_OP_TRAILER) {
        if (header_arg(&part, arg, arg_len, operators[op].name, err) != 0)
            return -1;
    } else if (op == LG_FORMAT_OP_GRPC_STATUS) {
        if (arg == NULL || arg_len == 0 || (arg_len == 12 && memcmp(arg, "CAMEL_STRING", 12) == 0))
            part.variant = GRPC_CAMEL;
        else if (arg_len == 12 && memcmp(arg, "SNAKE_STRING", 12) == 0)
            part.variant = GRPC_SNAKE;
        else if (arg_len == 6 && memcmp(arg, "NUMBER", 6) == 0)
            part.variant = GRPC_NUMBER;
        else
            return lg_error_set(err, "GrpcStatusFormatter only supports CAMEL_STRING, SNAKE_STRING or NUMBER.");
    } else if (op == LG_FORMAT_OP_GRPC_STATUS_NUMBER) {
        part.variant = GRPC_NUMBER;
    } else if (op == LG_FORMAT_OP_RESPONSE_CODE_DETAILS) {
        part.variant = arg != NULL && arg_len == 17 && memcmp(arg, "ALLOW_WHITESPACES", 17) == 0
                           ? DETAILS_ALLOW_WHITESPACES
                           : DETAILS_UNDERSCORES;
    } else if (op == LG_FORMAT_OP_HOSTNAME) {
        char host[256];
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "-");
        host[sizeof(host) - 1] = '\0';
        part.text = xdup(host, strlen(host), 0);
    } else if (arg != NULL) {
        part.text = xdup(arg, arg_len, 0);
    }
    add_part(f, cap, part);
    return (ssize_t)p + 1;
}

lg_header_formatter_t *lg_header_formatter_compile(const char *text, size_t len, unsigned flags, lg_error_t *err)
{
    lg_header_formatter_t *f = xmalloc(sizeof(*f));
    *f = (lg_header_formatter_t){NULL, 0, flags, {NULL, 0}, 0};
    size_t cap = 0, lit_len = 0;
    char *lit = xmalloc(len + 1);
    for (size_t pos = 0; pos < len;) {
        if (text[pos] != '%') {
            lit[lit_len++] = text[pos++];
        } else if (pos + 1 < len && text[pos + 1] == '%') {
            lit[lit_len++] = '%';
            pos += 2;
        } else {
            flush_literal(f, &cap, lit, &lit_len);
            ssize_t next = parse_command(f, &cap, text, len, pos, err);
            if (next < 0) {
                free(lit);
                lg_header_formatter_free(f);
                return NULL;
            }
            pos = (size_t)next;
        }
    }
    flush_literal(f, &cap, lit, &lit_len);
    free(lit);
    if (f->n_parts == 0) {
        f->is_constant = 1;
        f->constant = h2o_iovec_init("", 0);
    } else if (f->n_parts == 1 && f->parts[0].op == LG_FORMAT_LITERAL) {
        f->is_constant = 1;
        f->constant = f->parts[0].text;
    }
    return f;
}

int lg_header_formatter_is_constant(const lg_header_formatter_t *f, h2o_iovec_t *value)
{
    if (f->is_constant && value != NULL)
        *value = f->constant;
    return f->is_constant;
}

void lg_header_formatter_free(lg_header_formatter_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n_parts; ++i) {
        free(f->parts[i].text.base);
        free(f->parts[i].alt.base);
    }
    free(f->parts);
    free(f);
}

/* ------------------------------------------------------------------------------------------- */
/* Evaluating                                                                                  */
/* ------------------------------------------------------------------------------------------- */

static const h2o_iovec_t *find_header(const lg_headers_t *h, h2o_iovec_t name)
{
    for (size_t i = 0; i < h->size; ++i)
        if (h->entries[i].name.len == name.len && memcmp(h->entries[i].name.base, name.base, name.len) == 0)
            return &h->entries[i].value;
    return NULL;
}

/* A request field by name; pseudo-headers are the head's members. NULL when absent. */
static const h2o_iovec_t *request_field(const lg_request_head_t *req, h2o_iovec_t name)
{
    if (name.len != 0 && name.base[0] == ':') {
        const h2o_iovec_t *v = NULL;
        if (strcmp(name.base, ":path") == 0)
            v = &req->path;
        else if (strcmp(name.base, ":method") == 0)
            v = &req->method;
        else if (strcmp(name.base, ":authority") == 0)
            v = &req->authority;
        else if (strcmp(name.base, ":scheme") == 0)
            v = &req->scheme;
        return v != NULL && v->base != NULL ? v : NULL;
    }
    return find_header(&req->headers, name);
}

static h2o_iovec_t pool_printf(h2o_mem_pool_t *pool, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static h2o_iovec_t pool_printf(h2o_mem_pool_t *pool, size_t cap, const char *fmt, ...)
{
    char *buf = h2o_mem_alloc_pool(pool, cap);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    return h2o_iovec_init(buf, (size_t)n < cap ? (size_t)n : cap - 1);
}

static h2o_iovec_t address(const struct sockaddr_storage *ss, int with_port, h2o_mem_pool_t *pool)
{
    if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
        return h2o_iovec_init(NULL, 0);
    char *buf = h2o_mem_alloc_pool(pool, 64);
    lg_sockaddr_to_string(ss, buf, 64, with_port);
    return h2o_iovec_init(buf, strlen(buf));
}

static h2o_iovec_t port_of(const struct sockaddr_storage *ss, h2o_mem_pool_t *pool)
{
    unsigned port;
    if (ss->ss_family == AF_INET)
        port = ntohs(((const struct sockaddr_in *)ss)->sin_port);
    else if (ss->ss_family == AF_INET6)
        port = ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    else
        return h2o_iovec_init(NULL, 0);
    return pool_printf(pool, 8, "%u", port);
}

static h2o_iovec_t cstr(const char *s)
{
    return s != NULL ? h2o_iovec_init(s, strlen(s)) : h2o_iovec_init(NULL, 0);
}

size_t lg_format_time(const char *fmt, size_t fmt_len, uint64_t ms, char *buf, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    unsigned long nanos = (unsigned long)(ms % 1000) * 1000000ul;
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t o = 0;
    for (size_t i = 0; i < fmt_len && o + 1 < len;) {
        if (fmt[i] != '%' || i + 1 == fmt_len) {
            buf[o++] = fmt[i++];
            continue;
        }
        char c = fmt[i + 1];
        int n;
        if (c >= '1' && c <= '9' && i + 2 < fmt_len && fmt[i + 2] == 'f') {
            char digits[16];
            snprintf(digits, sizeof(digits), "%09lu", nanos);
            n = snprintf(buf + o, len - o, "%.*s", c - '0', digits);
            i += 3;
        } else if (c == 'f') {
            n = snprintf(buf + o, len - o, "%09lu", nanos);
            i += 2;
        } else if (c == 's') {
            n = snprintf(buf + o, len - o, "%lld", (long long)secs);
            i += 2;
        } else {
            char spec[4] = {'%', c, '\0', '\0'};
            size_t used = 2;
            if ((c == 'E' || c == 'O') && i + 2 < fmt_len) {
                spec[2] = fmt[i + 2];
                used = 3;
            }
            n = (int)strftime(buf + o, len - o, spec, &tm);
            i += used;
        }
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
    buf[o] = '\0';
    return o;
}

static const char default_time_format[] = "%Y-%m-%dT%H:%M:%S.%3fZ";

static uint64_t now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Milliseconds from `from` to `to` (monotonic ns), or no value when either is unknown. */
static h2o_iovec_t duration_ms(uint64_t from, uint64_t to, h2o_mem_pool_t *pool)
{
    if (from == 0 || to == 0 || to < from)
        return h2o_iovec_init(NULL, 0);
    return pool_printf(pool, 24, "%" PRIu64, (to - from) / 1000000u);
}

/* A copy of s with each whitespace character replaced by '_' (Envoy's replaceAllEmptySpace). */
static h2o_iovec_t underscored(const char *s, h2o_mem_pool_t *pool)
{
    if (s == NULL || *s == '\0')
        return h2o_iovec_init(NULL, 0);
    size_t len = strlen(s);
    if (strpbrk(s, " \t\f\v\n\r") == NULL)
        return h2o_iovec_init(s, len);
    char *out = h2o_mem_alloc_pool(pool, len);
    for (size_t i = 0; i < len; ++i)
        out[i] = isspace((unsigned char)s[i]) ? '_' : s[i];
    return h2o_iovec_init(out, len);
}

static const h2o_iovec_t *find_header_or_alt(const lg_headers_t *h, const lg_format_part_t *part)
{
    const h2o_iovec_t *v = find_header(h, part->text);
    if (v == NULL && part->alt.base != NULL)
        v = find_header(h, part->alt);
    return v;
}

/* Envoy's isGrpcRequestHeaders: a :path and content-type application/grpc[+...|;...]. */
static int is_grpc_request(const lg_request_head_t *req)
{
    if (req == NULL || req->path.base == NULL)
        return 0;
    const h2o_iovec_t *ct = find_header(&req->headers, LG_LIT("content-type"));
    static const char grpc[] = "application/grpc";
    size_t n = sizeof(grpc) - 1;
    return ct != NULL && ct->len >= n && strncasecmp(ct->base, grpc, n) == 0 &&
           (ct->len == n || ct->base[n] == '+' || ct->base[n] == ';');
}

/* grpc-status of a header list: 1 and *status when present; an unparsable value is -1 (Envoy's
 * InvalidCode). */
static int grpc_status_of(const lg_headers_t *h, int64_t *status)
{
    const h2o_iovec_t *v = h != NULL ? find_header(h, LG_LIT("grpc-status")) : NULL;
    if (v == NULL || v->len == 0)
        return 0;
    int64_t n = 0;
    for (size_t i = 0; i < v->len; ++i) {
        if (!isdigit((unsigned char)v->base[i]) || n > (INT64_C(1) << 40)) {
            *status = -1;
            return 1;
        }
        n = n * 10 + (v->base[i] - '0');
    }
    *status = n;
    return 1;
}

int lg_grpc_status_for_log(const lg_format_context_t *ctx, const lg_headers_t *trailers, int64_t *status)
{
    if (grpc_status_of(trailers, status))
        return 1;
    if (ctx->response != NULL && grpc_status_of(&ctx->response->headers, status))
        return 1;
    int code = ctx->info != NULL ? ctx->info->response_code : 0;
    if (code == 0)
        return 0;
    switch (code) { /* Envoy's httpToGrpcStatus */
    case 400:
        *status = 13;
        break;
    case 401:
        *status = 16;
        break;
    case 403:
        *status = 7;
        break;
    case 404:
        *status = 12;
        break;
    case 429:
    case 502:
    case 503:
    case 504:
        *status = 14;
        break;
    default:
        *status = 2;
        break;
    }
    return 1;
}

static h2o_iovec_t grpc_status(const lg_format_part_t *part, const lg_format_context_t *ctx,
                               const lg_headers_t *trailers, h2o_mem_pool_t *pool)
{
    static const char *const camel[] = {"OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded",
                                        "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted",
                                        "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
                                        "Internal", "Unavailable", "DataLoss", "Unauthenticated"};
    static const char *const snake[] = {"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
                                        "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
                                        "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
                                        "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
    int64_t st;
    if (!is_grpc_request(ctx->request) || !lg_grpc_status_for_log(ctx, trailers, &st))
        return h2o_iovec_init(NULL, 0);
    if (st >= 0 && st <= 16 && part->variant != GRPC_NUMBER)
        return cstr(part->variant == GRPC_CAMEL ? camel[st] : snake[st]);
    return pool_printf(pool, 24, "%" PRId64, st);
}

static h2o_iovec_t flags_long(const lg_stream_info_t *si, h2o_mem_pool_t *pool)
{
    size_t cap = 64, o = 0;
    for (int i = 0; i < LG_RF__COUNT; ++i)
        if (si->response_flags & (1u << i))
            cap += strlen(lg_response_flag_long_name((lg_response_flag_t)i)) + 1;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    for (int i = 0; i < LG_RF__COUNT; ++i) {
        if (!(si->response_flags & (1u << i)))
            continue;
        const char *n = lg_response_flag_long_name((lg_response_flag_t)i);
        if (o != 0)
            buf[o++] = ',';
        memcpy(buf + o, n, strlen(n));
        o += strlen(n);
    }
    return h2o_iovec_init(buf, o);
}

/* The value of one operator; {NULL, 0} when it has none. */
static h2o_iovec_t op_value(const lg_format_part_t *part, unsigned flags, const lg_format_context_t *ctx,
                            const lg_headers_t *trailers, h2o_mem_pool_t *pool)
{
    const lg_stream_info_t *si = ctx->info;
    const h2o_iovec_t *v;
    switch (part->op) {
    case LG_FORMAT_OP_REQ:
        if (ctx->request == NULL)
            break;
        if ((v = request_field(ctx->request, part->text)) == NULL && part->alt.base != NULL)
            v = request_field(ctx->request, part->alt);
        return v != NULL ? *v : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_RESP:
        if (ctx->response == NULL)
            break;
        v = find_header_or_alt(&ctx->response->headers, part);
        return v != NULL ? *v : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_TRAILER:
        if (trailers == NULL)
            break;
        v = find_header_or_alt(trailers, part);
        return v != NULL ? *v : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_HOSTNAME:
        return part->text;
    case LG_FORMAT_OP_GRPC_STATUS:
    case LG_FORMAT_OP_GRPC_STATUS_NUMBER:
        return grpc_status(part, ctx, trailers, pool);
    default:
        break;
    }
    if (si == NULL)
        return h2o_iovec_init(NULL, 0);
    switch (part->op) {
    case LG_FORMAT_OP_DOWNSTREAM_REMOTE_ADDRESS:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_REMOTE_ADDRESS:
        return address(&si->downstream_remote, 1, pool);
    case LG_FORMAT_OP_DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT:
        return address(&si->downstream_remote, 0, pool);
    case LG_FORMAT_OP_DOWNSTREAM_REMOTE_PORT:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_REMOTE_PORT:
        return port_of(&si->downstream_remote, pool);
    case LG_FORMAT_OP_DOWNSTREAM_LOCAL_ADDRESS:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_LOCAL_ADDRESS:
        return address(&si->downstream_local, 1, pool);
    case LG_FORMAT_OP_DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_LOCAL_ADDRESS_WITHOUT_PORT:
        return address(&si->downstream_local, 0, pool);
    case LG_FORMAT_OP_DOWNSTREAM_LOCAL_PORT:
    case LG_FORMAT_OP_DOWNSTREAM_DIRECT_LOCAL_PORT:
        return port_of(&si->downstream_local, pool);
    case LG_FORMAT_OP_DOWNSTREAM_PEER_URI_SAN:
        return si->downstream_peer_uri_san != NULL && *si->downstream_peer_uri_san != '\0'
                   ? cstr(si->downstream_peer_uri_san)
                   : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_REQUESTED_SERVER_NAME:
        return si->requested_server_name.len != 0 ? si->requested_server_name : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_PROTOCOL:
        switch (si->protocol) {
        case LG_HTTP_10:
            return LG_LIT("HTTP/1.0");
        case LG_HTTP_11:
            return LG_LIT("HTTP/1.1");
        case LG_HTTP_2:
            return LG_LIT("HTTP/2");
        }
        return h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_UPSTREAM_REMOTE_ADDRESS:
    case LG_FORMAT_OP_UPSTREAM_HOST:
        return address(&si->upstream_host, 1, pool);
    case LG_FORMAT_OP_UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT:
        return address(&si->upstream_host, 0, pool);
    case LG_FORMAT_OP_UPSTREAM_REMOTE_PORT:
        return port_of(&si->upstream_host, pool);
    case LG_FORMAT_OP_UPSTREAM_LOCAL_ADDRESS:
        return address(&si->upstream_local, 1, pool);
    case LG_FORMAT_OP_UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT:
        return address(&si->upstream_local, 0, pool);
    case LG_FORMAT_OP_UPSTREAM_LOCAL_PORT:
        return port_of(&si->upstream_local, pool);
    case LG_FORMAT_OP_UPSTREAM_CLUSTER:
        return si->upstream_cluster != NULL && *si->upstream_cluster != '\0' ? cstr(si->upstream_cluster)
                                                                              : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_UPSTREAM_TRANSPORT_FAILURE_REASON: {
        h2o_iovec_t r = cstr(si->upstream_transport_failure_reason);
        if (r.len == 0)
            return h2o_iovec_init(NULL, 0);
        if (memchr(r.base, ' ', r.len) != NULL) {
            char *out = h2o_mem_alloc_pool(pool, r.len);
            for (size_t i = 0; i < r.len; ++i)
                out[i] = r.base[i] == ' ' ? '_' : r.base[i];
            r.base = out;
        }
        return r;
    }
    case LG_FORMAT_OP_UPSTREAM_REQUEST_ATTEMPT_COUNT:
        return pool_printf(pool, 12, "%" PRIu32, si->attempt_count);
    case LG_FORMAT_OP_ROUTE_NAME:
        return si->route_name != NULL && *si->route_name != '\0' ? cstr(si->route_name) : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_CONNECTION_ID:
        return pool_printf(pool, 24, "%" PRIu64, si->connection_id);
    case LG_FORMAT_OP_STREAM_ID:
        return si->request_id.len != 0 ? si->request_id : h2o_iovec_init(NULL, 0);
    case LG_FORMAT_OP_START_TIME: {
        if (si->start_ms == 0)
            return h2o_iovec_init(NULL, 0);
        const char *fmt = part->text.base != NULL ? part->text.base : default_time_format;
        size_t fmt_len = part->text.base != NULL ? part->text.len : sizeof(default_time_format) - 1;
        size_t cap = fmt_len * 4 + 64;
        char *buf = h2o_mem_alloc_pool(pool, cap);
        size_t n = lg_format_time(fmt, fmt_len, si->start_ms, buf, cap);
        return h2o_iovec_init(buf, n);
    }
    case LG_FORMAT_OP_DURATION:
        return duration_ms(si->start_mono_ns, si->end_ns != 0 ? si->end_ns : now_mono_ns(), pool);
    case LG_FORMAT_OP_REQUEST_DURATION:
        return duration_ms(si->start_mono_ns, si->request_end_ns, pool);
    case LG_FORMAT_OP_RESPONSE_DURATION:
        return duration_ms(si->start_mono_ns, si->upstream_response_start_ns, pool);
    case LG_FORMAT_OP_RESPONSE_TX_DURATION:
        if (si->upstream_response_start_ns == 0)
            return h2o_iovec_init(NULL, 0);
        return duration_ms(si->upstream_response_start_ns, si->end_ns != 0 ? si->end_ns : now_mono_ns(), pool);
    case LG_FORMAT_OP_RESPONSE_CODE:
        if (si->response_code == 0 && !(flags & LG_FORMAT_ACCESS_LOG))
            return h2o_iovec_init(NULL, 0);
        return pool_printf(pool, 12, "%d", si->response_code);
    case LG_FORMAT_OP_RESPONSE_FLAGS: {
        if (si->response_flags == 0)
            return (flags & LG_FORMAT_ACCESS_LOG) ? LG_LIT("-") : h2o_iovec_init(NULL, 0);
        char *buf = h2o_mem_alloc_pool(pool, 256);
        lg_stream_info_flags_string(si, buf, 256);
        return h2o_iovec_init(buf, strlen(buf));
    }
    case LG_FORMAT_OP_RESPONSE_FLAGS_LONG:
        if (si->response_flags == 0)
            return (flags & LG_FORMAT_ACCESS_LOG) ? LG_LIT("-") : h2o_iovec_init(NULL, 0);
        return flags_long(si, pool);
    case LG_FORMAT_OP_RESPONSE_CODE_DETAILS:
        if (part->variant == DETAILS_ALLOW_WHITESPACES)
            return si->response_code_details != NULL ? cstr(si->response_code_details) : h2o_iovec_init(NULL, 0);
        return underscored(si->response_code_details, pool);
    case LG_FORMAT_OP_BYTES_RECEIVED:
        return pool_printf(pool, 24, "%" PRIu64, si->bytes_received);
    case LG_FORMAT_OP_BYTES_SENT:
        return pool_printf(pool, 24, "%" PRIu64, si->bytes_sent);
    default:
        return h2o_iovec_init(NULL, 0);
    }
}

static h2o_iovec_t format_parts(const lg_header_formatter_t *f, const lg_format_context_t *ctx,
                                const lg_headers_t *trailers, h2o_mem_pool_t *pool, int *missing)
{
    if (missing != NULL)
        *missing = 0;
    if (f->is_constant)
        return f->constant;
    h2o_iovec_t stack_vals[16], *vals = stack_vals;
    if (f->n_parts > sizeof(stack_vals) / sizeof(stack_vals[0]))
        vals = h2o_mem_alloc_pool(pool, f->n_parts * sizeof(*vals));
    size_t total = 0;
    for (size_t i = 0; i < f->n_parts; ++i) {
        const lg_format_part_t *part = &f->parts[i];
        h2o_iovec_t v = part->op == LG_FORMAT_LITERAL ? part->text : op_value(part, f->flags, ctx, trailers, pool);
        if (v.base == NULL) {
            v = (f->flags & LG_FORMAT_DASH_FOR_MISSING) ? LG_LIT("-")
                                                        : h2o_iovec_init("", 0);
            if (missing != NULL && f->n_parts == 1)
                *missing = 1;
        } else if (part->max_len != 0 && v.len > part->max_len) {
            v.len = part->max_len;
        }
        vals[i] = v;
        total += v.len;
    }
    if (f->n_parts == 1)
        return vals[0];
    char *out = h2o_mem_alloc_pool(pool, total + 1), *p = out;
    for (size_t i = 0; i < f->n_parts; ++i) {
        if (vals[i].len != 0)
            memcpy(p, vals[i].base, vals[i].len);
        p += vals[i].len;
    }
    *p = '\0';
    return h2o_iovec_init(out, total);
}

h2o_iovec_t lg_header_formatter_format(const lg_header_formatter_t *f, const lg_format_context_t *ctx,
                                       h2o_mem_pool_t *pool)
{
    return format_parts(f, ctx, NULL, pool, NULL);
}

h2o_iovec_t lg_header_formatter_format_log(const lg_header_formatter_t *f, const lg_format_context_t *ctx,
                                           const lg_headers_t *response_trailers, h2o_mem_pool_t *pool,
                                           int *missing)
{
    return format_parts(f, ctx, response_trailers, pool, missing);
}

int lg_header_formatter_is_numeric(const lg_header_formatter_t *f)
{
    if (f->n_parts != 1 || f->parts[0].op == LG_FORMAT_LITERAL)
        return 0;
    if (f->parts[0].op == LG_FORMAT_OP_GRPC_STATUS)
        return f->parts[0].variant == GRPC_NUMBER;
    return operators[f->parts[0].op].numeric;
}

/* ------------------------------------------------------------------------------------------- */
/* Header mutations                                                                            */
/* ------------------------------------------------------------------------------------------- */

int lg_header_name_is_valid(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && (c == '\0' || strchr(extra, c) == NULL))
            return 0;
    }
    return 1;
}

int lg_header_value_is_valid(const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
            return 0;
    return 1;
}

__attribute__((format(printf, 5, 6))) static int mfail(const lg_path_t *path, const lg_srcmap_t *map,
                                                       const void *msg, lg_error_t *err, const char *fmt, ...)
{
    char text[LG_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    const char *doc;
    uint32_t line;
    if (lg_srcmap_get(map, msg, LG_SRCMAP_SELF, &doc, &line))
        return lg_error_set(err, "%s:%u: %s: %s", doc, line, path->buf, text);
    return lg_error_set(err, "%s: %s", path->buf, text);
}

/* ":-prefixed or host headers may not be modified" (or removed): Envoy's isModifiableHeader. */
static int is_modifiable(const char *name)
{
    return name[0] != ':' && strcasecmp(name, "host") != 0;
}

static int init_add(lg_header_add_t *add, const Envoy__Config__Core__V3__HeaderValueOption *o, lg_path_t *path,
                    const lg_srcmap_t *map, lg_error_t *err)
{
    const Envoy__Config__Core__V3__HeaderValue *hv = o->header;
    if (hv == NULL) {
        size_t m = lg_path_push_field(path, "header");
        int r = mfail(path, map, o, err, "value is required");
        lg_path_pop(path, m);
        return r;
    }
    size_t mark = lg_path_push_field(path, "header");
    size_t m2 = lg_path_push_field(path, "key");
    const char *key = hv->key != NULL ? hv->key : "";
    if (!is_modifiable(key))
        return mfail(path, map, hv, err, ":-prefixed or host headers may not be modified");
    if (!lg_header_name_is_valid(key, strlen(key)))
        return mfail(path, map, hv, err, "invalid header name \"%s\"", key);
    lg_path_pop(path, m2);
    const char *value = hv->value != NULL ? hv->value : "";
    size_t value_len = strlen(value);
    if (value_len == 0 && hv->raw_value.len != 0) {
        value = (const char *)hv->raw_value.data;
        value_len = hv->raw_value.len;
    }
    lg_path_push_field(path, value == hv->value || value_len == 0 ? "value" : "raw_value");
    if (!lg_header_value_is_valid(value, value_len))
        return mfail(path, map, hv, err, "invalid header value (NUL, CR or LF)");
    lg_error_t ferr;
    add->value = lg_header_formatter_compile(value, value_len, 0, &ferr);
    if (add->value == NULL)
        return mfail(path, map, hv, err, "%s", ferr.msg);
    lg_path_pop(path, mark);
    add->name = xdup(key, strlen(key), 1);
    add->keep_empty_value = o->keep_empty_value;
    if (o->append != NULL) {
        if (o->append_action != ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD)
            return mfail(path, map, o, err, "Both append and append_action are set and it's not allowed");
        add->action = o->append->value ? LG_HEADER_APPEND_IF_EXISTS_OR_ADD : LG_HEADER_OVERWRITE_IF_EXISTS_OR_ADD;
    } else {
        switch (o->append_action) {
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__APPEND_IF_EXISTS_OR_ADD:
            add->action = LG_HEADER_APPEND_IF_EXISTS_OR_ADD;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__ADD_IF_ABSENT:
            add->action = LG_HEADER_ADD_IF_ABSENT;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS_OR_ADD:
            add->action = LG_HEADER_OVERWRITE_IF_EXISTS_OR_ADD;
            break;
        case ENVOY__CONFIG__CORE__V3__HEADER_VALUE_OPTION__HEADER_APPEND_ACTION__OVERWRITE_IF_EXISTS:
            add->action = LG_HEADER_OVERWRITE_IF_EXISTS;
            break;
        default: {
            size_t m = lg_path_push_field(path, "append_action");
            mfail(path, map, o, err, "unknown append_action %d", (int)o->append_action);
            lg_path_pop(path, m);
            return -1;
        }
        }
    }
    return 0;
}

int lg_header_mutations_init(lg_header_mutations_t *m, Envoy__Config__Core__V3__HeaderValueOption *const *adds,
                             size_t n_adds, char *const *removes, size_t n_removes, const char *adds_field,
                             const char *removes_field, lg_path_t *path, const lg_srcmap_t *map,
                             lg_error_t *err)
{
    *m = (lg_header_mutations_t){NULL, 0, NULL, 0};
    size_t mark = path->len;
    if (n_adds != 0) {
        m->adds = xmalloc(n_adds * sizeof(*m->adds));
        for (size_t i = 0; i < n_adds; ++i) {
            lg_path_push_field(path, adds_field);
            lg_path_push_index(path, i);
            m->adds[i] = (lg_header_add_t){{NULL, 0}, NULL, 0, 0};
            ++m->n_adds;
            if (init_add(&m->adds[i], adds[i], path, map, err) != 0)
                goto Fail;
            lg_path_pop(path, mark);
        }
    }
    if (n_removes != 0) {
        m->removes = xmalloc(n_removes * sizeof(*m->removes));
        for (size_t i = 0; i < n_removes; ++i) {
            const char *name = removes[i] != NULL ? removes[i] : "";
            lg_path_push_field(path, removes_field);
            lg_path_push_index(path, i);
            if (!is_modifiable(name)) {
                mfail(path, map, NULL, err, ":-prefixed or host headers may not be removed");
                goto Fail;
            }
            if (!lg_header_name_is_valid(name, strlen(name))) {
                mfail(path, map, NULL, err, "invalid header name \"%s\"", name);
                goto Fail;
            }
            lg_path_pop(path, mark);
            m->removes[m->n_removes++] = xdup(name, strlen(name), 1);
        }
    }
    return 0;
Fail:
    lg_path_pop(path, mark);
    lg_header_mutations_dispose(m);
    return -1;
}

void lg_header_mutations_dispose(lg_header_mutations_t *m)
{
    for (size_t i = 0; i < m->n_adds; ++i) {
        free(m->adds[i].name.base);
        lg_header_formatter_free(m->adds[i].value);
    }
    free(m->adds);
    for (size_t i = 0; i < m->n_removes; ++i)
        free(m->removes[i].base);
    free(m->removes);
    *m = (lg_header_mutations_t){NULL, 0, NULL, 0};
}

void lg_header_mutations_apply(const lg_header_mutations_t *m, lg_headers_t *headers,
                               const lg_format_context_t *ctx, h2o_mem_pool_t *pool)
{
    for (size_t i = 0; i < m->n_removes; ++i)
        lg_headers_remove(headers, m->removes[i].base, m->removes[i].len);
    if (m->n_adds == 0)
        return;

    /* Every value is formatted against the headers as they are now, before any of this list's
     * additions or overwrites, as Envoy does; then overwrites, then additions. */
    enum { SKIP, ADD, OVERWRITE };
    h2o_iovec_t *values = h2o_mem_alloc_pool(pool, m->n_adds * sizeof(*values));
    unsigned char *what = h2o_mem_alloc_pool(pool, m->n_adds);
    for (size_t i = 0; i < m->n_adds; ++i) {
        const lg_header_add_t *a = &m->adds[i];
        what[i] = SKIP;
        values[i] = lg_header_formatter_format(a->value, ctx, pool);
        if (values[i].len == 0 && !a->keep_empty_value)
            continue;
        int present = lg_headers_find(headers, a->name.base, a->name.len, 0) >= 0;
        switch (a->action) {
        case LG_HEADER_APPEND_IF_EXISTS_OR_ADD:
            what[i] = ADD;
            break;
        case LG_HEADER_ADD_IF_ABSENT:
            what[i] = present ? SKIP : ADD;
            break;
        case LG_HEADER_OVERWRITE_IF_EXISTS:
            what[i] = present ? OVERWRITE : SKIP;
            break;
        case LG_HEADER_OVERWRITE_IF_EXISTS_OR_ADD:
            what[i] = OVERWRITE;
            break;
        }
    }
    for (size_t i = 0; i < m->n_adds; ++i)
        if (what[i] == OVERWRITE)
            lg_headers_set(pool, headers, m->adds[i].name, values[i]);
    for (size_t i = 0; i < m->n_adds; ++i)
        if (what[i] == ADD)
            lg_headers_add(pool, headers, m->adds[i].name, values[i]);
}
