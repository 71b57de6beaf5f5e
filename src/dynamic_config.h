/*
 * Dynamic configuration: the xDS client's resources (CDS, EDS, LDS, RDS) kept by name and turned
 * into config snapshots together with the bootstrap's static resources (DESIGN §8). An update
 * that does not build is NACKed with the builder's error and changes nothing. The first snapshot
 * is handed on once every subscribed type has answered or reached its initial_fetch_timeout
 * (Envoy's warming, coarse: per type, not per resource). Main thread only.
 */
#ifndef LG_DYNAMIC_CONFIG_H
#define LG_DYNAMIC_CONFIG_H

#include "bootstrap.h"
#include "dns_cluster.h"
#include "snapshot.h"
#include "xds/xds_client.h"

#include <time.h>

typedef struct st_lg_dynamic_config_t lg_dynamic_config_t;

/* One accepted resource, for /config_dump. */
typedef struct st_lg_dynamic_resource_t {
    const char *name;
    const ProtobufCMessage *msg;
    const char *version;     /* the resource's (delta) or its response's version_info (SotW) */
    struct timespec updated; /* wall clock when it was accepted */
} lg_dynamic_resource_t;

/* The last rejected update of a type (Envoy's UpdateFailureState), until one is accepted. */
typedef struct st_lg_dynamic_error_t {
    char *details, *version;
    struct timespec at;
    char **names; /* the resources the rejected update carried */
    size_t n_names;
} lg_dynamic_error_t;

typedef void (*lg_dynamic_resource_cb)(void *ctx, const lg_dynamic_resource_t *r);

/** A new snapshot (one reference, given to the callee) to serve; returns 0, or -1 with err when
 * it cannot be applied (the caller then releases it). */
typedef int (*lg_dynamic_config_on_snapshot_cb)(void *ctx, lg_snapshot_t *snap, lg_error_t *err);

/** Starts the xDS client of `bootstrap` (which must have dynamic_resources) on `loop`. `dns` (may
 * be NULL; borrowed, outlives the config) resolves the DNS clusters: it is synced with every
 * accepted cluster set and its answers are an endpoint source of each build. */
lg_dynamic_config_t *lg_dynamic_config_start(h2o_evloop_t *loop, const lg_bootstrap_t *bootstrap,
                                             lg_dns_discovery_t *dns, lg_dynamic_config_on_snapshot_cb on_snapshot,
                                             void *ctx, lg_error_t *err);
/** Builds a snapshot from the current resources (after DNS answers changed) and hands it on,
 * unless the first config has not been served yet (it will include them). */
void lg_dynamic_config_rebuild(lg_dynamic_config_t *dc);
/** Stops the client and frees the resources it held. */
void lg_dynamic_config_free(lg_dynamic_config_t *dc);
lg_xds_client_t *lg_dynamic_config_xds(lg_dynamic_config_t *dc);
/** Calls `cb` for each accepted resource of `type` (the views are valid during the call). */
void lg_dynamic_config_each(const lg_dynamic_config_t *dc, lg_xds_type_t type, lg_dynamic_resource_cb cb, void *ctx);
/** version_info of the last accepted response of `type`, or NULL. */
const char *lg_dynamic_config_version(const lg_dynamic_config_t *dc, lg_xds_type_t type);
/** The last rejected update of `type`, or NULL when the latest was accepted. */
const lg_dynamic_error_t *lg_dynamic_config_error(const lg_dynamic_config_t *dc, lg_xds_type_t type);

#endif
