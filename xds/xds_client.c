/*
 * The xDS client's glue (xds_client.h): from the bootstrap's dynamic_resources to streams, from
 * streams to gRPC calls, and from responses to the owner's callbacks. It owns:
 *
 *   - the streams: one ADS stream when ads_config is set, plus one per (type, server, variant) for
 *     api_config_source subscriptions; each is a protocol state machine (ads_stream.c) bound to at
 *     most one gRPC call at a time (grpc_thread.c);
 *   - reconnection: a lost or refused call is retried after a jittered exponential backoff
 *     (backoff.c), reset once a new call delivers a message; the new call starts with fresh
 *     nonces, the node, the last accepted versions and the full subscription sets;
 *   - the timers of the streams (NACK holds, rate-limit refills, initial fetch timeouts, retries),
 *     on one h2o timer entry moved along a ladder of fixed-duration buckets (h2o 2.2.5 timeouts
 *     have one duration each: architecture-notes §0.3);
 *   - the state /config_dump and /stats show: per-type versions, times, errors, and the
 *     control_plane.*, cluster_manager.cds.*, listener_manager.lds.* stats.
 *
 * What it is not for: turning resources into config (the owner's on_update does that).
 * Main thread only.
 */
#include "xds/xds_client.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <h2o/timeout.h>

#include "log.h"
#include "xds/grpc_thread.h"
#include "xds/xds_internal.h"
#include "xalloc.h"

#ifndef LG_VERSION
#define LG_VERSION "0.0.0"
#endif

typedef Envoy__Config__Core__V3__ConfigSource config_source_t;

/* Envoy's subscription stats, for the types that have one subscription each (CDS and LDS). */
#define SUB_STATS(X)                                                                               \
    X(update_attempt, COUNTER)                                                                     \
    X(update_success, COUNTER)                                                                     \
    X(update_rejected, COUNTER)                                                                    \
    X(update_failure, COUNTER)                                                                     \
    X(init_fetch_timeout, COUNTER)                                                                 \
    X(update_time, GAUGE)                                                                          \
    X(version, GAUGE)

typedef struct st_sub_stats_t {
#define LG_X(name, type) lg_stat_id_t name;
    SUB_STATS(LG_X)
#undef LG_X
    int registered;
    uint64_t update_time_value, version_value; /* gauges are set by adding the difference */
} sub_stats_t;

typedef struct st_client_stream_t {
    lg__xds_stream_t sm;
    lg_xds_client_t *client;
    lg__xds_stream_spec_t spec;
    char *key;
    const char *method;
    lg__xds_channel_t *channel; /* owned by the client's channel list */
    lg__xds_call_t *call;       /* NULL while disconnected */
    int connected;              /* the current call delivered headers or a message */
    unsigned attempt;           /* failed attempts since the last good one */
    uint64_t retry_at;          /* when to reconnect; 0 = not waiting */
    int wait_channel;           /* the connection failed: retry as soon as the channel is up */
} client_stream_t;

typedef struct st_channel_entry_t {
    char *key;
    lg__xds_channel_t *channel;
} channel_entry_t;

typedef struct st_type_state_t {
    char *version;
    uint64_t updated_ms;
    char *error, *error_version;
    uint64_t error_ms;
    uint64_t accepted, rejected;
    const char **names; /* cache for lg_xds_client_type_state */
} type_state_t;

/* While a stream waits to reconnect after its connection failed, the channel (which reconnects on
 * its own, every 250 ms to 2 s) is looked at this often: a control plane that comes back is used
 * at once instead of after the stream's backoff, which may have grown to many seconds. A stream
 * refused by a server that is up keeps its full backoff. */
#define CHANNEL_POLL_MS 250

#define N_RUNGS 4
static const uint64_t rung_ms[N_RUNGS] = {1000, 100, 10, 1};

