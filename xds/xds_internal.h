/*
 * The xDS client's internals, shared by the files of xds/ and by their unit tests: the per-type
 * subscription state (subscription.c), the protocol state machine of one stream (ads_stream.c),
 * resource decoding (xds_resource.c), config-source resolution (config_source.c) and the backoff
 * (backoff.c). Nothing here touches gRPC or a clock: time comes in as `now` (milliseconds, the
 * owner's clock) and bytes go out through hooks, so tests drive the protocol alone.
 *
 * Not for: code outside xds/ (use xds_client.h).
 */
#ifndef LG_XDS_INTERNAL_H
#define LG_XDS_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "envoy/service/discovery/v3/discovery.pb-c.h"
#include "error.h"
#include "xds/xds_client.h"

/* ------------------------------------------------------------------------------------------- */
/* Sets of names (subscription.c)                                                              */
/* ------------------------------------------------------------------------------------------- */

/* A sorted set of owned strings, each with an optional owned value (a resource version, or a
 * deadline). Lookups are binary searches, so 10,000 cluster names stay cheap. */
typedef struct st_lg__xds_entry_t {
    char *name;
    char *version; /* NULL when unused */
    uint64_t deadline;
} lg__xds_entry_t;

typedef struct st_lg__xds_set_t {
    lg__xds_entry_t *v;
    size_t n, cap;
} lg__xds_set_t;

/** The entry named `name`, or NULL. */
lg__xds_entry_t *lg__xds_set_find(const lg__xds_set_t *s, const char *name);
/** Inserts `name` (copied) if absent; returns its entry. */
lg__xds_entry_t *lg__xds_set_add(lg__xds_set_t *s, const char *name);
/** Removes `name`; returns 1 if it was there. */
int lg__xds_set_remove(lg__xds_set_t *s, const char *name);
void lg__xds_set_clear(lg__xds_set_t *s);
/** Sets an entry's version (copied; NULL clears). */
void lg__xds_entry_set_version(lg__xds_entry_t *e, const char *version);

/* ------------------------------------------------------------------------------------------- */
/* One type's subscription on one stream (subscription.c)                                      */
/* ------------------------------------------------------------------------------------------- */

#define LG__XDS_DEFAULT_FETCH_TIMEOUT_MS 15000
#define LG__XDS_NACK_STATUS_CODE 3 /* google.rpc.Code INVALID_ARGUMENT, as Envoy sends */

typedef struct st_lg__xds_sub_t {
    lg_xds_type_t type;
    int wildcard;            /* LDS/CDS: legacy wildcard (an empty name list) */
    lg__xds_set_t names;     /* explicit subscriptions; entry deadline = initial fetch deadline */
    lg__xds_set_t known;     /* resources held now, entry version = their version (delta) */
    lg__xds_set_t awaiting;  /* subscribed names never seen in a response; deadline per name */
    uint64_t wildcard_deadline; /* wildcard: initial fetch deadline until the first response */
    uint64_t fetch_timeout_ms;  /* the wildcard's initial_fetch_timeout (0 = none) */
    char *version_info;      /* last accepted version_info (delta: system_version_info) */
    /* Per stream: reset when a new stream starts. */
    char *nonce;             /* of the last response of this type */
    int pending;             /* a request must go out */
    int ack_pending;         /* that request answers `nonce` */
    char *nack;              /* ... rejecting it with this message (NULL: accepting) */
    int names_sent;          /* SotW: an explicit name list went out; empty now means "none" */
    int initial_sent;        /* a first request for this type went out on the stream */
    lg__xds_set_t delta_sub, delta_unsub; /* delta: changes not yet sent */
    /* NACK-loop protection: identical rejected responses in a row, and when the next may go. */
    uint64_t rejected_hash;
    unsigned reject_streak;
    uint64_t not_before;
    int held;                /* counted in rate_limit_enforced for the current hold */
} lg__xds_sub_t;

lg__xds_sub_t *lg__xds_sub_new(lg_xds_type_t type, int wildcard, uint64_t fetch_timeout_ms, uint64_t now);
void lg__xds_sub_free(lg__xds_sub_t *s);

