/* SPDX-License-Identifier: MIT */
/*
 * The bridge between standard input/output and a datagram socket, for
 * listen -u and connect -u.  Each read of stdin becomes one datagram; each
 * datagram received goes to stdout as it is (UDP keeps no boundaries on a
 * byte stream, so what the reader sees is the payloads in order).
 *
 * Who the datagrams go to (the mode):
 *   connected   connect -u: the one peer the socket is connected to; an
 *               ICMP port-unreachable from it ends the tool with status 1
 *   first peer  listen -u: the first address that sends becomes the peer
 *               (as nc does); stdin is read only once it is known, and
 *               datagrams from anyone else are dropped (counted)
 *   keep open   listen -u -k: every peer's datagrams go to stdout, stdin to
 *               every peer heard from within the TTL
 *   broker      listen -u --broker: each datagram goes to every other peer
 *
 * The end of input (docs/EOF.md): UDP has no EOF from the network.  At the
 * end of stdin, connect -u keeps receiving the replies: until -q S after
 * EOF, until -i S of silence, or by default until the peer has been quiet
 * for UDP_EOF_QUIET_MS; listen -u keeps listening (only -q, -i or a stop
 * signal ends it).
 *
 * Memory stays bounded whatever the peers send: while stdout cannot keep
 * up (its queue is above the high watermark), datagrams for it are dropped
 * and counted, and -v reports them at the end; while the socket's send
 * queue is full, stdin is not read.
 *
 * Everything runs on the engine's worker 0: the socket is opened there (by
 * a task), then the stdio streams; the main thread only starts things and
 * waits (run.h).
 */
#ifndef IOCPTOOL_UDP_BRIDGE_H
#define IOCPTOOL_UDP_BRIDGE_H

#include <stdbool.h>
#include <stdint.h>

#include "iocp.h"

#include "acl.h"

/* connect -u, after stdin EOF, without -q or -i: how long the peer must be
 * silent for the tool to end. */
#define UDP_EOF_QUIET_MS 2000u

enum udp_bridge_mode {
    UDP_BRIDGE_CONNECTED,
    UDP_BRIDGE_FIRST_PEER,
    UDP_BRIDGE_KEEP_OPEN,
    UDP_BRIDGE_BROKER,
};

struct udp_bridge_config {
    const char *cmd; /* "listen" or "connect" */
    enum udp_bridge_mode mode;
    bool send_only;        /* never write stdout */
    bool recv_only;        /* never read stdin */
    int quit_ms;           /* -q: end this long after stdin EOF; -1: not given */
    unsigned idle_ms;      /* -i: end after this much silence both ways; 0: never */
    bool progress;         /* --progress: a live line on stderr if it is a terminal */
    unsigned ttl_ms;       /* keep open, broker: forget a peer silent this long */
    unsigned max_peers;    /* keep open, broker: peers at once */
    const struct acl *acl; /* listen: admitted sources, or NULL */
    /* The socket: address, family, peer (connected), max_datagram.  The
     * handler, data and worker are the bridge's. */
    struct iocp_dgram_config socket;
    const char *target; /* connect: "HOST:PORT" for messages */
    bool stats;         /* listen: a stats endpoint (stats_spec, NULL: default) */
    const char *stats_spec;
};

/* Run the bridge to its end (run_engine()); returns the exit status. */
int udp_bridge_run(const struct udp_bridge_config *cfg, const struct iocp_engine_config *ecfg);

#endif /* IOCPTOOL_UDP_BRIDGE_H */
