/* SPDX-License-Identifier: MIT */
/*
 * TCP servers: a listening socket served by every worker of an engine.
 *
 * Each worker keeps a pool of pending accepts between a low and a high
 * watermark (io_uring, IOCP); on epoll one armed multishot accept serves
 * each worker instead, and the watermarks do not apply.  A failed accept
 * completion is recycled; running out
 * of descriptors or buffers (EMFILE, ENFILE, ENOBUFS) pauses accepting on a
 * timer and resumes: the listener never dies of one error.  Accepted
 * connections go into the engine's registry and get the server's handler.
 */
#ifndef IOCP_SERVER_H
#define IOCP_SERVER_H

#include "conn.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_server;
struct iocp_engine;

/* Which stacks a server listens on when no address is given. */
enum iocp_family { IOCP_FAMILY_ANY = 0, IOCP_FAMILY_IPV4 = 4, IOCP_FAMILY_IPV6 = 6 };

struct iocp_server_config {
    /* Address to listen on: a numeric IPv4 or IPv6 address or a host name;
     * NULL listens on every address of the stacks `family` allows (both by
     * default, through one dual-stack socket where the system has IPv6).
     * "unix:PATH" listens on a Unix-domain stream socket at PATH instead
     * (port and family are then ignored), "unix:@NAME" on a Linux abstract
     * name (no file).  A stale socket file at PATH, left by a process that
     * died, is replaced; one a live server listens on is IOCP_EADDRINUSE,
     * and so is anything at PATH that is not a socket (never removed).  The
     * file is removed at stop, if it is still the one this server made.
     * Where the system has no AF_UNIX (Wine, Windows before 10 1803):
     * IOCP_EAFNOSUPPORT, with iocp_error_detail() saying so. */
    const char *host;
    uint16_t port; /* 0: a free port, see iocp_server_port() */
    int family;    /* enum iocp_family */
    const struct iocp_conn_handler *handler;
    void *data;    /* every accepted connection starts with this user data */
    /* Refuse a new connection (before any callback) when this returns false.
     * Runs on the accepting worker.  Optional. */
    bool (*filter)(const struct sockaddr *peer, void *data);
    /* Most connections of this server at once; 0: no limit but the engine's.
     * Connections beyond it are closed at once (the peer sees EOF). */
    uint32_t max_conns;
    /* Pending accepts per worker: refill below low, up to high.  0: defaults. */
    unsigned accept_low, accept_high;
    int backlog;              /* listen() backlog; 0: the system's maximum */
    unsigned idle_timeout_ms; /* 0: none */
    size_t send_low, send_high; /* send queue watermarks; 0: 64 KiB / 256 KiB */
    /* Fields added later go here, at the end (older programs pass a
     * smaller struct and get zeros for them). */
    /* "unix:PATH": the socket file's permission bits (0660: owner and group
     * may connect), set before the socket listens; 0: what the umask
     * gives.  POSIX only: on Windows the file takes its directory's ACL. */
    unsigned unix_mode;
    /* Linux: SO_REUSEPORT on the listening sockets, so that another process
     * (a new version taking over) can listen on the same port while this one
     * still runs.  Elsewhere iocp_server_start() fails with IOCP_ENOSYS. */
    bool reuse_port;
};

/*
 * iocp_server_new(out, e, cfg):
 * Create a server on a (started or not) engine.  IOCP_EINVAL when a
 * required callback is missing (iocp_error_detail() names it).
 */
#define iocp_server_new(out, e, cfg) \
    iocp_server_new_sized((out), (e), (cfg), sizeof(struct iocp_server_config))
IOCP_EXTERN int iocp_server_new_sized(struct iocp_server **out, struct iocp_engine *e,
                                      const struct iocp_server_config *cfg, size_t cfg_size);

/*
 * iocp_server_start(s):
 * Resolve, bind and listen, then start accepting on every worker.  The
 * engine must be running.  0, or the bind/listen error (IOCP_EADDRINUSE...),
 * or IOCP_ESTATE.
 */
IOCP_EXTERN int iocp_server_start(struct iocp_server *s);

/*
 * iocp_server_stop(s):
 * Stop accepting and close the listening socket.  Connections already
 * accepted stay open.  Returns once no worker uses the listener any more
 * (from a callback it only requests the stop).
 */
IOCP_EXTERN int iocp_server_stop(struct iocp_server *s);

/* Free a server, stopping it first if it runs.  Connections it accepted
 * stay open and keep their callbacks; what they need of the server goes
 * with the last of them.  NULL does nothing. */
IOCP_EXTERN void iocp_server_free(struct iocp_server *s);

/* The bound port (useful after asking for port 0) and address as text. */
IOCP_EXTERN uint16_t iocp_server_port(const struct iocp_server *s);
IOCP_EXTERN const char *iocp_server_address(const struct iocp_server *s, char *buf, size_t len);

/* The operating system's handle of listening socket i (a server that
 * listens on both stacks through two sockets has two), for options the
 * library does not set; IOCP_INVALID_SOCKET when there is no such socket
 * (not started, stopped).  The server still owns and closes it. */
IOCP_EXTERN iocp_socket_t iocp_server_socket(const struct iocp_server *s, unsigned i);

/* Connections of this server online now. */
IOCP_EXTERN uint32_t iocp_server_conns(const struct iocp_server *s);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_SERVER_H */
