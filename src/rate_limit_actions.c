/*
 * Route rate_limits actions into descriptors: see rate_limit_actions.h.
 */
#include "rate_limit_actions.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "route_table.h"
#include "xalloc.h"

#define RL(x) ENVOY__CONFIG__ROUTE__V3__RATE_LIMIT__ACTION__##x

typedef enum en_action_kind_t {
    ACT_LITERAL,        /* source_cluster, generic_key: a fixed entry */
    ACT_DESTINATION_CLUSTER,
    ACT_REQUEST_HEADER,
    ACT_REMOTE_ADDRESS,
    ACT_MASKED_REMOTE_ADDRESS,
    ACT_HEADER_MATCH,
    ACT_QUERY_MATCH,
} action_kind_t;

typedef struct st_action_t {
    action_kind_t kind;
    h2o_iovec_t key, value; /* NUL-terminated copies; value: the literal or the match's value */
    h2o_iovec_t header;     /* REQUEST_HEADER: lower case */
    int skip_if_absent;
    int expect_match;
    unsigned v4_mask, v6_mask;
    lg_header_matcher_t *headers;
    lg_query_matcher_t *queries;
    size_t n_matchers;
} action_t;

typedef struct st_limit_t {
    uint32_t stage;
    action_t *actions;
    size_t n_actions;
} limit_t;

struct st_lg_rate_limits_t {
    limit_t *limits;
    size_t n_limits;
};

static h2o_iovec_t dup_str(const char *s, int lower)
{
    size_t len = s != NULL ? strlen(s) : 0;
    char *p = lg_xcalloc(1, len + 1);
    for (size_t i = 0; i < len; ++i)
        p[i] = lower && s[i] >= 'A' && s[i] <= 'Z' ? (char)(s[i] - 'A' + 'a') : s[i];
    return h2o_iovec_init(p, len);
}

static h2o_iovec_t key_or(const char *key, const char *dflt)
{
    return dup_str(key != NULL && key[0] != '\0' ? key : dflt, 0);
}

static void action_dispose(action_t *a)
{
    free(a->key.base);
    free(a->value.base);
    free(a->header.base);
    for (size_t i = 0; i < a->n_matchers; ++i) {
        if (a->headers != NULL)
            lg_header_matcher_dispose(&a->headers[i]);
        if (a->queries != NULL)
            lg_query_matcher_dispose(&a->queries[i]);
    }
    free(a->headers);
    free(a->queries);
}

void lg_rate_limits_free(lg_rate_limits_t *rl)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->n_limits; ++i) {
        for (size_t j = 0; j < rl->limits[i].n_actions; ++j)
            action_dispose(&rl->limits[i].actions[j]);
        free(rl->limits[i].actions);
    }
    free(rl->limits);
    free(rl);
}

