/*
 * Command-line parsing: see options.h. Both `--flag value` and `--flag=value` work, as with
 * Envoy's TCLAP parser.
 */
#include "options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

typedef enum en_opt_kind_t { OPT_STRING, OPT_UINT, OPT_FLAG, OPT_IGNORED_VALUE, OPT_IGNORED_FLAG } opt_kind_t;

typedef struct st_opt_t {
    const char *shortname, *name;
    opt_kind_t kind;
    size_t offset; /* into lg_options_t, for OPT_STRING / OPT_UINT / OPT_FLAG */
    const char *arg, *help;
} opt_t;

#define OFF(f) offsetof(lg_options_t, f)

/* Groups are separated by entries with a NULL name; their help is the heading. */
static const opt_t opts_table[] = {
    {NULL, NULL, 0, 0, NULL, "Configuration"},
    {"-c", "--config-path", OPT_STRING, OFF(config_path), "<path>",
     "Envoy v3 bootstrap file (.yaml, .yml, .json or binary .pb)"},
    {NULL, "--config-yaml", OPT_STRING, OFF(config_yaml), "<yaml>",
     "bootstrap YAML/JSON merged over the file (repeated fields append)"},
    {NULL, "--mode", OPT_STRING, 0, "<serve|validate|init_only>",
     "serve (default); validate: check the config and exit; init_only: load and exit"},
    {NULL, "--print-config", OPT_FLAG, OFF(print_config), NULL,
     "with --mode validate: print the effective configuration as JSON"},
    {NULL, NULL, 0, 0, NULL, "Identity"},
    {NULL, "--service-node", OPT_STRING, OFF(service_node), "<id>", "node.id sent to the control plane"},
    {NULL, "--service-cluster", OPT_STRING, OFF(service_cluster), "<name>", "node.cluster"},
    {NULL, "--service-zone", OPT_STRING, OFF(service_zone), "<zone>", "node.locality.zone"},
    {NULL, NULL, 0, 0, NULL, "Runtime"},
    {NULL, "--concurrency", OPT_UINT, OFF(concurrency), "<n>", "worker threads (default: number of cores)"},
    {NULL, "--drain-time-s", OPT_UINT, OFF(drain_time_s), "<s>", "drain time on shutdown (default 600)"},
    {NULL, "--parent-shutdown-time-s", OPT_UINT, OFF(parent_shutdown_time_s), "<s>",
     "accepted for compatibility (default 900)"},
    {NULL, "--drain-strategy", OPT_STRING, OFF(drain_strategy), "<gradual|immediate>", "drain strategy"},
    {NULL, "--local-address-ip-version", OPT_STRING, OFF(local_address_ip_version), "<v4|v6>",
     "IP version of the local address"},
    {NULL, NULL, 0, 0, NULL, "Logging"},
    {"-l", "--log-level", OPT_STRING, 0, "<level>",
     "trace, debug, info (default), warning, error, critical, off"},
    {NULL, "--component-log-level", OPT_STRING, OFF(component_log_level), "<c:level,...>",
     "per-component levels, e.g. upstream:debug,connection:trace"},
    {NULL, "--log-path", OPT_STRING, OFF(log_path), "<path>", "write logs to this file"},
    {NULL, "--log-format", OPT_STRING, OFF(log_format), "<format>", "log line pattern (spdlog flags, as Envoy)"},
    {NULL, NULL, 0, 0, NULL, "Accepted and ignored (Envoy hot restart and friends)"},
    {NULL, "--base-id", OPT_IGNORED_VALUE, 0, "<n>", NULL},
    {NULL, "--restart-epoch", OPT_IGNORED_VALUE, 0, "<n>", NULL},
    {NULL, "--disable-hot-restart", OPT_IGNORED_FLAG, 0, NULL, NULL},
    {NULL, "--use-dynamic-base-id", OPT_IGNORED_FLAG, 0, NULL, NULL},
    {NULL, "--file-flush-interval-msec", OPT_IGNORED_VALUE, 0, "<ms>", NULL},
    {NULL, "--enable-core-dump", OPT_IGNORED_FLAG, 0, NULL, NULL},
    {NULL, NULL, 0, 0, NULL, "Other"},
    {NULL, "--version", OPT_FLAG, OFF(version), NULL, "print the version and exit"},
    {"-h", "--help", OPT_FLAG, OFF(help), NULL, "print this help and exit"},
};

