/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain addresses and listeners, common to every platform.
 *
 * A listener's socket file outlives a process that dies without removing
 * it, and bind() then fails with EADDRINUSE although nobody listens.  A
 * connect to it tells the two apart: refused means stale (the file is
 * removed and bind tried once more), accepted or queued means a live
 * server, which is never disturbed.  Something at the path that is not a
 * socket is never removed.  The mode is applied between bind() and
 * listen(): until listen() nobody can connect, so there is no moment when
 * the file is reachable with the umask's wider mode.
 */
#include "unixsock.h"

#include <stdio.h>
#include <string.h>

#include "core.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

bool iocp__unix_host(const char *host)
{
    return host && strncmp(host, IOCP_UNIX_PREFIX, IOCP_UNIX_PREFIX_LEN) == 0;
}

int iocp__unix_address(const char *host, struct sockaddr_un *sa, socklen_t *len)
{
    const char *path = host + IOCP_UNIX_PREFIX_LEN;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0) {
        iocp__set_error_detail("unix: needs a path after it, such as unix:/run/app.sock");
        return IOCP_EINVAL;
    }
    if (path[0] == '@') {
#ifdef __linux__
        /* An abstract name: a NUL first, the name after it, and the
         * length says where it ends (no NUL at the end). */
        if (n == 1) {
            iocp__set_error_detail("unix:@ needs a name after the @");
            return IOCP_EINVAL;
        }
        if (n > SUN_PATH_MAX) {
            iocp__set_error_detail("unix:@ a name of %zu bytes is too long (at most %zu)", n - 1,
                                   SUN_PATH_MAX - 1);
            return IOCP_ENAMETOOLONG;
        }
        memcpy(sa->sun_path + 1, path + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        return 0;
#else
        iocp__set_error_detail("%s: abstract names (@NAME) exist on Linux only", host);
        return IOCP_EAFNOSUPPORT;
#endif
    }
    if (n >= SUN_PATH_MAX) {
        iocp__set_error_detail("unix: a path of %zu bytes is too long for a Unix-domain socket "
                               "(at most %zu)",
                               n, SUN_PATH_MAX - 1);
        return IOCP_ENAMETOOLONG;
    }
    memcpy(sa->sun_path, path, n);
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
    return 0;
}

const char *iocp__unix_format(const struct sockaddr_un *sa, socklen_t len, char *buf, size_t n)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (!buf || n == 0)
        return buf;
    if ((size_t)len <= off || (sa->sun_path[0] == '\0' && (size_t)len <= off + 1)) {
        snprintf(buf, n, "unix:");
    } else if (sa->sun_path[0] == '\0') {
        int name = (int)((size_t)len - off - 1);
        snprintf(buf, n, "unix:@%.*s", name, sa->sun_path + 1);
    } else {
        snprintf(buf, n, "unix:%.*s", (int)strnlen(sa->sun_path, (size_t)len - off),
                 sa->sun_path);
    }
    return buf;
}

const char *iocp__unix_peer_name(iocp_socket_t sock, char *buf, size_t n)
{
    struct sockaddr_un sa;
    socklen_t len = sizeof sa;
    size_t off = offsetof(struct sockaddr_un, sun_path);
    memset(&sa, 0, sizeof sa);
    if (getpeername(sock, (struct sockaddr *)&sa, &len) != 0 || (size_t)len <= off ||
        (sa.sun_path[0] == '\0' && (size_t)len <= off + 1)) {
        len = sizeof sa;
        memset(&sa, 0, sizeof sa);
        if (getsockname(sock, (struct sockaddr *)&sa, &len) != 0)
            len = 0;
    }
    return iocp__unix_format(&sa, len, buf, n);
}

/* Is a server accepting at sa?  A connect answers: refused means no. */
static bool someone_listens(const struct sockaddr_un *sa, socklen_t len)
{
    iocp_socket_t probe;
    if (iocp__socket_stream(AF_UNIX, &probe) < 0)
        return true; /* cannot tell: leave the file alone */
    int rc = connect(probe, (const struct sockaddr *)sa, len) == 0 ? 0 : iocp__socket_error();
    iocp__socket_close(probe);
    return rc != IOCP_ECONNREFUSED && rc != IOCP_ENOENT;
}

static int bind_replacing_stale(iocp_socket_t sock, const char *host, const struct sockaddr_un *sa,
                                socklen_t len)
{
    if (bind(sock, (const struct sockaddr *)sa, len) == 0)
        return 0;
    int rc = iocp__socket_error();
    if (rc != IOCP_EADDRINUSE || sa->sun_path[0] == '\0') {
        iocp__set_error_detail("%s", host);
        return rc;
    }
    int kind = iocp__unix_file_kind(sa->sun_path);
    if (kind < 0) {
        iocp__set_error_detail("%s: something that is not a socket is there", host);
        return IOCP_EADDRINUSE;
    }
    if (kind > 0 && someone_listens(sa, len)) {
        iocp__set_error_detail("%s: a server is listening there", host);
        return IOCP_EADDRINUSE;
    }
    /* A socket file nobody serves: left by a process that ended without
     * removing it. */
    iocp__unix_file_remove(sa->sun_path);
    if (bind(sock, (const struct sockaddr *)sa, len) == 0)
        return 0;
    rc = iocp__socket_error();
    iocp__set_error_detail("%s", host);
    return rc;
}

int iocp__unix_listen(const char *host, unsigned mode, int backlog, iocp_socket_t *out,
                      struct iocp_unix_file *file)
{
    struct sockaddr_un sa;
    socklen_t len;
    memset(file, 0, sizeof *file);
    int rc = iocp__unix_address(host, &sa, &len);
    if (rc < 0)
        return rc;
    iocp_socket_t sock;
    rc = iocp__socket_stream(AF_UNIX, &sock);
    if (rc < 0) {
        if (rc == IOCP_EAFNOSUPPORT || rc == IOCP_EPROTONOSUPPORT) {
            iocp__set_error_detail("%s: this system has no Unix-domain sockets (Windows needs "
                                   "version 10 1803 or later)",
                                   host);
            rc = IOCP_EAFNOSUPPORT;
        } else {
            iocp__set_error_detail("%s", host);
        }
        return rc;
    }
    rc = bind_replacing_stale(sock, host, &sa, len);
    if (rc == 0 && sa.sun_path[0] != '\0') {
        snprintf(file->path, sizeof file->path, "%s", sa.sun_path);
        file->owned = true;
        if (mode) {
            rc = iocp__unix_file_mode(file->path, mode);
            if (rc < 0)
                iocp__set_error_detail("%s: cannot set mode %04o", host, mode);
        }
        /* After the mode: changing it changes the file's change time. */
        iocp__unix_file_identify(file);
    }
    if (rc == 0 && listen(sock, backlog > 0 ? backlog : SOMAXCONN) != 0) {
        rc = iocp__socket_error();
        iocp__set_error_detail("%s", host);
    }
    if (rc < 0) {
        iocp__socket_close(sock);
        iocp__unix_unlink(file);
        return rc;
    }
    *out = sock;
    return 0;
}

void iocp__unix_unlink(struct iocp_unix_file *file)
{
    if (!file->owned)
        return;
    file->owned = false;
    if (iocp__unix_file_same(file))
        iocp__unix_file_remove(file->path);
}
