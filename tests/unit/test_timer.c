/* SPDX-License-Identifier: MIT */
/*
 * Timers: the per-worker heap's order (due time, then arming order), and the
 * public timers of timer.h on the backend named by IOCP_BACKEND: one-shot
 * and repeating, re-arming, stopping from another thread while the timer is
 * firing (a counter proves that no call starts after stop returns), freeing
 * from the timer's own callback and from other threads, engine stop with
 * armed timers (they never fire), and the stop audit.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "engine_fixture.h"

static struct iocp_engine *engine;

static void start_engine(unsigned workers)
{
    struct iocp_engine_config cfg = {.workers = workers};
    ef_start(&engine, &cfg);
}

static void setup(void)
{
    start_engine(2);
}

static void stop_and_audit(void)
{
    ef_stop_and_audit(&engine, NULL);
}

TestSuite(timer, .init = setup, .fini = stop_and_audit, .timeout = 120);
TestSuite(heap, .timeout = 30);

static bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = iocp__now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (iocp__now_ms() > end)
            return false;
        iocp__sleep_ms(1);
    }
    return true;
}

static bool flag_set(void *arg)
{
    return atomic_load((iocp_atomic_int *)arg) != 0;
}

/* ---- the heap itself, on a worker that never runs ---- */

struct probe {
    struct iocp_heap_timer node;
    int id;
};

static int fired_ids[128];
static int nfired;

static void probe_fired(struct iocp_heap_timer *t)
{
    fired_ids[nfired++] = iocp_container_of(t, struct probe, node)->id;
}

Test(heap, timers_fire_by_due_time_then_in_arming_order)
{
    struct iocp_worker w;
    memset(&w, 0, sizeof w);
    cr_assert_eq(iocp__timers_init(&w.timers), 0);
    /* Due times out of order, with ties; more than the initial capacity so
     * that the heap grows. */
    static const uint64_t due[] = {50, 10, 30, 10, 70, 30, 10, 90, 20, 60};
    struct probe p[80];
    int n = 80;
    for (int i = 0; i < n; i++) {
        p[i].id = i;
        iocp__timer_init(&p[i].node, probe_fired);
        cr_assert_eq(iocp__timer_start(&w, &p[i].node, due[i % 10] + (uint64_t)(i / 10) * 100), 0);
    }
    /* Re-arming moves a timer; stopping removes it. */
    cr_assert_eq(iocp__timer_start(&w, &p[0].node, 5), 0);
    iocp__timer_stop(&w, &p[1].node);
    iocp__timer_stop(&w, &p[1].node); /* twice: nothing happens */

    int order[80], got = 0;
    w.now_ms = UINT64_MAX - 1;
    while (got < n - 1) {
        nfired = 0;
        iocp__timers_run(&w); /* a run is bounded: call it until all fired */
        for (int i = 0; i < nfired; i++)
            order[got++] = fired_ids[i];
        cr_assert(nfired > 0);
    }
    cr_assert_eq(order[0], 0, "the re-armed timer is due first");
    uint64_t prev_due = 0;
    int prev_id = -1;
    for (int i = 0; i < got; i++) {
        int id = order[i];
        cr_assert_neq(id, 1, "a stopped timer never fires");
        uint64_t d = id == 0 ? 5 : due[id % 10] + (uint64_t)(id / 10) * 100;
        cr_assert_geq(d, prev_due, "timer %d (due %llu) fired after one due %llu", id,
                      (unsigned long long)d, (unsigned long long)prev_due);
        if (d == prev_due)
            cr_assert_gt(id, prev_id, "equal due times fire in arming order");
        prev_due = d;
        prev_id = id;
    }
    cr_assert_eq(iocp__timers_run(&w), -1, "nothing is left");
    iocp__timers_fini(&w.timers);
}

/* ---- public timers ---- */

struct counter {
    iocp_atomic_int calls;
    iocp_atomic_int wrong_worker;
};

