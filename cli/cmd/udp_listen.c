/* SPDX-License-Identifier: MIT */
/*
 * iocptool listen -u: receive datagrams and bridge them to stdin/stdout
 * (udp_bridge.h).  Without -k the first peer is the one (its datagrams to
 * stdout, stdin to it); with -k every peer's datagrams go to stdout and
 * stdin to every peer heard from within --udp-ttl; --broker passes each
 * datagram to the other peers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "acl.h"
#include "addr.h"
#include "bridge.h"
#include "cmdtable.h"
#include "diag.h"
#include "opts.h"
#include "stats_endpoint.h"
#include "udp.h"
#include "udp_bridge.h"

#define UDP_LISTEN_MAX_PEERS_DEFAULT 100

static void udp_listen_usage(FILE *out)
{
    fprintf(out,
            "usage: iocptool listen -u [options] [ADDR:]PORT\n"
            "\n"
            "Receive datagrams and bridge them to stdin/stdout.  Without -k the first\n"
            "peer that sends is the one: its datagrams go to stdout and each read of\n"
            "stdin goes to it as one datagram; others are dropped.  End of stdin does not\n"
            "end the listener (-q does).  \"listening on ADDR PORT\" is printed on stderr\n"
            "once the socket is bound.\n"
            "\n"
            "  -k, --keep-open        every peer's datagrams go to stdout, stdin to every\n"
            "                         peer heard from within --udp-ttl\n"
            "      --broker           pass each datagram to every other peer\n"
            "  -m, --max-conns N      with -k or --broker: at most N peers at once\n"
            "                         (default %d; datagrams of more are dropped)\n" UDP_TTL_HELP
            "      --max-datagram N   receive datagrams up to N bytes whole (default 65535)\n"
            "      --allow LIST, --deny LIST   admit or turn away peers by address\n"
            "  -4, -6, -s ADDR, -p PORT, -n, -B NAME   as for TCP\n"
            "  -q, --quit-after S     end S seconds after the end of stdin\n"
            "  -i, --idle-timeout S   without -k: end after S seconds without a datagram\n"
            "      --send-only, --recv-only, --progress, --stats ADDR, --no-stats\n"
            "  -v, --verbose          say more; at the end, what was received, sent and\n"
            "                         dropped\n",
            UDP_LISTEN_MAX_PEERS_DEFAULT);
}

int cmd_udp_listen(int argc, char **argv)
{
    static const char cmd[] = "listen";
    struct bridge_config bcfg = {.cmd = cmd, .mode = BRIDGE_SINGLE, .quit_ms = -1};
    struct iocp_engine_config ecfg = {.workers = 1, .log = diag_lib_log};
    struct udp_bridge_config ucfg = {.cmd = cmd, .ttl_ms = UDP_TTL_DEFAULT_MS};
    struct acl acl = {0};
    const char *source = NULL, *port_opt = NULL, *stats_spec = NULL;
    bool keep_open = false, broker = false, numeric = false, max_given = false;
    bool ttl_given = false, no_stats = false;
    long long max_peers = UDP_LISTEN_MAX_PEERS_DEFAULT;
    int conflicts = 0, opt, r;
    char why[256];

    /* The codes of listen's long-only options, by name: listen.c owns them. */
    const int opt_broker = udp_opt_code(listen_options, "broker");
    const int opt_allow = udp_opt_code(listen_options, "allow");
    const int opt_deny = udp_opt_code(listen_options, "deny");
    const int opt_stats = udp_opt_code(listen_options, "stats");
    const int opt_no_stats = udp_opt_code(listen_options, "no-stats");

    struct opt_parser op;
    opt_init(&op, cmd, argc, argv, "km:46s:p:nlUB:hzw:u" BRIDGE_SHORT_OPTIONS, listen_options);
    while ((opt = opt_next(&op)) != -1) {
        if ((r = bridge_option(&bcfg, opt, optarg)) < 0)
            goto usage_error;
        if (r > 0)
            continue;
        if (opt == opt_broker) {
            broker = true;
            continue;
        }
        if (opt == opt_allow || opt == opt_deny) {
            if (!acl_add(&acl, opt == opt_deny, optarg, why, sizeof why)) {
                diag_error("%s: %s %s", cmd, opt == opt_deny ? "--deny" : "--allow", why);
                goto usage_error;
            }
            continue;
        }
        if (opt == opt_stats) {
            stats_spec = optarg;
            continue;
        }
        if (opt == opt_no_stats) {
            no_stats = true;
            continue;
        }
        switch (opt) {
        case 'u':
        case 'l':
            break;
        case 'k':
            keep_open = true;
            break;
        case 'm':
            if (!opt_number(cmd, "--max-conns", optarg, 1, 65536, &max_peers))
                goto usage_error;
            max_given = true;
            break;
        case UDP_OPT_TTL:
            if (!udp_parse_ttl(cmd, optarg, &ucfg.ttl_ms))
                goto usage_error;
            ttl_given = true;
            break;
        case UDP_OPT_MAX_DATAGRAM:
            if (!udp_parse_max_datagram(cmd, optarg, &ucfg.socket.max_datagram))
                goto usage_error;
            break;
        case '4':
        case '6':
            if (ucfg.socket.family && ucfg.socket.family != opt - '0') {
                diag_error("%s: -4 and -6 exclude each other", cmd);
                conflicts++;
            }
            ucfg.socket.family = opt - '0';
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
        case 'B':
            ecfg.backend = optarg;
            break;
        case 'z':
            conflicts += udp_refuse(cmd, listen_options, opt,
                                    "port probing is done by 'iocptool connect -z -u'");
            break;
        case 'w':
            conflicts += udp_refuse(cmd, listen_options, opt,
                                    "a connect time-out; datagrams are not connected (-u)");
            break;
        case 'h':
            udp_listen_usage(stdout);
            acl_fini(&acl);
            return EXIT_OK;
        case OPT_ERROR:
            goto usage_error;
        default:
            /* An option of the TCP listener that datagrams have no use for. */
            conflicts += udp_refuse(cmd, listen_options, opt, "not available with -u");
            break;
        }
    }

    /* Every contradiction, one message each. */
    bcfg.mode = broker ? BRIDGE_BROKER : keep_open ? BRIDGE_KEEP_OPEN : BRIDGE_SINGLE;
    conflicts += bridge_conflicts(&bcfg);
    if (bcfg.no_shutdown) {
        diag_error("%s: --no-shutdown: UDP has no half-close, nothing is shut down (-u)", cmd);
        conflicts++;
    }
    if (bcfg.key_file) {
        diag_error("%s: --key: the encrypted channel needs a TCP stream, not datagrams (-u)", cmd);
        conflicts++;
    }
    if (stats_spec && no_stats) {
        diag_error("%s: --stats and --no-stats exclude each other", cmd);
        conflicts++;
    }
    if (broker && keep_open) {
        diag_error("%s: -k: --broker already keeps the listener open", cmd);
        conflicts++;
    }
    if (max_given && bcfg.mode == BRIDGE_SINGLE) {
        diag_error("%s: --max-conns: without -k or --broker there is one peer", cmd);
        conflicts++;
    }
    if (ttl_given && bcfg.mode == BRIDGE_SINGLE) {
        diag_error("%s: --udp-ttl: without -k or --broker the first peer stays the peer", cmd);
        conflicts++;
    }
    if (bcfg.idle_ms && bcfg.mode != BRIDGE_SINGLE) {
        diag_error("%s: -i: with -k or --broker, --udp-ttl forgets silent peers", cmd);
        conflicts++;
    }
    int nargs = argc - optind;
    if (port_opt && nargs > 0) {
        diag_error("%s: -p: the port is given twice (-p and %s)", cmd, argv[optind]);
        conflicts++;
    } else if (!port_opt && nargs != 1) {
        diag_error("%s: expected one [ADDR:]PORT argument (or -p PORT)", cmd);
        conflicts++;
    }
    if (conflicts) {
        diag_try_help(cmd);
        goto usage_error;
    }

    if (!port_opt && addr_is_unix(argv[optind])) {
        diag_error("%s: %s: -u takes an IP address (datagrams over Unix-domain sockets are not "
                   "supported)",
                   cmd, argv[optind]);
        goto usage_error;
    }
    char host[ADDR_HOST_MAX] = "";
    uint16_t port;
    if (port_opt) {
        if (!addr_port(cmd, port_opt, true, &port))
            goto usage_error;
    } else if (!addr_listen(cmd, argv[optind], host, sizeof host, &port)) {
        goto usage_error;
    }
    if (source && host[0]) {
        diag_error("%s: -s: the address is given twice (-s and %s)", cmd, argv[optind]);
        goto usage_error;
    }
    if (source)
        snprintf(host, sizeof host, "%s", source);
    if (numeric && host[0] && !addr_is_numeric(host)) {
        diag_error("%s: %s: not a numeric address (-n)", cmd, host);
        goto usage_error;
    }

    ucfg.mode = broker      ? UDP_BRIDGE_BROKER
                : keep_open ? UDP_BRIDGE_KEEP_OPEN
                            : UDP_BRIDGE_FIRST_PEER;
    ucfg.send_only = bcfg.send_only;
    ucfg.recv_only = bcfg.recv_only;
    ucfg.quit_ms = bcfg.quit_ms;
    ucfg.idle_ms = bcfg.idle_ms;
    ucfg.progress = bcfg.progress;
    ucfg.max_peers = ucfg.mode == UDP_BRIDGE_FIRST_PEER ? 1u : (unsigned)max_peers;
    if (ucfg.mode == UDP_BRIDGE_FIRST_PEER)
        ucfg.ttl_ms = 0;
    ucfg.acl = acl_empty(&acl) ? NULL : &acl;
    ucfg.socket.host = host[0] ? host : NULL;
    ucfg.socket.port = port;
    ucfg.stats = !no_stats;
    ucfg.stats_spec = stats_spec;
    udp_engine_defaults(&ecfg);
    int status = udp_bridge_run(&ucfg, &ecfg);
    acl_fini(&acl);
    return status;

usage_error:
    acl_fini(&acl);
    return EXIT_USAGE;
}
