/*
 * Unit tests of the connection manager's filter chain (src/conn_manager.c): Envoy's stop/continue
 * semantics in both directions, local replies (plain and gRPC), and stream release. A fake codec
 * stream records what reaches the client; scripted filters record what reaches them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_manager.h"
#include "fake_codec.h"
#include "lg_test.h"
#include "worker.h"

/* ---- scripted filters ----------------------------------------------------------------------- */

/* What each filter saw, in order, as a string of events: H (headers), D<len>, T, h (encode headers). */
static char events[4][128];
static lg_filter_headers_status_t script_headers[4];
static lg_filter_t *stopped;

static void note(lg_filter_t *f, const char *ev)
{
    strcat(events[f->index], ev);
}
static lg_filter_headers_status_t t_decode_headers(lg_filter_t *f, lg_request_head_t *h, int end)
{
    note(f, "H");
    if (script_headers[f->index] != LG_FILTER_HEADERS_CONTINUE)
        stopped = f;
    return script_headers[f->index];
}
static lg_filter_data_status_t t_decode_data(lg_filter_t *f, lg_data_t *d, int end)
{
    char ev[16];
    snprintf(ev, sizeof(ev), "D%zu", d->len);
    note(f, ev);
    return LG_FILTER_DATA_CONTINUE;
}
static lg_filter_trailers_status_t t_decode_trailers(lg_filter_t *f, lg_headers_t *t)
{
    note(f, "T");
    return LG_FILTER_TRAILERS_CONTINUE;
}
static char encode_order[16];
static lg_filter_headers_status_t t_encode_headers(lg_filter_t *f, lg_response_head_t *h, int end)
{
    note(f, "h");
    encode_order[strlen(encode_order)] = (char)('0' + f->index);
    return LG_FILTER_HEADERS_CONTINUE;
}
static const lg_http_filter_ops_t test_ops = {
    .name = "test",
    .decode_headers = t_decode_headers,
    .decode_data = t_decode_data,
    .decode_trailers = t_decode_trailers,
    .encode_headers = t_encode_headers,
};

/* ---- fixture ---------------------------------------------------------------------------- */

static fake_hcm_t hcm;
static lg_filter_factory_entry_t entries[3];
static lg_hcm_conn_t *conn;

static void setup(size_t n_filters)
{
    memset(events, 0, sizeof(events));
    memset(script_headers, 0, sizeof(script_headers));
    stopped = NULL;
    for (size_t i = 0; i < 3; ++i)
        entries[i] = (lg_filter_factory_entry_t){&test_ops, "test", NULL, 0};
    hcm.config.generate_request_id = 1;
    conn = fake_hcm_conn(&hcm, entries, n_filters);
}

static void teardown(void)
{
    free(conn);
}

static lg_stream_t *start(fake_codec_t *fc, const char *content_type, int end_stream)
{
    fake_codec_init(fc);
    lg_stream_t *s = lg_hcm_stream_new(conn, &fc->super);
    lg_request_head_t *req = fake_request(s, "POST");
    if (content_type != NULL)
        lg_headers_add(lg_stream_pool(s), &req->headers, LG_LIT("content-type"),
                       h2o_iovec_init(content_type, strlen(content_type)));
    lg_hcm_on_headers(s, req, end_stream);
    return s;
}

/* A response head with no fields, from the stream's pool. */
static lg_response_head_t *response(lg_filter_t *f, int status)
{
    lg_response_head_t *r = h2o_mem_alloc_pool(lg_stream_pool(f->stream), sizeof(*r));
    memset(r, 0, sizeof(*r));
    r->status = status;
    return r;
}

/* ---- tests ------------------------------------------------------------------------------- */

