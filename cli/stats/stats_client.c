/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h, the side of the `stats` subcommand: reaching an
 * endpoint (a socket path, tcp:[HOST:]PORT, or a file that says where one
 * is), asking it, and knowing its files by name.  Written once over
 * stats_transport.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_endpoint.h"
#include "stats_report.h"
#include "stats_transport.h"

/* The longest line sent before the request: a token and "\r\n". */
#define FIRST_LINE_MAX (STATS_TOKEN_HEX + 3)

bool stats_endpoint_file(const char *name, long *pid)
{
    char *end;
    long v = strtol(name, &end, 10);
    if (end == name || v <= 0 || !stats_transport_endpoint_suffix(end))
        return false;
    *pid = v;
    return true;
}

/*
 * A blocking socket connected to the endpoint named by spec, and in first
 * the line to send before the request (empty but for a token endpoint);
 * IOCP_INVALID_SOCKET with the reason in err.
 */
static iocp_socket_t endpoint_connect(const char *spec, char *first, size_t firstlen, char *err,
                                      size_t errlen)
{
    char host[256], port[8];
    first[0] = '\0';
    if (stats_is_tcp(spec)) {
        if (!stats_parse_tcp(spec, host, sizeof host, port, sizeof port)) {
            snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
            return IOCP_INVALID_SOCKET;
        }
        return stats_tcp_connect(spec, host, port, err, errlen);
    }
    int where = stats_transport_locate(spec, host, sizeof host, port, sizeof port, first, firstlen,
                                       err, errlen);
    if (where < 0)
        return IOCP_INVALID_SOCKET;
    if (where > 0)
        return stats_tcp_connect(spec, host, port, err, errlen);
    return stats_unix_connect(spec, err, errlen);
}

bool stats_endpoint_probe(const char *spec)
{
    char ignored[512], first[FIRST_LINE_MAX];
    iocp_socket_t fd = endpoint_connect(spec, first, sizeof first, ignored, sizeof ignored);
    stats_wipe(first, sizeof first);
    if (fd == IOCP_INVALID_SOCKET)
        return false;
    stats_sock_close(fd);
    return true;
}

int stats_endpoint_ask(const char *spec, const char *request, struct json_buf *out, size_t max,
                       unsigned timeout_ms, char *err, size_t errlen)
{
    char why[200];
    char lines[FIRST_LINE_MAX + 64];
    iocp_socket_t fd = endpoint_connect(spec, lines, sizeof lines, err, errlen);
    if (fd == IOCP_INVALID_SOCKET)
        return -1;
    /* The token line (if any) and the request in one send. */
    size_t used = strlen(lines);
    int n = snprintf(lines + used, sizeof lines - used, "%s\n", request);
    size_t len = used + (n > 0 ? (size_t)n : 0);
    uint64_t end = stats_now_ms() + timeout_ms;
    int rc = -1;
    if (stats_sock_send(fd, lines, len) != (long)len) {
        snprintf(err, errlen, "%s: %s", spec,
                 stats_error_text(stats_sock_error(), why, sizeof why));
        goto out;
    }
    for (;;) {
        uint64_t now = stats_now_ms();
        if (now >= end) {
            snprintf(err, errlen, "%s: no complete answer within %u seconds", spec,
                     timeout_ms / 1000);
            goto out;
        }
        stats_pollfd pfd = {.fd = fd, .events = STATS_POLL_IN};
        /* A signal ends the wait too: the only handlers `stats` installs
         * are those that end it. */
        int r = stats_sock_poll(&pfd, 1, (int)(end - now));
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", spec,
                     stats_error_text(stats_sock_error(), why, sizeof why));
            goto out;
        }
        if (r == 0)
            continue;
        char buf[65536];
        long got = stats_sock_recv(fd, buf, sizeof buf);
        if (got == STATS_IO_AGAIN)
            continue;
        if (got < 0) {
            snprintf(err, errlen, "%s: %s", spec,
                     stats_error_text(stats_sock_error(), why, sizeof why));
            goto out;
        }
        if (got == 0)
            break;
        json_append(out, buf, (size_t)got);
        if (out->failed || out->len > max) {
            snprintf(err, errlen, "%s: answer too large", spec);
            goto out;
        }
    }
    rc = 0;
out:
    stats_wipe(lines, sizeof lines);
    stats_sock_close(fd);
    return rc;
}
