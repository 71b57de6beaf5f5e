/*
 * Route tables: building from RouteConfiguration and matching requests. See route_table.h.
 *
 * The file runs in the order a table is made and used: helpers, matchers (string, header, query,
 * RouteMatch), the builders of route actions, virtual hosts and the domain index, the table, then
 * what workers call per request (selection, cluster choice, rewrites, redirects, mutations).
 *
 * Everything a table holds is malloc'd by the builders and freed by the matching dispose
 * functions; a half-built table is disposed the same way, so every builder leaves its object in a
 * state dispose understands (zeroed first, filled as it goes).
 */
#include "route_table.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pb_registry.h"
#include "xalloc.h"

/* Envoy still honours several deprecated fields (HeaderMatcher.exact_match, RegexMatcher.google_re2,
 * RouteAction.max_grpc_timeout, ...); reading them here is deliberate. */
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

#define RC(x) ENVOY__CONFIG__ROUTE__V3__##x
#define STRLIT(s) (s), (sizeof(s) - 1)

#define DEFAULT_ROUTE_TIMEOUT_MS 15000
#define DEFAULT_MAX_DIRECT_RESPONSE_BODY 4096
#define DEFAULT_RETRY_BASE_MS 25

/* ------------------------------------------------------------------------------------------- */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_bctx_t {
    lg_path_t *path;
    const lg_srcmap_t *map;
    lg_error_t *err;
    const lg_route_build_opts_t *opts;
} bctx_t;

static h2o_iovec_t dup_n(const char *s, size_t len, int lower)
{
    char *p = lg_xcalloc(1, len + 1);
    for (size_t i = 0; i < len; ++i)
        p[i] = lower ? (char)tolower((unsigned char)s[i]) : s[i];
    return h2o_iovec_init(p, len);
}

static h2o_iovec_t dup_str(const char *s)
{
    return dup_n(s != NULL ? s : "", s != NULL ? strlen(s) : 0, 0);
}

static h2o_iovec_t dup_lower(const char *s)
{
    return dup_n(s != NULL ? s : "", s != NULL ? strlen(s) : 0, 1);
}

static int is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

static int lower_eq(const char *a, const char *lower, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (tolower((unsigned char)a[i]) != (unsigned char)lower[i])
            return 0;
    return 1;
}

static int iov_eq(h2o_iovec_t a, const char *b, size_t blen)
{
    return a.len == blen && (blen == 0 || memcmp(a.base, b, blen) == 0);
}

static void vfail(bctx_t *c, const void *msg, const char *fmt, va_list ap)
{
    lg_srcmap_verror(c->err, c->map, msg, c->path, fmt, ap);
}

/* Fails at the current path; msg (may be NULL) gives the document line. Returns -1. */
__attribute__((format(printf, 3, 4))) static int bfail(bctx_t *c, const void *msg, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(c, msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Fails at field `field` of msg. Returns -1. */
__attribute__((format(printf, 4, 5))) static int ffail(bctx_t *c, const void *msg, const char *field,
                                                       const char *fmt, ...)
{
    size_t mark = lg_path_push_field(c->path, field);
    va_list ap;
    va_start(ap, fmt);
    vfail(c, msg, fmt, ap);
    va_end(ap);
    lg_path_pop(c->path, mark);
    return -1;
}

static int unsupported(bctx_t *c, const void *msg, const char *field)
{
    return ffail(c, msg, field, "%s is not supported by legate", field);
}

static int duration_ms(bctx_t *c, const void *owner, const char *field, const Google__Protobuf__Duration *d,
                       int64_t *out)
{
    if (d->seconds < 0 || d->nanos < 0)
        return ffail(c, owner, field, "value must be greater than or equal to 0s");
    if (d->seconds > INT64_MAX / 1000 - 1)
        *out = INT64_MAX;
    else
        *out = d->seconds * 1000 + d->nanos / 1000000;
    return 0;
}

static int check_header_name(bctx_t *c, const void *owner, const char *field, const char *name)
{
    if (name == NULL || !lg_header_name_is_valid(name, strlen(name)))
        return ffail(c, owner, field, "invalid header name \"%s\"", name != NULL ? name : "");
    return 0;
}

/* Compiles a RegexMatcher at the current path (the caller pushed the field holding it). */
static int regex_init(bctx_t *c, const Envoy__Type__Matcher__V3__RegexMatcher *pb, lg_regex_t **out)
{
    *out = NULL;
    if (is_empty(pb->regex))
        return ffail(c, pb, "regex", "value length must be at least 1 characters");
    uint32_t limit = LG_REGEX_DEFAULT_MAX_PROGRAM_SIZE;
    int explicit_limit = 0;
    if (pb->engine_type_case == ENVOY__TYPE__MATCHER__V3__REGEX_MATCHER__ENGINE_TYPE_GOOGLE_RE2 &&
        pb->google_re2 != NULL && pb->google_re2->max_program_size != NULL) {
        limit = pb->google_re2->max_program_size->value;
        explicit_limit = 1;
    }
    lg_error_t e;
    if ((*out = lg_regex_compile_ex(pb->regex, strlen(pb->regex), limit, explicit_limit, &e)) == NULL)
        return ffail(c, pb, "regex", "%s", e.msg);
    return 0;
}

/* Compiles a RegexMatchAndSubstitute found in field `field` of owner. */
static int regex_subst_init(bctx_t *c, const void *owner, const char *field,
                            const Envoy__Type__Matcher__V3__RegexMatchAndSubstitute *pb, lg_regex_t **re,
                            h2o_iovec_t *substitution)
{
    size_t mark = lg_path_push_field(c->path, field);
    int r = -1;
    if (pb->pattern == NULL) {
        ffail(c, pb, "pattern", "value is required");
        goto Exit;
    }
    size_t m2 = lg_path_push_field(c->path, "pattern");
    if (regex_init(c, pb->pattern, re) != 0)
        goto Exit;
    lg_path_pop(c->path, m2);
    lg_error_t e;
    const char *sub = pb->substitution != NULL ? pb->substitution : "";
    if (lg_regex_check_substitution(*re, sub, &e) != 0) {
        ffail(c, pb, "substitution", "%s", e.msg);
        goto Exit;
    }
    *substitution = dup_str(sub);
    r = 0;
Exit:
    lg_path_pop(c->path, mark);
    return r;
}

/* ------------------------------------------------------------------------------------------- */
/* String matchers                                                                             */
/* ------------------------------------------------------------------------------------------- */

static int string_matcher_init(bctx_t *c, lg_string_matcher_t *m, const Envoy__Type__Matcher__V3__StringMatcher *pb)
{
    *m = (lg_string_matcher_t){LG_STRING_MATCH_EXACT, pb->ignore_case, {NULL, 0}, NULL};
    const char *value = NULL, *field = NULL;
    switch (pb->match_pattern_case) {
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_EXACT:
        m->kind = LG_STRING_MATCH_EXACT;
        value = pb->exact;
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_PREFIX:
        m->kind = LG_STRING_MATCH_PREFIX;
        value = pb->prefix;
        field = "prefix";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SUFFIX:
        m->kind = LG_STRING_MATCH_SUFFIX;
        value = pb->suffix;
        field = "suffix";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_CONTAINS:
        m->kind = LG_STRING_MATCH_CONTAINS;
        value = pb->contains;
        field = "contains";
        break;
    case ENVOY__TYPE__MATCHER__V3__STRING_MATCHER__MATCH_PATTERN_SAFE_REGEX: {
        m->kind = LG_STRING_MATCH_REGEX;
        if (pb->ignore_case)
            return ffail(c, pb, "ignore_case", "ignore_case has no effect for safe_regex.");
        size_t mark = lg_path_push_field(c->path, "safe_regex");
        int r = regex_init(c, pb->safe_regex, &m->regex);
        lg_path_pop(c->path, mark);
        return r;
    }
    default:
        return bfail(c, pb, "one of exact, prefix, suffix, safe_regex or contains is required");
    }
    /* Envoy's validation: prefix, suffix and contains must not be empty (exact may be). */
    if (field != NULL && is_empty(value))
        return ffail(c, pb, field, "value length must be at least 1 characters");
    m->value = m->ignore_case ? dup_lower(value) : dup_str(value);
    return 0;
}

int lg_string_matcher_init(lg_string_matcher_t *m, const Envoy__Type__Matcher__V3__StringMatcher *pb,
                           lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err)
{
    bctx_t c = {path, map, err, NULL};
    size_t mark = path->len;
    int r = string_matcher_init(&c, m, pb);
    lg_path_pop(path, mark);
    if (r != 0)
        lg_string_matcher_dispose(m);
    return r;
}

/* Case-insensitive search of the lower-case needle in s. */
static int contains_lower(const char *s, size_t len, const char *needle, size_t nlen)
{
    if (nlen > len)
        return 0;
    for (size_t i = 0; i + nlen <= len; ++i)
        if (lower_eq(s + i, needle, nlen))
            return 1;
    return 0;
}

int lg_string_matcher_match(const lg_string_matcher_t *m, const char *s, size_t len)
{
    const char *v = m->value.base;
    size_t n = m->value.len;
    switch (m->kind) {
    case LG_STRING_MATCH_EXACT:
        return len == n && (m->ignore_case ? lower_eq(s, v, n) : memcmp(s, v, n) == 0);
    case LG_STRING_MATCH_PREFIX:
        return len >= n && (m->ignore_case ? lower_eq(s, v, n) : memcmp(s, v, n) == 0);
    case LG_STRING_MATCH_SUFFIX:
        return len >= n && (m->ignore_case ? lower_eq(s + len - n, v, n) : memcmp(s + len - n, v, n) == 0);
    case LG_STRING_MATCH_CONTAINS:
        return m->ignore_case ? contains_lower(s, len, v, n) : memmem(s, len, v, n) != NULL;
    case LG_STRING_MATCH_REGEX:
        return lg_regex_full_match(m->regex, s, len);
    }
    return 0;
}

void lg_string_matcher_dispose(lg_string_matcher_t *m)
{
    free(m->value.base);
    lg_regex_free(m->regex);
    m->value = h2o_iovec_init(NULL, 0);
    m->regex = NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Header matchers                                                                             */
/* ------------------------------------------------------------------------------------------- */

/* A deprecated HeaderMatcher field as a StringMatcher of `kind`. */
static void legacy_string(lg_header_matcher_t *m, lg_string_match_kind_t kind, const char *value)
{
    m->kind = LG_HEADER_MATCH_STRING;
    m->string.kind = kind;
    m->string.value = dup_str(value);
}

static int header_matcher_init(bctx_t *c, lg_header_matcher_t *m, const Envoy__Config__Route__V3__HeaderMatcher *pb)
{
    *m = (lg_header_matcher_t){{NULL, 0}, LG_HEADER_MATCH_PRESENT, {LG_STRING_MATCH_EXACT, 0, {NULL, 0}, NULL},
                               0, 0, 1, pb->invert_match, pb->treat_missing_header_as_empty};
    if (is_empty(pb->name) || !lg_header_name_is_valid(pb->name[0] == ':' ? pb->name + 1 : pb->name,
                                                       strlen(pb->name) - (pb->name[0] == ':')))
        return ffail(c, pb, "name", "invalid header name \"%s\"", pb->name != NULL ? pb->name : "");
    m->name = dup_lower(pb->name);
    const char *field = NULL, *value = NULL;
    switch (pb->header_match_specifier_case) {
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER__NOT_SET):
        break; /* Envoy: no specifier means present_match */
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PRESENT_MATCH):
        m->present = pb->present_match;
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_EXACT_MATCH):
        if (is_empty(pb->exact_match))
            m->kind = LG_HEADER_MATCH_ANY; /* Envoy: an empty exact_match matches any value */
        else
            legacy_string(m, LG_STRING_MATCH_EXACT, pb->exact_match);
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH):
        field = "prefix_match";
        value = pb->prefix_match;
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH):
        field = "suffix_match";
        value = pb->suffix_match;
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_CONTAINS_MATCH):
        field = "contains_match";
        value = pb->contains_match;
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SAFE_REGEX_MATCH): {
        m->kind = LG_HEADER_MATCH_STRING;
        m->string.kind = LG_STRING_MATCH_REGEX;
        size_t mark = lg_path_push_field(c->path, "safe_regex_match");
        int r = regex_init(c, pb->safe_regex_match, &m->string.regex);
        lg_path_pop(c->path, mark);
        return r;
    }
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_RANGE_MATCH):
        m->kind = LG_HEADER_MATCH_RANGE;
        m->range_start = pb->range_match->start;
        m->range_end = pb->range_match->end;
        break;
    case RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_STRING_MATCH): {
        m->kind = LG_HEADER_MATCH_STRING;
        size_t mark = lg_path_push_field(c->path, "string_match");
        int r = string_matcher_init(c, &m->string, pb->string_match);
        lg_path_pop(c->path, mark);
        return r;
    }
    default:
        return bfail(c, pb, "unknown header_match_specifier");
    }
    if (field != NULL) {
        if (is_empty(value))
            return ffail(c, pb, field, "value length must be at least 1 characters");
        legacy_string(m, pb->header_match_specifier_case == RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_PREFIX_MATCH)
                             ? LG_STRING_MATCH_PREFIX
                         : pb->header_match_specifier_case == RC(HEADER_MATCHER__HEADER_MATCH_SPECIFIER_SUFFIX_MATCH)
                             ? LG_STRING_MATCH_SUFFIX
                             : LG_STRING_MATCH_CONTAINS,
                      value);
    }
    return 0;
}

