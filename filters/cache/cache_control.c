/*
 * The cache filter's pure decisions (see cache.h): Cache-Control parsing, freshness lifetime,
 * which requests and statuses are cacheable, and the lookup key with its Vary part. No store, no
 * stream state: the unit tests drive these directly. Any thread.
 */
#include <string.h>
#include <time.h>

#include <h2o/string_.h>
#include <h2o/time_.h>

#include "filters/cache/cache.h"

void lg_cache_control_init(lg_cache_control_t *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->max_age = cc->s_maxage = cc->min_fresh = cc->max_stale = -1;
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int name_is(const char *s, size_t len, const char *lit)
{
    return h2o_lcstris(s, len, lit, strlen(lit));
}

int64_t lg_cache_parse_seconds(h2o_iovec_t v)
{
    if (v.len == 0)
        return -1;
    int64_t n = 0;
    for (size_t i = 0; i < v.len; ++i) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        /* RFC 9111 1.2.2: past 2^31 a cache uses 2^31 */
        if (n < ((int64_t)1 << 31))
            n = n * 10 + (v.base[i] - '0');
    }
    return n > ((int64_t)1 << 31) ? ((int64_t)1 << 31) : n;
}

/* A directive's delta-seconds: an invalid or missing one counts as 0 (stale at once). */
static int64_t delta(h2o_iovec_t arg)
{
    if (arg.len >= 2 && arg.base[0] == '"' && arg.base[arg.len - 1] == '"')
        arg = h2o_iovec_init(arg.base + 1, arg.len - 2);
    int64_t n = lg_cache_parse_seconds(arg);
    return n < 0 ? 0 : n;
}

static void directive(lg_cache_control_t *cc, const char *name, size_t name_len, h2o_iovec_t arg, int has_arg)
{
    if (name_is(name, name_len, "no-cache"))
        cc->no_cache = 1;
    else if (name_is(name, name_len, "no-store"))
        cc->no_store = 1;
    else if (name_is(name, name_len, "private"))
        cc->private_ = 1;
    else if (name_is(name, name_len, "public"))
        cc->public_ = 1;
    else if (name_is(name, name_len, "must-revalidate") || name_is(name, name_len, "proxy-revalidate"))
        cc->must_revalidate = 1;
    else if (name_is(name, name_len, "no-transform"))
        cc->no_transform = 1;
    else if (name_is(name, name_len, "only-if-cached"))
        cc->only_if_cached = 1;
    else if (name_is(name, name_len, "max-age"))
        cc->max_age = delta(arg);
    else if (name_is(name, name_len, "s-maxage"))
        cc->s_maxage = delta(arg);
    else if (name_is(name, name_len, "min-fresh"))
        cc->min_fresh = delta(arg);
    else if (name_is(name, name_len, "max-stale"))
        cc->max_stale = has_arg ? delta(arg) : INT64_MAX; /* no value: any staleness */
}

void lg_cache_control_parse(lg_cache_control_t *cc, h2o_iovec_t value)
{
    const char *p = value.base, *end = value.base + value.len;
    while (p < end) {
        while (p < end && (is_blank(*p) || *p == ','))
            ++p;
        const char *name = p;
        while (p < end && *p != '=' && *p != ',' && !is_blank(*p))
            ++p;
        size_t name_len = (size_t)(p - name);
        while (p < end && is_blank(*p))
            ++p;
        h2o_iovec_t arg = h2o_iovec_init(NULL, 0);
        int has_arg = 0;
        if (p < end && *p == '=') {
            has_arg = 1;
            ++p;
            while (p < end && is_blank(*p))
                ++p;
            const char *a = p;
            if (p < end && *p == '"') {
                /* a quoted string may hold commas (no-cache="a, b") */
                for (++p; p < end && *p != '"'; ++p)
                    if (*p == '\\' && p + 1 < end)
                        ++p;
                if (p < end)
                    ++p;
            } else {
                while (p < end && *p != ',' && !is_blank(*p))
                    ++p;
            }
            arg = h2o_iovec_init(a, (size_t)(p - a));
        }
        if (name_len != 0)
            directive(cc, name, name_len, arg, has_arg);
        while (p < end && *p != ',')
            ++p;
    }
}

