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
 * target is up.  A reset on either leg resets the other.
 *
 * --key-listen and --key-target put the channel of docs/PROTOCOL.md on the
 * client leg (the relay is its SECURE_SERVER) or on the target leg (its
 * SECURE_CLIENT), so that two relays make an encrypted tunnel.  An
 * encrypted leg is "ready" once its channel opens: an encrypted client is
 * only connected onwards then (nobody without the key reaches a target),
 * and what the client sends to an encrypted target waits in the early
 * buffer until that channel opens.  What comes from an encrypted leg goes
 * through secure_feed() and only authenticated plaintext is forwarded;
 * what goes to one is sealed.  EOF on the plaintext side becomes the FINAL
 * frame and then the half-close; the FINAL frame from the encrypted side
 * becomes the half-close of the other leg.  A stream cut before its FINAL
 * frame, a failed authentication or a handshake that does not finish in
 * SECURE_HANDSHAKE_TIMEOUT_MS resets both legs of that pair only (a leg
 * silent that long is closed by its idle timer; one that trickles bytes is
 * reset at the first of them past the limit, so no handshake lasts twice
 * the limit).
 * Encrypted directions are never spliced: their bytes are transformed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iocp.h"

#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "opts.h"
#include "secure.h"
#include "stats_endpoint.h"

#define RELAY_SEND_LOW  (64u * 1024u)
#define RELAY_SEND_HIGH (256u * 1024u)

struct relay_target {
    char host[256];
    uint16_t port;
    char name[270]; /* "host:port" / "[v6]:port" for messages */
};

static struct {
    struct relay_target *targets;
    unsigned ntargets;
    atomic_uint next; /* round robin; any worker takes the next one */
    unsigned timeout_ms;
    const char *stats_spec;
    bool no_stats;
    bool no_splice;
    /* --key-listen, --key-target: the keys, when given. */
    bool key_listen, key_target;
    uint8_t listen_key[KEYFILE_KEY_BYTES], target_key[KEYFILE_KEY_BYTES];
} relay;

/* Plaintext sealed per call, and the frames it makes, on the stack. */
#define SEAL_CHUNK ((size_t)32 * 1024)
#define SEAL_BOUND SECURE_SEAL_BOUND(SEAL_CHUNK)

/* One relayed connection: the two legs and what is known about them.  Lives
 * until both legs (and every connect attempt) have closed. */
struct pair {
    struct iocp_conn *client; /* NULL once closed */
    struct iocp_conn *target; /* NULL until connected, and once closed */
    struct iocp_engine *e;
    unsigned worker;
    unsigned first, attempts; /* round-robin start, targets tried so far */
    unsigned current;         /* the target tried or connected now */
    unsigned legs;            /* connections (and attempts) not yet closed */
    bool client_eof, target_eof;
    bool client_full, target_full;     /* that leg's send queue is above its high mark */
    bool client_paused, target_paused; /* we paused that leg's reading */
    /* Large reads in a row per direction, and whether it is spliced. */
    uint8_t up_bulk, down_bulk;
    bool up_spliced, down_spliced;
    /* The channels of encrypted legs (NULL for a plain leg); a leg is ready
     * once data may go to it: plain and connected, or its channel open. */
    struct secure *client_sec, *target_sec;
    bool target_ready;
    bool failed;                         /* reset: nothing more is looked at */
    uint64_t client_hs_ms, target_hs_ms; /* when each handshake began */
    /* Bytes from the client while the target connects. */
    unsigned char *early;
    size_t early_len, early_cap;
    char peer[64];
};

static const struct iocp_conn_handler target_handler;