int lg_header_matcher_init(lg_header_matcher_t *m, const Envoy__Config__Route__V3__HeaderMatcher *pb,
                           lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err)
{
    bctx_t c = {path, map, err, NULL};
    size_t mark = path->len;
    int r = header_matcher_init(&c, m, pb);
    lg_path_pop(path, mark);
    if (r != 0)
        lg_header_matcher_dispose(m);
    return r;
}

void lg_header_matcher_dispose(lg_header_matcher_t *m)
{
    free(m->name.base);
    m->name = h2o_iovec_init(NULL, 0);
    lg_string_matcher_dispose(&m->string);
}

/* The value of `name` in h: 0 when absent. Repeated fields are joined with "," (pool permitting). */
static int field_value(const lg_headers_t *h, h2o_iovec_t name, h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    ssize_t first = -1;
    size_t count = 0, total = 0;
    for (size_t i = 0; i < h->size; ++i) {
        if (!iov_eq(h->entries[i].name, name.base, name.len))
            continue;
        if (first < 0)
            first = (ssize_t)i;
        ++count;
        total += h->entries[i].value.len;
    }
    if (first < 0)
        return 0;
    if (count == 1 || pool == NULL) {
        *out = h->entries[first].value;
        return 1;
    }
    char *buf = h2o_mem_alloc_pool(pool, total + count), *p = buf;
    for (size_t i = (size_t)first; i < h->size; ++i) {
        if (!iov_eq(h->entries[i].name, name.base, name.len))
            continue;
        if (p != buf)
            *p++ = ',';
        memcpy(p, h->entries[i].value.base, h->entries[i].value.len);
        p += h->entries[i].value.len;
    }
    *out = h2o_iovec_init(buf, (size_t)(p - buf));
    return 1;
}

/* A request field for matching, pseudo-headers included: 0 when absent. */
static int request_value(const lg_request_head_t *req, h2o_iovec_t name, h2o_mem_pool_t *pool, h2o_iovec_t *out)
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
        if (v == NULL || v->base == NULL)
            return 0;
        *out = *v;
        return 1;
    }
    return field_value(&req->headers, name, pool, out);
}

/* Envoy's base-10 integer: optional sign, digits, nothing else, within int64. */
static int parse_int64(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    int neg = 0;
    if (len != 0 && (s[0] == '-' || s[0] == '+')) {
        neg = s[0] == '-';
        i = 1;
    }
    if (i == len)
        return 0;
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; ++i) {
        if (!isdigit((unsigned char)s[i]))
            return 0;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return 0;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 1;
}

/* Envoy's HeaderUtility::matchHeaders for one matcher, given the value (or its absence). */
static int header_match_value(const lg_header_matcher_t *m, int present, h2o_iovec_t value)
{
    if (m->kind == LG_HEADER_MATCH_PRESENT)
        return (m->present == present) != m->invert;
    if (!present) {
        if (!m->treat_missing_as_empty)
            return 0;
        value = h2o_iovec_init("", 0);
    }
    int match = 0;
    int64_t n;
    switch (m->kind) {
    case LG_HEADER_MATCH_ANY:
        match = 1;
        break;
    case LG_HEADER_MATCH_STRING:
        match = lg_string_matcher_match(&m->string, value.base, value.len);
        break;
    case LG_HEADER_MATCH_RANGE:
        match = parse_int64(value.base, value.len, &n) && n >= m->range_start && n < m->range_end;
        break;
    case LG_HEADER_MATCH_PRESENT:
        break;
    }
    return match != m->invert;
}

int lg_header_matcher_match_request(const lg_header_matcher_t *m, const lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    h2o_iovec_t v = {NULL, 0};
    int present = request_value(req, m->name, pool, &v);
    return header_match_value(m, present, v);
}

int lg_header_matcher_match_response(const lg_header_matcher_t *m, const lg_response_head_t *resp,
                                     h2o_mem_pool_t *pool)
{
    h2o_iovec_t v = {NULL, 0};
    char status[16];
    int present;
    if (strcmp(m->name.base, ":status") == 0) {
        int n = snprintf(status, sizeof(status), "%d", resp->status);
        v = h2o_iovec_init(status, (size_t)n);
        present = 1;
    } else {
        present = field_value(&resp->headers, m->name, pool, &v);
    }
    return header_match_value(m, present, v);
}

/* ------------------------------------------------------------------------------------------- */
/* Query parameter matchers                                                                    */
/* ------------------------------------------------------------------------------------------- */

static int query_matcher_init(bctx_t *c, lg_query_matcher_t *m, const Envoy__Config__Route__V3__QueryParameterMatcher *pb)
{
    *m = (lg_query_matcher_t){{NULL, 0}, 1, 1, {LG_STRING_MATCH_EXACT, 0, {NULL, 0}, NULL}};
    if (is_empty(pb->name))
        return ffail(c, pb, "name", "value length must be at least 1 characters");
    if (strlen(pb->name) > 1024)
        return ffail(c, pb, "name", "value length must be at most 1024 bytes");
    m->name = dup_str(pb->name);
    switch (pb->query_parameter_match_specifier_case) {
    case RC(QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_STRING_MATCH): {
        m->present_only = 0;
        size_t mark = lg_path_push_field(c->path, "string_match");
        int r = string_matcher_init(c, &m->string, pb->string_match);
        lg_path_pop(c->path, mark);
        return r;
    }
    case RC(QUERY_PARAMETER_MATCHER__QUERY_PARAMETER_MATCH_SPECIFIER_PRESENT_MATCH):
        m->present = pb->present_match;
        return 0;
    default:
        return 0; /* no specifier: the parameter must be present */
    }
}

int lg_query_matcher_init(lg_query_matcher_t *m, const Envoy__Config__Route__V3__QueryParameterMatcher *pb,
                          lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err)
{
    bctx_t c = {path, map, err, NULL};
    size_t mark = path->len;
    int r = query_matcher_init(&c, m, pb);
    lg_path_pop(path, mark);
    if (r != 0)
        lg_query_matcher_dispose(m);
    return r;
}

void lg_query_matcher_dispose(lg_query_matcher_t *m)
{
    free(m->name.base);
    m->name = h2o_iovec_init(NULL, 0);
    lg_string_matcher_dispose(&m->string);
}

int lg_query_value(h2o_iovec_t path, h2o_iovec_t name, h2o_iovec_t *out)
{
    const char *q = memchr(path.base, '?', path.len);
    if (q == NULL)
        return 0;
    const char *end = path.base + path.len, *hash = memchr(q, '#', (size_t)(end - q));
    if (hash != NULL)
        end = hash;
    for (const char *p = q + 1; p <= end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pend = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pend - p));
        const char *kend = eq != NULL ? eq : pend;
        if ((size_t)(kend - p) == name.len && memcmp(p, name.base, name.len) == 0) {
            *out = eq != NULL ? h2o_iovec_init(eq + 1, (size_t)(pend - eq - 1)) : h2o_iovec_init("", 0);
            return 1;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return 0;
}

int lg_query_matcher_match(const lg_query_matcher_t *m, h2o_iovec_t path)
{
    h2o_iovec_t v;
    int present = lg_query_value(path, m->name, &v);
    if (m->present_only)
        return present == m->present;
    return present && lg_string_matcher_match(&m->string, v.base, v.len);
}

/* ------------------------------------------------------------------------------------------- */
/* Route matches                                                                               */
/* ------------------------------------------------------------------------------------------- */

uint32_t lg_fractional_percent_denominator(Envoy__Type__V3__FractionalPercent__DenominatorType d)
{
    switch (d) {
    case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__TEN_THOUSAND:
        return 10000;
    case ENVOY__TYPE__V3__FRACTIONAL_PERCENT__DENOMINATOR_TYPE__MILLION:
        return 1000000;
    default:
        return 100;
    }
}

static int criteria_path_init(bctx_t *c, lg_route_criteria_t *rc, const Envoy__Config__Route__V3__RouteMatch *pb)
{
    switch (pb->path_specifier_case) {
    case RC(ROUTE_MATCH__PATH_SPECIFIER_PREFIX):
        rc->path_kind = LG_PATH_MATCH_PREFIX;
        rc->path = rc->case_sensitive ? dup_str(pb->prefix) : dup_lower(pb->prefix);
        return 0;
    case RC(ROUTE_MATCH__PATH_SPECIFIER_PATH):
        rc->path_kind = LG_PATH_MATCH_EXACT;
        rc->path = rc->case_sensitive ? dup_str(pb->path) : dup_lower(pb->path);
        return 0;
    case RC(ROUTE_MATCH__PATH_SPECIFIER_PATH_SEPARATED_PREFIX): {
        const char *p = pb->path_separated_prefix != NULL ? pb->path_separated_prefix : "";
        size_t len = strlen(p);
        if (len < 2 || strpbrk(p, "?#") != NULL || p[len - 1] == '/')
            return ffail(c, pb, "path_separated_prefix", "value does not match regex pattern \"^[^?#]+[^?#/]$\"");
        rc->path_kind = LG_PATH_MATCH_SEPARATED_PREFIX;
        rc->path = rc->case_sensitive ? dup_str(p) : dup_lower(p);
        return 0;
    }
    case RC(ROUTE_MATCH__PATH_SPECIFIER_SAFE_REGEX): {
        rc->path_kind = LG_PATH_MATCH_REGEX;
        size_t mark = lg_path_push_field(c->path, "safe_regex");
        int r = regex_init(c, pb->safe_regex, &rc->path_regex);
        lg_path_pop(c->path, mark);
        return r;
    }
    case RC(ROUTE_MATCH__PATH_SPECIFIER_CONNECT_MATCHER):
        return unsupported(c, pb, "connect_matcher");
    case RC(ROUTE_MATCH__PATH_SPECIFIER_PATH_MATCH_POLICY):
        return unsupported(c, pb, "path_match_policy");
    default:
        return bfail(c, pb, "one of prefix, path, safe_regex or path_separated_prefix is required");
    }
}

static int criteria_init(bctx_t *c, lg_route_criteria_t *rc, const Envoy__Config__Route__V3__RouteMatch *pb,
                         int ignore_path_parameters)
{
    *rc = (lg_route_criteria_t){0};
    rc->case_sensitive = pb->case_sensitive != NULL ? pb->case_sensitive->value : 1;
    rc->ignore_path_parameters = ignore_path_parameters;
    rc->grpc = pb->grpc != NULL;
    if (criteria_path_init(c, rc, pb) != 0)
        return -1;
    if (pb->runtime_fraction != NULL) {
        rc->has_runtime_fraction = 1;
        const Envoy__Type__V3__FractionalPercent *d = pb->runtime_fraction->default_value;
        rc->runtime_numerator = d != NULL ? d->numerator : 0;
        rc->runtime_denominator = lg_fractional_percent_denominator(d != NULL ? d->denominator : 0);
    }
    if (pb->tls_context != NULL && (pb->tls_context->presented != NULL || pb->tls_context->validated != NULL))
        return unsupported(c, pb, "tls_context");
    if (pb->n_dynamic_metadata != 0)
        return unsupported(c, pb, "dynamic_metadata");
    if (pb->n_headers != 0) {
        rc->headers = lg_xcalloc(pb->n_headers, sizeof(*rc->headers));
        for (size_t i = 0; i < pb->n_headers; ++i) {
            size_t mark = lg_path_push_field(c->path, "headers");
            lg_path_push_index(c->path, i);
            ++rc->n_headers;
            int r = header_matcher_init(c, &rc->headers[i], pb->headers[i]);
            lg_path_pop(c->path, mark);
            if (r != 0)
                return -1;
        }
    }
    if (pb->n_query_parameters != 0) {
        rc->query_parameters = lg_xcalloc(pb->n_query_parameters, sizeof(*rc->query_parameters));
        for (size_t i = 0; i < pb->n_query_parameters; ++i) {
            size_t mark = lg_path_push_field(c->path, "query_parameters");
            lg_path_push_index(c->path, i);
            ++rc->n_query_parameters;
            int r = query_matcher_init(c, &rc->query_parameters[i], pb->query_parameters[i]);
            lg_path_pop(c->path, mark);
            if (r != 0)
                return -1;
        }
    }
    return 0;
}

int lg_route_criteria_init(lg_route_criteria_t *c, const Envoy__Config__Route__V3__RouteMatch *pb,
                           int ignore_path_parameters, lg_path_t *path, const lg_srcmap_t *map, lg_error_t *err)
{
    bctx_t b = {path, map, err, NULL};
    size_t mark = path->len;
    int r = criteria_init(&b, c, pb, ignore_path_parameters);
    lg_path_pop(path, mark);
    if (r != 0)
        lg_route_criteria_dispose(c);
    return r;
}

void lg_route_criteria_dispose(lg_route_criteria_t *c)
{
    free(c->path.base);
    lg_regex_free(c->path_regex);
    for (size_t i = 0; i < c->n_headers; ++i)
        lg_header_matcher_dispose(&c->headers[i]);
    free(c->headers);
    for (size_t i = 0; i < c->n_query_parameters; ++i)
        lg_query_matcher_dispose(&c->query_parameters[i]);
    free(c->query_parameters);
    *c = (lg_route_criteria_t){0};
}

