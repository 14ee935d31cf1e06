/* SPDX-License-Identifier: MIT */
/*
 * thread.h on Windows: CreateThread, slim reader/writer locks used
 * exclusively (they need no destruction and cannot fail to initialise), and
 * QueryPerformanceCounter for the monotonic clock.
 */
#include "thread.h"

#include "internal.h"

int iocp__mutex_init(struct iocp_mutex *m)
{
    InitializeSRWLock(&m->lock);
    return 0;
}

void iocp__mutex_fini(struct iocp_mutex *m)
{
    (void)m;
}

void iocp__mutex_lock(struct iocp_mutex *m)
{
    AcquireSRWLockExclusive(&m->lock);
}

void iocp__mutex_unlock(struct iocp_mutex *m)
{
    ReleaseSRWLockExclusive(&m->lock);
}

static DWORD WINAPI thread_main(LPVOID arg)
{
    struct iocp_thread *t = arg;
    t->fn(t->arg);
    return 0;
}

int iocp__thread_start(struct iocp_thread *t, void (*fn)(void *arg), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->handle = CreateThread(NULL, 0, thread_main, t, 0, NULL);
    return t->handle ? 0 : IOCP_ENOMEM;
}

void iocp__thread_detach(struct iocp_thread *t)
{
    CloseHandle(t->handle);
    t->handle = NULL;
}

void iocp__thread_join(struct iocp_thread *t)
{
    WaitForSingleObject(t->handle, INFINITE);
    CloseHandle(t->handle);
    t->handle = NULL;
}

uint64_t iocp__thread_self(void)
{
    return (uint64_t)GetCurrentThreadId();
}

void iocp__sleep_ms(unsigned ms)
{
    Sleep(ms);
}

uint64_t iocp__now_ns(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;
    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    /* Split to avoid overflowing 64 bits after a few days of uptime. */
    uint64_t secs = (uint64_t)(now.QuadPart / freq.QuadPart);
    uint64_t rem = (uint64_t)(now.QuadPart % freq.QuadPart);
    return secs * 1000000000u + rem * 1000000000u / (uint64_t)freq.QuadPart;
}

uint64_t iocp__now_ms(void)
{
    return iocp__now_ns() / 1000000u;
}

unsigned iocp__processor_count(void)
{
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors ? (unsigned)si.dwNumberOfProcessors : 1;
}
