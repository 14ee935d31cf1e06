/* SPDX-License-Identifier: MIT */
/* relay_drain.h: stop accepting, wait for the live pairs, hand the port over. */
#include "relay_drain.h"

#include <stdatomic.h>
#include <stdlib.h>

#include "diag.h"
#include "handover.h"
#include "stats_sections.h"
#include "stop.h"

/* With --reuseport, how long the accept queue must stay empty before the
 * listening socket closes (a handshake that began before the successor
 * listened may still land in it), how often it is looked at, and the most
 * time given to it when clients keep coming (no successor). */
#define QUEUE_QUIET_MS  50
#define QUEUE_POLL_MS   5
#define QUEUE_LIMIT_MS  2000

static struct {
    unsigned drain_ms;
    bool reuse_port;
    struct iocp_server **servers; /* every listening port's */
    unsigned nservers;
    atomic_uint live;
    atomic_bool draining; /* a stop signal came */
    atomic_bool waiting;  /* the run waits for the last pair: wake it then */
    atomic_bool woken;
    stats_counter_t drained;
} drain;

void relay_drain_setup(unsigned drain_ms, bool reuse_port)
{
    drain.drain_ms = drain_ms;
    drain.reuse_port = reuse_port;
    stats_counter_register("relay_drained", "Connections closed by a drain's end.",
                           &drain.drained);
}

int relay_drain_ready(struct iocp_server *s)
{
    struct iocp_server **n = realloc(drain.servers, (drain.nservers + 1) * sizeof *n);
    if (!n) {
        diag_error("relay: out of memory");
        return -1;
    }
    drain.servers = n;
    drain.servers[drain.nservers++] = s;
    if (!drain.reuse_port)
        return 0;
    iocp_socket_t sock;
    for (unsigned i = 0; (sock = iocp_server_socket(s, i)) != IOCP_INVALID_SOCKET; i++)
        if (handover_steer_to_newest(sock) != 0) {
            diag_error("relay: --reuseport: cannot steer new connections to this relay");
            return -1;
        }
    return 0;
}

/* Wake the run once, whoever sees the last pair go. */
static void wake_once(void)
{
    if (!atomic_exchange(&drain.woken, true))
        stop_wake();
}

void relay_drain_opened(void)
{
    atomic_fetch_add(&drain.live, 1);
}

void relay_drain_closed(void)
{
    if (atomic_fetch_sub(&drain.live, 1) == 1 && atomic_load(&drain.waiting))
        wake_once();
}

bool relay_draining(void)
{
    return atomic_load(&drain.draining);
}

void relay_drain_count_drained(void)
{
    stats_counter_add(&drain.drained, 1);
}

/* Connections in the listening sockets' accept queues, or -1 unknown. */
static int queued(void)
{
    int total = 0;
    iocp_socket_t sock;
    for (unsigned k = 0; k < drain.nservers; k++)
        for (unsigned i = 0; (sock = iocp_server_socket(drain.servers[k], i)) != IOCP_INVALID_SOCKET;
             i++) {
            int n = handover_queue_length(sock);
            if (n < 0)
                return -1;
            total += n;
        }
    return total;
}

/*
 * Accept until the queue has stayed empty for QUEUE_QUIET_MS: the
 * successor has taken the port's new connections since it listened, so
 * what is queued here is finite.  Returns a signal that came meanwhile, or
 * 0.
 */
static int empty_the_queue(void)
{
    unsigned quiet = 0, spent = 0;
    while (quiet < QUEUE_QUIET_MS && spent < QUEUE_LIMIT_MS) {
        int n = queued();
        if (n < 0)
            return 0;
        quiet = n == 0 ? quiet + QUEUE_POLL_MS : 0;
        int r = stop_wait(QUEUE_POLL_MS);
        if (r > 0)
            return r;
        spent += QUEUE_POLL_MS;
    }
    return 0;
}

int relay_drain_interrupt(void *arg, int sig)
{
    (void)arg;
    (void)sig;
    atomic_store(&drain.draining, true);
    if (drain.nservers && drain.reuse_port && empty_the_queue() > 0)
        return -1;
    for (unsigned k = 0; k < drain.nservers; k++)
        iocp_server_stop(drain.servers[k]);
    atomic_store(&drain.waiting, true);
    unsigned live = atomic_load(&drain.live);
    diag_info(1, "relay: draining: %u connection%s live, %.3g s at most", live,
              live == 1 ? "" : "s", drain.drain_ms / 1000.0);
    if (live == 0)
        wake_once();
    return 0;
}