static void pair_release(struct pair *p)
{
    if (--p->legs)
        return;
    free(p->early);
    secure_free(p->client_sec);
    secure_free(p->target_sec);
    free(p);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reset both legs of the pair and say why (-v). */
static void pair_fail(struct pair *p, const char *why)
{
    if (p->failed)
        return;
    p->failed = true;
    diag_info(1, "relay: %s: %s", p->peer, why);
    if (p->client)
        iocp_conn_close(p->client, IOCP_CLOSE_ABORT);
    if (p->target)
        iocp_conn_close(p->target, IOCP_CLOSE_ABORT);
}

/* ---- the pipeline ---- */

/* Pause or resume each leg so that it reads only while the other leg can
 * take more: the other's send queue is below its high mark (and, before
 * the target is up, the early buffer is below it). */
static void pipeline_flow(struct pair *p)
{
    if (p->client) {
        bool hold = p->target_full || (!p->target_ready && p->early_len >= RELAY_SEND_HIGH);
        if (hold != p->client_paused) {
            p->client_paused = hold;
            if (hold)
                iocp_conn_pause(p->client);
            else
                iocp_conn_resume(p->client);
        }
    }
    if (p->target) {
        bool hold = p->client_full;
        if (hold != p->target_paused) {
            p->target_paused = hold;
            if (hold)
                iocp_conn_pause(p->target);
            else
                iocp_conn_resume(p->target);
        }
    }
}

/* Queue bytes on a leg; a failure other than "that leg is going away"
 * (out of memory) ends the pair. */
static void pipeline_send_raw(struct pair *p, struct iocp_conn *to, const void *data, size_t len)
{
    int rc = iocp_conn_send(to, data, len);
    if (rc == IOCP_ENOMEM)
        pair_fail(p, iocp_strerror(rc));
}

/* The channel of a leg, NULL when it is plain. */
static struct secure *leg_sec(const struct pair *p, const struct iocp_conn *c)
{
    return c == p->client ? p->client_sec : p->target_sec;
}

/* Queue plaintext on a leg: as it is, or sealed into its channel's frames. */
static void pipeline_send(struct pair *p, struct iocp_conn *to, const void *data, size_t len)
{
    struct secure *sec = leg_sec(p, to);
    if (!sec) {
        pipeline_send_raw(p, to, data, len);
        return;
    }
    unsigned char sealed[SEAL_BOUND];
    const unsigned char *in = data;
    while (len > 0 && !p->failed) {
        size_t chunk = len < SEAL_CHUNK ? len : SEAL_CHUNK;
        int n = secure_seal(sec, in, chunk, sealed, sizeof sealed);
        if (n < 0) {
            pair_fail(p, secure_strerror(n));
            return;
        }
        pipeline_send_raw(p, to, sealed, (size_t)n);
        in += chunk;
        len -= chunk;
    }
}

/* Half-close towards a leg: an encrypted one gets the FINAL frame first. */
static void pipeline_shutdown(struct pair *p, struct iocp_conn *to)
{
    struct secure *sec = leg_sec(p, to);
    if (sec) {
        unsigned char fin[SECURE_FRAME_OVERHEAD];
        int n = secure_finish(sec, fin, sizeof fin);
        if (n < 0) {
            pair_fail(p, secure_strerror(n));
            return;
        }
        pipeline_send_raw(p, to, fin, (size_t)n);
    }
    iocp_conn_shutdown(to);
}

/* Both directions ended: each leg has received EOF and has its half-close
 * queued, so a graceful close sends what is left, then closes. */
static void pipeline_maybe_done(struct pair *p)
{
    if (p->client_eof && p->target_eof && p->client && p->target && p->target_ready) {
        iocp_conn_close(p->client, IOCP_CLOSE_GRACEFUL);
        iocp_conn_close(p->target, IOCP_CLOSE_GRACEFUL);
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
    if (*spliced || relay.no_splice || p->client_sec || p->target_sec)
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

static void pipeline_from_client(struct pair *p, const void *data, size_t len)
{
    if (p->failed || !p->client)
        return;
    if (p->target_ready) {
        pipeline_send(p, p->target, data, len);
        if (p->client && p->target)
            pipeline_maybe_splice(p, p->client, p->target, len, &p->up_bulk, &p->up_spliced);
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

static void pipeline_from_target(struct pair *p, const void *data, size_t len)
{
    if (p->failed || !p->client)
        return;
    pipeline_send(p, p->client, data, len);
    if (p->client && p->target)
        pipeline_maybe_splice(p, p->target, p->client, len, &p->down_bulk, &p->down_spliced);
}

/* The target is ready (connected, and its channel open when encrypted):
 * hand it what the client sent meanwhile, and its EOF. */
static void pipeline_connected(struct pair *p)
{
    p->target_ready = true;
    if (p->early_len)
        pipeline_send(p, p->target, p->early, p->early_len);
    free(p->early);
    p->early = NULL;
    p->early_len = p->early_cap = 0;
    if (p->failed)
        return;
    if (p->client_eof)
        pipeline_shutdown(p, p->target);
    pipeline_flow(p);
    pipeline_maybe_done(p);
}

static void pipeline_eof(struct pair *p, bool from_client)
{
    if (p->failed)
        return;
    if (from_client) {
        p->client_eof = true;
        if (p->target && p->target_ready)
            pipeline_shutdown(p, p->target);
    } else {
        p->target_eof = true;
        if (p->client)
            pipeline_shutdown(p, p->client);
    }
    if (!p->failed)
        pipeline_maybe_done(p);
}

/* ---- encrypted legs ---- */

static void connect_next(struct pair *p);

static void plain_from_client(void *arg, const void *data, size_t len)
{
    pipeline_from_client(arg, data, len);
}

static void plain_from_target(void *arg, const void *data, size_t len)
{
    pipeline_from_target(arg, data, len);
}

/* Start the channel of a leg that just opened: our Hello goes at once, and
 * the leg may stay silent for SECURE_HANDSHAKE_TIMEOUT_MS at most while the
 * handshake runs (leg_feed bounds the whole handshake to that too). */
static bool leg_start(struct pair *p, struct iocp_conn *c, bool client_leg)
{
    struct secure **sec = client_leg ? &p->client_sec : &p->target_sec;
    int rc = secure_new(sec, client_leg ? SECURE_SERVER : SECURE_CLIENT,
                        client_leg ? relay.listen_key : relay.target_key);
    if (rc < 0) {
        pair_fail(p, secure_strerror(rc));
        return false;
    }
    *(client_leg ? &p->client_hs_ms : &p->target_hs_ms) = now_ms();
    size_t n;
    const void *hello = secure_handshake_out(*sec, &n);
    pipeline_send_raw(p, c, hello, n);
    iocp_conn_set_idle_timeout(c, SECURE_HANDSHAKE_TIMEOUT_MS);
    return true;
}

/* Bytes from an encrypted leg: only authenticated plaintext goes on. */
static void leg_feed(struct pair *p, struct iocp_conn *c, bool client_leg, const void *data,
                     size_t len)
{
    struct secure *sec = client_leg ? p->client_sec : p->target_sec;
    uint64_t began = client_leg ? p->client_hs_ms : p->target_hs_ms;
    if (!secure_is_open(sec) && now_ms() - began >= SECURE_HANDSHAKE_TIMEOUT_MS) {
        pair_fail(p, "handshake timed out");
        return;
    }
    int ev = secure_feed(sec, data, len, client_leg ? plain_from_client : plain_from_target, p);
    if (ev < 0) {
        pair_fail(p, secure_strerror(ev));
        return;
    }
    if (p->failed)
        return;
    if (ev & SECURE_EV_SEND) {
        size_t n;
        const void *confirm = secure_handshake_out(sec, &n);
        if (confirm)
            pipeline_send_raw(p, c, confirm, n);
    }
    if (ev & SECURE_EV_OPEN) {
        iocp_conn_set_idle_timeout(c, 0);
        diag_info(2, "relay: %s: encrypted channel open (%s)", p->peer,
                  client_leg ? "client" : "target");
        if (client_leg)
            connect_next(p); /* only now does the client reach a target */
        else
            pipeline_connected(p);
        if (p->failed || (client_leg ? !p->client : !p->target))
            return;
    }
    if (ev & SECURE_EV_END)
        pipeline_eof(p, client_leg);
}

/* TCP EOF on a leg: on an encrypted one the end was its FINAL frame (seen
 * in leg_feed); an EOF without it is a cut stream. */
static void leg_eof(struct pair *p, bool client_leg)
{
    if (p->failed)
        return;
    struct secure *sec = client_leg ? p->client_sec : p->target_sec;
    if (sec) {
        int r = secure_eof(sec);
        if (r < 0)
            pair_fail(p, secure_strerror(r));
        return;
    }
    pipeline_eof(p, client_leg);
}

/* A leg closed by the idle timer during its handshake: say so (-v). */
static void leg_closed(struct pair *p, struct secure *sec, int status)
{
    if (sec && !p->failed && status == IOCP_ETIMEDOUT && !secure_is_open(sec)) {
        p->failed = true;
        diag_info(1, "relay: %s: handshake timed out", p->peer);
    }
}

/* ---- connecting to a target ---- */

/* Try the targets not tried yet, starting where round robin put this pair;
 * when none is left, reset the client. */
static void connect_next(struct pair *p)
{
    while (p->attempts < relay.ntargets) {
        unsigned i = (p->first + p->attempts) % relay.ntargets;
        p->attempts++;
        struct relay_target *t = &relay.targets[i];
        struct iocp_connect_config cfg = {
            .host = t->host,
            .port = t->port,
            .timeout_ms = relay.timeout_ms,
            .worker = (int)p->worker,
            .handler = &target_handler,
            .data = p,
            .send_low = RELAY_SEND_LOW,
            .send_high = RELAY_SEND_HIGH,
        };
        int rc = iocp_connect(p->e, &cfg);
        if (rc == 0) {
            p->current = i;
            p->legs++;
            return;
        }
        diag_info(1, "relay: %s: connect %s: %s", p->peer, t->name, iocp_strerror(rc));
    }
    diag_info(1, "relay: %s: no target reachable, resetting the client", p->peer);
    iocp_conn_close(p->client, IOCP_CLOSE_ABORT);
}

/* ---- the client leg ---- */

static void client_open(struct iocp_conn *c)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    p->client = c;
    /* From the connection: clients may arrive before the ready hook runs. */
    p->e = iocp_conn_engine(c);
    p->worker = iocp_conn_worker(c);
    p->legs = 1;
    iocp_conn_peer(c, p->peer, sizeof p->peer);
    p->first = atomic_fetch_add(&relay.next, 1) % relay.ntargets;
    iocp_conn_set_data(c, p);
    if (relay.key_listen) {
        /* The target is connected once the client has proved the key. */
        leg_start(p, c, true);
        return;
    }
    connect_next(p);
}

static void client_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct pair *p = iocp_conn_data(c);
    if (!p || p->failed)
        return;
    if (p->client_sec)
        leg_feed(p, c, true, data, len);
    else
        pipeline_from_client(p, data, len);
}

static void client_eof(struct iocp_conn *c)
{
    struct pair *p = iocp_conn_data(c);
    if (p)
        leg_eof(p, true);
}

static void client_pressure(struct iocp_conn *c, bool full)
{
    struct pair *p = iocp_conn_data(c);
    if (!p)
        return;
    p->client_full = full;
    pipeline_flow(p);
}

static void client_close(struct iocp_conn *c, int status)
{
    struct pair *p = iocp_conn_data(c);
    if (!p)
        return; /* the pair could not be allocated */
    diag_info(2, "relay: %s closed (%llu bytes in, %llu out): %s", p->peer,
              (unsigned long long)iocp_conn_bytes_in(c), (unsigned long long)iocp_conn_bytes_out(c),
              status ? iocp_strerror(status) : "done");
    leg_closed(p, p->client_sec, status);
    p->client = NULL;
    if (p->target)
        iocp_conn_close(p->target, status ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
    pair_release(p);
}

static const struct iocp_conn_handler client_handler = {
    .on_open = client_open,
    .on_data = client_data,
    .on_eof = client_eof,
    .on_pressure = client_pressure,
    .on_close = client_close,
};

/* ---- the target leg ---- */

static void target_open(struct iocp_conn *t)
{
    struct pair *p = iocp_conn_data(t);
    if (!p->client) {
        /* The client left while we connected. */
        iocp_conn_close(t, IOCP_CLOSE_GRACEFUL);
        return;
    }
    p->target = t;
    diag_info(2, "relay: %s -> %s", p->peer, relay.targets[p->current].name);
    if (relay.key_target) {
        /* Ready once its channel opens (leg_feed). */
        if (leg_start(p, t, false))
            pipeline_flow(p);
        return;
    }
    pipeline_connected(p);
}

static void target_data(struct iocp_conn *t, const void *data, size_t len)
{
    struct pair *p = iocp_conn_data(t);
    if (p->failed)
        return;
    if (p->target_sec)
        leg_feed(p, t, false, data, len);
    else
        pipeline_from_target(p, data, len);
}

static void target_eof(struct iocp_conn *t)
{
    leg_eof(iocp_conn_data(t), false);
}

static void target_pressure(struct iocp_conn *t, bool full)
{
    struct pair *p = iocp_conn_data(t);
    p->target_full = full;
    pipeline_flow(p);
}

static void target_close(struct iocp_conn *t, int status)
{
    struct pair *p = iocp_conn_data(t);
    if (p->target == t) {
        leg_closed(p, p->target_sec, status);
        p->target = NULL;
        if (p->client)
            iocp_conn_close(p->client, status ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
    } else if (p->client && status == IOCP_ECANCELED) {
        /* The engine stops: no point trying further. */
        iocp_conn_close(p->client, IOCP_CLOSE_ABORT);
    } else if (p->client) {
        /* A connect attempt failed: on to the next target. */
        diag_info(1, "relay: %s: connect %s: %s", p->peer, relay.targets[p->current].name,
                  iocp_strerror(status));
        connect_next(p);
    }
    pair_release(p);
}

static const struct iocp_conn_handler target_handler = {
    .on_open = target_open,
    .on_data = target_data,
    .on_eof = target_eof,
    .on_pressure = target_pressure,
    .on_close = target_close,
};

/* ---- the command ---- */

static int relay_ready(struct iocp_engine *e, struct iocp_server *s)
{
    if (relay.no_stats)
        return 0;
    return stats_endpoint_start(e, s, relay.stats_spec);
}

enum { OPT_STATS = 256, OPT_NO_STATS, OPT_NO_SPLICE, OPT_KEY_LISTEN, OPT_KEY_TARGET };

const struct option relay_options[] = {
    {"wait", required_argument, NULL, 'w'},
    {"workers", required_argument, NULL, 'W'},
    {"backend", required_argument, NULL, 'B'},
    {"max-conns", required_argument, NULL, 'm'},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"stats", required_argument, NULL, OPT_STATS},
    {"no-stats", no_argument, NULL, OPT_NO_STATS},
    {"no-splice", no_argument, NULL, OPT_NO_SPLICE},
    {"key-listen", required_argument, NULL, OPT_KEY_LISTEN},
    {"key-target", required_argument, NULL, OPT_KEY_TARGET},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void relay_usage(FILE *out)
{
    fprintf(out, "usage: iocptool relay [options] [ADDR:]PORT HOST:PORT...\n"
                 "\n"
                 "Forward every accepted connection to a target, both ways, half-closes\n"
                 "included.  Several targets are used round robin; one that cannot be\n"
                 "reached is skipped for the next, and a client for which every target\n"
                 "failed is reset.  IPv6 addresses go in brackets: [::1]:8080.\n"
                 "\n"
                 "  -w, --wait S           give up connecting to a target after S seconds\n"
                 "                         (default: the system's time-out)\n"
                 "  -W, --workers N        worker threads (default: one per processor)\n"
                 "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
                 "  -m, --max-conns N      relay at most N clients at once; more are closed\n"
                 "  -4, --ipv4             listen on IPv4 only\n"
                 "  -6, --ipv6             listen on IPv6 only\n"
                 "      --no-splice        always copy through the relay (by default, on\n"
                 "                         Linux, bulk transfers are spliced in the kernel)\n"
                 "      --key-listen FILE  the clients' side is encrypted with the key in FILE\n"
                 "                         (made by iocptool keygen)\n"
                 "      --key-target FILE  the targets' side is encrypted with the key in "
                 "FILE\n" STATS_ENDPOINT_HELP
                 "  -v, --verbose          say more (-vv: every connection)\n"
                 "  -h, --help             this help\n");
}

static void relay_wipe_keys(void)
{
    keyfile_wipe(relay.listen_key, sizeof relay.listen_key);
    keyfile_wipe(relay.target_key, sizeof relay.target_key);
}

static bool parse_target(const char *text, struct relay_target *t)
{
    if (!opt_hostport("relay", text, t->host, sizeof t->host, &t->port))
        return false;
    if (!t->host[0] || t->port == 0) {
        diag_error("relay: target %s: expected HOST:PORT with a port other than 0", text);
        return false;
    }
    snprintf(t->name, sizeof t->name, strchr(t->host, ':') ? "[%s]:%u" : "%s:%u", t->host, t->port);
    return true;
}

int cmd_relay(int argc, char **argv)
{
    struct iocp_engine_config ecfg = {.log = diag_lib_log};
    struct iocp_server_config scfg = {
        .handler = &client_handler,
        .send_low = RELAY_SEND_LOW,
        .send_high = RELAY_SEND_HIGH,
    };
    const char *key_listen_file = NULL, *key_target_file = NULL;
    long long n;
    int opt;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "w:W:B:m:46vh", relay_options, NULL)) != -1) {
        switch (opt) {
        case 'w':
            if (!opt_seconds("relay", "--wait", optarg, &relay.timeout_ms))
                return EXIT_USAGE;
            break;
        case 'W':
            if (!opt_number("relay", "--workers", optarg, 1, IOCP_STATS_MAX_WORKERS, &n))
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
        case OPT_NO_SPLICE:
            relay.no_splice = true;
            break;
        case OPT_KEY_LISTEN:
            key_listen_file = optarg;
            break;
        case OPT_KEY_TARGET:
            key_target_file = optarg;
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            relay_usage(stdout);
            return EXIT_OK;
        default:
            relay_usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (relay.stats_spec && relay.no_stats) {
        diag_error("relay: --stats and --no-stats exclude each other");
        return EXIT_USAGE;
    }
    if (argc - optind < 2) {
        diag_error("relay: expected [ADDR:]PORT and at least one HOST:PORT target");
        relay_usage(stderr);
        return EXIT_USAGE;
    }
    char host[256];
    if (!opt_hostport("relay", argv[optind], host, sizeof host, &scfg.port))
        return EXIT_USAGE;
    scfg.host = host[0] ? host : NULL;
    relay.ntargets = (unsigned)(argc - optind - 1);
    relay.targets = calloc(relay.ntargets, sizeof *relay.targets);
    if (!relay.targets) {
        diag_error("relay: out of memory");
        return EXIT_RUNTIME;
    }
    for (unsigned i = 0; i < relay.ntargets; i++)
        if (!parse_target(argv[optind + 1 + i], &relay.targets[i])) {
            free(relay.targets);
            return EXIT_USAGE;
        }
    /* The keys last, once every usage error has been reported; keyfile_load
     * says why a file is refused (or that encryption is not built in). */
    if (key_listen_file) {
        if (keyfile_load("relay", key_listen_file, relay.listen_key) != 0) {
            free(relay.targets);
            return EXIT_USAGE;
        }
        relay.key_listen = true;
    }
    if (key_target_file) {
        if (keyfile_load("relay", key_target_file, relay.target_key) != 0) {
            free(relay.targets);
            relay_wipe_keys();
            return EXIT_USAGE;
        }
        relay.key_target = true;
    }

    /* Each client holds two connections of the engine's: make room. */
    if (scfg.max_conns)
        ecfg.max_conns = scfg.max_conns * 2u + 64u;

    int status = cli_run_server("relay", &ecfg, &scfg, relay_ready);
    free(relay.targets);
    relay_wipe_keys();
    return status;
}