static int action_init(action_t *a, const Envoy__Config__Route__V3__RateLimit__Action *pb, const char *local_cluster,
                       lg_path_t *path, lg_error_t *err)
{
    a->expect_match = 1;
    switch (pb->action_specifier_case) {
    case RL(ACTION_SPECIFIER_SOURCE_CLUSTER):
        a->kind = ACT_LITERAL;
        a->key = dup_str("source_cluster", 0);
        a->value = dup_str(local_cluster, 0);
        return 0;
    case RL(ACTION_SPECIFIER_DESTINATION_CLUSTER):
        a->kind = ACT_DESTINATION_CLUSTER;
        a->key = dup_str("destination_cluster", 0);
        return 0;
    case RL(ACTION_SPECIFIER_REQUEST_HEADERS):
        a->kind = ACT_REQUEST_HEADER;
        if (pb->request_headers->header_name == NULL || pb->request_headers->header_name[0] == '\0' ||
            pb->request_headers->descriptor_key == NULL || pb->request_headers->descriptor_key[0] == '\0')
            return lg_error_set(err, "%s.request_headers: header_name and descriptor_key are required", path->buf), -1;
        a->header = dup_str(pb->request_headers->header_name, 1);
        a->key = dup_str(pb->request_headers->descriptor_key, 0);
        a->skip_if_absent = pb->request_headers->skip_if_absent;
        return 0;
    case RL(ACTION_SPECIFIER_REMOTE_ADDRESS):
        a->kind = ACT_REMOTE_ADDRESS;
        a->key = dup_str("remote_address", 0);
        return 0;
    case RL(ACTION_SPECIFIER_MASKED_REMOTE_ADDRESS): {
        const Envoy__Config__Route__V3__RateLimit__Action__MaskedRemoteAddress *m = pb->masked_remote_address;
        a->kind = ACT_MASKED_REMOTE_ADDRESS;
        a->key = dup_str("masked_remote_address", 0);
        a->v4_mask = m->v4_prefix_mask_len != NULL ? m->v4_prefix_mask_len->value : 32;
        a->v6_mask = m->v6_prefix_mask_len != NULL ? m->v6_prefix_mask_len->value : 128;
        if (a->v4_mask > 32 || a->v6_mask > 128)
            return lg_error_set(err, "%s.masked_remote_address: prefix length out of range (v4 <= 32, v6 <= 128)",
                                path->buf), -1;
        return 0;
    }
    case RL(ACTION_SPECIFIER_GENERIC_KEY):
        a->kind = ACT_LITERAL;
        if (pb->generic_key->descriptor_value == NULL || pb->generic_key->descriptor_value[0] == '\0')
            return lg_error_set(err, "%s.generic_key: descriptor_value is required", path->buf), -1;
        a->key = key_or(pb->generic_key->descriptor_key, "generic_key");
        a->value = dup_str(pb->generic_key->descriptor_value, 0);
        return 0;
    case RL(ACTION_SPECIFIER_HEADER_VALUE_MATCH): {
        const Envoy__Config__Route__V3__RateLimit__Action__HeaderValueMatch *m = pb->header_value_match;
        a->kind = ACT_HEADER_MATCH;
        a->key = key_or(m->descriptor_key, "header_match");
        a->value = dup_str(m->descriptor_value, 0);
        a->expect_match = m->expect_match != NULL ? m->expect_match->value : 1;
        a->headers = lg_xcalloc(m->n_headers, sizeof(*a->headers));
        size_t mark = lg_path_push_field(path, "header_value_match");
        for (; a->n_matchers < m->n_headers; ++a->n_matchers) {
            size_t m2 = lg_path_push_field(path, "headers");
            lg_path_push_index(path, a->n_matchers);
            if (lg_header_matcher_init(&a->headers[a->n_matchers], m->headers[a->n_matchers], path, NULL, err) != 0)
                return -1;
            lg_path_pop(path, m2);
        }
        lg_path_pop(path, mark);
        return 0;
    }
    case RL(ACTION_SPECIFIER_QUERY_PARAMETER_VALUE_MATCH): {
        const Envoy__Config__Route__V3__RateLimit__Action__QueryParameterValueMatch *m = pb->query_parameter_value_match;
        a->kind = ACT_QUERY_MATCH;
        a->key = key_or(m->descriptor_key, "query_match");
        a->value = dup_str(m->descriptor_value, 0);
        a->expect_match = m->expect_match != NULL ? m->expect_match->value : 1;
        a->queries = lg_xcalloc(m->n_query_parameters, sizeof(*a->queries));
        size_t mark = lg_path_push_field(path, "query_parameter_value_match");
        for (; a->n_matchers < m->n_query_parameters; ++a->n_matchers) {
            size_t m2 = lg_path_push_field(path, "query_parameters");
            lg_path_push_index(path, a->n_matchers);
            if (lg_query_matcher_init(&a->queries[a->n_matchers], m->query_parameters[a->n_matchers], path, NULL,
                                      err) != 0)
                return -1;
            lg_path_pop(path, m2);
        }
        lg_path_pop(path, mark);
        return 0;
    }
    case RL(ACTION_SPECIFIER_DYNAMIC_METADATA):
    case RL(ACTION_SPECIFIER_METADATA):
        return lg_error_set(err, "%s: metadata actions are not supported by legate (no dynamic metadata)", path->buf),
               -1;
    case RL(ACTION_SPECIFIER_EXTENSION):
        return lg_error_set(err, "%s: extension actions are not supported by legate", path->buf), -1;
    default:
        return lg_error_set(err, "%s: an action needs one of its kinds set", path->buf), -1;
    }
}

lg_rate_limits_t *lg_rate_limits_build(Envoy__Config__Route__V3__RateLimit *const *limits, size_t n,
                                       const char *local_cluster, lg_error_t *err)
{
    lg_rate_limits_t *rl = lg_xcalloc(1, sizeof(*rl));
    rl->limits = lg_xcalloc(n, sizeof(*rl->limits));
    lg_path_t path;
    lg_path_init(&path);
    for (; rl->n_limits < n; ++rl->n_limits) {
        const Envoy__Config__Route__V3__RateLimit *pb = limits[rl->n_limits];
        limit_t *l = &rl->limits[rl->n_limits];
        l->stage = pb->stage != NULL ? pb->stage->value : 0;
        if (pb->limit != NULL)
            return lg_error_set(err, "[%zu].limit: rate limit overrides are not supported by legate", rl->n_limits),
                   lg_rate_limits_free(rl), NULL;
        if (pb->n_actions == 0)
            return lg_error_set(err, "[%zu].actions: at least one action is required", rl->n_limits),
                   lg_rate_limits_free(rl), NULL;
        l->actions = lg_xcalloc(pb->n_actions, sizeof(*l->actions));
        for (; l->n_actions < pb->n_actions; ++l->n_actions) {
            lg_path_init(&path);
            char head[48];
            snprintf(head, sizeof(head), "[%zu].actions[%zu]", rl->n_limits, l->n_actions);
            lg_path_push_field(&path, head);
            if (action_init(&l->actions[l->n_actions], pb->actions[l->n_actions], local_cluster, &path, err) != 0) {
                ++l->n_actions; /* its half-built parts are freed too, */
                ++rl->n_limits; /* and so is this limit */
                lg_rate_limits_free(rl);
                return NULL;
            }
        }
    }
    return rl;
}

