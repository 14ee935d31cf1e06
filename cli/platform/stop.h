/* SPDX-License-Identifier: MIT */
/*
 * How the main thread waits for the end: a stop signal from the user
 * (SIGINT, SIGTERM, SIGHUP; Ctrl-C or Ctrl-Break on Windows), or a wake-up
 * from a callback that decided the work is done (the connection ended).
 */
#ifndef IOCPTOOL_STOP_H
#define IOCPTOOL_STOP_H

/* Call before the engine starts, so its threads inherit the mask. */
void stop_prepare(void);

/* Block until a stop signal or stop_wake().  Returns the signal number, or 0
 * for a wake-up. */
int stop_wait(void);

/* Wake stop_wait() from any thread. */
void stop_wake(void);

#endif /* IOCPTOOL_STOP_H */
