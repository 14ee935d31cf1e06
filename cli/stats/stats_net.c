/* SPDX-License-Identifier: MIT */
/*
 * stats_transport.h, the part both platforms share: the address of a
 * Unix-domain endpoint, and connecting or listening over TCP, written once
 * over the platform's socket calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_transport.h"

bool stats_unix_address(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, errlen, "%s: path too long for a Unix-domain socket (at most %zu bytes)",
                 path, sizeof sa->sun_path - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

iocp_socket_t stats_unix_connect(const char *path, char *err, size_t errlen)
{
    char why[200];
    struct sockaddr_un sa;
    if (!stats_unix_address(&sa, path, err, errlen))
        return IOCP_INVALID_SOCKET;
    iocp_socket_t fd = stats_sock_open(AF_UNIX, false);
    if (fd == IOCP_INVALID_SOCKET || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        snprintf(err, errlen, "%s: %s", path,
                 stats_error_text(stats_sock_error(), why, sizeof why));
        if (fd != IOCP_INVALID_SOCKET)
            stats_sock_close(fd);
        return IOCP_INVALID_SOCKET;
    }
    return fd;
}

static int resolve(const char *name, const char *host, const char *port, bool passive,
                   struct addrinfo **res, char *err, size_t errlen)
{
    char why[200];
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int gai = getaddrinfo(host, port, &hints, res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", name, stats_gai_text(gai, why, sizeof why));
        return -1;
    }
    return 0;
}

iocp_socket_t stats_tcp_connect(const char *name, const char *host, const char *port, char *err,
                                size_t errlen)
{
    char why[200];
    struct addrinfo *res;
    if (resolve(name, host, port, false, &res, err, errlen) < 0)
        return IOCP_INVALID_SOCKET;
    iocp_socket_t fd = IOCP_INVALID_SOCKET;
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = stats_sock_open(ai->ai_family, false);
        if (fd != IOCP_INVALID_SOCKET && connect(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0)
            break;
        saved = stats_sock_error();
        if (fd != IOCP_INVALID_SOCKET)
            stats_sock_close(fd);
        fd = IOCP_INVALID_SOCKET;
    }
    freeaddrinfo(res);
    if (fd == IOCP_INVALID_SOCKET)
        snprintf(err, errlen, "%s: %s", name, stats_error_text(saved, why, sizeof why));
    return fd;
}

iocp_socket_t stats_tcp_listen(const char *name, const char *host, const char *port, char *addr,
                               size_t addrlen, unsigned *portnum, char *err, size_t errlen)
{
    char why[200];
    struct addrinfo *res;
    if (resolve(name, host, port, true, &res, err, errlen) < 0)
        return IOCP_INVALID_SOCKET;
    iocp_socket_t fd = IOCP_INVALID_SOCKET;
    int saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = stats_sock_open(ai->ai_family, true);
        if (fd == IOCP_INVALID_SOCKET) {
            saved = stats_sock_error();
            continue;
        }
        stats_sock_listen_options(fd);
        if (bind(fd, ai->ai_addr, (socklen_t)ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        saved = stats_sock_error();
        stats_sock_close(fd);
        fd = IOCP_INVALID_SOCKET;
    }
    freeaddrinfo(res);
    if (fd == IOCP_INVALID_SOCKET) {
        snprintf(err, errlen, "%s: %s", name, stats_error_text(saved, why, sizeof why));
        return IOCP_INVALID_SOCKET;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char serv[NI_MAXSERV] = "0";
    snprintf(addr, addrlen, "?");
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, addr, (socklen_t)addrlen, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    *portnum = (unsigned)strtoul(serv, NULL, 10);
    return fd;
}

void stats_wipe(void *p, size_t len)
{
    volatile unsigned char *b = p;
    while (len--)
        *b++ = 0;
}