struct st_lg_xds_client_t {
    h2o_evloop_t *loop;
    const Envoy__Config__Bootstrap__V3__Bootstrap *bootstrap;
    lg_xds_callbacks_t cb;
    void *ctx;
    Envoy__Config__Core__V3__Node *node;
    lg__xds_grpc_t *grpc;
    channel_entry_t *channels;
    size_t n_channels;
    client_stream_t **streams;
    size_t n_streams;
    client_stream_t *ads;
    client_stream_t *parent[LG_XDS__NTYPES]; /* the LDS and CDS streams */
    const config_source_t *parent_source[LG_XDS__NTYPES];
    type_state_t state[LG_XDS__NTYPES];
    sub_stats_t stats[LG_XDS__NTYPES];
    lg_stat_id_t connected_state, rate_limit_enforced;
    int connected_value;
    int in_callback;
    uint32_t rnd;
    h2o_timeout_t rungs[N_RUNGS];
    h2o_timeout_entry_t timer;
    uint64_t timer_at;
};

static const lg__xds_stream_hooks_t stream_hooks;
static const lg__xds_call_cbs_t call_cbs;

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

static uint32_t next_random(lg_xds_client_t *c)
{
    /* xorshift32: jitter needs spread, not secrecy */
    uint32_t x = c->rnd;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return c->rnd = x;
}

/* ------------------------------------------------------------------------------------------- */
/* Stats                                                                                       */
/* ------------------------------------------------------------------------------------------- */

lg_stats_cells_t *lg_xds_stats_cells(void)
{
    static lg_stats_cells_t *cells;
    if (cells == NULL) {
        cells = lg_stats_cells_new();
        lg_stats_attach(cells);
    }
    return cells;
}

static void gauge_set(lg_stat_id_t id, uint64_t *current, uint64_t value)
{
    lg_stats_add(lg_xds_stats_cells(), id, value - *current);
    *current = value;
}

static void register_stats(lg_xds_client_t *c)
{
    static const char *const prefixes[LG_XDS__NTYPES] = {
        [LG_XDS_CDS] = "cluster_manager.cds",
        [LG_XDS_LDS] = "listener_manager.lds",
    };
    c->connected_state = lg_stats_register("control_plane.connected_state", LG_STAT_GAUGE);
    c->rate_limit_enforced = lg_stats_register("control_plane.rate_limit_enforced", LG_STAT_COUNTER);
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        if (prefixes[t] == NULL)
            continue;
        sub_stats_t *s = &c->stats[t];
#define LG_X(name, type) s->name = lg_stats_registerf(LG_STAT_##type, "%s." #name, prefixes[t]);
        SUB_STATS(LG_X)
#undef LG_X
        s->registered = 1;
    }
}

static void stat_inc(lg_xds_client_t *c, lg_xds_type_t type, size_t offset)
{
    sub_stats_t *s = &c->stats[type];
    if (!s->registered)
        return;
    lg_stats_inc(lg_xds_stats_cells(), *(lg_stat_id_t *)((char *)s + offset));
    lg_stats_inc(lg_xds_stats_cells(), s->update_attempt);
}
#define STAT_INC(c, type, field) stat_inc(c, type, offsetof(sub_stats_t, field))

static void update_connected(lg_xds_client_t *c)
{
    int all = c->n_streams > 0;
    for (size_t i = 0; i < c->n_streams; ++i)
        all &= c->streams[i]->connected;
    if (all == c->connected_value)
        return;
    uint64_t cur = (uint64_t)c->connected_value;
    gauge_set(c->connected_state, &cur, (uint64_t)all);
    c->connected_value = all;
    if (c->cb.on_connected != NULL)
        c->cb.on_connected(c->ctx, all);
}

/* ------------------------------------------------------------------------------------------- */
/* Timers                                                                                      */
/* ------------------------------------------------------------------------------------------- */

static void run_timers(lg_xds_client_t *c);

