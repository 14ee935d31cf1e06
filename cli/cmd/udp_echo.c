/* SPDX-License-Identifier: MIT */
/*
 * iocptool echo -u: a UDP echo server.  Every datagram goes back to its
 * sender as it came, on every worker: each worker has a socket of its own
 * on the port (SO_REUSEPORT, the kernel spreading senders over them), so
 * no datagram crosses threads.  Where a port takes only one socket
 * (Windows), the one socket serves, with several receives in flight inside
 * the library.  It runs until SIGINT, SIGTERM or SIGHUP, then stops safely
 * and exits 0.
 */
#include <inttypes.h>
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

struct udp_echo {
    struct iocp_engine_config ecfg;
    struct iocp_dgram_config dcfg;
    bool stats;
    const char *stats_spec;
    struct iocp_engine *e;
    struct iocp_task start;
    unsigned sockets;
    int status;
};

static struct udp_echo ue;

static void echo_datagram(struct iocp_dgram *d, const void *data, size_t len,
                          const struct sockaddr *from, int fromlen, unsigned flags)
{
    (void)flags; /* a cut datagram goes back cut: it is counted */
    /* A full queue drops (and counts) the datagram: an echo server must
     * not buffer without bound for a sender that does not read. */
    iocp_dgram_sendto(d, data, len, from, fromlen);
}

static void echo_error(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen)
{
    (void)d;
    (void)peerlen;
    /* A sender that went away (port unreachable) is its own business: the
     * server goes on. */
    char name[80] = "";
    if (peer)
        udp_addr_name(peer, name, sizeof name);
    diag_info(2, "echo: %s%s%s", name, *name ? ": " : "", iocp_strerror(status));
}

static void echo_close(struct iocp_dgram *d, int status)
{
    (void)d;
    if (status < 0 && status != IOCP_ECANCELED)
        diag_error("echo: socket: %s", iocp_strerror(status));
}

static const struct iocp_dgram_handler echo_handler = {
    .on_datagram = echo_datagram,
    .on_error = echo_error,
    .on_close = echo_close,
};

/* On worker 0: the first socket (its port, if 0 was asked for, is the one
 * of the others), then one more per worker on that port. */
static void start(struct iocp_task *task)
{
    (void)task;
    struct iocp_dgram_config dcfg = ue.dcfg;
    /* On the IOCP backend one socket serves: its port spreads the
     * completions of its receives over the workers' threads. */
    unsigned workers = iocp_engine_workers(ue.e);
    if (!strcmp(iocp_engine_backend(ue.e), "iocp"))
        workers = 1;
    dcfg.reuseport = workers > 1;
    dcfg.worker = 0;
    struct iocp_dgram *first;
    int rc = iocp_dgram_open(&first, ue.e, &dcfg);
    if (rc < 0) {
        diag_listen_error("echo", dcfg.host, dcfg.port, rc);
        ue.status = EXIT_RUNTIME;
        stop_wake();
        return;
    }
    ue.sockets = 1;
    dcfg.port = iocp_dgram_local_port(first);
    for (unsigned w = 1; w < workers; w++) {
        dcfg.worker = (int)w;
        struct iocp_dgram *d;
        rc = iocp_dgram_open(&d, ue.e, &dcfg);
        if (rc < 0) {
            /* A system where a port takes one socket: that one serves. */
            diag_info(1, "echo: one socket serves every sender (a second on the port: %s)",
                      iocp_strerror(rc));
            break;
        }
        ue.sockets++;
    }
    diag_info(1, "echo: %u socket%s on the port", ue.sockets, ue.sockets == 1 ? "" : "s");
    udp_print_listening(first);
}

static int begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    (void)arg;
    (void)s;
    ue.e = e;
    if (ue.stats) {
        stats_dgram_add(e);
        if (stats_endpoint_start(e, NULL, ue.stats_spec) < 0)
            return -1;
    }
    ue.start.fn = start;
    int rc = iocp_engine_post(e, 0, &ue.start);
    if (rc < 0) {
        diag_error("echo: %s", iocp_strerror(rc));
        return -1;
    }
    return 0;
}

static int end(void *arg)
{
    (void)arg;
    if (diag_verbosity >= 1 && ue.e) {
        struct iocp_dgram_totals t;
        iocp_engine_dgram_totals(ue.e, &t);
        diag_info(1,
                  "echo: %" PRIu64 " datagrams (%" PRIu64 " bytes) received, %" PRIu64
                  " echoed, %" PRIu64 " dropped, %" PRIu64 " cut to --max-datagram",
                  t.dgrams_in, t.bytes_in, t.dgrams_out, t.dropped, t.truncated);
    }
    return ue.status;
}

