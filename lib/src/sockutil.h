/* SPDX-License-Identifier: MIT */
/*
 * Socket and handle helpers, one implementation per platform
 * (sockutil_posix.c, sockutil_win.c): creation with the flags every socket
 * of the library needs, the closes, options, errors, address formatting and
 * the kind of a handle.  The engine and the backends both use them; they
 * know nothing of either.
 */
#ifndef IOCP_SOCKUTIL_H
#define IOCP_SOCKUTIL_H

#include <stdbool.h>

#include "port.h"

/* Room for an IPv4 or IPv6 address, seen as either. */
union iocp_sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in4;
    struct sockaddr_in6 in6;
};

int iocp__socket_stream(int family, iocp_socket_t *out);
/* A datagram (UDP) socket.  Windows: with SIO_UDP_CONNRESET and
 * SIO_UDP_NETRESET off, so that an ICMP report does not fail the next
 * receive of a socket that serves many peers. */
int iocp__socket_dgram(int family, iocp_socket_t *out);
/* A datagram socket was connected to one peer: ICMP reports about that
 * peer are then wanted (Windows: SIO_UDP_CONNRESET back on; elsewhere the
 * system reports them to connected sockets anyway). */
void iocp__socket_dgram_connected(iocp_socket_t sock);
void iocp__socket_close(iocp_socket_t sock);
void iocp__socket_abort(iocp_socket_t sock);
int iocp__socket_shutdown_send(iocp_socket_t sock);
void iocp__socket_nodelay(iocp_socket_t sock);
/* Options a listening socket needs before bind().  POSIX: SO_REUSEADDR, so a
 * restart does not wait for old connections in TIME_WAIT.  Windows:
 * SO_EXCLUSIVEADDRUSE, since SO_REUSEADDR there lets another socket take
 * over a port in use.  Linux: TCP_NODELAY too (see below). */
void iocp__socket_listen_opts(iocp_socket_t sock);
/* Whether a socket accepted from a listener iocp__socket_listen_opts set
 * up already has TCP_NODELAY: Linux copies it from the listening socket to
 * every connection it accepts, which spares a setsockopt per connection. */
#ifdef __linux__
#define IOCP_ACCEPTED_HAS_NODELAY 1
#else
#define IOCP_ACCEPTED_HAS_NODELAY 0
#endif
/* The error of the last failed socket call on this thread, as IOCP_E*. */
int iocp__socket_error(void);
const char *iocp__addr_format(const struct sockaddr *sa, char *buf, size_t len);
/* What kind of handle a descriptor is: socket, pipe-like or regular file. */
enum iocp_handle_kind iocp__handle_kind(iocp_socket_t fd);
/* Close a non-socket handle. */
void iocp__handle_close(iocp_socket_t fd);

#endif /* IOCP_SOCKUTIL_H */