static void arm_timer(lg_xds_client_t *c, uint64_t at)
{
    if (at == UINT64_MAX) {
        h2o_timeout_unlink(&c->timer);
        c->timer_at = UINT64_MAX;
        return;
    }
    if (h2o_timeout_is_linked(&c->timer) && c->timer_at <= at)
        return; /* the sooner wake-up re-evaluates everything anyway */
    h2o_timeout_unlink(&c->timer);
    uint64_t now = h2o_now(c->loop);
    uint64_t remaining = at > now ? at - now : 1;
    int r = N_RUNGS - 1;
    for (int i = 0; i < N_RUNGS; ++i)
        if (rung_ms[i] <= remaining) {
            r = i;
            break;
        }
    h2o_timeout_link(c->loop, &c->rungs[r], &c->timer);
    c->timer_at = at;
}

static uint64_t next_wakeup(lg_xds_client_t *c)
{
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < c->n_streams; ++i) {
        client_stream_t *cs = c->streams[i];
        uint64_t w = lg__xds_stream_next_wakeup(&cs->sm);
        if (w < next)
            next = w;
        if (cs->retry_at != 0 && cs->retry_at < next)
            next = cs->retry_at;
        if (cs->retry_at != 0 && cs->wait_channel && h2o_now(c->loop) + CHANNEL_POLL_MS < next)
            next = h2o_now(c->loop) + CHANNEL_POLL_MS;
    }
    return next;
}

static void rearm(lg_xds_client_t *c)
{
    h2o_timeout_unlink(&c->timer);
    c->timer_at = UINT64_MAX;
    arm_timer(c, next_wakeup(c));
}

static void flush_all(lg_xds_client_t *c)
{
    uint64_t now = h2o_now(c->loop);
    for (size_t i = 0; i < c->n_streams; ++i)
        lg__xds_stream_flush(&c->streams[i]->sm, now);
    rearm(c);
}

static void on_timer(h2o_timeout_entry_t *e)
{
    lg_xds_client_t *c = H2O_STRUCT_FROM_MEMBER(lg_xds_client_t, timer, e);
    c->timer_at = UINT64_MAX;
    run_timers(c);
}

/* ------------------------------------------------------------------------------------------- */
/* Streams and calls                                                                           */
/* ------------------------------------------------------------------------------------------- */

static void schedule_retry(client_stream_t *cs)
{
    lg_xds_client_t *c = cs->client;
    ++cs->attempt;
    uint64_t delay = lg__xds_backoff_ms(cs->attempt, LG__XDS_BACKOFF_BASE_MS, LG__XDS_BACKOFF_MAX_MS, next_random(c));
    cs->retry_at = h2o_now(c->loop) + delay;
    lg_debug(xds, "xDS stream %s: reconnecting in %llu ms (attempt %u)", cs->key, (unsigned long long)delay,
             cs->attempt);
}

static void stream_connect(client_stream_t *cs)
{
    lg_xds_client_t *c = cs->client;
    cs->retry_at = 0;
    cs->wait_channel = 0;
    cs->connected = 0;
    cs->call = lg__xds_call_start(cs->channel, cs->method, &call_cbs, cs);
    if (cs->call == NULL) {
        lg_warn(xds, "xDS stream %s: cannot start a call to %s", cs->key, cs->spec.target.target);
        schedule_retry(cs);
        return;
    }
    lg_debug(xds, "xDS stream %s: call started (%s)", cs->key, cs->method);
    lg__xds_stream_opened(&cs->sm, h2o_now(c->loop));
}

static void run_timers(lg_xds_client_t *c)
{
    uint64_t now = h2o_now(c->loop);
    for (size_t i = 0; i < c->n_streams; ++i) {
        client_stream_t *cs = c->streams[i];
        if (cs->call != NULL || cs->retry_at == 0)
            continue;
        if (cs->retry_at <= now || (cs->wait_channel && lg__xds_channel_ready(cs->channel, 1)))
            stream_connect(cs);
    }
    for (size_t i = 0; i < c->n_streams; ++i)
        lg__xds_stream_tick(&c->streams[i]->sm, now);
    /* A fetch-timeout callback may have changed subscriptions of streams ticked before it. */
    flush_all(c);
}