/**
 * Replaces the explicit name set. New names that no response has named yet wait for their first
 * answer until now + their timeout (timeouts[i], 0 = forever; timeouts may be NULL for the
 * default). For delta, records the subscribe/unsubscribe differences for the next request.
 * Returns 1 when the set changed (a request is due).
 */
int lg__xds_sub_set_names(lg__xds_sub_t *s, const char *const *names, const uint64_t *timeouts, size_t n,
                          int delta, uint64_t now);

/** Forgets what belonged to the previous stream (nonce, pending answers, sent flags, deltas). */
void lg__xds_sub_reset_stream(lg__xds_sub_t *s);

/** Whether a request for this type has content to carry now (names, wildcard, or an answer). */
int lg__xds_sub_wants_request(const lg__xds_sub_t *s, int delta);

/**
 * Builds the next SotW request into `req` (its pointers borrow from `s`; `status` is storage for
 * error_detail). Marks the names as sent.
 */
void lg__xds_sub_build_sotw(lg__xds_sub_t *s, Envoy__Service__Discovery__V3__DiscoveryRequest *req,
                            Google__Rpc__Status *status);

/**
 * Builds the next delta request into `req`. The arrays it allocates are freed with
 * lg__xds_delta_request_dispose. The first request on a stream carries every subscribed name and
 * initial_resource_versions; later ones carry changes, and the nonce only when answering.
 */
void lg__xds_sub_build_delta(lg__xds_sub_t *s, Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req,
                             Google__Rpc__Status *status);
void lg__xds_delta_request_dispose(Envoy__Service__Discovery__V3__DeltaDiscoveryRequest *req);

/** Marks the answer (ACK/NACK) and the request as sent: clears pending state after a send. */
void lg__xds_sub_sent(lg__xds_sub_t *s);

/** Marks `name` as answered (seen in a response): its initial fetch timer stops. */
void lg__xds_sub_answered(lg__xds_sub_t *s, const char *name);

/**
 * Collects the names whose initial fetch deadline passed (removing them from `awaiting`).
 * `*wildcard_expired` is set when the wildcard's deadline passed. Returns the count; *out is a
 * malloc'd array of malloc'd names (free both), or NULL.
 */
size_t lg__xds_sub_expired(lg__xds_sub_t *s, uint64_t now, char ***out, int *wildcard_expired);

/** The earliest initial fetch deadline still pending, or UINT64_MAX. */
uint64_t lg__xds_sub_next_deadline(const lg__xds_sub_t *s);

/* ------------------------------------------------------------------------------------------- */
/* Decoding responses (xds_resource.c)                                                          */
/* ------------------------------------------------------------------------------------------- */

typedef struct st_lg__xds_decoded_t {
    ProtobufCMessage **msgs;
    char **names;
    char **versions;
    size_t n, cap;
    char **removed;
    size_t n_removed;
    uint64_t hash; /* of the version and every resource's bytes: spots a resent rejection */
} lg__xds_decoded_t;

/** The descriptor of a type's resources. */
const ProtobufCMessageDescriptor *lg__xds_type_descriptor(lg_xds_type_t type);
/** A resource's name (Listener.name, ..., ClusterLoadAssignment.cluster_name). */
const char *lg__xds_resource_name(lg_xds_type_t type, const ProtobufCMessage *m);

/**
 * Unpacks every resource of a SotW response: each Any must hold `type` (or an
 * envoy.service.discovery.v3.Resource holding it), be decodable, named, and unique. Returns 0, or
 * -1 with the reason in err ("resources[2]: ..."); `out` is filled either way and freed with
 * lg__xds_decoded_dispose.
 */
int lg__xds_decode_sotw(lg_xds_type_t type, const Envoy__Service__Discovery__V3__DiscoveryResponse *r,
                        lg__xds_decoded_t *out, lg_error_t *err);
/** Same for a delta response: resources with their versions, and removed_resources. */
int lg__xds_decode_delta(lg_xds_type_t type, const Envoy__Service__Discovery__V3__DeltaDiscoveryResponse *r,
                         lg__xds_decoded_t *out, lg_error_t *err);