void lg_options_usage(FILE *out, const char *argv0)
{
    fprintf(out, "Usage: %s [-c <path>] [--config-yaml <yaml>] [--mode serve|validate] [options]\n", argv0);
    for (size_t i = 0; i < sizeof(opts_table) / sizeof(opts_table[0]); ++i) {
        const opt_t *o = &opts_table[i];
        if (o->name == NULL) {
            fprintf(out, "\n%s:\n", o->help);
            continue;
        }
        char left[80];
        snprintf(left, sizeof(left), "%s%s%s%s%s", o->shortname ? o->shortname : "",
                 o->shortname ? ", " : "", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (o->help != NULL)
            fprintf(out, "  %-42s %s\n", left, o->help);
        else
            fprintf(out, "  %s\n", left);
    }
}

static int parse_uint(const char *s, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || v > 1000000)
        return -1;
    *out = (unsigned)v;
    return 0;
}

int lg_options_parse(lg_options_t *opts, int argc, char **argv, char *errbuf, size_t errlen)
{
    memset(opts, 0, sizeof(*opts));
    opts->mode = LG_MODE_SERVE;
    opts->log_level = LG_LOG_INFO;
    opts->drain_time_s = 600;
    opts->parent_shutdown_time_s = 900;
    opts->drain_strategy = "gradual";
    opts->argc = argc;
    opts->argv = argv;

    for (int i = 1; i < argc; ++i) {
        char *arg = argv[i], *value = NULL;
        char name[128];
        const char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        size_t nlen = eq != NULL ? (size_t)(eq - arg) : strlen(arg);
        if (nlen >= sizeof(name)) {
            snprintf(errbuf, errlen, "unknown option \"%s\"", arg);
            return -1;
        }
        memcpy(name, arg, nlen);
        name[nlen] = '\0';
        const opt_t *o = NULL;
        for (size_t j = 0; j < sizeof(opts_table) / sizeof(opts_table[0]); ++j) {
            const opt_t *c = &opts_table[j];
            if (c->name != NULL && (strcmp(c->name, name) == 0 ||
                                    (c->shortname != NULL && eq == NULL && strcmp(c->shortname, name) == 0))) {
                o = c;
                break;
            }
        }
        if (o == NULL) {
            snprintf(errbuf, errlen, "unknown option \"%s\"", arg);
            return -1;
        }
        int takes_value = o->kind == OPT_STRING || o->kind == OPT_UINT || o->kind == OPT_IGNORED_VALUE;
        if (takes_value) {
            if (eq != NULL) {
                value = (char *)eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                snprintf(errbuf, errlen, "option %s needs a value", o->name);
                return -1;
            }
        } else if (eq != NULL) {
            snprintf(errbuf, errlen, "option %s takes no value", o->name);
            return -1;
        }

        if (strcmp(o->name, "--mode") == 0) {
            if (strcmp(value, "serve") == 0)
                opts->mode = LG_MODE_SERVE;
            else if (strcmp(value, "validate") == 0)
                opts->mode = LG_MODE_VALIDATE;
            else if (strcmp(value, "init_only") == 0)
                opts->mode = LG_MODE_INIT_ONLY;
            else {
                snprintf(errbuf, errlen, "invalid --mode \"%s\" (serve, validate or init_only)", value);
                return -1;
            }
            continue;
        }
        if (strcmp(o->name, "--log-level") == 0) {
            if ((opts->log_level = lg_log_level_parse(value)) < 0) {
                snprintf(errbuf, errlen,
                         "invalid --log-level \"%s\" (trace, debug, info, warning, error, critical, off)",
                         value);
                return -1;
            }
            continue;
        }
        switch (o->kind) {
        case OPT_STRING:
            *(const char **)((char *)opts + o->offset) = value;
            break;
        case OPT_UINT:
            if (parse_uint(value, (unsigned *)((char *)opts + o->offset)) != 0) {
                snprintf(errbuf, errlen, "option %s needs a number, got \"%s\"", o->name, value);
                return -1;
            }
            break;
        case OPT_FLAG:
            *(int *)((char *)opts + o->offset) = 1;
            break;
        case OPT_IGNORED_VALUE:
        case OPT_IGNORED_FLAG:
            break;
        }
    }
    if (strcmp(opts->drain_strategy, "gradual") != 0 && strcmp(opts->drain_strategy, "immediate") != 0) {
        snprintf(errbuf, errlen, "invalid --drain-strategy \"%s\" (gradual or immediate)", opts->drain_strategy);
        return -1;
    }
    if (opts->local_address_ip_version != NULL && strcmp(opts->local_address_ip_version, "v4") != 0 &&
        strcmp(opts->local_address_ip_version, "v6") != 0) {
        snprintf(errbuf, errlen, "invalid --local-address-ip-version \"%s\" (v4 or v6)",
                 opts->local_address_ip_version);
        return -1;
    }
    if (!opts->help && !opts->version && opts->config_path == NULL && opts->config_yaml == NULL) {
        snprintf(errbuf, errlen, "no configuration: give -c <path> and/or --config-yaml <yaml>");
        return -1;
    }
    return 0;
}
