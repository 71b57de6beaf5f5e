/*
 * An asynchronous DNS resolver: one c-ares channel driven by the main thread's h2o loop (its
 * sockets watched by the loop, its query timeouts on deadline timers; architecture-notes §5).
 * What it is for: turning a name into addresses for DNS clusters, honouring /etc/hosts and
 * /etc/resolv.conf unless resolvers are configured. Not for: deciding what the answers mean for
 * clusters (dns_cluster.c), nor the request path (workers never resolve).
 *
 * The dns.cares.* stats (resolve_total, pending_resolutions, not_found, timeouts,
 * get_addr_failure) are counted over every resolver. Main thread only.
 */
#ifndef LG_DNS_RESOLVER_H
#define LG_DNS_RESOLVER_H

#include <stdint.h>

#include "deadline_timer.h"
#include "dns_refresh.h"
#include "error.h"

typedef struct st_lg_dns_resolver_t lg_dns_resolver_t;

/* Envoy's DnsLookupFamily, whichever enum it came from. */
typedef enum en_lg_dns_family_t {
    LG_DNS_AUTO,         /* IPv6, falling back to IPv4 when there is none */
    LG_DNS_V4_ONLY,
    LG_DNS_V6_ONLY,
    LG_DNS_V4_PREFERRED, /* IPv4, falling back to IPv6 */
    LG_DNS_ALL,          /* both */
} lg_dns_family_t;

typedef struct st_lg_dns_resolver_config_t {
    char *servers_csv;  /* "127.0.0.1:5353,[::1]:53" or NULL for /etc/resolv.conf */
    int servers_as_fallback; /* use_resolvers_as_fallback */
    int use_tcp;             /* dns_resolver_options.use_tcp_for_dns_lookups */
    int no_default_search_domain;
} lg_dns_resolver_config_t;

typedef enum en_lg_dns_status_t {
    LG_DNS_ANSWERED, /* addresses, possibly none for the family asked */
    LG_DNS_NO_NAME,  /* NXDOMAIN or no record of the family */
    LG_DNS_FAILED,   /* timeout, refused, server failure, bad reply */
} lg_dns_status_t;

/** Called once per lg_dns_resolve, never inside it; `addrs` (ports set) is lent for the call. */
typedef void (*lg_dns_resolve_cb)(void *ctx, lg_dns_status_t status, const lg_dns_addrs_t *addrs);

/** A channel with `config` on `rungs`' loop; NULL with err when c-ares refuses the config. */
lg_dns_resolver_t *lg_dns_resolver_new(lg_deadline_rungs_t *rungs, const lg_dns_resolver_config_t *config,
                                       lg_error_t *err);
/** Resolves `name` for `family`, calling `cb(ctx, ...)` later, from the loop. `ctx` must stay valid
 * until then or until the resolver is freed (which drops pending queries without calling back). */
void lg_dns_resolve(lg_dns_resolver_t *r, const char *name, uint16_t port, lg_dns_family_t family,
                    lg_dns_resolve_cb cb, void *ctx);
void lg_dns_resolver_free(lg_dns_resolver_t *r);

#endif
