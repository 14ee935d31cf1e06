/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay: forward every accepted connection to a target.
 *
 * Each accepted connection (the client leg) gets an outgoing connection
 * (the target leg) on the same worker, so both legs' callbacks run on one
 * thread, one at a time, and the pair needs no lock.  Targets are taken
 * round robin; a target that refuses, times out (-w) or cannot be resolved
 * is skipped for the next, and when every target has failed the client is
 * reset (an abortive close): a client that merely saw EOF could not tell
 * "the relay could not reach anything" from "the service had nothing to
 * say".
 *
 * The byte pipeline is the block marked "the pipeline" below and nothing
 * else: data from one leg is queued on the other with iocp_conn_send(), a
 * leg whose send queue crosses its high watermark pauses reading on the
 * other leg until it drains to the low one, EOF on one leg becomes a
 * half-close (iocp_conn_shutdown) of the other, and the pair closes once
 * both directions have ended.  So a fast sender and a slow receiver hold
 * at most about one watermark of queued bytes per direction (plus what
 * the library already received when the pause came).
 *
 * A direction that turns out to carry bulk data (several large reads in a
 * row) is handed to iocp_conn_splice(): on Linux its bytes then move from
 * socket to socket inside the kernel, through a pipe, and never reach this
 * process; the half-closes still come through on_eof.  Small messages stay
 * on the copying path, where one receive and one send beat a poll and two
 * splices per message.  Where the platform or backend cannot splice (or
 * with --no-splice), the copying path carries everything.
 *
 * While the target leg connects, the client's bytes wait in a buffer of
 * the pair; above the high watermark the client is paused until the
 * target is up.  A reset or a failure on either leg resets the other,
 * whatever state it is in: a target still connecting is reset as soon as
 * it opens, so a client that failed never reaches a target as a clean,
 * short stream.
 *
 * Each leg is a connection leg (leg.h).  --key-listen and --key-target
 * put the channel of docs/PROTOCOL.md on the client leg (the relay is its
 * server) or on the target leg (its client), so that two relays make an
 * encrypted tunnel.  An encrypted leg is "ready" once its channel opens:
 * an encrypted client is only connected onwards then (nobody without the
 * key reaches a target), and what the client sends to an encrypted target
 * waits in the early buffer until that channel opens.  Only authenticated
 * plaintext is forwarded from an encrypted leg; what goes to one is
 * sealed.  EOF on the plaintext side becomes the FINAL frame and then the
 * half-close; the FINAL frame from the encrypted side becomes the
 * half-close of the other leg.  A stream cut before its FINAL frame, a
 * failed authentication or a handshake not done by the leg's deadline
 * resets both legs of that pair only.  Encrypted directions are never
 * spliced: their bytes are transformed.
 *
 * Without -v the relay speaks only of its ends (relay_health.h): a target
 * that cannot be reached or whose channel fails, clients whose channels
 * fail, one line per change of state.
 *
 * Which target a client goes to, and which targets are out, is the
 * balancer's (relay_balance.h); the listening ports and the pool of each
 * are relay_ports.h's, the active check relay_check.h's.  --accept-proxy
 * makes the client leg wait for a PROXY header (leg.h) and take the
 * client's address from it; --send-proxy and --send-proxy-v2 put one
 * before the bytes of the target leg (proxy_protocol.h).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "leg.h"
#include "netcompat.h"
#include "opts.h"
#include "relay_balance.h"
#include "proxy_opt.h"
#include "relay_check.h"
#include "socks_server.h"
#include "relay_health.h"
#include "relay_ports.h"
#include "relay_tls.h"
#include "relay_ops.h"
#include "capture.h"
#include "run.h"
#include "stats_endpoint.h"
#include "udp.h"

#define RELAY_SEND_LOW  (64u * 1024u)
#define RELAY_SEND_HIGH (256u * 1024u)

static struct {
    struct relay_ports ports;
    struct relay_balance_opts balance;
    unsigned check_ms;          /* --check: 0 none */
    struct relay_check *check;
    bool accept_proxy;          /* --accept-proxy */
    int send_proxy;             /* --send-proxy(-v2): 0, 1 or 2 */
    unsigned timeout_ms;
    const char *stats_spec;
    bool no_stats;
    bool no_splice;
    /* --key-listen, --key-target: the keys, when given. */
    bool key_listen, key_target;
    uint8_t listen_key[KEYFILE_KEY_BYTES], target_key[KEYFILE_KEY_BYTES];
    struct relay_health clients; /* the clients' encrypted channels */
    struct proxy_opt proxy;      /* --proxy: targets reached through it */
    struct relay_tls tls;        /* --tls-listen, --tls-target */
    struct socks_config socks;   /* --socks5 and the access lists */
} relay;

/* One relayed connection: the two legs and what is known about them.  Lives
 * until both legs (and every connect attempt) have closed. */
#define PAIR_TAG 0x70616972u /* "pair" */

struct pair {
    uint32_t tag;
    struct leg client; /* client.c NULL once closed */
    struct leg target; /* target.c NULL until connected, and once closed */
    struct iocp_engine *e;
    struct relay_port *rp; /* the listening port, its pool */
    unsigned worker;
    uint64_t tried;           /* the targets of the pool tried for this client */
    unsigned current;         /* the target tried or connected now */
    unsigned current_epoch;   /* its epoch when it was picked (relay_balance.h) */
    unsigned legs;            /* connections (and attempts) not yet closed */
    bool client_eof, target_eof;
    bool client_full, target_full;     /* that leg's send queue is above its high mark */
    bool client_paused, target_paused; /* we paused that leg's reading */
    /* Large reads in a row per direction, and whether it is spliced. */
    uint8_t up_bulk, down_bulk;
    bool up_spliced, down_spliced;
    bool target_ready; /* data may go to the target: connected, channel open */
    bool failed;       /* reset: nothing more is looked at */
    /* Bytes from the client while the target connects. */
    unsigned char *early;
    size_t early_len, early_cap;
    char peer[64];
    struct socks_session *socks; /* --socks5: the client's negotiation */
    struct relay_rec rec; /* for the access log and the drain (relay_ops.h) */
};

