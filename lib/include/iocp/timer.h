/* SPDX-License-Identifier: MIT */
/*
 * Timers: a callback that runs on a chosen worker after a delay, once or
 * repeatedly.
 *
 * A timer belongs to one worker of one engine for its whole life and its
 * callback always runs there, so it may touch that worker's connections
 * directly (put a heartbeat timer on iocp_conn_worker(c)).  Timers are kept
 * in a per-worker heap: arming and stopping cost O(log n), and an engine
 * with many timers wakes only for the earliest.  Times are milliseconds of a
 * monotonic clock; a callback runs no earlier than asked and, on a busy
 * worker, as soon as the worker gets to it.  Timers due at the same
 * millisecond run in the order they were armed.
 *
 * Threads.  Every function may be called from any thread.  On the timer's
 * own worker (in one of its callbacks, or a task posted to it) start and
 * stop act at once.  From any other thread start reaches the worker through
 * its post queue, and stop takes effect at once: the callback is never
 * started after stop returns.
 *
 * Engine stop.  Stopping the engine cancels every armed timer: none fires
 * during or after the stop.  The timer objects stay allocated and may be
 * started again once the engine runs again, or freed.  Every timer must be
 * freed with iocp_timer_free(): the stop audit (iocp_engine_audit) reports
 * "timers: N not freed" for timers created on the engine and never freed.
 */
#ifndef IOCP_TIMER_H
#define IOCP_TIMER_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_engine;
struct iocp_timer;

/* The callback: runs on the timer's worker with the arg given at creation. */
typedef void (*iocp_timer_cb)(struct iocp_timer *t, void *arg);

/*
 * iocp_timer_new(e, worker, cb, arg, out):
 * Create a stopped timer on worker `worker` (0 .. iocp_engine_workers(e)-1)
 * of engine e, running or not.  0 and *out set, or IOCP_EINVAL (NULL
 * argument, worker out of range; iocp_error_detail() says which) or
 * IOCP_ENOMEM.
 */
IOCP_EXTERN int iocp_timer_new(struct iocp_engine *e, unsigned worker, iocp_timer_cb cb, void *arg,
                               struct iocp_timer **out);

/*
 * iocp_timer_start(t, after_ms, repeat_ms):
 * Arm the timer to run its callback after_ms from now (0: on the worker's
 * next turn), then every repeat_ms after that; repeat_ms 0 makes it
 * one-shot.  A timer that is armed already is re-armed: the earlier arming
 * is replaced and does not fire.  A repeating timer that falls behind skips
 * the missed periods instead of firing in a burst.
 * Returns 0; IOCP_ESTATE when the engine is not running (nothing changes);
 * from another thread, IOCP_EAGAIN when the worker's post queue stays full
 * (nothing changes: the timer is as it was) or IOCP_ENOMEM; IOCP_EINVAL for
 * NULL.
 */
IOCP_EXTERN int iocp_timer_start(struct iocp_timer *t, uint64_t after_ms, uint64_t repeat_ms);

/*
 * iocp_timer_stop(t):
 * Disarm the timer.  Once stop returns the callback is not started again
 * (until the next iocp_timer_start), whichever thread called it and however
 * close the timer was to firing.  From a thread that is not one of the
 * engine's workers, stop also waits for a callback already running to
 * return, so do not call it holding a lock that the callback takes.  From
 * another worker's callback it does not wait (two workers stopping each
 * other's timers would wait forever); from the timer's own worker there is
 * nothing to wait for.  Stopping a stopped timer does nothing.  Returns 0,
 * or IOCP_EINVAL for NULL.
 */
IOCP_EXTERN int iocp_timer_stop(struct iocp_timer *t);

/*
 * iocp_timer_free(t):
 * Stop the timer as iocp_timer_stop() does and release it; t is invalid
 * afterwards.  Any thread, the timer's own callback included (the memory
 * goes once that callback returns).  The engine must not have been freed.
 * NULL does nothing.
 */
IOCP_EXTERN void iocp_timer_free(struct iocp_timer *t);

/* The worker the timer runs on. */
IOCP_EXTERN unsigned iocp_timer_worker(const struct iocp_timer *t);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_TIMER_H */
