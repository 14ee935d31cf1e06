/* SPDX-License-Identifier: MIT */
/*
 * A ticker: a thread that calls a function at a fixed period until it is
 * stopped.  The bridge uses it to post its timer task to the engine's
 * worker, where the -q deadline and the --progress line are handled; the
 * function itself must only do thread-safe things (iocp_engine_post).
 */
#ifndef IOCPTOOL_TICKER_H
#define IOCPTOOL_TICKER_H

struct ticker;

/* Start calling fn(arg) every period_ms.  0, or -1 (nothing started). */
int ticker_start(struct ticker **out, unsigned period_ms, void (*fn)(void *arg), void *arg);

/* Stop and join the thread; fn is not called after this returns.  NULL does
 * nothing. */
void ticker_stop(struct ticker *t);

#endif /* IOCPTOOL_TICKER_H */
