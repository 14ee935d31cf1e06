/* SPDX-License-Identifier: MIT */
/*
 * iocptool echo: an echo server.  Every byte a client sends comes back to
 * it; a client that shuts down its side gets the rest of its echo, then an
 * orderly close.  It runs until SIGINT, SIGTERM or SIGHUP, then stops
 * safely and exits 0: that is its normal end.
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
#include "opts.h"
#include "run.h"
#include "stats_endpoint.h"

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

enum { OPT_STATS = 256, OPT_NO_STATS, OPT_UNIX_MODE };

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
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
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
            "                         (octal, such as 0660; default: the umask's)\n" STATS_ENDPOINT_HELP
            "  -v, --verbose          say more (-vv: more still)\n"
            "  -h, --help             this help\n");
}

int cmd_echo(int argc, char **argv)
{
    struct iocp_engine_config ecfg = {.log = diag_lib_log};
    struct iocp_server_config scfg = {.handler = &echo_handler};
    const char *stats_spec = NULL;
    bool no_stats = false;
    long long n;
    int opt;
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
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            echo_usage(stdout);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
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
    return run_engine(&spec);
}
