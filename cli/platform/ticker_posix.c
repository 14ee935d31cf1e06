/* SPDX-License-Identifier: MIT */
/*
 * ticker.h on POSIX: a thread sleeping on a condition variable with a
 * monotonic clock, so that stopping it is prompt and a change of the wall
 * clock does not bunch or skip ticks.  It is started after stop_prepare(),
 * so it inherits the blocked stop signals and never takes one meant for the
 * main thread.
 */
#include "ticker.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct ticker {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    unsigned period_ms;
    void (*fn)(void *arg);
    void *arg;
};

static void *run(void *arg)
{
    struct ticker *t = arg;
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    pthread_mutex_lock(&t->lock);
    while (!t->stop) {
        due.tv_nsec += (long)(t->period_ms % 1000u) * 1000000L;
        due.tv_sec += t->period_ms / 1000u + due.tv_nsec / 1000000000L;
        due.tv_nsec %= 1000000000L;
        while (!t->stop && pthread_cond_timedwait(&t->cond, &t->lock, &due) == 0)
            ;
        if (t->stop)
            break;
        pthread_mutex_unlock(&t->lock);
        t->fn(t->arg);
        pthread_mutex_lock(&t->lock);
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

int ticker_start(struct ticker **out, unsigned period_ms, void (*fn)(void *arg), void *arg)
{
    struct ticker *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->period_ms = period_ms ? period_ms : 1;
    t->fn = fn;
    t->arg = arg;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&t->lock, NULL);
    if (pthread_create(&t->thread, NULL, run, t) != 0) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void ticker_stop(struct ticker *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->lock);
    t->stop = true;
    pthread_cond_signal(&t->cond);
    pthread_mutex_unlock(&t->lock);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->lock);
    free(t);
}
