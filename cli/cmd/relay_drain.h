/* SPDX-License-Identifier: MIT */
/*
 * The relay's graceful end.  A stop signal (SIGTERM, SIGINT, SIGHUP;
 * Ctrl-C or Ctrl-Break on Windows) stops accepting at once and lets the
 * connections that are live finish, up to --drain-timeout; what is left
 * then is closed and the relay exits 0.  A second signal closes at once.
 *
 * With --reuseport (Linux) a new relay may listen on the same port while
 * this one drains: the newcomer takes every new connection as soon as it
 * listens (handover.h), and the draining relay accepts what its queue
 * still holds before it closes its socket, so that no client is reset.
 *
 * The pair count is kept here (relay.c says when a pair opens and when
 * its last connection closes, from any worker); the run waits on it.
 */
#ifndef IOCPTOOL_RELAY_DRAIN_H
#define IOCPTOOL_RELAY_DRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "iocp.h"

#define RELAY_DRAIN_DEFAULT_MS 30000u

/* Before the run: how long a drain may take, and whether the port is shared
 * with a successor (the caller has set reuse_port in the server's config). */
void relay_drain_setup(unsigned drain_ms, bool reuse_port);

/* Each listening port's server, once it accepts: remember it and, with
 * --reuseport, take the port's new connections.  0, or -1 once said why. */
int relay_drain_ready(struct iocp_server *s);

/* A pair was born / its last connection closed (any worker). */
void relay_drain_opened(void);
void relay_drain_closed(void);

/* Whether a stop signal came: a connection the engine closes now was
 * closed by the drain (its time-out, or a second signal). */
bool relay_draining(void);

/* The run's interrupt hook: begin draining; stop_wake() follows when the
 * last pair has gone.  0, or -1 to stop at once (a second signal while the
 * listening queue was being emptied). */
int relay_drain_interrupt(void *arg, int sig);

/* Connections closed by the drain rather than by their ends. */
void relay_drain_count_drained(void);

#endif /* IOCPTOOL_RELAY_DRAIN_H */
