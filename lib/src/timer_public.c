/* SPDX-License-Identifier: MIT */
/*
 * The public timers of timer.h, on the worker heaps of timer.c.
 *
 * Only the timer's worker touches its heap.  Another thread reaches it
 * through the worker's post queue, and what must hold across threads lives
 * under the worker's timer_lock:
 *
 *  - Requests are numbered (issued).  `floor` is the number of the latest
 *    request in force: a start applies only if no later request has been
 *    applied, and the arming in the heap (armed_seq) may fire only while it
 *    is the one in force (armed_seq == floor).  A stop from any thread
 *    raises floor at once, under the lock, so the worker's check before a
 *    call (made under the same lock, which marks the call `firing`) either
 *    ran before the stop or sees it: no call starts after stop returns.
 *    A stop from a plain thread also waits for a call already `firing`.
 *  - A start from another thread allocates its request, posts it, and only
 *    then counts: if the post fails nothing has changed.
 *  - The memory of a freed timer goes when nothing refers to it any more:
 *    not the heap (in_heap), not a posted request (pending), not a call in
 *    progress (firing).  Whoever drops the last reference frees it, under
 *    the lock.
 *
 * Engine stop: the worker takes every public timer out of its heap when it
 * begins to stop, and arms none afterwards.  Packets posted before the stop
 * still run (iocp__post_running), so a request's memory is never lost.
 */
#include "core.h"

#include <stdlib.h>

struct iocp_timer {
    struct iocp_heap_timer node; /* the worker's */
    struct iocp_worker *w;
    iocp_timer_cb cb;
    void *arg;
    uint64_t repeat_ms;          /* of the arming in the heap; the worker's */
    /* Under w->timer_lock. */
    uint64_t issued;             /* last request number handed out */
    uint64_t floor;              /* the request in force */
    uint64_t armed_seq;          /* the request the heap's arming came from */
    uint32_t pending;            /* requests posted and not yet run */
    bool in_heap;
    bool firing;
    bool freed;
};

/* A start (or, for a free, a nudge to drop the timer from the heap) posted
 * from another thread. */
struct iocp_timer_req {
    struct iocp_timer *t;
    uint64_t seq;
    uint64_t due_ms;
    uint64_t repeat_ms;
    bool arm;
};

static void fire(struct iocp_heap_timer *node);

static bool on_worker(const struct iocp_timer *t)
{
    return iocp__worker_current() == t->w;
}

/* Free t if nothing refers to it any more.  With timer_lock held; true when
 * it was freed. */
static bool release_if_unused(struct iocp_timer *t)
{
    if (!t->freed || t->in_heap || t->pending || t->firing)
        return false;
    atomic_fetch_sub(&t->w->engine->timers_held, 1);
    free(t);
    return true;
}

/* Put t's arming in force into the heap, due at due_ms.  On the worker,
 * with timer_lock held. */
static int arm_on_worker(struct iocp_timer *t, uint64_t seq, uint64_t due_ms, uint64_t repeat_ms)
{
    struct iocp_worker *w = t->w;
    t->floor = seq;
    t->armed_seq = seq;
    t->repeat_ms = repeat_ms;
    int rc = iocp__timer_start(w, &t->node, due_ms);
    t->in_heap = rc == 0;
    return rc;
}

/* Take t out of the heap.  On the worker, with timer_lock held. */
static void disarm_on_worker(struct iocp_timer *t)
{
    if (t->in_heap) {
        iocp__timer_stop(t->w, &t->node);
        t->in_heap = false;
    }
}