static void udp_echo_usage(FILE *out)
{
    fprintf(out, "usage: iocptool echo -u [options] [ADDR:]PORT\n"
                 "\n"
                 "Run a UDP echo server: every datagram goes back to its sender as it came.\n"
                 "Each worker has a socket of its own on the port.\n"
                 "\n"
                 "  -W, --workers N        worker threads (default: one per processor)\n"
                 "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
                 "      --max-datagram N   datagrams longer than N bytes are cut (and counted)\n"
                 "  -4, --ipv4             IPv4 only\n"
                 "  -6, --ipv6             IPv6 only\n" STATS_ENDPOINT_HELP
                 "  -v, --verbose          say more; at the end, what was echoed and dropped\n"
                 "  -h, --help             this help\n");
}

int cmd_udp_echo(int argc, char **argv)
{
    static const char cmd[] = "echo";
    memset(&ue, 0, sizeof ue);
    ue.ecfg.log = diag_lib_log;
    ue.stats = true;
    const int opt_stats = udp_opt_code(echo_options, "stats");
    const int opt_no_stats = udp_opt_code(echo_options, "no-stats");
    bool no_stats = false;
    int conflicts = 0, opt;
    long long n;
    struct opt_parser op;
    opt_init(&op, cmd, argc, argv, "W:B:m:i:46vhu", echo_options);
    while ((opt = opt_next(&op)) != -1) {
        if (opt == opt_stats) {
            ue.stats_spec = optarg;
            continue;
        }
        if (opt == opt_no_stats) {
            no_stats = true;
            continue;
        }
        switch (opt) {
        case 'u':
            break;
        case 'W':
            if (!opt_number(cmd, "--workers", optarg, 1, IOCP_MAX_WORKERS, &n))
                return EXIT_USAGE;
            ue.ecfg.workers = (unsigned)n;
            break;
        case 'B':
            ue.ecfg.backend = optarg;
            break;
        case UDP_OPT_MAX_DATAGRAM:
            if (!udp_parse_max_datagram(cmd, optarg, &ue.dcfg.max_datagram))
                return EXIT_USAGE;
            break;
        case '4':
        case '6':
            if (ue.dcfg.family && ue.dcfg.family != opt - '0') {
                diag_error("%s: -4 and -6 exclude each other", cmd);
                return EXIT_USAGE;
            }
            ue.dcfg.family = opt - '0';
            break;
        case 'm':
            conflicts +=
                udp_refuse(cmd, echo_options, opt, "UDP echo keeps no connections to count (-u)");
            break;
        case 'i':
            conflicts += udp_refuse(cmd, echo_options, opt,
                                    "UDP echo keeps no connections to time out (-u)");
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            udp_echo_usage(stdout);
            return EXIT_OK;
        case OPT_ERROR:
            return EXIT_USAGE;
        default:
            conflicts += udp_refuse(cmd, echo_options, opt, "not available with -u");
            break;
        }
    }
    if (ue.stats_spec && no_stats) {
        diag_error("%s: --stats and --no-stats exclude each other", cmd);
        conflicts++;
    }
    if (argc - optind != 1) {
        diag_error("%s: expected one [ADDR:]PORT argument", cmd);
        conflicts++;
    }
    if (conflicts) {
        diag_try_help(cmd);
        return EXIT_USAGE;
    }
    if (addr_is_unix(argv[optind])) {
        diag_error("%s: %s: -u takes an IP address (datagrams over Unix-domain sockets are not "
                   "supported)",
                   cmd, argv[optind]);
        return EXIT_USAGE;
    }
    char host[ADDR_HOST_MAX];
    if (!addr_listen(cmd, argv[optind], host, sizeof host, &ue.dcfg.port))
        return EXIT_USAGE;
    ue.dcfg.host = host[0] ? host : NULL;
    ue.dcfg.handler = &echo_handler;
    ue.stats = !no_stats;

    /* Its normal end is a stop signal: exit 0. */
    struct run_spec spec = {
        .cmd = cmd,
        .engine = &ue.ecfg,
        .signal_is_normal_end = true,
        .begin = begin,
        .end = end,
    };
    return run_engine(&spec);
}
