/* SPDX-License-Identifier: MIT */
/*
 * udp.h: what the UDP subcommands share: spotting -u on a command line,
 * the UDP-only options, refusals that say why, the listening line, and
 * addresses as text.
 */
#include "udp.h"

#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "opts.h"

/* Whether the short option letter c of shortopts takes a value. */
static bool takes_value(const char *shortopts, char c)
{
    const char *p = strchr(shortopts, c);
    return p && p[1] == ':';
}

int udp_dispatch(const char *cmd, int argc, char **argv, const char *shortopts,
                 int (*run)(int argc, char **argv))
{
    const char *udp_only = NULL;
    bool udp = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--"))
            break;
        if (!strncmp(a, "--", 2)) {
            size_t n = strcspn(a + 2, "=");
            if (n == 3 && !strncmp(a + 2, "udp", 3))
                udp = true;
            else if ((n == 7 && !strncmp(a + 2, "udp-ttl", 7)) ||
                     (n == 12 && !strncmp(a + 2, "max-datagram", 12)))
                udp_only = udp_only ? udp_only : a;
            continue;
        }
        if (a[0] != '-' || a[1] == '\0')
            continue;
        /* A cluster of short options ("-luk", "-q1"): a letter that takes a
         * value ends it, and takes the next argument when it is last. */
        for (const char *c = a + 1; *c; c++) {
            if (*c == 'u')
                udp = true;
            if (takes_value(shortopts, *c)) {
                if (c[1] == '\0')
                    i++;
                break;
            }
        }
    }
    if (udp)
        return run(argc, argv);
    if (udp_only) {
        diag_error("%s: %.*s: only for datagrams (-u)", cmd, (int)strcspn(udp_only, "="), udp_only);
        diag_try_help(cmd);
        return EXIT_USAGE;
    }
    return -1;
}

bool udp_parse_max_datagram(const char *cmd, const char *text, size_t *out)
{
    long long n;
    if (!opt_number(cmd, "--max-datagram", text, 1, IOCP_DGRAM_MAX, &n))
        return false;
    *out = (size_t)n;
    return true;
}

bool udp_parse_ttl(const char *cmd, const char *text, unsigned *ms_out)
{
    if (!opt_seconds(cmd, "--udp-ttl", text, ms_out))
        return false;
    if (*ms_out == 0) {
        diag_error("%s: --udp-ttl %s: too small (a session must live a while)", cmd, text);
        return false;
    }
    return true;
}

int udp_refuse(const char *cmd, const struct option *longopts, int opt, const char *why)
{
    const struct option *o = longopts;
    while (o->name && o->val != opt)
        o++;
    if (o->name && opt > 32 && opt < 127)
        diag_error("%s: -%c/--%s: %s", cmd, opt, o->name, why);
    else if (o->name)
        diag_error("%s: --%s: %s", cmd, o->name, why);
    else
        diag_error("%s: -%c: %s", cmd, opt, why);
    return 1;
}

int udp_opt_code(const struct option *t, const char *long_name)
{
    for (; t->name; t++)
        if (!strcmp(t->name, long_name))
            return t->val;
    return -2;
}

void udp_print_listening(struct iocp_dgram *d)
{
    char addr[80];
    iocp_dgram_local(d, addr, sizeof addr);
    /* "ADDR PORT", as cli_print_listening() says it for TCP. */
    char *colon = strrchr(addr, ':');
    if (colon)
        *colon = '\0';
    char *host = addr;
    if (host[0] == '[') {
        host++;
        char *close = strchr(host, ']');
        if (close)
            *close = '\0';
    }
    fprintf(stderr, "listening on %s %u\n", host, iocp_dgram_local_port(d));
    fflush(stderr);
}

const char *udp_addr_name(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        port = ntohs(in->sin_port);
        snprintf(buf, len, "%s:%u", host, port);
        return buf;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    port = ntohs(in6->sin6_port);
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(&in6->sin6_addr, mapped, sizeof mapped)) {
        inet_ntop(AF_INET, (const unsigned char *)&in6->sin6_addr + 12, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, port);
    } else {
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, port);
    }
    return buf;
}

bool udp_resolve(const char *cmd, const char *host, int family, bool numeric, char *out,
                 size_t outlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family == IOCP_FAMILY_IPV4   ? AF_INET
                      : family == IOCP_FAMILY_IPV6 ? AF_INET6
                                                   : AF_UNSPEC;
    hints.ai_socktype = SOCK_DGRAM;
    /* No AI_ADDRCONFIG: it hides 127.0.0.1 and ::1 on a host whose only
     * interface is loopback. */
    hints.ai_flags = numeric ? AI_NUMERICHOST : 0;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        int err = gai == EAI_AGAIN ? IOCP_EAITEMP : IOCP_ENONAME;
#ifdef EAI_NODATA
        if (gai == EAI_NODATA)
            err = IOCP_EAINOADDR;
#endif
        diag_error("%s: %s: %s", cmd, host, iocp_strerror(err));
        return false;
    }
    int rc = getnameinfo(res->ai_addr, (socklen_t)res->ai_addrlen, out, (socklen_t)outlen, NULL, 0,
                         NI_NUMERICHOST);
    freeaddrinfo(res);
    if (rc != 0) {
        diag_error("%s: %s: %s", cmd, host, gai_strerror(rc));
        return false;
    }
    return true;
}

void udp_engine_defaults(struct iocp_engine_config *ecfg)
{
    /* A read of stdin is one datagram: the stream's buffers are as large
     * as the largest datagram, and fewer of them, since each is large. */
    ecfg->recv_buffer_size = UDP_STDIN_DATAGRAM;
    ecfg->recv_buffers = 64;
}