/* The path without query and fragment (Envoy's removeQueryAndFragment). */
static h2o_iovec_t path_only(h2o_iovec_t path)
{
    for (size_t i = 0; i < path.len; ++i)
        if (path.base[i] == '?' || path.base[i] == '#')
            return h2o_iovec_init(path.base, i);
    return path;
}

static int is_grpc_request(const lg_request_head_t *req)
{
    static const char grpc[] = "application/grpc";
    h2o_iovec_t ct;
    if (!field_value(&req->headers, LG_LIT("content-type"), NULL, &ct))
        return 0;
    return ct.len >= sizeof(grpc) - 1 && memcmp(ct.base, grpc, sizeof(grpc) - 1) == 0 &&
           (ct.len == sizeof(grpc) - 1 || ct.base[sizeof(grpc) - 1] == '+');
}

static int path_matches(const lg_route_criteria_t *c, h2o_iovec_t path)
{
    h2o_iovec_t p = path_only(path);
    if (c->ignore_path_parameters) {
        const char *semi = memchr(p.base, ';', p.len);
        if (semi != NULL)
            p.len = (size_t)(semi - p.base);
    }
    const char *v = c->path.base;
    size_t n = c->path.len;
    switch (c->path_kind) {
    case LG_PATH_MATCH_PREFIX:
        return p.len >= n && (c->case_sensitive ? memcmp(p.base, v, n) == 0 : lower_eq(p.base, v, n));
    case LG_PATH_MATCH_EXACT:
        return p.len == n && (c->case_sensitive ? memcmp(p.base, v, n) == 0 : lower_eq(p.base, v, n));
    case LG_PATH_MATCH_SEPARATED_PREFIX:
        return p.len >= n && (c->case_sensitive ? memcmp(p.base, v, n) == 0 : lower_eq(p.base, v, n)) &&
               (p.len == n || p.base[n] == '/');
    case LG_PATH_MATCH_REGEX:
        return lg_regex_full_match(c->path_regex, p.base, p.len);
    }
    return 0;
}

int lg_route_criteria_match(const lg_route_criteria_t *c, const lg_request_head_t *req, uint64_t random,
                            h2o_mem_pool_t *pool)
{
    /* Envoy's order: runtime fraction, gRPC, headers, query parameters, then the path. */
    if (c->has_runtime_fraction && !(random % c->runtime_denominator < c->runtime_numerator))
        return 0;
    if (c->grpc && !is_grpc_request(req))
        return 0;
    for (size_t i = 0; i < c->n_headers; ++i)
        if (!lg_header_matcher_match_request(&c->headers[i], req, pool))
            return 0;
    for (size_t i = 0; i < c->n_query_parameters; ++i)
        if (!lg_query_matcher_match(&c->query_parameters[i], req->path))
            return 0;
    return path_matches(c, req->path);
}

/* ------------------------------------------------------------------------------------------- */
/* typed_per_filter_config                                                                     */
/* ------------------------------------------------------------------------------------------- */

static const char *any_type_name(const Google__Protobuf__Any *any)
{
    const char *url = any->type_url != NULL ? any->type_url : "";
    const char *slash = strrchr(url, '/');
    return slash != NULL ? slash + 1 : url;
}

/* Calls the build callback for one filter config; 0 with *out set (maybe NULL), or -1. */
static int per_filter_call(bctx_t *c, const void *owner, const char *name, const Google__Protobuf__Any *any,
                           int optional, void **out)
{
    lg_error_t e;
    e.msg[0] = '\0';
    *out = c->opts->per_filter_build(c->opts->ctx, name, any, &e);
    if (*out != NULL || e.msg[0] == '\0')
        return 0;
    if (optional) {
        lg_info(config, "%s: ignoring the optional per-route config of %s: %s", c->path->buf, name, e.msg);
        return 0;
    }
    return bfail(c, owner, "%s", e.msg);
}

static int per_filter_add(bctx_t *c, lg_per_filter_configs_t *pf, const void *owner, const char *name,
                          const Google__Protobuf__Any *any)
{
    size_t mark = lg_path_push_field(c->path, "typed_per_filter_config");
    lg_path_push_key(c->path, name != NULL ? name : "");
    int r = -1;
    if (is_empty(name)) {
        bfail(c, owner, "the filter name must not be empty");
        goto Exit;
    }
    if (any == NULL) {
        bfail(c, owner, "value is required");
        goto Exit;
    }
    if (c->opts->per_filter_build == NULL) {
        bfail(c, owner, "typed_per_filter_config is not supported here");
        goto Exit;
    }
    lg_per_filter_config_t *e = &pf->entries[pf->size];
    *e = (lg_per_filter_config_t){NULL, NULL, -1};
    if (strcmp(any_type_name(any), "envoy.config.route.v3.FilterConfig") == 0) {
        /* The FilterConfig wrapper: disabled and is_optional belong to the route, config to the filter. */
        int owned = 0;
        Envoy__Config__Route__V3__FilterConfig *fc =
            (Envoy__Config__Route__V3__FilterConfig *)lg_srcmap_get_any(c->map, any);
        if (fc == NULL) {
            fc = envoy__config__route__v3__filter_config__unpack(NULL, any->value.len, any->value.data);
            owned = fc != NULL;
        }
        if (fc == NULL) {
            bfail(c, owner, "cannot decode envoy.config.route.v3.FilterConfig");
            goto Exit;
        }
        e->disabled = fc->disabled;
        int rr = fc->config != NULL ? per_filter_call(c, owner, name, fc->config, fc->is_optional, &e->config) : 0;
        if (owned)
            envoy__config__route__v3__filter_config__free_unpacked(fc, NULL);
        if (rr != 0)
            goto Exit;
    } else if (per_filter_call(c, owner, name, any, 0, &e->config) != 0) {
        goto Exit;
    }
    e->filter_name = dup_str(name).base;
    ++pf->size;
    r = 0;
Exit:
    lg_path_pop(c->path, mark);
    return r;
}

/* Builds the typed_per_filter_config map of `msg` (any message type that has one). */
#define PER_FILTER_INIT(c, pf, msg)                                                                \
    ({                                                                                             \
        int r_ = 0;                                                                                \
        (pf)->entries = (msg)->n_typed_per_filter_config != 0                                      \
                            ? lg_xcalloc((msg)->n_typed_per_filter_config, sizeof(*(pf)->entries))    \
                            : NULL;                                                                \
        for (size_t i_ = 0; r_ == 0 && i_ < (msg)->n_typed_per_filter_config; ++i_)                \
            r_ = per_filter_add(c, pf, msg, (msg)->typed_per_filter_config[i_]->key,               \
                                (msg)->typed_per_filter_config[i_]->value);                        \
        r_;                                                                                        \
    })

static void per_filter_dispose(lg_per_filter_configs_t *pf, const lg_route_build_opts_t *opts)
{
    for (size_t i = 0; i < pf->size; ++i) {
        if (pf->entries[i].config != NULL && opts->per_filter_destroy != NULL)
            opts->per_filter_destroy(opts->ctx, pf->entries[i].filter_name, pf->entries[i].config);
        free(pf->entries[i].filter_name);
    }
    free(pf->entries);
    pf->entries = NULL;
    pf->size = 0;
}

static const lg_per_filter_config_t *per_filter_find(const lg_per_filter_configs_t *pf, const char *name)
{
    for (size_t i = 0; i < pf->size; ++i)
        if (strcmp(pf->entries[i].filter_name, name) == 0)
            return &pf->entries[i];
    return NULL;
}

/* After a caller's build callback ran with its field pushed at `mark`: NULL with a message
 * refuses the table (at that field), NULL without one stores nothing. Pops the field. */
static int built(bctx_t *c, const void *owner, const void *out, const lg_error_t *e, size_t mark)
{
    int r = out == NULL && e->msg[0] != '\0' ? bfail(c, owner, "%s", e->msg) : 0;
    lg_path_pop(c->path, mark);
    return r;
}

/* rate_limits of a route or virtual host, through the caller's callback. */
static int rate_limits_init(bctx_t *c, const void *owner, Envoy__Config__Route__V3__RateLimit *const *limits,
                            size_t n, void **out)
{
    *out = NULL;
    if (n == 0)
        return 0;
    if (c->opts->rate_limits_build == NULL)
        return unsupported(c, owner, "rate_limits");
    size_t mark = lg_path_push_field(c->path, "rate_limits");
    lg_error_t e;
    e.msg[0] = '\0';
    *out = c->opts->rate_limits_build(c->opts->ctx, limits, n, c->path, &e);
    return built(c, owner, *out, &e, mark);
}

/* The deprecated `cors` of a route action or virtual host, through the caller's callback. */
static int cors_init(bctx_t *c, const void *owner, const Envoy__Config__Route__V3__CorsPolicy *pb, void **out)
{
    *out = NULL;
    if (pb == NULL)
        return 0;
    if (c->opts->cors_build == NULL)
        return unsupported(c, owner, "cors");
    size_t mark = lg_path_push_field(c->path, "cors");
    lg_error_t e;
    e.msg[0] = '\0';
    *out = c->opts->cors_build(c->opts->ctx, pb, &e);
    return built(c, owner, *out, &e, mark);
}

static void cors_dispose(void *cors, const lg_route_build_opts_t *opts)
{
    if (cors != NULL && opts->cors_destroy != NULL)
        opts->cors_destroy(opts->ctx, cors);
}

static void rate_limits_dispose(void *limits, const lg_route_build_opts_t *opts)
{
    if (limits != NULL && opts->rate_limits_destroy != NULL)
        opts->rate_limits_destroy(opts->ctx, limits);
}

/* ------------------------------------------------------------------------------------------- */
/* Retry and hash policies                                                                     */
/* ------------------------------------------------------------------------------------------- */

static const char *const retry_on_names[] = {
#define LG_X(name, s) s,
    LG_RETRY_ON(LG_X)
#undef LG_X
};

int lg_retry_on_parse(const char *s, size_t len, uint32_t *bits, h2o_iovec_t *bad)
{
    int r = 0;
    *bits = 0;
    for (size_t i = 0; i < len;) {
        size_t start = i;
        while (i < len && s[i] != ',')
            ++i;
        size_t end = i++;
        while (start < end && (s[start] == ' ' || s[start] == '\t'))
            ++start;
        while (end > start && (s[end - 1] == ' ' || s[end - 1] == '\t'))
            --end;
        if (start == end)
            continue;
        size_t k;
        for (k = 0; k < sizeof(retry_on_names) / sizeof(retry_on_names[0]); ++k)
            if (strlen(retry_on_names[k]) == end - start && memcmp(retry_on_names[k], s + start, end - start) == 0)
                break;
        if (k < sizeof(retry_on_names) / sizeof(retry_on_names[0])) {
            *bits |= 1u << k;
        } else if (r == 0) {
            if (bad != NULL)
                *bad = h2o_iovec_init(s + start, end - start);
            r = -1;
        }
    }
    return r;
}

static void retry_policy_free(lg_retry_policy_t *p)
{
    if (p == NULL)
        return;
    free(p->retriable_status_codes);
    for (size_t i = 0; i < p->n_retriable_headers; ++i)
        lg_header_matcher_dispose(&p->retriable_headers[i]);
    free(p->retriable_headers);
    for (size_t i = 0; i < p->n_retriable_request_headers; ++i)
        lg_header_matcher_dispose(&p->retriable_request_headers[i]);
    free(p->retriable_request_headers);
    free(p);
}

