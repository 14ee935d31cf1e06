/* SPDX-License-Identifier: MIT */
/*
 * keyfile.h on Windows.  There is no mode to set: a new file inherits the
 * access control list of its directory, which in the user's profile grants
 * the user, SYSTEM and Administrators only; that is the best available
 * without managing ACLs, and docs/PROTOCOL.md tells users to keep key files
 * there.  For the same reason reading checks no permissions.  _O_EXCL still
 * keeps keygen from writing into an existing file.
 */
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <string.h>
#include <sys/stat.h>

#include "diag.h"

int keyfile_write(const char *cmd, const char *path, const char *text, size_t len, bool force)
{
    if (force && _unlink(path) < 0 && errno != ENOENT) {
        diag_error("%s: %s: cannot replace it: %s", cmd, path, strerror(errno));
        return EXIT_RUNTIME;
    }
    int fd = _open(path, _O_WRONLY | _O_CREAT | _O_EXCL | _O_BINARY, _S_IREAD | _S_IWRITE);
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
        int n = _write(fd, text + off, (unsigned)(len - off));
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        off += (size_t)n;
    }
    if (!err && _commit(fd) < 0)
        err = errno;
    if (_close(fd) < 0 && !err)
        err = errno;
    if (err) {
        _unlink(path);
        diag_error("%s: %s: %s", cmd, path, strerror(err));
        return EXIT_RUNTIME;
    }
    return 0;
}

int keyfile_read(const char *cmd, const char *path, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    int fd = _open(path, _O_RDONLY | _O_BINARY);
    if (fd < 0) {
        diag_error("%s: %s: %s", cmd, path, strerror(errno));
        return EXIT_USAGE;
    }
    struct _stat64 st;
    int status = EXIT_USAGE;
    if (_fstat64(fd, &st) < 0 || !(st.st_mode & _S_IFREG)) {
        diag_error("%s: %s: not a regular file", cmd, path);
        goto out;
    }
    while (*len < cap - 1) {
        int n = _read(fd, buf + *len, (unsigned)(cap - 1 - *len));
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
    _close(fd);
    return status;
}
