/*
 * The protocol state machine of one xDS stream: an ADS stream carrying every type, or a per-type
 * stream (StreamListeners, DeltaClusters, ...), in SotW or delta form. It turns each response into
 * an update for the owner, answers it with exactly one ACK or NACK (research/envoy-features.md
 * §3), applies the deletion rules (SotW LDS/CDS: absent = removed; RDS/EDS: absent = unchanged;
 * delta: removed_resources), and decides when requests go out:
 *
 *   - in type order (CDS, EDS, LDS, RDS), one request per type however many changes piled up, so a
 *     CDS update that changes 10,000 EDS names sends one EDS request;
 *   - never faster than rate_limit_settings allows when the config source has them;
 *   - and never in a tight loop with a control plane that re-sends a rejected response at once
 *     (go-control-plane's snapshot cache does): the second identical rejection in a row waits
 *     500 ms before its NACK, doubling to 10 s, and each hold counts in rate_limit_enforced.
 *
 * Everything arrives as calls with `now` and leaves through hooks: no gRPC, no clock, no loop. The
 * owner (xds_client.c) connects the hooks to a gRPC call and its timers; the unit tests connect
 * them to recorders. Main thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xds/xds_internal.h"
#include "xalloc.h"

void lg__xds_stream_init(lg__xds_stream_t *s, const lg__xds_stream_hooks_t *hooks, void *owner, int delta,
                         const Envoy__Config__Core__V3__Node *node, int node_once)
{
    *s = (lg__xds_stream_t){.hooks = hooks, .owner = owner, .delta = delta, .node = node, .node_once = node_once};
}

void lg__xds_stream_set_rate_limit(lg__xds_stream_t *s, double max_tokens, double fill_rate, uint64_t now)
{
    s->max_tokens = max_tokens;
    s->fill_rate = fill_rate > 0 ? fill_rate : 1;
    s->tokens = max_tokens;
    s->last_refill = now;
}

void lg__xds_stream_dispose(lg__xds_stream_t *s)
{
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        lg__xds_sub_free(s->subs[t]);
        s->subs[t] = NULL;
    }
}

lg__xds_sub_t *lg__xds_stream_add_type(lg__xds_stream_t *s, lg_xds_type_t type, int wildcard, uint64_t fetch_timeout_ms,
                                       uint64_t now)
{
    if (s->subs[type] == NULL)
        s->subs[type] = lg__xds_sub_new(type, wildcard, fetch_timeout_ms, now);
    return s->subs[type];
}

void lg__xds_stream_set_names(lg__xds_stream_t *s, lg_xds_type_t type, const char *const *names,
                              const uint64_t *timeouts, size_t n, uint64_t now)
{
    lg__xds_sub_t *sub = s->subs[type];
    if (sub == NULL)
        sub = lg__xds_stream_add_type(s, type, 0, 0, now);
    lg__xds_sub_set_names(sub, names, timeouts, n, s->delta, now);
}

void lg__xds_stream_opened(lg__xds_stream_t *s, uint64_t now)
{
    s->open = 1;
    s->node_sent = 0;
    s->rl_held = 0;
    for (int t = 0; t < LG_XDS__NTYPES; ++t)
        if (s->subs[t] != NULL)
            lg__xds_sub_reset_stream(s->subs[t]);
    lg__xds_stream_flush(s, now);
}

void lg__xds_stream_closed(lg__xds_stream_t *s)
{
    s->open = 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Responses                                                                                   */
/* ------------------------------------------------------------------------------------------- */

/* Records the answer a response gets and, for a rejection that repeats the previous one exactly,
 * when that answer may go out. */
static void answer(lg__xds_stream_t *s, lg__xds_sub_t *sub, int accepted, const char *error, uint64_t hash,
                   uint64_t now)
{
    sub->pending = 1;
    sub->ack_pending = 1;
    free(sub->nack);
    sub->nack = NULL;
    sub->not_before = 0;
    sub->held = 0;
    if (accepted) {
        sub->reject_streak = 0;
        return;
    }
    sub->nack = lg_xstrdup(error[0] != '\0' ? error : "rejected by legate");
    if (sub->reject_streak > 0 && sub->rejected_hash == hash) {
        ++sub->reject_streak;
        uint64_t hold = LG__XDS_NACK_HOLD_BASE_MS;
        for (unsigned i = 2; i < sub->reject_streak && hold < LG__XDS_NACK_HOLD_MAX_MS; ++i)
            hold *= 2;
        if (hold > LG__XDS_NACK_HOLD_MAX_MS)
            hold = LG__XDS_NACK_HOLD_MAX_MS;
        sub->not_before = now + hold;
        lg_debug(xds, "%s: the same rejected update again (%u in a row): NACK held for %llu ms",
                 lg_xds_type_name(sub->type), sub->reject_streak, (unsigned long long)hold);
    } else {
        sub->reject_streak = 1;
        sub->rejected_hash = hash;
    }
}

