/* SPDX-License-Identifier: MIT */
/*
 * ticker.h on Windows: a thread waiting on an event with a time-out, so
 * that stopping it is prompt.  The due times are kept on the monotonic
 * tick count, so that a slow call to fn does not shift the later ticks.
 */
#include "ticker.h"

#include <stdbool.h>
#include <stdlib.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

struct ticker {
    HANDLE thread;
    HANDLE stop;
    unsigned period_ms;
    void (*fn)(void *arg);
    void *arg;
};

static DWORD WINAPI run(void *arg)
{
    struct ticker *t = arg;
    ULONGLONG due = GetTickCount64();
    for (;;) {
        due += t->period_ms;
        ULONGLONG now = GetTickCount64();
        DWORD wait = due > now ? (DWORD)(due - now) : 0;
        if (WaitForSingleObject(t->stop, wait) != WAIT_TIMEOUT)
            break;
        t->fn(t->arg);
    }
    return 0;
}

int ticker_start(struct ticker **out, unsigned period_ms, void (*fn)(void *arg), void *arg)
{
    struct ticker *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->period_ms = period_ms ? period_ms : 1;
    t->fn = fn;
    t->arg = arg;
    t->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
    if (t->stop)
        t->thread = CreateThread(NULL, 0, run, t, 0, NULL);
    if (!t->thread) {
        if (t->stop)
            CloseHandle(t->stop);
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
    SetEvent(t->stop);
    WaitForSingleObject(t->thread, INFINITE);
    CloseHandle(t->thread);
    CloseHandle(t->stop);
    free(t);
}
