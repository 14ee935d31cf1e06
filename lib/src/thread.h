/* SPDX-License-Identifier: MIT */
/*
 * Threads, mutexes and the monotonic clock, behind one small interface.
 *
 * thread_posix.c implements it with pthreads and clock_gettime, thread_win.c
 * with CreateThread, SRW locks and QueryPerformanceCounter.  The mutex type
 * is the only platform type here, and it is confined to this private header
 * (seed 1 keeps public types in types.h; this one never reaches users).
 */
#ifndef IOCP_THREAD_H
#define IOCP_THREAD_H

#include <stdint.h>

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
struct iocp_mutex {
    SRWLOCK lock;
};
struct iocp_thread {
    HANDLE handle;
    void (*fn)(void *arg);
    void *arg;
};
#else
#include <pthread.h>
struct iocp_mutex {
    pthread_mutex_t lock;
};
struct iocp_thread {
    pthread_t handle;
    void (*fn)(void *arg);
    void *arg;
};
#endif

int iocp__mutex_init(struct iocp_mutex *m);
void iocp__mutex_fini(struct iocp_mutex *m);
void iocp__mutex_lock(struct iocp_mutex *m);
void iocp__mutex_unlock(struct iocp_mutex *m);

/* Start fn(arg) on a new thread; 0 or a negative IOCP_E* code. */
int iocp__thread_start(struct iocp_thread *t, void (*fn)(void *arg), void *arg);
/* Let the thread run on its own; it must not be joined afterwards. */
void iocp__thread_detach(struct iocp_thread *t);
/* Wait for the thread to return. */
void iocp__thread_join(struct iocp_thread *t);
/* A small integer naming the calling thread, for logs and tests. */
uint64_t iocp__thread_self(void);
/* The number of processors online (at least 1). */
unsigned iocp__processor_count(void);
/* Give up the processor for about ms milliseconds. */
void iocp__sleep_ms(unsigned ms);

/* Milliseconds and nanoseconds from a monotonic clock with an arbitrary origin. */
uint64_t iocp__now_ms(void);
uint64_t iocp__now_ns(void);

#endif /* IOCP_THREAD_H */