static const struct iocp_conn_handler pair_handler;

static void pair_release(struct pair *p)
{
    if (--p->legs)
        return;
    socks_session_free(p->socks);
    relay_rec_close(&p->rec);
    free(p->early);
    free(p);
}

/*
 * pair_fail(p, why):
 * Reset both legs of the pair, whatever state each is in, and say why (-v).
 * A target still connecting is reset when it opens (target_open), so no
 * failure ever reaches a target as a clean end of its input.
 */
static void pair_fail(struct pair *p, const char *why)
{
    if (p->failed)
        return;
    p->failed = true;
    relay_rec_end(&p->rec, CONN_END_RESET);
    diag_info(1, "relay: %s: %s", p->peer, why);
    if (p->client.c)
        iocp_conn_close(p->client.c, IOCP_CLOSE_ABORT);
    if (p->target.c)
        iocp_conn_close(p->target.c, IOCP_CLOSE_ABORT);
}

/* ---- the pipeline ---- */

/* Pause or resume each leg so that it reads only while the other leg can
 * take more: the other's send queue is below its high mark (and, before
 * the target is up, the early buffer is below it). */
static void pipeline_flow(struct pair *p)
{
    if (p->client.c) {
        bool hold = p->target_full || (!p->target_ready && p->early_len >= RELAY_SEND_HIGH);
        if (hold != p->client_paused) {
            p->client_paused = hold;
            if (hold)
                iocp_conn_pause(p->client.c);
            else
                iocp_conn_resume(p->client.c);
        }
    }
    if (p->target.c) {
        bool hold = p->client_full;
        if (hold != p->target_paused) {
            p->target_paused = hold;
            if (hold)
                iocp_conn_pause(p->target.c);
            else
                iocp_conn_resume(p->target.c);
        }
    }
}

/* Queue plaintext on a leg (sealed when it is encrypted); a failure other
 * than "that leg is going away" (out of memory) ends the pair. */
static void pipeline_send(struct pair *p, struct leg *to, const void *data, size_t len)
{
    int rc = leg_send(to, data, len);
    if (rc == IOCP_ENOMEM)
        pair_fail(p, iocp_strerror(rc));
}

/* Both directions ended: each leg has received EOF and has its half-close
 * queued, so a graceful close sends what is left, then closes. */
static void pipeline_maybe_done(struct pair *p)
{
    if (p->client_eof && p->target_eof && p->client.c && p->target.c && p->target_ready) {
        iocp_conn_close(p->client.c, IOCP_CLOSE_GRACEFUL);
        iocp_conn_close(p->target.c, IOCP_CLOSE_GRACEFUL);
    }
}

/* A read this large means the sender had more queued than one buffer. */
#define BULK_READ            (8u * 1024u)
/* Large reads in a row before a direction is spliced. */
#define BULK_READS_TO_SPLICE 4

/* Count large reads in a row on one direction and splice it once the
 * stream looks like a bulk transfer.  The bytes of this read were queued on
 * `to` already, so they go out before anything spliced. */
static void pipeline_maybe_splice(struct pair *p, struct iocp_conn *from, struct iocp_conn *to,
                                  size_t len, uint8_t *bulk, bool *spliced)
{
    /* An encrypted direction's bytes are transformed: never spliced. */
    if (*spliced || relay.no_splice || relay.key_listen || relay.key_target ||
        relay.tls.listen_ctx || relay.tls.target_ctx)
        return;
    *bulk = len >= BULK_READ ? (uint8_t)(*bulk + 1) : 0;
    if (*bulk < BULK_READS_TO_SPLICE)
        return;
    int rc = iocp_conn_splice(from, to);
    /* Whatever the answer, ask only once: a refusal will not change. */
    *spliced = true;
    if (rc < 0)
        diag_info(2, "relay: %s: copying (splice: %s)", p->peer, iocp_strerror(rc));
}

/* Plaintext from the client (authenticated when its leg is encrypted). */
static void pipeline_from_client(void *arg, const void *data, size_t len)
{
    struct pair *p = arg;
    if (p->failed || !p->client.c)
        return;
    if (p->socks && socks_session_negotiating(p->socks)) {
        /* --socks5: the request first; what follows it is the tunnel's. */
        size_t used = socks_session_feed(p->socks, data, len);
        if (p->failed || !p->client.c || socks_session_negotiating(p->socks))
            return;
        size_t held;
        const void *left = socks_session_leftover(p->socks, &held);
        if (held)
            pipeline_from_client(p, left, held);
        data = (const unsigned char *)data + used;
        len -= used;
        if (!len)
            return;
    }
    if (p->target_ready) {
        pipeline_send(p, &p->target, data, len);
        if (p->client.c && p->target.c)
            pipeline_maybe_splice(p, p->client.c, p->target.c, len, &p->up_bulk, &p->up_spliced);
        return;
    }
    /* Still connecting: keep the bytes in order for the target. */
    if (p->early_len + len > p->early_cap) {
        size_t cap = p->early_cap ? p->early_cap : 16384;
        while (cap < p->early_len + len)
            cap *= 2;
        unsigned char *n = realloc(p->early, cap);
        if (!n) {
            pair_fail(p, iocp_strerror(IOCP_ENOMEM));
            return;
        }
        p->early = n;
        p->early_cap = cap;
    }
    memcpy(p->early + p->early_len, data, len);
    p->early_len += len;
    pipeline_flow(p);
}

