/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay -u: forward datagrams to targets, a session per client.
 *
 * A client is an address that sends to the listening port.  Its first
 * datagram opens a session: a socket of its own connected to the next
 * target (round robin over the targets, per new session), so that the
 * target's replies come back on that socket and go to that client alone,
 * from the listening port, whatever the number of clients.  A session
 * lives while either side sends; silent for --udp-ttl (default 60 s), it
 * is closed.  --max-conns counts sessions: the datagrams of a client
 * beyond it are dropped until a session ends.
 *
 * Nothing ends a session but its silence: an ICMP port-unreachable from a
 * target (it is down, or restarting) is counted and said at -v, and the
 * session carries the next datagram as before; one for a client that went
 * away does not touch the listener either.
 *
 * Threads.  Each worker has a listening socket of its own on the port
 * (SO_REUSEPORT: the kernel sends each client's datagrams to one of them,
 * always the same), its own table of sessions, and opens the sessions'
 * sockets on itself, so a session's two directions run on one thread and
 * need no lock.  Where a port takes one socket (the IOCP backend), the one
 * listener serves every client.  Only the session count (--max-conns) and
 * the round-robin cursor are shared, as atomics.
 */
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "cmdtable.h"
#include "diag.h"
#include "opts.h"
#include "run.h"
#include "stats_dgram.h"
#include "stats_endpoint.h"
#include "stop.h"
#include "udp.h"
#include "udp_peers.h"

struct relay_target {
    char host[INET6_ADDRSTRLEN]; /* numeric, looked up at start */
    uint16_t port;
    char name[ADDR_HOST_MAX + 8]; /* as given, for messages */
    atomic_uint_least64_t unreachable;
};

struct relay_worker {
    unsigned index;
    struct iocp_dgram *listener;
    struct udp_peers sessions;
    struct iocp_timer *sweep;
    struct iocp_task start;
};

struct session {
    struct udp_peer link; /* the client's address and when either side last sent */
    struct relay_worker *w;
    struct iocp_dgram *up; /* connected to the target */
    unsigned target;
    bool closing;
};

static struct {
    struct iocp_engine *e;
    struct iocp_engine_config ecfg;
    struct iocp_dgram_config listen_cfg;
    struct relay_target *targets;
    unsigned ntargets;
    unsigned ttl_ms;
    uint32_t max_sessions; /* 0: no limit */
    bool stats;
    const char *stats_spec;
    struct relay_worker *workers;
    unsigned nworkers, listeners;
    struct iocp_task start;
    int status;
    atomic_uint next_target;
    atomic_uint sessions;
    atomic_uint_least64_t opened, expired, refused, open_failed;
} ur;

/* ---- a session ---- */

static void session_forget(struct session *s)
{
    if (s->closing)
        return;
    s->closing = true;
    udp_peers_remove(&s->w->sessions, &s->link);
    if (s->up)
        iocp_dgram_close(s->up); /* on_close frees it */
}

/* The target answers: back to the client, from the listening port. */
static void up_datagram(struct iocp_dgram *u, const void *data, size_t len,
                        const struct sockaddr *from, int fromlen, unsigned flags)
{
    (void)from;
    (void)fromlen;
    (void)flags;
    struct session *s = iocp_dgram_data(u);
    if (s->closing || !s->w->listener)
        return;
    udp_peers_touch(&s->w->sessions, &s->link, udp_now_ms());
    iocp_dgram_sendto(s->w->listener, data, len, (const struct sockaddr *)&s->link.addr,
                      s->link.addrlen);
}

static void up_error(struct iocp_dgram *u, int status, const struct sockaddr *peer, int peerlen)
{
    (void)peer;
    (void)peerlen;
    struct session *s = iocp_dgram_data(u);
    struct relay_target *t = &ur.targets[s->target];
    /* The target is down or restarting: the session waits for it. */
    uint64_t n = atomic_fetch_add(&t->unreachable, 1);
    if (n == 0 || diag_verbosity >= 2)
        diag_info(1, "relay: target %s: %s", t->name,
                  status == IOCP_ECONNREFUSED ? "port unreachable" : iocp_strerror(status));
}

