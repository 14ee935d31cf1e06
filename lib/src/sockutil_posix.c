/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers on POSIX: creation with the flags every socket of the
 * library needs (non-blocking, close-on-exec), the closes, and address
 * formatting.  Socket creation is a fault-injection point.
 */
#include "sockutil.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fault.h"

int iocp__socket_stream(int family, iocp_socket_t *out)
{
    int rc = iocp__fault_check(IOCP_FAULT_SOCKET);
    if (rc < 0)
        return rc;
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return iocp__err_from_errno(errno);
    *out = fd;
    return 0;
}

int iocp__socket_dgram(int family, iocp_socket_t *out)
{
    int rc = iocp__fault_check(IOCP_FAULT_SOCKET);
    if (rc < 0)
        return rc;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return iocp__err_from_errno(errno);
    *out = fd;
    return 0;
}

void iocp__socket_dgram_connected(iocp_socket_t sock)
{
    (void)sock;
}

int iocp__socket_error(void)
{
    return iocp__err_from_errno(errno);
}

void iocp__socket_close(iocp_socket_t sock)
{
    /* Linux releases the descriptor even when close() reports EINTR, so it
     * must not be retried: the number may already belong to someone else. */
    close(sock);
}

void iocp__socket_abort(iocp_socket_t sock)
{
    /* A zero linger turns close() into a reset: the peer sees ECONNRESET
     * instead of an orderly EOF, and no TIME_WAIT is left behind. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(sock, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(sock);
}

int iocp__socket_shutdown_send(iocp_socket_t sock)
{
    return shutdown(sock, SHUT_WR) == 0 ? 0 : iocp__err_from_errno(errno);
}

void iocp__socket_nodelay(iocp_socket_t sock)
{
    int one = 1;
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void iocp__socket_listen_opts(iocp_socket_t sock)
{
    int one = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#if IOCP_ACCEPTED_HAS_NODELAY
    /* Inherited by every accepted TCP connection; a Unix-domain listener
     * refuses it, harmlessly. */
    setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
#endif
}

const char *iocp__addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || len == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

enum iocp_handle_kind iocp__handle_kind(iocp_socket_t fd)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return IOCP_HANDLE_PIPE;
    if (S_ISSOCK(st.st_mode))
        return IOCP_HANDLE_SOCKET;
    /* Regular files (and block devices) are always "ready": no readiness
     * API watches them, and a read returns at once. */
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
        return IOCP_HANDLE_FILE;
    return IOCP_HANDLE_PIPE;
}

void iocp__handle_close(iocp_socket_t fd)
{
    close(fd);
}
