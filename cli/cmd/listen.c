/* SPDX-License-Identifier: MIT */
/*
 * iocptool listen: accept and bridge the connection to stdin/stdout.
 *
 * Without -k one connection is bridged and its end is the tool's end
 * (docs/EOF.md).  With -k clients come and go concurrently, each one's
 * data fanned in to stdout and stdin sent to all of them; --broker relays
 * each client's data to all the others instead.  --allow and --deny filter
 * clients by address before anything is read from them.  --key encrypts
 * every connection (docs/PROTOCOL.md), each client with keys of its own.
 * The line "listening on ADDR PORT" goes to stderr once the socket is
 * bound, always.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "acl.h"
#include "addr.h"
#include "bridge.h"
#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "netcompat.h"
#include "opts.h"
#include "bridge_run.h"
#include "run.h"
#include "stats_endpoint.h"
#include "stats_tls.h"
#include "udp.h"

#define LISTEN_MAX_CONNS_DEFAULT 100

enum {
    OPT_BROKER = BRIDGE_OPT_NEXT,
    OPT_ALLOW,
    OPT_DENY,
    OPT_STATS,
    OPT_NO_STATS,
    OPT_UNIX_MODE,
    OPT_ACCEPT_PROXY,
};

/* The filter runs on the accepting worker; the list is read-only by then. */
static struct acl listen_acl;

static bool listen_filter(const struct sockaddr *peer, void *data)
{
    (void)data;
    if (acl_admits(&listen_acl, peer))
        return true;
    if (diag_verbosity >= 1) {
        char host[INET6_ADDRSTRLEN] = "?";
        const void *addr =
            peer->sa_family == AF_INET
                ? (const void *)&((const struct sockaddr_in *)(const void *)peer)->sin_addr
                : (const void *)&((const struct sockaddr_in6 *)(const void *)peer)->sin6_addr;
        inet_ntop(peer->sa_family, addr, host, sizeof host);
        diag_info(1, "listen: %s: denied by --allow/--deny", host);
    }
    return false;
}

const struct option listen_options[] = {
    {"keep-open", no_argument, NULL, 'k'},
    {"broker", no_argument, NULL, OPT_BROKER},
    {"max-conns", required_argument, NULL, 'm'},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"deny", required_argument, NULL, OPT_DENY},
    {"accept-proxy", no_argument, NULL, OPT_ACCEPT_PROXY},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"source", required_argument, NULL, 's'},
    {"port", required_argument, NULL, 'p'},
    {"numeric", no_argument, NULL, 'n'},
    {"unix", no_argument, NULL, 'U'},
    {"unix-mode", required_argument, NULL, OPT_UNIX_MODE},
    {"backend", required_argument, NULL, 'B'},
    {"stats", required_argument, NULL, OPT_STATS},
    {"no-stats", no_argument, NULL, OPT_NO_STATS},
    {"help", no_argument, NULL, 'h'},
    UDP_LONG_OPTIONS,
    UDP_TTL_OPTION,
    BRIDGE_LONG_OPTIONS,
    TLS_SERVER_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static void listen_usage(FILE *out)
{
    fprintf(out,
            "usage: iocptool listen [options] [ADDR:]PORT\n"
            "       iocptool listen [options] [-s ADDR] -p PORT\n"
            "       iocptool listen [options] unix:PATH | -U PATH\n"
            "\n"
            "Accept a connection and bridge it to stdin/stdout.  Without -k the tool\n"
            "ends with its connection.  \"listening on ADDR PORT\" is printed on stderr\n"
            "once the socket is bound (PORT 0 picks a free port).  A PORT is a number\n"
            "or a service name (http); an IPv6 ADDR goes in brackets: [::1]:8080.\n"
            "\n"
            "  -k, --keep-open        serve many clients at once: their data goes to\n"
            "                         stdout, stdin goes to all of them\n"
            "      --broker           relay each client's data to all the other clients\n"
            "  -m, --max-conns N      with -k or --broker: at most N clients at once\n"
            "                         (default %d; more are closed at once)\n"
            "      --allow LIST       admit only these clients: addresses or CIDR ranges,\n"
            "                         comma-separated, IPv4 or IPv6; may be repeated\n"
            "      --deny LIST        turn these clients away (deny wins over allow)\n"
            "      --accept-proxy     clients come through a load balancer that sends a\n"
            "                         PROXY protocol header (v1 or v2) first: its address\n"
            "                         is the client's, for --allow/--deny and messages\n"
            "  -4, --ipv4             IPv4 only\n"
            "  -6, --ipv6             IPv6 only (default: both)\n"
            "  -s, --source ADDR      the address to listen on\n"
            "  -p, --port PORT        the port to listen on\n"
            "  -n, --numeric          addresses must be numeric (no name lookup)\n"
            "  -U, --unix             the operand is a Unix-domain socket PATH (as\n"
            "                         unix:PATH; unix:@NAME is a Linux abstract name)\n"
            "      --unix-mode MODE   the socket file's permission bits, in octal\n"
            "                         (0660: owner and group; default: the umask's)\n"
            "  -l                     accepted for netcat compatibility\n"
            "  -B, --backend NAME     uring, epoll or iocp (default: the best that "
            "works)\n" STATS_ENDPOINT_HELP UDP_HELP UDP_TTL_HELP "%s%s"
            "  -h, --help             this help\n",
            LISTEN_MAX_CONNS_DEFAULT, bridge_options_help, tls_server_help);
}