int iocp_timer_new(struct iocp_engine *e, unsigned worker, iocp_timer_cb cb, void *arg,
                   struct iocp_timer **out)
{
    if (!e || !cb || !out) {
        iocp__set_error_detail("iocp_timer_new: engine, callback and out are required");
        return IOCP_EINVAL;
    }
    if (worker >= e->nworkers) {
        iocp__set_error_detail("iocp_timer_new: worker %u out of range (the engine has %u)", worker,
                               e->nworkers);
        return IOCP_EINVAL;
    }
    struct iocp_timer *t = calloc(1, sizeof *t);
    if (!t)
        return IOCP_ENOMEM;
    t->w = &e->workers[worker];
    t->cb = cb;
    t->arg = arg;
    iocp__timer_init(&t->node, fire);
    atomic_fetch_add(&e->timers_unfreed, 1);
    *out = t;
    return 0;
}

unsigned iocp_timer_worker(const struct iocp_timer *t)
{
    return t->w->index;
}

int iocp_timer_start(struct iocp_timer *t, uint64_t after_ms, uint64_t repeat_ms)
{
    if (!t)
        return IOCP_EINVAL;
    struct iocp_worker *w = t->w;
    struct iocp_engine *e = w->engine;
    if (atomic_load(&e->state) != IOCP_ENGINE_RUNNING)
        return IOCP_ESTATE;
    uint64_t due = iocp__now_ms() + after_ms;

    if (on_worker(t)) {
        iocp__mutex_lock(&w->timer_lock);
        int rc = arm_on_worker(t, ++t->issued, due, repeat_ms);
        iocp__mutex_unlock(&w->timer_lock);
        return rc;
    }

    struct iocp_timer_req *req = malloc(sizeof *req);
    if (!req)
        return IOCP_ENOMEM;
    iocp__mutex_lock(&w->timer_lock);
    *req = (struct iocp_timer_req){t, ++t->issued, due, repeat_ms, true};
    t->pending++;
    iocp__mutex_unlock(&w->timer_lock);
    int rc = iocp__post_running(e, w->index, IOCP_PKT_TIMER, (uint64_t)(uintptr_t)req);
    if (rc < 0) {
        /* The request never reached the worker.  Its number was taken, but
         * numbers only order requests: the timer is exactly as it was. */
        iocp__mutex_lock(&w->timer_lock);
        t->pending--;
        iocp__mutex_unlock(&w->timer_lock);
        free(req);
    }
    return rc;
}

/* Raise the floor: no arming made before this point fires any more.  With
 * timer_lock held; from a thread that is no worker at all, also wait for a
 * call already under way to return (the lock is dropped while waiting). */
static void stop_locked(struct iocp_timer *t)
{
    struct iocp_worker *w = t->w;
    t->floor = ++t->issued;
    if (on_worker(t)) {
        disarm_on_worker(t);
        return;
    }
    if (iocp__worker_current())
        return; /* another worker's callback: waiting could deadlock */
    while (t->firing) {
        iocp__mutex_unlock(&w->timer_lock);
        iocp__sleep_ms(0);
        iocp__mutex_lock(&w->timer_lock);
    }
}

int iocp_timer_stop(struct iocp_timer *t)
{
    if (!t)
        return IOCP_EINVAL;
    iocp__mutex_lock(&t->w->timer_lock);
    stop_locked(t);
    iocp__mutex_unlock(&t->w->timer_lock);
    return 0;
}

void iocp_timer_free(struct iocp_timer *t)
{
    if (!t)
        return;
    struct iocp_worker *w = t->w;
    struct iocp_engine *e = w->engine;
    iocp__mutex_lock(&w->timer_lock);
    stop_locked(t);
    t->freed = true;
    atomic_fetch_sub(&e->timers_unfreed, 1);
    atomic_fetch_add(&e->timers_held, 1);
    bool nudge = t->in_heap && !on_worker(t);
    if (release_if_unused(t)) {
        iocp__mutex_unlock(&w->timer_lock);
        return;
    }
    if (nudge)
        t->pending++;
    iocp__mutex_unlock(&w->timer_lock);
    if (!nudge)
        return; /* the worker frees it once its callback or request is done */

    /* A stopped arming would stay in the heap, and the timer's memory with
     * it, until its due time; ask the worker to drop it now.  If that post
     * fails the due time (or an engine stop) still frees it. */
    struct iocp_timer_req *req = malloc(sizeof *req);
    int rc = IOCP_ENOMEM;
    if (req) {
        *req = (struct iocp_timer_req){t, 0, 0, 0, false};
        rc = iocp__post_running(e, w->index, IOCP_PKT_TIMER, (uint64_t)(uintptr_t)req);
    }
    if (rc < 0) {
        free(req);
        iocp__mutex_lock(&w->timer_lock);
        t->pending--;
        bool gone = release_if_unused(t);
        iocp__mutex_unlock(&w->timer_lock);
        (void)gone;
    }
}