static void on_call_ready(void *data)
{
    client_stream_t *cs = data;
    if (!cs->connected) {
        cs->connected = 1;
        lg_info(xds, "xDS stream %s: connected to %s", cs->key, cs->spec.target.target);
        update_connected(cs->client);
    }
}

static void on_call_message(void *data, const uint8_t *buf, size_t len)
{
    client_stream_t *cs = data;
    lg_xds_client_t *c = cs->client;
    on_call_ready(cs);
    cs->attempt = 0; /* the server answers: the next loss starts the backoff afresh */
    if (lg__xds_stream_on_message(&cs->sm, buf, len, h2o_now(c->loop)) != 0) {
        lg_warn(xds, "xDS stream %s: undecodable response (%zu bytes): restarting the stream", cs->key, len);
        lg__xds_call_cancel(cs->call);
        cs->call = NULL;
        cs->connected = 0;
        lg__xds_stream_closed(&cs->sm);
        update_connected(c);
        schedule_retry(cs);
    }
    flush_all(c);
}

static void on_call_close(void *data, int status, const char *details)
{
    client_stream_t *cs = data;
    lg_xds_client_t *c = cs->client;
    cs->call = NULL;
    lg_warn(xds, "xDS stream %s: closed by %s: gRPC status %d: %s", cs->key, cs->spec.target.target, status,
            details != NULL ? details : "");
    cs->connected = 0;
    lg__xds_stream_closed(&cs->sm);
    cs->wait_channel = !lg__xds_channel_ready(cs->channel, 0);
    for (int t = 0; t < LG_XDS__NTYPES; ++t)
        if (cs->sm.subs[t] != NULL)
            STAT_INC(c, (lg_xds_type_t)t, update_failure);
    update_connected(c);
    schedule_retry(cs);
    rearm(c);
}

static const lg__xds_call_cbs_t call_cbs = {
    .on_ready = on_call_ready,
    .on_message = on_call_message,
    .on_close = on_call_close,
};

/* The shared channel for a target, made on first use. */
static lg__xds_channel_t *channel_for(lg_xds_client_t *c, const lg__xds_target_t *t, lg_error_t *err)
{
    for (size_t i = 0; i < c->n_channels; ++i)
        if (strcmp(c->channels[i].key, t->key) == 0)
            return c->channels[i].channel;
    lg__xds_channel_t *ch = lg__xds_channel_new(c->grpc, t, err);
    if (ch == NULL)
        return NULL;
    channel_entry_t *v = realloc(c->channels, (c->n_channels + 1) * sizeof(*v));
    if (v == NULL)
        lg_fatal("out of memory");
    c->channels = v;
    c->channels[c->n_channels++] = (channel_entry_t){.key = lg_xstrdup(t->key), .channel = ch};
    return ch;
}

/* A new stream from a resolved spec (ownership of `spec` moves in). It connects on the next timer
 * run, so no callback runs inside the caller. */
static client_stream_t *stream_new(lg_xds_client_t *c, lg__xds_stream_spec_t *spec, lg_xds_type_t type, lg_error_t *err)
{
    lg__xds_channel_t *ch = channel_for(c, &spec->target, err);
    if (ch == NULL) {
        lg__xds_spec_dispose(spec);
        return NULL;
    }
    client_stream_t *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        lg_fatal("out of memory");
    cs->client = c;
    cs->spec = *spec;
    cs->channel = ch;
    cs->method = lg__xds_method(type, spec->ads, spec->delta);
    size_t klen = strlen(spec->target.key) + 32;
    if ((cs->key = malloc(klen)) == NULL)
        lg_fatal("out of memory");
    snprintf(cs->key, klen, "%s%s%s", spec->ads ? "ads" : lg_xds_type_name(type), spec->delta ? "-delta|" : "|",
             spec->target.key);
    lg__xds_stream_init(&cs->sm, &stream_hooks, cs, spec->delta, c->node, spec->node_once);
    if (spec->rl_max_tokens > 0)
        lg__xds_stream_set_rate_limit(&cs->sm, spec->rl_max_tokens, spec->rl_fill_rate, h2o_now(c->loop));
    client_stream_t **v = realloc(c->streams, (c->n_streams + 1) * sizeof(*v));
    if (v == NULL)
        lg_fatal("out of memory");
    c->streams = v;
    c->streams[c->n_streams++] = cs;
    cs->retry_at = h2o_now(c->loop); /* connect at the next timer run */
    if (c->connected_value)
        update_connected(c);
    return cs;
}