/* Plaintext from the target (authenticated when its leg is encrypted). */
static void pipeline_from_target(void *arg, const void *data, size_t len)
{
    struct pair *p = arg;
    if (p->failed || !p->client.c)
        return;
    pipeline_send(p, &p->client, data, len);
    if (p->client.c && p->target.c)
        pipeline_maybe_splice(p, p->target.c, p->client.c, len, &p->down_bulk, &p->down_spliced);
}

/* The target leg is ready (connected, and its channel open when
 * encrypted): hand it what the client sent meanwhile, and its EOF. */
static void pipeline_connected(void *arg)
{
    struct pair *p = arg;
    if (balance_connected(&p->rp->pool, p->current, p->current_epoch))
        health_ok(&p->rp->targets[p->current].health);
    if (leg_encrypted(&p->target)) {
        char note[32];
        diag_info(2, "relay: %s: encrypted channel open (target)%s", p->peer,
                  channel_cipher_note(&p->target.ch, note, sizeof note));
    }
    if (relay.tls.target_ctx)
        relay_rec_tls(&p->rec, true, &p->target.ch);
    p->target_ready = true;
    if (p->early_len)
        pipeline_send(p, &p->target, p->early, p->early_len);
    free(p->early);
    p->early = NULL;
    p->early_len = p->early_cap = 0;
    if (p->failed)
        return;
    if (p->client_eof)
        leg_shutdown(&p->target);
    pipeline_flow(p);
    pipeline_maybe_done(p);
}

/* A leg's peer ended its direction (its FIN, or its FINAL frame): end
 * ours towards the other leg. */
static void pipeline_eof(struct pair *p, bool from_client)
{
    if (p->failed)
        return;
    if (from_client) {
        p->client_eof = true;
        if (p->target.c && p->target_ready)
            leg_shutdown(&p->target);
    } else {
        p->target_eof = true;
        if (p->client.c)
            leg_shutdown(&p->client);
    }
    if (!p->failed)
        pipeline_maybe_done(p);
}

static void client_ended(void *arg)
{
    pipeline_eof(arg, true);
}

static void target_ended(void *arg)
{
    pipeline_eof(arg, false);
}

/* ---- connecting to a target ---- */

static void connect_next(struct pair *p);

/* --socks5: the destination the client asked for, the only one tried. */
static void relay_socks_connect(struct pair *p)
{
    struct iocp_connect_config cfg = {
        .host = socks_session_host(p->socks),
        .port = socks_session_port(p->socks),
        .timeout_ms = relay.timeout_ms,
        .worker = (int)p->worker,
        .handler = &pair_handler,
        .data = p,
        .send_low = RELAY_SEND_LOW,
        .send_high = RELAY_SEND_HIGH,
        .proxy = relay.proxy.proxy.kind ? &relay.proxy.proxy : NULL,
    };
    int rc = iocp_connect(p->e, &cfg);
    if (rc == 0) {
        p->current = 0;
        p->legs++;
        return;
    }
    socks_session_unreachable(p->socks, rc);
}

/* --socks5: the session's verdicts.  A refusal the client is told about
 * closes it gracefully, so that it reads the answer; anything else resets
 * it. */
static void socks_request(void *arg)
{
    connect_next(arg);
}

static void socks_failed(void *arg, const char *why, bool reply_queued)
{
    struct pair *p = arg;
    if (!reply_queued || p->failed) {
        pair_fail(p, why);
        return;
    }
    p->failed = true;
    diag_info(1, "relay: %s: %s", p->peer, why);
    if (p->client.c)
        iocp_conn_close(p->client.c, IOCP_CLOSE_GRACEFUL);
    if (p->target.c)
        iocp_conn_close(p->target.c, IOCP_CLOSE_ABORT);
}

static const struct socks_events socks_events = {
    .request = socks_request,
    .failed = socks_failed,
};

/* Try the next target the balancer gives for this client (none it tried
 * already, none that is out); when none is left, reset the client. */
static void connect_next(struct pair *p)
{
    if (p->socks) {
        relay_socks_connect(p);
        return;
    }
    struct balance *pool = &p->rp->pool;
    int i;
    unsigned epoch = 0;
    while ((i = balance_pick(pool, p->peer, p->tried, &epoch)) >= 0) {
        p->tried |= (uint64_t)1 << i;
        struct balance_target *t = &p->rp->targets[i];
        struct iocp_connect_config cfg = {
            .host = t->host,
            .port = t->port,
            .timeout_ms = relay.timeout_ms,
            .worker = (int)p->worker,
            .handler = &pair_handler,
            .data = p,
            .send_low = RELAY_SEND_LOW,
            .send_high = RELAY_SEND_HIGH,
            .proxy = relay.proxy.proxy.kind ? &relay.proxy.proxy : NULL,
        };
        int rc = iocp_connect(p->e, &cfg);
        if (rc == 0) {
            p->current = (unsigned)i;
            p->current_epoch = epoch;
            p->legs++;
            return;
        }
        diag_info(1, "relay: %s: connect %s: %s", p->peer, t->name, iocp_strerror(rc));
        health_failed(&t->health, HEALTH_UNREACHABLE, iocp_strerror(rc));
        balance_failed(pool, (unsigned)i, epoch);
        balance_done(pool, (unsigned)i, 0, 0);
    }
    diag_info(1, "relay: %s: %s, resetting the client", p->peer,
              p->tried ? "no target reachable" : "every target is out");
    for (unsigned k = 0; k < pool->n; k++)
        if (p->tried >> k & 1u)
            health_client_reset(&p->rp->targets[k].health);
    atomic_fetch_add_explicit(&p->rp->refused, 1, memory_order_relaxed);
    relay_rec_end(&p->rec, CONN_END_REFUSED);
    iocp_conn_close(p->client.c, IOCP_CLOSE_ABORT);
}

