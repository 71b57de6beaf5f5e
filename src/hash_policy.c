/*
 * Request hashes for RING_HASH and MAGLEV: see hash_policy.h. The inputs are hashed as Envoy hashes
 * them, so the same request reaches the same host behind a legate as behind an Envoy with the same
 * hosts: header values (sorted, chained through the seed), the cookie or query value alone, the
 * source address without its port.
 */
#include "hash_policy.h"

#include <stdlib.h>
#include <string.h>

#include "lb_hash.h"
#include "regex.h"
#include "stream_info.h"

static int compare_iovecs(const void *a, const void *b)
{
    const h2o_iovec_t *x = a, *y = b;
    int c = memcmp(x->base, y->base, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Pseudo-headers are kept in the request head, not among its fields. */
static int is(h2o_iovec_t name, const char *s)
{
    return name.len == strlen(s) && memcmp(name.base, s, name.len) == 0;
}

static int pseudo_header(const lg_request_head_t *req, h2o_iovec_t name, h2o_iovec_t *out)
{
    if (is(name, ":authority"))
        *out = req->authority;
    else if (is(name, ":path"))
        *out = req->path;
    else if (is(name, ":method"))
        *out = req->method;
    else if (is(name, ":scheme"))
        *out = req->scheme;
    else
        return 0;
    return 1;
}

/* Every value of the header, rewritten when the policy says so, sorted so field order does not
 * matter, each hashed with the previous hash as seed. */
static int hash_header(const lg_hash_policy_t *p, const lg_request_head_t *req, h2o_mem_pool_t *pool, uint64_t *out)
{
    size_t n = 0;
    h2o_iovec_t one;
    int pseudo = p->name.len != 0 && p->name.base[0] == ':';
    if (pseudo) {
        if (!pseudo_header(req, p->name, &one) || one.len == 0)
            return 0;
        n = 1;
    } else {
        for (ssize_t at = lg_headers_find(&req->headers, p->name.base, p->name.len, 0); at >= 0;
             at = lg_headers_find(&req->headers, p->name.base, p->name.len, (size_t)at + 1))
            ++n;
        if (n == 0)
            return 0;
    }
    h2o_iovec_t *values = h2o_mem_alloc_pool(pool, sizeof(*values) * n);
    if (pseudo) {
        values[0] = one;
    } else {
        size_t i = 0;
        for (ssize_t at = lg_headers_find(&req->headers, p->name.base, p->name.len, 0); at >= 0;
             at = lg_headers_find(&req->headers, p->name.base, p->name.len, (size_t)at + 1))
            values[i++] = req->headers.entries[at].value;
    }
    for (size_t i = 0; p->regex != NULL && i < n; ++i) {
        size_t len;
        char *s = lg_regex_replace_all(p->regex, values[i].base, values[i].len, p->substitution.base, pool, &len);
        values[i] = h2o_iovec_init(s, len);
    }
    qsort(values, n, sizeof(*values), compare_iovecs);
    uint64_t h = 0;
    for (size_t i = 0; i < n; ++i)
        h = lg_xxh64(values[i].base, values[i].len, h);
    *out = h;
    return 1;
}

/* The first cookie named `name` in the Cookie fields, quotes around its value removed; an empty
 * value counts as absent, as in Envoy. */
static int cookie_value(const lg_request_head_t *req, h2o_iovec_t name, h2o_iovec_t *out)
{
    for (ssize_t at = lg_headers_find(&req->headers, "cookie", 6, 0); at >= 0;
         at = lg_headers_find(&req->headers, "cookie", 6, (size_t)at + 1)) {
        h2o_iovec_t v = req->headers.entries[at].value;
        const char *s = v.base, *end = v.base + v.len;
        while (s < end) {
            const char *semi = memchr(s, ';', (size_t)(end - s)), *pe = semi != NULL ? semi : end;
            while (s < pe && *s == ' ')
                ++s;
            const char *eq = memchr(s, '=', (size_t)(pe - s));
            if (eq != NULL && (size_t)(eq - s) == name.len && memcmp(s, name.base, name.len) == 0) {
                const char *vb = eq + 1, *ve = pe;
                if (ve - vb >= 2 && vb[0] == '"' && ve[-1] == '"')
                    ++vb, --ve;
                *out = h2o_iovec_init(vb, (size_t)(ve - vb));
                return out->len != 0;
            }
            s = pe + 1;
        }
    }
    return 0;
}

static int evaluate(const lg_hash_policy_t *p, const lg_request_head_t *req, const struct sockaddr_storage *remote,
                    h2o_mem_pool_t *pool, uint64_t *out)
{
    h2o_iovec_t v;
    switch (p->kind) {
    case LG_HASH_POLICY_HEADER:
        return hash_header(p, req, pool, out);
    case LG_HASH_POLICY_COOKIE:
        if (!cookie_value(req, p->name, &v))
            return 0;
        break;
    case LG_HASH_POLICY_QUERY_PARAMETER:
        if (!lg_query_value(req->path, p->name, &v))
            return 0;
        break;
    case LG_HASH_POLICY_SOURCE_IP: {
        if (remote == NULL || (remote->ss_family != AF_INET && remote->ss_family != AF_INET6))
            return 0;
        char buf[64];
        lg_sockaddr_to_string(remote, buf, sizeof(buf), 0);
        *out = lg_xxh64(buf, strlen(buf), 0);
        return 1;
    }
    default:
        return 0;
    }
    *out = lg_xxh64(v.base, v.len, 0);
    return 1;
}

int lg_hash_policy_generate(const lg_hash_policy_t *policies, size_t n, const lg_request_head_t *req,
                            const struct sockaddr_storage *remote, h2o_mem_pool_t *pool, uint64_t *out)
{
    int have = 0;
    uint64_t hash = 0;
    for (size_t i = 0; i < n; ++i) {
        uint64_t h;
        if (evaluate(&policies[i], req, remote, pool, &h)) {
            /* Rotating what came before keeps two equal policies from cancelling out. */
            hash = (have ? (hash << 1) | (hash >> 63) : 0) ^ h;
            have = 1;
        }
        if (policies[i].terminal && have)
            break;
    }
    *out = hash;
    return have;
}
