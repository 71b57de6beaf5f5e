/*
 * Timers of any duration on a ladder of fixed-duration h2o buckets: see deadline_timer.h.
 */
#include "deadline_timer.h"

static const uint64_t rung_ms[LG_DEADLINE_N_RUNGS] = {1000, 100, 10, 1};

void lg_deadline_rungs_init(lg_deadline_rungs_t *r, h2o_evloop_t *loop)
{
    r->loop = loop;
    for (int i = 0; i < LG_DEADLINE_N_RUNGS; ++i)
        h2o_timeout_init(loop, &r->rungs[i], rung_ms[i]);
}

void lg_deadline_rungs_dispose(lg_deadline_rungs_t *r)
{
    for (int i = 0; i < LG_DEADLINE_N_RUNGS; ++i)
        h2o_timeout_dispose(r->loop, &r->rungs[i]);
}

/* Links the entry to the longest bucket that does not pass the deadline (the 1 ms one at least,
 * so a due timer still waits for the next loop pass and never runs inside its starter). */
static void link_rung(lg_deadline_timer_t *t)
{
    uint64_t now = h2o_now(t->_rungs->loop), left = t->_at > now ? t->_at - now : 0;
    int i = 0;
    while (i < LG_DEADLINE_N_RUNGS - 1 && rung_ms[i] > left)
        ++i;
    h2o_timeout_link(t->_rungs->loop, &t->_rungs->rungs[i], &t->_entry);
}

static void on_rung(h2o_timeout_entry_t *e)
{
    lg_deadline_timer_t *t = H2O_STRUCT_FROM_MEMBER(lg_deadline_timer_t, _entry, e);
    if (h2o_now(t->_rungs->loop) < t->_at) {
        link_rung(t);
        return;
    }
    t->cb(t);
}

void lg_deadline_timer_init(lg_deadline_timer_t *t, lg_deadline_rungs_t *r, lg_deadline_timer_cb cb)
{
    *t = (lg_deadline_timer_t){.cb = cb, ._entry = {.cb = on_rung}, ._rungs = r};
}

void lg_deadline_timer_start(lg_deadline_timer_t *t, uint64_t delay_ms)
{
    h2o_timeout_unlink(&t->_entry);
    t->_at = h2o_now(t->_rungs->loop) + delay_ms;
    link_rung(t);
}

void lg_deadline_timer_stop(lg_deadline_timer_t *t)
{
    h2o_timeout_unlink(&t->_entry);
}

int lg_deadline_timer_is_running(const lg_deadline_timer_t *t)
{
    return h2o_timeout_is_linked((h2o_timeout_entry_t *)&t->_entry);
}
