/* SPDX-License-Identifier: MIT */
/*
 * What the stats endpoint needs from the system, and nothing more: socket
 * calls with one error convention, the wait for readiness, the wake-up
 * that stops the endpoint's thread, the thread itself, and the platform's
 * own part of opening an endpoint (the per-user directory and its
 * permissions, the socket file, on Windows the token file).  The request
 * state machine and the poll loop (stats_server.c) and the client side
 * (stats_client.c) are written once over it; stats_transport_posix.c and
 * stats_transport_win.c implement it.
 */
#ifndef IOCPTOOL_STATS_TRANSPORT_H
#define IOCPTOOL_STATS_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp.h"

#ifdef _WIN32
#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
typedef WSAPOLLFD stats_pollfd;
#define STATS_POLL_IN  POLLRDNORM
#define STATS_POLL_OUT POLLWRNORM
#else
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
typedef struct pollfd stats_pollfd;
#define STATS_POLL_IN  POLLIN
#define STATS_POLL_OUT POLLOUT
#endif

/* A token is 32 random bytes written as hex (Windows token endpoints). */
#define STATS_TOKEN_HEX 64

/* ---- sockets ---- */

/* What stats_sock_recv() and stats_sock_send() return besides a count. */
#define STATS_IO_AGAIN  (-1L) /* nothing now (would block, or interrupted) */
#define STATS_IO_FAILED (-2L) /* the connection is broken */

/* A new stream socket of family, close-on-exec, optionally non-blocking;
 * IOCP_INVALID_SOCKET on failure (stats_sock_error() says why). */
iocp_socket_t stats_sock_open(int family, bool nonblocking);
void stats_sock_close(iocp_socket_t fd);
long stats_sock_recv(iocp_socket_t fd, void *buf, size_t len);
long stats_sock_send(iocp_socket_t fd, const void *buf, size_t len);
void stats_sock_shutdown_write(iocp_socket_t fd);

/* What a listening TCP socket is given before bind: no other process may
 * take its port (SO_REUSEADDR on POSIX, SO_EXCLUSIVEADDRUSE on Windows). */
void stats_sock_listen_options(iocp_socket_t fd);

/* poll() or WSAPoll(): how many are ready, or < 0 on failure (a signal
 * that interrupted it included). */
int stats_sock_poll(stats_pollfd *pfd, unsigned n, int timeout_ms);

/* The last socket error (errno, or WSAGetLastError()), and the text of
 * such a code or of a getaddrinfo() result. */
int stats_sock_error(void);
const char *stats_error_text(int code, char *buf, size_t len);
const char *stats_gai_text(int code, char *buf, size_t len);

/* What one accept on the listening socket gave. */
enum stats_accept {
    STATS_ACCEPTED,     /* *fd is a new non-blocking client */
    STATS_ACCEPT_NONE,  /* nobody is waiting */
    STATS_ACCEPT_AGAIN, /* one was turned away or gave up: try the next */
    STATS_ACCEPT_STUCK, /* accepting fails (no descriptors, no memory):
                           pause it, or the listening socket stays ready */
};
enum stats_accept stats_transport_accept(iocp_socket_t lfd, iocp_socket_t *fd);

/* ---- the endpoint ---- */

/*
 * stats_transport_open(spec, token, err, errlen):
 * The listening socket (non-blocking) for spec: NULL for the default
 * per-user endpoint, a socket path, or "tcp:[HOST:]PORT"; with -v says
 * where.  *token is the token a client must send first (a token endpoint),
 * else NULL.  IOCP_INVALID_SOCKET with the reason in err.
 */
iocp_socket_t stats_transport_open(const char *spec, const char **token, char *err, size_t errlen);

/* Close the listening socket and remove the file(s) the open made. */
void stats_transport_close(iocp_socket_t lfd);

/* The process the endpoint belongs to (ours). */
long stats_transport_pid(void);

/* The wake-up: a socket or pipe end to poll, readable once fired. */
iocp_socket_t stats_wake_open(char *err, size_t errlen);
void stats_wake_fire(void);
void stats_wake_drain(void);
void stats_wake_close(void);

/* The endpoint's thread, running fn; the stop signals stay with the
 * caller's thread. */
int stats_thread_start(void (*fn)(void), char *err, size_t errlen);
void stats_thread_join(void);

uint64_t stats_now_ms(void);
void stats_pause_ms(unsigned ms);

/* ---- the client side ---- */

/*
 * stats_transport_locate(spec, host, hostlen, port, portlen, line, linelen,
 *                        err, errlen):
 * Whether spec (not a tcp: address) is a file that says where a TCP
 * endpoint is (a Windows token file): 1 with its host and port and the
 * line to send first ("TOKEN\n") in line; 0 when spec is a socket path;
 * -1 with the reason in err.
 */
int stats_transport_locate(const char *spec, char *host, size_t hostlen, char *port, size_t portlen,
                           char *line, size_t linelen, char *err, size_t errlen);

/* Whether a file name's end (after the PID) names a default endpoint
 * (".sock"; on Windows ".tcp" as well). */
bool stats_transport_endpoint_suffix(const char *end);

/* ---- shared by both sides (stats_net.c) ---- */

/* sa for the Unix-domain socket at path; false with the reason in err. */
bool stats_unix_address(struct sockaddr_un *sa, const char *path, char *err, size_t errlen);

/* A blocking socket connected to the Unix-domain socket at path, or
 * IOCP_INVALID_SOCKET with the reason in err. */
iocp_socket_t stats_unix_connect(const char *path, char *err, size_t errlen);

/* A blocking socket connected to host:port (name, what the user wrote, in
 * messages), or IOCP_INVALID_SOCKET with the reason in err. */
iocp_socket_t stats_tcp_connect(const char *name, const char *host, const char *port, char *err,
                                size_t errlen);

/* A non-blocking socket listening on host:port, and the address it got
 * into addr/portnum; IOCP_INVALID_SOCKET with the reason in err. */
iocp_socket_t stats_tcp_listen(const char *name, const char *host, const char *port, char *addr,
                               size_t addrlen, unsigned *portnum, char *err, size_t errlen);

/* Zero a secret so that the compiler keeps the stores. */
void stats_wipe(void *p, size_t len);

#endif /* IOCPTOOL_STATS_TRANSPORT_H */