/* ---- the legs ---- */

static void client_ready(void *arg);
static void client_failed(void *arg, const char *why);
static void target_failed(void *arg, const char *why);

/* What each leg of a pair tells the pipeline. */
enum { CLIENT_LEG, TARGET_LEG };
static const struct leg_events pair_events[2] = {
    [CLIENT_LEG] =
        {
            .plain = pipeline_from_client,
            .ready = client_ready,
            .ended = client_ended,
            .failed = client_failed,
        },
    [TARGET_LEG] =
        {
            .plain = pipeline_from_target,
            .ready = pipeline_connected,
            .ended = target_ended,
            .failed = target_failed,
        },
};

/* ---- either leg's connection: one pair, two legs ---- */

/* Bytes and ends go to the leg the connection is (a pair whose client
 * could not be allocated has no leg at all); once the pair failed, nothing
 * either leg receives is looked at. */
/* The pair of a connection; NULL for an accepted client that has none
 * (its data is still its listening port's). */
static struct pair *pair_of(struct iocp_conn *c)
{
    struct pair *p = iocp_conn_data(c);
    return p && p->tag == PAIR_TAG ? p : NULL;
}

static void pair_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct pair *p = pair_of(c);
    if (p && !p->failed)
        leg_data(c == p->client.c ? &p->client : &p->target, data, len);
}

static void pair_eof(struct iocp_conn *c)
{
    struct pair *p = pair_of(c);
    if (p && !p->failed)
        leg_eof(c == p->client.c ? &p->client : &p->target);
}

/* A leg's send queue crossed a watermark: the other leg reads or waits. */
static void pair_pressure(struct iocp_conn *c, bool full)
{
    struct pair *p = pair_of(c);
    if (!p)
        return;
    *(c == p->client.c ? &p->client_full : &p->target_full) = full;
    pipeline_flow(p);
}

/*
 * pair_leg_gone(p, gone, other, status):
 * A connected leg closed: the other follows.  A leg gone in error takes
 * the other down with a reset, never with the clean end of a short stream;
 * an engine stop resets it without a word.
 */
