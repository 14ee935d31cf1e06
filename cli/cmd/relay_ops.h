/* SPDX-License-Identifier: MIT */
/*
 * What the relay does around the bytes for operating it: the graceful
 * drain and port hand-over (relay_drain.h), the access log (access_log.h),
 * and their stats counters.  relay.c holds one relay_rec per pair and
 * tells it the pair's life; everything else is here, so that the pipeline
 * stays as it is.
 */
#ifndef IOCPTOOL_RELAY_OPS_H
#define IOCPTOOL_RELAY_OPS_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "access_log.h"
#include "channel.h"
#include "iocp.h"
#include "run.h"

/* The relay's long options for all this (codes above the relay's own). */
enum {
    OPT_RELAY_DRAIN_TIMEOUT = 0x300,
    OPT_RELAY_REUSEPORT,
    OPT_RELAY_LOG,
    OPT_RELAY_LOG_FORMAT,
    OPT_RELAY_LOG_BUFFER,
};
#define RELAY_OPS_LONG_OPTIONS                                                                     \
    {"drain-timeout", required_argument, NULL, OPT_RELAY_DRAIN_TIMEOUT},                           \
        {"reuseport", no_argument, NULL, OPT_RELAY_REUSEPORT},                                     \
        {"log", required_argument, NULL, OPT_RELAY_LOG},                                           \
        {"log-format", required_argument, NULL, OPT_RELAY_LOG_FORMAT},                           \
        {"log-buffer", required_argument, NULL, OPT_RELAY_LOG_BUFFER}

#define RELAY_OPS_HELP                                                                             \
    "      --drain-timeout S  on SIGTERM (Ctrl-Break), stop accepting and let live\n"            \
    "                         connections finish for up to S seconds (default 30;\n"            \
    "                         0: close at once); a second signal closes at once\n"              \
    "      --reuseport        (Linux) share the port with a new relay that takes over\n"        \
    "                         while this one drains: no connection is refused\n"               \
    "      --log FILE         one line per connection at its end (JSON; -: stdout)\n"          \
    "      --log-format F     json (default) or text\n"                                         \
    "      --log-buffer KIB   log lines waiting for the disk, at most (default 4096\n"         \
    "                         KiB); past that lines are dropped and counted\n"

/* One of the codes above with its argument: false once said why. */
bool relay_ops_option(int opt, const char *arg);

/* Every option parsed: set the server's config and open the log.  0, or
 * the exit status once said why. */
int relay_ops_setup(struct iocp_server_config *scfg);

/* Put the drain in the run's spec. */
void relay_ops_spec(struct run_spec *spec);

/* Each listening port's server, once it accepts (the run's ready hook): 0
 * or -1 once said why. */
int relay_ops_ready(struct iocp_server *s);

/* After the run: flush and close the log. */
void relay_ops_finish(void);

/* What the relay knows of one pair for the log. */
struct relay_rec {
    uint64_t id, start_ms;
    char client[64], listen[64];
    const char *target;
    uint64_t from_client, to_client;
    enum conn_end end;
    bool end_known;
    /* The handshakes of --tls-listen (the client's, [0]) and
     * --tls-target (the target's, [1]): relay_rec_tls*. */
    struct {
        const char *protocol, *cipher;
        bool resumed;
        char error[160];
    } tls[2];
};

/* The client was accepted / a target connected (its "host:port"). */
void relay_rec_open(struct relay_rec *r, struct iocp_conn *client);
void relay_rec_target(struct relay_rec *r, const char *target);
/* The client's address as a PROXY protocol header gave it (--accept-proxy):
 * the one the log shows. */
void relay_rec_client(struct relay_rec *r, const char *client);
/* A TLS handshake with the client (--tls-listen) or the target
 * (--tls-target) is done: what it agreed on goes in the log line; or it
 * failed before it was done: why. */
void relay_rec_tls(struct relay_rec *r, bool target, const struct channel *ch);
void relay_rec_tls_failed(struct relay_rec *r, bool target, const char *why);
/* How it ends, when the relay knows first (refused, reset): the first
 * reason stays. */
void relay_rec_end(struct relay_rec *r, enum conn_end end);
/* A leg closed with this status (0: gracefully). */
void relay_rec_leg_closed(struct relay_rec *r, int status);
/* The client leg closed: its byte counts. */
void relay_rec_client_closed(struct relay_rec *r, struct iocp_conn *client);
/* The pair is gone: log it. */
void relay_rec_close(struct relay_rec *r);

#endif /* IOCPTOOL_RELAY_OPS_H */