/* ---- on the worker ---- */

void iocp__timer_packet(struct iocp_worker *w, uint64_t arg)
{
    struct iocp_timer_req *req = (struct iocp_timer_req *)(uintptr_t)arg;
    struct iocp_timer *t = req->t;
    iocp__mutex_lock(&w->timer_lock);
    t->pending--;
    if (req->arm && req->seq > t->floor && !t->freed &&
        atomic_load(&w->engine->state) == IOCP_ENGINE_RUNNING) {
        if (arm_on_worker(t, req->seq, req->due_ms, req->repeat_ms) < 0)
            iocp__log(w->engine, IOCP_LOG_ERROR, "timer on worker %u not armed: out of memory",
                      w->index);
    } else if (t->armed_seq < t->floor) {
        disarm_on_worker(t); /* stopped or freed: drop the stale arming */
    }
    release_if_unused(t);
    iocp__mutex_unlock(&w->timer_lock);
    free(req);
}

/* The heap popped t's node: call the callback if its arming is in force,
 * then re-arm a repeating timer that the callback left alone. */
static void fire(struct iocp_heap_timer *node)
{
    struct iocp_timer *t = iocp_container_of(node, struct iocp_timer, node);
    struct iocp_worker *w = t->w;
    iocp__mutex_lock(&w->timer_lock);
    t->in_heap = false;
    uint64_t seq = t->armed_seq;
    /* Once a stop has begun no public timer fires, even one already due
     * before the worker takes its exit packet. */
    bool go = seq == t->floor && !t->freed &&
              atomic_load(&w->engine->state) == IOCP_ENGINE_RUNNING;
    t->firing = go;
    if (!go) {
        release_if_unused(t);
        iocp__mutex_unlock(&w->timer_lock);
        return;
    }
    iocp__mutex_unlock(&w->timer_lock);

    t->cb(t, t->arg);

    iocp__mutex_lock(&w->timer_lock);
    t->firing = false;
    if (t->repeat_ms && seq == t->floor && !t->in_heap && !t->freed &&
        atomic_load(&w->engine->state) == IOCP_ENGINE_RUNNING) {
        /* Keep the period without drift; skip periods already missed. */
        uint64_t next = node->due_ms + t->repeat_ms;
        if (next <= w->now_ms)
            next = w->now_ms + t->repeat_ms;
        if (arm_on_worker(t, seq, next, t->repeat_ms) < 0)
            iocp__log(w->engine, IOCP_LOG_ERROR, "timer on worker %u not re-armed: out of memory",
                      w->index);
    }
    release_if_unused(t);
    iocp__mutex_unlock(&w->timer_lock);
}

/* Engine stop: a public timer leaves the heap and its arming is cancelled;
 * a freed one goes.  Other nodes (the library's own time-outs) stay. */
static bool cancel_public(struct iocp_heap_timer *node)
{
    if (node->fn != fire)
        return false;
    struct iocp_timer *t = iocp_container_of(node, struct iocp_timer, node);
    t->in_heap = false;
    t->floor = ++t->issued;
    release_if_unused(t);
    return true;
}

void iocp__timers_cancel_public(struct iocp_worker *w)
{
    iocp__mutex_lock(&w->timer_lock);
    iocp__timers_remove_if(w, cancel_public);
    iocp__mutex_unlock(&w->timer_lock);
}
