/*
 * legate's entry point: parse Envoy's command line, load and validate the bootstrap, then either
 * report (--mode validate) or serve. Serving itself lives in server.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bootstrap.h"
#include "log.h"
#include "options.h"
#include "pb_json.h"
#include "server.h"
#include "snapshot.h"

int main(int argc, char **argv)
{
    lg_options_t opts;
    char errbuf[512];
    lg_error_t err;

    if (lg_options_parse(&opts, argc, argv, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "legate: %s\n\n", errbuf);
        lg_options_usage(stderr, argv[0]);
        return 1;
    }
    if (opts.help) {
        printf("legate: an Envoy-compatible, xDS-driven HTTP/1.1 and HTTP/2 gateway\n\n");
        lg_options_usage(stdout, argv[0]);
        return 0;
    }
    if (opts.version) {
        printf("legate version: %s/RELEASE/OpenSSL\n", LG_VERSION);
        return 0;
    }
    lg_log_set_level(opts.log_level);
    if (opts.log_path != NULL && opts.log_path[0] != '\0' &&
        lg_log_set_path(opts.log_path, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "legate: --log-path: %s\n", errbuf);
        return 1;
    }
    if (opts.log_format != NULL && lg_log_set_format(opts.log_format) != 0)
        lg_warn(main, "--log-format \"%s\" uses flags legate does not know: keeping the default format",
                opts.log_format);
    if (opts.component_log_level != NULL &&
        lg_log_set_component_levels(opts.component_log_level, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "legate: --component-log-level: %s\n", errbuf);
        return 1;
    }

    lg_bootstrap_t bootstrap;
    if (lg_bootstrap_load(&bootstrap, &opts, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }

    int ret = 0;
    switch (opts.mode) {
    case LG_MODE_VALIDATE:
    case LG_MODE_INIT_ONLY: {
        /* As Envoy's validate mode: everything is built (routes, regexes, TLS contexts, filter
         * configs) except the sockets, so a config that validates also starts. */
        lg_snapshot_t *snap = lg_snapshot_build_ex(&bootstrap, opts.mode == LG_MODE_VALIDATE, &err);
        if (snap == NULL) {
            fprintf(stderr, "%s\n", err.msg);
            lg_bootstrap_dispose(&bootstrap);
            return 1;
        }
        lg_snapshot_release(snap);
        if (opts.print_config) {
            /* stdout is then exactly the JSON, so it can be piped back into --config-yaml. */
            char *json = lg_pb_to_json(&bootstrap.pb->base, 2);
            printf("%s\n", json);
            free(json);
            fprintf(stderr, "configuration '%s' OK\n", bootstrap.name);
        } else {
            printf("configuration '%s' OK\n", bootstrap.name);
        }
        break;
    }
    case LG_MODE_SERVE:
        ret = lg_server_run(&bootstrap, &opts);
        break;
    }
    lg_bootstrap_dispose(&bootstrap);
    return ret;
}
