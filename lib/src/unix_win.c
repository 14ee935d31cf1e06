/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain sockets on Windows (10 1803 and later): the socket file is a
 * reparse point that bind() creates and nobody removes, so a stale one is
 * known by its attribute and deleted like a file.  Access is the file's
 * ACL, inherited from its directory: a POSIX mode has no meaning here and
 * is ignored.  Of the peer's credentials Windows tells the process ID
 * (SIO_AF_UNIX_GETPEERPID); user and group stay unknown (-1).
 */
#include "unixsock.h"

#include <string.h>

#include "core.h"

int iocp__unix_file_kind(const char *path)
{
    DWORD attr = GetFileAttributesA(path);
    if (attr == INVALID_FILE_ATTRIBUTES)
        return 0;
    return (attr & FILE_ATTRIBUTE_REPARSE_POINT) && !(attr & FILE_ATTRIBUTE_DIRECTORY) ? 1 : -1;
}

void iocp__unix_file_remove(const char *path)
{
    DeleteFileA(path);
}

int iocp__unix_file_mode(const char *path, unsigned mode)
{
    (void)path;
    (void)mode;
    return 0;
}

void iocp__unix_file_identify(struct iocp_unix_file *file)
{
    file->dev = file->ino = file->ctime_ns = 0;
}

bool iocp__unix_file_same(const struct iocp_unix_file *file)
{
    return iocp__unix_file_kind(file->path) > 0;
}

int iocp_conn_peer_cred(const struct iocp_conn *c, struct iocp_peer_cred *out)
{
    if (!c || !out)
        return IOCP_EINVAL;
    out->pid = out->uid = out->gid = -1;
    if (c->peer.sa.sa_family != AF_UNIX)
        return IOCP_ENOTSUP;
    ULONG pid = 0;
    DWORD got = 0;
    if (WSAIoctl((SOCKET)c->h.sock, SIO_AF_UNIX_GETPEERPID, NULL, 0, &pid, sizeof pid, &got, NULL,
                 NULL) != 0)
        return iocp__socket_error();
    out->pid = (int64_t)pid;
    return 0;
}
