/* SPDX-License-Identifier: MIT */
/*
 * iocptool echo: an echo server.  Every byte a client sends comes back to
 * it; a client that shuts down its side gets the rest of its echo, then an
 * orderly close.  It runs until SIGINT, SIGTERM or SIGHUP, then stops
 * safely and exits 0: that is its normal end.
 *
 * With --accept-proxy or --tls each connection is a leg (leg.h): one
 * that first takes the PROXY protocol header of a load balancer in front
 * (messages name the client the header gave), and with --tls one whose
 * bytes are TLS (tls.h), decrypted before they are echoed and encrypted
 * on their way back; a client's close_notify is its end of input, and it
 * gets the rest of its echo and ours.  Every worker serves TLS clients
 * from the one context.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iocp.h"

#include "addr.h"
#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "leg.h"
#include "opts.h"
#include "run.h"
#include "stats_endpoint.h"
#include "stats_tls.h"
#include "tls.h"
#include "udp.h"

static void echo_data(struct iocp_conn *c, const void *data, size_t len)
{
    /* A full send queue pauses this connection's reading on its own (the
     * default pressure rule), so a client that never reads cannot make the
     * server buffer without bound. */
    if (iocp_conn_send(c, data, len) < 0)
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static void echo_close(struct iocp_conn *c, int status)
{
    char peer[64];
    if (diag_verbosity >= 2)
        diag_info(2, "echo: %s closed: %s", iocp_conn_peer(c, peer, sizeof peer),
                  status ? iocp_strerror(status) : "done");
}

static const struct iocp_conn_handler echo_handler = {
    .on_data = echo_data,
    .on_close = echo_close,
};

/* ---- --accept-proxy, --tls: the same echo on a leg ---- */

static struct leg_layer echo_layer = {.role = CHANNEL_SERVER};

static void proxied_plain(void *arg, const void *data, size_t len)
{
    struct leg *l = arg;
    if (leg_send(l, data, len) < 0 && !l->failed)
        iocp_conn_close(l->c, IOCP_CLOSE_ABORT);
}

static void proxied_ready(void *arg)
{
    struct leg *l = arg;
    char client[64], via[64];
    if (diag_verbosity >= 2 && leg_proxied(l))
        diag_info(2, "echo: %s: through %s (PROXY header)", leg_client(l, client, sizeof client),
                  iocp_conn_peer(l->c, via, sizeof via));
}

/* The client's end: the rest of its echo, the end of our direction (a
 * close_notify over TLS), then an orderly close. */
static void proxied_ended(void *arg)
{
    struct leg *l = arg;
    leg_finish(l);
    iocp_conn_close(l->c, IOCP_CLOSE_GRACEFUL);
}

/* A malformed, too long, cut or late header, or a TLS handshake that
 * failed or did not end in time: this connection goes.  Over TLS the
 * alert the leg queued goes first, so the client learns why. */
static void proxied_failed(void *arg, const char *why)
{
    struct leg *l = arg;
    char peer[64];
    diag_info(1, "echo: %s: %s", iocp_conn_peer(l->c, peer, sizeof peer), why);
    iocp_conn_close(l->c, leg_encrypted(l) ? IOCP_CLOSE_GRACEFUL : IOCP_CLOSE_ABORT);
}

static const struct leg_events proxied_events = {
    .plain = proxied_plain,
    .ready = proxied_ready,
    .ended = proxied_ended,
    .failed = proxied_failed,
};

static void proxied_open(struct iocp_conn *c)
{
    struct leg *l = malloc(sizeof *l);
    if (!l) {
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    iocp_conn_set_data(c, l);
    leg_start(l, c, &echo_layer, &proxied_events, l);
}

static void proxied_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct leg *l = iocp_conn_data(c);
    if (l)
        leg_data(l, data, len);
}

static void proxied_eof(struct iocp_conn *c)
{
    struct leg *l = iocp_conn_data(c);
    if (l)
        leg_eof(l);
}

static void proxied_close(struct iocp_conn *c, int status)
{
    struct leg *l = iocp_conn_data(c);
    if (!l)
        return;
    char client[64];
    if (diag_verbosity >= 2)
        diag_info(2, "echo: %s closed: %s", leg_client(l, client, sizeof client),
                  status ? iocp_strerror(status) : "done");
    leg_closed(l);
    free(l);
}

static const struct iocp_conn_handler proxied_handler = {
    .on_open = proxied_open,
    .on_data = proxied_data,
    .on_eof = proxied_eof,
    .on_close = proxied_close,
};

/* A person at a terminal gets told how to try the server; scripts, whose
 * stderr is rarely a terminal, get only the listening line. */
static int echo_ready(struct iocp_engine *e, struct iocp_server *s)
{
    (void)e;
    if (!isatty(2))
        return 0;
    char addr[128];
    iocp_server_address(s, addr, sizeof addr);
    if (addr_is_unix(addr)) {
        diag_error("echo: try: iocptool connect %s   (Ctrl-C stops the server)", addr);
        return 0;
    }
    const char *host = strncmp(addr, "[::]", 4) == 0 || strncmp(addr, "0.0.0.0", 7) == 0
                           ? "127.0.0.1"
                           : NULL;
    char *colon = strrchr(addr, ':');
    if (colon)
        *colon = '\0';
    diag_error("echo: try: iocptool connect %s %u   (Ctrl-C stops the server)",
               host ? host : addr, iocp_server_port(s));
    return 0;
}

enum { OPT_STATS = 256, OPT_NO_STATS, OPT_UNIX_MODE, OPT_ACCEPT_PROXY };