static void pair_leg_gone(struct pair *p, struct leg *gone, struct leg *other, int status)
{
    leg_closed(gone);
    gone->c = NULL;
    relay_rec_leg_closed(&p->rec, status);
    if (status && status != IOCP_ECANCELED && !p->failed)
        pair_fail(p, iocp_strerror(status));
    else if (other->c)
        iocp_conn_close(other->c, status || p->failed ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
}

/* ---- the client leg ---- */

/* The client may reach a target: at once when plain, once it proved the
 * key when encrypted (nobody without the key reaches a target). */
static void client_ready(void *arg)
{
    struct pair *p = arg;
    if (leg_proxied(&p->client)) {
        /* From here on the client is who its PROXY header says. */
        char was[sizeof p->peer];
        snprintf(was, sizeof was, "%s", p->peer);
        leg_client(&p->client, p->peer, sizeof p->peer);
        relay_rec_client(&p->rec, p->peer);
        diag_info(2, "relay: %s: PROXY header from %s", p->peer, was);
    }
    if (relay.tls.listen_ctx)
        relay_rec_tls(&p->rec, false, &p->client.ch);
    if (relay.key_listen || relay.tls.listen_ctx) {
        health_ok(&relay.clients);
        char note[32];
        diag_info(2, "relay: %s: encrypted channel open (client)%s", p->peer,
                  channel_cipher_note(&p->client.ch, note, sizeof note));
    }
    if (relay.socks.listen) {
        /* --socks5: the client names its destination first. */
        p->socks = socks_session_new(&relay.socks, &p->client, &socks_events, p);
        if (!p->socks)
            pair_fail(p, iocp_strerror(IOCP_ENOMEM));
        return;
    }
    connect_next(p);
}

static void client_failed(void *arg, const char *why)
{
    struct pair *p = arg;
    if (leg_awaiting_proxy(&p->client)) {
        /* A bad or late PROXY header: this client only, said at -v. */
        atomic_fetch_add_explicit(&p->rp->proxy_errors, 1, memory_order_relaxed);
    } else if (!p->failed) {
        /* A TLS handshake that failed (not a stream cut after it) is in
         * the log line. */
        if (relay.tls.listen_ctx && !p->client.ready)
            relay_rec_tls_failed(&p->rec, false, why);
        char said[160];
        snprintf(said, sizeof said, "%s: %s", p->peer, why);
        health_failed(&relay.clients, HEALTH_CHANNEL, said);
    }
    pair_fail(p, why);
}

static void client_open(struct iocp_conn *c, struct relay_port *rp)
{
    atomic_fetch_add_explicit(&rp->accepted, 1, memory_order_relaxed);
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    p->tag = PAIR_TAG;
    p->rp = rp;
    atomic_fetch_add_explicit(&rp->live, 1, memory_order_relaxed);
    /* From the connection: clients may arrive before the ready hook runs. */
    p->e = iocp_conn_engine(c);
    p->worker = iocp_conn_worker(c);
    p->legs = 1;
    iocp_conn_peer(c, p->peer, sizeof p->peer);
    relay_rec_open(&p->rec, c);
    iocp_conn_set_data(c, p);
    struct leg_layer layer = {.key = relay.key_listen ? relay.listen_key : NULL,
                              .role = CHANNEL_SERVER,
                              .accept_proxy = relay.accept_proxy,
                              .tls = relay.tls.listen_ctx};
    leg_start(&p->client, c, &layer, &pair_events[CLIENT_LEG], p);
}

static void client_close(struct pair *p, struct iocp_conn *c, int status)
{
    atomic_fetch_sub_explicit(&p->rp->live, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->rp->bytes_in, iocp_conn_bytes_in(c), memory_order_relaxed);
    atomic_fetch_add_explicit(&p->rp->bytes_out, iocp_conn_bytes_out(c), memory_order_relaxed);
    diag_info(2, "relay: %s closed (%llu bytes in, %llu out): %s", p->peer,
              (unsigned long long)iocp_conn_bytes_in(c), (unsigned long long)iocp_conn_bytes_out(c),
              status ? iocp_strerror(status) : "done");
    relay_rec_client_closed(&p->rec, c);
    pair_leg_gone(p, &p->client, &p->target, status);
    pair_release(p);
}

/* ---- the target leg ---- */

static void target_failed(void *arg, const char *why)
{
    struct pair *p = arg;
    if (!p->failed) {
        /* A TLS handshake that failed (not a stream cut after it) is in
         * the log line. */
        if (relay.tls.target_ctx && !p->target.ready)
            relay_rec_tls_failed(&p->rec, true, why);
        struct relay_health *h = &p->rp->targets[p->current].health;
        health_failed(h, HEALTH_CHANNEL, why);
        health_client_reset(h);
    }
    pair_fail(p, why);
}

/* Before anything else on the target leg: the client's addresses as its
 * own PROXY header gave them (--accept-proxy), else as its connection
 * has them; UNKNOWN / LOCAL where they mean nothing. */
static void send_proxy_header(struct pair *p, struct iocp_conn *t)
{
    struct proxy_addr a;
    if (leg_proxied(&p->client)) {
        a = p->client.proxied;
    } else {
        struct sockaddr_storage peer, local;
        socklen_t pn = sizeof peer, ln = sizeof local;
        iocp_socket_t sock = iocp_conn_socket(p->client.c);
        bool ok = getpeername(sock, (struct sockaddr *)&peer, &pn) == 0 &&
                  getsockname(sock, (struct sockaddr *)&local, &ln) == 0;
        proxy_from_sockaddrs(ok ? (struct sockaddr *)&peer : NULL,
                             ok ? (struct sockaddr *)&local : NULL, &a);
    }
    unsigned char hdr[PROXY_V1_MAX + 64];
    size_t n = relay.send_proxy == 2 ? proxy_build_v2(&a, hdr, sizeof hdr)
                                     : proxy_build_v1(&a, (char *)hdr, sizeof hdr);
    if (n)
        iocp_conn_send(t, hdr, n);
}

static void target_open(struct iocp_conn *t)
{
    struct pair *p = iocp_conn_data(t);
    if (!p->client.c || p->failed) {
        /* The client left, or failed, while we connected: whatever it
         * was, the target must not take it for a complete stream. */
        iocp_conn_close(t, IOCP_CLOSE_ABORT);
        return;
    }
    if (p->socks && !socks_session_connected(p->socks, t)) {
        /* A name that led to a refused destination: not one byte. */
        iocp_conn_close(t, IOCP_CLOSE_ABORT);
        return;
    }
    char cred[64] = "";
    if (diag_verbosity >= 2 && p->client.c) /* a Unix-domain client: its pid and uid */
        leg_peer_cred(p->client.c, cred, sizeof cred);
    diag_info(2, "relay: %s%s -> %s", p->peer, cred, p->rp->targets[p->current].name);
    relay_rec_target(&p->rec, p->rp->targets[p->current].name);
    if (relay.send_proxy)
        send_proxy_header(p, t);
    /* Ready at once when plain (pipeline_connected runs now); with
     * --key-target once its channel opens. */
    struct leg_layer layer = {.key = relay.key_target ? relay.target_key : NULL,
                              .role = CHANNEL_CLIENT,
                              .tls = relay.tls.target_ctx,
                              .server_name = p->rp->targets[p->current].host};
    if (leg_start(&p->target, t, &layer, &pair_events[TARGET_LEG], p) == 0)
        pipeline_flow(p);
}

static void target_close(struct pair *p, struct iocp_conn *t, int status)
{
    /* Every connect the balancer gave ends here once: its live count back,
     * and the bytes of a connection that was made. */
    bool made = p->target.c == t;
    balance_done(&p->rp->pool, p->current, made ? iocp_conn_bytes_out(t) : 0,
                 made ? iocp_conn_bytes_in(t) : 0);
    if (made) {
        pair_leg_gone(p, &p->target, &p->client, status);
    } else if (p->client.c && status == IOCP_ECANCELED) {
        /* The engine stops: no point trying further. */
        iocp_conn_close(p->client.c, IOCP_CLOSE_ABORT);
    } else if (p->socks && p->client.c && !p->failed) {
        /* --socks5: the client hears why its destination failed. */
        socks_session_unreachable(p->socks, status);
    } else if (p->client.c && !p->failed) {
        /* A connect attempt failed: on to the next target. */
        struct balance_target *rt = &p->rp->targets[p->current];
        /* Through a proxy the library says which step failed, and why. */
        const char *why = relay.proxy.proxy.kind && *iocp_error_detail() ? iocp_error_detail()
                                                                         : iocp_strerror(status);
        diag_info(1, "relay: %s: connect %s: %s", p->peer, rt->name, why);
        health_failed(&rt->health, HEALTH_UNREACHABLE, why);
        balance_failed(&p->rp->pool, p->current, p->current_epoch);
        connect_next(p);
    }
    pair_release(p);
}

/* Accepted clients come with their listening port, targets with their
 * pair. */
static void pair_open(struct iocp_conn *c)
{
    struct relay_port *rp = iocp_conn_data(c);
    if (rp && rp->tag == RELAY_PORT_TAG)
        client_open(c, rp);
    else
        target_open(c);
}

/* A connection of a pair closed: its client leg, or a target (connected,
 * or an attempt that failed); an accepted client without a pair had no
 * memory for one. */
static void pair_close(struct iocp_conn *c, int status)
{
    struct pair *p = pair_of(c);
    if (p && c == p->client.c)
        client_close(p, c, status);
    else if (p)
        target_close(p, c, status);
}

static const struct iocp_conn_handler pair_handler = {
    .on_open = pair_open,
    .on_data = pair_data,
    .on_eof = pair_eof,
    .on_pressure = pair_pressure,
    .on_close = pair_close,
};

/* ---- the command ---- */

/* The run's server is the first port; the others are made before it
 * accepts (so that stats sees them all from its start). */
static int relay_begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    const struct iocp_server_config *scfg = arg;
    relay.ports.port[0].server = s;
    if (relay_ports_create_more(&relay.ports, e, scfg) < 0)
        return -1;
    if (relay.check_ms && relay_check_start(&relay.check, e, &relay.ports, relay.check_ms) < 0)
        return -1;
    return 0;
}

