/* SPDX-License-Identifier: MIT */
/*
 * The bridge between standard input/output and network connections, shared
 * by listen and connect: copying both ways with back-pressure, the end of
 * input rules of docs/EOF.md, fan-in of many clients (-k), the broker, the
 * -q and -i timers and the --progress line.
 *
 * Everything runs on the engine's worker 0: the stdio streams, every
 * connection (servers and clients must be set up with worker 0, which an
 * engine of one worker guarantees) and the timers.  The main thread
 * only starts things, waits for stop_wake() or a signal, and reads the
 * result after the engine has stopped.
 *
 * With a key (--key), every connection is wrapped in the encrypted channel
 * of docs/PROTOCOL.md (a leg, leg.h), each with its own session keys.  The
 * channel runs inside the connection's callbacks on the worker, like the
 * plain copy, so it has the same back-pressure and needs no thread.
 */
#ifndef IOCPTOOL_BRIDGE_H
#define IOCPTOOL_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "iocp.h"

#include "tls.h"
#include "capture.h"

enum bridge_mode {
    BRIDGE_SINGLE,    /* one connection; its end is the tool's end */
    BRIDGE_KEEP_OPEN, /* -k: many clients, fan-in to stdout, stdin to all */
    BRIDGE_BROKER,    /* --broker: each client's data to every other client */
};

struct acl;

struct bridge_config {
    const char *cmd; /* "listen" or "connect": the <what> of messages */
    enum bridge_mode mode;
    bool send_only;       /* never write stdout; socket data is discarded */
    bool recv_only;       /* never read stdin */
    bool no_shutdown;     /* stdin EOF does not half-close the connection */
    int quit_ms;          /* -q: end this long after stdin EOF; -1: never */
    unsigned idle_ms;     /* -i: close a connection idle this long; 0: never */
    bool progress;        /* --progress: a live line on stderr if it is a terminal */
    const char *key_file; /* --key FILE, as given; the subcommand loads it */
    /* The pre-shared key (32 bytes) that encrypts every connection, or NULL
     * for plain connections.  The caller owns it, keeps it valid until
     * bridge_free() and erases it after. */
    const uint8_t *key;
    /* --tls and its options, as given (bridge_option fills them), and the
     * context made from them (the caller's, like key; NULL: no TLS) with
     * the host a client verifies. */
    struct tls_opts tls;
    struct tls_ctx *tls_ctx;
    const char *tls_host;
    /* connect: through a proxy, whose failures the library explains in
     * iocp_error_detail(), printed instead of the bare error. */
    bool via_proxy;
    /* --accept-proxy (listen): each accepted connection starts with a PROXY
     * protocol header that names the client (leg.h); the client is that
     * address from then on, and acl, when set, admits or turns it away
     * then (the server's filter would only see the load balancer). */
    bool accept_proxy;
    const struct acl *acl;
};

struct bridge;

/* Long-only options shared by listen and connect (getopt_long codes). */
enum {
    BRIDGE_OPT_SEND_ONLY = 256,
    BRIDGE_OPT_RECV_ONLY,
    BRIDGE_OPT_NO_SHUTDOWN,
    BRIDGE_OPT_PROGRESS,
    BRIDGE_OPT_KEY,
    BRIDGE_OPT_NEXT, /* the first code free for the subcommand's own */
};

/* The struct option entries of the shared options: -q, -i, --send-only,
 * --recv-only, --no-shutdown, --progress, --key, -v.  The TLS options are
 * the subcommand's to list (a client's or a server's, tls.h); bridge_option
 * takes them all. */
#define BRIDGE_LONG_OPTIONS                                                                        \
    {"quit-after", required_argument, NULL, 'q'}, {"idle-timeout", required_argument, NULL, 'i'},  \
        {"send-only", no_argument, NULL, BRIDGE_OPT_SEND_ONLY},                                    \
        {"recv-only", no_argument, NULL, BRIDGE_OPT_RECV_ONLY},                                    \
        {"no-shutdown", no_argument, NULL, BRIDGE_OPT_NO_SHUTDOWN},                                \
        {"progress", no_argument, NULL, BRIDGE_OPT_PROGRESS},                                      \
        {"key", required_argument, NULL, BRIDGE_OPT_KEY},                                          \
        {"hex-dump", required_argument, NULL, CAPTURE_OPT_HEX},                                    \
        {"pcap", required_argument, NULL, CAPTURE_OPT_PCAP},                                       \
    {                                                                                              \
        "verbose", no_argument, NULL, 'v'                                                          \
    }

/* Their short letters, for the getopt string. */
#define BRIDGE_SHORT_OPTIONS "q:i:v"

/*
 * bridge_option(cfg, opt, arg):
 * Handle one shared option.  1: handled; 0: not a shared option; -1: a bad
 * value (the message is printed).
 */
int bridge_option(struct bridge_config *cfg, int opt, const char *arg);

/*
 * bridge_conflicts(cfg):
 * Print one message per contradiction among the shared options and the
 * mode; return how many there were.
 */
int bridge_conflicts(const struct bridge_config *cfg);

/* The help lines of the shared options. */
extern const char bridge_options_help[];

/* Allocate a bridge for an engine that runs (or will run) one worker. */
int bridge_new(struct bridge **out, struct iocp_engine *e, const struct bridge_config *cfg);

/* The handlers for accepted connections and for the outgoing connection;
 * the connection's initial user data must be the bridge. */
extern const struct iocp_conn_handler bridge_server_handler;
extern const struct iocp_conn_handler bridge_client_handler;

/* listen: the server, stopped once its single connection arrives.  Call
 * before bridge_start(). */
void bridge_set_server(struct bridge *b, struct iocp_server *s);

/* connect: an iocp_connect() to target ("host:port") with the bridge as
 * data will follow bridge_start(); its failure is reported against that
 * name.  Call before bridge_start(). */
void bridge_connecting(struct bridge *b, const char *target);

/*
 * bridge_start(b):
 * Open stdin and stdout through the engine (as the mode needs them) and the
 * timers (-q, --progress).  The engine must be running.  From this call on only the worker
 * touches the bridge, until bridge_end().  0, or -1 (the error is printed;
 * stop the engine and free the bridge).
 */
int bridge_start(struct bridge *b);

/*
 * bridge_interrupt(b, sig):
 * A stop signal: from the main thread, ask the worker for an orderly end.
 * Nothing more is accepted or read (stdin included); what the connections
 * had received is written to stdout, which is then closed; the connections
 * are reset (a transfer cut short is cut for the peer too: no FINAL frame,
 * no clean EOF); stop_wake() follows once stdout has closed.  The exit
 * status becomes 128 + sig.  0, or -1 when the engine does not run.
 */
int bridge_interrupt(struct bridge *b, int sig);

/*
 * bridge_end(b):
 * Call after the engine has stopped.  Frees the timers, prints the -v
 * summary, restores the file status flags of fds 0 and 1, and returns the
 * exit status.
 */
int bridge_end(struct bridge *b);

/* Stop and free the timers.  Idempotent. */
void bridge_stop_timers(struct bridge *b);

void bridge_free(struct bridge *b);

#endif /* IOCPTOOL_BRIDGE_H */