/* ---- per request ----------------------------------------------------------------------------- */

static h2o_iovec_t address_text(const struct sockaddr_storage *ss, unsigned v4_mask, unsigned v6_mask, int masked,
                                h2o_mem_pool_t *pool)
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t len;
    if (ss == NULL)
        return h2o_iovec_init(NULL, 0);
    if (ss->ss_family == AF_INET) {
        struct in_addr a = ((const struct sockaddr_in *)ss)->sin_addr;
        if (masked) {
            uint32_t m = v4_mask == 0 ? 0 : htonl(0xFFFFFFFFu << (32 - v4_mask));
            a.s_addr &= m;
        }
        inet_ntop(AF_INET, &a, buf, sizeof(buf));
    } else if (ss->ss_family == AF_INET6) {
        struct in6_addr a = ((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (masked)
            for (unsigned i = 0; i < 16; ++i) {
                unsigned bits = v6_mask > i * 8 ? v6_mask - i * 8 : 0;
                a.s6_addr[i] &= bits >= 8 ? 0xFF : (uint8_t)(0xFF << (8 - bits));
            }
        inet_ntop(AF_INET6, &a, buf, sizeof(buf));
    } else {
        return h2o_iovec_init(NULL, 0);
    }
    len = strlen(buf);
    if (masked)
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "/%u", ss->ss_family == AF_INET ? v4_mask : v6_mask);
    char *p = h2o_mem_alloc_pool(pool, len);
    memcpy(p, buf, len);
    return h2o_iovec_init(p, len);
}

/* Sets *e to the action's entry: 1 entry, 0 the descriptor is dropped, -1 this entry is skipped. */
static int action_entry(const action_t *a, const lg_rl_input_t *in, h2o_mem_pool_t *pool, lg_rl_entry_t *e)
{
    e->key = a->key;
    switch (a->kind) {
    case ACT_LITERAL:
        e->value = a->value;
        return 1;
    case ACT_DESTINATION_CLUSTER:
        e->value = in->destination_cluster;
        return e->value.len != 0;
    case ACT_REQUEST_HEADER: {
        const h2o_iovec_t *v = lg_headers_get(&in->request->headers, a->header.base, a->header.len);
        if (v == NULL)
            return a->skip_if_absent ? -1 : 0;
        e->value = *v;
        return 1;
    }
    case ACT_REMOTE_ADDRESS:
    case ACT_MASKED_REMOTE_ADDRESS:
        e->value = address_text(in->remote, a->v4_mask, a->v6_mask, a->kind == ACT_MASKED_REMOTE_ADDRESS, pool);
        return e->value.len != 0;
    case ACT_HEADER_MATCH:
    case ACT_QUERY_MATCH: {
        int all = 1;
        for (size_t i = 0; i < a->n_matchers && all; ++i)
            all = a->kind == ACT_HEADER_MATCH ? lg_header_matcher_match_request(&a->headers[i], in->request, pool)
                                              : lg_query_matcher_match(&a->queries[i], in->request->path);
        e->value = a->value;
        return all == a->expect_match;
    }
    }
    return 0;
}

void lg_rate_limits_populate(const lg_rate_limits_t *rl, uint32_t stage, const lg_rl_input_t *in,
                             h2o_mem_pool_t *pool, lg_rl_descriptor_t **out, size_t *n_out)
{
    if (rl == NULL)
        return;
    for (size_t i = 0; i < rl->n_limits; ++i) {
        const limit_t *l = &rl->limits[i];
        if (l->stage != stage)
            continue;
        lg_rl_entry_t *entries = h2o_mem_alloc_pool(pool, sizeof(*entries) * l->n_actions);
        size_t n = 0;
        int keep = 1;
        for (size_t j = 0; j < l->n_actions && keep; ++j) {
            int r = action_entry(&l->actions[j], in, pool, &entries[n]);
            if (r == 1)
                ++n;
            else if (r == 0)
                keep = 0;
        }
        if (!keep || n == 0)
            continue;
        lg_rl_descriptor_t *grown = h2o_mem_alloc_pool(pool, sizeof(*grown) * (*n_out + 1));
        if (*n_out != 0)
            memcpy(grown, *out, sizeof(*grown) * *n_out);
        grown[*n_out] = (lg_rl_descriptor_t){entries, n};
        *out = grown;
        ++*n_out;
    }
}
