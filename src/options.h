/*
 * The command line, with Envoy's flags and meanings, so that scripts written for `envoy` run
 * `legate` unchanged. Flags legate reads but has no use for (hot restart, base id) are accepted and
 * noted; unknown flags are an error with the usage text.
 */
#ifndef LG_OPTIONS_H
#define LG_OPTIONS_H

#include <stdio.h>

typedef enum en_lg_mode_t {
    LG_MODE_SERVE,
    LG_MODE_VALIDATE,
    LG_MODE_INIT_ONLY,
} lg_mode_t;

typedef struct st_lg_options_t {
    const char *config_path;        /* -c, --config-path */
    const char *config_yaml;        /* --config-yaml, merged over the file */
    lg_mode_t mode;                 /* --mode */
    int log_level;                  /* -l, --log-level (lg_log_level_t) */
    const char *component_log_level; /* --component-log-level */
    const char *log_path;           /* --log-path */
    const char *log_format;         /* --log-format (an spdlog pattern: lg_log_set_format) */
    unsigned concurrency;           /* --concurrency; 0 = number of cores */
    const char *service_node, *service_cluster, *service_zone;
    unsigned drain_time_s;          /* --drain-time-s, default 600 */
    unsigned parent_shutdown_time_s; /* --parent-shutdown-time-s, default 900 */
    const char *drain_strategy;     /* --drain-strategy gradual|immediate */
    const char *local_address_ip_version; /* --local-address-ip-version v4|v6 */
    int print_config;               /* --print-config: with --mode validate, print effective JSON */
    int help, version;
    int argc;
    char **argv;                    /* the whole command line, for /server_info */
} lg_options_t;

/**
 * Parses argv into opts (which it initialises with the defaults first). Returns 0, or -1 with a
 * one-line reason in errbuf. Strings in opts point into argv.
 */
int lg_options_parse(lg_options_t *opts, int argc, char **argv, char *errbuf, size_t errlen);

/** Writes the grouped usage text. */
void lg_options_usage(FILE *out, const char *argv0);

#endif
