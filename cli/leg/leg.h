/* SPDX-License-Identifier: MIT */
/*
 * A connection leg: one connection of the engine and, when it is encrypted,
 * the channel layered on it (channel.h).  It is what listen and connect
 * (bridge.c) and relay (relay.c) share about a network connection; what
 * the bytes are for (stdio, the other leg of a pair) stays with them.
 *
 *   in:     the connection's on_data and on_eof go to leg_data() and
 *           leg_eof().  Only authenticated plaintext reaches events.plain,
 *           a frame checked whole before any byte of it; events.ended is
 *           the end of the peer's direction: its FIN when plain, its FINAL
 *           frame when encrypted (a FIN without it is a cut stream, a
 *           failure, never an end).
 *   out:    leg_send() queues plaintext, sealed when encrypted; leg_finish()
 *           ends our direction on the channel (the FINAL frame), once;
 *           leg_shutdown() is that, then the TCP half-close.
 *   ready:  data may go to the peer: at once when plain, once the channel
 *           opens otherwise (events.ready, called once either way).
 *   failed: events.failed(arg, why), once: the channel rejected what came,
 *           the stream was cut, or the handshake was not done within
 *           LEG_HANDSHAKE_TIMEOUT_MS of leg_start().  That deadline is a
 *           library timer armed once, so a peer that trickles bytes cannot
 *           stretch it.  The leg has queued what the channel still had to
 *           say (a Confirm, so that a peer with another key reports the
 *           wrong key); closing the connection, resetting another leg or
 *           ending the tool is the owner's call.
 *
 * Everything runs on the connection's worker, in its callbacks.
 */
#ifndef IOCPTOOL_LEG_H
#define IOCPTOOL_LEG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"

#include "channel.h"
#include "proxy_protocol.h"

/* How long a channel may take to open (docs/PROTOCOL.md). */
#define LEG_HANDSHAKE_TIMEOUT_MS 10000u
/* How long a PROXY protocol header may take to arrive (--accept-proxy). */
#define LEG_PROXY_TIMEOUT_MS 5000u

struct leg_events {
    void (*plain)(void *arg, const void *data, size_t len);
    void (*ready)(void *arg);
    void (*ended)(void *arg);
    void (*failed)(void *arg, const char *why);
};

/* Owned by whoever owns the connection (usually inside its own struct);
 * the fields are the leg's, read them through the functions below. */
struct leg {
    struct iocp_conn *c;
    struct channel ch; /* ch.ops NULL: plain */
    const struct leg_events *ev;
    void *arg;
    struct iocp_timer *deadline; /* armed while the channel opens */
    struct leg_proxy_wait *proxy_wait; /* the PROXY header so far, until it is whole */
    struct proxy_addr proxied;         /* what it said (family 0: nothing) */
    const uint8_t *key;                /* the channel's, started after the header */
    enum channel_role role;
    struct tls_ctx *tls;     /* or TLS from this context (tls.h) */
    const char *server_name; /* TLS client: the host to verify */
    struct capture_conn *cap;    /* -x, --pcap (capture.h); NULL: none */
    bool named;                  /* its client is in stats_clients.h's table */
    bool ready;                  /* data may go to the peer */
    bool ended_out;              /* our direction has ended (leg_finish) */
    bool failed;
};

struct tls_ctx;

/* What channel a leg gets: none, the pre-shared-key channel with key, or
 * TLS from tls (tls.h). */
struct leg_layer {
    const uint8_t *key; /* NULL: plain (or TLS) */
    enum channel_role role;
    struct tls_ctx *tls;     /* NULL: no TLS */
    const char *server_name; /* TLS client: the host to verify (and SNI) */
    /* --accept-proxy: the peer is a load balancer that first sends a PROXY
     * protocol header (v1 or v2) saying who the client is. */
    bool accept_proxy;
};

/*
 * leg_start(l, c, layer, ev, arg):
 * Call from c's on_open.  A plain leg is ready at once (events.ready runs
 * before this returns); an encrypted one sends its first handshake bytes
 * and arms its deadline.  With layer->accept_proxy the leg first waits
 * for the PROXY header, at most LEG_PROXY_TIMEOUT_MS (a timer armed once):
 * one malformed, too long, cut or late fails the leg; a good one is taken
 * off the stream and the leg goes on as above with the bytes after it.
 * Returns 0, or -1 when it failed at once (events.failed has run).
 */
int leg_start(struct leg *l, struct iocp_conn *c, const struct leg_layer *layer,
              const struct leg_events *ev, void *arg);

/* The connection's on_data and on_eof. */
void leg_data(struct leg *l, const void *data, size_t len);
void leg_eof(struct leg *l);

/*
 * leg_send(l, data, len):
 * Queue plaintext for the peer (the leg must be ready).  0, or the
 * library's error (IOCP_ENOMEM; IOCP_ENOTCONN when the connection is going
 * away), or -1 when sealing failed (events.failed has run).
 */
int leg_send(struct leg *l, const void *data, size_t len);

/* End our direction on the channel (nothing on a plain leg): the FINAL
 * frame, once, and only on a ready leg that has not failed.  No half-close. */
void leg_finish(struct leg *l);

/* leg_finish(), then the half-close once everything queued has gone. */
void leg_shutdown(struct leg *l);

/*
 * leg_fail(l, why):
 * The owner's verdict that the leg failed (also used for the channel's own
 * failures): mark it failed, stop its deadline, queue what the channel
 * still has to say, and call events.failed.  Only the first call counts.
 */
void leg_fail(struct leg *l, const char *why);

/* The owner turns the peer away (an access list, say) and closes the
 * connection: nothing it sent after that point is passed on, and no event
 * follows. */
void leg_refuse(struct leg *l);

/* The connection's on_close: free the channel and the timer.  Nothing of
 * the leg may be used after this but leg_encrypted(). */
void leg_closed(struct leg *l);

/*
 * leg_client(l, buf, len):
 * The address of the client this leg serves, "host:port" ("[v6]:port"):
 * what its PROXY header said (--accept-proxy), else the connection's peer.
 * This is the address that access lists, stats, -v and logs use.
 */
const char *leg_client(const struct leg *l, char *buf, size_t len);

/*
 * leg_client_sockaddr(l, ss, sslen):
 * The same address as a sockaddr (ss: a struct sockaddr_storage).  Returns
 * its length, or 0 when it is not known.
 */
size_t leg_client_sockaddr(const struct leg *l, void *ss, size_t sslen);

/* Whether the client's address came in a PROXY header. */
static inline bool leg_proxied(const struct leg *l)
{
    return l->proxied.family != 0;
}

/* Whether the leg still waits for its PROXY header (or failed waiting). */
static inline bool leg_awaiting_proxy(const struct leg *l)
{
    return l->proxy_wait != NULL;
}

/*
 * leg_peer_cred(c, buf, len):
 * " (pid N, uid N)" for a Unix-domain connection whose peer the system
 * names, "" otherwise: what -v adds after a peer's address.  Returns buf.
 */
const char *leg_peer_cred(struct iocp_conn *c, char *buf, size_t len);

static inline bool leg_ready(const struct leg *l)
{
    return l->ready && !l->failed;
}

static inline bool leg_encrypted(const struct leg *l)
{
    return l->ch.ops != NULL;
}

#endif /* IOCPTOOL_LEG_H */
