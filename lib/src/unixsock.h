/* SPDX-License-Identifier: MIT */
/*
 * Stream Unix-domain sockets: what servers and clients need beyond TCP.
 *
 * A server or client is a Unix-domain one when its host is "unix:PATH"
 * ("unix:@NAME": a Linux abstract name, no file).  unix_addr.c turns that
 * text into a sockaddr_un and owns the listener's socket file (a stale one
 * replaced, a live one refused, the mode applied before listen(), the file
 * removed at stop if it is still ours); unix_posix.c and unix_win.c hold
 * what differs by platform (the file, the peer's credentials).
 */
#ifndef IOCP_UNIXSOCK_H
#define IOCP_UNIXSOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "port.h"

#ifdef _WIN32
#include <afunix.h>
#else
#include <sys/un.h>
#endif

#define IOCP_UNIX_PREFIX "unix:"
#define IOCP_UNIX_PREFIX_LEN 5

/* The socket file a listener made, to remove at stop (only if it is still
 * that file: another server may have replaced it meanwhile). */
struct iocp_unix_file {
    bool owned;          /* a file was made (not an abstract name) */
    /* Its identity, POSIX: an inode number may be reused at once by a
     * file made after ours was removed; its change time tells them apart. */
    uint64_t dev, ino, ctime_ns;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
};

/* True when host names a Unix-domain socket ("unix:..."). */
bool iocp__unix_host(const char *host);

/* The address of "unix:PATH" / "unix:@NAME" (host with its prefix).  0, or
 * IOCP_EINVAL / IOCP_ENAMETOOLONG / IOCP_EAFNOSUPPORT with a detail. */
int iocp__unix_address(const char *host, struct sockaddr_un *sa, socklen_t *len);

/* "unix:PATH" for an address, "unix:@NAME" for an abstract one, "unix:"
 * for an unnamed one.  Returns buf. */
const char *iocp__unix_format(const struct sockaddr_un *sa, socklen_t len, char *buf, size_t n);

/* The name of a connected Unix-domain socket's far end, as text: the
 * peer's address when it has one (a client's view: the server's path),
 * else its own (a server's view of an unnamed client: the path it
 * listens on). */
const char *iocp__unix_peer_name(iocp_socket_t sock, char *buf, size_t n);

/* Create, bind (replacing a stale socket file) and listen; mode applied to
 * the file before listen() when not 0.  0 with *out and *file set, or the
 * error with a detail line. */
int iocp__unix_listen(const char *host, unsigned mode, int backlog, iocp_socket_t *out,
                      struct iocp_unix_file *file);

/* Remove the listener's file if it is still the one it made. */
void iocp__unix_unlink(struct iocp_unix_file *file);

/* ---- per platform (unix_posix.c, unix_win.c) ---- */

/* What is at path: 1 a socket file, 0 nothing, -1 something else. */
int iocp__unix_file_kind(const char *path);
/* Remove a socket file (a stale one, or ours at stop). */
void iocp__unix_file_remove(const char *path);
/* Apply mode to the file just bound (POSIX chmod; Windows has ACLs
 * instead and ignores it).  0 or the error. */
int iocp__unix_file_mode(const char *path, unsigned mode);
/* Remember the file's identity in file (after bind). */
void iocp__unix_file_identify(struct iocp_unix_file *file);
/* True when file->path is still the file identified. */
bool iocp__unix_file_same(const struct iocp_unix_file *file);

#endif /* IOCP_UNIXSOCK_H */
