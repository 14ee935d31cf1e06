/* SPDX-License-Identifier: MIT */
/*
 * leg.h: a connection and its optional channel.
 *
 * The handshake deadline is one library timer per encrypted leg, armed once
 * in leg_start() and stopped when the channel opens: neither bytes nor
 * silence move it, so "not open 10 seconds after it was established"
 * (docs/PROTOCOL.md) holds to the timer's precision whatever the peer
 * sends.  The timer runs on the connection's worker, like every other
 * callback of the leg, so nothing here needs a lock.
 *
 * With --accept-proxy the same timer first bounds the wait for the PROXY
 * header; the bytes of the header are gathered in a buffer of the leg's
 * (at most PROXY_HEADER_MAX) that goes once it is whole.
 */
#include "leg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"
#include "netcompat.h"
#include "stats_clients.h"
#include "tls.h"

struct leg_proxy_wait {
    size_t len;
    unsigned char buf[PROXY_HEADER_MAX];
};

/* Plaintext sealed per call: its wire bytes go to a buffer on the stack,
 * with room for any channel's framing of it. */
#define SEAL_CHUNK  ((size_t)32 * 1024)
#define SEAL_ROOM   (SEAL_CHUNK + SEAL_CHUNK / 16)
/* The most bytes a channel's end of direction takes (a FINAL frame, a TLS
 * close_notify in any cipher suite's record). */
#define FINISH_ROOM 1024

static void ready(struct leg *l)
{
    l->ready = true;
    l->ev->ready(l->arg);
}

void leg_fail(struct leg *l, const char *why)
{
    if (l->failed)
        return;
    l->failed = true;
    if (l->deadline)
        iocp_timer_stop(l->deadline);
    if (l->ch.ops && l->ch.state) {
        size_t n;
        const void *hs = l->ch.ops->handshake_out(l->ch.state, &n);
        if (hs)
            iocp_conn_send(l->c, hs, n);
    }
    l->ev->failed(l->arg, why);
}

static void deadline_passed(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct leg *l = arg;
    if (l->proxy_wait) {
        leg_fail(l, "no PROXY header in time");
    } else if (!l->ready) {
        if (l->ch.ops && l->ch.state && l->ch.ops->timed_out)
            l->ch.ops->timed_out(l->ch.state);
        leg_fail(l, "handshake timed out");
    }
}

/* Arm the leg's one deadline (made at its first use). */
static int arm_deadline(struct leg *l, unsigned ms)
{
    int rc = 0;
    if (!l->deadline)
        rc = iocp_timer_new(iocp_conn_engine(l->c), iocp_conn_worker(l->c), deadline_passed, l,
                            &l->deadline);
    if (rc == 0)
        rc = iocp_timer_start(l->deadline, ms, 0);
    return rc;
}

/* What leg_start does once any PROXY header is behind us: ready when
 * plain, the channel's first handshake bytes otherwise. */
static int begin(struct leg *l)
{
    if (!l->key && !l->tls) {
        ready(l);
        return 0;
    }
    int rc = l->tls ? channel_tls_new(&l->ch, l->tls, l->server_name)
                    : channel_psk_new(&l->ch, l->role, l->key);
    if (rc < 0) {
        leg_fail(l, channel_error_text(l->ch.ops, l->ch.state, rc));
        return -1;
    }
    struct iocp_conn *c = l->c;
    rc = arm_deadline(l, LEG_HANDSHAKE_TIMEOUT_MS);
    if (rc < 0) {
        leg_fail(l, iocp_strerror(rc));
        return -1;
    }
    size_t n;
    const void *hello = l->ch.ops->handshake_out(l->ch.state, &n);
    if (hello) /* a TLS server speaks second */
        iocp_conn_send(c, hello, n);
    return 0;
}