static int header_matchers_init(bctx_t *c, const char *field, Envoy__Config__Route__V3__HeaderMatcher *const *pbs,
                                size_t n, lg_header_matcher_t **out, size_t *n_out)
{
    *out = n != 0 ? lg_xcalloc(n, sizeof(**out)) : NULL;
    for (size_t i = 0; i < n; ++i) {
        size_t mark = lg_path_push_field(c->path, field);
        lg_path_push_index(c->path, i);
        ++*n_out;
        int r = header_matcher_init(c, &(*out)[i], pbs[i]);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    return 0;
}

static int is_previous_hosts(const Envoy__Config__Route__V3__RetryPolicy__RetryHostPredicate *p)
{
    if (p->name != NULL && strcmp(p->name, "envoy.retry_host_predicates.previous_hosts") == 0)
        return 1;
    return p->config_type_case == RC(RETRY_POLICY__RETRY_HOST_PREDICATE__CONFIG_TYPE_TYPED_CONFIG) &&
           p->typed_config != NULL &&
           strcmp(any_type_name(p->typed_config), "envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate") == 0;
}

/* RetryBackOff: base_interval required and positive, max_interval (default 10 x base) >= base. */
static int retry_back_off_init(bctx_t *c, lg_retry_policy_t *p, const Envoy__Config__Route__V3__RetryPolicy__RetryBackOff *bo)
{
    int64_t base = 0, max = 0;
    if (bo->base_interval == NULL)
        return ffail(c, bo, "base_interval", "value is required");
    if (duration_ms(c, bo, "base_interval", bo->base_interval, &base) != 0)
        return -1;
    if (base <= 0)
        return ffail(c, bo, "base_interval", "value must be greater than 0s");
    max = base > INT64_MAX / 10 ? INT64_MAX : base * 10;
    if (bo->max_interval != NULL) {
        if (duration_ms(c, bo, "max_interval", bo->max_interval, &max) != 0)
            return -1;
        if (max <= 0)
            return ffail(c, bo, "max_interval", "value must be greater than 0s");
        if (max < base)
            return ffail(c, bo, "max_interval", "max_interval must be greater than or equal to the base_interval");
    }
    p->base_interval_ms = (uint64_t)base;
    p->max_interval_ms = (uint64_t)max;
    return 0;
}

static int retry_policy_fill(bctx_t *c, lg_retry_policy_t *p, const Envoy__Config__Route__V3__RetryPolicy *pb)
{
    h2o_iovec_t bad;
    const char *on = pb->retry_on != NULL ? pb->retry_on : "";
    if (lg_retry_on_parse(on, strlen(on), &p->retry_on, &bad) != 0)
        return ffail(c, pb, "retry_on", "unknown retry condition \"%.*s\"", (int)bad.len, bad.base);
    p->num_retries = pb->num_retries != NULL ? pb->num_retries->value : 1;
    int64_t ms = 0;
    if (pb->per_try_timeout != NULL) {
        if (duration_ms(c, pb, "per_try_timeout", pb->per_try_timeout, &ms) != 0)
            return -1;
        p->per_try_timeout_ms = (uint64_t)ms;
    }
    if (pb->per_try_idle_timeout != NULL) {
        if (duration_ms(c, pb, "per_try_idle_timeout", pb->per_try_idle_timeout, &ms) != 0)
            return -1;
        p->per_try_idle_timeout_ms = (uint64_t)ms;
    }
    if (pb->retry_priority != NULL)
        return unsupported(c, pb, "retry_priority");
    for (size_t i = 0; i < pb->n_retry_host_predicate; ++i) {
        if (!is_previous_hosts(pb->retry_host_predicate[i])) {
            size_t mark = lg_path_push_field(c->path, "retry_host_predicate");
            lg_path_push_index(c->path, i);
            bfail(c, pb->retry_host_predicate[i], "retry host predicate \"%s\" is not supported by legate",
                  pb->retry_host_predicate[i]->name != NULL ? pb->retry_host_predicate[i]->name : "");
            lg_path_pop(c->path, mark);
            return -1;
        }
        p->previous_hosts = 1;
    }
    if (pb->n_retry_options_predicates != 0)
        return unsupported(c, pb, "retry_options_predicates");
    p->host_selection_retry_max_attempts = pb->host_selection_retry_max_attempts != 0 ? pb->host_selection_retry_max_attempts : 1;
    if (pb->n_retriable_status_codes != 0) {
        p->retriable_status_codes = lg_xcalloc(pb->n_retriable_status_codes, sizeof(uint32_t));
        memcpy(p->retriable_status_codes, pb->retriable_status_codes, pb->n_retriable_status_codes * sizeof(uint32_t));
        p->n_retriable_status_codes = pb->n_retriable_status_codes;
    }
    p->base_interval_ms = DEFAULT_RETRY_BASE_MS;
    p->max_interval_ms = DEFAULT_RETRY_BASE_MS * 10;
    if (pb->retry_back_off != NULL) {
        size_t mark = lg_path_push_field(c->path, "retry_back_off");
        int r = retry_back_off_init(c, p, pb->retry_back_off);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    if (pb->rate_limited_retry_back_off != NULL)
        return unsupported(c, pb, "rate_limited_retry_back_off");
    if (header_matchers_init(c, "retriable_headers", pb->retriable_headers, pb->n_retriable_headers,
                             &p->retriable_headers, &p->n_retriable_headers) != 0)
        return -1;
    return header_matchers_init(c, "retriable_request_headers", pb->retriable_request_headers,
                                pb->n_retriable_request_headers, &p->retriable_request_headers,
                                &p->n_retriable_request_headers);
}

static int retry_policy_init(bctx_t *c, const Envoy__Config__Route__V3__RetryPolicy *pb, lg_retry_policy_t **out)
{
    size_t mark = lg_path_push_field(c->path, "retry_policy");
    lg_retry_policy_t *p = lg_xcalloc(1, sizeof(*p));
    int r = retry_policy_fill(c, p, pb);
    lg_path_pop(c->path, mark);
    if (r != 0) {
        retry_policy_free(p);
        p = NULL;
    }
    *out = p;
    return r;
}

static void hash_policy_dispose(lg_hash_policy_t *h)
{
    free(h->name.base);
    lg_regex_free(h->regex);
    free(h->substitution.base);
    free(h->cookie_path.base);
    for (size_t i = 0; i < h->n_cookie_attributes; ++i) {
        free(h->cookie_attributes[i].name.base);
        free(h->cookie_attributes[i].value.base);
    }
    free(h->cookie_attributes);
}

static int hash_policy_fill(bctx_t *c, lg_hash_policy_t *h, const Envoy__Config__Route__V3__RouteAction__HashPolicy *pb)
{
    h->terminal = pb->terminal;
    h->cookie_ttl_ms = -1;
    switch (pb->policy_specifier_case) {
    case RC(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_HEADER): {
        h->kind = LG_HASH_POLICY_HEADER;
        size_t mark = lg_path_push_field(c->path, "header");
        int r = check_header_name(c, pb->header, "header_name", pb->header->header_name);
        if (r == 0) {
            h->name = dup_lower(pb->header->header_name);
            if (pb->header->regex_rewrite != NULL)
                r = regex_subst_init(c, pb->header, "regex_rewrite", pb->header->regex_rewrite, &h->regex,
                                     &h->substitution);
        }
        lg_path_pop(c->path, mark);
        return r;
    }
    case RC(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_COOKIE): {
        const Envoy__Config__Route__V3__RouteAction__HashPolicy__Cookie *ck = pb->cookie;
        h->kind = LG_HASH_POLICY_COOKIE;
        size_t mark = lg_path_push_field(c->path, "cookie");
        int r = 0;
        if (is_empty(ck->name))
            r = ffail(c, ck, "name", "value length must be at least 1 characters");
        if (r == 0 && ck->ttl != NULL)
            r = duration_ms(c, ck, "ttl", ck->ttl, &h->cookie_ttl_ms);
        if (r == 0) {
            h->name = dup_str(ck->name);
            h->cookie_path = dup_str(ck->path);
            h->cookie_attributes = ck->n_attributes != 0 ? lg_xcalloc(ck->n_attributes, sizeof(*h->cookie_attributes)) : NULL;
            for (size_t i = 0; r == 0 && i < ck->n_attributes; ++i) {
                if (is_empty(ck->attributes[i]->name)) {
                    size_t m2 = lg_path_push_field(c->path, "attributes");
                    lg_path_push_index(c->path, i);
                    r = ffail(c, ck->attributes[i], "name", "value length must be at least 1 characters");
                    lg_path_pop(c->path, m2);
                    break;
                }
                h->cookie_attributes[i].name = dup_str(ck->attributes[i]->name);
                h->cookie_attributes[i].value = dup_str(ck->attributes[i]->value);
                ++h->n_cookie_attributes;
            }
        }
        lg_path_pop(c->path, mark);
        return r;
    }
    case RC(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_CONNECTION_PROPERTIES):
        h->kind = pb->connection_properties->source_ip ? LG_HASH_POLICY_SOURCE_IP : LG_HASH_POLICY_NONE;
        return 0;
    case RC(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_QUERY_PARAMETER):
        h->kind = LG_HASH_POLICY_QUERY_PARAMETER;
        if (is_empty(pb->query_parameter->name))
            return ffail(c, pb->query_parameter, "query_parameter.name", "value length must be at least 1 characters");
        h->name = dup_str(pb->query_parameter->name);
        return 0;
    case RC(ROUTE_ACTION__HASH_POLICY__POLICY_SPECIFIER_FILTER_STATE):
        return unsupported(c, pb, "filter_state");
    default:
        return bfail(c, pb, "one of header, cookie, connection_properties, query_parameter or filter_state is required");
    }
}

/* ------------------------------------------------------------------------------------------- */
/* Routes                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static int mutations_init(bctx_t *c, lg_header_mutations_t *m, Envoy__Config__Core__V3__HeaderValueOption *const *adds,
                          size_t n_adds, char *const *removes, size_t n_removes, int request)
{
    return lg_header_mutations_init(m, adds, n_adds, removes, n_removes,
                                    request ? "request_headers_to_add" : "response_headers_to_add",
                                    request ? "request_headers_to_remove" : "response_headers_to_remove", c->path,
                                    c->map, c->err);
}

#define MUTATIONS_INIT(c, req_m, resp_m, msg)                                                      \
    (mutations_init(c, req_m, (msg)->request_headers_to_add, (msg)->n_request_headers_to_add,      \
                    (msg)->request_headers_to_remove, (msg)->n_request_headers_to_remove, 1) != 0 || \
             mutations_init(c, resp_m, (msg)->response_headers_to_add, (msg)->n_response_headers_to_add, \
                            (msg)->response_headers_to_remove, (msg)->n_response_headers_to_remove, 0) != 0 \
         ? -1                                                                                      \
         : 0)

static void weighted_cluster_dispose(lg_weighted_cluster_t *w, const lg_route_build_opts_t *opts)
{
    free(w->name.base);
    free(w->cluster_header.base);
    free(w->host_rewrite_literal.base);
    lg_header_mutations_dispose(&w->request_mutations);
    lg_header_mutations_dispose(&w->response_mutations);
    per_filter_dispose(&w->per_filter, opts);
}

static int weighted_cluster_fill(bctx_t *c, lg_weighted_cluster_t *w,
                                 const Envoy__Config__Route__V3__WeightedCluster__ClusterWeight *pb)
{
    int has_name = !is_empty(pb->name), has_header = !is_empty(pb->cluster_header);
    if (!has_name && !has_header)
        return bfail(c, pb, "At least one of name or cluster_header need to be specified");
    if (has_name && has_header)
        return bfail(c, pb, "Only one of name or cluster_header can be specified");
    if (has_header && check_header_name(c, pb, "cluster_header", pb->cluster_header) != 0)
        return -1;
    w->name = dup_str(has_name ? pb->name : "");
    w->cluster_header = dup_lower(has_header ? pb->cluster_header : "");
    w->weight = pb->weight != NULL ? pb->weight->value : 0;
    if (pb->metadata_match != NULL)
        return unsupported(c, pb, "metadata_match");
    if (pb->host_rewrite_specifier_case ==
        RC(WEIGHTED_CLUSTER__CLUSTER_WEIGHT__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL))
        w->host_rewrite_literal = dup_str(pb->host_rewrite_literal);
    if (MUTATIONS_INIT(c, &w->request_mutations, &w->response_mutations, pb) != 0)
        return -1;
    return PER_FILTER_INIT(c, &w->per_filter, pb);
}

static int weighted_clusters_init(bctx_t *c, lg_route_t *r, const Envoy__Config__Route__V3__WeightedCluster *pb)
{
    size_t mark = lg_path_push_field(c->path, "weighted_clusters");
    int ret = -1;
    if (pb->n_clusters == 0) {
        ffail(c, pb, "clusters", "value must contain at least 1 item(s)");
        goto Exit;
    }
    r->weighted_clusters = lg_xcalloc(pb->n_clusters, sizeof(*r->weighted_clusters));
    for (size_t i = 0; i < pb->n_clusters; ++i) {
        size_t m2 = lg_path_push_field(c->path, "clusters");
        lg_path_push_index(c->path, i);
        ++r->n_weighted_clusters;
        int rr = weighted_cluster_fill(c, &r->weighted_clusters[i], pb->clusters[i]);
        lg_path_pop(c->path, m2);
        if (rr != 0)
            goto Exit;
        r->total_weight += r->weighted_clusters[i].weight;
    }
    if (pb->total_weight != NULL && pb->total_weight->value != r->total_weight) {
        ffail(c, pb, "total_weight", "Sum of weights in the weighted_cluster should add up to %" PRIu32,
              pb->total_weight->value);
        goto Exit;
    }
    if (r->total_weight == 0) {
        bfail(c, pb, "Sum of weights in the weighted_cluster must be greater than 0.");
        goto Exit;
    }
    if (pb->random_value_specifier_case == RC(WEIGHTED_CLUSTER__RANDOM_VALUE_SPECIFIER_HEADER_NAME)) {
        if (check_header_name(c, pb, "header_name", pb->header_name) != 0)
            goto Exit;
        r->weighted_random_header = dup_lower(pb->header_name);
    }
    ret = 0;
Exit:
    lg_path_pop(c->path, mark);
    return ret;
}

/* Whether a HedgePolicy would change anything (legate does not hedge). */
static int hedges(const Envoy__Config__Route__V3__HedgePolicy *h)
{
    return h != NULL && ((h->initial_requests != NULL && h->initial_requests->value > 1) ||
                         (h->additional_request_chance != NULL && h->additional_request_chance->numerator > 0) ||
                         h->hedge_on_per_try_timeout);
}

static int optional_ms(bctx_t *c, const void *owner, const char *field, const Google__Protobuf__Duration *d, int64_t *out)
{
    *out = -1;
    return d != NULL ? duration_ms(c, owner, field, d, out) : 0;
}

static int route_action_cluster(bctx_t *c, lg_route_t *r, const Envoy__Config__Route__V3__RouteAction *pb)
{
    switch (pb->cluster_specifier_case) {
    case RC(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER):
        if (is_empty(pb->cluster))
            return ffail(c, pb, "cluster", "value length must be at least 1 characters");
        r->cluster_specifier = LG_CLUSTER_SPECIFIER_NAME;
        r->cluster = dup_str(pb->cluster);
        return 0;
    case RC(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_HEADER):
        if (check_header_name(c, pb, "cluster_header", pb->cluster_header) != 0)
            return -1;
        r->cluster_specifier = LG_CLUSTER_SPECIFIER_HEADER;
        r->cluster_header = dup_lower(pb->cluster_header);
        return 0;
    case RC(ROUTE_ACTION__CLUSTER_SPECIFIER_WEIGHTED_CLUSTERS):
        r->cluster_specifier = LG_CLUSTER_SPECIFIER_WEIGHTED;
        return weighted_clusters_init(c, r, pb->weighted_clusters);
    case RC(ROUTE_ACTION__CLUSTER_SPECIFIER_CLUSTER_SPECIFIER_PLUGIN):
        return unsupported(c, pb, "cluster_specifier_plugin");
    case RC(ROUTE_ACTION__CLUSTER_SPECIFIER_INLINE_CLUSTER_SPECIFIER_PLUGIN):
        return unsupported(c, pb, "inline_cluster_specifier_plugin");
    default:
        return bfail(c, pb, "one of cluster, cluster_header or weighted_clusters is required");
    }
}

static int route_action_rewrites(bctx_t *c, lg_route_t *r, const Envoy__Config__Route__V3__RouteAction *pb)
{
    if (!is_empty(pb->prefix_rewrite) && pb->regex_rewrite != NULL)
        return bfail(c, pb, "Specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy");
    if (pb->path_rewrite_policy != NULL)
        return unsupported(c, pb, "path_rewrite_policy");
    if (!is_empty(pb->prefix_rewrite)) {
        if (!lg_header_value_is_valid(pb->prefix_rewrite, strlen(pb->prefix_rewrite)))
            return ffail(c, pb, "prefix_rewrite", "invalid value (NUL, CR or LF)");
        r->prefix_rewrite = dup_str(pb->prefix_rewrite);
    }
    if (pb->regex_rewrite != NULL &&
        regex_subst_init(c, pb, "regex_rewrite", pb->regex_rewrite, &r->regex_rewrite, &r->regex_rewrite_substitution) != 0)
        return -1;
    switch (pb->host_rewrite_specifier_case) {
    case RC(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_LITERAL):
        if (!lg_header_value_is_valid(pb->host_rewrite_literal, strlen(pb->host_rewrite_literal)))
            return ffail(c, pb, "host_rewrite_literal", "invalid value (NUL, CR or LF)");
        if (!is_empty(pb->host_rewrite_literal)) {
            r->host_rewrite = LG_HOST_REWRITE_LITERAL;
            r->host_rewrite_value = dup_str(pb->host_rewrite_literal);
        }
        break;
    case RC(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_AUTO_HOST_REWRITE):
        if (pb->auto_host_rewrite != NULL && pb->auto_host_rewrite->value)
            r->host_rewrite = LG_HOST_REWRITE_AUTO;
        break;
    case RC(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_HEADER):
        if (check_header_name(c, pb, "host_rewrite_header", pb->host_rewrite_header) != 0)
            return -1;
        r->host_rewrite = LG_HOST_REWRITE_HEADER;
        r->host_rewrite_value = dup_lower(pb->host_rewrite_header);
        break;
    case RC(ROUTE_ACTION__HOST_REWRITE_SPECIFIER_HOST_REWRITE_PATH_REGEX):
        r->host_rewrite = LG_HOST_REWRITE_PATH_REGEX;
        if (regex_subst_init(c, pb, "host_rewrite_path_regex", pb->host_rewrite_path_regex, &r->host_rewrite_regex,
                             &r->host_rewrite_substitution) != 0)
            return -1;
        break;
    default:
        break;
    }
    r->append_x_forwarded_host = pb->append_x_forwarded_host;
    return 0;
}

static int route_action_timeouts(bctx_t *c, lg_route_t *r, const Envoy__Config__Route__V3__RouteAction *pb)
{
    int64_t ms = DEFAULT_ROUTE_TIMEOUT_MS;
    if (pb->timeout != NULL && duration_ms(c, pb, "timeout", pb->timeout, &ms) != 0)
        return -1;
    r->timeout_ms = (uint64_t)ms;
    if (optional_ms(c, pb, "idle_timeout", pb->idle_timeout, &r->idle_timeout_ms) != 0 ||
        optional_ms(c, pb, "max_grpc_timeout", pb->max_grpc_timeout, &r->max_grpc_timeout_ms) != 0 ||
        optional_ms(c, pb, "grpc_timeout_offset", pb->grpc_timeout_offset, &r->grpc_timeout_offset_ms) != 0)
        return -1;
    r->max_stream_duration_ms = r->grpc_timeout_header_max_ms = r->grpc_timeout_header_offset_ms = -1;
    if (pb->max_stream_duration != NULL) {
        const Envoy__Config__Route__V3__RouteAction__MaxStreamDuration *d = pb->max_stream_duration;
        size_t mark = lg_path_push_field(c->path, "max_stream_duration");
        int rr = optional_ms(c, d, "max_stream_duration", d->max_stream_duration, &r->max_stream_duration_ms);
        if (rr == 0)
            rr = optional_ms(c, d, "grpc_timeout_header_max", d->grpc_timeout_header_max, &r->grpc_timeout_header_max_ms);
        if (rr == 0)
            rr = optional_ms(c, d, "grpc_timeout_header_offset", d->grpc_timeout_header_offset,
                             &r->grpc_timeout_header_offset_ms);
        lg_path_pop(c->path, mark);
        if (rr != 0)
            return -1;
    }
    return 0;
}

static int route_action_init(bctx_t *c, lg_route_t *r, const lg_vhost_t *vh, const Envoy__Config__Route__V3__RouteAction *pb)
{
    if (route_action_cluster(c, r, pb) != 0 || route_action_rewrites(c, r, pb) != 0 ||
        route_action_timeouts(c, r, pb) != 0)
        return -1;
    switch (pb->cluster_not_found_response_code) {
    case RC(ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__NOT_FOUND):
        r->cluster_not_found_code = 404;
        break;
    case RC(ROUTE_ACTION__CLUSTER_NOT_FOUND_RESPONSE_CODE__INTERNAL_SERVER_ERROR):
        r->cluster_not_found_code = 500;
        break;
    default:
        r->cluster_not_found_code = 503;
        break;
    }
    if (pb->metadata_match != NULL)
        return unsupported(c, pb, "metadata_match");
    if (pb->retry_policy_typed_config != NULL)
        return unsupported(c, pb, "retry_policy_typed_config");
    if (pb->n_request_mirror_policies != 0)
        return unsupported(c, pb, "request_mirror_policies");
    if (cors_init(c, pb, pb->cors, &r->cors) != 0)
        return -1;
    if (pb->internal_redirect_policy != NULL)
        return unsupported(c, pb, "internal_redirect_policy");
    if (pb->internal_redirect_action == RC(ROUTE_ACTION__INTERNAL_REDIRECT_ACTION__HANDLE_INTERNAL_REDIRECT))
        return unsupported(c, pb, "internal_redirect_action");
    if (hedges(pb->hedge_policy))
        return unsupported(c, pb, "hedge_policy");
    if (pb->retry_policy != NULL) {
        if (retry_policy_init(c, pb->retry_policy, &r->_own_retry_policy) != 0)
            return -1;
        r->retry_policy = r->_own_retry_policy;
    } else {
        r->retry_policy = vh->retry_policy;
    }
    if (pb->n_hash_policy != 0) {
        r->hash_policies = lg_xcalloc(pb->n_hash_policy, sizeof(*r->hash_policies));
        for (size_t i = 0; i < pb->n_hash_policy; ++i) {
            size_t mark = lg_path_push_field(c->path, "hash_policy");
            lg_path_push_index(c->path, i);
            ++r->n_hash_policies;
            int rr = hash_policy_fill(c, &r->hash_policies[i], pb->hash_policy[i]);
            lg_path_pop(c->path, mark);
            if (rr != 0)
                return -1;
        }
    }
    r->priority_high = pb->priority == ENVOY__CONFIG__CORE__V3__ROUTING_PRIORITY__HIGH;
    if (pb->n_upgrade_configs != 0) {
        r->upgrades = lg_xcalloc(pb->n_upgrade_configs, sizeof(*r->upgrades));
        for (size_t i = 0; i < pb->n_upgrade_configs; ++i) {
            const Envoy__Config__Route__V3__RouteAction__UpgradeConfig *u = pb->upgrade_configs[i];
            size_t mark = lg_path_push_field(c->path, "upgrade_configs");
            lg_path_push_index(c->path, i);
            int rr = 0;
            if (is_empty(u->upgrade_type))
                rr = ffail(c, u, "upgrade_type", "value length must be at least 1 characters");
            else if (u->connect_config != NULL)
                rr = unsupported(c, u, "connect_config");
            for (size_t j = 0; rr == 0 && j < r->n_upgrades; ++j)
                if (strcasecmp(r->upgrades[j].type.base, u->upgrade_type) == 0)
                    rr = bfail(c, u, "Duplicate upgrade %s", u->upgrade_type);
            lg_path_pop(c->path, mark);
            if (rr != 0)
                return -1;
            r->upgrades[r->n_upgrades].type = dup_lower(u->upgrade_type);
            r->upgrades[r->n_upgrades++].enabled = u->enabled != NULL ? u->enabled->value : 1;
        }
    }
    r->include_vh_rate_limits = pb->include_vh_rate_limits != NULL && pb->include_vh_rate_limits->value;
    return rate_limits_init(c, pb, pb->rate_limits, pb->n_rate_limits, &r->rate_limits);
}

static int redirect_init(bctx_t *c, lg_redirect_t *rd, const Envoy__Config__Route__V3__RedirectAction *pb)
{
    switch (pb->scheme_rewrite_specifier_case) {
    case RC(REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_HTTPS_REDIRECT):
        if (pb->https_redirect)
            rd->scheme = dup_str("https");
        break;
    case RC(REDIRECT_ACTION__SCHEME_REWRITE_SPECIFIER_SCHEME_REDIRECT):
        if (!is_empty(pb->scheme_redirect))
            rd->scheme = dup_str(pb->scheme_redirect);
        break;
    default:
        break;
    }
    if (!lg_header_value_is_valid(pb->host_redirect != NULL ? pb->host_redirect : "",
                                  pb->host_redirect != NULL ? strlen(pb->host_redirect) : 0))
        return ffail(c, pb, "host_redirect", "invalid value (NUL, CR or LF)");
    rd->host = dup_str(pb->host_redirect);
    if (pb->port_redirect > 65535)
        return ffail(c, pb, "port_redirect", "value must be less than or equal to 65535");
    if (pb->port_redirect != 0) {
        char port[16];
        snprintf(port, sizeof(port), ":%" PRIu32, pb->port_redirect);
        rd->port = dup_str(port);
    }
    switch (pb->path_rewrite_specifier_case) {
    case RC(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PATH_REDIRECT):
        if (!lg_header_value_is_valid(pb->path_redirect, strlen(pb->path_redirect)))
            return ffail(c, pb, "path_redirect", "invalid value (NUL, CR or LF)");
        rd->path = dup_str(pb->path_redirect);
        rd->path_has_query = strchr(pb->path_redirect, '?') != NULL;
        break;
    case RC(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_PREFIX_REWRITE):
        if (!lg_header_value_is_valid(pb->prefix_rewrite, strlen(pb->prefix_rewrite)))
            return ffail(c, pb, "prefix_rewrite", "invalid value (NUL, CR or LF)");
        rd->prefix_rewrite = dup_str(pb->prefix_rewrite);
        break;
    case RC(REDIRECT_ACTION__PATH_REWRITE_SPECIFIER_REGEX_REWRITE):
        if (regex_subst_init(c, pb, "regex_rewrite", pb->regex_rewrite, &rd->regex, &rd->regex_substitution) != 0)
            return -1;
        break;
    default:
        break;
    }
    switch (pb->response_code) {
    case RC(REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__MOVED_PERMANENTLY):
        rd->response_code = 301;
        break;
    case RC(REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__FOUND):
        rd->response_code = 302;
        break;
    case RC(REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__SEE_OTHER):
        rd->response_code = 303;
        break;
    case RC(REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__TEMPORARY_REDIRECT):
        rd->response_code = 307;
        break;
    case RC(REDIRECT_ACTION__REDIRECT_RESPONSE_CODE__PERMANENT_REDIRECT):
        rd->response_code = 308;
        break;
    default:
        return ffail(c, pb, "response_code", "value must be one of the defined enum values");
    }
    rd->strip_query = pb->strip_query;
    return 0;
}

static void redirect_dispose(lg_redirect_t *rd)
{
    free(rd->scheme.base);
    free(rd->host.base);
    free(rd->port.base);
    free(rd->path.base);
    free(rd->prefix_rewrite.base);
    lg_regex_free(rd->regex);
    free(rd->regex_substitution.base);
}

/* Reads a file whole, refusing it past `max` bytes. */
static int read_body_file(bctx_t *c, const void *owner, const char *filename, uint32_t max, h2o_iovec_t *out)
{
    FILE *fp = fopen(filename, "rb");
    if (fp == NULL)
        return ffail(c, owner, "filename", "response body file %s does not exist", filename);
    char *buf = lg_xcalloc(1, (size_t)max + 2);
    size_t n = fread(buf, 1, (size_t)max + 1, fp);
    int failed = ferror(fp);
    fclose(fp);
    if (failed) {
        free(buf);
        return ffail(c, owner, "filename", "cannot read response body file %s", filename);
    }
    if (n > max) {
        free(buf);
        return ffail(c, owner, "filename", "response body file %s size is more than %" PRIu32 " bytes; maximum is %" PRIu32,
                     filename, max, max);
    }
    *out = h2o_iovec_init(buf, n);
    return 0;
}

static int direct_response_init(bctx_t *c, lg_route_t *r, const Envoy__Config__Route__V3__DirectResponseAction *pb,
                                uint32_t max)
{
    if (pb->status < 200 || pb->status >= 600)
        return ffail(c, pb, "status", "value must be inside range [200, 600)");
    r->direct_status = (int)pb->status;
    const Envoy__Config__Core__V3__DataSource *body = pb->body;
    if (body == NULL) {
        r->direct_body = dup_str("");
        return 0;
    }
    size_t mark = lg_path_push_field(c->path, "body");
    const char *data = NULL;
    size_t len = 0;
    int r0 = 0;
    switch (body->specifier_case) {
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_FILENAME:
        r0 = read_body_file(c, body, body->filename, max, &r->direct_body);
        lg_path_pop(c->path, mark);
        return r0;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_BYTES:
        data = (const char *)body->inline_bytes.data;
        len = body->inline_bytes.len;
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_INLINE_STRING:
        data = body->inline_string;
        len = strlen(data);
        break;
    case ENVOY__CONFIG__CORE__V3__DATA_SOURCE__SPECIFIER_ENVIRONMENT_VARIABLE:
        if ((data = getenv(body->environment_variable)) == NULL)
            r0 = ffail(c, body, "environment_variable", "Environment variable doesn't exist: %s", body->environment_variable);
        else
            len = strlen(data);
        break;
    default:
        r0 = bfail(c, body, "one of filename, inline_bytes, inline_string or environment_variable is required");
        break;
    }
    if (r0 == 0 && len > max)
        r0 = bfail(c, body, "response body size is %zu bytes; maximum is %" PRIu32, len, max);
    if (r0 == 0)
        r->direct_body = dup_n(data != NULL ? data : "", len, 0);
    lg_path_pop(c->path, mark);
    return r0;
}

static void route_dispose(lg_route_t *r, const lg_route_build_opts_t *opts)
{
    free(r->name.base);
    lg_route_criteria_dispose(&r->match);
    free(r->cluster.base);
    free(r->cluster_header.base);
    for (size_t i = 0; i < r->n_weighted_clusters; ++i)
        weighted_cluster_dispose(&r->weighted_clusters[i], opts);
    free(r->weighted_clusters);
    free(r->weighted_random_header.base);
    free(r->prefix_rewrite.base);
    lg_regex_free(r->regex_rewrite);
    free(r->regex_rewrite_substitution.base);
    free(r->host_rewrite_value.base);
    lg_regex_free(r->host_rewrite_regex);
    free(r->host_rewrite_substitution.base);
    retry_policy_free(r->_own_retry_policy);
    for (size_t i = 0; i < r->n_hash_policies; ++i)
        hash_policy_dispose(&r->hash_policies[i]);
    free(r->hash_policies);
    for (size_t i = 0; i < r->n_upgrades; ++i)
        free(r->upgrades[i].type.base);
    free(r->upgrades);
    rate_limits_dispose(r->rate_limits, opts);
    cors_dispose(r->cors, opts);
    redirect_dispose(&r->redirect);
    free(r->direct_body.base);
    lg_header_mutations_dispose(&r->request_mutations);
    lg_header_mutations_dispose(&r->response_mutations);
    per_filter_dispose(&r->per_filter, opts);
}

static int route_fill(bctx_t *c, lg_route_t *r, const lg_vhost_t *vh, const Envoy__Config__Route__V3__Route *pb,
                      const lg_route_table_t *t, int ignore_path_parameters)
{
    r->vhost = vh;
    r->name = dup_str(pb->name);
    r->idle_timeout_ms = r->max_stream_duration_ms = r->grpc_timeout_header_max_ms = -1;
    r->grpc_timeout_header_offset_ms = r->max_grpc_timeout_ms = r->grpc_timeout_offset_ms = -1;
    r->per_request_buffer_limit =
        pb->per_request_buffer_limit_bytes != NULL ? (int64_t)pb->per_request_buffer_limit_bytes->value : -1;
    if (pb->match == NULL)
        return ffail(c, pb, "match", "value is required");
    size_t mark = lg_path_push_field(c->path, "match");
    int rr = criteria_init(c, &r->match, pb->match, ignore_path_parameters);
    lg_path_pop(c->path, mark);
    if (rr != 0)
        return -1;
    switch (pb->action_case) {
    case RC(ROUTE__ACTION_ROUTE):
        r->action = LG_ROUTE_ACTION_ROUTE;
        mark = lg_path_push_field(c->path, "route");
        rr = route_action_init(c, r, vh, pb->route);
        lg_path_pop(c->path, mark);
        break;
    case RC(ROUTE__ACTION_REDIRECT):
        r->action = LG_ROUTE_ACTION_REDIRECT;
        mark = lg_path_push_field(c->path, "redirect");
        rr = redirect_init(c, &r->redirect, pb->redirect);
        lg_path_pop(c->path, mark);
        break;
    case RC(ROUTE__ACTION_DIRECT_RESPONSE):
        r->action = LG_ROUTE_ACTION_DIRECT_RESPONSE;
        mark = lg_path_push_field(c->path, "direct_response");
        rr = direct_response_init(c, r, pb->direct_response, t->max_direct_response_body_size);
        lg_path_pop(c->path, mark);
        break;
    case RC(ROUTE__ACTION_FILTER_ACTION):
        return unsupported(c, pb, "filter_action");
    case RC(ROUTE__ACTION_NON_FORWARDING_ACTION):
        return unsupported(c, pb, "non_forwarding_action");
    default:
        return bfail(c, pb, "one of route, redirect or direct_response is required");
    }
    if (rr != 0)
        return -1;
    if (MUTATIONS_INIT(c, &r->request_mutations, &r->response_mutations, pb) != 0)
        return -1;
    return PER_FILTER_INIT(c, &r->per_filter, pb);
}

/* ------------------------------------------------------------------------------------------- */
/* Virtual hosts and the domain index                                                          */
/* ------------------------------------------------------------------------------------------- */

struct st_lg_route_domain_t {
    h2o_iovec_t text; /* lower case; wildcards without their '*' */
    const lg_vhost_t *vhost;
    size_t vhost_index, domain_index; /* where it came from, for errors */
};

static void vhost_dispose(lg_vhost_t *vh, const lg_route_build_opts_t *opts)
{
    free(vh->name.base);
    for (size_t i = 0; i < vh->n_routes; ++i)
        route_dispose(&vh->routes[i], opts);
    free(vh->routes);
    route_dispose(&vh->ssl_redirect, opts);
    lg_header_mutations_dispose(&vh->request_mutations);
    lg_header_mutations_dispose(&vh->response_mutations);
    per_filter_dispose(&vh->per_filter, opts);
    retry_policy_free(vh->retry_policy);
    rate_limits_dispose(vh->rate_limits, opts);
    cors_dispose(vh->cors, opts);
}

static int vhost_fill(bctx_t *c, lg_vhost_t *vh, lg_route_table_t *t, const Envoy__Config__Route__V3__VirtualHost *pb,
                      int ignore_path_parameters)
{
    vh->table = t;
    vh->name = dup_str(pb->name);
    vh->per_request_buffer_limit =
        pb->per_request_buffer_limit_bytes != NULL ? (int64_t)pb->per_request_buffer_limit_bytes->value : -1;
    /* The redirect require_tls answers with; disposable even if the rest fails. */
    vh->ssl_redirect.vhost = vh;
    vh->ssl_redirect.action = LG_ROUTE_ACTION_REDIRECT;
    vh->ssl_redirect.redirect.ssl_redirect = 1;
    vh->ssl_redirect.redirect.response_code = 301;
    vh->ssl_redirect.name = dup_str("");
    if (is_empty(pb->name))
        return ffail(c, pb, "name", "value length must be at least 1 characters");
    if (pb->n_domains == 0)
        return ffail(c, pb, "domains", "value must contain at least 1 item(s)");
    switch (pb->require_tls) {
    case RC(VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__NONE):
        vh->require_tls = LG_REQUIRE_TLS_NONE;
        break;
    case RC(VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__EXTERNAL_ONLY):
        vh->require_tls = LG_REQUIRE_TLS_EXTERNAL_ONLY;
        break;
    case RC(VIRTUAL_HOST__TLS_REQUIREMENT_TYPE__ALL):
        vh->require_tls = LG_REQUIRE_TLS_ALL;
        break;
    default:
        return ffail(c, pb, "require_tls", "value must be one of the defined enum values");
    }
    if (cors_init(c, pb, pb->cors, &vh->cors) != 0)
        return -1;
    if (pb->retry_policy_typed_config != NULL)
        return unsupported(c, pb, "retry_policy_typed_config");
    if (hedges(pb->hedge_policy))
        return unsupported(c, pb, "hedge_policy");
    if (pb->n_request_mirror_policies != 0)
        return unsupported(c, pb, "request_mirror_policies");
    /* virtual_clusters only name stats (vcluster.*), which legate does not keep: ignoring them
     * changes no request. */
    vh->include_request_attempt_count = pb->include_request_attempt_count;
    vh->include_attempt_count_in_response = pb->include_attempt_count_in_response;
    vh->include_is_timeout_retry_header = pb->include_is_timeout_retry_header;
    if (pb->retry_policy != NULL && retry_policy_init(c, pb->retry_policy, &vh->retry_policy) != 0)
        return -1;
    if (MUTATIONS_INIT(c, &vh->request_mutations, &vh->response_mutations, pb) != 0 ||
        PER_FILTER_INIT(c, &vh->per_filter, pb) != 0 ||
        rate_limits_init(c, pb, pb->rate_limits, pb->n_rate_limits, &vh->rate_limits) != 0)
        return -1;
    if (pb->n_routes != 0)
        vh->routes = lg_xcalloc(pb->n_routes, sizeof(*vh->routes));
    for (size_t i = 0; i < pb->n_routes; ++i) {
        size_t mark = lg_path_push_field(c->path, "routes");
        lg_path_push_index(c->path, i);
        ++vh->n_routes;
        int r = route_fill(c, &vh->routes[i], vh, pb->routes[i], t, ignore_path_parameters);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    return 0;
}

static int domain_cmp_exact(const void *x, const void *y)
{
    const lg_route_domain_t *a = x, *b = y;
    if (a->text.len != b->text.len)
        return a->text.len < b->text.len ? -1 : 1;
    return memcmp(a->text.base, b->text.base, a->text.len);
}

/* Wildcards: longest first, so the first hit is Envoy's longest match. */
static int domain_cmp_wild(const void *x, const void *y)
{
    const lg_route_domain_t *a = x, *b = y;
    if (a->text.len != b->text.len)
        return a->text.len > b->text.len ? -1 : 1;
    return memcmp(a->text.base, b->text.base, a->text.len);
}

static int domain_pos_before(const lg_route_domain_t *a, const lg_route_domain_t *b)
{
    return a->vhost_index != b->vhost_index ? a->vhost_index < b->vhost_index : a->domain_index < b->domain_index;
}

/* Sorts a domain array and finds the duplicate Envoy would report first (its second occurrence). */
static const lg_route_domain_t *sort_domains(lg_route_domain_t *d, size_t n, int (*cmp)(const void *, const void *),
                                             const lg_route_domain_t *dup)
{
    if (n != 0)
        qsort(d, n, sizeof(*d), cmp);
    for (size_t i = 1; i < n; ++i) {
        if (cmp(&d[i - 1], &d[i]) != 0)
            continue;
        const lg_route_domain_t *later = domain_pos_before(&d[i - 1], &d[i]) ? &d[i] : &d[i - 1];
        if (dup == NULL || domain_pos_before(later, dup))
            dup = later;
    }
    return dup;
}

static int index_domains(bctx_t *c, lg_route_table_t *t, const Envoy__Config__Route__V3__RouteConfiguration *rc)
{
    size_t total = 0;
    for (size_t i = 0; i < rc->n_virtual_hosts; ++i)
        total += rc->virtual_hosts[i]->n_domains;
    t->_exact = lg_xcalloc(total, sizeof(*t->_exact));
    t->_suffixes = lg_xcalloc(total, sizeof(*t->_suffixes));
    t->_prefixes = lg_xcalloc(total, sizeof(*t->_prefixes));
    for (size_t i = 0; i < rc->n_virtual_hosts; ++i) {
        const Envoy__Config__Route__V3__VirtualHost *pb = rc->virtual_hosts[i];
        for (size_t j = 0; j < pb->n_domains; ++j) {
            const char *d = pb->domains[j] != NULL ? pb->domains[j] : "";
            size_t len = strlen(d);
            size_t mark = lg_path_push_field(c->path, "virtual_hosts");
            lg_path_push_index(c->path, i);
            lg_path_push_field(c->path, "domains");
            lg_path_push_index(c->path, j);
            int r = 0;
            if (!lg_header_value_is_valid(d, len))
                r = bfail(c, pb, "invalid domain (NUL, CR or LF)");
            else if (len == 1 && d[0] == '*' && t->_default_vhost != NULL)
                r = bfail(c, pb, "Only a single wildcard domain is permitted in route %s", t->name.base);
            lg_path_pop(c->path, mark);
            if (r != 0)
                return -1;
            lg_route_domain_t e = {{NULL, 0}, &t->vhosts[i], i, j};
            if (len == 1 && d[0] == '*') {
                t->_default_vhost = &t->vhosts[i];
            } else if (len != 0 && d[0] == '*') {
                e.text = dup_n(d + 1, len - 1, 1);
                t->_suffixes[t->_n_suffixes++] = e;
            } else if (len != 0 && d[len - 1] == '*') {
                e.text = dup_n(d, len - 1, 1);
                t->_prefixes[t->_n_prefixes++] = e;
            } else {
                e.text = dup_n(d, len, 1);
                t->_exact[t->_n_exact++] = e;
            }
        }
    }
    const lg_route_domain_t *dup = sort_domains(t->_exact, t->_n_exact, domain_cmp_exact, NULL);
    dup = sort_domains(t->_suffixes, t->_n_suffixes, domain_cmp_wild, dup);
    dup = sort_domains(t->_prefixes, t->_n_prefixes, domain_cmp_wild, dup);
    if (dup != NULL) {
        const Envoy__Config__Route__V3__VirtualHost *pb = rc->virtual_hosts[dup->vhost_index];
        size_t mark = lg_path_push_field(c->path, "virtual_hosts");
        lg_path_push_index(c->path, dup->vhost_index);
        lg_path_push_field(c->path, "domains");
        lg_path_push_index(c->path, dup->domain_index);
        bfail(c, pb, "Only unique values for domains are permitted. Duplicate entry of domain %s in route %s",
              pb->domains[dup->domain_index], t->name.base);
        lg_path_pop(c->path, mark);
        return -1;
    }
    return 0;
}

static void free_domains(lg_route_domain_t *d, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        free(d[i].text.base);
    free(d);
}

/* ------------------------------------------------------------------------------------------- */
/* Tables                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void table_free(lg_route_table_t *t)
{
    const lg_route_build_opts_t *opts = t->_opts;
    for (size_t i = 0; i < t->n_vhosts; ++i)
        vhost_dispose(&t->vhosts[i], opts);
    free(t->vhosts);
    free_domains(t->_exact, t->_n_exact);
    free_domains(t->_suffixes, t->_n_suffixes);
    free_domains(t->_prefixes, t->_n_prefixes);
    lg_header_mutations_dispose(&t->request_mutations);
    lg_header_mutations_dispose(&t->response_mutations);
    per_filter_dispose(&t->per_filter, opts);
    for (size_t i = 0; i < t->n_internal_only_headers; ++i)
        free(t->internal_only_headers[i].base);
    free(t->internal_only_headers);
    free(t->name.base);
    free(t->_opts);
    free(t);
}

static int table_fill(bctx_t *c, lg_route_table_t *t, const Envoy__Config__Route__V3__RouteConfiguration *rc)
{
    t->name = dup_str(rc->name);
    if (rc->vhds != NULL)
        return unsupported(c, rc, "vhds");
    if (rc->n_cluster_specifier_plugins != 0)
        return unsupported(c, rc, "cluster_specifier_plugins");
    if (rc->n_request_mirror_policies != 0)
        return unsupported(c, rc, "request_mirror_policies");
    t->max_direct_response_body_size = rc->max_direct_response_body_size_bytes != NULL
                                           ? rc->max_direct_response_body_size_bytes->value
                                           : DEFAULT_MAX_DIRECT_RESPONSE_BODY;
    t->most_specific_header_mutations_wins = rc->most_specific_header_mutations_wins;
    t->ignore_port_in_host_matching = rc->ignore_port_in_host_matching;
    t->validate_clusters = rc->validate_clusters != NULL ? rc->validate_clusters->value : -1;
    if (rc->n_internal_only_headers != 0)
        t->internal_only_headers = lg_xcalloc(rc->n_internal_only_headers, sizeof(*t->internal_only_headers));
    for (size_t i = 0; i < rc->n_internal_only_headers; ++i) {
        size_t mark = lg_path_push_field(c->path, "internal_only_headers");
        lg_path_push_index(c->path, i);
        const char *h = rc->internal_only_headers[i];
        int r = h == NULL || !lg_header_name_is_valid(h, strlen(h)) ? bfail(c, rc, "invalid header name \"%s\"", h != NULL ? h : "") : 0;
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
        t->internal_only_headers[t->n_internal_only_headers++] = dup_lower(h);
    }
    if (MUTATIONS_INIT(c, &t->request_mutations, &t->response_mutations, rc) != 0 ||
        PER_FILTER_INIT(c, &t->per_filter, rc) != 0)
        return -1;
    if (rc->n_virtual_hosts != 0)
        t->vhosts = lg_xcalloc(rc->n_virtual_hosts, sizeof(*t->vhosts));
    for (size_t i = 0; i < rc->n_virtual_hosts; ++i) {
        size_t mark = lg_path_push_field(c->path, "virtual_hosts");
        lg_path_push_index(c->path, i);
        ++t->n_vhosts;
        int r = vhost_fill(c, &t->vhosts[i], t, rc->virtual_hosts[i], rc->ignore_path_parameters_in_path_matching);
        lg_path_pop(c->path, mark);
        if (r != 0)
            return -1;
    }
    return index_domains(c, t, rc);
}

lg_route_table_t *lg_route_table_build(const Envoy__Config__Route__V3__RouteConfiguration *rc,
                                       const lg_route_build_opts_t *opts, lg_path_t *path, lg_error_t *err)
{
    lg_route_table_t *t = lg_xcalloc(1, sizeof(*t));
    t->_opts = lg_xcalloc(1, sizeof(*t->_opts));
    if (opts != NULL)
        *t->_opts = *opts;
    atomic_init(&t->_refcnt, 1);
    bctx_t c = {path, t->_opts->srcmap, err, t->_opts};
    size_t mark = path->len;
    int r = table_fill(&c, t, rc);
    lg_path_pop(path, mark);
    if (r != 0) {
        table_free(t);
        return NULL;
    }
    t->_opts->srcmap = NULL; /* the document may go away; the table no longer needs it */
    return t;
}

void lg_route_table_retain(lg_route_table_t *t)
{
    atomic_fetch_add_explicit(&t->_refcnt, 1, memory_order_relaxed);
}

void lg_route_table_release(lg_route_table_t *t)
{
    if (t != NULL && atomic_fetch_sub_explicit(&t->_refcnt, 1, memory_order_acq_rel) == 1)
        table_free(t);
}

/* ------------------------------------------------------------------------------------------- */
/* Selecting a virtual host and a route (workers)                                              */
/* ------------------------------------------------------------------------------------------- */

size_t lg_host_port_start(h2o_iovec_t host)
{
    const char *colon = NULL;
    for (size_t i = host.len; i-- > 0;) {
        if (host.base[i] == ':') {
            colon = host.base + i;
            break;
        }
    }
    if (colon == NULL)
        return SIZE_MAX;
    /* An IPv6 literal is bracketed: a colon inside the brackets is not a port. */
    for (const char *p = host.base + host.len; p-- > colon;)
        if (*p == ']')
            return SIZE_MAX;
    return (size_t)(colon - host.base);
}

int lg_host_strip_port(h2o_iovec_t *authority, h2o_iovec_t method, int any, uint16_t listener_port)
{
    if (iov_eq(method, STRLIT("CONNECT")))
        return 0;
    size_t start = lg_host_port_start(*authority);
    if (start == SIZE_MAX)
        return 0;
    int64_t port;
    const char *digits = authority->base + start + 1;
    size_t ndigits = authority->len - start - 1;
    if (ndigits == 0 || !isdigit((unsigned char)digits[0]) || !parse_int64(digits, ndigits, &port) || port > UINT32_MAX)
        return 0;
    if (!any && port != listener_port)
        return 0;
    authority->len = start;
    return 1;
}

/* Binary search of a sorted run [lo, hi) of same-length domains for s. */
static const lg_route_domain_t *find_domain(const lg_route_domain_t *d, size_t lo, size_t hi, const char *s, size_t len)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = memcmp(d[mid].text.base, s, len);
        if (c == 0)
            return &d[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Envoy's findWildcardVirtualHost: for each wildcard length, longest first, shorter than the host. */
static const lg_vhost_t *find_wildcard(const lg_route_domain_t *d, size_t n, const char *host, size_t len, int suffix)
{
    for (size_t i = 0; i < n;) {
        size_t wlen = d[i].text.len, j = i;
        while (j < n && d[j].text.len == wlen)
            ++j;
        if (wlen < len) {
            const lg_route_domain_t *hit = find_domain(d, i, j, suffix ? host + len - wlen : host, wlen);
            if (hit != NULL)
                return hit->vhost;
        }
        i = j;
    }
    return NULL;
}

const lg_vhost_t *lg_route_table_find_vhost(const lg_route_table_t *t, h2o_iovec_t authority, h2o_mem_pool_t *pool)
{
    if (t->_n_exact == 0 && t->_n_suffixes == 0 && t->_n_prefixes == 0)
        return t->_default_vhost;
    if (authority.base == NULL)
        return NULL; /* no authority at all: Envoy selects nothing */
    if (t->ignore_port_in_host_matching) {
        size_t start = lg_host_port_start(authority);
        if (start != SIZE_MAX)
            authority.len = start;
    }
    char stack[256], *host = stack;
    if (authority.len > sizeof(stack)) {
        if (pool == NULL)
            return t->_default_vhost;
        host = h2o_mem_alloc_pool(pool, authority.len);
    }
    for (size_t i = 0; i < authority.len; ++i)
        host[i] = (char)tolower((unsigned char)authority.base[i]);
    size_t len = authority.len;

    size_t lo = 0, hi = t->_n_exact;
    while (lo < hi) { /* exact domains are ordered by length, then bytes */
        size_t mid = lo + (hi - lo) / 2;
        const h2o_iovec_t *d = &t->_exact[mid].text;
        int c = d->len != len ? (d->len < len ? -1 : 1) : memcmp(d->base, host, len);
        if (c == 0)
            return t->_exact[mid].vhost;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    const lg_vhost_t *vh;
    if ((vh = find_wildcard(t->_suffixes, t->_n_suffixes, host, len, 1)) != NULL)
        return vh;
    if ((vh = find_wildcard(t->_prefixes, t->_n_prefixes, host, len, 0)) != NULL)
        return vh;
    return t->_default_vhost;
}

const lg_route_t *lg_route_table_match(const lg_route_table_t *t, const lg_route_input_t *in, const lg_vhost_t **vhost)
{
    const lg_request_head_t *req = in->req;
    h2o_iovec_t authority = req->authority;
    if (in->flags & (LG_ROUTE_STRIP_ANY_HOST_PORT | LG_ROUTE_STRIP_MATCHING_HOST_PORT))
        lg_host_strip_port(&authority, req->method, (in->flags & LG_ROUTE_STRIP_ANY_HOST_PORT) != 0, in->listener_port);
    const lg_vhost_t *vh = lg_route_table_find_vhost(t, authority, in->pool);
    if (vhost != NULL)
        *vhost = vh;
    if (vh == NULL)
        return NULL;
    if (vh->require_tls != LG_REQUIRE_TLS_NONE) {
        /* Envoy decides by x-forwarded-proto (which its connection manager always sets). */
        h2o_iovec_t proto, internal;
        if (!field_value(&req->headers, LG_LIT("x-forwarded-proto"), NULL, &proto))
            proto = req->scheme;
        if (proto.len == 0)
            return NULL;
        if (!iov_eq(proto, STRLIT("https"))) {
            int is_internal = field_value(&req->headers, LG_LIT("x-envoy-internal"), NULL, &internal) &&
                              iov_eq(internal, STRLIT("true"));
            if (vh->require_tls == LG_REQUIRE_TLS_ALL || !is_internal)
                return &vh->ssl_redirect;
        }
    }
    if (req->path.len == 0)
        return NULL;
    for (size_t i = 0; i < vh->n_routes; ++i)
        if (lg_route_criteria_match(&vh->routes[i].match, req, in->random, in->pool))
            return &vh->routes[i];
    return NULL;
}

const lg_weighted_cluster_t *lg_route_pick_weighted_cluster(const lg_route_t *r, const lg_request_head_t *req,
                                                            uint64_t random)
{
    if (r->cluster_specifier != LG_CLUSTER_SPECIFIER_WEIGHTED || r->n_weighted_clusters == 0)
        return NULL;
    h2o_iovec_t v;
    if (r->weighted_random_header.len != 0 && req != NULL &&
        field_value(&req->headers, r->weighted_random_header, NULL, &v) && v.len != 0 && v.len <= 20) {
        uint64_t n = 0;
        size_t i;
        for (i = 0; i < v.len && isdigit((unsigned char)v.base[i]); ++i) {
            unsigned d = (unsigned)(v.base[i] - '0');
            if (n > (UINT64_MAX - d) / 10)
                break;
            n = n * 10 + d;
        }
        if (i == v.len)
            random = n;
    }
    uint64_t selected = random % r->total_weight, end = 0;
    for (size_t i = 0; i < r->n_weighted_clusters; ++i) {
        end += r->weighted_clusters[i].weight;
        if (selected < end)
            return &r->weighted_clusters[i];
    }
    return &r->weighted_clusters[r->n_weighted_clusters - 1];
}

h2o_iovec_t lg_route_cluster_name(const lg_route_t *r, const lg_weighted_cluster_t *wc, const lg_request_head_t *req)
{
    h2o_iovec_t v = {NULL, 0};
    if (r->action != LG_ROUTE_ACTION_ROUTE)
        return v;
    switch (r->cluster_specifier) {
    case LG_CLUSTER_SPECIFIER_NAME:
        return r->cluster;
    case LG_CLUSTER_SPECIFIER_HEADER:
        if (field_value(&req->headers, r->cluster_header, NULL, &v))
            return v;
        return h2o_iovec_init(NULL, 0);
    case LG_CLUSTER_SPECIFIER_WEIGHTED:
        if (wc == NULL)
            return v;
        if (wc->name.len != 0)
            return wc->name;
        if (field_value(&req->headers, wc->cluster_header, NULL, &v))
            return v;
        return h2o_iovec_init(NULL, 0);
    }
    return v;
}

/* ------------------------------------------------------------------------------------------- */
/* Rewrites and redirects (workers)                                                            */
/* ------------------------------------------------------------------------------------------- */

static h2o_iovec_t concat3(h2o_mem_pool_t *pool, h2o_iovec_t a, h2o_iovec_t b, h2o_iovec_t c)
{
    char *buf = h2o_mem_alloc_pool(pool, a.len + b.len + c.len + 1), *p = buf;
    if (a.len != 0)
        memcpy(p, a.base, a.len);
    p += a.len;
    if (b.len != 0)
        memcpy(p, b.base, b.len);
    p += b.len;
    if (c.len != 0)
        memcpy(p, c.base, c.len);
    p += c.len;
    *p = '\0';
    return h2o_iovec_init(buf, (size_t)(p - buf));
}

/* Envoy's rewritePathByPrefixOrRegex: {NULL, 0} means "leave the path alone". */
static h2o_iovec_t rewrite_path(const lg_route_t *r, h2o_iovec_t path, h2o_iovec_t prefix_rewrite,
                                const lg_regex_t *regex, h2o_iovec_t substitution, h2o_mem_pool_t *pool)
{
    if (prefix_rewrite.len != 0) {
        /* What was matched is replaced: the configured prefix or path, or for a regex route the
         * whole path without its query. */
        size_t matched = r->match.path_kind == LG_PATH_MATCH_REGEX ? path_only(path).len : r->match.path.len;
        if (matched > path.len)
            return h2o_iovec_init(NULL, 0);
        return concat3(pool, prefix_rewrite, h2o_iovec_init(path.base + matched, path.len - matched), h2o_iovec_init(NULL, 0));
    }
    if (regex != NULL) {
        h2o_iovec_t po = path_only(path);
        size_t n;
        char *replaced = lg_regex_replace_all(regex, po.base != NULL ? po.base : "", po.len, substitution.base, pool, &n);
        if (n == 0)
            return h2o_iovec_init(NULL, 0);
        return concat3(pool, h2o_iovec_init(replaced, n), h2o_iovec_init(path.base + po.len, path.len - po.len),
                       h2o_iovec_init(NULL, 0));
    }
    return h2o_iovec_init(NULL, 0);
}

h2o_iovec_t lg_route_rewritten_path(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    if (r->action != LG_ROUTE_ACTION_ROUTE)
        return h2o_iovec_init(NULL, 0);
    return rewrite_path(r, req->path, r->prefix_rewrite, r->regex_rewrite, r->regex_rewrite_substitution, pool);
}

int lg_route_rewrite_path(const lg_route_t *r, lg_request_head_t *req, h2o_mem_pool_t *pool, int keep_original_path)
{
    h2o_iovec_t p = lg_route_rewritten_path(r, req, pool);
    if (p.base == NULL)
        return 0;
    if (keep_original_path)
        lg_headers_set(pool, &req->headers, LG_LIT("x-envoy-original-path"), req->path);
    req->path = p;
    return 1;
}

h2o_iovec_t lg_route_rewritten_host(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    h2o_iovec_t v = {NULL, 0};
    if (r->action != LG_ROUTE_ACTION_ROUTE)
        return v;
    switch (r->host_rewrite) {
    case LG_HOST_REWRITE_LITERAL:
        return r->host_rewrite_value;
    case LG_HOST_REWRITE_HEADER:
        if (field_value(&req->headers, r->host_rewrite_value, NULL, &v) && v.len != 0)
            return v;
        return h2o_iovec_init(NULL, 0);
    case LG_HOST_REWRITE_PATH_REGEX: {
        h2o_iovec_t po = path_only(req->path);
        size_t n;
        char *s = lg_regex_replace_all(r->host_rewrite_regex, po.base != NULL ? po.base : "", po.len,
                                       r->host_rewrite_substitution.base, pool, &n);
        return n != 0 ? h2o_iovec_init(s, n) : h2o_iovec_init(NULL, 0);
    }
    default:
        return v;
    }
}

void lg_route_set_authority(const lg_route_t *r, lg_request_head_t *req, h2o_iovec_t host, h2o_mem_pool_t *pool)
{
    h2o_iovec_t old = req->authority;
    if (r->append_x_forwarded_host && old.len != 0) {
        /* Append the old authority to x-forwarded-host, unless it already ends the list. */
        ssize_t i = lg_headers_find(&req->headers, STRLIT("x-forwarded-host"), 0);
        if (i < 0) {
            lg_headers_add(pool, &req->headers, LG_LIT("x-forwarded-host"), old);
        } else {
            h2o_iovec_t xfh = req->headers.entries[i].value;
            size_t k = xfh.len;
            while (k > 0 && xfh.base[k - 1] != ',')
                --k;
            h2o_iovec_t last = h2o_iovec_init(xfh.base + k, xfh.len - k);
            while (last.len != 0 && last.base[0] == ' ')
                ++last.base, --last.len;
            if (!iov_eq(last, old.base, old.len))
                req->headers.entries[i].value = concat3(pool, xfh, LG_LIT(","), old);
        }
    }
    req->authority = host;
}

/* Envoy's processRequestHost: the request's host, without a port the new scheme or port makes wrong. */
static h2o_iovec_t redirect_host(const lg_request_head_t *req, h2o_iovec_t new_scheme, h2o_iovec_t new_port)
{
    h2o_iovec_t host = req->authority;
    if (host.len == 0)
        return host;
    size_t end = SIZE_MAX;
    if (host.base[0] == '[') {
        for (size_t i = host.len; i-- > 1;)
            if (host.base[i - 1] == ']' && host.base[i] == ':') {
                end = i;
                break;
            }
    } else {
        for (size_t i = host.len; i-- > 0;)
            if (host.base[i] == ':') {
                end = i;
                break;
            }
    }
    if (end == SIZE_MAX)
        return host;
    h2o_iovec_t port = h2o_iovec_init(host.base + end, host.len - end), proto;
    if (!field_value(&req->headers, LG_LIT("x-forwarded-proto"), NULL, &proto))
        proto = req->scheme;
    int remove = new_port.len != 0;
    if (!(new_scheme.len == proto.len && lower_eq(proto.base, new_scheme.base, proto.len))) {
        remove |= proto.len == 5 && lower_eq(proto.base, "https", 5) && iov_eq(port, STRLIT(":443"));
        remove |= proto.len == 4 && lower_eq(proto.base, "http", 4) && iov_eq(port, STRLIT(":80"));
    }
    if (remove)
        host.len = end;
    return host;
}

h2o_iovec_t lg_route_redirect_location(const lg_route_t *r, const lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    const lg_redirect_t *rd = &r->redirect;
    if (rd->ssl_redirect)
        return concat3(pool, LG_LIT("https://"), req->authority, req->path);
    h2o_iovec_t scheme = rd->scheme.len != 0 ? rd->scheme : req->scheme;
    h2o_iovec_t host = rd->host.len != 0 ? rd->host : redirect_host(req, scheme, rd->port);
    h2o_iovec_t path = req->path;
    /* Envoy rewrites :path first (prefix_rewrite / regex_rewrite), then builds the URI from it. */
    h2o_iovec_t rewritten = rewrite_path(r, path, rd->prefix_rewrite, rd->regex, rd->regex_substitution, pool);
    if (rewritten.base != NULL)
        path = rewritten;
    if (rd->path.len != 0) {
        const char *q = memchr(path.base, '?', path.len);
        if (rd->path_has_query || q == NULL)
            path = rd->path;
        else
            path = concat3(pool, rd->path, h2o_iovec_init(q, path.len - (size_t)(q - path.base)), h2o_iovec_init(NULL, 0));
    }
    if (path.len == 0 || path.base[0] != '/')
        path = concat3(pool, LG_LIT("/"), path, h2o_iovec_init(NULL, 0));
    if (!rd->path_has_query && rd->strip_query) {
        const char *q = memchr(path.base, '?', path.len);
        if (q != NULL)
            path.len = (size_t)(q - path.base);
    }
    h2o_iovec_t parts[] = {scheme, LG_LIT("://"), host, rd->port, path};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); ++i)
        total += parts[i].len;
    char *buf = h2o_mem_alloc_pool(pool, total + 1), *p = buf;
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); ++i) {
        if (parts[i].len != 0)
            memcpy(p, parts[i].base, parts[i].len);
        p += parts[i].len;
    }
    *p = '\0';
    return h2o_iovec_init(buf, total);
}

