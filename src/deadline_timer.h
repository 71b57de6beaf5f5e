/*
 * Timers of any duration on h2o 2.2.5, whose timeout lists each have one fixed duration
 * (architecture-notes §0.3): a timer sits in the longest of four buckets (1 s, 100 ms, 10 ms, 1 ms)
 * that does not pass its deadline and moves down the ladder as it fires early. A few wakeups per
 * timer, no busy loop. For the main thread's slow timers (DNS refresh, c-ares query timeouts); the
 * request path uses per-duration buckets (lg_worker_timeout) instead.
 *
 * One lg_deadline_rungs_t per loop user; every timer on it must be stopped before it is disposed.
 * Thread: the loop's.
 */
#ifndef LG_DEADLINE_TIMER_H
#define LG_DEADLINE_TIMER_H

#include <stdint.h>

#include <h2o/socket.h>
#include <h2o/timeout.h>

#define LG_DEADLINE_N_RUNGS 4

typedef struct st_lg_deadline_rungs_t {
    h2o_evloop_t *loop;
    h2o_timeout_t rungs[LG_DEADLINE_N_RUNGS];
} lg_deadline_rungs_t;

typedef struct st_lg_deadline_timer_t lg_deadline_timer_t;
typedef void (*lg_deadline_timer_cb)(lg_deadline_timer_t *t);

struct st_lg_deadline_timer_t {
    lg_deadline_timer_cb cb;
    h2o_timeout_entry_t _entry;
    lg_deadline_rungs_t *_rungs;
    uint64_t _at; /* h2o_now() ms */
};

void lg_deadline_rungs_init(lg_deadline_rungs_t *r, h2o_evloop_t *loop);
/** Disposes the buckets; every timer on them must be stopped. */
void lg_deadline_rungs_dispose(lg_deadline_rungs_t *r);

/** Prepares `t` (embedded by its owner, found again with H2O_STRUCT_FROM_MEMBER in `cb`). */
void lg_deadline_timer_init(lg_deadline_timer_t *t, lg_deadline_rungs_t *r, lg_deadline_timer_cb cb);
/** (Re)starts `t` to fire once, `delay_ms` from now (0 fires on the next loop pass). */
void lg_deadline_timer_start(lg_deadline_timer_t *t, uint64_t delay_ms);
/** Stops `t`; safe when it is not running. */
void lg_deadline_timer_stop(lg_deadline_timer_t *t);
int lg_deadline_timer_is_running(const lg_deadline_timer_t *t);

#endif
