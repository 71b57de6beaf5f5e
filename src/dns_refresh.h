/*
 * The pure parts of DNS discovery, apart so they can be tested without a resolver: an answer's
 * addresses as a list, whether two answers hold the same set (a new snapshot is published only
 * when it changed), and when to ask again (dns_refresh_rate, respect_dns_ttl, dns_jitter, and the
 * jittered exponential backoff of dns_failure_refresh_rate). No I/O, no globals; any thread.
 */
#ifndef LG_DNS_REFRESH_H
#define LG_DNS_REFRESH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* The addresses of one answer, in answer order, without duplicates; ports already set. */
typedef struct st_lg_dns_addrs_t {
    struct sockaddr_storage *v;
    size_t n;
    uint32_t min_ttl_s; /* smallest TTL over the addresses; 0 for /etc/hosts and numeric results */
} lg_dns_addrs_t;

/** Appends `sa` (AF_INET or AF_INET6; other families are ignored) with `port`, unless present. */
void lg_dns_addrs_add(lg_dns_addrs_t *a, const struct sockaddr *sa, uint16_t port, uint32_t ttl_s);
/** Whether `a` and `b` hold the same addresses, in any order. */
int lg_dns_addrs_same_set(const lg_dns_addrs_t *a, const lg_dns_addrs_t *b);
/** Copies `src` into `dst` (which is cleared first). */
void lg_dns_addrs_copy(lg_dns_addrs_t *dst, const lg_dns_addrs_t *src);
void lg_dns_addrs_clear(lg_dns_addrs_t *a);

/* When to resolve again. Times in ms; failure_base_ms == 0 means no dns_failure_refresh_rate, so
 * failures retry at refresh_ms as Envoy does. */
typedef struct st_lg_dns_refresh_t {
    uint64_t refresh_ms;       /* dns_refresh_rate: 5000 */
    uint64_t failure_base_ms;  /* dns_failure_refresh_rate.base_interval */
    uint64_t failure_max_ms;   /* .max_interval: 10 x base when unset */
    uint64_t jitter_ms;        /* dns_jitter: 0 */
    int respect_ttl;           /* respect_dns_ttl */
    unsigned failures;         /* consecutive failed lookups: the backoff's exponent */
} lg_dns_refresh_t;

/** The delay after a good answer with smallest TTL `ttl_s`; resets the failure streak. `rnd` is
 * any random number (jitter). */
uint64_t lg_dns_refresh_after_success(lg_dns_refresh_t *r, uint32_t ttl_s, uint32_t rnd);
/** The delay after a failed or empty lookup: base x 2^streak capped at max, jittered into its
 * upper half so retries spread without coming back at once. */
uint64_t lg_dns_refresh_after_failure(lg_dns_refresh_t *r, uint32_t rnd);

#endif