/* ------------------------------------------------------------------------------------------- */
/* Header mutations and per-filter configs (workers)                                           */
/* ------------------------------------------------------------------------------------------- */

/* The three route-level mutation lists in the order Envoy evaluates them (the last one wins). */
static void mutation_levels(const lg_route_t *r, int request, const lg_header_mutations_t *out[3])
{
    const lg_vhost_t *vh = r->vhost;
    const lg_route_table_t *t = vh->table;
    const lg_header_mutations_t *route = request ? &r->request_mutations : &r->response_mutations;
    const lg_header_mutations_t *vhost = request ? &vh->request_mutations : &vh->response_mutations;
    const lg_header_mutations_t *table = request ? &t->request_mutations : &t->response_mutations;
    if (t->most_specific_header_mutations_wins) {
        out[0] = table, out[1] = vhost, out[2] = route;
    } else {
        out[0] = route, out[1] = vhost, out[2] = table;
    }
}

void lg_route_apply_request_mutations(const lg_route_t *r, const lg_weighted_cluster_t *wc, lg_request_head_t *req,
                                      const lg_format_context_t *ctx, h2o_mem_pool_t *pool)
{
    lg_format_context_t c = {NULL, req, NULL};
    if (ctx != NULL)
        c = (lg_format_context_t){ctx->info, req, ctx->response};
    if (wc != NULL)
        lg_header_mutations_apply(&wc->request_mutations, &req->headers, &c, pool);
    const lg_header_mutations_t *levels[3];
    mutation_levels(r, 1, levels);
    for (size_t i = 0; i < 3; ++i)
        lg_header_mutations_apply(levels[i], &req->headers, &c, pool);
}

