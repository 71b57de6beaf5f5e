/*
 * The reference filter: implements every hook of the HTTP filter interface (src/filter.h) and
 * passes everything through unchanged. It is the model a new filter starts from, and its
 * "async" mode is the test of the chain's stop/continue mechanics: with the request header
 * `x-legate-passthrough-pause: <ms>` it stops decoding on headers and resumes from a timer, which
 * proves a filter can wait without blocking the worker's loop.
 *
 * Registered as "legate.filters.http.passthrough" (legate's own, not an Envoy name); its
 * typed_config is google.protobuf.Empty or absent.
 */
#include <stdlib.h>
#include <string.h>

#include "filter.h"
#include "filters/passthrough/passthrough.h"
#include "google/protobuf/empty.pb-c.h"
#include "log.h"
#include "worker.h"

typedef struct st_passthrough_state_t {
    lg_filter_t *f;
    h2o_timeout_entry_t timer;
    int paused;
} passthrough_state_t;

static void *create_config(const ProtobufCMessage *msg, lg_error_t *err)
{
    static int config; /* nothing to configure: any non-NULL pointer will do */
    return &config;
}

static void on_worker_snapshot(const void *config, lg_worker_t *w, lg_snapshot_t *snapshot)
{
    /* Nothing to start per worker. A filter that keeps per-worker state (jwt_authn's remote JWKS)
     * registers it here with lg_worker_local_add, or on first use from a stream. */
}

static void on_create(lg_filter_t *f)
{
    passthrough_state_t *st = f->state;
    st->f = f;
}

static void on_resume(h2o_timeout_entry_t *e)
{
    passthrough_state_t *st = H2O_STRUCT_FROM_MEMBER(passthrough_state_t, timer, e);
    st->paused = 0;
    lg_filter_continue_decoding(st->f);
}

static lg_filter_headers_status_t decode_headers(lg_filter_t *f, lg_request_head_t *head, int end_stream)
{
    passthrough_state_t *st = f->state;
    const h2o_iovec_t *pause = lg_headers_get(&head->headers, "x-legate-passthrough-pause", 26);
    if (pause == NULL || pause->len == 0 || pause->len > 5)
        return LG_FILTER_HEADERS_CONTINUE;
    uint64_t ms = 0;
    for (size_t i = 0; i < pause->len; ++i) {
        if (pause->base[i] < '0' || pause->base[i] > '9')
            return LG_FILTER_HEADERS_CONTINUE;
        ms = ms * 10 + (uint64_t)(pause->base[i] - '0');
    }
    lg_worker_t *w = lg_filter_worker(f);
    st->timer.cb = on_resume;
    st->paused = 1;
    h2o_timeout_link(w->loop, lg_worker_timeout(w, ms), &st->timer);
    return LG_FILTER_HEADERS_STOP_ALL_BUFFER;
}

static lg_filter_data_status_t decode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    return LG_FILTER_DATA_CONTINUE;
}

static lg_filter_trailers_status_t decode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    return LG_FILTER_TRAILERS_CONTINUE;
}

static lg_filter_headers_status_t encode_headers(lg_filter_t *f, lg_response_head_t *head, int end_stream)
{
    return LG_FILTER_HEADERS_CONTINUE;
}

static lg_filter_data_status_t encode_data(lg_filter_t *f, lg_data_t *data, int end_stream)
{
    return LG_FILTER_DATA_CONTINUE;
}

static lg_filter_trailers_status_t encode_trailers(lg_filter_t *f, lg_headers_t *trailers)
{
    return LG_FILTER_TRAILERS_CONTINUE;
}

static void on_destroy(lg_filter_t *f)
{
    passthrough_state_t *st = f->state;
    h2o_timeout_unlink(&st->timer);
}

const lg_http_filter_ops_t lg_passthrough_ops = {
    .name = "legate.filters.http.passthrough",
    .config_descriptor = &google__protobuf__empty__descriptor,
    .create_config = create_config,
    .on_worker_snapshot = on_worker_snapshot,
    .state_size = sizeof(passthrough_state_t),
    .on_create = on_create,
    .decode_headers = decode_headers,
    .decode_data = decode_data,
    .decode_trailers = decode_trailers,
    .encode_headers = encode_headers,
    .encode_data = encode_data,
    .encode_trailers = encode_trailers,
    .on_destroy = on_destroy,
};
