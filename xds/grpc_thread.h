/*
 * gRPC core under the main loop (DESIGN §4, architecture-notes §6): one completion queue drained
 * by one thread of its own, whose events reach the main h2o loop through an h2o_multithread queue;
 * channels to management servers; long-lived bidirectional calls with a send queue. Every
 * function and callback here runs on the main loop's thread; gRPC's threads and the queue thread
 * never call into legate.
 *
 * Not for: requests of workers (those use legate's own HTTP/2 client), or the xDS protocol
 * (ads_stream.c): a call here carries opaque messages.
 */
#ifndef LG_XDS_GRPC_THREAD_H
#define LG_XDS_GRPC_THREAD_H

#include <stddef.h>
#include <stdint.h>

#include <h2o/socket.h>

#include "error.h"
#include "xds/xds_internal.h"

typedef struct st_lg__xds_grpc_t lg__xds_grpc_t;
typedef struct st_lg__xds_channel_t lg__xds_channel_t;
typedef struct st_lg__xds_call_t lg__xds_call_t;

/* What a call reports, on the loop's thread. After on_close, or after lg__xds_call_cancel, no
 * callback of that call runs again and the call pointer must be dropped. */
typedef struct st_lg__xds_call_cbs_t {
    /** The stream is up: the server's initial metadata arrived or a message went out. Optional. */
    void (*on_ready)(void *data);
    /** One message (the bytes are the callee's to read during the call only). */
    void (*on_message)(void *data, const uint8_t *buf, size_t len);
    /** The call ended: gRPC status code and message. */
    void (*on_close)(void *data, int status, const char *details);
} lg__xds_call_cbs_t;

/**
 * Initializes gRPC core and starts the completion-queue thread. Events are delivered on `loop`.
 * Aborts if the thread cannot start. Main thread.
 */
lg__xds_grpc_t *lg__xds_grpc_start(h2o_evloop_t *loop);

/**
 * Cancels every call still open (without callbacks), waits for gRPC to hand back every pending
 * operation, stops the thread and shuts gRPC core down. Channels must have been freed. The loop
 * must run once afterwards (the queue's socket closes through it). Main thread.
 */
void lg__xds_grpc_stop(lg__xds_grpc_t *g);

/**
 * A channel to `t->target` with its credentials, authority, receive limit and the client's channel
 * arguments (fast reconnect backoff, keepalive every 60 s: go-control-plane sends GOAWAY to
 * clients that ping more often than every 30 s). `t` is copied. Returns NULL with err when the
 * credentials cannot be made. Main thread.
 */
lg__xds_channel_t *lg__xds_channel_new(lg__xds_grpc_t *g, const lg__xds_target_t *t, lg_error_t *err);
/**
 * Whether the channel has a connection up (READY). With try_to_connect, an idle channel starts
 * connecting (its own reconnect backoff paces the attempts). Main thread.
 */
int lg__xds_channel_ready(lg__xds_channel_t *ch, int try_to_connect);
/** Destroys the channel; calls on it end with a status (or were cancelled). Main thread. */
void lg__xds_channel_free(lg__xds_channel_t *ch);

/**
 * Starts a bidirectional streaming call of `method` (no deadline). Returns NULL when gRPC refuses
 * to start it. `cbs` must outlive the call. Main thread.
 */
lg__xds_call_t *lg__xds_call_start(lg__xds_channel_t *ch, const char *method, const lg__xds_call_cbs_t *cbs, void *data);
/** Queues one message (copied); messages go out one at a time, in order. Main thread. */
void lg__xds_call_send(lg__xds_call_t *c, const uint8_t *buf, size_t len);
/** Cancels the call; no callback of it runs afterwards. Main thread. */
void lg__xds_call_cancel(lg__xds_call_t *c);

#endif