static void count_call(struct iocp_timer *t, void *arg)
{
    struct counter *k = arg;
    struct iocp_worker *w = iocp__worker_current();
    if (!w || w->index != iocp_timer_worker(t))
        atomic_fetch_add(&k->wrong_worker, 1);
    atomic_fetch_add(&k->calls, 1);
}

static bool calls_at_least(void *arg)
{
    struct counter *k = arg;
    return atomic_load(&k->calls) >= 3;
}

/* Let the worker of t turn a few times: a sentinel timer armed after the
 * fact on the same worker fires only once everything due before it did. */
static void let_worker_run(unsigned worker, unsigned ms)
{
    struct counter sentinel = {0};
    struct iocp_timer *s;
    cr_assert_eq(iocp_timer_new(engine, worker, count_call, &sentinel, &s), 0);
    cr_assert_eq(iocp_timer_start(s, ms, 0), 0);
    cr_assert(wait_for(flag_set, &sentinel.calls, 30000), "the sentinel timer never fired");
    iocp_timer_free(s);
}

Test(timer, a_one_shot_timer_fires_once_on_its_worker)
{
    struct counter k[2] = {{0}, {0}};
    struct iocp_timer *t[2];
    for (unsigned i = 0; i < 2; i++) {
        cr_assert_eq(iocp_timer_new(engine, i, count_call, &k[i], &t[i]), 0);
        cr_assert_eq(iocp_timer_worker(t[i]), i);
        cr_assert_eq(iocp_timer_start(t[i], 5, 0), 0);
    }
    for (unsigned i = 0; i < 2; i++) {
        cr_assert(wait_for(flag_set, &k[i].calls, 30000), "timer %u never fired", i);
        let_worker_run(i, 30);
        cr_expect_eq(atomic_load(&k[i].calls), 1, "a one-shot timer fired again");
        cr_expect_eq(atomic_load(&k[i].wrong_worker), 0, "the callback ran off its worker");
        iocp_timer_free(t[i]);
    }
}

Test(timer, a_repeating_timer_fires_until_stopped_and_may_start_again)
{
    struct counter k = {0};
    struct iocp_timer *t;
    cr_assert_eq(iocp_timer_new(engine, 1, count_call, &k, &t), 0);
    cr_assert_eq(iocp_timer_start(t, 0, 2), 0);
    cr_assert(wait_for(calls_at_least, &k, 30000), "fired %d times", atomic_load(&k.calls));
    cr_assert_eq(iocp_timer_stop(t), 0);
    int after_stop = atomic_load(&k.calls);
    let_worker_run(1, 30);
    cr_expect_eq(atomic_load(&k.calls), after_stop, "the timer fired after stop returned");
    cr_assert_eq(iocp_timer_stop(t), 0, "stopping a stopped timer is fine");

    atomic_store(&k.calls, 0);
    cr_assert_eq(iocp_timer_start(t, 1, 1), 0);
    cr_assert(wait_for(calls_at_least, &k, 30000), "a stopped timer starts again");
    cr_expect_eq(atomic_load(&k.wrong_worker), 0);
    iocp_timer_free(t);
}

/* Re-arming on the worker: "fire now" replaced by "fire in a minute" must
 * not fire at all, and the other way round fires at once. */
struct rearm {
    struct iocp_task task;
    struct iocp_timer *soon_then_late, *late_then_soon;
    iocp_atomic_int done;
};

static void rearm_on_worker(struct iocp_task *task)
{
    struct rearm *r = task->arg;
    iocp_timer_start(r->soon_then_late, 0, 0);
    iocp_timer_start(r->soon_then_late, 60000, 0);
    iocp_timer_start(r->late_then_soon, 60000, 0);
    iocp_timer_start(r->late_then_soon, 0, 0);
    atomic_store(&r->done, 1);
}