void lg_cache_control_from_headers(lg_cache_control_t *cc, const lg_headers_t *h)
{
    lg_cache_control_init(cc);
    for (ssize_t i = lg_headers_find(h, "cache-control", 13, 0); i >= 0;
         i = lg_headers_find(h, "cache-control", 13, (size_t)i + 1))
        lg_cache_control_parse(cc, h->entries[i].value);
}

int64_t lg_cache_parse_http_date(h2o_iovec_t value)
{
    struct tm tm;
    if (value.len != H2O_TIMESTR_RFC1123_LEN || h2o_time_parse_rfc1123(value.base, value.len, &tm) != 0)
        return -1;
    return (int64_t)timegm(&tm);
}

int64_t lg_cache_freshness_lifetime(const lg_cache_control_t *cc, const h2o_iovec_t *date,
                                    const h2o_iovec_t *expires, int64_t response_time)
{
    if (cc->s_maxage >= 0)
        return cc->s_maxage;
    if (cc->max_age >= 0)
        return cc->max_age;
    if (expires == NULL)
        return -1;
    int64_t exp = lg_cache_parse_http_date(*expires);
    if (exp < 0)
        return 0; /* RFC 9111 5.3: an invalid Expires is a time in the past */
    int64_t base = date != NULL ? lg_cache_parse_http_date(*date) : -1;
    if (base < 0)
        base = response_time;
    return exp > base ? exp - base : 0;
}

int lg_cache_status_cacheable(int status)
{
    switch (status) {
    case 200: case 203: case 204: case 206: case 300: case 301: case 308:
    case 404: case 405: case 410: case 414: case 451: case 501:
        return 1;
    default:
        return 0;
    }
}

int lg_cache_request_cacheable(const lg_request_head_t *req, int ignore_request_cc)
{
    static const char *const refused[] = {"authorization", "if-match", "if-none-match", "if-modified-since",
                                          "if-unmodified-since", "if-range"};
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) &&
        !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return 0;
    if (req->path.len == 0 || req->authority.len == 0)
        return 0;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); ++i)
        if (lg_headers_find(&req->headers, refused[i], strlen(refused[i]), 0) >= 0)
            return 0;
    if (!ignore_request_cc) {
        lg_cache_control_t cc;
        lg_cache_control_from_headers(&cc, &req->headers);
        if (cc.no_store)
            return 0;
    }
    return 1;
}

/* ---- keys ------------------------------------------------------------------------------------- */

static int param_matches(const lg_query_matcher_t *m, size_t n, h2o_iovec_t param, h2o_mem_pool_t *pool)
{
    if (n == 0)
        return 0;
    /* the matchers read a path's query: give them this one parameter as one */
    char *q = h2o_mem_alloc_pool(pool, param.len + 1);
    q[0] = '?';
    memcpy(q + 1, param.base, param.len);
    h2o_iovec_t path = h2o_iovec_init(q, param.len + 1);
    for (size_t i = 0; i < n; ++i)
        if (lg_query_matcher_match(&m[i], path))
            return 1;
    return 0;
}

h2o_iovec_t lg_cache_key(const lg_cache_key_params_t *p, const lg_request_head_t *req, h2o_mem_pool_t *pool)
{
    const char *qm = memchr(req->path.base, '?', req->path.len);
    size_t path_len = qm != NULL ? (size_t)(qm - req->path.base) : req->path.len;
    size_t cap = req->scheme.len + req->authority.len + req->path.len + 4;
    char *buf = h2o_mem_alloc_pool(pool, cap), *w = buf;
    if (!p->exclude_scheme) {
        memcpy(w, req->scheme.base, req->scheme.len);
        w += req->scheme.len;
    }
    *w++ = '\n';
    if (!p->exclude_host) {
        for (size_t i = 0; i < req->authority.len; ++i)
            *w++ = h2o_tolower(req->authority.base[i]);
    }
    *w++ = '\n';
    memcpy(w, req->path.base, path_len);
    w += path_len;
    *w++ = '\n';
    if (qm != NULL) {
        const char *q = qm + 1, *end = req->path.base + req->path.len;
        if (p->n_included == 0 && p->n_excluded == 0) {
            memcpy(w, q, (size_t)(end - q));
            w += end - q;
        } else {
            int first = 1;
            while (q < end) {
                const char *amp = memchr(q, '&', (size_t)(end - q));
                const char *pe = amp != NULL ? amp : end;
                h2o_iovec_t param = h2o_iovec_init(q, (size_t)(pe - q));
                int keep = param.len != 0 && (p->n_included == 0 || param_matches(p->included, p->n_included, param, pool)) &&
                           !param_matches(p->excluded, p->n_excluded, param, pool);
                if (keep) {
                    if (!first)
                        *w++ = '&';
                    memcpy(w, param.base, param.len);
                    w += param.len;
                    first = 0;
                }
                q = pe + (amp != NULL);
            }
        }
    }
    return h2o_iovec_init(buf, (size_t)(w - buf));
}

