/*
 * gRPC core under the main loop: see grpc_thread.h. The design follows architecture-notes §6:
 *
 *   gRPC threads --> completion queue --> [xds-cq thread] --h2o_multithread--> main loop
 *
 * Each call has one operation record per kind (start, receive, send, status). At most one batch
 * of each kind is in flight (gRPC allows no more), so the record itself is the completion tag and
 * carries the h2o_multithread message link: delivering an event allocates nothing. A call is freed
 * once its status arrived or it was cancelled, and every operation of it came back.
 */
#include "xds/grpc_thread.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>
#include <h2o/multithread.h>

#include "log.h"
#include "xalloc.h"

#ifndef LG_VERSION
#define LG_VERSION "0.0.0"
#endif

/* Channel-level reconnects: fast, because the stream's own backoff (xds_client.c) paces retries;
 * a slow channel backoff would make a restarted control plane wait on gRPC's default 1 s x 1.6^n. */
#define RECONNECT_INITIAL_MS 250
#define RECONNECT_MAX_MS 2000
#define KEEPALIVE_TIME_MS 60000
#define KEEPALIVE_TIMEOUT_MS 20000

typedef enum en_op_kind_t { OP_START, OP_RECV, OP_SEND, OP_STATUS, OP__N } op_kind_t;

typedef struct st_op_t {
    h2o_multithread_message_t msg; /* links the completion into the loop's queue */
    lg__xds_call_t *call;
    op_kind_t kind;
    int ok;
    int in_flight;
} op_t;

typedef struct st_send_item_t {
    struct st_send_item_t *next;
    size_t len;
    uint8_t data[];
} send_item_t;

struct st_lg__xds_grpc_t {
    h2o_evloop_t *loop;
    grpc_completion_queue *cq;
    pthread_t thread;
    h2o_multithread_queue_t *queue;
    h2o_multithread_receiver_t receiver;
    h2o_linklist_t calls;
};

struct st_lg__xds_channel_t {
    lg__xds_grpc_t *g;
    grpc_channel *channel;
    size_t n_md;
    char **md_keys, **md_values;
};

struct st_lg__xds_call_t {
    lg__xds_grpc_t *g;
    grpc_call *call;
    h2o_linklist_t link; /* in g->calls */
    op_t ops[OP__N];
    unsigned outstanding;
    const lg__xds_call_cbs_t *cbs; /* NULL once cancelled */
    void *data;
    int closed; /* on_close delivered */
    int ready;  /* on_ready delivered */
    grpc_metadata *md_send;
    size_t n_md_send;
    grpc_metadata_array md_initial, md_trailing;
    grpc_status_code status;
    grpc_slice details;
    grpc_byte_buffer *recv_buf;
    grpc_byte_buffer *send_buf;
    send_item_t *sendq, **sendq_tail;
};

/* ------------------------------------------------------------------------------------------- */
/* The completion-queue thread                                                                 */
/* ------------------------------------------------------------------------------------------- */

