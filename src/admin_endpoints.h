/*
 * Between the admin's server (admin.c: sockets, HTTP/1.1, access log) and its endpoints
 * (admin_endpoints.c: Envoy's path table and handlers). A request is dispatched with what the
 * handlers may read (the context) and answered in a response the server then writes; handlers
 * never see the connection. Main thread only.
 */
#ifndef LG_ADMIN_ENDPOINTS_H
#define LG_ADMIN_ENDPOINTS_H

#include <stddef.h>
#include <time.h>

#include "admin.h"
#include "admin_render.h"
#include "strbuf.h"

/* What handlers read: all borrowed from the admin, which outlives every request. */
typedef struct st_lg_admin_context_t {
    const lg_bootstrap_t *bootstrap;
    const lg_admin_hooks_t *hooks;
    struct timespec started; /* wall clock at lg_admin_start: uptime fallback, dump last_updated */
} lg_admin_context_t;

/* A handler's answer. The body is either `body` or, when `stream` is set, produced a chunk at a
 * time by the stats renderer (the response owns both). The flags ask the server to act once the
 * response has been written. */
typedef struct st_lg_admin_response_t {
    int status;
    const char *content_type; /* static */
    lg_strbuf_t body;
    lg_admin_stats_request_t *stream;
    int quit_after;  /* POST /quitquitquit: call hooks->quit after writing */
    int reopen_logs; /* POST /reopen_logs: reopen the admin's access logs */
} lg_admin_response_t;

/**
 * Answers one request, as Envoy's AdminImpl::makeRequest does: the path (the target up to its
 * '?') must equal an admin path; a path that mutates state takes POST only (405 otherwise); an
 * unknown path is 404 with the help text.
 * @param target    the request-target as received ("/stats?filter=x"), NUL-terminated.
 * @param path_len  bytes of `target` before the query.
 * @param res       zeroed by the caller; filled here.
 */
void lg_admin_dispatch(const lg_admin_context_t *ctx, const char *method, const char *target, size_t path_len,
                       lg_admin_response_t *res);

#endif