static int relay_ready(struct iocp_engine *e, struct iocp_server *s)
{
    (void)e;
    (void)s;
    if (relay_ports_start_more(&relay.ports) < 0)
        return -1;
    for (unsigned k = 0; k < relay.ports.n; k++)
        if (relay_ops_ready(relay.ports.port[k].server) < 0)
            return -1;
    return 0;
}

static void relay_release(void *arg)
{
    (void)arg;
    relay_check_free(relay.check);
    relay.check = NULL;
    relay_ports_close(&relay.ports);
}

enum {
    OPT_STATS = 256,
    OPT_NO_STATS,
    OPT_NO_SPLICE,
    OPT_KEY_LISTEN,
    OPT_KEY_TARGET,
    OPT_ACCEPT_PROXY,
    OPT_SEND_PROXY,
    OPT_SEND_PROXY_V2,
    OPT_BALANCE,
    OPT_MAX_FAILS,
    OPT_FAIL_WINDOW,
    OPT_FAIL_TIMEOUT,
    OPT_CHECK,
    OPT_UNIX_MODE,
    OPT_PROXY,
    OPT_PROXY_AUTH,
};

/* --allow/--deny, for every relay. */
static bool relay_filter(const struct sockaddr *peer, void *data)
{
    (void)data;
    return socks_client_admits(&relay.socks, peer);
}

const struct option relay_options[] = {
    {"wait", required_argument, NULL, 'w'},
    {"workers", required_argument, NULL, 'W'},
    {"backend", required_argument, NULL, 'B'},
    {"max-conns", required_argument, NULL, 'm'},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
    {"stats", required_argument, NULL, OPT_STATS},
    {"no-stats", no_argument, NULL, OPT_NO_STATS},
    {"no-splice", no_argument, NULL, OPT_NO_SPLICE},
    {"key-listen", required_argument, NULL, OPT_KEY_LISTEN},
    {"key-target", required_argument, NULL, OPT_KEY_TARGET},
    {"accept-proxy", no_argument, NULL, OPT_ACCEPT_PROXY},
    {"send-proxy", no_argument, NULL, OPT_SEND_PROXY},
    {"send-proxy-v2", no_argument, NULL, OPT_SEND_PROXY_V2},
    {"balance", required_argument, NULL, OPT_BALANCE},
    {"max-fails", required_argument, NULL, OPT_MAX_FAILS},
    {"fail-window", required_argument, NULL, OPT_FAIL_WINDOW},
    {"fail-timeout", required_argument, NULL, OPT_FAIL_TIMEOUT},
    {"check", required_argument, NULL, OPT_CHECK},
    {"proxy", required_argument, NULL, OPT_PROXY},
    {"proxy-auth", required_argument, NULL, OPT_PROXY_AUTH},
    RELAY_TLS_LONG_OPTIONS,
    SOCKS_LONG_OPTIONS,
    RELAY_OPS_LONG_OPTIONS,
    CAPTURE_LONG_OPTIONS,
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    UDP_LONG_OPTIONS,
    UDP_TTL_OPTION,
    {NULL, 0, NULL, 0},
};

static void relay_usage(FILE *out)
{
    fprintf(out, "usage: iocptool relay [options] [ADDR:]PORT TARGET...\n"
                 "       iocptool relay [options] [ADDR:]FROM-TO HOST:FROM-TO...\n"
                 "       iocptool relay [options] --socks5 [ADDR:]PORT\n"
                 "\n"
                 "Forward every accepted connection to a target, both ways, half-closes\n"
                 "included.  A TARGET is HOST:PORT, optionally with \",weight=N\".  One that\n"
                 "cannot be reached is skipped for the next, and a client for which every\n"
                 "target failed (or every target is out) is reset.  A port range listens\n"
                 "on each port and sends it to the target port at the same place in the\n"
                 "target's range.  IPv6 addresses go in brackets: [::1]:8080.  Either side\n"
                 "may be a Unix-domain socket, unix:PATH (unix:@NAME: a Linux abstract name);\n"
                 "a comma in PATH is part of it, only a \",weight=N\" at the end is the option.\n"
                 "\n"
                 "  -w, --wait S           give up connecting to a target after S seconds\n"
                 "                         (default: the system's time-out)\n"
                 "  -W, --workers N        worker threads (default: one per processor)\n"
                 "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
                 "  -m, --max-conns N      relay at most N clients at once; more are closed\n"
                 "  -4, --ipv4             listen on IPv4 only\n"
                 "  -6, --ipv6             listen on IPv6 only\n"
                 "      --unix-mode MODE   listening on unix:PATH: the socket file's\n"
                 "                         permission bits (octal, such as 0660)\n"
                 "      --balance MODE     rr (default, weighted round robin), leastconn,\n"
                 "                         first (the first target that is in) or hash (by\n"
                 "                         the client's address: a client keeps its target)\n"
                 "      --max-fails N      a target whose connects fail N times within the\n"
                 "                         fail window is out for the fail time-out, then\n"
                 "                         tried again with one client (default 0: never out)\n"
                 "      --fail-window S    the window of --max-fails (default 10)\n"
                 "      --fail-timeout S   how long a failing target is out (default 10)\n"
                 "      --check S          connect to every target each S seconds: one that\n"
                 "                         does not answer is out, one that does is in\n"
                 "      --accept-proxy     clients come through a load balancer that sends a\n"
                 "                         PROXY protocol header (v1 or v2) first; its address\n"
                 "                         is the client's for stats and messages\n"
                 "      --send-proxy       send a PROXY protocol v1 header to each target\n"
                 "      --send-proxy-v2    send a PROXY protocol v2 header to each target\n"
                 "      --no-splice        always copy through the relay (by default, on\n"
                 "                         Linux, bulk transfers are spliced in the kernel)\n"
                 "      --key-listen FILE  the clients' side is encrypted with the key in FILE\n"
                 "                         (made by iocptool keygen)\n"
                 "      --key-target FILE  the targets' side is encrypted with the key in "
                 "FILE\n"
                 "      --proxy URL        reach the targets through a proxy (socks4://,\n"
                 "                         socks4a://, socks5://, socks5h:// or http://, as\n"
                 "                         in iocptool connect --proxy)\n"
                 "      --proxy-auth FILE  the proxy's USER:PASS from FILE (private to its "
                 "owner)\n"
                 "%s%s" RELAY_OPS_HELP CAPTURE_HELP STATS_ENDPOINT_HELP UDP_HELP UDP_TTL_HELP
                 "  -v, --verbose          say more (-vv: every connection)\n"
                 "  -h, --help             this help\n",
            relay_tls_help, socks_options_help);
}

