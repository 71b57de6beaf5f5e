/*
 * One resource type's subscription on one xDS stream: which names are subscribed (or the
 * wildcard), which resources are held and at which versions, the last accepted version_info, the
 * nonce to answer, and what the next request must say. It builds that request in both protocol
 * variants (research/envoy-features.md §3):
 *
 *   SotW:  version_info = last accepted, response_nonce = latest nonce of the type on this stream,
 *          resource_names = the whole current set (empty = wildcard, but only before explicit
 *          names went out on the stream: after that an empty list means "none"), error_detail on
 *          a NACK.
 *   Delta: the first request on a stream lists every name and initial_resource_versions; later
 *          ones carry only subscribe/unsubscribe changes, and the nonce only when answering a
 *          response.
 *
 * It also keeps the initial-fetch deadlines (initial_fetch_timeout) of names no response has named
 * yet. What it is not for: deciding when requests go out (ads_stream.c) or sending them.
 * Main thread only, like the rest of the client.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "xds/xds_internal.h"
#include "xalloc.h"

/* ------------------------------------------------------------------------------------------- */
/* Sorted sets                                                                                 */
/* ------------------------------------------------------------------------------------------- */

/* Index of `name` or of where it would go; *found says which. */
static size_t set_search(const lg__xds_set_t *s, const char *name, int *found)
{
    size_t lo = 0, hi = s->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->v[mid].name, name);
        if (c == 0) {
            *found = 1;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = 0;
    return lo;
}

lg__xds_entry_t *lg__xds_set_find(const lg__xds_set_t *s, const char *name)
{
    int found;
    size_t i = set_search(s, name, &found);
    return found ? &s->v[i] : NULL;
}

lg__xds_entry_t *lg__xds_set_add(lg__xds_set_t *s, const char *name)
{
    int found;
    size_t i = set_search(s, name, &found);
    if (found)
        return &s->v[i];
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        lg__xds_entry_t *v = realloc(s->v, cap * sizeof(*v));
        if (v == NULL)
            lg_fatal("out of memory");
        s->v = v;
        s->cap = cap;
    }
    memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof(*s->v));
    s->v[i] = (lg__xds_entry_t){.name = lg_xstrdup(name)};
    ++s->n;
    return &s->v[i];
}

int lg__xds_set_remove(lg__xds_set_t *s, const char *name)
{
    int found;
    size_t i = set_search(s, name, &found);
    if (!found)
        return 0;
    free(s->v[i].name);
    free(s->v[i].version);
    memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof(*s->v));
    --s->n;
    return 1;
}

void lg__xds_set_clear(lg__xds_set_t *s)
{
    for (size_t i = 0; i < s->n; ++i) {
        free(s->v[i].name);
        free(s->v[i].version);
    }
    free(s->v);
    *s = (lg__xds_set_t){0};
}

