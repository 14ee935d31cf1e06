/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain sockets on POSIX: the listener's socket file (its kind, mode,
 * identity and removal) and the peer's credentials (SO_PEERCRED on Linux:
 * what the kernel recorded when the peer connected or listened).
 */
#include "unixsock.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core.h"

int iocp__unix_file_kind(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return 0;
    return S_ISSOCK(st.st_mode) ? 1 : -1;
}

void iocp__unix_file_remove(const char *path)
{
    unlink(path);
}

int iocp__unix_file_mode(const char *path, unsigned mode)
{
    return chmod(path, (mode_t)(mode & 07777)) == 0 ? 0 : iocp__err_from_errno(errno);
}

static uint64_t ctime_ns(const struct stat *st)
{
    return (uint64_t)st->st_ctim.tv_sec * 1000000000u + (uint64_t)st->st_ctim.tv_nsec;
}

void iocp__unix_file_identify(struct iocp_unix_file *file)
{
    struct stat st;
    if (lstat(file->path, &st) == 0) {
        file->dev = (uint64_t)st.st_dev;
        file->ino = (uint64_t)st.st_ino;
        file->ctime_ns = ctime_ns(&st);
    }
}

bool iocp__unix_file_same(const struct iocp_unix_file *file)
{
    struct stat st;
    return lstat(file->path, &st) == 0 && S_ISSOCK(st.st_mode) &&
           (uint64_t)st.st_dev == file->dev && (uint64_t)st.st_ino == file->ino &&
           ctime_ns(&st) == file->ctime_ns;
}

int iocp_conn_peer_cred(const struct iocp_conn *c, struct iocp_peer_cred *out)
{
    if (!c || !out)
        return IOCP_EINVAL;
    out->pid = out->uid = out->gid = -1;
    if (c->peer.sa.sa_family != AF_UNIX)
        return IOCP_ENOTSUP;
#ifdef SO_PEERCRED
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(c->h.sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        return iocp__err_from_errno(errno);
    out->pid = cred.pid;
    out->uid = cred.uid;
    out->gid = cred.gid;
    return 0;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(c->h.sock, &uid, &gid) != 0)
        return iocp__err_from_errno(errno);
    out->uid = uid;
    out->gid = gid;
    return 0;
#endif
}