static void relay_wipe_keys(void)
{
    keyfile_wipe(relay.listen_key, sizeof relay.listen_key);
    keyfile_wipe(relay.target_key, sizeof relay.target_key);
}

int cmd_relay(int argc, char **argv)
{
    struct iocp_engine_config ecfg = {.log = diag_lib_log};
    struct iocp_server_config scfg = {
        .handler = &pair_handler,
        .send_low = RELAY_SEND_LOW,
        .send_high = RELAY_SEND_HIGH,
    };
    const char *key_listen_file = NULL, *key_target_file = NULL;
    relay.balance.fail_window_ms = 10000;
    relay.balance.fail_timeout_ms = 10000;
    long long n;
    int opt;
    int udp = udp_dispatch("relay", argc, argv, "w:W:B:m:46vhx:", cmd_udp_relay);
    if (udp >= 0)
        return udp;
    struct opt_parser op;
    opt_init(&op, "relay", argc, argv, "w:W:B:m:46vhx:", relay_options);
    while ((opt = opt_next(&op)) != -1) {
        switch (opt) {
        case 'w':
            if (!opt_seconds("relay", "--wait", optarg, &relay.timeout_ms))
                return EXIT_USAGE;
            break;
        case 'W':
            if (!opt_number("relay", "--workers", optarg, 1, IOCP_MAX_WORKERS, &n))
                return EXIT_USAGE;
            ecfg.workers = (unsigned)n;
            break;
        case 'B':
            ecfg.backend = optarg;
            break;
        case 'm':
            if (!opt_number("relay", "--max-conns", optarg, 1, 1000000, &n))
                return EXIT_USAGE;
            scfg.max_conns = (uint32_t)n;
            break;
        case '4':
        case '6':
            if (scfg.family && scfg.family != opt - '0') {
                diag_error("relay: -4 and -6 exclude each other");
                return EXIT_USAGE;
            }
            scfg.family = opt - '0';
            break;
        case OPT_STATS:
            relay.stats_spec = optarg;
            break;
        case OPT_NO_STATS:
            relay.no_stats = true;
            break;
        case OPT_UNIX_MODE:
            if (!addr_unix_mode("relay", optarg, &scfg.unix_mode))
                return EXIT_USAGE;
            break;
        case OPT_NO_SPLICE:
            relay.no_splice = true;
            break;
        case OPT_KEY_LISTEN:
            key_listen_file = optarg;
            break;
        case OPT_KEY_TARGET:
            key_target_file = optarg;
            break;
        case OPT_ACCEPT_PROXY:
            relay.accept_proxy = true;
            break;
        case OPT_SEND_PROXY:
        case OPT_SEND_PROXY_V2:
            if (relay.send_proxy) {
                diag_error("relay: --send-proxy and --send-proxy-v2: give one of them, once");
                return EXIT_USAGE;
            }
            relay.send_proxy = opt == OPT_SEND_PROXY ? 1 : 2;
            break;
        case OPT_BALANCE:
            if (!balance_parse_mode(optarg, &relay.balance.mode)) {
                diag_error("relay: --balance %s: expected rr, leastconn, first or hash", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_MAX_FAILS:
            if (!opt_number("relay", "--max-fails", optarg, 0, 1000000, &n))
                return EXIT_USAGE;
            relay.balance.max_fails = (unsigned)n;
            break;
        case OPT_FAIL_WINDOW:
            if (!opt_seconds("relay", "--fail-window", optarg, &relay.balance.fail_window_ms))
                return EXIT_USAGE;
            break;
        case OPT_FAIL_TIMEOUT:
            if (!opt_seconds("relay", "--fail-timeout", optarg, &relay.balance.fail_timeout_ms))
                return EXIT_USAGE;
            break;
        case OPT_PROXY:
            relay.proxy.url = optarg;
            break;
        case OPT_PROXY_AUTH:
            relay.proxy.auth_file = optarg;
            break;
        case OPT_CHECK:
            if (!opt_seconds("relay", "--check", optarg, &relay.check_ms))
                return EXIT_USAGE;
            if (!relay.check_ms) {
                diag_error("relay: --check %s: must be more than 0", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            relay_usage(stdout);
            return EXIT_OK;
        case OPT_RELAY_DRAIN_TIMEOUT:
        case OPT_RELAY_REUSEPORT:
        case OPT_RELAY_LOG:
        case OPT_RELAY_LOG_FORMAT:
        case OPT_RELAY_LOG_BUFFER:
        case 'x':
        case CAPTURE_OPT_PCAP:
            if (!relay_ops_option(opt, optarg))
                return EXIT_USAGE;
            break;
        default: {
            if (relay_tls_option(&relay.tls, opt, optarg) > 0)
                break;
            int r = socks_option(&relay.socks, opt, optarg);
            if (r > 0)
                break;
            socks_config_fini(&relay.socks);
            return EXIT_USAGE;
        }
        }
    }
    if (relay.stats_spec && relay.no_stats) {
        diag_error("relay: --stats and --no-stats exclude each other");
        return EXIT_USAGE;
    }
    /* --socks5: no targets, each client names its own; one stand-in
     * target carries the books of every destination. */
    static char socks_stand_in[] = "socks5-destination:1";
    char *socks_targets[] = {socks_stand_in};
    if (relay.socks.listen && argc - optind != 0) {
        diag_error("relay: --socks5 takes no [ADDR:]PORT or targets: each client names its "
                   "destination");
        diag_try_help("relay");
        socks_config_fini(&relay.socks);
        return EXIT_USAGE;
    }
    if (!relay.socks.listen && (argc - optind < 2 || relay.socks.auth_file ||
                                !acl_empty(&relay.socks.to))) {
        diag_error(argc - optind < 2
                       ? "relay: expected [ADDR:]PORT and at least one HOST:PORT target"
                       : "relay: --socks5-auth, --to-allow and --to-deny are for --socks5");
        diag_try_help("relay");
        socks_config_fini(&relay.socks);
        return EXIT_USAGE;
    }
    relay.socks.timeout_ms = relay.timeout_ms;
    if (!(relay.socks.listen
              ? relay_ports_parse("relay", relay.socks.listen, socks_targets, 1, &relay.balance,
                                  &relay.ports)
              : relay_ports_parse("relay", argv[optind], argv + optind + 1,
                                  (unsigned)(argc - optind - 1), &relay.balance, &relay.ports)) ||
        !socks_config_load("relay", &relay.socks)) {
        socks_config_fini(&relay.socks);
        return EXIT_USAGE;
    }
    if (relay.socks.listen)
        for (unsigned k = 0; k < relay.ports.n; k++)
            snprintf(relay.ports.port[k].targets[0].name,
                     sizeof relay.ports.port[k].targets[0].name, "SOCKS5 destination");
    if (!acl_empty(&relay.socks.from))
        scfg.filter = relay_filter;
    if (!proxy_opt_finish("relay", &relay.proxy)) {
        proxy_opt_wipe(&relay.proxy);
        relay_ports_free(&relay.ports);
        return EXIT_USAGE;
    }
    struct relay_port *first = &relay.ports.port[0];
    scfg.host = relay.ports.host[0] ? relay.ports.host : NULL;
    scfg.port = first->port;
    scfg.data = first;
    if (scfg.unix_mode && !addr_is_unix(relay.ports.host)) {
        diag_error("relay: --unix-mode: only when listening on a Unix-domain socket (unix:PATH)");
        relay_ports_free(&relay.ports);
        return EXIT_USAGE;
    }
    /* The keys last, once every usage error has been reported; keyfile_load
     * says why a file is refused (or that encryption is not built in). */
    if (key_listen_file) {
        if (keyfile_load("relay", key_listen_file, relay.listen_key) != 0) {
            relay_ports_free(&relay.ports);
            return EXIT_USAGE;
        }
        relay.key_listen = true;
    }
    if (key_target_file) {
        if (keyfile_load("relay", key_target_file, relay.target_key) != 0) {
            relay_ports_free(&relay.ports);
            relay_wipe_keys();
            return EXIT_USAGE;
        }
        relay.key_target = true;
    }
    int tls_status = relay_tls_start(&relay.tls, relay.key_listen, relay.key_target);
    if (tls_status) {
        relay_ports_free(&relay.ports);
        relay_wipe_keys();
        return tls_status;
    }
    relay_tls_stats(&relay.tls);

    /* Each client holds two connections of the engine's: make room. */
    if (scfg.max_conns)
        ecfg.max_conns = scfg.max_conns * 2u * relay.ports.n + 64u;

    relay.clients.what = "clients";
    relay_ports_stats(&relay.ports);
    /* Captured bytes must pass through the relay: no splicing then. */
    if (capture_on())
        relay.no_splice = true;
    int status = relay_ops_setup(&scfg);
    if (status) {
        relay_ports_free(&relay.ports);
        relay_wipe_keys();
        return status;
    }
    struct run_spec spec = {
        .cmd = "relay",
        .engine = &ecfg,
        .server = &scfg,
        .stats = !relay.no_stats,
        .stats_spec = relay.stats_spec,
        .signal_is_normal_end = true,
        .arg = &scfg,
        .begin = relay_begin,
        .ready = relay_ready,
        .release = relay_release,
    };
    relay_ops_spec(&spec);
    status = run_engine(&spec);
    relay_ops_finish();
    health_final(&relay.clients);
    for (unsigned k = 0; k < relay.ports.n; k++)
        for (unsigned i = 0; i < relay.ports.port[k].pool.n; i++)
            health_final(&relay.ports.port[k].targets[i].health);
    relay_ports_free(&relay.ports);
    relay_wipe_keys();
    proxy_opt_wipe(&relay.proxy);
    relay_tls_free(&relay.tls);
    socks_config_fini(&relay.socks);
    return status;
}
