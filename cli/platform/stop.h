/* SPDX-License-Identifier: MIT */
/*
 * How the main thread waits for the end: a stop signal from the user
 * (SIGINT, SIGTERM, SIGHUP; Ctrl-C, Ctrl-Break or closing the console on
 * Windows), or a wake-up from a callback that decided the work is done
 * (the connection ended).  The wake-up is the tool's own (a pipe on POSIX,
 * an event on Windows), never a signal: nothing sent from outside can pass
 * for the end of the work.
 */
#ifndef IOCPTOOL_STOP_H
#define IOCPTOOL_STOP_H

/* stop_wait()'s answers besides a signal number. */
#define STOP_WOKEN   0  /* stop_wake() was called */
#define STOP_TIMEOUT -1 /* the time given ran out */

/*
 * Call before the engine starts, so that its threads inherit what this
 * sets up (on POSIX the stop signals are blocked in every thread but the
 * waiting one).  A stop signal that was ignored when the tool started
 * (nohup, a background job of a script) stays ignored.  Harmless when
 * repeated.  0, or -1 when the wake-up cannot be set up (no descriptor
 * left).
 */
int stop_prepare(void);

/*
 * stop_wait(timeout_ms):
 * Block until a stop signal, a stop_wake(), or timeout_ms (< 0: no limit).
 * Returns the signal number (Windows: SIGINT for Ctrl-C, SIGTERM for
 * Ctrl-Break, SIGHUP's number 1 for closing the console, logging off or
 * shutting down), STOP_WOKEN or STOP_TIMEOUT.  Each signal and each wake-up
 * is answered once, in the order they came.
 */
int stop_wait(int timeout_ms);

/* Wake stop_wait() from any thread. */
void stop_wake(void);

#endif /* IOCPTOOL_STOP_H */