/** Drops entry i (freeing it) keeping the order of the others. */
void lg__xds_decoded_drop(lg__xds_decoded_t *d, size_t i);
void lg__xds_decoded_dispose(lg__xds_decoded_t *d);

/* ------------------------------------------------------------------------------------------- */
/* The protocol state machine of one stream (ads_stream.c)                                      */
/* ------------------------------------------------------------------------------------------- */

#define LG__XDS_NACK_HOLD_BASE_MS 500
#define LG__XDS_NACK_HOLD_MAX_MS 10000

typedef struct st_lg__xds_stream_t lg__xds_stream_t;

/* What the stream asks of its owner. Every hook is called on the owner's thread, synchronously. */
typedef struct st_lg__xds_stream_hooks_t {
    /** Sends one serialized DiscoveryRequest / DeltaDiscoveryRequest on the open call (copied). */
    void (*send)(lg__xds_stream_t *s, const uint8_t *buf, size_t len);
    /** A decoded update for the owner to accept (0) or reject (-1, err). */
    int (*on_update)(lg__xds_stream_t *s, lg_xds_update_t *u, lg_error_t *err);
    /** After each response of a subscribed type: accepted or rejected (with the NACK message). */
    void (*on_result)(lg__xds_stream_t *s, lg_xds_type_t type, int accepted, const char *version_info,
                      const char *error);
    /** initial_fetch_timeout passed (see lg_xds_callbacks_t.on_fetch_timeout). */
    void (*on_fetch_timeout)(lg__xds_stream_t *s, lg_xds_type_t type, const char *const *names, size_t n);
    /** A request was held back by rate limiting or NACK-loop protection. */
    void (*on_rate_limited)(lg__xds_stream_t *s);
} lg__xds_stream_hooks_t;

struct st_lg__xds_stream_t {
    const lg__xds_stream_hooks_t *hooks;
    void *owner;
    int delta;
    int open;            /* a call is up: requests may go out */
    int node_sent;
    int node_once;       /* set_node_on_first_message_only */
    const Envoy__Config__Core__V3__Node *node;
    lg__xds_sub_t *subs[LG_XDS__NTYPES]; /* NULL: the type is not on this stream */
    /* rate_limit_settings: a token bucket over every request (off when max_tokens == 0) */
    double tokens, max_tokens, fill_rate;
    uint64_t last_refill;
    int rl_held;
    uint64_t requests_sent, responses;
};

/** Initializes a stream; `node` is borrowed and must outlive it. */
void lg__xds_stream_init(lg__xds_stream_t *s, const lg__xds_stream_hooks_t *hooks, void *owner, int delta,
                         const Envoy__Config__Core__V3__Node *node, int node_once);
/** Rate limiting as ApiConfigSource.rate_limit_settings says (max_tokens 0 = off). */
void lg__xds_stream_set_rate_limit(lg__xds_stream_t *s, double max_tokens, double fill_rate, uint64_t now);
void lg__xds_stream_dispose(lg__xds_stream_t *s);

/** Adds a type to the stream (once per type); returns its subscription. */
lg__xds_sub_t *lg__xds_stream_add_type(lg__xds_stream_t *s, lg_xds_type_t type, int wildcard, uint64_t fetch_timeout_ms,
                                       uint64_t now);

/** Sets a type's names (see lg__xds_sub_set_names); a request is due if they changed. */
void lg__xds_stream_set_names(lg__xds_stream_t *s, lg_xds_type_t type, const char *const *names,
                              const uint64_t *timeouts, size_t n, uint64_t now);

/** A new call is up: fresh nonces, the node again, every subscription in its first request. */
void lg__xds_stream_opened(lg__xds_stream_t *s, uint64_t now);
/** The call is gone. Subscriptions, versions and known resources stay for the next stream. */
void lg__xds_stream_closed(lg__xds_stream_t *s);

/**
 * One message received on the call. Returns 0, or -1 when the bytes are no discovery response at
 * all (the owner should drop the call). ACK/NACK requests are queued and flushed.
 */
int lg__xds_stream_on_message(lg__xds_stream_t *s, const uint8_t *buf, size_t len, uint64_t now);

