/*
 * The jwt_authn filter per request: picks the requirement (per-route config, else the first rule
 * whose RouteMatch accepts the request), finds the tokens each provider reads (headers with their
 * value_prefix, query parameters, cookies; by default `Authorization: Bearer` and `access_token`),
 * verifies them, and either lets the request on (with the payload and claims forwarded as headers
 * and the token stripped unless `forward`) or answers as Envoy does: 401 (403 for audiences) with
 * jwt_verify_lib's text as the body and `www-authenticate: Bearer realm="<url>"`, plus
 * `error="invalid_token"` unless the token was missing.
 *
 * With local keys the whole check runs inside decode_headers. A remote_jwks provider whose keys the
 * worker does not have yet makes the walk report "pending": the stream queues on the fetch (one per
 * provider, jwks_cache.c), stops, and walks the requirement again from the start once every fetch it
 * waits for has ended; a provider whose fetch ended without keys then fails with "Jwks remote fetch
 * is failed". Header changes are collected while the requirement tree is walked and applied only
 * when it passes, so one branch's token stripping cannot hide a token from another branch, and a
 * walk that ends pending changes nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <h2o/string_.h>

#include "envoy/extensions/filters/http/jwt_authn/v3/config.pb-c.h"
#include "filters/jwt_authn/jwt_authn.h"
#include "worker.h"

/* Envoy's Http::Utility::buildOriginalUri bound on the path in the realm. */
#define MAX_REALM_PATH 256
/* More tokens than this in one request is refused ("Found multiple Jwt tokens") rather than
 * verified one by one: Envoy has no bound, but a query string of thousands of access_token
 * parameters would otherwise buy that many verifications. Ignoring the extra ones is no option,
 * since they would reach the upstream unverified. */
#define MAX_TOKENS 16

/* A token found in the request, and where (header name, for stripping). */
typedef struct st_found_t {
    h2o_iovec_t token;
    h2o_iovec_t header; /* empty when from a query parameter or a cookie */
    const lg_jwt_provider_t *provider;
} found_t;

typedef struct st_found_list_t {
    found_t *entries;
    size_t size, capacity;
} found_list_t;

/* Not a jwt_verify_lib status: the walk needs keys a fetch is bringing. */
#define JWT_PENDING ((lg_jwt_status_t)1000)

typedef struct st_jwt_state_t jwt_state_t;

/* The stream's wait for one remote provider. */
typedef struct st_provider_wait_t {
    lg_jwks_waiter_t waiter;
    jwt_state_t *st;
    int ended; /* its fetch ended: use what the cache has, never wait again */
} provider_wait_t;

struct st_jwt_state_t {
    lg_filter_t *f;
    const lg_jwt_requirement_t *req;
    lg_jwks_cache_t *cache;
    provider_wait_t *waits; /* by provider index, from the pool when first needed */
    size_t n_waiting;
};

typedef struct st_verify_t {
    jwt_state_t *st;
    const lg_jwt_authn_config_t *cfg;
    lg_request_head_t *req;
    h2o_mem_pool_t *pool;
    int64_t now;
    lg_headers_t set;    /* headers to set (replacing what the client sent) once the check passes */
    lg_headers_t remove; /* headers to remove (names only) */
    int clear_route;
} verify_t;

static void found_push(verify_t *v, found_list_t *l, found_t f)
{
    if (l->size == l->capacity) {
        size_t cap = l->capacity != 0 ? l->capacity * 2 : 4;
        found_t *n = h2o_mem_alloc_pool(v->pool, cap * sizeof(*n));
        if (l->size != 0)
            memcpy(n, l->entries, l->size * sizeof(*n));
        l->entries = n;
        l->capacity = cap;
    }
    l->entries[l->size++] = f;
}

/* ---- extraction ---------------------------------------------------------------------------- */

static int is_jwt_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
}

/* After a value_prefix, the token is the first run of base64url characters and dots (Envoy's
 * extractJWT): "Bearer  abc.def.ghi, x" yields "abc.def.ghi". */
static h2o_iovec_t token_after(h2o_iovec_t value, size_t from)
{
    size_t b = from;
    while (b < value.len && !is_jwt_char(value.base[b]))
        ++b;
    if (b == value.len)
        return h2o_iovec_init(value.base + from, value.len - from);
    size_t e = b;
    while (e < value.len && is_jwt_char(value.base[e]))
        ++e;
    return h2o_iovec_init(value.base + b, e - b);
}