LG_TEST(test_everything_passes_in_order)
{
    setup(2);
    fake_codec_t fc;
    lg_stream_t *s = start(&fc, NULL, 0);
    lg_hcm_on_data(s, "abc", 3, 0);
    lg_headers_t *tr = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*tr));
    memset(tr, 0, sizeof(*tr));
    lg_hcm_on_trailers(s, tr);
    LG_EXPECT_STR(events[0], "HD3T");
    LG_EXPECT_STR(events[1], "HD3T");
    lg_hcm_on_reset(s, LG_RESET_CONNECTION_CLOSED);
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_stop_iteration_still_sees_data_and_trailers)
{
    setup(2);
    script_headers[1] = LG_FILTER_HEADERS_STOP_ITERATION; /* like the router */
    fake_codec_t fc;
    lg_stream_t *s = start(&fc, NULL, 0);
    lg_hcm_on_data(s, "abcd", 4, 0);
    lg_headers_t *tr = h2o_mem_alloc_pool(lg_stream_pool(s), sizeof(*tr));
    memset(tr, 0, sizeof(*tr));
    lg_hcm_on_trailers(s, tr);
    LG_EXPECT_STR(events[1], "HD4T");
    lg_hcm_on_reset(s, LG_RESET_CONNECTION_CLOSED);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_stop_all_holds_data_until_continue)
{
    setup(2);
    script_headers[0] = LG_FILTER_HEADERS_STOP_ALL_BUFFER;
    fake_codec_t fc;
    lg_stream_t *s = start(&fc, NULL, 0);
    lg_hcm_on_data(s, "ab", 2, 0);
    lg_hcm_on_data(s, "cde", 3, 1);
    LG_EXPECT_STR(events[0], "H"); /* STOP_ALL: the stopped filter sees no data either */
    LG_EXPECT_STR(events[1], "");
    lg_filter_continue_decoding(stopped);
    LG_EXPECT_STR(events[1], "HD5"); /* held data arrives in one piece after the headers */
    lg_hcm_on_reset(s, LG_RESET_CONNECTION_CLOSED);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_local_reply_ends_stream_and_skips_later_filters)
{
    setup(2);
    fake_codec_t fc;
    memset(&fc, 0, sizeof(fc));
    fc.super.ops = &fc_ops;
    script_headers[0] = LG_FILTER_HEADERS_STOP_ITERATION;
    lg_stream_t *s = start(&fc, NULL, 1);
    lg_filter_send_local_reply(stopped, 403, "denied", "UAEX", "ext_authz_denied");
    LG_EXPECT_INT(fc.status, 403);
    LG_EXPECT_INT(fc.body_len, 6);
    LG_EXPECT_INT(fc.data_end, 1);
    LG_EXPECT_STR(events[1], ""); /* never reached */
    LG_EXPECT_INT(fc.released, 1);
    (void)s;
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_local_reply_with_headers)
{
    setup(1);
    script_headers[0] = LG_FILTER_HEADERS_STOP_ITERATION;
    fake_codec_t fc;
    start(&fc, NULL, 1);
    lg_headers_t extra = {.entries = NULL};
    lg_headers_add(lg_stream_pool(stopped->stream), &extra, LG_LIT("x-extra"), LG_LIT("Bearer realm=\"x\""));
    lg_local_reply_t reply = {.status = 401, .body = "Jwt is missing", .details = "jwt_authn_access_denied",
                              .headers = &extra, .grpc_status = -1};
    lg_filter_send_local_reply_ex(stopped, &reply);
    LG_EXPECT_INT(fc.status, 401);
    LG_EXPECT_STR(fc.extra, "Bearer realm=\"x\""); /* Envoy's modify_headers: added to the reply */
    LG_EXPECT_INT(fc.body_len, 14);
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_grpc_local_reply_is_trailers_only)
{
    setup(1);
    script_headers[0] = LG_FILTER_HEADERS_STOP_ITERATION;
    fake_codec_t fc;
    start(&fc, "application/grpc", 1);
    lg_filter_send_local_reply(stopped, 503, "no healthy upstream", "UH", "no_healthy_upstream");
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_INT(fc.head_end, 1);
    LG_EXPECT_STR(fc.grpc_status, "14"); /* UNAVAILABLE */
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_encode_runs_in_reverse_order)
{
    setup(3);
    script_headers[2] = LG_FILTER_HEADERS_STOP_ITERATION;
    fake_codec_t fc;
    start(&fc, NULL, 1);
    memset(encode_order, 0, sizeof(encode_order));
    lg_filter_encode_headers(stopped, response(stopped, 200), 1);
    LG_EXPECT_STR(encode_order, "210");
    LG_EXPECT_STR(events[2], "Hh");
    LG_EXPECT_STR(events[1], "Hh");
    LG_EXPECT_STR(events[0], "Hh");
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

/* A filter that holds the response head and lets it go with the last body bytes: the head must not
 * end the stream ahead of them (it did: the codec got end_stream on the head, then data). */
static lg_filter_headers_status_t holder_encode_headers(lg_filter_t *f, lg_response_head_t *h, int end)
{
    note(f, end ? "h1" : "h0");
    return LG_FILTER_HEADERS_STOP_ITERATION;
}
static lg_filter_data_status_t holder_encode_data(lg_filter_t *f, lg_data_t *d, int end)
{
    note(f, end ? "d1" : "d0");
    return LG_FILTER_DATA_CONTINUE;
}
static const lg_http_filter_ops_t holder_ops = {
    .name = "holder", .decode_headers = t_decode_headers, .encode_headers = holder_encode_headers,
    .encode_data = holder_encode_data};

LG_TEST(test_held_head_resumed_by_last_data_does_not_end_the_stream)
{
    setup(2);
    entries[0].ops = &holder_ops; /* the config points at `entries`: streams made from now on see it */
    script_headers[1] = LG_FILTER_HEADERS_STOP_ITERATION;
    fake_codec_t fc;
    start(&fc, NULL, 1);
    lg_filter_encode_headers(stopped, response(stopped, 200), 0);
    LG_EXPECT_INT(fc.status, 0); /* held */
    lg_filter_encode_data(stopped, "abc", 3, 1);
    LG_EXPECT_STR(events[0], "Hh0d1");
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_INT(fc.head_end, 0);
    LG_EXPECT_INT(fc.data_end, 1);
    LG_EXPECT_INT(fc.body_len, 3);
    fake_codec_dispose(&fc);
    teardown();
}

/* lg_filter_set_encoded_body: filter 1 turns a bodiless 304 into a 200 with a body, as the cache
 * filter does; filter 0 (nearer the codec) may stop on the head and continue later. */
static int observer_stops;
static lg_filter_t *observer;
static lg_filter_headers_status_t setter_encode_headers(lg_filter_t *f, lg_response_head_t *h, int end)
{
    note(f, end ? "h1" : "h0");
    h->status = 200;
    h->content_length = 6;
    lg_filter_set_encoded_body(f, "stored", 6);
    return LG_FILTER_HEADERS_CONTINUE;
}
static lg_filter_headers_status_t observer_encode_headers(lg_filter_t *f, lg_response_head_t *h, int end)
{
    note(f, end ? "h1" : "h0");
    observer = f;
    return observer_stops ? LG_FILTER_HEADERS_STOP_ITERATION : LG_FILTER_HEADERS_CONTINUE;
}
static lg_filter_data_status_t observer_encode_data(lg_filter_t *f, lg_data_t *d, int end)
{
    char ev[16];
    snprintf(ev, sizeof(ev), "d%zu%s", d->len, end ? "e" : "");
    note(f, ev);
    return LG_FILTER_DATA_CONTINUE;
}
static const lg_http_filter_ops_t setter_ops = {.name = "setter", .encode_headers = setter_encode_headers};
static const lg_http_filter_ops_t observer_ops = {
    .name = "observer", .encode_headers = observer_encode_headers, .encode_data = observer_encode_data};

static void encoded_body_case(int stops)
{
    setup(3);
    entries[0].ops = &observer_ops;
    entries[1].ops = &setter_ops;
    observer_stops = stops;
    script_headers[2] = LG_FILTER_HEADERS_STOP_ITERATION;
    fake_codec_t fc;
    start(&fc, NULL, 1);
    lg_filter_encode_headers(stopped, response(stopped, 304), 1);
    LG_EXPECT_STR(events[1], "h1");
    if (stops) {
        LG_EXPECT_INT(fc.status, 0);
        lg_filter_continue_encoding(observer);
        LG_EXPECT_STR(events[0], "h0"); /* held with the head: the stopped filter does not see it */
    } else {
        LG_EXPECT_STR(events[0], "h0d6e");
    }
    LG_EXPECT_INT(fc.status, 200);
    LG_EXPECT_INT(fc.head_end, 0);
    LG_EXPECT_INT(fc.body_len, 6);
    LG_EXPECT(fc.body != NULL && memcmp(fc.body, "stored", 6) == 0);
    LG_EXPECT_INT(fc.data_end, 1);
    LG_EXPECT_INT(fc.released, 1);
    fake_codec_dispose(&fc);
    teardown();
}

LG_TEST(test_set_encoded_body_follows_the_head)
{
    encoded_body_case(0);
    encoded_body_case(1);
}

int main(void)
{
    fake_hcm_init(&hcm);
    LG_RUN(test_everything_passes_in_order);
    LG_RUN(test_stop_iteration_still_sees_data_and_trailers);
    LG_RUN(test_stop_all_holds_data_until_continue);
    LG_RUN(test_local_reply_ends_stream_and_skips_later_filters);
    LG_RUN(test_local_reply_with_headers);
    LG_RUN(test_grpc_local_reply_is_trailers_only);
    LG_RUN(test_encode_runs_in_reverse_order);
    LG_RUN(test_held_head_resumed_by_last_data_does_not_end_the_stream);
    LG_RUN(test_set_encoded_body_follows_the_head);
    fake_hcm_dispose(&hcm);
    return LG_TEST_END();
}