/** Sends every due request (in type order). Returns when the stream next needs a flush or tick
 * (UINT64_MAX: nothing scheduled). */
uint64_t lg__xds_stream_flush(lg__xds_stream_t *s, uint64_t now);

/** Reports expired initial fetch timeouts, then flushes. Returns the next wake-up time. */
uint64_t lg__xds_stream_tick(lg__xds_stream_t *s, uint64_t now);

/** Next time the stream wants lg__xds_stream_tick (holds, token refill, fetch deadlines). */
uint64_t lg__xds_stream_next_wakeup(const lg__xds_stream_t *s);

/* ------------------------------------------------------------------------------------------- */
/* Config sources (config_source.c)                                                             */
/* ------------------------------------------------------------------------------------------- */

typedef enum en_lg__xds_creds_t {
    LG__XDS_CREDS_INSECURE,
    LG__XDS_CREDS_TLS,
    LG__XDS_CREDS_LOCAL,
} lg__xds_creds_t;

/* Where and how a gRPC channel connects: everything grpc_thread.c needs, as plain C. */
typedef struct st_lg__xds_target_t {
    char *key;       /* identity for sharing one channel between streams */
    char *target;    /* "ipv4:127.0.0.1:18000", "ipv6:[::1]:18000", "dns:///host:443", "unix:/p" */
    char *authority; /* :authority (envoy_grpc: the authority field, else the cluster name) */
    lg__xds_creds_t creds;
    char *root_pem, *cert_pem, *key_pem; /* TLS material, NULL where absent */
    char *sni;                           /* TLS name to verify and send, NULL: the target's */
    long max_receive_bytes;              /* -1: unlimited */
    size_t n_metadata;                   /* GrpcService.initial_metadata */
    char **md_keys, **md_values;
} lg__xds_target_t;

/* What one stream is: ADS or one type, SotW or delta, to which server, with which options. */
typedef struct st_lg__xds_stream_spec_t {
    int ads;
    int delta;
    lg__xds_target_t target;
    int node_once;
    double rl_max_tokens, rl_fill_rate; /* 0 = no rate limiting */
} lg__xds_stream_spec_t;

/**
 * Resolves an ApiConfigSource (the bootstrap's ads_config when `ads`, else a per-type
 * api_config_source) into a stream spec. Returns 0, or -1 with err naming what is not supported.
 * `path` prefixes errors ("dynamic_resources.ads_config").
 */
int lg__xds_spec_from_api(const Envoy__Config__Bootstrap__V3__Bootstrap *b,
                          const Envoy__Config__Core__V3__ApiConfigSource *api, int ads, const char *path,
                          lg__xds_stream_spec_t *out, lg_error_t *err);
void lg__xds_spec_dispose(lg__xds_stream_spec_t *spec);

/** The gRPC method of a stream: ADS or the type's service, SotW or delta. */
const char *lg__xds_method(lg_xds_type_t type, int ads, int delta);

/** initial_fetch_timeout of a source in ms (default 15 s, 0 = none). */
uint64_t lg__xds_fetch_timeout_ms(const Envoy__Config__Core__V3__ConfigSource *cs);

/* ------------------------------------------------------------------------------------------- */
/* Backoff (backoff.c)                                                                          */
/* ------------------------------------------------------------------------------------------- */

#define LG__XDS_BACKOFF_BASE_MS 500
#define LG__XDS_BACKOFF_MAX_MS 30000

/**
 * The wait before retry number `attempt` (1 = first retry): an exponential ceiling
 * min(max, base * 2^(attempt-1)) with "equal jitter" (between half the ceiling and the ceiling),
 * so retries of many proxies spread out and the first comes quickly. `rnd` is a random 32-bit
 * value.
 */
uint64_t lg__xds_backoff_ms(unsigned attempt, uint64_t base_ms, uint64_t max_ms, uint32_t rnd);

/** FNV-1a over bytes, chained from `h` (start with LG__XDS_HASH_INIT). xds_resource.c */
#define LG__XDS_HASH_INIT 1469598103934665603ull
uint64_t lg__xds_hash(uint64_t h, const void *data, size_t len);

#endif