Test(timer, re_arming_replaces_the_earlier_arming)
{
    struct counter soon = {0}, late = {0};
    struct rearm r = {.task = {rearm_on_worker, &r}};
    cr_assert_eq(iocp_timer_new(engine, 0, count_call, &late, &r.soon_then_late), 0);
    cr_assert_eq(iocp_timer_new(engine, 0, count_call, &soon, &r.late_then_soon), 0);
    cr_assert_eq(iocp_engine_post(engine, 0, &r.task), 0);
    cr_assert(wait_for(flag_set, &r.done, 30000));
    cr_assert(wait_for(flag_set, &soon.calls, 30000), "the re-armed timer did not fire");
    let_worker_run(0, 30);
    cr_expect_eq(atomic_load(&late.calls), 0, "the replaced arming fired");
    cr_expect_eq(atomic_load(&soon.calls), 1);

    /* The same from another thread, through the post queue. */
    struct counter k = {0};
    struct iocp_timer *t;
    cr_assert_eq(iocp_timer_new(engine, 1, count_call, &k, &t), 0);
    cr_assert_eq(iocp_timer_start(t, 60000, 0), 0);
    cr_assert_eq(iocp_timer_start(t, 1, 0), 0);
    cr_assert(wait_for(flag_set, &k.calls, 30000), "the re-armed timer did not fire");
    /* A repeating arming replaced by a far one-shot stops firing once the
     * request has reached the worker (the sentinel's start comes after it). */
    cr_assert_eq(iocp_timer_start(t, 0, 1), 0);
    cr_assert_eq(iocp_timer_start(t, 60000, 0), 0);
    let_worker_run(1, 5);
    int calls = atomic_load(&k.calls);
    let_worker_run(1, 30);
    cr_expect_eq(atomic_load(&k.calls), calls, "an arming replaced from another thread fired");
    iocp_timer_free(r.soon_then_late);
    iocp_timer_free(r.late_then_soon);
    iocp_timer_free(t);
}

/* Stop from another thread while the timer fires every millisecond.  The
 * callback notes whether it starts, or is still running, after a stop has
 * returned: both must never happen.  Every other round the stop is made
 * while a call is surely under way: the callback holds on until the
 * stopping thread says it is about to stop (bounded), then a little longer,
 * so a stop that did not wait for it would return first. */
struct race {
    iocp_atomic_int calls;
    iocp_atomic_int in_call;
    iocp_atomic_int stopping; /* set just before stop is called */
    iocp_atomic_int stopped;  /* set right after stop returned, cleared before start */
    iocp_atomic_int late;     /* calls that saw `stopped` */
};

static void racing_call(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct race *r = arg;
    if (atomic_load(&r->stopped))
        atomic_fetch_add(&r->late, 1);
    atomic_fetch_add(&r->calls, 1);
    atomic_store(&r->in_call, 1);
    uint64_t end = iocp__now_ms() + 50;
    while (!atomic_load(&r->stopping) && iocp__now_ms() < end)
        ;
    uint64_t linger = iocp__now_ns() + 200000;
    while (iocp__now_ns() < linger)
        ;
    if (atomic_load(&r->stopped))
        atomic_fetch_add(&r->late, 1);
    atomic_store(&r->in_call, 0);
}

static bool in_call(void *arg)
{
    return atomic_load(&((struct race *)arg)->in_call) != 0;
}