static void set_nonce(lg__xds_sub_t *sub, const char *nonce)
{
    free(sub->nonce);
    sub->nonce = lg_xstrdup(nonce);
}

/* The subscription a response is for, or NULL (then it is ignored, as Envoy does: no watcher). */
static lg__xds_sub_t *sub_for(lg__xds_stream_t *s, const char *type_url)
{
    int t = lg_xds_type_from_url(type_url);
    lg__xds_sub_t *sub = t >= 0 ? s->subs[t] : NULL;
    if (sub == NULL || (!sub->wildcard && sub->names.n == 0 && !sub->initial_sent)) {
        lg_warn(xds, "ignoring a response of type \"%s\": nothing on this stream subscribes to it", type_url);
        return NULL;
    }
    return sub;
}

static void handle_sotw(lg__xds_stream_t *s, const Envoy__Service__Discovery__V3__DiscoveryResponse *r, uint64_t now)
{
    lg__xds_sub_t *sub = sub_for(s, r->type_url);
    if (sub == NULL)
        return;
    lg_xds_type_t type = sub->type;
    set_nonce(sub, r->nonce);
    lg__xds_decoded_t d;
    lg_error_t err = {{0}};
    int rc = lg__xds_decode_sotw(type, r, &d, &err);
    sub->wildcard_deadline = 0;
    for (size_t i = 0; i < d.n; ++i)
        lg__xds_sub_answered(sub, d.names[i]);
    int full_state = type == LG_XDS_LDS || type == LG_XDS_CDS;
    char **removed = NULL;
    size_t n_removed = 0;
    if (rc == 0) {
        /* Resources nobody asked for are not ours to apply (rule 6). */
        if (!sub->wildcard) {
            for (size_t i = 0; i < d.n;) {
                if (lg__xds_set_find(&sub->names, d.names[i]) == NULL) {
                    lg_debug(xds, "%s: ignoring unsubscribed resource \"%s\"", lg_xds_type_name(type), d.names[i]);
                    lg__xds_decoded_drop(&d, i);
                } else {
                    ++i;
                }
            }
        }
        if (full_state && sub->known.n > 0) {
            removed = malloc(sub->known.n * sizeof(*removed));
            if (removed == NULL)
                lg_fatal("out of memory");
            lg__xds_set_t now_names = {0};
            for (size_t i = 0; i < d.n; ++i)
                lg__xds_set_add(&now_names, d.names[i]);
            for (size_t i = 0; i < sub->known.n; ++i)
                if (lg__xds_set_find(&now_names, sub->known.v[i].name) == NULL)
                    removed[n_removed++] = lg_xstrdup(sub->known.v[i].name);
            lg__xds_set_clear(&now_names);
        }
        lg_xds_update_t u = {.type = type,
                             .type_url = lg_xds_type_url(type),
                             .resources = d.msgs,
                             .names = d.names,
                             .versions = d.versions,
                             .n = d.n,
                             .removed = removed,
                             .n_removed = n_removed,
                             .version_info = r->version_info,
                             .is_delta = 0,
                             .is_full_state = full_state};
        rc = s->hooks->on_update(s, &u, &err);
        if (rc != 0 && err.msg[0] == '\0')
            lg_error_set(&err, "rejected by legate");
    }
    if (rc == 0) {
        free(sub->version_info);
        sub->version_info = lg_xstrdup(r->version_info);
        if (full_state)
            lg__xds_set_clear(&sub->known);
        for (size_t i = 0; i < d.n; ++i)
            lg__xds_set_add(&sub->known, d.names[i]);
    }
    answer(s, sub, rc == 0, err.msg, d.hash, now);
    s->hooks->on_result(s, type, rc == 0, r->version_info, rc == 0 ? NULL : err.msg);
    for (size_t i = 0; i < n_removed; ++i)
        free(removed[i]);
    free(removed);
    lg__xds_decoded_dispose(&d);
}