void lg_route_finalize_request(const lg_route_t *r, const lg_weighted_cluster_t *wc, lg_request_head_t *req,
                               const lg_format_context_t *ctx, h2o_mem_pool_t *pool, int keep_original_path)
{
    lg_route_apply_request_mutations(r, wc, req, ctx, pool);
    if (wc != NULL && wc->host_rewrite_literal.len != 0)
        req->authority = wc->host_rewrite_literal;
    h2o_iovec_t host = lg_route_rewritten_host(r, req, pool);
    if (host.base != NULL)
        lg_route_set_authority(r, req, host, pool);
    lg_route_rewrite_path(r, req, pool, keep_original_path);
}

void lg_route_apply_response_mutations(const lg_route_t *r, const lg_weighted_cluster_t *wc, lg_response_head_t *resp,
                                       const lg_format_context_t *ctx, h2o_mem_pool_t *pool)
{
    lg_format_context_t c = {NULL, NULL, resp};
    if (ctx != NULL)
        c = (lg_format_context_t){ctx->info, ctx->request, resp};
    if (wc != NULL)
        lg_header_mutations_apply(&wc->response_mutations, &resp->headers, &c, pool);
    const lg_header_mutations_t *levels[3];
    mutation_levels(r, 0, levels);
    for (size_t i = 0; i < 3; ++i)
        lg_header_mutations_apply(levels[i], &resp->headers, &c, pool);
}

