/* SPDX-License-Identifier: MIT */
/*
 * keyfile.h on POSIX: create a key file private to its owner from the
 * first moment (O_CREAT | O_EXCL with mode 0600: there is no window in
 * which another user could open it, and an existing file or symbolic link
 * is never written through), and refuse to read one that others could
 * read, as ssh refuses an unprotected private key.
 */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "diag.h"

int keyfile_write(const char *cmd, const char *path, const char *text, size_t len, bool force)
{
    if (force && unlink(path) < 0 && errno != ENOENT) {
        diag_error("%s: %s: cannot replace it: %s", cmd, path, strerror(errno));
        return EXIT_RUNTIME;
    }
    /* O_EXCL also fails on a symbolic link, dangling or not, so the key
     * never lands wherever a link planted at path points. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int err = errno;
        if (err == EEXIST) {
            diag_error("%s: %s: already exists (--force replaces it)", cmd, path);
            return EXIT_USAGE;
        }
        diag_error("%s: %s: %s", cmd, path, strerror(err));
        return EXIT_RUNTIME;
    }
    size_t off = 0;
    int err = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    /* A key that is lost in a crash right after keygen said it was written
     * would be a nasty surprise on the other machine: sync it. */
    if (!err && fsync(fd) < 0)
        err = errno;
    if (close(fd) < 0 && !err)
        err = errno;
    if (err) {
        unlink(path);
        diag_error("%s: %s: %s", cmd, path, strerror(err));
        return EXIT_RUNTIME;
    }
    return 0;
}

int keyfile_read(const char *cmd, const char *path, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    /* O_NONBLOCK: a FIFO at path must not hang the open; it is refused
     * below as not a regular file. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        diag_error("%s: %s: %s", cmd, path, strerror(errno));
        return EXIT_USAGE;
    }
    struct stat st;
    int status = EXIT_USAGE;
    if (fstat(fd, &st) < 0) {
        diag_error("%s: %s: %s", cmd, path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        diag_error("%s: %s: not a regular file", cmd, path);
        goto out;
    }
    if (st.st_uid != geteuid() && st.st_uid != 0) {
        diag_error("%s: %s: key file owned by another user (uid %u)", cmd, path,
                   (unsigned)st.st_uid);
        goto out;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        diag_error("%s: %s: key file is accessible by group or others (mode %04o); "
                   "run: chmod 600 %s",
                   cmd, path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    while (*len < cap - 1) {
        ssize_t n = read(fd, buf + *len, cap - 1 - *len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            diag_error("%s: %s: %s", cmd, path, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        *len += (size_t)n;
    }
    if (*len == cap - 1) {
        diag_error("%s: %s: too large to be a key file", cmd, path);
        goto out;
    }
    status = 0;
out:
    close(fd);
    return status;
}