static void handle_delta(lg__xds_stream_t *s, const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r,
                         uint64_t now)
{
    lg__xds_sub_t *sub = sub_for(s, r->type_url);
    if (sub == NULL)
        return;
    lg_xds_type_t type = sub->type;
    set_nonce(sub, r->nonce);
    lg__xds_decoded_t d;
    lg_error_t err = {{0}};
    int rc = lg__xds_decode_delta(type, r, &d, &err);
    sub->wildcard_deadline = 0;
    for (size_t i = 0; i < d.n; ++i)
        lg__xds_sub_answered(sub, d.names[i]);
    for (size_t i = 0; i < d.n_removed; ++i)
        lg__xds_sub_answered(sub, d.removed[i]);
    if (rc == 0) {
        if (!sub->wildcard) {
            for (size_t i = 0; i < d.n;) {
                if (lg__xds_set_find(&sub->names, d.names[i]) == NULL)
                    lg__xds_decoded_drop(&d, i);
                else
                    ++i;
            }
        }
        /* Report removals of what is held or asked for; others mean nothing to the owner. */
        size_t k = 0;
        for (size_t i = 0; i < d.n_removed; ++i) {
            if (lg__xds_set_find(&sub->known, d.removed[i]) != NULL ||
                lg__xds_set_find(&sub->names, d.removed[i]) != NULL)
                d.removed[k++] = d.removed[i];
            else
                free(d.removed[i]);
        }
        d.n_removed = k;
        lg_xds_update_t u = {.type = type,
                             .type_url = lg_xds_type_url(type),
                             .resources = d.msgs,
                             .names = d.names,
                             .versions = d.versions,
                             .n = d.n,
                             .removed = d.removed,
                             .n_removed = d.n_removed,
                             .version_info = r->system_version_info,
                             .is_delta = 1,
                             .is_full_state = 0};
        rc = s->hooks->on_update(s, &u, &err);
        if (rc != 0 && err.msg[0] == '\0')
            lg_error_set(&err, "rejected by legate");
    }
    if (rc == 0) {
        free(sub->version_info);
        sub->version_info = lg_xstrdup(r->system_version_info);
        for (size_t i = 0; i < d.n; ++i)
            lg__xds_entry_set_version(lg__xds_set_add(&sub->known, d.names[i]), d.versions[i]);
        for (size_t i = 0; i < d.n_removed; ++i)
            lg__xds_set_remove(&sub->known, d.removed[i]);
    }
    answer(s, sub, rc == 0, err.msg, d.hash, now);
    s->hooks->on_result(s, type, rc == 0, r->system_version_info, rc == 0 ? NULL : err.msg);
    lg__xds_decoded_dispose(&d);
}