h2o_iovec_t lg_cache_variant_key(h2o_iovec_t base, h2o_iovec_t vary, const lg_headers_t *req, h2o_mem_pool_t *pool)
{
    size_t cap = base.len + 5 + 3 * vary.len + 3; /* per name: '\n', '=' and at most one comma */
    for (size_t i = 0; i < req->size; ++i)
        cap += req->entries[i].value.len + 1;
    char *buf = h2o_mem_alloc_pool(pool, cap), *w = buf;
    memcpy(w, base.base, base.len);
    w += base.len;
    memcpy(w, "\nvary", 5);
    w += 5;
    const char *p = vary.base, *end = vary.base + vary.len;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *ne = comma != NULL ? comma : end;
        *w++ = '\n';
        memcpy(w, p, (size_t)(ne - p));
        w += ne - p;
        *w++ = '=';
        int first = 1;
        for (ssize_t i = lg_headers_find(req, p, (size_t)(ne - p), 0); i >= 0;
             i = lg_headers_find(req, p, (size_t)(ne - p), (size_t)i + 1)) {
            if (!first)
                *w++ = ',';
            memcpy(w, req->entries[i].value.base, req->entries[i].value.len);
            w += req->entries[i].value.len;
            first = 0;
        }
        p = ne + (comma != NULL);
    }
    return h2o_iovec_init(buf, (size_t)(w - buf));
}

int lg_cache_vary_names(const lg_headers_t *resp, const lg_string_matcher_t *allowed, size_t n_allowed,
                        h2o_mem_pool_t *pool, h2o_iovec_t *out)
{
    size_t cap = 0;
    for (ssize_t i = lg_headers_find(resp, "vary", 4, 0); i >= 0; i = lg_headers_find(resp, "vary", 4, (size_t)i + 1))
        cap += resp->entries[i].value.len + 1;
    *out = h2o_iovec_init(NULL, 0);
    if (cap == 0)
        return 0;
    char *buf = h2o_mem_alloc_pool(pool, cap), *w = buf;
    for (ssize_t i = lg_headers_find(resp, "vary", 4, 0); i >= 0; i = lg_headers_find(resp, "vary", 4, (size_t)i + 1)) {
        const char *p = resp->entries[i].value.base, *end = p + resp->entries[i].value.len;
        while (p < end) {
            while (p < end && (is_blank(*p) || *p == ','))
                ++p;
            const char *name = p;
            while (p < end && *p != ',' && !is_blank(*p))
                ++p;
            size_t len = (size_t)(p - name);
            while (p < end && *p != ',')
                ++p;
            if (len == 0)
                continue;
            if (len == 1 && name[0] == '*')
                return -1;
            char *lc = w + (w != buf);
            for (size_t k = 0; k < len; ++k)
                lc[k] = h2o_tolower(name[k]);
            int ok = 0;
            for (size_t k = 0; !ok && k < n_allowed; ++k)
                ok = lg_string_matcher_match(&allowed[k], lc, len);
            if (!ok)
                return -1;
            if (w != buf)
                *w = ',';
            w = lc + len;
        }
    }
    *out = h2o_iovec_init(buf, (size_t)(w - buf));
    return 0;
}
