/*
 * An upstream connection as the connection pool sees it, whatever its protocol: it opens request
 * streams (codec.h's lg_upstream_stream_t), says whether it has room for another, and tells its
 * owner (the pool) when a stream finished or the connection went away. HTTP/1.1 has room for one
 * stream at a time, HTTP/2 for as many as the server's MAX_CONCURRENT_STREAMS allows.
 * Worker thread only.
 */
#ifndef LG_CLIENT_CONN_H
#define LG_CLIENT_CONN_H

#include <stddef.h>

#include "codec.h"

typedef struct st_lg_client_conn_t lg_client_conn_t;

typedef struct st_lg_client_conn_ops_t {
    /** Opens a stream; NULL when the connection cannot take one now. */
    lg_upstream_stream_t *(*new_stream)(lg_client_conn_t *c, h2o_mem_pool_t *pool,
                                        const lg_upstream_callbacks_t *cb, void *ctx);
    /** Whether there is room for another stream now. */
    int (*can_accept_stream)(lg_client_conn_t *c);
    size_t (*active_streams)(lg_client_conn_t *c);
    /** Graceful: no new streams, close when idle. */
    void (*shutdown)(lg_client_conn_t *c);
    /** Now: every active stream gets on_reset, then the owner's on_closed. */
    void (*close)(lg_client_conn_t *c);
} lg_client_conn_ops_t;

struct st_lg_client_conn_t {
    const lg_client_conn_ops_t *ops;
};

typedef struct st_lg_client_conn_owner_t {
    /** A stream finished: there may be room again. */
    void (*on_capacity)(void *owner_ctx, lg_client_conn_t *c);
    /** The connection is gone; nothing of it may be used after. */
    void (*on_closed)(void *owner_ctx, lg_client_conn_t *c);
} lg_client_conn_owner_t;

#endif
