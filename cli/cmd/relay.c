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
#include "opts.h"
#include "relay_health.h"
#include "stats_endpoint.h"

#define RELAY_SEND_LOW  (64u * 1024u)
#define RELAY_SEND_HIGH (256u * 1024u)

struct relay_target {
    char host[ADDR_HOST_MAX];
    uint16_t port;
    char name[270]; /* "host:port" / "[v6]:port" for messages */
    char what[280]; /* "target host:port" for relay_health */
    struct relay_health health;
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
    struct relay_health clients; /* the clients' encrypted channels */
} relay;

/* One relayed connection: the two legs and what is known about them.  Lives
 * until both legs (and every connect attempt) have closed. */
struct pair {
    struct leg client; /* client.c NULL once closed */
    struct leg target; /* target.c NULL until connected, and once closed */
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
    bool target_ready; /* data may go to the target: connected, channel open */
    bool failed;       /* reset: nothing more is looked at */
    /* Bytes from the client while the target connects. */
    unsigned char *early;
    size_t early_len, early_cap;
    char peer[64];
};

static const struct iocp_conn_handler pair_handler;

static void pair_release(struct pair *p)
{
    if (--p->legs)
        return;
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
    if (*spliced || relay.no_splice || relay.key_listen || relay.key_target)
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
    health_ok(&relay.targets[p->current].health);
    if (leg_encrypted(&p->target))
        diag_info(2, "relay: %s: encrypted channel open (target)", p->peer);
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
            .handler = &pair_handler,
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
        health_failed(&t->health, HEALTH_UNREACHABLE, iocp_strerror(rc));
    }
    diag_info(1, "relay: %s: no target reachable, resetting the client", p->peer);
    for (unsigned k = 0; k < p->attempts; k++)
        health_client_reset(&relay.targets[(p->first + k) % relay.ntargets].health);
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
static void pair_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct pair *p = iocp_conn_data(c);
    if (p && !p->failed)
        leg_data(c == p->client.c ? &p->client : &p->target, data, len);
}

static void pair_eof(struct iocp_conn *c)
{
    struct pair *p = iocp_conn_data(c);
    if (p && !p->failed)
        leg_eof(c == p->client.c ? &p->client : &p->target);
}

/* A leg's send queue crossed a watermark: the other leg reads or waits. */
static void pair_pressure(struct iocp_conn *c, bool full)
{
    struct pair *p = iocp_conn_data(c);
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
    if (relay.key_listen) {
        health_ok(&relay.clients);
        diag_info(2, "relay: %s: encrypted channel open (client)", p->peer);
    }
    connect_next(p);
}

static void client_failed(void *arg, const char *why)
{
    struct pair *p = arg;
    if (!p->failed) {
        char said[160];
        snprintf(said, sizeof said, "%s: %s", p->peer, why);
        health_failed(&relay.clients, HEALTH_CHANNEL, said);
    }
    pair_fail(p, why);
}

static void client_open(struct iocp_conn *c)
{
    struct pair *p = calloc(1, sizeof *p);
    if (!p) {
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    /* From the connection: clients may arrive before the ready hook runs. */
    p->e = iocp_conn_engine(c);
    p->worker = iocp_conn_worker(c);
    p->legs = 1;
    iocp_conn_peer(c, p->peer, sizeof p->peer);
    p->first = atomic_fetch_add(&relay.next, 1) % relay.ntargets;
    iocp_conn_set_data(c, p);
    struct leg_layer layer = {.key = relay.key_listen ? relay.listen_key : NULL,
                              .role = CHANNEL_SERVER};
    leg_start(&p->client, c, &layer, &pair_events[CLIENT_LEG], p);
}

static void client_close(struct pair *p, struct iocp_conn *c, int status)
{
    diag_info(2, "relay: %s closed (%llu bytes in, %llu out): %s", p->peer,
              (unsigned long long)iocp_conn_bytes_in(c), (unsigned long long)iocp_conn_bytes_out(c),
              status ? iocp_strerror(status) : "done");
    pair_leg_gone(p, &p->client, &p->target, status);
    pair_release(p);
}

/* ---- the target leg ---- */

static void target_failed(void *arg, const char *why)
{
    struct pair *p = arg;
    if (!p->failed) {
        struct relay_health *h = &relay.targets[p->current].health;
        health_failed(h, HEALTH_CHANNEL, why);
        health_client_reset(h);
    }
    pair_fail(p, why);
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
    diag_info(2, "relay: %s -> %s", p->peer, relay.targets[p->current].name);
    /* Ready at once when plain (pipeline_connected runs now); with
     * --key-target once its channel opens. */
    struct leg_layer layer = {.key = relay.key_target ? relay.target_key : NULL,
                              .role = CHANNEL_CLIENT};
    if (leg_start(&p->target, t, &layer, &pair_events[TARGET_LEG], p) == 0)
        pipeline_flow(p);
}

static void target_close(struct pair *p, struct iocp_conn *t, int status)
{
    if (p->target.c == t) {
        pair_leg_gone(p, &p->target, &p->client, status);
    } else if (p->client.c && status == IOCP_ECANCELED) {
        /* The engine stops: no point trying further. */
        iocp_conn_close(p->client.c, IOCP_CLOSE_ABORT);
    } else if (p->client.c && !p->failed) {
        /* A connect attempt failed: on to the next target. */
        struct relay_target *rt = &relay.targets[p->current];
        diag_info(1, "relay: %s: connect %s: %s", p->peer, rt->name, iocp_strerror(status));
        health_failed(&rt->health, HEALTH_UNREACHABLE, iocp_strerror(status));
        connect_next(p);
    }
    pair_release(p);
}

/* Accepted clients come without a pair, targets with theirs. */
static void pair_open(struct iocp_conn *c)
{
    if (iocp_conn_data(c))
        target_open(c);
    else
        client_open(c);
}

/* A connection of a pair closed: its client leg, or a target (connected,
 * or an attempt that failed); an accepted client without a pair had no
 * memory for one. */
static void pair_close(struct iocp_conn *c, int status)
{
    struct pair *p = iocp_conn_data(c);
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
    if (!addr_target("relay", text, t->host, sizeof t->host, &t->port))
        return false;
    addr_format(t->host, t->port, t->name, sizeof t->name);
    snprintf(t->what, sizeof t->what, "target %s", t->name);
    t->health.what = t->what;
    return true;
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
    long long n;
    int opt;
    struct opt_parser op;
    opt_init(&op, "relay", argc, argv, "w:W:B:m:46vh", relay_options);
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
            return EXIT_USAGE;
        }
    }
    if (relay.stats_spec && relay.no_stats) {
        diag_error("relay: --stats and --no-stats exclude each other");
        return EXIT_USAGE;
    }
    if (argc - optind < 2) {
        diag_error("relay: expected [ADDR:]PORT and at least one HOST:PORT target");
        diag_try_help("relay");
        return EXIT_USAGE;
    }
    char host[ADDR_HOST_MAX];
    if (!addr_listen("relay", argv[optind], host, sizeof host, &scfg.port))
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

    relay.clients.what = "clients";
    int status = cli_run_server("relay", &ecfg, &scfg, relay_ready);
    health_final(&relay.clients);
    for (unsigned i = 0; i < relay.ntargets; i++)
        health_final(&relay.targets[i].health);
    free(relay.targets);
    relay_wipe_keys();
    return status;
}
