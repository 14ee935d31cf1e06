/* SPDX-License-Identifier: MIT */
/*
 * The life of every engine subcommand (listen, connect, connect -z, echo,
 * relay), written once: the engine up, what the subcommand sets up, its
 * server and the server's stats endpoint, the listening line, the wait for
 * the end or a stop signal, the orderly end a signal asks for, the safe
 * stop, the accounting check at -v, and the exit status.
 *
 * The exit status of a run stopped by SIGINT, SIGTERM or SIGHUP is 128 plus
 * the signal's number, as for ncat and socat (130, 143, 129), so that a
 * script tells an interrupted transfer from a finished one; servers whose
 * normal end is a stop signal (echo, relay) say so and exit 0 instead.
 */
#ifndef IOCPTOOL_RUN_H
#define IOCPTOOL_RUN_H

#include <stdbool.h>

#include "iocp.h"

/* How long an orderly end after a stop signal may take (writing to stdout
 * what was received) before the tool stops anyway and says so. */
#define RUN_DRAIN_MS 5000

struct run_spec {
    const char *cmd; /* "listen", "connect"...: the <what> of messages */
    const struct iocp_engine_config *engine;
    /* The server to start, or NULL (connect).  prepare() may set its data
     * in the copy it is handed. */
    const struct iocp_server_config *server;
    /* With a server: its stats endpoint (stats_spec as --stats gave it,
     * NULL for the default place), up before the listening line. */
    bool stats;
    const char *stats_spec;
    /* A stop signal is this subcommand's normal end: exit 0 (echo, relay). */
    bool signal_is_normal_end;
    /* How long the orderly end after a stop signal may take, in ms; 0:
     * RUN_DRAIN_MS.  A server that drains its connections sets its own. */
    unsigned drain_ms;
    /* Handed to every hook. */
    void *arg;

    /* Each hook may be NULL.  Those that return int return 0, or -1 once
     * they have printed why the run cannot go on (exit status 1). */

    /* The engine runs; nothing else does yet. */
    int (*prepare)(void *arg, struct iocp_engine *e, struct iocp_server_config *server);
    /* The server exists (NULL without one) but does not accept yet: start
     * the work (the stdio streams, a connect). */
    int (*begin)(void *arg, struct iocp_engine *e, struct iocp_server *s);
    /* The server accepts; just before the listening line. */
    int (*ready)(struct iocp_engine *e, struct iocp_server *s);
    /* A stop signal came: begin an orderly end on the engine's worker and
     * call stop_wake() once it is over.  The run waits RUN_DRAIN_MS for it
     * (a second signal cuts the wait short).  NULL: stop at once. */
    int (*interrupt)(void *arg, int sig);
    /* The engine has stopped and the run came to its wait: the exit status
     * when no stop signal decides it. */
    int (*end)(void *arg);
    /* Always, last: free what prepare() made. */
    void (*release)(void *arg);
};

/* Run spec to its end; returns the exit status. */
int run_engine(const struct run_spec *spec);

#endif /* IOCPTOOL_RUN_H */
