/*
 * A request's hash for the consistent-hashing load balancers, from its route's hash_policy list
 * (lg_hash_policy_t, parsed by route_table.c): Envoy's HashPolicyImpl::generateHash. Each policy
 * that finds its input (header, cookie, query parameter, source IP) contributes the xxHash64 of
 * it; contributions combine by rotating the hash so far and XORing; a terminal policy that has a
 * hash ends the list. Not here: generating cookies (policies with a ttl hash only a cookie that is
 * present) and filter_state (refused by the route table).
 */
#ifndef LG_HASH_POLICY_H
#define LG_HASH_POLICY_H

#include <stdint.h>
#include <sys/socket.h>

#include <h2o/memory.h>

#include "http_message.h"
#include "route_table.h"

/**
 * Computes the hash of `req` under policies[0..n). `remote` is the downstream peer (for
 * connection_properties.source_ip); regex rewrites are made in `pool`. Returns 1 with *out set
 * when some policy produced a hash, 0 when none did. Worker thread.
 */
int lg_hash_policy_generate(const lg_hash_policy_t *policies, size_t n, const lg_request_head_t *req,
                            const struct sockaddr_storage *remote, h2o_mem_pool_t *pool, uint64_t *out);

#endif