int lg__xds_stream_on_message(lg__xds_stream_t *s, const uint8_t *buf, size_t len, uint64_t now)
{
    ++s->responses;
    if (s->delta) {
        Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r =
            envoy__service__discovery__v3__delta_discovery_response__unpack(NULL, len, buf);
        if (r == NULL)
            return -1;
        handle_delta(s, r, now);
        envoy__service__discovery__v3__delta_discovery_response__free_unpacked(r, NULL);
    } else {
        Envoy__Service__Discovery__V3__DiscoveryResponse *r =
            envoy__service__discovery__v3__discovery_response__unpack(NULL, len, buf);
        if (r == NULL)
            return -1;
        handle_sotw(s, r, now);
        envoy__service__discovery__v3__discovery_response__free_unpacked(r, NULL);
    }
    lg__xds_stream_flush(s, now);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* Requests                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static void send_request(lg__xds_stream_t *s, lg__xds_sub_t *sub)
{
    Google__Rpc__Status status;
    Envoy__Config__Core__V3__Node *node =
        !s->node_sent || !s->node_once ? (Envoy__Config__Core__V3__Node *)s->node : NULL;
    uint8_t *buf;
    size_t len;
    if (s->delta) {
        Envoy__Service__Discovery__V3__DeltaDiscoveryRequest req;
        lg__xds_sub_build_delta(sub, &req, &status);
        req.node = node;
        len = envoy__service__discovery__v3__delta_discovery_request__get_packed_size(&req);
        if ((buf = malloc(len ? len : 1)) == NULL)
            lg_fatal("out of memory");
        envoy__service__discovery__v3__delta_discovery_request__pack(&req, buf);
        lg__xds_delta_request_dispose(&req);
    } else {
        Envoy__Service__Discovery__V3__DiscoveryRequest req;
        lg__xds_sub_build_sotw(sub, &req, &status);
        req.node = node;
        len = envoy__service__discovery__v3__discovery_request__get_packed_size(&req);
        if ((buf = malloc(len ? len : 1)) == NULL)
            lg_fatal("out of memory");
        envoy__service__discovery__v3__discovery_request__pack(&req, buf);
        free(req.resource_names);
    }
    lg_debug(xds, "%s request: version \"%s\", nonce \"%s\"%s", lg_xds_type_name(sub->type),
             sub->version_info ? sub->version_info : "", sub->ack_pending && sub->nonce ? sub->nonce : "",
             sub->nack != NULL ? " (NACK)" : "");
    s->node_sent = 1;
    lg__xds_sub_sent(sub);
    ++s->requests_sent;
    s->hooks->send(s, buf, len);
    free(buf);
}

static void refill(lg__xds_stream_t *s, uint64_t now)
{
    if (now > s->last_refill) {
        s->tokens += (double)(now - s->last_refill) * s->fill_rate / 1000.0;
        if (s->tokens > s->max_tokens)
            s->tokens = s->max_tokens;
        s->last_refill = now;
    }
}

static uint64_t next_token_at(const lg__xds_stream_t *s, uint64_t now)
{
    double missing = 1.0 - s->tokens;
    uint64_t ms = missing > 0 ? (uint64_t)(missing * 1000.0 / s->fill_rate) + 1 : 0;
    return now + ms;
}

uint64_t lg__xds_stream_flush(lg__xds_stream_t *s, uint64_t now)
{
    uint64_t next = UINT64_MAX;
    if (!s->open)
        return next;
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        lg__xds_sub_t *sub = s->subs[t];
        if (sub == NULL || !lg__xds_sub_wants_request(sub, s->delta))
            continue;
        if (sub->not_before > now) {
            if (!sub->held) {
                sub->held = 1;
                s->hooks->on_rate_limited(s);
            }
            if (sub->not_before < next)
                next = sub->not_before;
            continue;
        }
        if (s->max_tokens > 0) {
            refill(s, now);
            if (s->tokens < 1.0) {
                if (!s->rl_held) {
                    s->rl_held = 1;
                    s->hooks->on_rate_limited(s);
                }
                uint64_t at = next_token_at(s, now);
                return at < next ? at : next;
            }
            s->tokens -= 1.0;
            s->rl_held = 0;
        }
        send_request(s, sub);
    }
    return next;
}

uint64_t lg__xds_stream_next_wakeup(const lg__xds_stream_t *s)
{
    uint64_t next = UINT64_MAX;
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        const lg__xds_sub_t *sub = s->subs[t];
        if (sub == NULL)
            continue;
        uint64_t d = lg__xds_sub_next_deadline(sub);
        if (d < next)
            next = d;
        if (s->open && sub->pending && sub->not_before != 0 && sub->not_before < next)
            next = sub->not_before;
    }
    if (s->open && s->rl_held) {
        uint64_t at = next_token_at(s, s->last_refill);
        if (at < next)
            next = at;
    }
    return next;
}

uint64_t lg__xds_stream_tick(lg__xds_stream_t *s, uint64_t now)
{
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        lg__xds_sub_t *sub = s->subs[t];
        if (sub == NULL)
            continue;
        char **names;
        int wildcard_expired;
        size_t n = lg__xds_sub_expired(sub, now, &names, &wildcard_expired);
        if (n > 0 || wildcard_expired) {
            lg_warn(xds, "%s: initial fetch timeout passed for %zu resource(s)%s", lg_xds_type_name(sub->type), n,
                    wildcard_expired ? " (wildcard)" : "");
            s->hooks->on_fetch_timeout(s, sub->type, (const char *const *)names, n);
        }
        for (size_t i = 0; i < n; ++i)
            free(names[i]);
        free(names);
    }
    lg__xds_stream_flush(s, now);
    return lg__xds_stream_next_wakeup(s);
}
