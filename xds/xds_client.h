/*
 * The xDS client (DESIGN §8): legate's side of Envoy's discovery protocol. It opens the gRPC
 * streams the bootstrap's `dynamic_resources` names (ADS or one stream per type; state of the
 * world or delta), subscribes to listeners and clusters by wildcard and to route configurations and
 * endpoints by the names its owner derives from them, and hands every response to the owner as
 * decoded protobuf-c messages. The owner answers each update with accept or reject; the client
 * turns that into the ACK or NACK the protocol wants, keeps the per-type versions, nonces and
 * subscriptions, reconnects with jittered backoff after a stream is lost and resubscribes with the
 * last accepted versions.
 *
 * What it is not for: building config from the resources (src/snapshot.c does that from the
 * messages delivered here), warming, or draining. The client checks each resource's type, name and
 * uniqueness only; everything else about a resource is the owner's to validate.
 *
 * Threads: every function here runs on the main thread (the loop given to lg_xds_client_new), and
 * every callback is called there, never from inside lg_xds_client_new. gRPC core's own threads and
 * the completion-queue thread of xds/grpc_thread.c never call back into the owner.
 */
#ifndef LG_XDS_CLIENT_H
#define LG_XDS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>
#include <protobuf-c/protobuf-c.h>

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "error.h"
#include "stats.h"

/* The resource types legate subscribes to, in the order the client sends their requests
 * (make-before-break: clusters, their endpoints, then listeners, their routes). */
typedef enum en_lg_xds_type_t {
    LG_XDS_CDS,
    LG_XDS_EDS,
    LG_XDS_LDS,
    LG_XDS_RDS,
    LG_XDS__NTYPES
} lg_xds_type_t;

#define LG_XDS_TYPE_URL_PREFIX "type.googleapis.com/"
#define LG_XDS_LISTENER_TYPE_URL LG_XDS_TYPE_URL_PREFIX "envoy.config.listener.v3.Listener"
#define LG_XDS_ROUTE_TYPE_URL LG_XDS_TYPE_URL_PREFIX "envoy.config.route.v3.RouteConfiguration"
#define LG_XDS_CLUSTER_TYPE_URL LG_XDS_TYPE_URL_PREFIX "envoy.config.cluster.v3.Cluster"
#define LG_XDS_ENDPOINT_TYPE_URL LG_XDS_TYPE_URL_PREFIX "envoy.config.endpoint.v3.ClusterLoadAssignment"

/** The type URL of a type ("type.googleapis.com/envoy.config.cluster.v3.Cluster"). */
const char *lg_xds_type_url(lg_xds_type_t type);
/** The type of a type URL, or -1 when legate does not subscribe to it. */
int lg_xds_type_from_url(const char *type_url);
/** Short name for logs and stats: "cds", "eds", "lds", "rds". */
const char *lg_xds_type_name(lg_xds_type_t type);

/**
 * One response, decoded. The arrays and strings belong to the client and live until the update
 * callback returns. `resources[i]` is a message of the type's descriptor
 * (envoy__config__cluster__v3__cluster__descriptor, ...), unpacked on its own: the callback may keep
 * it by storing NULL in its slot, and then frees it with protobuf_c_message_free_unpacked(m, NULL).
 *
 * State of the world (is_delta == 0):
 *   - LDS and CDS: `resources` is the complete set (is_full_state = 1); `removed` lists the names
 *     that the last accepted update had and this one does not (Envoy deletes them).
 *   - RDS and EDS: `resources` are the ones that changed or were resent; names absent from the
 *     response are unchanged, `removed` is empty. Resources nobody subscribed to are left out.
 *   - versions[i] is the response's version_info for every resource.
 * Delta (is_delta == 1): `resources` are added or changed resources with their own versions,
 *   `removed` the names the server removed; version_info is the system_version_info (debug only).
 */
typedef struct st_lg_xds_update_t {
    lg_xds_type_t type;
    const char *type_url;
    ProtobufCMessage **resources;
    char **names;
    char **versions;
    size_t n;
    char **removed;
    size_t n_removed;
    const char *version_info;
    int is_delta;
    int is_full_state;
} lg_xds_update_t;

/**
 * Called once per response. Return 0 to accept it (the client ACKs), or -1 with `err` filled to
 * reject it (the client NACKs with err's message as error_detail, code INVALID_ARGUMENT, and keeps
 * the last accepted version). Must not free the client. May call lg_xds_client_subscribe: the new
 * child subscriptions go out in one request per stream after this callback returns.
 */
typedef int (*lg_xds_on_update_cb)(void *ctx, lg_xds_update_t *u, lg_error_t *err);

