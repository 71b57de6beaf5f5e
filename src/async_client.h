/*
 * The in-loop async client (DESIGN §6): one request to a cluster of the worker's snapshot, the
 * whole response delivered to a callback, for the side calls of filters (the rate-limit service,
 * ext_authz, a JWKS fetch). It rides the router's machinery (cluster state, load balancer,
 * connection pools, HTTP/1.1 and HTTP/2 codecs) without a downstream stream, and adds gRPC unary
 * framing on top (length-prefixed message, grpc-timeout, grpc-status from trailers or a
 * trailers-only head).
 *
 * Rules: the callback runs exactly once, never inside the call that started the request, unless
 * the request is cancelled first (then never). The response and its strings are valid only during
 * the callback. Responses larger than the given bound end the request with an error. No retries.
 * Worker thread only. Not for: streaming calls (xDS has its own gRPC client), proxying (the router).
 */
#ifndef LG_ASYNC_CLIENT_H
#define LG_ASYNC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "http_message.h"

struct st_lg_worker_t;

typedef struct st_lg_async_request_t lg_async_request_t;

typedef struct st_lg_async_response_t {
    const lg_response_head_t *head;
    const char *body;
    size_t body_len;
    const lg_headers_t *trailers; /* NULL when none came */
} lg_async_response_t;

/**
 * The request ended: `resp` when a response arrived (any status), else NULL and `error` says why
 * ("cluster_not_found", "no_healthy_upstream", "timeout", "connection_failure", "reset",
 * "response_too_large").
 */
typedef void (*lg_async_http_cb)(void *ctx, const lg_async_response_t *resp, const char *error);

/**
 * Sends `head` (copied; its authority, path and method are used as given) with `body` to a host of
 * `cluster` in the worker's current snapshot. `timeout_ms` bounds the whole exchange (0: none); `max_response_bytes`
 * bounds the body. Returns the handle for lg_async_cancel.
 */
lg_async_request_t *lg_async_http_send(struct st_lg_worker_t *w, const char *cluster, const lg_request_head_t *head,
                                       const void *body, size_t body_len, uint64_t timeout_ms,
                                       size_t max_response_bytes, lg_async_http_cb cb, void *ctx);

/**
 * A gRPC unary call ended. `grpc_status` is the call's status (0 OK), or -1 when there was no
 * gRPC answer at all (then `error` says why, as for HTTP, or "bad_response" for a non-gRPC or
 * malformed one); on OK, `msg`/`msg_len` is the serialized response message.
 */
typedef void (*lg_async_grpc_cb)(void *ctx, int grpc_status, const uint8_t *msg, size_t msg_len, const char *error);

/**
 * Calls `path` ("/envoy.service.ratelimit.v3.RateLimitService/ShouldRateLimit") on `cluster`
 * (which must speak HTTP/2) with `request` serialized, grpc-timeout set from `timeout_ms`.
 * `authority` defaults to the cluster name when NULL.
 */
lg_async_request_t *lg_async_grpc_unary(struct st_lg_worker_t *w, const char *cluster, const char *authority,
                                        const char *path, const ProtobufCMessage *request, uint64_t timeout_ms,
                                        lg_async_grpc_cb cb, void *ctx);

/** Abandons the request: no callback follows. `r` is freed. */
void lg_async_cancel(lg_async_request_t *r);

#endif
