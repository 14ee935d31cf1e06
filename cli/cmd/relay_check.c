/* SPDX-License-Identifier: MIT */
/*
 * relay_check.h: connect, and close at once.
 *
 * Everything runs on worker 0 (the timer and the check connections), so
 * the busy flags need no lock; the verdicts go to the pools, which take
 * their own.
 */
#include "relay_check.h"

#include <stdlib.h>

#include "diag.h"

struct check_slot {
    struct relay_check *rc;
    struct balance *pool;
    unsigned i;
    unsigned epoch; /* the target's when the check began (relay_balance.h) */
    bool busy;   /* a check connect of it has not closed yet */
    bool opened; /* that connect was made */
};

struct relay_check {
    struct iocp_engine *e;
    struct iocp_timer *timer;
    unsigned period_ms;
    struct check_slot *slot;
    unsigned nslots;
};

static void check_open(struct iocp_conn *c)
{
    struct check_slot *s = iocp_conn_data(c);
    s->opened = true;
    if (balance_checked(s->pool, s->i, true, s->epoch))
        health_ok(&s->pool->t[s->i].health);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static void check_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static void check_close(struct iocp_conn *c, int status)
{
    struct check_slot *s = iocp_conn_data(c);
    s->busy = false;
    if (s->opened || status == IOCP_ECANCELED)
        return; /* answered, or the engine stops */
    struct balance_target *t = &s->pool->t[s->i];
    diag_info(1, "relay: check of %s: %s", t->name, iocp_strerror(status));
    health_failed(&t->health, HEALTH_UNREACHABLE, iocp_strerror(status));
    balance_checked(s->pool, s->i, false, s->epoch);
}

static const struct iocp_conn_handler check_handler = {
    .on_open = check_open,
    .on_data = check_data,
    .on_close = check_close,
};

static void check_all(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct relay_check *rc = arg;
    for (unsigned k = 0; k < rc->nslots; k++) {
        struct check_slot *s = &rc->slot[k];
        if (s->busy)
            continue;
        struct balance_target *bt = &s->pool->t[s->i];
        struct iocp_connect_config cfg = {
            .host = bt->host,
            .port = bt->port,
            .timeout_ms = rc->period_ms,
            .worker = 0,
            .handler = &check_handler,
            .data = s,
        };
        s->opened = false;
        s->epoch = balance_epoch(s->pool, s->i);
        int r = iocp_connect(rc->e, &cfg);
        if (r == 0) {
            s->busy = true;
        } else {
            health_failed(&bt->health, HEALTH_UNREACHABLE, iocp_strerror(r));
            balance_checked(s->pool, s->i, false, s->epoch);
        }
    }
}

int relay_check_start(struct relay_check **out, struct iocp_engine *e, struct relay_ports *ports,
                      unsigned period_ms)
{
    struct relay_check *rc = calloc(1, sizeof *rc);
    unsigned n = 0;
    for (unsigned k = 0; k < ports->n; k++)
        n += ports->port[k].pool.n;
    if (rc)
        rc->slot = calloc(n, sizeof *rc->slot);
    if (!rc || !rc->slot) {
        free(rc);
        diag_error("relay: --check: out of memory");
        return -1;
    }
    rc->e = e;
    rc->period_ms = period_ms;
    rc->nslots = n;
    n = 0;
    for (unsigned k = 0; k < ports->n; k++)
        for (unsigned i = 0; i < ports->port[k].pool.n; i++)
            rc->slot[n++] = (struct check_slot){.rc = rc, .pool = &ports->port[k].pool, .i = i};
    int r = iocp_timer_new(e, 0, check_all, rc, &rc->timer);
    if (r == 0)
        r = iocp_timer_start(rc->timer, 0, period_ms);
    if (r < 0) {
        diag_error("relay: --check: %s", iocp_strerror(r));
        relay_check_free(rc);
        return -1;
    }
    *out = rc;
    return 0;
}

void relay_check_free(struct relay_check *c)
{
    if (!c)
        return;
    iocp_timer_free(c->timer);
    free(c->slot);
    free(c);
}