static client_stream_t *find_stream(lg_xds_client_t *c, const char *key)
{
    for (size_t i = 0; i < c->n_streams; ++i)
        if (strcmp(c->streams[i]->key, key) == 0)
            return c->streams[i];
    return NULL;
}

/* The per-type stream for an api_config_source, found or made. */
static client_stream_t *api_stream(lg_xds_client_t *c, lg_xds_type_t type,
                                   const Envoy__Config__Core__V3__ApiConfigSource *api, const char *path,
                                   lg_error_t *err)
{
    lg__xds_stream_spec_t spec;
    if (lg__xds_spec_from_api(c->bootstrap, api, 0, path, &spec, err) != 0)
        return NULL;
    char key[1024];
    snprintf(key, sizeof(key), "%s%s%s", lg_xds_type_name(type), spec.delta ? "-delta|" : "|", spec.target.key);
    client_stream_t *cs = find_stream(c, key);
    if (cs != NULL) {
        lg__xds_spec_dispose(&spec);
        return cs;
    }
    return stream_new(c, &spec, type, err);
}

/* The stream a child name is fetched on (see lg_xds_name_t). */
static client_stream_t *stream_for_source(lg_xds_client_t *c, lg_xds_type_t type, const config_source_t *source,
                                          lg_error_t *err)
{
    lg_xds_type_t parent = type == LG_XDS_RDS ? LG_XDS_LDS : LG_XDS_CDS;
    if (source != NULL && source->config_source_specifier_case ==
                              ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_SELF)
        source = NULL;
    if (source == NULL) {
        const config_source_t *ps = c->parent_source[parent];
        if (ps != NULL && ps->config_source_specifier_case ==
                              ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_API_CONFIG_SOURCE)
            return api_stream(c, type, ps->api_config_source, "parent config source", err);
        if (c->ads != NULL)
            return c->ads;
        lg_error_set(err, "no config source for %s resources (no ads_config, and the parent's is not a gRPC source)",
                     lg_xds_type_name(type));
        return NULL;
    }
    if (lg_xds_config_source_check(c->bootstrap, source, err) != 0)
        return NULL;
    if (source->config_source_specifier_case == ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS)
        return c->ads;
    return api_stream(c, type, source->api_config_source, "api_config_source", err);
}

/* ------------------------------------------------------------------------------------------- */
/* State-machine hooks                                                                         */
/* ------------------------------------------------------------------------------------------- */

static void hook_send(lg__xds_stream_t *s, const uint8_t *buf, size_t len)
{
    client_stream_t *cs = s->owner;
    if (cs->call != NULL)
        lg__xds_call_send(cs->call, buf, len);
}

static int hook_on_update(lg__xds_stream_t *s, lg_xds_update_t *u, lg_error_t *err)
{
    client_stream_t *cs = s->owner;
    lg_xds_client_t *c = cs->client;
    ++c->in_callback;
    int rc = c->cb.on_update(c->ctx, u, err);
    --c->in_callback;
    return rc;
}

