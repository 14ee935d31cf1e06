/* SPDX-License-Identifier: MIT */
/*
 * stdfd.h on POSIX.  The epoll backend makes the descriptors it serves
 * non-blocking, and O_NONBLOCK belongs to the open file description, which
 * fds 0 and 1 may share with the shell.  So the streams get duplicates of
 * fds 0 and 1, the original flags are put back when a stream closes and
 * again at the end, and fd 1 is then pointed at /dev/null, so that the
 * program reading our stdout sees EOF when the stream closes.
 */
#include "stdfd.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

void stdfd_reserve(void)
{
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        /* The lowest free descriptor: fd itself, as the lower ones are open. */
        int null = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (null >= 0 && null != fd) {
            dup2(null, fd);
            close(null);
        }
    }
}

int stdfd_take(int fd, struct stdfd *s, iocp_socket_t *handle)
{
    s->released = false;
    s->flags = fcntl(fd, F_GETFL);
    if (s->flags < 0)
        return 1;
    /* `< dir` opens a directory, which every read refuses with EISDIR:
     * said now, rather than once a peer has connected. */
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
        return -EISDIR;
    int dup = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (dup < 0)
        return -(int)errno;
    *handle = dup;
    return 0;
}

void stdfd_close(iocp_socket_t handle)
{
    close(handle);
}

void stdfd_restore(int fd, const struct stdfd *s)
{
    if (s->flags >= 0 && !s->released)
        fcntl(fd, F_SETFL, s->flags);
}

void stdfd_release_stdout(struct stdfd *s)
{
    /* Our duplicate is closed; fd 1 is the last reference we hold. */
    stdfd_restore(1, s);
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (null >= 0) {
        dup2(null, 1);
        close(null);
        s->released = true;
    }
}

bool stdfd_isatty(int fd)
{
    return isatty(fd) == 1;
}