typedef struct st_lg_xds_callbacks_t {
    lg_xds_on_update_cb on_update;
    /**
     * initial_fetch_timeout passed for these subscribed names (Envoy's init fetch timeout), before
     * any response named them; for a wildcard subscription, before the first response of the type
     * (then n == 0). Reported once per subscription of a name. Optional.
     */
    void (*on_fetch_timeout)(void *ctx, lg_xds_type_t type, const char *const *names, size_t n);
    /** Every stream of the client is connected (1) or one is not (0). Optional. */
    void (*on_connected)(void *ctx, int connected);
} lg_xds_callbacks_t;

/* A subscribed name and the config source it is fetched from (an HCM's `rds.config_source`, a
 * cluster's `eds_cluster_config.eds_config`). A NULL source means the parent type's source: the
 * LDS source for RDS, the CDS source for EDS (ADS when those are `ads: {}`). */
typedef struct st_lg_xds_name_t {
    const char *name;
    const Envoy__Config__Core__V3__ConfigSource *source;
} lg_xds_name_t;

/* What /config_dump and /stats show about one type (summed over the streams that carry it). */
typedef struct st_lg_xds_type_state_t {
    const char *version_info;       /* last accepted; "" before the first */
    uint64_t last_updated_ms;       /* wall clock of the last accepted update; 0 before */
    const char *last_error;         /* error_detail of the last NACK, NULL after an accept */
    const char *last_error_version; /* version_info of the rejected response */
    uint64_t last_error_ms;         /* wall clock of the last NACK */
    uint64_t accepted, rejected;    /* responses of this type */
    const char *const *names;       /* resources currently held (accepted and not removed) */
    size_t n_names;
} lg_xds_type_state_t;

typedef struct st_lg_xds_client_t lg_xds_client_t;

/**
 * Validates and opens the bootstrap's dynamic_resources: ads_config (api_type GRPC or
 * AGGREGATED_GRPC: SotW ADS; DELTA_GRPC or AGGREGATED_DELTA_GRPC: delta ADS), lds_config and
 * cds_config (`ads: {}` or an api_config_source of api_type GRPC or DELTA_GRPC). The management
 * server is the static cluster named by grpc_services[0].envoy_grpc.cluster_name (its first
 * endpoint; TLS when the cluster has an UpstreamTlsContext) or google_grpc.target_uri.
 * Subscribes to LDS and CDS by wildcard where configured and starts connecting.
 * `bootstrap` must outlive the client (its messages are referenced, not copied). Returns NULL with
 * `err` set when the configuration is not one legate supports. Main thread; callbacks start on
 * the loop's next run.
 */
lg_xds_client_t *lg_xds_client_new(h2o_evloop_t *main_loop, const Envoy__Config__Bootstrap__V3__Bootstrap *bootstrap,
                                   const lg_xds_callbacks_t *cb, void *ctx, lg_error_t *err);

/**
 * Sets the complete set of subscribed names of `type` (RDS or EDS; LDS and CDS are wildcard).
 * Names not in `names` any more are unsubscribed. Changes go out as one request per stream, at
 * once, or after the running update callback returns. `names` is copied. Returns -1 with `err`
 * when a source is not supported (REST, path, an ads source without ads_config); nothing changes
 * then. Main thread.
 */
int lg_xds_client_subscribe(lg_xds_client_t *c, lg_xds_type_t type, const lg_xds_name_t *names, size_t n,
                            lg_error_t *err);

/**
 * Checks that a config source is one lg_xds_client_subscribe accepts, so the owner can NACK a
 * listener or cluster that names an unsupported one. `bootstrap` as for lg_xds_client_new.
 * Any thread.
 */
int lg_xds_config_source_check(const Envoy__Config__Bootstrap__V3__Bootstrap *bootstrap,
                               const Envoy__Config__Core__V3__ConfigSource *source, lg_error_t *err);

/** Fills `out` with the state of `type`; the strings live until the next event. Main thread. */
void lg_xds_client_type_state(const lg_xds_client_t *c, lg_xds_type_t type, lg_xds_type_state_t *out);

/** 1 when every stream of the client is connected. Main thread. */
int lg_xds_client_connected(const lg_xds_client_t *c);

/**
 * Cancels the streams, stops gRPC and frees the client. Call it before the loop's last run and
 * h2o_evloop_destroy: the loop must run once more to free the sockets closed here. No callback
 * runs during or after it. Main thread.
 */
void lg_xds_client_free(lg_xds_client_t *c);

/**
 * The stats cell block of the main thread's xDS work (control_plane.*, cluster_manager.cds.*,
 * listener_manager.lds.*), created and attached on first use and never freed. The owner may add its
 * own main-thread stats to it (http.<prefix>.rds.<name>.*, cluster.<name>.update_*). Main thread.
 */
lg_stats_cells_t *lg_xds_stats_cells(void);

#endif
