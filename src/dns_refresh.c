/*
 * Answer sets and refresh delays for DNS discovery: see dns_refresh.h.
 */
#include "dns_refresh.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
    return x->sin6_port == y->sin6_port && memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static int contains(const lg_dns_addrs_t *a, const struct sockaddr_storage *ss)
{
    for (size_t i = 0; i < a->n; ++i)
        if (same_addr(&a->v[i], ss))
            return 1;
    return 0;
}

void lg_dns_addrs_add(lg_dns_addrs_t *a, const struct sockaddr *sa, uint16_t port, uint32_t ttl_s)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (void *)&ss;
        memcpy(in, sa, sizeof(*in));
        in->sin_port = htons(port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (void *)&ss;
        memcpy(in6, sa, sizeof(*in6));
        in6->sin6_port = htons(port);
    } else {
        return;
    }
    if (contains(a, &ss))
        return;
    struct sockaddr_storage *v = realloc(a->v, (a->n + 1) * sizeof(*v));
    if (v == NULL)
        lg_fatal("out of memory");
    a->v = v;
    a->v[a->n] = ss;
    a->min_ttl_s = a->n == 0 || ttl_s < a->min_ttl_s ? ttl_s : a->min_ttl_s;
    ++a->n;
}

int lg_dns_addrs_same_set(const lg_dns_addrs_t *a, const lg_dns_addrs_t *b)
{
    /* Both lists are free of duplicates, so equal sizes and inclusion one way is equality. */
    if (a->n != b->n)
        return 0;
    for (size_t i = 0; i < a->n; ++i)
        if (!contains(b, &a->v[i]))
            return 0;
    return 1;
}

void lg_dns_addrs_copy(lg_dns_addrs_t *dst, const lg_dns_addrs_t *src)
{
    lg_dns_addrs_clear(dst);
    if (src->n == 0)
        return;
    if ((dst->v = malloc(src->n * sizeof(*dst->v))) == NULL)
        lg_fatal("out of memory");
    memcpy(dst->v, src->v, src->n * sizeof(*dst->v));
    dst->n = src->n;
    dst->min_ttl_s = src->min_ttl_s;
}

void lg_dns_addrs_clear(lg_dns_addrs_t *a)
{
    free(a->v);
    *a = (lg_dns_addrs_t){0};
}

uint64_t lg_dns_refresh_after_success(lg_dns_refresh_t *r, uint32_t ttl_s, uint32_t rnd)
{
    r->failures = 0;
    uint64_t ms = r->refresh_ms;
    if (r->respect_ttl && ttl_s != 0)
        ms = (uint64_t)ttl_s * 1000;
    if (r->jitter_ms != 0)
        ms += rnd % r->jitter_ms;
    return ms;
}

uint64_t lg_dns_refresh_after_failure(lg_dns_refresh_t *r, uint32_t rnd)
{
    if (r->failure_base_ms == 0)
        return r->refresh_ms;
    uint64_t max = r->failure_max_ms != 0 ? r->failure_max_ms : r->failure_base_ms * 10;
    uint64_t ceiling = r->failure_base_ms;
    for (unsigned i = 0; i < r->failures && ceiling < max; ++i)
        ceiling *= 2;
    if (ceiling > max)
        ceiling = max;
    else
        ++r->failures; /* the streak stops growing once the ceiling is reached */
    uint64_t half = ceiling / 2;
    return ceiling - half + (half != 0 ? rnd % (half + 1) : 0);
}