static void hook_on_result(lg__xds_stream_t *s, lg_xds_type_t type, int accepted, const char *version_info,
                           const char *error)
{
    client_stream_t *cs = s->owner;
    lg_xds_client_t *c = cs->client;
    type_state_t *st = &c->state[type];
    uint64_t now = wall_ms();
    if (accepted) {
        ++st->accepted;
        free(st->version);
        st->version = lg_xstrdup(version_info);
        st->updated_ms = now;
        free(st->error);
        free(st->error_version);
        st->error = st->error_version = NULL;
        STAT_INC(c, type, update_success);
        sub_stats_t *ss = &c->stats[type];
        if (ss->registered) {
            gauge_set(ss->update_time, &ss->update_time_value, now);
            gauge_set(ss->version, &ss->version_value,
                      lg__xds_hash(LG__XDS_HASH_INIT, version_info, strlen(version_info)) & INT64_MAX);
        }
        lg_debug(xds, "%s: accepted version \"%s\"", lg_xds_type_url(type), version_info);
    } else {
        ++st->rejected;
        free(st->error);
        free(st->error_version);
        st->error = lg_xstrdup(error);
        st->error_version = lg_xstrdup(version_info);
        st->error_ms = now;
        STAT_INC(c, type, update_rejected);
        lg_warn(xds, "gRPC config for %s rejected (version \"%s\"): %s", lg_xds_type_url(type), version_info, error);
    }
}

static void hook_on_fetch_timeout(lg__xds_stream_t *s, lg_xds_type_t type, const char *const *names, size_t n)
{
    client_stream_t *cs = s->owner;
    lg_xds_client_t *c = cs->client;
    STAT_INC(c, type, init_fetch_timeout);
    if (c->cb.on_fetch_timeout != NULL) {
        ++c->in_callback;
        c->cb.on_fetch_timeout(c->ctx, type, names, n);
        --c->in_callback;
    }
}

static void hook_on_rate_limited(lg__xds_stream_t *s)
{
    client_stream_t *cs = s->owner;
    lg_stats_inc(lg_xds_stats_cells(), cs->client->rate_limit_enforced);
}

static const lg__xds_stream_hooks_t stream_hooks = {
    .send = hook_send,
    .on_update = hook_on_update,
    .on_result = hook_on_result,
    .on_fetch_timeout = hook_on_fetch_timeout,
    .on_rate_limited = hook_on_rate_limited,
};

/* ------------------------------------------------------------------------------------------- */
/* Public API                                                                                  */
/* ------------------------------------------------------------------------------------------- */

/* The node legate announces: the bootstrap's (with --service-* applied), as legate. */
static Envoy__Config__Core__V3__Node *make_node(const Envoy__Config__Bootstrap__V3__Bootstrap *b)
{
    Envoy__Config__Core__V3__Node *node;
    if (b->node != NULL) {
        size_t len = envoy__config__core__v3__node__get_packed_size(b->node);
        uint8_t *buf = malloc(len ? len : 1);
        if (buf == NULL)
            lg_fatal("out of memory");
        envoy__config__core__v3__node__pack(b->node, buf);
        node = envoy__config__core__v3__node__unpack(NULL, len, buf);
        free(buf);
    } else {
        node = envoy__config__core__v3__node__unpack(NULL, 0, (const uint8_t *)"");
    }
    if (node == NULL)
        lg_fatal("cannot copy the bootstrap node");
    /* The unpacked copy's strings are malloc'd one by one: replacing them keeps it freeable. */
    if (node->user_agent_name != protobuf_c_empty_string)
        free(node->user_agent_name);
    node->user_agent_name = lg_xstrdup("legate");
    if (node->user_agent_version_type_case == ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION &&
        node->user_agent_version != protobuf_c_empty_string)
        free(node->user_agent_version);
    else if (node->user_agent_version_type_case ==
             ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_BUILD_VERSION)
        envoy__config__core__v3__build_version__free_unpacked(node->user_agent_build_version, NULL);
    node->user_agent_version_type_case = ENVOY__CONFIG__CORE__V3__NODE__USER_AGENT_VERSION_TYPE_USER_AGENT_VERSION;
    node->user_agent_version = lg_xstrdup(LG_VERSION);
    return node;
}

