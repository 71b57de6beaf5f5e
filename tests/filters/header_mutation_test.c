/*
 * Unit tests of header_mutation's ordered lists (filters/header_mutation/config.c): steps apply
 * one after the other (an append sees what earlier steps did, unlike route-level lists), each
 * append_action, keep_empty_value, formatters against the request, and the config errors.
 */
#include <stdlib.h>
#include <string.h>

#include "envoy/extensions/filters/http/header_mutation/v3/header_mutation.pb-c.h"
#include "filters/header_mutation/header_mutation.h"
#include "lg_test.h"
#include "lg_test_headers.h"
#include "lg_test_pb.h"

static lg_error_t err;
static h2o_mem_pool_t pool;

typedef Envoy__Extensions__Filters__Http__HeaderMutation__V3__HeaderMutation pb_t;

/* Builds the request_mutations of a HeaderMutation written in YAML; 0 or -1 (err). */
static int build(lg_header_mutation_list_t *l, const char *yaml)
{
    pb_t *pb = (pb_t *)lg_test_pb_from_yaml(
        &envoy__extensions__filters__http__header_mutation__v3__header_mutation__descriptor, yaml, &err);
    *l = (lg_header_mutation_list_t){NULL, 0};
    if (pb == NULL)
        return -1;
    lg_path_t path;
    lg_path_init(&path);
    lg_path_push_field(&path, "request_mutations");
    int rc = lg_header_mutation_list_init(l, pb->mutations->request_mutations, pb->mutations->n_request_mutations,
                                          &path, &err);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    return rc;
}

static const char *dump(const lg_headers_t *h)
{
    return lg_test_headers_dump(h, "=", ";");
}

static const char *run(const char *yaml, const char *const *in)
{
    lg_header_mutation_list_t l;
    if (build(&l, yaml) != 0)
        return err.msg;
    lg_request_head_t req;
    memset(&req, 0, sizeof(req));
    req.method = h2o_iovec_init("GET", 3);
    for (size_t i = 0; in[i] != NULL; i += 2)
        lg_headers_add_copy(&pool, &req.headers, in[i], strlen(in[i]), in[i + 1], strlen(in[i + 1]));
    lg_format_context_t ctx = {NULL, &req, NULL};
    lg_header_mutation_list_apply(&l, &req.headers, &ctx, &pool);
    const char *out = dump(&req.headers); /* names and constant values reference the config */
    lg_header_mutation_list_dispose(&l);
    return out;
}

LG_TEST(test_steps_apply_in_order)
{
    const char *in[] = {"x-user", "alice", "x-drop", "1", "x-drop", "2", NULL};
    /* remove, then copy x-user into x-copy, then remove x-user: the copy sees the original */
    LG_EXPECT_STR(run("mutations:\n  request_mutations:\n"
                      "  - remove: x-drop\n"
                      "  - append: {header: {key: x-copy, value: '%REQ(x-user)%'}}\n"
                      "  - remove: x-user\n"
                      "  - append: {header: {key: x-after, value: 'u=%REQ(x-user)%;c=%REQ(x-copy)%'}}\n",
                      in),
                  "x-copy=alice;x-after=u=;c=alice;");
}

LG_TEST(test_append_actions)
{
    const char *in[] = {"a", "1", "b", "2", NULL};
    LG_EXPECT_STR(run("mutations:\n  request_mutations:\n"
                      "  - append: {header: {key: a, value: x}}\n"
                      "  - append: {header: {key: b, value: y}, append_action: OVERWRITE_IF_EXISTS_OR_ADD}\n"
                      "  - append: {header: {key: c, value: z}, append_action: OVERWRITE_IF_EXISTS}\n"
                      "  - append: {header: {key: a, value: w}, append_action: ADD_IF_ABSENT}\n"
                      "  - append: {header: {key: d, value: v}, append_action: ADD_IF_ABSENT}\n"
                      "  - append: {header: {key: e, value: ''}}\n"
                      "  - append: {header: {key: f, value: ''}, keep_empty_value: true}\n"
                      "  - append: {header: {key: g, value: '%REQ(missing)%'}}\n"
                      "  - append: {header: {key: a, value: q}, append: false}\n",
                      in),
                  "a=q;b=y;d=v;f=;");
}

LG_TEST(test_errors)
{
    lg_header_mutation_list_t l;
    LG_EXPECT_INT(build(&l, "mutations: {request_mutations: [{remove: x}, {append: {header: {key: x, value: '%NOPE%'}}}]}\n"), -1);
    LG_EXPECT_CONTAINS(err.msg, "request_mutations[1]");
    LG_EXPECT_CONTAINS(err.msg, "NOPE");
    LG_EXPECT_INT(build(&l, "mutations: {request_mutations: [{remove: ':path'}]}\n"), -1);
    LG_EXPECT_CONTAINS(err.msg, "may not be removed");
    LG_EXPECT_INT(build(&l, "mutations: {request_mutations: [{append: {header: {key: 'bad key', value: x}}}]}\n"), -1);
    LG_EXPECT_CONTAINS(err.msg, "invalid header name");
    LG_EXPECT_INT(build(&l, "mutations: {request_mutations: [{}]}\n"), -1);
    LG_EXPECT_CONTAINS(err.msg, "request_mutations[0]: one of remove or append is required");
    LG_EXPECT_INT(build(&l, "mutations: {request_mutations: [{append: {header: {key: a, value: b}, append: true, "
                            "append_action: ADD_IF_ABSENT}}]}\n"),
                  -1);
    LG_EXPECT_CONTAINS(err.msg, "Both append and append_action are set");
}

int main(void)
{
    h2o_mem_init_pool(&pool);
    LG_RUN(test_steps_apply_in_order);
    LG_RUN(test_append_actions);
    LG_RUN(test_errors);
    h2o_mem_clear_pool(&pool);
    return LG_TEST_END();
}
