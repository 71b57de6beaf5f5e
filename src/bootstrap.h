/*
 * The bootstrap: Envoy's v3 Bootstrap message as legate loads it at start, from -c (YAML, JSON or
 * binary protobuf) with --config-yaml merged over it and the --service-* flags applied to `node`,
 * then validated (bootstrap_validate.c). Everything later (snapshots, xDS) starts from here.
 * Main thread only.
 */
#ifndef LG_BOOTSTRAP_H
#define LG_BOOTSTRAP_H

#include "envoy/config/bootstrap/v3/bootstrap.pb-c.h"
#include "error.h"
#include "options.h"
#include "srcmap.h"

typedef Envoy__Config__Bootstrap__V3__Bootstrap lg_bootstrap_pb_t;

typedef struct st_lg_bootstrap_t {
    lg_bootstrap_pb_t *pb;  /* owned; free with lg_bootstrap_dispose */
    lg_srcmap_t srcmap;     /* lines of every field, for errors found after loading */
    const char *name;       /* the -c path, or "<config-yaml>" */
} lg_bootstrap_t;

/**
 * Loads, merges and validates the bootstrap named by the options. Returns 0 with `out` filled, or
 * -1 with `err` holding "<file>:<line>: <path>: <message>" (and `out` left empty).
 */
int lg_bootstrap_load(lg_bootstrap_t *out, const lg_options_t *opts, lg_error_t *err);

/**
 * Loads from text alone (no file, no CLI overrides), then validates. For tests and fuzzing.
 */
int lg_bootstrap_load_text(lg_bootstrap_t *out, const char *text, size_t len, const char *name,
                           lg_error_t *err);

void lg_bootstrap_dispose(lg_bootstrap_t *b);

/**
 * Checks a converted bootstrap: protoc-gen-validate rules of Envoy's API that matter, and the
 * semantic rules (unique names, routes naming existing clusters, router filter last, supported
 * cluster types and load balancers, known filters). `map` may be NULL (no line numbers).
 * Returns 0, or -1 with the first problem in `err`.
 */
int lg_bootstrap_validate(const lg_bootstrap_pb_t *pb, const lg_srcmap_t *map, const char *name,
                          lg_error_t *err);

#endif