static void *cq_main(void *arg)
{
    lg__xds_grpc_t *g = arg;
    for (;;) {
        grpc_event ev = grpc_completion_queue_next(g->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
        if (ev.type != GRPC_OP_COMPLETE)
            continue;
        op_t *op = ev.tag;
        op->ok = ev.success;
        h2o_multithread_send_message(&g->receiver, &op->msg);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------- */
/* Calls (loop thread)                                                                         */
/* ------------------------------------------------------------------------------------------- */

static int live(const lg__xds_call_t *c)
{
    return c->cbs != NULL && !c->closed;
}

static int start_batch(lg__xds_call_t *c, op_kind_t kind, const grpc_op *ops, size_t n)
{
    op_t *op = &c->ops[kind];
    op->in_flight = 1;
    ++c->outstanding;
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, op, NULL);
    if (e != GRPC_CALL_OK) {
        op->in_flight = 0;
        --c->outstanding;
        lg_err(xds, "grpc_call_start_batch failed (%d)", (int)e);
        return -1;
    }
    return 0;
}

static void start_recv(lg__xds_call_t *c)
{
    grpc_op op = {.op = GRPC_OP_RECV_MESSAGE};
    op.data.recv_message.recv_message = &c->recv_buf;
    start_batch(c, OP_RECV, &op, 1);
}

static void start_send(lg__xds_call_t *c)
{
    send_item_t *item = c->sendq;
    if (item == NULL || c->ops[OP_SEND].in_flight || !live(c))
        return;
    if ((c->sendq = item->next) == NULL)
        c->sendq_tail = &c->sendq;
    grpc_slice slice = grpc_slice_from_copied_buffer((const char *)item->data, item->len);
    c->send_buf = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);
    free(item);
    grpc_op op = {.op = GRPC_OP_SEND_MESSAGE};
    op.data.send_message.send_message = c->send_buf;
    if (start_batch(c, OP_SEND, &op, 1) != 0) {
        grpc_byte_buffer_destroy(c->send_buf);
        c->send_buf = NULL;
    }
}

static void free_call(lg__xds_call_t *c)
{
    h2o_linklist_unlink(&c->link);
    while (c->sendq != NULL) {
        send_item_t *next = c->sendq->next;
        free(c->sendq);
        c->sendq = next;
    }
    if (c->recv_buf != NULL)
        grpc_byte_buffer_destroy(c->recv_buf);
    if (c->send_buf != NULL)
        grpc_byte_buffer_destroy(c->send_buf);
    grpc_metadata_array_destroy(&c->md_initial);
    grpc_metadata_array_destroy(&c->md_trailing);
    grpc_slice_unref(c->details);
    for (size_t i = 0; i < c->n_md_send; ++i) {
        grpc_slice_unref(c->md_send[i].key);
        grpc_slice_unref(c->md_send[i].value);
    }
    free(c->md_send);
    grpc_call_unref(c->call);
    free(c);
}

static void deliver_message(lg__xds_call_t *c)
{
    grpc_byte_buffer_reader reader;
    if (!grpc_byte_buffer_reader_init(&reader, c->recv_buf)) {
        lg_err(xds, "cannot read a gRPC message");
        return;
    }
    grpc_slice all = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    c->cbs->on_message(c->data, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all));
    grpc_slice_unref(all);
}

/* The stream is up once the server's headers arrive or a message of ours went out on a
 * connection, whichever is first: servers (grpc-go) send no headers before their first response,
 * and a delta server with nothing new may send none for a long time. */
static void report_ready(lg__xds_call_t *c)
{
    if (c->ready || !live(c))
        return;
    c->ready = 1;
    if (c->cbs->on_ready != NULL)
        c->cbs->on_ready(c->data);
}

static void handle_op(op_t *op)
{
    lg__xds_call_t *c = op->call;
    op->in_flight = 0;
    --c->outstanding;
    switch (op->kind) {
    case OP_START:
        if (op->ok)
            report_ready(c);
        break;
    case OP_RECV:
        if (op->ok && c->recv_buf != NULL) {
            if (live(c))
                deliver_message(c);
            grpc_byte_buffer_destroy(c->recv_buf);
            c->recv_buf = NULL;
            if (live(c))
                start_recv(c);
        }
        /* else the server half-closed or the call failed: the status follows */
        break;
    case OP_SEND:
        grpc_byte_buffer_destroy(c->send_buf);
        c->send_buf = NULL;
        if (op->ok) {
            report_ready(c);
            start_send(c);
        }
        break;
    case OP_STATUS:
        if (live(c)) {
            c->closed = 1;
            char *details = grpc_slice_to_c_string(c->details);
            c->cbs->on_close(c->data, (int)c->status, details);
            gpr_free(details);
        }
        break;
    default:
        break;
    }
    if (c->outstanding == 0)
        free_call(c);
}

static void on_events(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        op_t *op = H2O_STRUCT_FROM_MEMBER(op_t, msg.link, messages->next);
        h2o_linklist_unlink(&op->msg.link);
        handle_op(op);
    }
}