const struct option echo_options[] = {
    {"workers", required_argument, NULL, 'W'},
    {"backend", required_argument, NULL, 'B'},
    {"max-conns", required_argument, NULL, 'm'},
    {"idle-timeout", required_argument, NULL, 'i'},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
    {"stats", required_argument, NULL, OPT_STATS},
    {"no-stats", no_argument, NULL, OPT_NO_STATS},
    {"accept-proxy", no_argument, NULL, OPT_ACCEPT_PROXY},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    UDP_LONG_OPTIONS,
    TLS_SERVER_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static void echo_usage(FILE *out)
{
    fprintf(out,
            "usage: iocptool echo [options] [ADDR:]PORT | unix:PATH\n"
            "\n"
            "Run an echo server: every byte a client sends comes back to it.\n"
            "\n"
            "  -W, --workers N        worker threads (default: one per processor)\n"
            "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
            "  -m, --max-conns N      refuse connections beyond N (default: no limit)\n"
            "  -i, --idle-timeout S   close a connection idle for S seconds\n"
            "  -4, --ipv4             IPv4 only\n"
            "  -6, --ipv6             IPv6 only\n"
            "      --unix-mode MODE   unix:PATH: the socket file's permission bits\n"
            "                         (octal, such as 0660; default: the umask's)\n"
            "      --accept-proxy     clients come through a load balancer that sends a\n"
            "                         PROXY protocol header (v1 or v2) first\n" STATS_ENDPOINT_HELP UDP_HELP
            "%s"
            "  -v, --verbose          say more (-v: each TLS handshake; -vv: more still)\n"
            "  -h, --help             this help\n",
            tls_server_help);
}

int cmd_echo(int argc, char **argv)
{
    struct iocp_engine_config ecfg = {.log = diag_lib_log};
    struct iocp_server_config scfg = {.handler = &echo_handler};
    struct tls_opts tls = {0};
    const char *stats_spec = NULL;
    bool no_stats = false;
    long long n;
    int opt;
    int udp = udp_dispatch("echo", argc, argv, "W:B:m:i:46vh", cmd_udp_echo);
    if (udp >= 0)
        return udp;
    struct opt_parser op;
    opt_init(&op, "echo", argc, argv, "W:B:m:i:46vh", echo_options);
    while ((opt = opt_next(&op)) != -1) {
        switch (opt) {
        case 'W':
            if (!opt_number("echo", "--workers", optarg, 1, IOCP_MAX_WORKERS, &n))
                return EXIT_USAGE;
            ecfg.workers = (unsigned)n;
            break;
        case 'B':
            ecfg.backend = optarg;
            break;
        case 'm':
            if (!opt_number("echo", "--max-conns", optarg, 1, 10000000, &n))
                return EXIT_USAGE;
            scfg.max_conns = (uint32_t)n;
            break;
        case 'i':
            if (!opt_seconds("echo", "--idle-timeout", optarg, &scfg.idle_timeout_ms))
                return EXIT_USAGE;
            break;
        case '4':
        case '6':
            if (scfg.family && scfg.family != opt - '0') {
                diag_error("echo: -4 and -6 exclude each other");
                return EXIT_USAGE;
            }
            scfg.family = opt - '0';
            break;
        case OPT_STATS:
            stats_spec = optarg;
            break;
        case OPT_NO_STATS:
            no_stats = true;
            break;
        case OPT_UNIX_MODE:
            if (!addr_unix_mode("echo", optarg, &scfg.unix_mode))
                return EXIT_USAGE;
            break;
        case OPT_ACCEPT_PROXY:
            echo_layer.accept_proxy = true;
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            echo_usage(stdout);
            return EXIT_OK;
        default:
            if (tls_option(&tls, "echo", opt, optarg) > 0)
                break;
            return EXIT_USAGE;
        }
    }
    if (tls_conflicts(&tls, "echo", CHANNEL_SERVER, "--tls")) {
        diag_try_help("echo");
        return EXIT_USAGE;
    }
    if (stats_spec && no_stats) {
        diag_error("echo: --stats and --no-stats exclude each other");
        return EXIT_USAGE;
    }
    if (argc - optind != 1) {
        diag_error("echo: expected one [ADDR:]PORT argument");
        diag_try_help("echo");
        return EXIT_USAGE;
    }
    char host[ADDR_HOST_MAX];
    if (!addr_listen("echo", argv[optind], host, sizeof host, &scfg.port))
        return EXIT_USAGE;
    scfg.host = host[0] ? host : NULL;
    if (scfg.unix_mode && !addr_is_unix(host)) {
        diag_error("echo: --unix-mode: only for a Unix-domain socket (unix:PATH)");
        return EXIT_USAGE;
    }

    struct tls_ctx *tls_ctx = NULL;
    if (tls.on) {
        int st = tls_ctx_new(&tls_ctx, "echo", &tls, CHANNEL_SERVER);
        if (st)
            return st;
        echo_layer.tls = tls_ctx;
    }
    static struct stats_tls tls_stats = {.metric = "tls"};
    tls_stats.side[STATS_TLS_CLIENTS] = tls_ctx;
    stats_tls_add(&tls_stats);
    if (echo_layer.accept_proxy || echo_layer.tls)
        scfg.handler = &proxied_handler;

    /* Its normal end is a stop signal: exit 0. */
    struct run_spec spec = {
        .cmd = "echo",
        .engine = &ecfg,
        .server = &scfg,
        .stats = !no_stats,
        .stats_spec = stats_spec,
        .signal_is_normal_end = true,
        .ready = echo_ready,
    };
    int status = run_engine(&spec);
    tls_ctx_free(tls_ctx);
    return status;
}