/* LDS or CDS by wildcard on the stream of `cs` (lds_config / cds_config). */
static int add_wildcard(lg_xds_client_t *c, lg_xds_type_t type, const config_source_t *cs, const char *path,
                        lg_error_t *err)
{
    client_stream_t *s;
    switch (cs->config_source_specifier_case) {
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_ADS:
        if ((s = c->ads) == NULL)
            return lg_error_set(err, "dynamic_resources.%s: `ads` needs dynamic_resources.ads_config", path);
        break;
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_API_CONFIG_SOURCE: {
        char p[128];
        snprintf(p, sizeof(p), "dynamic_resources.%s.api_config_source", path);
        if ((s = api_stream(c, type, cs->api_config_source, p, err)) == NULL)
            return -1;
        break;
    }
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH:
    case ENVOY__CONFIG__CORE__V3__CONFIG_SOURCE__CONFIG_SOURCE_SPECIFIER_PATH_CONFIG_SOURCE:
        return lg_error_set(err, "dynamic_resources.%s: file-based config sources are not supported by legate", path);
    default:
        return lg_error_set(err, "dynamic_resources.%s: needs ads or api_config_source", path);
    }
    lg__xds_stream_add_type(&s->sm, type, 1, lg__xds_fetch_timeout_ms(cs), h2o_now(c->loop));
    c->parent[type] = s;
    c->parent_source[type] = cs;
    return 0;
}

lg_xds_client_t *lg_xds_client_new(h2o_evloop_t *main_loop, const Envoy__Config__Bootstrap__V3__Bootstrap *bootstrap,
                                   const lg_xds_callbacks_t *cb, void *ctx, lg_error_t *err)
{
    const Envoy__Config__Bootstrap__V3__Bootstrap__DynamicResources *dr = bootstrap->dynamic_resources;
    if (dr == NULL) {
        lg_error_set(err, "dynamic_resources: missing");
        return NULL;
    }
    if (cb == NULL || cb->on_update == NULL) {
        lg_error_set(err, "xDS client: no update callback");
        return NULL;
    }
    if (dr->lds_resources_locator[0] != '\0' || dr->cds_resources_locator[0] != '\0') {
        lg_error_set(err, "dynamic_resources: xdstp resource locators are not supported by legate");
        return NULL;
    }
    lg_xds_client_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    c->loop = main_loop;
    c->bootstrap = bootstrap;
    c->cb = *cb;
    c->ctx = ctx;
    c->rnd = (uint32_t)time(NULL) ^ ((uint32_t)getpid() << 16) ^ 0x9e3779b9u;
    c->timer_at = UINT64_MAX;
    c->timer.cb = on_timer;
    for (int i = 0; i < N_RUNGS; ++i)
        h2o_timeout_init(main_loop, &c->rungs[i], rung_ms[i]);
    c->node = make_node(bootstrap);
    register_stats(c);
    c->grpc = lg__xds_grpc_start(main_loop);
    if (dr->ads_config != NULL) {
        lg__xds_stream_spec_t spec;
        if (lg__xds_spec_from_api(bootstrap, dr->ads_config, 1, "dynamic_resources.ads_config", &spec, err) != 0 ||
            (c->ads = stream_new(c, &spec, LG_XDS_CDS, err)) == NULL)
            goto fail;
    }
    /* Clusters first: make-before-break (research/envoy-features.md §3 rule 10). */
    if (dr->cds_config != NULL && add_wildcard(c, LG_XDS_CDS, dr->cds_config, "cds_config", err) != 0)
        goto fail;
    if (dr->lds_config != NULL && add_wildcard(c, LG_XDS_LDS, dr->lds_config, "lds_config", err) != 0)
        goto fail;
    rearm(c);
    return c;
fail:
    lg_xds_client_free(c);
    return NULL;
}