size_t lg_route_per_filter_configs(const lg_route_t *r, const lg_weighted_cluster_t *wc, const char *filter_name,
                                   const void *out[4])
{
    const lg_per_filter_configs_t *levels[] = {wc != NULL ? &wc->per_filter : NULL, &r->per_filter,
                                               &r->vhost->per_filter, &r->vhost->table->per_filter};
    size_t n = 0;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); ++i) {
        const lg_per_filter_config_t *e;
        if (levels[i] != NULL && (e = per_filter_find(levels[i], filter_name)) != NULL && e->config != NULL)
            out[n++] = e->config;
    }
    return n;
}

const void *lg_route_per_filter_config(const lg_route_t *r, const lg_weighted_cluster_t *wc, const char *filter_name)
{
    const void *all[4];
    return lg_route_per_filter_configs(r, wc, filter_name, all) != 0 ? all[0] : NULL;
}

int lg_route_filter_disabled(const lg_route_t *r, const char *filter_name)
{
    const lg_per_filter_configs_t *levels[] = {&r->per_filter, &r->vhost->per_filter, &r->vhost->table->per_filter};
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); ++i) {
        const lg_per_filter_config_t *e = per_filter_find(levels[i], filter_name);
        if (e != NULL && e->disabled >= 0)
            return e->disabled;
    }
    return -1;
}
