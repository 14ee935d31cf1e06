/* SPDX-License-Identifier: MIT */
/*
 * thread.h on POSIX: pthreads and CLOCK_MONOTONIC.
 */
#include "thread.h"

#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int iocp__mutex_init(struct iocp_mutex *m)
{
    int rc = pthread_mutex_init(&m->lock, NULL);
    return rc ? iocp__err_from_errno(rc) : 0;
}

void iocp__mutex_fini(struct iocp_mutex *m)
{
    pthread_mutex_destroy(&m->lock);
}

void iocp__mutex_lock(struct iocp_mutex *m)
{
    pthread_mutex_lock(&m->lock);
}

void iocp__mutex_unlock(struct iocp_mutex *m)
{
    pthread_mutex_unlock(&m->lock);
}

static void *thread_main(void *arg)
{
    struct iocp_thread *t = arg;
    t->fn(t->arg);
    return NULL;
}

int iocp__thread_start(struct iocp_thread *t, void (*fn)(void *arg), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    int rc = pthread_create(&t->handle, NULL, thread_main, t);
    return rc ? iocp__err_from_errno(rc) : 0;
}

void iocp__thread_detach(struct iocp_thread *t)
{
    pthread_detach(t->handle);
}

void iocp__thread_join(struct iocp_thread *t)
{
    pthread_join(t->handle, NULL);
}

uint64_t iocp__thread_self(void)
{
    return (uint64_t)(uintptr_t)pthread_self();
}

void iocp__sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t iocp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t iocp__now_ms(void)
{
    return iocp__now_ns() / 1000000u;
}

unsigned iocp__processor_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (unsigned)n : 1;
}
