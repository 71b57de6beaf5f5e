/*
 * The admin endpoint: Envoy's admin interface on `admin.address`, served on the main thread's
 * event loop (never a worker, so a slow or huge admin response cannot delay a request). The paths,
 * formats, status codes and texts are Envoy's, so that probes (/ready), dashboards
 * (/stats/prometheus), scripts (/quitquitquit, /healthcheck/fail, /drain_listeners) and tools that
 * read /config_dump or /clusters keep working when the binary is swapped.
 *
 * This file is the server's view: start, stop, and the hooks through which the admin asks the
 * server what it cannot know itself (current snapshot, init state) or asks it to act (quit, drain).
 * The HTTP/1.1 serving lives in admin.c; the bodies are rendered by admin_stats.c (/stats),
 * admin_status.c (/clusters, /listeners, /server_info, /memory, /runtime) and
 * admin_config_dump.c (/config_dump), declared in admin_render.h.
 *
 * Not for: the data plane's own health_check filter (it only reads lg_admin_health_check_failed).
 */
#ifndef LG_ADMIN_H
#define LG_ADMIN_H

#include <time.h>

#include <h2o/socket.h>

#include "bootstrap.h"
#include "error.h"
#include "options.h"
#include "snapshot.h"

/* Envoy's admin.v3.ServerInfo.State, same numbering. */
typedef enum en_lg_admin_state_t {
    LG_ADMIN_STATE_LIVE = 0,
    LG_ADMIN_STATE_DRAINING = 1,
    LG_ADMIN_STATE_PRE_INITIALIZING = 2,
    LG_ADMIN_STATE_INITIALIZING = 3,
} lg_admin_state_t;

/*
 * What the admin asks of the server. Every callback runs on the main thread, from the admin's
 * event handlers; any of them may be NULL (the endpoint then answers as if there were nothing:
 * no snapshot, state LIVE, quit and drain ignored with a warning). Copied by lg_admin_start.
 */
typedef struct st_lg_admin_hooks_t {
    void *data; /* passed to every callback */
    /* The snapshot currently published to workers, borrowed: valid until the callback returns to
     * the loop (the admin retains it while it renders). NULL before the first one exists. */
    lg_snapshot_t *(*snapshot)(void *data);
    /* The init/drain state: PRE_INITIALIZING, INITIALIZING (waiting for initial xDS), LIVE or
     * DRAINING. /healthcheck/fail turns LIVE into DRAINING on top of it, as Envoy does. */
    lg_admin_state_t (*state)(void *data);
    /* POST /quitquitquit: called once the "OK" response has been written. The server then stops
     * its loop and exits 0. */
    void (*quit)(void *data);
    /* POST /drain_listeners: stop accepting on the data-plane listeners (graceful: after letting
     * connections drain; inbound_only: only listeners with traffic_direction INBOUND). */
    void (*drain_listeners)(void *data, int graceful, int inbound_only);
    /* The xDS resources for /config_dump's dynamic sections; NULL (or returning NULL) without xDS. */
    const struct st_lg_dynamic_config_t *(*dynamic)(void *data);
    /* For /server_info: the parsed command line (borrowed, outlives the admin), the number of
     * workers actually started, and when the server started (wall clock; 0 = at lg_admin_start). */
    const lg_options_t *options;
    unsigned concurrency;
    time_t start_time;
} lg_admin_hooks_t;

typedef struct st_lg_admin_t lg_admin_t;

/**
 * Starts the admin listener on `main_loop` from `bootstrap->pb->admin` (address, access_log and
 * the deprecated access_log_path). Opens the access logs and registers the admin's own stats
 * (http.admin.*, listener.admin.*).
 *
 * @param bootstrap borrowed; must outlive the admin (/config_dump and /server_info read it).
 * @param hooks     copied.
 * @return the admin; NULL without touching `err` when the bootstrap has no admin address; NULL
 *         with `err` set when the address cannot be bound or an access log cannot be opened.
 * Thread: main thread, the one running `main_loop`.
 */
lg_admin_t *lg_admin_start(h2o_evloop_t *main_loop, const lg_bootstrap_t *bootstrap,
                           const lg_admin_hooks_t *hooks, lg_error_t *err);

/**
 * Closes the listener and every admin connection (a response being written is cut), disposes the
 * admin's timers and closes its access logs. The sockets are freed by the loop's next run, so
 * call h2o_evloop_run(loop, 0) once before destroying the loop. NULL is ignored.
 * Thread: main thread.
 */
void lg_admin_stop(lg_admin_t *a);

/** The bound port (useful when admin.address says port 0). Main thread. */
unsigned lg_admin_port(const lg_admin_t *a);

/**
 * Whether /healthcheck/fail is in force (until /healthcheck/ok). Process-wide, so the data plane's
 * health_check filter reads it without a pointer to the admin. Any thread (an atomic load).
 */
int lg_admin_health_check_failed(void);

#endif