int leg_start(struct leg *l, struct iocp_conn *c, const struct leg_layer *layer,
              const struct leg_events *ev, void *arg)
{
    memset(l, 0, sizeof *l);
    l->c = c;
    l->ev = ev;
    l->arg = arg;
    l->cap = capture_conn_open(c, layer && layer->role == CHANNEL_SERVER);
    if (layer) {
        l->key = layer->key;
        l->role = layer->role;
        l->tls = layer->tls;
        l->server_name = layer->server_name;
    }
    if (!layer || !layer->accept_proxy)
        return begin(l);
    int rc = IOCP_ENOMEM;
    l->proxy_wait = malloc(sizeof *l->proxy_wait);
    if (l->proxy_wait) {
        l->proxy_wait->len = 0;
        rc = arm_deadline(l, LEG_PROXY_TIMEOUT_MS);
    }
    if (rc < 0) {
        leg_fail(l, iocp_strerror(rc));
        return -1;
    }
    return 0;
}

/* Bytes while the PROXY header is awaited.  Every byte before its end
 * belongs to the header, so its end falls in this call's data: what
 * follows it there is the stream's first data. */
static void proxy_data(struct leg *l, const unsigned char *data, size_t len)
{
    struct leg_proxy_wait *w = l->proxy_wait;
    size_t before = w->len;
    size_t take = len < PROXY_HEADER_MAX - before ? len : PROXY_HEADER_MAX - before;
    memcpy(w->buf + before, data, take);
    w->len += take;
    int rc = proxy_parse(w->buf, w->len, &l->proxied);
    if (rc == PROXY_MORE)
        return;
    if (rc < 0) {
        memset(&l->proxied, 0, sizeof l->proxied);
        leg_fail(l, proxy_strerror(rc));
        return;
    }
    size_t used = (size_t)rc - before;
    free(w);
    l->proxy_wait = NULL;
    iocp_timer_stop(l->deadline);
    if (leg_proxied(l)) {
        /* stats --clients lists the client, not the balancer. */
        char client[64];
        l->named = stats_client_name_set(iocp_conn_id(l->c), leg_client(l, client, sizeof client));
    }
    if (begin(l) == 0 && len > used)
        leg_data(l, data + used, len - used);
}

/* Plaintext on its way to the owner: the capture sees it first. */
static void plain_tap(void *arg, const void *data, size_t len)
{
    struct leg *l = arg;
    capture_in(l->cap, data, len);
    l->ev->plain(l->arg, data, len);
}

void leg_data(struct leg *l, const void *data, size_t len)
{
    if (l->failed)
        return; /* nothing a failed leg receives is looked at */
    if (l->proxy_wait) {
        proxy_data(l, data, len);
        return;
    }
    const struct channel_ops *ops = l->ch.ops;
    if (!ops) {
        capture_in(l->cap, data, len);
        l->ev->plain(l->arg, data, len);
        return;
    }
    int ev = ops->feed(l->ch.state, data, len, l->cap ? plain_tap : l->ev->plain,
                       l->cap ? (void *)l : l->arg);
    if (ev < 0) {
        leg_fail(l, channel_error_text(ops, l->ch.state, ev));
        return;
    }
    /* The plaintext callback may have made the owner fail the leg. */
    if (l->failed)
        return;
    if (ev & CHANNEL_EV_SEND) {
        size_t n;
        const void *hs = ops->handshake_out(l->ch.state, &n);
        if (hs)
            iocp_conn_send(l->c, hs, n);
    }
    if (ev & CHANNEL_EV_OPEN) {
        iocp_timer_stop(l->deadline);
        ready(l);
        if (l->failed)
            return;
    }
    if (ev & CHANNEL_EV_END)
        l->ev->ended(l->arg);
}

void leg_eof(struct leg *l)
{
    if (l->failed)
        return;
    if (l->proxy_wait) {
        leg_fail(l, "the connection ended before its PROXY header");
        return;
    }
    if (!l->ch.ops) {
        l->ev->ended(l->arg);
        return;
    }
    /* The real end was the FINAL frame (CHANNEL_EV_END, when it came); a
     * TCP EOF without it is a cut, never an end. */
    int rc = l->ch.ops->eof(l->ch.state);
    if (rc < 0)
        leg_fail(l, channel_error_text(l->ch.ops, l->ch.state, rc));
}

