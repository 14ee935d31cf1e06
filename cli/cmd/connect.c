/* SPDX-License-Identifier: MIT */
/*
 * iocptool connect: connect and bridge stdin/stdout to the socket, with the
 * end of input rules of docs/EOF.md, in the clear or (--key) through the
 * encrypted channel of docs/PROTOCOL.md; or, with -z, probe which of a list
 * of ports accept a connection (probe.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "bridge.h"
#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "netcompat.h"
#include "opts.h"
#include "bridge_run.h"
#include "probe.h"
#include "proxy_opt.h"
#include "run.h"
#include "udp.h"

enum { CONNECT_OPT_PROXY = BRIDGE_OPT_NEXT, CONNECT_OPT_PROXY_AUTH };

const struct option connect_options[] = {
    {"wait", required_argument, NULL, 'w'},
    {"source", required_argument, NULL, 's'},
    {"source-port", required_argument, NULL, 'p'},
    {"zero-io", no_argument, NULL, 'z'},
    {"ipv4", no_argument, NULL, '4'},
    {"ipv6", no_argument, NULL, '6'},
    {"numeric", no_argument, NULL, 'n'},
    {"keep-open", no_argument, NULL, 'k'},
    {"unix", no_argument, NULL, 'U'},
    {"backend", required_argument, NULL, 'B'},
    {"proxy", required_argument, NULL, CONNECT_OPT_PROXY},
    {"proxy-auth", required_argument, NULL, CONNECT_OPT_PROXY_AUTH},
    {"proxy-type", required_argument, NULL, 'X'},
    {"proxy-address", required_argument, NULL, 'x'},
    {"help", no_argument, NULL, 'h'},
    UDP_LONG_OPTIONS,
    BRIDGE_LONG_OPTIONS,
    TLS_CLIENT_LONG_OPTIONS,
    {NULL, 0, NULL, 0},
};

static void connect_usage(FILE *out)
{
    fprintf(out,
            "usage: iocptool connect [options] HOST PORT\n"
            "       iocptool connect -z [options] HOST PORT|FROM-TO ...\n"
            "       iocptool connect [options] unix:PATH | -U PATH\n"
            "\n"
            "Connect and bridge stdin/stdout to the socket: end of stdin half-closes\n"
            "the connection, end of the socket closes stdout and ends the tool.\n"
            "A PORT is a number or a service name (http, ssh).\n"
            "\n"
            "  -w, --wait S           give up connecting after S seconds\n"
            "  -s, --source ADDR      connect from this local address\n"
            "  -p, --source-port PORT connect from this local port\n"
            "  -z, --zero-io          probe the ports (lists and ranges, e.g. 20 22-25 80)\n"
            "                         concurrently; print \"HOST PORT open\" for each open\n"
            "                         one; exit 0 if any is open, 1 if none\n"
            "  -4, --ipv4             IPv4 only\n"
            "  -6, --ipv6             IPv6 only\n"
            "  -n, --numeric          HOST must be a numeric address (no name lookup)\n"
            "  -U, --unix             the operand is a Unix-domain socket PATH (as\n"
            "                         unix:PATH; unix:@NAME is a Linux abstract name)\n"
            "  -B, --backend NAME     uring, epoll or iocp (default: the best that works)\n"
            "      --proxy URL        connect through a proxy: socks4://, socks4a://,\n"
            "                         socks5:// (names resolved here), socks5h:// (names\n"
            "                         resolved by the proxy) or http:// (CONNECT), as\n"
            "                         SCHEME://[USER[:PASS]@]HOST[:PORT]\n"
            "      --proxy-auth FILE  the proxy's USER:PASS from FILE (private to its owner)\n"
            "  -X, --proxy-type TYPE  nc's spelling: 4, 5 (the default) or connect (HTTP)\n"
            "  -x, --proxy-address ADDR  nc's spelling of the proxy, HOST[:PORT] (port 1080\n"
            "                         for SOCKS, 3128 for connect)\n"
            UDP_HELP "%s%s"
            "  -h, --help             this help\n",
            bridge_options_help, tls_client_help);
}

int cmd_connect(int argc, char **argv)
{
    struct bridge_config bcfg = {.cmd = "connect", .mode = BRIDGE_SINGLE, .quit_ms = -1};
    struct iocp_engine_config ecfg = {.workers = 1, .log = diag_lib_log};
    const char *source = NULL;
    uint16_t source_port = 0;
    unsigned timeout_ms = 0;
    bool probe_mode = false, numeric = false, keep_open = false, listen_flag = false;
    int family = 0, conflicts = 0;
    bool unix_flag = false;
    int opt, r;
    struct proxy_opt po;
    memset(&po, 0, sizeof po);

    int udp = udp_dispatch("connect", argc, argv, "w:s:p:z46nklUB:X:x:h" BRIDGE_SHORT_OPTIONS,
                           cmd_udp_connect);
    if (udp >= 0)
        return udp;
    struct opt_parser op;
    opt_init(&op, "connect", argc, argv, "w:s:p:z46nklUB:X:x:h" BRIDGE_SHORT_OPTIONS, connect_options);
    while ((opt = opt_next(&op)) != -1) {
        if ((r = bridge_option(&bcfg, opt, optarg)) < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'w':
            if (!opt_seconds("connect", "-w", optarg, &timeout_ms))
                return EXIT_USAGE;
            if (timeout_ms == 0) {
                diag_error("connect: -w %s: too small (the time-out must be positive)", optarg);
                return EXIT_USAGE;
            }
            break;
        case 's':
            source = optarg;
            break;
        case 'p':
            if (!addr_port("connect", optarg, false, &source_port))
                return EXIT_USAGE;
            break;
        case 'z':
            probe_mode = true;
            break;
        case '4':
        case '6':
            if (family && family != opt - '0') {
                diag_error("connect: -4 and -6 exclude each other");
                conflicts++;
            }
            family = opt - '0';
            break;
        case 'n':
            numeric = true;
            break;
        case 'U':
            unix_flag = true;
            break;
        case 'k':
            keep_open = true;
            break;
        case 'l':
            listen_flag = true;
            break;
        case 'B':
            ecfg.backend = optarg;
            break;
        case CONNECT_OPT_PROXY:
            po.url = optarg;
            break;
        case CONNECT_OPT_PROXY_AUTH:
            po.auth_file = optarg;
            break;
        case 'X':
            po.nc_kind = optarg;
            break;
        case 'x':
            po.nc_addr = optarg;
            break;
        case 'h':
            connect_usage(stdout);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }

    /* Every contradiction, one message each. */
    conflicts += bridge_conflicts(&bcfg);
    if (listen_flag) {
        diag_error("connect: -l: use 'iocptool listen' to listen");
        conflicts++;
    }
    if (keep_open) {
        diag_error("connect: -k: keeping a listener open is for 'iocptool listen'");
        conflicts++;
    }
    if (probe_mode) {
        static const char *const what[] = {"--send-only", "--recv-only", "--no-shutdown", "-q",
                                           "-i",          "--progress",  "--key",
                                           "--tls"};
        bool set[] = {bcfg.send_only,   bcfg.recv_only, bcfg.no_shutdown,     bcfg.quit_ms >= 0,
                      bcfg.idle_ms > 0, bcfg.progress,  bcfg.key_file != NULL, bcfg.tls.on};
        for (unsigned i = 0; i < sizeof set / sizeof set[0]; i++) {
            if (set[i]) {
                diag_error("connect: %s: -z moves no data", what[i]);
                conflicts++;
            }
        }
        if (source_port) {
            diag_error("connect: -p: -z probes many ports at once from one source port");
            conflicts++;
        }
        if (proxy_opt_given(&po)) {
            diag_error("connect: --proxy: -z probes ports directly, not through a proxy");
            conflicts++;
        }
    }
    int nargs = argc - optind;
    /* unix:PATH or -U PATH: one operand, and nothing about IP to choose. */
    bool unix_target = unix_flag || (nargs >= 1 && addr_is_unix(argv[optind]));
    if (unix_target) {
        if (nargs != 1) {
            diag_error("connect: a Unix-domain socket is one operand: unix:PATH or -U PATH");
            conflicts++;
        }
        if (probe_mode || source || source_port) {
            diag_error("connect: %s: not for a Unix-domain socket",
                       probe_mode ? "-z" : source ? "-s" : "-p");
            conflicts++;
        }
        if (conflicts) {
            diag_try_help("connect");
            return EXIT_USAGE;
        }
    } else if (nargs == 1 && strchr(argv[optind], ':') && !strchr(strchr(argv[optind], ':') + 1, ':')) {
        /* HOST:PORT, as listen and relay take it: here they are two. */
        diag_error("connect: %s: expected HOST PORT, two arguments: '%.*s %s'", argv[optind],
                   (int)(strchr(argv[optind], ':') - argv[optind]), argv[optind],
                   strchr(argv[optind], ':') + 1);
        conflicts++;
    } else if (probe_mode ? nargs < 2 : nargs != 2) {
        diag_error("connect: expected HOST PORT%s", probe_mode ? " [PORT|FROM-TO ...]" : "");
        conflicts++;
    }
    if (conflicts) {
        diag_try_help("connect");
        return EXIT_USAGE;
    }
    const char *host = argv[optind];
    if (!probe_mode && !proxy_opt_finish("connect", &po)) {
        proxy_opt_wipe(&po);
        return EXIT_USAGE;
    }
    if (unix_target && po.proxy.kind != IOCP_PROXY_NONE) {
        diag_error("connect: %s: a Unix-domain socket is not reached through a proxy", host);
        proxy_opt_wipe(&po);
        return EXIT_USAGE;
    }
    char unix_host[ADDR_HOST_MAX];
    if (unix_target) {
        if (!addr_unix_path("connect", host, unix_host, sizeof unix_host))
            return EXIT_USAGE;
        host = unix_host;
    } else if (numeric && !addr_is_numeric(host)) {
        diag_error("connect: %s: not a numeric address (-n)", host);
        return EXIT_USAGE;
    }
    if (source && !addr_is_numeric(source)) {
        diag_error("connect: -s %s: not a numeric address", source);
        return EXIT_USAGE;
    }

    if (probe_mode) {
        struct probe_config pcfg = {
            .host = host,
            .family = family,
            .numeric = numeric,
            .source_host = source,
            .timeout_ms = timeout_ms,
            .backend = ecfg.backend,
            .ports = argv + optind + 1,
            .nports = nargs - 1,
        };
        return probe_run(&pcfg);
    }

    uint16_t port = 0;
    if (!unix_target && !addr_port("connect", argv[optind + 1], false, &port)) {
        proxy_opt_wipe(&po);
        return EXIT_USAGE;
    }
    char target[ADDR_HOST_MAX + 8];
    addr_format(host, port, target, sizeof target);
    uint8_t key[KEYFILE_KEY_BYTES];
    if (bcfg.key_file) {
        /* It prints why a key file is refused; its status is a usage one. */
        if (keyfile_load("connect", bcfg.key_file, key) != 0) {
            proxy_opt_wipe(&po);
            return EXIT_USAGE;
        }
        bcfg.key = key;
    }
    if (bcfg.tls.on) {
        int st = tls_ctx_new(&bcfg.tls_ctx, "connect", &bcfg.tls, CHANNEL_CLIENT);
        if (st)
            return st;
        bcfg.tls_host = host;
    }

    bcfg.via_proxy = po.proxy.kind != IOCP_PROXY_NONE;
    struct bridge_run br = {
        .cfg = &bcfg,
        .connect = {.host = host,
                    .port = port,
                    .family = family,
                    .source_host = source,
                    .source_port = source_port,
                    .timeout_ms = timeout_ms,
                    .proxy = po.proxy.kind ? &po.proxy : NULL},
        .target = target,
    };
    struct run_spec spec = {.cmd = "connect", .engine = &ecfg};
    bridge_run_hooks(&spec, &br);
    int status = run_engine(&spec);
    keyfile_wipe(key, sizeof key);
    tls_ctx_free(bcfg.tls_ctx);
    proxy_opt_wipe(&po);
    return status;
}