static void up_close(struct iocp_dgram *u, int status)
{
    (void)status;
    struct session *s = iocp_dgram_data(u);
    s->up = NULL;
    if (!s->closing) { /* closed under it: the engine stops */
        s->closing = true;
        udp_peers_remove(&s->w->sessions, &s->link);
    }
    atomic_fetch_sub(&ur.sessions, 1);
    free(s);
}

static const struct iocp_dgram_handler up_handler = {
    .on_datagram = up_datagram,
    .on_error = up_error,
    .on_close = up_close,
};

/* A client's first datagram: a session, or NULL (beyond --max-conns, or
 * no socket could be had; said and counted). */
static struct session *session_new(struct relay_worker *w, const struct sockaddr *from, int fromlen,
                                   uint64_t now)
{
    char name[80];
    unsigned n = atomic_fetch_add(&ur.sessions, 1);
    if (ur.max_sessions && n >= ur.max_sessions) {
        atomic_fetch_sub(&ur.sessions, 1);
        if (atomic_fetch_add(&ur.refused, 1) == 0 || diag_verbosity >= 2)
            diag_info(1, "relay: %s: %u sessions already (--max-conns): datagram dropped",
                      udp_addr_name(from, name, sizeof name), ur.max_sessions);
        return NULL;
    }
    struct session *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&ur.sessions, 1);
        atomic_fetch_add(&ur.open_failed, 1);
        return NULL;
    }
    s->w = w;
    s->target = atomic_fetch_add(&ur.next_target, 1) % ur.ntargets;
    struct relay_target *t = &ur.targets[s->target];
    struct iocp_dgram_config dcfg = {
        .peer_host = t->host,
        .peer_port = t->port,
        .worker = (int)w->index,
        .handler = &up_handler,
        .data = s,
        .max_datagram = ur.listen_cfg.max_datagram,
    };
    int rc = iocp_dgram_open(&s->up, ur.e, &dcfg);
    if (rc < 0) {
        atomic_fetch_sub(&ur.sessions, 1);
        if (atomic_fetch_add(&ur.open_failed, 1) == 0 || diag_verbosity >= 2)
            diag_error("relay: %s: no socket towards target %s: %s",
                       udp_addr_name(from, name, sizeof name), t->name, iocp_strerror(rc));
        free(s);
        return NULL;
    }
    udp_peers_add(&w->sessions, &s->link, from, fromlen, now);
    atomic_fetch_add(&ur.opened, 1);
    diag_info(2, "relay: session %s -> %s", udp_addr_name(from, name, sizeof name), t->name);
    return s;
}

/* ---- the listening sockets ---- */

static void listen_datagram(struct iocp_dgram *d, const void *data, size_t len,
                            const struct sockaddr *from, int fromlen, unsigned flags)
{
    (void)flags; /* a cut datagram is forwarded cut: it is counted */
    struct relay_worker *w = iocp_dgram_data(d);
    w->listener = d;
    uint64_t now = udp_now_ms();
    struct session *s = (struct session *)udp_peers_find(&w->sessions, from, fromlen);
    if (s)
        udp_peers_touch(&w->sessions, &s->link, now);
    else if (!(s = session_new(w, from, fromlen, now)))
        return;
    iocp_dgram_send(s->up, data, len); /* a full queue drops and counts */
}

static void listen_error(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen)
{
    (void)d;
    (void)peerlen;
    /* A client that went away: its session ends with its silence. */
    char name[80] = "";
    if (peer)
        udp_addr_name(peer, name, sizeof name);
    diag_info(2, "relay: client %s: %s", name, iocp_strerror(status));
}

static void listen_close(struct iocp_dgram *d, int status)
{
    struct relay_worker *w = iocp_dgram_data(d);
    w->listener = NULL;
    if (status < 0 && status != IOCP_ECANCELED)
        diag_error("relay: listening socket: %s", iocp_strerror(status));
}

static const struct iocp_dgram_handler listen_handler = {
    .on_datagram = listen_datagram,
    .on_error = listen_error,
    .on_close = listen_close,
};