lg__xds_call_t *lg__xds_call_start(lg__xds_channel_t *ch, const char *method, const lg__xds_call_cbs_t *cbs, void *data)
{
    lg__xds_grpc_t *g = ch->g;
    lg__xds_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        lg_fatal("out of memory");
    c->g = g;
    c->cbs = cbs;
    c->data = data;
    c->sendq_tail = &c->sendq;
    c->details = grpc_empty_slice();
    grpc_metadata_array_init(&c->md_initial);
    grpc_metadata_array_init(&c->md_trailing);
    for (int k = 0; k < OP__N; ++k)
        c->ops[k] = (op_t){.call = c, .kind = (op_kind_t)k};
    grpc_slice m = grpc_slice_from_copied_string(method);
    c->call = grpc_channel_create_call(ch->channel, NULL, GRPC_PROPAGATE_DEFAULTS, g->cq, m, NULL,
                                       gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
    grpc_slice_unref(m);
    h2o_linklist_insert(&g->calls, &c->link);
    if (c->call == NULL) {
        h2o_linklist_unlink(&c->link);
        grpc_metadata_array_destroy(&c->md_initial);
        grpc_metadata_array_destroy(&c->md_trailing);
        free(c);
        return NULL;
    }
    if (ch->n_md > 0) {
        c->md_send = calloc(ch->n_md, sizeof(*c->md_send));
        if (c->md_send == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < ch->n_md; ++i) {
            c->md_send[i].key = grpc_slice_from_copied_string(ch->md_keys[i]);
            c->md_send[i].value = grpc_slice_from_copied_string(ch->md_values[i]);
        }
        c->n_md_send = ch->n_md;
    }
    grpc_op ops[2] = {{.op = GRPC_OP_SEND_INITIAL_METADATA}, {.op = GRPC_OP_RECV_INITIAL_METADATA}};
    ops[0].data.send_initial_metadata.count = c->n_md_send;
    ops[0].data.send_initial_metadata.metadata = c->md_send;
    ops[1].data.recv_initial_metadata.recv_initial_metadata = &c->md_initial;
    grpc_op st = {.op = GRPC_OP_RECV_STATUS_ON_CLIENT};
    st.data.recv_status_on_client.trailing_metadata = &c->md_trailing;
    st.data.recv_status_on_client.status = &c->status;
    st.data.recv_status_on_client.status_details = &c->details;
    if (start_batch(c, OP_START, ops, 2) != 0 || start_batch(c, OP_STATUS, &st, 1) != 0) {
        /* Whatever did start completes after the cancel and frees the call. */
        c->cbs = NULL;
        grpc_call_cancel(c->call, NULL);
        if (c->outstanding == 0)
            free_call(c);
        return NULL;
    }
    start_recv(c);
    return c;
}

void lg__xds_call_send(lg__xds_call_t *c, const uint8_t *buf, size_t len)
{
    if (!live(c))
        return;
    send_item_t *item = malloc(sizeof(*item) + len);
    if (item == NULL)
        lg_fatal("out of memory");
    item->next = NULL;
    item->len = len;
    memcpy(item->data, buf, len);
    *c->sendq_tail = item;
    c->sendq_tail = &item->next;
    start_send(c);
}

void lg__xds_call_cancel(lg__xds_call_t *c)
{
    if (c->cbs == NULL)
        return;
    c->cbs = NULL;
    grpc_call_cancel(c->call, NULL);
}

/* ------------------------------------------------------------------------------------------- */
/* Channels                                                                                    */
/* ------------------------------------------------------------------------------------------- */

static grpc_arg int_arg(const char *key, int value)
{
    grpc_arg a = {.type = GRPC_ARG_INTEGER, .key = (char *)key};
    a.value.integer = value;
    return a;
}

static grpc_arg str_arg(const char *key, const char *value)
{
    grpc_arg a = {.type = GRPC_ARG_STRING, .key = (char *)key};
    a.value.string = (char *)value;
    return a;
}

lg__xds_channel_t *lg__xds_channel_new(lg__xds_grpc_t *g, const lg__xds_target_t *t, lg_error_t *err)
{
    grpc_channel_credentials *creds;
    switch (t->creds) {
    case LG__XDS_CREDS_TLS: {
        grpc_ssl_pem_key_cert_pair pair = {.private_key = t->key_pem, .cert_chain = t->cert_pem};
        creds = grpc_ssl_credentials_create(t->root_pem, t->key_pem != NULL && t->cert_pem != NULL ? &pair : NULL,
                                            NULL, NULL);
        break;
    }
    case LG__XDS_CREDS_LOCAL:
        creds = grpc_local_credentials_create(LOCAL_TCP);
        break;
    default:
        creds = grpc_insecure_credentials_create();
        break;
    }
    if (creds == NULL) {
        lg_error_set(err, "cannot create gRPC credentials for %s", t->target);
        return NULL;
    }
    char user_agent[64];
    snprintf(user_agent, sizeof(user_agent), "legate/%s", LG_VERSION);
    grpc_arg args[16];
    size_t n = 0;
    args[n++] = int_arg(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, RECONNECT_INITIAL_MS);
    args[n++] = int_arg(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, RECONNECT_INITIAL_MS);
    args[n++] = int_arg(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, RECONNECT_MAX_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIME_MS, KEEPALIVE_TIME_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, KEEPALIVE_TIMEOUT_MS);
    args[n++] = int_arg(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 0);
    /* BDP probes are pings too; a server that enforces a ping interval counts them. */
    args[n++] = int_arg(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args[n++] = int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                        t->max_receive_bytes > 0 && t->max_receive_bytes < INT32_MAX ? (int)t->max_receive_bytes : -1);
    args[n++] = int_arg(GRPC_ARG_ENABLE_RETRIES, 0);
    args[n++] = str_arg(GRPC_ARG_PRIMARY_USER_AGENT_STRING, user_agent);
    if (t->authority != NULL)
        args[n++] = str_arg(GRPC_ARG_DEFAULT_AUTHORITY, t->authority);
    if (t->creds == LG__XDS_CREDS_TLS && t->sni != NULL)
        args[n++] = str_arg(GRPC_SSL_TARGET_NAME_OVERRIDE_ARG, t->sni);
    grpc_channel_args cargs = {.num_args = n, .args = args};
    grpc_channel *channel = grpc_channel_create(t->target, creds, &cargs);
    grpc_channel_credentials_release(creds);
    if (channel == NULL) {
        lg_error_set(err, "cannot create a gRPC channel to %s", t->target);
        return NULL;
    }
    lg__xds_channel_t *ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        lg_fatal("out of memory");
    ch->g = g;
    ch->channel = channel;
    if (t->n_metadata > 0) {
        ch->md_keys = calloc(t->n_metadata, sizeof(char *));
        ch->md_values = calloc(t->n_metadata, sizeof(char *));
        if (ch->md_keys == NULL || ch->md_values == NULL)
            lg_fatal("out of memory");
        for (size_t i = 0; i < t->n_metadata; ++i) {
            ch->md_keys[i] = lg_xstrdup(t->md_keys[i]);
            ch->md_values[i] = lg_xstrdup(t->md_values[i]);
        }
        ch->n_md = t->n_metadata;
    }
    return ch;
}

int lg__xds_channel_ready(lg__xds_channel_t *ch, int try_to_connect)
{
    return grpc_channel_check_connectivity_state(ch->channel, try_to_connect) == GRPC_CHANNEL_READY;
}

void lg__xds_channel_free(lg__xds_channel_t *ch)
{
    if (ch == NULL)
        return;
    grpc_channel_destroy(ch->channel);
    for (size_t i = 0; i < ch->n_md; ++i) {
        free(ch->md_keys[i]);
        free(ch->md_values[i]);
    }
    free(ch->md_keys);
    free(ch->md_values);
    free(ch);
}

/* ------------------------------------------------------------------------------------------- */
/* Start and stop                                                                              */
/* ------------------------------------------------------------------------------------------- */

lg__xds_grpc_t *lg__xds_grpc_start(h2o_evloop_t *loop)
{
    lg__xds_grpc_t *g = calloc(1, sizeof(*g));
    if (g == NULL)
        lg_fatal("out of memory");
    grpc_init();
    g->loop = loop;
    h2o_linklist_init_anchor(&g->calls);
    g->cq = grpc_completion_queue_create_for_next(NULL);
    g->queue = h2o_multithread_create_queue(loop);
    h2o_multithread_register_receiver(g->queue, &g->receiver, on_events);
    if (pthread_create(&g->thread, NULL, cq_main, g) != 0)
        lg_fatal("cannot start the gRPC completion-queue thread");
    pthread_setname_np(g->thread, "lg-xds-cq");
    return g;
}

void lg__xds_grpc_stop(lg__xds_grpc_t *g)
{
    if (g == NULL)
        return;
    for (h2o_linklist_t *l = g->calls.next; l != &g->calls; l = l->next) {
        lg__xds_call_t *c = H2O_STRUCT_FROM_MEMBER(lg__xds_call_t, link, l);
        c->cbs = NULL;
        grpc_call_cancel(c->call, NULL);
    }
    /* gRPC hands back every operation of the cancelled calls before the queue reports shutdown;
     * the thread forwards them all, then exits. */
    grpc_completion_queue_shutdown(g->cq);
    pthread_join(g->thread, NULL);
    /* What the thread forwarded and the loop did not run yet is run here: the thread is gone, so
     * nothing else touches the receiver's list. */
    if (!h2o_linklist_is_empty(&g->receiver._messages)) {
        h2o_linklist_t messages;
        h2o_linklist_init_anchor(&messages);
        h2o_linklist_insert_list(&messages, &g->receiver._messages);
        on_events(&g->receiver, &messages);
    }
    if (!h2o_linklist_is_empty(&g->calls))
        lg_err(xds, "gRPC calls still open at shutdown");
    h2o_multithread_unregister_receiver(g->queue, &g->receiver);
    h2o_multithread_destroy_queue(g->queue);
    free(g->queue); /* h2o 2.2.5's evloop build does not free it (architecture-notes §6) */
    grpc_completion_queue_destroy(g->cq);
    grpc_shutdown_blocking();
    free(g);
}