int leg_send(struct leg *l, const void *data, size_t len)
{
    const struct channel_ops *ops = l->ch.ops;
    if (!ops) {
        int rc = iocp_conn_send(l->c, data, len);
        if (rc == 0)
            capture_out(l->cap, data, len);
        return rc;
    }
    if (l->failed)
        return IOCP_ENOTCONN;
    unsigned char sealed[SEAL_ROOM];
    const unsigned char *in = data;
    while (len > 0) {
        size_t chunk = len < SEAL_CHUNK ? len : SEAL_CHUNK;
        int n = ops->seal(l->ch.state, in, chunk, sealed, sizeof sealed);
        if (n < 0) {
            leg_fail(l, channel_error_text(ops, l->ch.state, n));
            return -1;
        }
        int rc = iocp_conn_send(l->c, sealed, (size_t)n);
        if (rc < 0)
            return rc;
        capture_out(l->cap, in, chunk);
        in += chunk;
        len -= chunk;
    }
    return 0;
}

void leg_finish(struct leg *l)
{
    if (!l->ready || l->failed || l->ended_out)
        return;
    l->ended_out = true;
    const struct channel_ops *ops = l->ch.ops;
    if (!ops)
        return;
    unsigned char fin[FINISH_ROOM];
    int n = ops->finish(l->ch.state, fin, sizeof fin);
    if (n < 0)
        leg_fail(l, channel_error_text(ops, l->ch.state, n));
    else
        iocp_conn_send(l->c, fin, (size_t)n);
}

void leg_shutdown(struct leg *l)
{
    leg_finish(l);
    if (!l->failed)
        iocp_conn_shutdown(l->c);
}

void leg_refuse(struct leg *l)
{
    l->failed = true;
    if (l->deadline)
        iocp_timer_stop(l->deadline);
}

void leg_closed(struct leg *l)
{
    if (l->named)
        stats_client_name_clear(iocp_conn_id(l->c));
    l->named = false;
    capture_conn_close(l->cap);
    l->cap = NULL;
    free(l->proxy_wait);
    l->proxy_wait = NULL;
    if (l->deadline) {
        iocp_timer_free(l->deadline);
        l->deadline = NULL;
    }
    if (l->ch.ops && l->ch.state)
        l->ch.ops->free(l->ch.state);
    l->ch.state = NULL;
    l->failed = true; /* nothing more goes through it */
}

const char *leg_client(const struct leg *l, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    if (leg_proxied(l))
        return proxy_format_src(&l->proxied, buf, len);
    if (l->c)
        iocp_conn_peer(l->c, buf, len);
    return buf;
}

size_t leg_client_sockaddr(const struct leg *l, void *ss, size_t sslen)
{
    if (leg_proxied(l))
        return proxy_src_sockaddr(&l->proxied, ss, sslen);
    if (!l->c || sslen < sizeof(struct sockaddr_storage))
        return 0;
    struct sockaddr_storage peer;
    socklen_t n = sizeof peer;
    if (getpeername(iocp_conn_socket(l->c), (struct sockaddr *)&peer, &n) != 0)
        return 0;
    memcpy(ss, &peer, (size_t)n);
    return (size_t)n;
}
const char *leg_peer_cred(struct iocp_conn *c, char *buf, size_t len)
{
    struct iocp_peer_cred cred;
    buf[0] = '\0';
    if (iocp_conn_peer_cred(c, &cred) < 0 || cred.pid < 0)
        return buf;
    if (cred.uid >= 0)
        snprintf(buf, len, " (pid %lld, uid %lld)", (long long)cred.pid, (long long)cred.uid);
    else
        snprintf(buf, len, " (pid %lld)", (long long)cred.pid);
    return buf;
}