/* Sessions silent for the TTL end. */
static void sweep(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct relay_worker *w = arg;
    uint64_t now = udp_now_ms();
    struct udp_peer *p;
    while ((p = udp_peers_expired(&w->sessions, now, ur.ttl_ms)) != NULL) {
        struct session *s = (struct session *)p;
        char name[80];
        diag_info(2, "relay: session %s silent for %u ms: closed",
                  udp_addr_name((const struct sockaddr *)&p->addr, name, sizeof name), ur.ttl_ms);
        atomic_fetch_add(&ur.expired, 1);
        session_forget(s);
    }
}

static unsigned sweep_every_ms(void)
{
    unsigned ms = ur.ttl_ms / 4;
    return ms < 10 ? 10 : ms > 1000 ? 1000 : ms;
}

/* On worker 0: the first listener (its port is the others'), then one per
 * worker where the backend spreads a port over sockets. */
static void start(struct iocp_task *task)
{
    (void)task;
    struct iocp_dgram_config dcfg = ur.listen_cfg;
    bool spread = ur.nworkers > 1 && strcmp(iocp_engine_backend(ur.e), "iocp") != 0;
    dcfg.reuseport = spread;
    dcfg.handler = &listen_handler;
    unsigned n = spread ? ur.nworkers : 1;
    struct iocp_dgram *first = NULL;
    for (unsigned i = 0; i < n; i++) {
        dcfg.worker = (int)i;
        dcfg.data = &ur.workers[i];
        struct iocp_dgram *d;
        int rc = iocp_dgram_open(&d, ur.e, &dcfg);
        if (rc < 0) {
            if (i == 0) {
                diag_listen_error("relay", dcfg.host, dcfg.port, rc);
                ur.status = EXIT_RUNTIME;
                stop_wake();
                return;
            }
            diag_info(1, "relay: %u listening sockets (another: %s)", i, iocp_strerror(rc));
            break;
        }
        ur.listeners++;
        if (i == 0) {
            first = d;
            ur.workers[0].listener = d;
            dcfg.port = iocp_dgram_local_port(d);
        }
    }
    diag_info(1, "relay: %u listening socket%s, sessions end after %u ms of silence", ur.listeners,
              ur.listeners == 1 ? "" : "s", ur.ttl_ms);
    udp_print_listening(first);
}

static void worker_start(struct iocp_task *task)
{
    struct relay_worker *w = task->arg;
    unsigned every = sweep_every_ms();
    int rc = iocp_timer_start(w->sweep, every, every);
    if (rc < 0)
        diag_error("relay: timers: %s", iocp_strerror(rc));
}

static int begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    (void)arg;
    (void)s;
    ur.e = e;
    ur.nworkers = iocp_engine_workers(e);
    ur.workers = calloc(ur.nworkers, sizeof *ur.workers);
    if (!ur.workers) {
        diag_error("relay: %s", iocp_strerror(IOCP_ENOMEM));
        return -1;
    }
    size_t expected = ur.max_sessions ? ur.max_sessions / ur.nworkers + 1 : 1024;
    for (unsigned i = 0; i < ur.nworkers; i++) {
        struct relay_worker *w = &ur.workers[i];
        w->index = i;
        int rc = udp_peers_init(&w->sessions, expected) ? 0 : IOCP_ENOMEM;
        if (rc == 0)
            rc = iocp_timer_new(e, i, sweep, w, &w->sweep);
        w->start = (struct iocp_task){.fn = worker_start, .arg = w};
        if (rc == 0)
            rc = iocp_engine_post(e, i, &w->start);
        if (rc < 0) {
            diag_error("relay: %s", iocp_strerror(rc));
            return -1;
        }
    }
    if (ur.stats) {
        stats_dgram_add(e);
        if (stats_endpoint_start(e, NULL, ur.stats_spec) < 0)
            return -1;
    }
    ur.start.fn = start;
    int rc = iocp_engine_post(e, 0, &ur.start);
    if (rc < 0) {
        diag_error("relay: %s", iocp_strerror(rc));
        return -1;
    }
    return 0;
}