Test(timer, stop_from_another_thread_racing_the_fire_never_lets_it_start_again)
{
    struct race r = {0};
    struct iocp_timer *t;
    cr_assert_eq(iocp_timer_new(engine, 0, racing_call, &r, &t), 0);
    int rounds = 200, caught = 0;
    for (int i = 0; i < rounds; i++) {
        atomic_store(&r.stopped, 0);
        atomic_store(&r.stopping, 0);
        int rc;
        while ((rc = iocp_timer_start(t, 0, 1)) == IOCP_EAGAIN)
            iocp__sleep_ms(1);
        cr_assert_eq(rc, 0);
        if (i % 2 == 0)
            caught += wait_for(in_call, &r, 10000);
        else
            for (int spin = 0; spin < i * 50; spin++) /* a different moment each round */
                atomic_load(&r.calls);
        atomic_store(&r.stopping, 1);
        cr_assert_eq(iocp_timer_stop(t), 0);
        atomic_store(&r.stopped, 1);
    }
    int calls = atomic_load(&r.calls);
    let_worker_run(0, 20);
    cr_expect_eq(atomic_load(&r.late), 0, "%d calls started or ran on after stop returned",
                 atomic_load(&r.late));
    cr_expect_eq(atomic_load(&r.calls), calls, "the timer fired after the last stop");
    cr_expect_eq(caught, rounds / 2, "the timer did not fire within 10 s of a start");
    iocp_timer_free(t);
}

/* A timer that frees itself from its callback: on the first call for a
 * one-shot, on the third for a repeating one. */
struct self_free {
    iocp_atomic_int calls;
    int free_at;
};

static void free_self(struct iocp_timer *t, void *arg)
{
    struct self_free *s = arg;
    if (atomic_fetch_add(&s->calls, 1) + 1 == s->free_at)
        iocp_timer_free(t);
}

static bool self_free_done(void *arg)
{
    struct self_free *s = arg;
    return atomic_load(&s->calls) >= s->free_at;
}

Test(timer, a_timer_frees_itself_from_its_own_callback)
{
    struct self_free once = {.free_at = 1}, repeating = {.free_at = 3};
    struct iocp_timer *a, *b;
    cr_assert_eq(iocp_timer_new(engine, 0, free_self, &once, &a), 0);
    cr_assert_eq(iocp_timer_new(engine, 0, free_self, &repeating, &b), 0);
    cr_assert_eq(iocp_timer_start(a, 0, 0), 0);
    cr_assert_eq(iocp_timer_start(b, 0, 1), 0);
    cr_assert(wait_for(self_free_done, &once, 30000));
    cr_assert(wait_for(self_free_done, &repeating, 30000));
    let_worker_run(0, 20);
    cr_expect_eq(atomic_load(&once.calls), 1);
    cr_expect_eq(atomic_load(&repeating.calls), 3, "a freed timer fired again");
}

/* Threads that start, stop and free timers of both workers at once, while
 * the timers fire: nothing leaks (the audit and the sanitizers say so). */
struct churn {
    struct iocp_thread thread;
    unsigned seed;
    struct counter k;
};

static void churn_main(void *arg)
{
    struct churn *c = arg;
    for (int i = 0; i < 200; i++) {
        struct iocp_timer *t;
        if (iocp_timer_new(engine, (c->seed + (unsigned)i) % 2, count_call, &c->k, &t) != 0)
            continue;
        switch ((c->seed + (unsigned)i) % 4) {
        case 0: /* freed while armed far ahead: the worker must let it go */
            iocp_timer_start(t, 60000, 0);
            break;
        case 1: /* freed while firing every millisecond */
            iocp_timer_start(t, 0, 1);
            iocp__sleep_ms(1);
            break;
        case 2: /* started, stopped, freed */
            iocp_timer_start(t, 0, 0);
            iocp_timer_stop(t);
            break;
        default: /* never started */
            break;
        }
        iocp_timer_free(t);
    }
}

static bool no_timer_held(void *arg)
{
    (void)arg;
    return atomic_load(&engine->timers_held) == 0;
}

