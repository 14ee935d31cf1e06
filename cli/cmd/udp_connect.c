/* SPDX-License-Identifier: MIT */
/*
 * iocptool connect -u: each read of stdin becomes one datagram to HOST
 * PORT, and the replies go to stdout (udp_bridge.h); or, with -z, which of
 * a list of ports answer (udp_probe.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "bridge.h"
#include "cmdtable.h"
#include "diag.h"
#include "opts.h"
#include "udp.h"
#include "udp_bridge.h"
#include "udp_probe.h"

static void udp_connect_usage(FILE *out)
{
    fprintf(out,
            "usage: iocptool connect -u [options] HOST PORT\n"
            "       iocptool connect -z -u [options] HOST PORT|FROM-TO ...\n"
            "\n"
            "Send each read of stdin as one datagram to HOST PORT; the replies go to\n"
            "stdout.  At the end of stdin the replies are still awaited: until -q S, until\n"
            "-i S of silence, or by default until the peer has been quiet for %u s.  A\n"
            "port unreachable (nothing listens there) ends it with status 1.\n"
            "\n"
            "With -z: an empty datagram to each port; \"HOST PORT open\" when it answers,\n"
            "\"HOST PORT open|filtered\" when it stays silent for -w S (default 1), and\n"
            "nothing for a closed one (it answers port unreachable; -v says so).\n"
            "\n"
            "  -q, --quit-after S     end S seconds after the end of stdin (0: at once)\n"
            "  -i, --idle-timeout S   end after S seconds without a datagram either way\n"
            "  -w, --wait S           -z: how long a silent port is waited for\n"
            "      --max-datagram N   receive datagrams up to N bytes whole (default 65535)\n"
            "  -s ADDR, -p PORT, -4, -6, -n, -B NAME   as for TCP\n"
            "      --send-only, --recv-only, --progress\n"
            "  -v, --verbose          say more; at the end, what was received, sent and\n"
            "                         dropped\n",
            UDP_EOF_QUIET_MS / 1000);
}

int cmd_udp_connect(int argc, char **argv)
{
    static const char cmd[] = "connect";
    struct bridge_config bcfg = {.cmd = cmd, .mode = BRIDGE_SINGLE, .quit_ms = -1};
    struct iocp_engine_config ecfg = {.workers = 1, .log = diag_lib_log};
    struct udp_bridge_config ucfg = {.cmd = cmd, .mode = UDP_BRIDGE_CONNECTED};
    const char *source = NULL;
    uint16_t source_port = 0;
    unsigned wait_ms = 0;
    bool probe_mode = false, numeric = false;
    int family = 0, conflicts = 0, opt, r;

    struct opt_parser op;
    opt_init(&op, cmd, argc, argv, "w:s:p:z46nklUB:X:x:hu" BRIDGE_SHORT_OPTIONS, connect_options);
    while ((opt = opt_next(&op)) != -1) {
        if ((r = bridge_option(&bcfg, opt, optarg)) < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        switch (opt) {
        case 'u':
            break;
        case 'w':
            if (!opt_seconds(cmd, "-w", optarg, &wait_ms))
                return EXIT_USAGE;
            if (wait_ms == 0) {
                diag_error("%s: -w %s: too small (the time-out must be positive)", cmd, optarg);
                return EXIT_USAGE;
            }
            break;
        case 's':
            source = optarg;
            break;
        case 'p':
            if (!addr_port(cmd, optarg, false, &source_port))
                return EXIT_USAGE;
            break;
        case 'z':
            probe_mode = true;
            break;
        case '4':
        case '6':
            if (family && family != opt - '0') {
                diag_error("%s: -4 and -6 exclude each other", cmd);
                conflicts++;
            }
            family = opt - '0';
            break;
        case 'n':
            numeric = true;
            break;
        case 'k':
            conflicts += udp_refuse(cmd, connect_options, opt,
                                    "keeping a listener open is for 'iocptool listen -u'");
            break;
        case 'l':
            diag_error("%s: -l: use 'iocptool listen -u' to listen", cmd);
            conflicts++;
            break;
        case 'B':
            ecfg.backend = optarg;
            break;
        case UDP_OPT_MAX_DATAGRAM:
            if (!udp_parse_max_datagram(cmd, optarg, &ucfg.socket.max_datagram))
                return EXIT_USAGE;
            break;
        case 'h':
            udp_connect_usage(stdout);
            return EXIT_OK;
        case OPT_ERROR:
            return EXIT_USAGE;
        default:
            conflicts += udp_refuse(cmd, connect_options, opt, "not available with -u");
            break;
        }
    }

    /* Every contradiction, one message each. */
    conflicts += bridge_conflicts(&bcfg);
    if (bcfg.no_shutdown) {
        diag_error("%s: --no-shutdown: UDP has no half-close, nothing is shut down (-u)", cmd);
        conflicts++;
    }
    if (bcfg.key_file) {
        diag_error("%s: --key: the encrypted channel needs a TCP stream, not datagrams (-u)", cmd);
        conflicts++;
    }
    if (wait_ms && !probe_mode) {
        diag_error("%s: -w: datagrams are not connected; -i or -q bound the wait (-u)", cmd);
        conflicts++;
    }
    if (probe_mode) {
        static const char *const what[] = {"--send-only", "--recv-only", "-q", "-i", "--progress"};
        bool set[] = {bcfg.send_only, bcfg.recv_only, bcfg.quit_ms >= 0, bcfg.idle_ms > 0,
                      bcfg.progress};
        for (unsigned i = 0; i < sizeof set / sizeof set[0]; i++) {
            if (set[i]) {
                diag_error("%s: %s: -z moves no data", cmd, what[i]);
                conflicts++;
            }
        }
        if (source_port) {
            diag_error("%s: -p: -z probes many ports at once from one source port", cmd);
            conflicts++;
        }
    }
    int nargs = argc - optind;
    if (nargs == 1 && strchr(argv[optind], ':') && !strchr(strchr(argv[optind], ':') + 1, ':')) {
        diag_error("%s: %s: expected HOST PORT, two arguments: '%.*s %s'", cmd, argv[optind],
                   (int)(strchr(argv[optind], ':') - argv[optind]), argv[optind],
                   strchr(argv[optind], ':') + 1);
        conflicts++;
    } else if (probe_mode ? nargs < 2 : nargs != 2) {
        diag_error("%s: expected HOST PORT%s", cmd, probe_mode ? " [PORT|FROM-TO ...]" : "");
        conflicts++;
    }
    if (conflicts) {
        diag_try_help(cmd);
        return EXIT_USAGE;
    }
    const char *host = argv[optind];
    if (numeric && !addr_is_numeric(host)) {
        diag_error("%s: %s: not a numeric address (-n)", cmd, host);
        return EXIT_USAGE;
    }
    if (source && !addr_is_numeric(source)) {
        diag_error("%s: -s %s: not a numeric address", cmd, source);
        return EXIT_USAGE;
    }

    if (probe_mode) {
        struct udp_probe_config pcfg = {
            .host = host,
            .family = family,
            .numeric = numeric,
            .source_host = source,
            .wait_ms = wait_ms ? wait_ms : UDP_PROBE_WAIT_MS,
            .backend = ecfg.backend,
            .ports = argv + optind + 1,
            .nports = nargs - 1,
        };
        return udp_probe_run(&pcfg);
    }

    uint16_t port;
    if (!addr_port(cmd, argv[optind + 1], false, &port))
        return EXIT_USAGE;
    char target[ADDR_HOST_MAX + 8];
    addr_format(host, port, target, sizeof target);
    /* The name is looked up here, on the main thread: the socket is
     * opened on the worker, which must never wait for a lookup. */
    char peer[INET6_ADDRSTRLEN];
    if (!udp_resolve(cmd, host, family, numeric, peer, sizeof peer))
        return EXIT_RUNTIME;

    ucfg.send_only = bcfg.send_only;
    ucfg.recv_only = bcfg.recv_only;
    ucfg.quit_ms = bcfg.quit_ms;
    ucfg.idle_ms = bcfg.idle_ms;
    ucfg.progress = bcfg.progress;
    ucfg.socket.host = source;
    ucfg.socket.port = source_port;
    ucfg.socket.family = family;
    ucfg.socket.peer_host = peer;
    ucfg.socket.peer_port = port;
    ucfg.target = target;
    udp_engine_defaults(&ecfg);
    return udp_bridge_run(&ucfg, &ecfg);
}
