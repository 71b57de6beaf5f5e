/*
 * Accepting downstream connections on a worker: see listener.c.
 */
#ifndef LG_LISTENER_H
#define LG_LISTENER_H

#include "worker.h"

/** Starts accepting on `fd` (bound by the main thread) for `config`; worker thread. */
void lg_listener_start(lg_worker_t *w, lg_worker_listener_t *wl, const lg_listener_t *config, int fd);

#endif