Test(timer, threads_creating_starting_and_freeing_timers_leak_nothing)
{
    struct churn c[3];
    memset(c, 0, sizeof c);
    for (unsigned i = 0; i < 3; i++) {
        c[i].seed = i;
        cr_assert_eq(iocp__thread_start(&c[i].thread, churn_main, &c[i]), 0);
    }
    for (unsigned i = 0; i < 3; i++)
        iocp__thread_join(&c[i].thread);
    cr_expect(wait_for(no_timer_held, NULL, 30000), "%llu freed timers still held while running",
              (unsigned long long)atomic_load(&engine->timers_held));
    for (unsigned i = 0; i < 3; i++)
        cr_expect_eq(atomic_load(&c[i].k.wrong_worker), 0);
}

/* An engine stop cancels armed timers, even ones already due: started from a
 * task on the worker that then stops the engine, none may fire. */
struct stop_ctx {
    struct iocp_task task;
    struct iocp_timer *t[100];
    iocp_atomic_int started;
};

static void arm_then_stop(struct iocp_task *task)
{
    struct stop_ctx *s = task->arg;
    int ok = 0;
    for (int i = 0; i < 100; i++)
        ok += iocp_timer_start(s->t[i], (unsigned)i % 2, (unsigned)i % 3) == 0;
    atomic_store(&s->started, ok);
    iocp_engine_stop(engine);
}

Test(timer, an_engine_stop_cancels_armed_timers_and_they_start_again_after_a_restart)
{
    struct counter k = {0};
    struct stop_ctx s = {.task = {arm_then_stop, &s}};
    for (int i = 0; i < 100; i++)
        cr_assert_eq(iocp_timer_new(engine, 0, count_call, &k, &s.t[i]), 0);
    cr_assert_eq(iocp_engine_post(engine, 0, &s.task), 0);
    cr_assert_eq(iocp_engine_wait(engine), 0);
    cr_assert_eq(atomic_load(&s.started), 100, "starts on a running engine succeed");
    cr_expect_eq(atomic_load(&k.calls), 0, "%d timers fired after the stop began",
                 atomic_load(&k.calls));

    /* Stopped: starting is refused, the objects live on, the audit names them. */
    cr_assert_eq(iocp_timer_start(s.t[0], 0, 0), IOCP_ESTATE);
    char report[256];
    cr_assert_gt(iocp_engine_audit(engine, report, sizeof report), 0);
    cr_assert(strstr(report, "timers: 100 not freed") != NULL, "audit said: %s", report);

    /* After a restart the same timers work again. */
    cr_assert_eq(iocp_engine_start(engine), 0);
    cr_assert_eq(iocp_timer_start(s.t[0], 0, 0), 0);
    cr_assert(wait_for(flag_set, &k.calls, 30000), "a timer did not fire after a restart");
    for (int i = 0; i < 100; i++)
        iocp_timer_free(s.t[i]);
}

Test(timer, bad_arguments_and_a_stopped_engine_are_reported)
{
    struct counter k = {0};
    struct iocp_timer *t = NULL;
    cr_assert_eq(iocp_timer_new(engine, 2, count_call, &k, &t), IOCP_EINVAL);
    cr_assert(strstr(iocp_error_detail(), "out of range") != NULL, "%s", iocp_error_detail());
    cr_assert_null(t);
    cr_assert_eq(iocp_timer_new(engine, 0, NULL, &k, &t), IOCP_EINVAL);
    cr_assert_eq(iocp_timer_new(NULL, 0, count_call, &k, &t), IOCP_EINVAL);
    cr_assert_eq(iocp_timer_start(NULL, 0, 0), IOCP_EINVAL);
    cr_assert_eq(iocp_timer_stop(NULL), IOCP_EINVAL);
    iocp_timer_free(NULL);

    /* A timer may be created on an engine that is not running. */
    iocp_engine_stop(engine);
    cr_assert_eq(iocp_timer_new(engine, 1, count_call, &k, &t), 0);
    cr_assert_eq(iocp_timer_start(t, 0, 0), IOCP_ESTATE);
    cr_assert_eq(iocp_timer_stop(t), 0);
    iocp_timer_free(t);
    cr_assert_eq(atomic_load(&k.calls), 0);
}