void lg__xds_entry_set_version(lg__xds_entry_t *e, const char *version)
{
    free(e->version);
    e->version = version != NULL ? lg_xstrdup(version) : NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Subscription                                                                                */
/* ------------------------------------------------------------------------------------------- */

lg__xds_sub_t *lg__xds_sub_new(lg_xds_type_t type, int wildcard, uint64_t fetch_timeout_ms, uint64_t now)
{
    lg__xds_sub_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        lg_fatal("out of memory");
    s->type = type;
    s->wildcard = wildcard;
    s->fetch_timeout_ms = fetch_timeout_ms;
    s->wildcard_deadline = wildcard && fetch_timeout_ms != 0 ? now + fetch_timeout_ms : 0;
    s->pending = wildcard;
    return s;
}

void lg__xds_sub_free(lg__xds_sub_t *s)
{
    if (s == NULL)
        return;
    lg__xds_set_clear(&s->names);
    lg__xds_set_clear(&s->known);
    lg__xds_set_clear(&s->awaiting);
    lg__xds_set_clear(&s->delta_sub);
    lg__xds_set_clear(&s->delta_unsub);
    free(s->version_info);
    free(s->nonce);
    free(s->nack);
    free(s);
}

static void added(lg__xds_sub_t *s, const char *name, uint64_t timeout, int delta, uint64_t now)
{
    lg__xds_set_add(&s->names, name);
    if (delta && !lg__xds_set_remove(&s->delta_unsub, name))
        lg__xds_set_add(&s->delta_sub, name);
    if (timeout != 0 && lg__xds_set_find(&s->known, name) == NULL)
        lg__xds_set_add(&s->awaiting, name)->deadline = now + timeout;
}

static void removed(lg__xds_sub_t *s, const char *name, int delta)
{
    lg__xds_set_remove(&s->names, name);
    if (delta && !lg__xds_set_remove(&s->delta_sub, name))
        lg__xds_set_add(&s->delta_unsub, name);
    lg__xds_set_remove(&s->awaiting, name);
    /* An unsubscribed resource is no longer held; a later subscription fetches it anew. */
    lg__xds_set_remove(&s->known, name);
}

int lg__xds_sub_set_names(lg__xds_sub_t *s, const char *const *names, const uint64_t *timeouts, size_t n,
                          int delta, uint64_t now)
{
    /* The new set, sorted and unique, with each name's timeout. */
    lg__xds_set_t next = {0};
    for (size_t i = 0; i < n; ++i)
        lg__xds_set_add(&next, names[i])->deadline = timeouts != NULL ? timeouts[i] : LG__XDS_DEFAULT_FETCH_TIMEOUT_MS;
    int changed = 0;
    /* Removals first (they shift nothing in `next`), then additions. */
    for (size_t i = 0; i < s->names.n;) {
        if (lg__xds_set_find(&next, s->names.v[i].name) == NULL) {
            char *name = lg_xstrdup(s->names.v[i].name);
            removed(s, name, delta);
            free(name);
            changed = 1;
        } else {
            ++i;
        }
    }
    for (size_t i = 0; i < next.n; ++i) {
        if (lg__xds_set_find(&s->names, next.v[i].name) == NULL) {
            added(s, next.v[i].name, next.v[i].deadline, delta, now);
            changed = 1;
        }
    }
    lg__xds_set_clear(&next);
    if (changed)
        s->pending = 1;
    return changed;
}

void lg__xds_sub_reset_stream(lg__xds_sub_t *s)
{
    free(s->nonce);
    s->nonce = NULL;
    free(s->nack);
    s->nack = NULL;
    s->ack_pending = 0;
    s->names_sent = 0;
    s->initial_sent = 0;
    s->not_before = 0;
    s->held = 0;
    s->reject_streak = 0;
    lg__xds_set_clear(&s->delta_sub);
    lg__xds_set_clear(&s->delta_unsub);
    s->pending = 1;
}

int lg__xds_sub_wants_request(const lg__xds_sub_t *s, int delta)
{
    if (!s->pending)
        return 0;
    if (!delta)
        /* An empty list before any explicit one would read as the legacy wildcard. */
        return s->wildcard || s->names.n > 0 || s->names_sent;
    if (!s->initial_sent)
        return s->wildcard || s->names.n > 0 || s->ack_pending;
    return s->ack_pending || s->delta_sub.n > 0 || s->delta_unsub.n > 0;
}

static char **name_array(const lg__xds_set_t *set, size_t *n)
{
    *n = set->n;
    if (set->n == 0)
        return NULL;
    char **v = malloc(set->n * sizeof(*v));
    if (v == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < set->n; ++i)
        v[i] = set->v[i].name;
    return v;
}

static void fill_status(lg__xds_sub_t *s, Google__Rpc__Status *status)
{
    google__rpc__status__init(status);
    status->code = LG__XDS_NACK_STATUS_CODE;
    status->message = s->nack;
}

void lg__xds_sub_build_sotw(lg__xds_sub_t *s, Envoy__Service__Discovery__V3__DiscoveryRequest *req,
                            Google__Rpc__Status *status)
{
    envoy__service__discovery__v3__discovery_request__init(req);
    req->type_url = (char *)lg_xds_type_url(s->type);
    if (s->version_info != NULL)
        req->version_info = s->version_info;
    if (s->nonce != NULL)
        req->response_nonce = s->nonce;
    if (!s->wildcard) {
        req->resource_names = name_array(&s->names, &req->n_resource_names);
        s->names_sent = 1;
    }
    if (s->nack != NULL) {
        fill_status(s, status);
        req->error_detail = status;
    }
}

void lg__xds_sub_build_delta(lg__xds_sub_t *s, Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req,
                             Google__Rpc__Status *status)
{
    envoy__service__discovery__v3__delta_discovery_request__init(req);
    req->type_url = (char *)lg_xds_type_url(s->type);
    if (!s->initial_sent) {
        if (!s->wildcard)
            req->resource_names_subscribe = name_array(&s->names, &req->n_resource_names_subscribe);
        size_t n = 0;
        for (size_t i = 0; i < s->known.n; ++i)
            n += s->known.v[i].version != NULL;
        if (n > 0) {
            Envoy__Service__Discovery__V3__DeltaDiscoveryRequest__InitialResourceVersionsEntry *entries =
                malloc(n * sizeof(*entries));
            req->initial_resource_versions = malloc(n * sizeof(*req->initial_resource_versions));
            if (entries == NULL || req->initial_resource_versions == NULL)
                lg_fatal("out of memory");
            size_t j = 0;
            for (size_t i = 0; i < s->known.n; ++i) {
                if (s->known.v[i].version == NULL)
                    continue;
                envoy__service__discovery__v3__delta_discovery_request__initial_resource_versions_entry__init(&entries[j]);
                entries[j].key = s->known.v[i].name;
                entries[j].value = s->known.v[i].version;
                req->initial_resource_versions[j] = &entries[j];
                ++j;
            }
            req->n_initial_resource_versions = n;
        }
    } else {
        req->resource_names_subscribe = name_array(&s->delta_sub, &req->n_resource_names_subscribe);
        req->resource_names_unsubscribe = name_array(&s->delta_unsub, &req->n_resource_names_unsubscribe);
    }
    if (s->ack_pending && s->nonce != NULL)
        req->response_nonce = s->nonce;
    if (s->ack_pending && s->nack != NULL) {
        fill_status(s, status);
        req->error_detail = status;
    }
}

void lg__xds_delta_request_dispose(Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req)
{
    free(req->resource_names_subscribe);
    free(req->resource_names_unsubscribe);
    if (req->n_initial_resource_versions > 0)
        free(req->initial_resource_versions[0]); /* the entries are one array */
    free(req->initial_resource_versions);
}

void lg__xds_sub_sent(lg__xds_sub_t *s)
{
    s->pending = 0;
    s->ack_pending = 0;
    free(s->nack);
    s->nack = NULL;
    s->initial_sent = 1;
    s->held = 0;
    s->not_before = 0;
    lg__xds_set_clear(&s->delta_sub);
    lg__xds_set_clear(&s->delta_unsub);
}

void lg__xds_sub_answered(lg__xds_sub_t *s, const char *name)
{
    lg__xds_set_remove(&s->awaiting, name);
}

size_t lg__xds_sub_expired(lg__xds_sub_t *s, uint64_t now, char ***out, int *wildcard_expired)
{
    *out = NULL;
    *wildcard_expired = 0;
    if (s->wildcard_deadline != 0 && s->wildcard_deadline <= now) {
        s->wildcard_deadline = 0;
        *wildcard_expired = 1;
    }
    size_t n = 0;
    for (size_t i = 0; i < s->awaiting.n; ++i)
        n += s->awaiting.v[i].deadline <= now;
    if (n == 0)
        return 0;
    char **v = malloc(n * sizeof(*v));
    if (v == NULL)
        lg_fatal("out of memory");
    size_t j = 0;
    for (size_t i = 0; i < s->awaiting.n;) {
        if (s->awaiting.v[i].deadline <= now) {
            v[j++] = s->awaiting.v[i].name; /* ownership moves to the caller */
            s->awaiting.v[i].name = NULL;
            free(s->awaiting.v[i].version);
            memmove(&s->awaiting.v[i], &s->awaiting.v[i + 1], (s->awaiting.n - i - 1) * sizeof(*s->awaiting.v));
            --s->awaiting.n;
        } else {
            ++i;
        }
    }
    *out = v;
    return n;
}

uint64_t lg__xds_sub_next_deadline(const lg__xds_sub_t *s)
{
    uint64_t t = s->wildcard_deadline != 0 ? s->wildcard_deadline : UINT64_MAX;
    for (size_t i = 0; i < s->awaiting.n; ++i)
        if (s->awaiting.v[i].deadline < t)
            t = s->awaiting.v[i].deadline;
    return t;
}