int lg_xds_client_subscribe(lg_xds_client_t *c, lg_xds_type_t type, const lg_xds_name_t *names, size_t n,
                            lg_error_t *err)
{
    if (type != LG_XDS_RDS && type != LG_XDS_EDS)
        return lg_error_set(err, "%s is subscribed by wildcard", lg_xds_type_name(type));
    int ret = -1;
    /* Resolve every name first, so an unsupported source changes nothing. */
    client_stream_t **where = malloc((n ? n : 1) * sizeof(*where));
    if (where == NULL)
        lg_fatal("out of memory");
    for (size_t i = 0; i < n; ++i) {
        if ((where[i] = stream_for_source(c, type, names[i].source, err)) == NULL) {
            lg_error_prefix(err, "%s \"%s\": ", lg_xds_type_name(type), names[i].name);
            goto exit;
        }
    }
    uint64_t now = h2o_now(c->loop);
    const char **group = malloc((n ? n : 1) * sizeof(*group));
    uint64_t *timeouts = malloc((n ? n : 1) * sizeof(*timeouts));
    if (group == NULL || timeouts == NULL)
        lg_fatal("out of memory");
    /* Every stream that carries (or now gets) the type receives its whole new set at once. */
    for (size_t s = 0; s < c->n_streams; ++s) {
        client_stream_t *cs = c->streams[s];
        size_t k = 0;
        for (size_t i = 0; i < n; ++i)
            if (where[i] == cs) {
                group[k] = names[i].name;
                timeouts[k] = lg__xds_fetch_timeout_ms(names[i].source);
                ++k;
            }
        if (k == 0 && cs->sm.subs[type] == NULL)
            continue;
        lg__xds_stream_set_names(&cs->sm, type, group, timeouts, k, now);
    }
    free(group);
    free(timeouts);
    ret = 0;
    if (c->in_callback == 0)
        flush_all(c);
exit:
    free(where);
    return ret;
}

void lg_xds_client_type_state(const lg_xds_client_t *cc, lg_xds_type_t type, lg_xds_type_state_t *out)
{
    lg_xds_client_t *c = (lg_xds_client_t *)cc;
    type_state_t *st = &c->state[type];
    size_t n = 0;
    for (size_t i = 0; i < c->n_streams; ++i)
        if (c->streams[i]->sm.subs[type] != NULL)
            n += c->streams[i]->sm.subs[type]->known.n;
    free(st->names);
    st->names = malloc((n ? n : 1) * sizeof(*st->names));
    if (st->names == NULL)
        lg_fatal("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < c->n_streams; ++i) {
        const lg__xds_sub_t *sub = c->streams[i]->sm.subs[type];
        for (size_t j = 0; sub != NULL && j < sub->known.n; ++j)
            st->names[k++] = sub->known.v[j].name;
    }
    *out = (lg_xds_type_state_t){.version_info = st->version != NULL ? st->version : "",
                                 .last_updated_ms = st->updated_ms,
                                 .last_error = st->error,
                                 .last_error_version = st->error_version,
                                 .last_error_ms = st->error_ms,
                                 .accepted = st->accepted,
                                 .rejected = st->rejected,
                                 .names = st->names,
                                 .n_names = k};
}

int lg_xds_client_connected(const lg_xds_client_t *c)
{
    return c->connected_value;
}

void lg_xds_client_free(lg_xds_client_t *c)
{
    if (c == NULL)
        return;
    h2o_timeout_unlink(&c->timer);
    for (int i = 0; i < N_RUNGS; ++i)
        h2o_timeout_dispose(c->loop, &c->rungs[i]);
    if (c->connected_value) {
        uint64_t cur = 1;
        gauge_set(c->connected_state, &cur, 0);
    }
    for (size_t i = 0; i < c->n_streams; ++i) {
        client_stream_t *cs = c->streams[i];
        if (cs->call != NULL)
            lg__xds_call_cancel(cs->call);
        lg__xds_stream_dispose(&cs->sm);
        lg__xds_spec_dispose(&cs->spec);
        free(cs->key);
        free(cs);
    }
    free(c->streams);
    for (size_t i = 0; i < c->n_channels; ++i) {
        lg__xds_channel_free(c->channels[i].channel);
        free(c->channels[i].key);
    }
    free(c->channels);
    lg__xds_grpc_stop(c->grpc);
    for (int t = 0; t < LG_XDS__NTYPES; ++t) {
        type_state_t *st = &c->state[t];
        free(st->version);
        free(st->error);
        free(st->error_version);
        free(st->names);
    }
    if (c->node != NULL)
        envoy__config__core__v3__node__free_unpacked(c->node, NULL);
    free(c);
}
