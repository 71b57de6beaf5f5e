/*
 * Serving (--mode serve): see server.c.
 */
#ifndef LG_SERVER_H
#define LG_SERVER_H

#include "bootstrap.h"
#include "options.h"

/** Runs legate until SIGTERM (drained) or SIGINT. Returns the process exit code. Main thread. */
int lg_server_run(const lg_bootstrap_t *bootstrap, const lg_options_t *opts);

#endif