static int end(void *arg)
{
    (void)arg;
    for (unsigned i = 0; ur.workers && i < ur.nworkers; i++)
        if (ur.workers[i].sweep) {
            iocp_timer_free(ur.workers[i].sweep);
            ur.workers[i].sweep = NULL;
        }
    if (diag_verbosity >= 1 && ur.e) {
        struct iocp_dgram_totals t;
        iocp_engine_dgram_totals(ur.e, &t);
        diag_info(1,
                  "relay: %" PRIu64 " sessions, %" PRIu64 " ended by --udp-ttl; %" PRIu64
                  " datagrams received, %" PRIu64 " sent, %" PRIu64 " dropped, %" PRIu64
                  " cut to --max-datagram",
                  (uint64_t)atomic_load(&ur.opened), (uint64_t)atomic_load(&ur.expired),
                  t.dgrams_in, t.dgrams_out, t.dropped, t.truncated);
        uint64_t refused = atomic_load(&ur.refused);
        if (refused)
            diag_info(1, "relay: %" PRIu64 " datagrams of clients beyond --max-conns dropped",
                      refused);
        for (unsigned i = 0; i < ur.ntargets; i++) {
            uint64_t n = atomic_load(&ur.targets[i].unreachable);
            if (n)
                diag_info(1, "relay: target %s: %" PRIu64 " port-unreachable reports",
                          ur.targets[i].name, n);
        }
    }
    return ur.status;
}

static void release(void *arg)
{
    (void)arg;
    for (unsigned i = 0; ur.workers && i < ur.nworkers; i++) {
        if (ur.workers[i].sweep)
            iocp_timer_free(ur.workers[i].sweep);
        udp_peers_fini(&ur.workers[i].sessions);
    }
    free(ur.workers);
    ur.workers = NULL;
}

static void udp_relay_usage(FILE *out)
{
    fprintf(out, "usage: iocptool relay -u [options] [ADDR:]PORT HOST:PORT...\n"
                 "\n"
                 "Forward datagrams to the targets, a session per client address: each\n"
                 "session has a socket of its own towards its target (round robin over the\n"
                 "targets, per new session), so replies find their client.  A session lives\n"
                 "while either side sends; a port unreachable from a target does not end it.\n"
                 "\n" UDP_TTL_HELP
                 "  -m, --max-conns N      at most N sessions at once; datagrams of further\n"
                 "                         clients are dropped until one ends\n"
                 "      --max-datagram N   datagrams longer than N bytes are cut (and counted)\n"
                 "  -W, --workers N        worker threads (default: one per processor)\n"
                 "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
                 "  -4, --ipv4             listen on IPv4 only\n"
                 "  -6, --ipv6             listen on IPv6 only\n" STATS_ENDPOINT_HELP
                 "  -v, --verbose          say more (-vv: every session)\n"
                 "  -h, --help             this help\n");
}