int cmd_listen(int argc, char **argv)
{
    struct bridge_config bcfg = {.cmd = "listen", .mode = BRIDGE_SINGLE, .quit_ms = -1};
    struct iocp_engine_config ecfg = {.workers = 1, .log = diag_lib_log};
    const char *source = NULL, *port_opt = NULL;
    bool keep_open = false, broker = false, numeric = false, max_given = false;
    bool z_given = false, w_given = false, no_stats = false;
    const char *stats_spec = NULL;
    int family = 0, conflicts = 0;
    bool unix_flag = false;
    unsigned unix_mode = 0;
    long long max_conns = LISTEN_MAX_CONNS_DEFAULT;
    uint8_t key[KEYFILE_KEY_BYTES];
    char why[256];
    int opt, r;

    int udp = udp_dispatch("listen", argc, argv, "km:46s:p:nlUB:hzw:" BRIDGE_SHORT_OPTIONS,
                           cmd_udp_listen);
    if (udp >= 0)
        return udp;
    struct opt_parser op;
    opt_init(&op, "listen", argc, argv, "km:46s:p:nlUB:hzw:" BRIDGE_SHORT_OPTIONS, listen_options);
    while ((opt = opt_next(&op)) != -1) {
        if ((r = bridge_option(&bcfg, opt, optarg)) < 0)
            goto usage_error;
        if (r > 0)
            continue;
        switch (opt) {
        case 'k':
            keep_open = true;
            break;
        case OPT_ACCEPT_PROXY:
            bcfg.accept_proxy = true;
            break;
        case OPT_BROKER:
            broker = true;
            break;
        case 'm':
            if (!opt_number("listen", "--max-conns", optarg, 1, 65536, &max_conns))
                goto usage_error;
            max_given = true;
            break;
        case OPT_ALLOW:
        case OPT_DENY:
            if (!acl_add(&listen_acl, opt == OPT_DENY, optarg, why, sizeof why)) {
                diag_error("listen: %s %s", opt == OPT_DENY ? "--deny" : "--allow", why);
                goto usage_error;
            }
            break;
        case '4':
        case '6':
            if (family && family != opt - '0') {
                diag_error("listen: -4 and -6 exclude each other");
                conflicts++;
            }
            family = opt - '0';
            break;
        case 's':
            source = optarg;
            break;
        case 'p':
            port_opt = optarg;
            break;
        case 'n':
            numeric = true;
            break;
        case 'U':
            unix_flag = true;
            break;
        case OPT_UNIX_MODE:
            if (!addr_unix_mode("listen", optarg, &unix_mode))
                goto usage_error;
            break;
        case 'l':
            break;
        case 'B':
            ecfg.backend = optarg;
            break;
        case OPT_STATS:
            stats_spec = optarg;
            break;
        case OPT_NO_STATS:
            no_stats = true;
            break;
        case 'z':
            z_given = true;
            break;
        case 'w':
            w_given = true;
            break;
        case 'h':
            listen_usage(stdout);
            acl_fini(&listen_acl);
            return EXIT_OK;
        default:
            goto usage_error;
        }
    }

    /* Every contradiction, one message each. */
    bcfg.mode = broker ? BRIDGE_BROKER : keep_open ? BRIDGE_KEEP_OPEN : BRIDGE_SINGLE;
    conflicts += bridge_conflicts(&bcfg);
    if (z_given) {
        diag_error("listen: -z: port probing is done by 'iocptool connect -z'");
        conflicts++;
    }
    if (stats_spec && no_stats) {
        diag_error("listen: --stats and --no-stats exclude each other");
        conflicts++;
    }
    if (w_given) {
        diag_error("listen: -w: a connect time-out; use -i for an idle time-out");
        conflicts++;
    }
    if (broker && keep_open) {
        diag_error("listen: -k: --broker already keeps the listener open");
        conflicts++;
    }
    if (max_given && bcfg.mode == BRIDGE_SINGLE) {
        diag_error("listen: --max-conns: without -k or --broker there is one connection");
        conflicts++;
    }
    int nargs = argc - optind;
    if (port_opt && nargs > 0) {
        diag_error("listen: -p: the port is given twice (-p and %s)", argv[optind]);
        conflicts++;
    } else if (!port_opt && nargs != 1) {
        diag_error("listen: expected one [ADDR:]PORT argument (or -p PORT)");
        conflicts++;
    }
    if (conflicts) {
        diag_try_help("listen");
        goto usage_error;
    }

    char host[ADDR_HOST_MAX] = "";
    uint16_t port;
    if (port_opt && unix_flag) {
        diag_error("listen: -U: the socket path is the operand, not -p");
        goto usage_error;
    } else if (port_opt) {
        if (!addr_port("listen", port_opt, true, &port))
            goto usage_error;
    } else if (unix_flag) {
        port = 0;
        if (!addr_unix_path("listen", argv[optind], host, sizeof host))
            goto usage_error;
    } else if (!addr_listen("listen", argv[optind], host, sizeof host, &port)) {
        goto usage_error;
    }
    if (addr_is_unix(host) && !acl_empty(&listen_acl)) {
        diag_error("listen: --allow/--deny: they take IP addresses; a Unix-domain socket admits "
                   "whom its file mode lets in (--unix-mode)");
        goto usage_error;
    }
    if (unix_mode && !addr_is_unix(host)) {
        diag_error("listen: --unix-mode: only for a Unix-domain socket (unix:PATH or -U PATH)");
        goto usage_error;
    }
    if (source && host[0]) {
        diag_error("listen: -s: the address is given twice (-s and %s)", argv[optind]);
        goto usage_error;
    }
    if (source)
        snprintf(host, sizeof host, "%s", source);
    if (numeric && host[0] && !addr_is_unix(host) && !addr_is_numeric(host)) {
        diag_error("listen: %s: not a numeric address (-n)", host);
        goto usage_error;
    }
    if (bcfg.key_file) {
        /* It prints why a key file is refused; its status is a usage one. */
        if (keyfile_load("listen", bcfg.key_file, key) != 0)
            goto usage_error;
        bcfg.key = key;
    }
    if (bcfg.tls.on) {
        int st = tls_ctx_new(&bcfg.tls_ctx, "listen", &bcfg.tls, CHANNEL_SERVER);
        if (st) {
            acl_fini(&listen_acl);
            keyfile_wipe(key, sizeof key);
            return st;
        }
    }
    static struct stats_tls tls_stats = {.metric = "tls"};
    tls_stats.side[STATS_TLS_CLIENTS] = bcfg.tls_ctx;
    stats_tls_add(&tls_stats);

    struct iocp_server_config scfg = {
        .host = host[0] ? host : NULL,
        .port = port,
        .family = family,
        .handler = &bridge_server_handler,
        /* Behind a load balancer the access list waits for the header. */
        .filter = acl_empty(&listen_acl) || bcfg.accept_proxy ? NULL : listen_filter,
        /* Without -k a second client is closed at once while the first is
         * served; the listener stops as soon as the first one arrives. */
        .max_conns = bcfg.mode == BRIDGE_SINGLE ? 1u : (uint32_t)max_conns,
        .unix_mode = unix_mode,
    };

    if (bcfg.accept_proxy && !acl_empty(&listen_acl))
        bcfg.acl = &listen_acl;
    struct bridge_run br = {.cfg = &bcfg};
    struct run_spec spec = {
        .cmd = "listen",
        .engine = &ecfg,
        .server = &scfg,
        .stats = !no_stats,
        .stats_spec = stats_spec,
    };
    bridge_run_hooks(&spec, &br);
    int status = run_engine(&spec);
    acl_fini(&listen_acl);
    keyfile_wipe(key, sizeof key);
    tls_ctx_free(bcfg.tls_ctx);
    return status;

usage_error:
    acl_fini(&listen_acl);
    keyfile_wipe(key, sizeof key);
    return EXIT_USAGE;
}
