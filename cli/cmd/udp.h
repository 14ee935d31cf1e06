/* SPDX-License-Identifier: MIT */
/*
 * -u: the UDP side of listen, connect, echo and relay.
 *
 * Each subcommand hands its whole command line to its UDP counterpart
 * (udp_listen.c, udp_connect.c, udp_echo.c, udp_relay.c) as soon as -u is
 * among its options, before it parses anything itself; the UDP parser
 * reads the same option table, takes what makes sense for datagrams and
 * refuses the rest as a usage error that says why.  The options only UDP
 * has (--udp-ttl, --max-datagram) are in the subcommands' tables too, so
 * that --help and the completions offer them; without -u they are refused
 * here, with the reason.
 */
#ifndef IOCPTOOL_UDP_H
#define IOCPTOOL_UDP_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"

#include "netcompat.h"

/* getopt_long codes of the UDP-only options, clear of every subcommand's
 * own (which start at 256). */
enum {
    UDP_OPT_TTL = 0x1000,
    UDP_OPT_MAX_DATAGRAM,
};

/* The table entries: -u and --max-datagram (listen, connect, echo, relay),
 * --udp-ttl (listen, relay). */
#define UDP_LONG_OPTIONS                                                                           \
    {"udp", no_argument, NULL, 'u'},                                                               \
    {                                                                                              \
        "max-datagram", required_argument, NULL, UDP_OPT_MAX_DATAGRAM                              \
    }
#define UDP_TTL_OPTION                                                                             \
    {                                                                                              \
        "udp-ttl", required_argument, NULL, UDP_OPT_TTL                                            \
    }

/* Their --help lines (26-column layout). */
#define UDP_HELP                                                                                   \
    "  -u, --udp              datagrams (UDP) instead of a TCP stream; -u --help\n"                \
    "                         says what changes\n"                                                 \
    "      --max-datagram N   with -u: receive datagrams up to N bytes whole; longer\n"            \
    "                         ones are cut, counted and reported (default 65535)\n"
#define UDP_TTL_HELP                                                                               \
    "      --udp-ttl S        with -u: a peer silent for S seconds is forgotten\n"                 \
    "                         (default 60)\n"

/* The default session life of a silent peer (--udp-ttl). */
#define UDP_TTL_DEFAULT_MS 60000u

/*
 * udp_dispatch(cmd, argc, argv, shortopts, run):
 * When argv (the subcommand's arguments, argv[0] its name) asks for -u,
 * return run(argc, argv); when it names a UDP-only option without -u, say
 * so and return EXIT_USAGE; otherwise return -1 and let the TCP parser go
 * on.  shortopts is the subcommand's getopt string (to skip option values).
 */
int udp_dispatch(const char *cmd, int argc, char **argv, const char *shortopts,
                 int (*run)(int argc, char **argv));

/* The UDP subcommands. */
int cmd_udp_listen(int argc, char **argv);
int cmd_udp_connect(int argc, char **argv);
int cmd_udp_echo(int argc, char **argv);
int cmd_udp_relay(int argc, char **argv);

/* --max-datagram N (1 .. IOCP_DGRAM_MAX) and --udp-ttl S (> 0). */
bool udp_parse_max_datagram(const char *cmd, const char *text, size_t *out);
bool udp_parse_ttl(const char *cmd, const char *text, unsigned *ms_out);

/*
 * udp_refuse(cmd, longopts, opt, why):
 * Say that option opt (a getopt_long code of longopts) makes no sense with
 * -u, and why: "iocptool: listen: --key: ... (-u)".  Returns 1 (to count).
 */
int udp_refuse(const char *cmd, const struct option *longopts, int opt, const char *why);

/* The getopt_long code of the option long_name in table t, or -2 when the
 * table has no such option (never a code getopt returns). */
int udp_opt_code(const struct option *t, const char *long_name);

/* "listening on ADDR PORT" for a bound datagram socket, as for TCP. */
void udp_print_listening(struct iocp_dgram *d);

/* An address as "127.0.0.1:53" or "[::1]:53" (IPv4-mapped IPv6 shown as
 * IPv4); returns buf. */
const char *udp_addr_name(const struct sockaddr *sa, char *buf, size_t len);

/*
 * udp_resolve(cmd, host, family, numeric, out, outlen):
 * Look host up once (main thread) and give its first address as numeric
 * text, so that the sockets opened later on a worker never wait for a
 * name lookup.  false after printing why.
 */
bool udp_resolve(const char *cmd, const char *host, int family, bool numeric, char *out,
                 size_t outlen);

/* The engine configuration of a UDP subcommand: receive buffers that hold
 * the largest datagram, so that one read of stdin is one datagram. */
void udp_engine_defaults(struct iocp_engine_config *ecfg);

/* The largest datagram one read of stdin may become (IPv4's limit). */
#define UDP_STDIN_DATAGRAM 65507u

#endif /* IOCPTOOL_UDP_H */