int cmd_udp_relay(int argc, char **argv)
{
    static const char cmd[] = "relay";
    memset(&ur, 0, sizeof ur);
    ur.ecfg.log = diag_lib_log;
    ur.ttl_ms = UDP_TTL_DEFAULT_MS;
    const int opt_stats = udp_opt_code(relay_options, "stats");
    const int opt_no_stats = udp_opt_code(relay_options, "no-stats");
    const int opt_no_splice = udp_opt_code(relay_options, "no-splice");
    const int opt_key_listen = udp_opt_code(relay_options, "key-listen");
    const int opt_key_target = udp_opt_code(relay_options, "key-target");
    bool no_stats = false;
    int conflicts = 0, opt;
    long long n;
    struct opt_parser op;
    opt_init(&op, cmd, argc, argv, "w:W:B:m:46vhu", relay_options);
    while ((opt = opt_next(&op)) != -1) {
        if (opt == opt_stats) {
            ur.stats_spec = optarg;
            continue;
        }
        if (opt == opt_no_stats) {
            no_stats = true;
            continue;
        }
        if (opt == opt_no_splice) {
            conflicts += udp_refuse(cmd, relay_options, opt,
                                    "datagrams are always copied: there is no stream to splice");
            continue;
        }
        if (opt == opt_key_listen || opt == opt_key_target) {
            conflicts += udp_refuse(cmd, relay_options, opt,
                                    "the encrypted channel needs a TCP stream, not datagrams");
            continue;
        }
        switch (opt) {
        case 'u':
            break;
        case 'w':
            conflicts += udp_refuse(cmd, relay_options, opt,
                                    "a connect time-out; datagrams are not connected (-u)");
            break;
        case 'W':
            if (!opt_number(cmd, "--workers", optarg, 1, IOCP_MAX_WORKERS, &n))
                return EXIT_USAGE;
            ur.ecfg.workers = (unsigned)n;
            break;
        case 'B':
            ur.ecfg.backend = optarg;
            break;
        case 'm':
            if (!opt_number(cmd, "--max-conns", optarg, 1, 1000000, &n))
                return EXIT_USAGE;
            ur.max_sessions = (uint32_t)n;
            break;
        case UDP_OPT_TTL:
            if (!udp_parse_ttl(cmd, optarg, &ur.ttl_ms))
                return EXIT_USAGE;
            break;
        case UDP_OPT_MAX_DATAGRAM:
            if (!udp_parse_max_datagram(cmd, optarg, &ur.listen_cfg.max_datagram))
                return EXIT_USAGE;
            break;
        case '4':
        case '6':
            if (ur.listen_cfg.family && ur.listen_cfg.family != opt - '0') {
                diag_error("%s: -4 and -6 exclude each other", cmd);
                return EXIT_USAGE;
            }
            ur.listen_cfg.family = opt - '0';
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            udp_relay_usage(stdout);
            return EXIT_OK;
        case OPT_ERROR:
            return EXIT_USAGE;
        default:
            conflicts += udp_refuse(cmd, relay_options, opt, "not available with -u");
            break;
        }
    }
    if (ur.stats_spec && no_stats) {
        diag_error("%s: --stats and --no-stats exclude each other", cmd);
        conflicts++;
    }
    if (argc - optind < 2) {
        diag_error("%s: expected [ADDR:]PORT and at least one HOST:PORT target", cmd);
        conflicts++;
    }
    if (conflicts) {
        diag_try_help(cmd);
        return EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        if (addr_is_unix(argv[i])) {
            diag_error("%s: %s: -u takes IP addresses (datagrams over Unix-domain sockets are "
                       "not supported)",
                       cmd, argv[i]);
            return EXIT_USAGE;
        }
    }
    char host[ADDR_HOST_MAX];
    if (!addr_listen(cmd, argv[optind], host, sizeof host, &ur.listen_cfg.port))
        return EXIT_USAGE;
    ur.listen_cfg.host = host[0] ? host : NULL;
    ur.ntargets = (unsigned)(argc - optind - 1);
    ur.targets = calloc(ur.ntargets, sizeof *ur.targets);
    if (!ur.targets) {
        diag_error("%s: %s", cmd, iocp_strerror(IOCP_ENOMEM));
        return EXIT_RUNTIME;
    }
    for (unsigned i = 0; i < ur.ntargets; i++) {
        struct relay_target *t = &ur.targets[i];
        char thost[ADDR_HOST_MAX];
        if (!addr_target(cmd, argv[optind + 1 + i], thost, sizeof thost, &t->port)) {
            free(ur.targets);
            return EXIT_USAGE;
        }
        addr_format(thost, t->port, t->name, sizeof t->name);
        /* Looked up once, here: a worker never waits for a name. */
        if (!udp_resolve(cmd, thost, 0, false, t->host, sizeof t->host)) {
            free(ur.targets);
            return EXIT_RUNTIME;
        }
    }
    ur.stats = !no_stats;
    /* Each session is a socket of the engine's: make room. */
    if (ur.max_sessions)
        ur.ecfg.max_conns = ur.max_sessions + 1024u;

    /* Its normal end is a stop signal: exit 0. */
    struct run_spec spec = {
        .cmd = cmd,
        .engine = &ur.ecfg,
        .signal_is_normal_end = true,
        .begin = begin,
        .end = end,
        .release = release,
    };
    int status = run_engine(&spec);
    free(ur.targets);
    return status;
}