static const char *find_bytes(const char *hay, size_t hlen, const char *needle, size_t nlen)
{
    if (nlen == 0)
        return hay;
    for (size_t i = 0; i + nlen <= hlen; ++i)
        if (memcmp(hay + i, needle, nlen) == 0)
            return hay + i;
    return NULL;
}

static void extract_headers(verify_t *v, const lg_jwt_provider_t *p, found_list_t *out)
{
    for (size_t i = 0; i < p->n_headers; ++i) {
        const lg_jwt_header_source_t *src = &p->headers[i];
        for (ssize_t at = lg_headers_find(&v->req->headers, src->name.base, src->name.len, 0); at >= 0;
             at = lg_headers_find(&v->req->headers, src->name.base, src->name.len, (size_t)at + 1)) {
            h2o_iovec_t value = v->req->headers.entries[at].value;
            h2o_iovec_t token = value;
            if (src->prefix.len != 0) {
                const char *pos = find_bytes(value.base, value.len, src->prefix.base, src->prefix.len);
                if (pos == NULL)
                    continue;
                token = token_after(value, (size_t)(pos - value.base) + src->prefix.len);
            }
            found_push(v, out, (found_t){token, src->name, p});
        }
    }
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Query values are percent-decoded (as Envoy's parseAndDecodeQueryString); keys compare raw. */
static h2o_iovec_t percent_decode(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *d = h2o_mem_alloc_pool(pool, len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; ++i) {
        int hi, lo;
        if (s[i] == '%' && i + 2 < len && (hi = hex_value(s[i + 1])) >= 0 && (lo = hex_value(s[i + 2])) >= 0) {
            d[n++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            d[n++] = s[i];
        }
    }
    return h2o_iovec_init(d, n);
}

static void extract_params(verify_t *v, const lg_jwt_provider_t *p, found_list_t *out)
{
    if (p->n_params == 0)
        return;
    h2o_iovec_t path = v->req->path;
    const char *q = memchr(path.base, '?', path.len);
    if (q == NULL)
        return;
    const char *end = path.base + path.len, *hash = memchr(q, '#', (size_t)(end - q));
    if (hash != NULL)
        end = hash;
    for (const char *s = q + 1; s < end;) {
        const char *amp = memchr(s, '&', (size_t)(end - s));
        const char *pe = amp != NULL ? amp : end;
        const char *eq = memchr(s, '=', (size_t)(pe - s));
        size_t klen = (size_t)((eq != NULL ? eq : pe) - s);
        for (size_t i = 0; i < p->n_params; ++i) {
            if (strlen(p->params[i]) == klen && memcmp(p->params[i], s, klen) == 0) {
                h2o_iovec_t value = eq != NULL ? percent_decode(v->pool, eq + 1, (size_t)(pe - eq - 1)) : h2o_iovec_init("", 0);
                found_push(v, out, (found_t){value, h2o_iovec_init(NULL, 0), p});
            }
        }
        s = pe + 1;
    }
}

static void extract_cookies(verify_t *v, const lg_jwt_provider_t *p, found_list_t *out)
{
    if (p->n_cookies == 0)
        return;
    for (ssize_t at = lg_headers_find(&v->req->headers, "cookie", 6, 0); at >= 0;
         at = lg_headers_find(&v->req->headers, "cookie", 6, (size_t)at + 1)) {
        h2o_iovec_t value = v->req->headers.entries[at].value;
        const char *s = value.base, *end = value.base + value.len;
        while (s < end) {
            const char *semi = memchr(s, ';', (size_t)(end - s));
            const char *pe = semi != NULL ? semi : end;
            while (s < pe && (*s == ' ' || *s == '\t'))
                ++s;
            const char *eq = memchr(s, '=', (size_t)(pe - s));
            if (eq != NULL) {
                size_t klen = (size_t)(eq - s);
                const char *vb = eq + 1, *ve = pe;
                while (ve > vb && (ve[-1] == ' ' || ve[-1] == '\t'))
                    --ve;
                if (ve - vb >= 2 && vb[0] == '"' && ve[-1] == '"')
                    ++vb, --ve;
                for (size_t i = 0; i < p->n_cookies; ++i)
                    if (strlen(p->cookies[i]) == klen && memcmp(p->cookies[i], s, klen) == 0)
                        found_push(v, out, (found_t){h2o_iovec_init(vb, (size_t)(ve - vb)), h2o_iovec_init(NULL, 0), p});
            }
            s = pe + 1;
        }
    }
}

static void extract(verify_t *v, const lg_jwt_provider_t *p, found_list_t *out)
{
    extract_headers(v, p, out);
    extract_params(v, p, out);
    extract_cookies(v, p, out);
}

/* ---- one token ------------------------------------------------------------------------------ */

/* jwt_verify_lib's CheckAudience: configured audiences compare without a scheme and trailing slash. */
static h2o_iovec_t audience_core(const char *s)
{
    size_t len = strlen(s);
    if (len >= 8 && strncmp(s, "https://", 8) == 0)
        s += 8, len -= 8;
    else if (len >= 7 && strncmp(s, "http://", 7) == 0)
        s += 7, len -= 7;
    if (len != 0 && s[len - 1] == '/')
        --len;
    return h2o_iovec_init(s, len);
}

static int audience_allowed(char *const *allowed, size_t n_allowed, json_t *aud)
{
    if (n_allowed == 0)
        return 1;
    size_t n = aud == NULL ? 0 : json_is_array(aud) ? json_array_size(aud) : 1;
    for (size_t i = 0; i < n; ++i) {
        h2o_iovec_t a = audience_core(json_string_value(json_is_array(aud) ? json_array_get(aud, i) : aud));
        for (size_t j = 0; j < n_allowed; ++j) {
            h2o_iovec_t b = audience_core(allowed[j]);
            if (a.len == b.len && memcmp(a.base, b.base, a.len) == 0)
                return 1;
        }
    }
    return 0;
}

static int header_safe(const char *s, size_t len)
{
    for (size_t i = 0; i < len; ++i)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 0;
    return 1;
}

/* A claim as a header value, as Envoy's addJWTClaimToHeader writes it; empty when it has none. */
static h2o_iovec_t claim_value(h2o_mem_pool_t *pool, json_t *payload, const char *path)
{
    json_t *v = payload;
    char name[256];
    for (const char *s = path; v != NULL;) {
        const char *dot = strchr(s, '.');
        size_t len = dot != NULL ? (size_t)(dot - s) : strlen(s);
        if (len >= sizeof(name) || !json_is_object(v))
            return h2o_iovec_init(NULL, 0);
        memcpy(name, s, len);
        name[len] = '\0';
        v = json_object_get(v, name);
        if (dot == NULL)
            break;
        s = dot + 1;
    }
    char buf[64];
    if (json_is_string(v)) {
        return h2o_strdup(pool, json_string_value(v), json_string_length(v));
    }
    if (json_is_integer(v)) {
        snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
        return h2o_strdup(pool, buf, SIZE_MAX);
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 18446744073709551615.0 && d == (double)(uint64_t)d)
            snprintf(buf, sizeof(buf), "%llu", (unsigned long long)d);
        else
            snprintf(buf, sizeof(buf), "%f", d);
        return h2o_strdup(pool, buf, SIZE_MAX);
    }
    if (json_is_boolean(v))
        return h2o_strdup(pool, json_is_true(v) ? "true" : "false", SIZE_MAX);
    if (json_is_object(v) || json_is_array(v)) {
        /* Structured claims travel as base64 (standard, padded) of their JSON. */
        char *js = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (js == NULL)
            return h2o_iovec_init(NULL, 0);
        size_t jl = strlen(js);
        char *out = h2o_mem_alloc_pool(pool, h2o_base64_encode_capacity(jl));
        size_t ol = h2o_base64_encode(out, js, jl, 0);
        free(js);
        return h2o_iovec_init(out, ol);
    }
    return h2o_iovec_init(NULL, 0);
}

/* The verified token's side effects, applied when the whole requirement passes. `cands` are the
 * places the token was found; without `forward` the provider's header locations are stripped. */
static void accept_token(verify_t *v, const lg_jwt_provider_t *p, const lg_jwt_t *jwt, const found_t *const *cands,
                         size_t n_cands)
{
    if (p->forward_payload_header.len != 0) {
        size_t len = jwt->payload_b64.len, pad = p->pad_forward_payload_header ? (4 - len % 4) % 4 : 0;
        char *val = h2o_mem_alloc_pool(v->pool, len + pad);
        memcpy(val, jwt->payload_b64.base, len);
        memset(val + len, '=', pad);
        lg_headers_add(v->pool, &v->set, p->forward_payload_header, h2o_iovec_init(val, len + pad));
    }
    for (size_t i = 0; i < p->n_claim_headers; ++i) {
        h2o_iovec_t val = claim_value(v->pool, jwt->payload, p->claim_headers[i].claim);
        if (val.len == 0 || !header_safe(val.base, val.len))
            continue;
        lg_headers_add(v->pool, &v->set, p->claim_headers[i].header, val);
        if (p->clear_route_cache)
            v->clear_route = 1;
    }
    for (size_t i = 0; i < n_cands; ++i)
        if (!p->forward && cands[i]->provider == p && cands[i]->header.len != 0)
            lg_headers_add(v->pool, &v->remove, cands[i]->header, h2o_iovec_init("", 0));
}

/* Which provider verifies a token: the required one, or (allow_missing*) the first provider that
 * reads this location and has the token's issuer, else the first such one with no issuer. */
static const lg_jwt_provider_t *pick_provider(const found_t *const *cands, size_t n, const char *iss)
{
    for (size_t i = 0; i < n; ++i)
        if (strcmp(cands[i]->provider->issuer, iss) == 0)
            return cands[i]->provider;
    for (size_t i = 0; i < n; ++i)
        if (cands[i]->provider->issuer[0] == '\0')
            return cands[i]->provider;
    return NULL;
}

static void on_keys(lg_jwks_waiter_t *w);

/* The keys for p, or NULL with *st set: pending while a fetch is awaited, else JWKS_FETCH_FAIL. */
static const lg_jwks_t *provider_keys(verify_t *v, const lg_jwt_provider_t *p, lg_jwt_status_t *st)
{
    if (!p->is_remote)
        return &p->jwks;
    jwt_state_t *js = v->st;
    lg_filter_t *f = js->f;
    if (js->cache == NULL)
        js->cache = lg_jwks_cache_get(lg_filter_worker(f), v->cfg, (lg_snapshot_t *)lg_filter_snapshot(f));
    if (js->waits == NULL) {
        js->waits = h2o_mem_alloc_pool(v->pool, v->cfg->n_providers * sizeof(*js->waits));
        memset(js->waits, 0, v->cfg->n_providers * sizeof(*js->waits));
    }
    provider_wait_t *pw = &js->waits[p->index];
    int waiting = 0;
    int queued = pw->waiter.link.next != NULL;
    const lg_jwks_t *keys =
        lg_jwks_cache_keys(js->cache, p, pw->ended || queued ? NULL : &pw->waiter, &waiting);
    if (keys != NULL)
        return keys;
    if (waiting) {
        pw->st = js;
        pw->waiter.cb = on_keys;
        ++js->n_waiting;
    }
    *st = waiting || queued ? JWT_PENDING : LG_JWT_JWKS_FETCH_FAIL;
    return NULL;
}

static lg_jwt_status_t verify_token(verify_t *v, const found_t *const *cands, size_t n_cands,
                                    const lg_jwt_requirement_t *req)
{
    const found_t *f = cands[0];
    lg_jwt_t jwt;
    memset(&jwt, 0, sizeof(jwt));
    lg_jwt_status_t st = lg_jwt_parse(&jwt, f->token.base, f->token.len);
    if (st != LG_JWT_OK)
        goto Exit;
    const lg_jwt_provider_t *p = pick_provider(cands, n_cands, jwt.iss);
    if (p == NULL) {
        st = LG_JWT_JWT_UNKNOWN_ISSUER;
        goto Exit;
    }
    if ((st = lg_jwt_check_time(&jwt, v->now, p->clock_skew_seconds)) != LG_JWT_OK)
        goto Exit;
    int aud_ok = req != NULL && req->has_audiences ? audience_allowed(req->audiences, req->n_audiences, jwt.aud)
                                                   : audience_allowed(p->audiences, p->n_audiences, jwt.aud);
    if (!aud_ok) {
        st = LG_JWT_JWT_AUDIENCE_NOT_ALLOWED;
        goto Exit;
    }
    if (p->has_subjects && !lg_string_matcher_match(&p->subjects, jwt.sub, strlen(jwt.sub))) {
        st = LG_JWT_JWT_VERIFICATION_FAIL;
        goto Exit;
    }
    if (p->has_max_lifetime && (jwt.exp == 0 || (p->max_lifetime_s != INT64_MAX && jwt.exp - v->now >= p->max_lifetime_s))) {
        st = LG_JWT_JWT_EXPIRED;
        goto Exit;
    }
    const lg_jwks_t *keys = provider_keys(v, p, &st);
    if (keys != NULL && (st = lg_jwt_verify(&jwt, keys)) == LG_JWT_OK)
        accept_token(v, p, &jwt, cands, n_cands);
Exit:
    lg_jwt_dispose(&jwt);
    return st;
}

/* ---- requirements ------------------------------------------------------------------------------ */

static lg_jwt_status_t check_provider(verify_t *v, const lg_jwt_requirement_t *r)
{
    found_list_t found = {.entries = NULL};
    extract(v, r->provider, &found);
    if (found.size == 0)
        return LG_JWT_JWT_MISSED;
    if (found.size > MAX_TOKENS)
        return LG_JWT_JWT_MULTIPLE_TOKENS;
    /* Every token must verify: a good token next to a bad one could fool the upstream. */
    for (size_t i = 0; i < found.size; ++i) {
        /* The one candidate is the required provider: a token of another issuer is unknown. */
        const found_t *c = &found.entries[i];
        lg_jwt_status_t st = verify_token(v, &c, 1, r);
        if (st != LG_JWT_OK)
            return st;
    }
    return LG_JWT_OK;
}

/* The same token read by several providers (a shared header, or the same value in two places) is
 * verified once, with every provider that read it as a candidate for its issuer. */
static int same_token(const found_t *a, const found_t *b)
{
    return a->token.len == b->token.len && memcmp(a->token.base, b->token.base, a->token.len) == 0;
}

/* allow_missing and allow_missing_or_failed read every provider's locations. */
static lg_jwt_status_t check_all_providers(verify_t *v, int allow_failed)
{
    found_list_t found = {.entries = NULL};
    for (size_t i = 0; i < v->cfg->n_providers; ++i)
        extract(v, &v->cfg->providers[i], &found);
    if (found.size > MAX_TOKENS * v->cfg->n_providers)
        return allow_failed ? LG_JWT_OK : LG_JWT_JWT_MULTIPLE_TOKENS;
    const found_t **cands = h2o_mem_alloc_pool(v->pool, (found.size != 0 ? found.size : 1) * sizeof(*cands));
    int pending = 0;
    for (size_t i = 0; i < found.size; ++i) {
        size_t first = 0;
        while (!same_token(&found.entries[first], &found.entries[i]))
            ++first;
        if (first != i)
            continue; /* this token was verified with its first occurrence */
        size_t n = 0;
        for (size_t j = i; j < found.size; ++j)
            if (same_token(&found.entries[j], &found.entries[i]))
                cands[n++] = &found.entries[j];
        lg_jwt_status_t st = verify_token(v, cands, n, NULL);
        if (st == JWT_PENDING)
            pending = 1;
        /* Envoy lets a later good token mask an earlier bad one under allow_missing; legate does not. */
        else if (st != LG_JWT_OK && !allow_failed)
            return st;
    }
    return pending ? JWT_PENDING : LG_JWT_OK;
}

static lg_jwt_status_t check(verify_t *v, const lg_jwt_requirement_t *r)
{
    switch (r->kind) {
    case LG_JWT_REQ_PROVIDER:
        return check_provider(v, r);
    case LG_JWT_REQ_ALLOW_MISSING:
        return check_all_providers(v, 0);
    case LG_JWT_REQ_ALLOW_MISSING_OR_FAILED:
        return check_all_providers(v, 1);
    case LG_JWT_REQ_ALL: {
        /* A failure decides at once; a child waiting for keys makes the whole wait. */
        int pending = 0;
        for (size_t i = 0; i < r->n_children; ++i) {
            lg_jwt_status_t st = check(v, &r->children[i]);
            if (st == JWT_PENDING)
                pending = 1;
            else if (st != LG_JWT_OK)
                return st;
        }
        return pending ? JWT_PENDING : LG_JWT_OK;
    }
    case LG_JWT_REQ_ANY: {
        /* Envoy's AnyVerifier: OK if one child is; otherwise the last failure that is not a
         * missing token (a token of another issuer counts as missing), else "missing". */
        lg_jwt_status_t final = LG_JWT_JWT_MISSED;
        int pending = 0;
        for (size_t i = 0; i < r->n_children; ++i) {
            lg_jwt_status_t st = check(v, &r->children[i]);
            if (st == LG_JWT_OK)
                return LG_JWT_OK;
            if (st == JWT_PENDING)
                pending = 1;
            else if (st != LG_JWT_JWT_MISSED && st != LG_JWT_JWT_UNKNOWN_ISSUER)
                final = st;
        }
        return pending ? JWT_PENDING : final;
    }
    }
    return LG_JWT_JWT_VERIFICATION_FAIL;
}

/* ---- the filter ------------------------------------------------------------------------------- */

static lg_stats_cells_t *cells(lg_filter_t *f)
{
    return lg_filter_worker(f)->stats;
}

/* "jwt_authn_access_denied{Jwt_is_missing}": Envoy replaces spaces so access logs stay split. */
static const char *rc_details(h2o_mem_pool_t *pool, const char *msg)
{
    static const char prefix[] = "jwt_authn_access_denied{";
    size_t len = strlen(msg), plen = sizeof(prefix) - 1;
    char *d = h2o_mem_alloc_pool(pool, plen + len + 2);
    memcpy(d, prefix, plen);
    for (size_t i = 0; i < len; ++i)
        d[plen + i] = msg[i] == ' ' || msg[i] == '\t' ? '_' : msg[i];
    d[plen + len] = '}';
    d[plen + len + 1] = '\0';
    return d;
}

static void deny(lg_filter_t *f, const lg_jwt_authn_config_t *cfg, lg_request_head_t *req, lg_jwt_status_t st)
{
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    lg_stats_inc(cells(f), cfg->stats.denied);
    lg_headers_t extra = {.entries = NULL};
    if (!cfg->strip_failure_response) {
        const h2o_iovec_t *proto = lg_headers_get(&req->headers, "x-forwarded-proto", 17);
        h2o_iovec_t scheme = proto != NULL ? *proto : req->scheme;
        size_t plen = req->path.len < MAX_REALM_PATH ? req->path.len : MAX_REALM_PATH;
        size_t cap = scheme.len + req->authority.len + plen + 64;
        char *val = h2o_mem_alloc_pool(pool, cap);
        int n = snprintf(val, cap, "Bearer realm=\"%.*s://%.*s%.*s\"%s", (int)scheme.len, scheme.base,
                         (int)req->authority.len, req->authority.base, (int)plen, req->path.base,
                         st != LG_JWT_JWT_MISSED ? ", error=\"invalid_token\"" : "");
        lg_headers_add(pool, &extra, LG_LIT("www-authenticate"), h2o_iovec_init(val, (size_t)n));
    }
    const char *text = lg_jwt_status_text(st);
    lg_local_reply_t reply = {.status = st == LG_JWT_JWT_AUDIENCE_NOT_ALLOWED ? 403 : 401,
                              .body = cfg->strip_failure_response ? "" : text,
                              .details = rc_details(pool, text),
                              .headers = &extra,
                              .grpc_status = -1};
    lg_filter_send_local_reply_ex(f, &reply);
}

static int is_cors_preflight(const lg_request_head_t *req)
{
    const h2o_iovec_t *origin = lg_headers_get(&req->headers, "origin", 6),
                      *method = lg_headers_get(&req->headers, "access-control-request-method", 29);
    return req->method.len == 7 && memcmp(req->method.base, "OPTIONS", 7) == 0 && origin != NULL && origin->len != 0 &&
           method != NULL && method->len != 0;
}

static lg_filter_headers_status_t allow(lg_filter_t *f, const lg_jwt_authn_config_t *cfg)
{
    lg_stats_inc(cells(f), cfg->stats.allowed);
    return LG_FILTER_HEADERS_CONTINUE;
}

/* Walks the requirement with the keys the worker has. `resumed`: after a wait, where the chain is
 * continued (or the reply sent) through the callbacks instead of by the returned status. */
static lg_filter_headers_status_t run(jwt_state_t *js, lg_request_head_t *head, int resumed)
{
    lg_filter_t *f = js->f;
    const lg_jwt_authn_config_t *cfg = f->config;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    verify_t v = {.st = js, .cfg = cfg, .req = head, .pool = pool, .now = (int64_t)time(NULL)};
    lg_jwt_status_t st = check(&v, js->req);
    if (st == JWT_PENDING && js->n_waiting != 0)
        return LG_FILTER_HEADERS_STOP_ALL_WATERMARK;
    if (st == JWT_PENDING) /* cannot happen: pending always queues a wait; fail closed */
        st = LG_JWT_JWKS_FETCH_FAIL;
    /* A decided walk may have queued waits in branches that no longer matter. */
    for (size_t i = 0; js->waits != NULL && i < cfg->n_providers; ++i)
        lg_jwks_waiter_cancel(&js->waits[i].waiter);
    js->n_waiting = 0;
    if (st != LG_JWT_OK) {
        deny(f, cfg, head, st);
        return LG_FILTER_HEADERS_STOP_ITERATION;
    }
    for (size_t i = 0; i < v.remove.size; ++i)
        lg_headers_remove(&head->headers, v.remove.entries[i].name.base, v.remove.entries[i].name.len);
    for (size_t i = 0; i < v.set.size; ++i)
        lg_headers_remove(&head->headers, v.set.entries[i].name.base, v.set.entries[i].name.len);
    for (size_t i = 0; i < v.set.size; ++i)
        lg_headers_add(pool, &head->headers, v.set.entries[i].name, v.set.entries[i].value);
    if (v.clear_route)
        lg_filter_clear_route(f);
    lg_filter_headers_status_t ret = allow(f, cfg);
    if (resumed)
        lg_filter_continue_decoding(f);
    return ret;
}

/* One awaited fetch ended (the cache unlinked the waiter); the walk restarts after the last one. */
static void on_keys(lg_jwks_waiter_t *w)
{
    provider_wait_t *pw = H2O_STRUCT_FROM_MEMBER(provider_wait_t, waiter, w);
    jwt_state_t *js = pw->st;
    pw->ended = 1;
    if (--js->n_waiting == 0)
        run(js, lg_filter_request(js->f), 1);
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    const lg_jwt_authn_config_t *cfg = f->config;
    h2o_mem_pool_t *pool = lg_filter_pool(f);
    if (cfg->bypass_cors_preflight && is_cors_preflight(head)) {
        lg_stats_inc(cells(f), cfg->stats.cors_preflight_bypassed);
        return allow(f, cfg);
    }
    const lg_jwt_requirement_t *req = NULL;
    const lg_jwt_authn_per_route_t *per_route = lg_filter_per_route_config(f);
    if (per_route != NULL) {
        if (per_route->disabled)
            return allow(f, cfg);
        if ((req = lg_jwt_authn_find_requirement(cfg, per_route->requirement_name)) == NULL) {
            char msg[300], body[340];
            snprintf(msg, sizeof(msg), "Wrong requirement_name: %s", per_route->requirement_name);
            snprintf(body, sizeof(body), "Failed JWT authentication: %s", msg);
            lg_stats_inc(cells(f), cfg->stats.denied);
            lg_filter_send_local_reply(f, 403, body, NULL, rc_details(pool, msg));
            return LG_FILTER_HEADERS_STOP_ITERATION;
        }
    } else {
        uint64_t random = lg_worker_random(lg_filter_worker(f));
        size_t i;
        for (i = 0; i < cfg->n_rules && !lg_route_criteria_match(&cfg->rules[i].match, head, random, pool); ++i)
            ;
        if (i < cfg->n_rules)
            req = cfg->rules[i].requires;
    }
    if (req == NULL)
        return allow(f, cfg);
    jwt_state_t *st = f->state;
    st->f = f;
    st->req = req;
    return run(st, head, 0);
}

static void on_destroy(lg_filter_t *f)
{
    jwt_state_t *st = f->state;
    for (size_t i = 0; st->waits != NULL && i < ((const lg_jwt_authn_config_t *)f->config)->n_providers; ++i)
        lg_jwks_waiter_cancel(&st->waits[i].waiter);
}

const lg_http_filter_ops_t lg_jwt_authn_ops = {
    .name = "envoy.filters.http.jwt_authn",
    .config_descriptor = &envoy__extensions__filters__http__jwt_authn__v3__jwt_authentication__descriptor,
    .per_route_descriptor = &envoy__extensions__filters__http__jwt_authn__v3__per_route_config__descriptor,
    .create_config_ctx = lg_jwt_authn_create_config,
    .destroy_config = lg_jwt_authn_destroy_config,
    .create_per_route_config = lg_jwt_authn_create_per_route_config,
    .destroy_per_route_config = lg_jwt_authn_destroy_per_route_config,
    .on_worker_snapshot = lg_jwks_cache_warm,
    .state_size = sizeof(jwt_state_t),
    .decode_headers = decode_headers,
    .on_destroy = on_destroy,
};
