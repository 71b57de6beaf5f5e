/*
 * Loading the bootstrap: see bootstrap.h. The file's extension picks the format as Envoy does:
 * .json, .yaml and .yml are text (one converter reads both), .pb is binary protobuf; anything else is
 * read as YAML.
 */
#include "bootstrap.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pb_yaml.h"
#include "xalloc.h"

#define MAX_CONFIG_BYTES (64u << 20)

static int read_file(const char *path, char **data, size_t *len, lg_error_t *err)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return lg_error_set(err, "%s: cannot read the configuration: %s", path, strerror(errno));
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *g = realloc(buf, cap + 1);
            if (g == NULL)
                lg_fatal("out of memory");
            buf = g;
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
        if (n > MAX_CONFIG_BYTES) {
            free(buf);
            fclose(f);
            return lg_error_set(err, "%s: the configuration is larger than %u MiB", path,
                                MAX_CONFIG_BYTES >> 20);
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(buf);
        return lg_error_set(err, "%s: cannot read the configuration", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void set_string(char **field, const char *value)
{
    if (*field != NULL && *field != protobuf_c_empty_string)
        free(*field);
    *field = lg_xstrdup(value);
}

/* --service-node/-cluster/-zone override the bootstrap's node, as in Envoy. */
static void apply_cli_node(lg_bootstrap_pb_t *pb, const lg_options_t *opts)
{
    if (opts->service_node == NULL && opts->service_cluster == NULL && opts->service_zone == NULL)
        return;
    if (pb->node == NULL) {
        pb->node = malloc(sizeof(*pb->node));
        if (pb->node == NULL)
            lg_fatal("out of memory");
        envoy__config__core__v3__node__init(pb->node);
    }
    if (opts->service_node != NULL)
        set_string(&pb->node->id, opts->service_node);
    if (opts->service_cluster != NULL)
        set_string(&pb->node->cluster, opts->service_cluster);
    if (opts->service_zone != NULL) {
        if (pb->node->locality == NULL) {
            pb->node->locality = malloc(sizeof(*pb->node->locality));
            if (pb->node->locality == NULL)
                lg_fatal("out of memory");
            envoy__config__core__v3__locality__init(pb->node->locality);
        }
        set_string(&pb->node->locality->zone, opts->service_zone);
    }
}

static lg_bootstrap_pb_t *new_bootstrap(void)
{
    lg_bootstrap_pb_t *pb = malloc(sizeof(*pb));
    if (pb == NULL)
        lg_fatal("out of memory");
    envoy__config__bootstrap__v3__bootstrap__init(pb);
    return pb;
}

int lg_bootstrap_load(lg_bootstrap_t *out, const lg_options_t *opts, lg_error_t *err)
{
    memset(out, 0, sizeof(*out));
    lg_srcmap_init(&out->srcmap);
    out->name = opts->config_path != NULL ? opts->config_path : "<config-yaml>";

    if (opts->config_path != NULL) {
        char *data = NULL;
        size_t len = 0;
        if (read_file(opts->config_path, &data, &len, err) != 0)
            goto fail;
        if (ends_with(opts->config_path, ".pb")) {
            out->pb = (lg_bootstrap_pb_t *)protobuf_c_message_unpack(
                &envoy__config__bootstrap__v3__bootstrap__descriptor, NULL, len, (uint8_t *)data);
            free(data);
            if (out->pb == NULL) {
                lg_error_set(err, "%s: not a valid binary envoy.config.bootstrap.v3.Bootstrap",
                             opts->config_path);
                goto fail;
            }
        } else if (ends_with(opts->config_path, ".pb_text")) {
            free(data);
            lg_error_set(err, "%s: text-format protobuf (.pb_text) is not supported by legate; use YAML or JSON",
                         opts->config_path);
            goto fail;
        } else {
            out->pb = new_bootstrap();
            int r = lg_pb_from_yaml(&out->pb->base, data, len, opts->config_path, &out->srcmap, err);
            free(data);
            if (r != 0)
                goto fail;
        }
    }
    if (out->pb == NULL)
        out->pb = new_bootstrap();
    if (opts->config_yaml != NULL &&
        lg_pb_from_yaml(&out->pb->base, opts->config_yaml, strlen(opts->config_yaml), "<config-yaml>",
                        &out->srcmap, err) != 0)
        goto fail;
    apply_cli_node(out->pb, opts);
    if (lg_bootstrap_validate(out->pb, &out->srcmap, out->name, err) != 0)
        goto fail;
    return 0;
fail:
    lg_bootstrap_dispose(out);
    return -1;
}

int lg_bootstrap_load_text(lg_bootstrap_t *out, const char *text, size_t len, const char *name,
                           lg_error_t *err)
{
    memset(out, 0, sizeof(*out));
    lg_srcmap_init(&out->srcmap);
    out->name = name;
    out->pb = new_bootstrap();
    if (lg_pb_from_yaml(&out->pb->base, text, len, name, &out->srcmap, err) != 0 ||
        lg_bootstrap_validate(out->pb, &out->srcmap, name, err) != 0) {
        lg_bootstrap_dispose(out);
        return -1;
    }
    return 0;
}

void lg_bootstrap_dispose(lg_bootstrap_t *b)
{
    if (b->pb != NULL)
        protobuf_c_message_free_unpacked(&b->pb->base, NULL);
    lg_srcmap_dispose(&b->srcmap);
    b->pb = NULL;
}
