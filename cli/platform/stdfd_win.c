/* SPDX-License-Identifier: MIT */
/*
 * stdfd.h on Windows.  The stream gets a duplicate of the standard handle:
 * the library serves it with overlapped I/O when the handle was opened for
 * it, and otherwise (a console, an anonymous pipe, a file: what standard
 * handles usually are) with a reader or writer thread, so nothing about
 * the handle's mode changes and there is nothing to restore.  A standard
 * handle that is missing or not open is an empty input or a discarded
 * output, as a closed descriptor is on POSIX (stdfd_reserve()).  Reads and
 * writes go to the handle itself, never through the C library's text
 * mode, so the bytes pass unchanged.  Once stdout's stream has closed, the
 * C library's fd 1 (which holds the original handle, the one
 * GetStdHandle returns) is pointed at NUL, which closes the original: the
 * program reading our stdout then sees EOF.
 */
#include "stdfd.h"

#include <fcntl.h>
#include <io.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

/*
 * Whether a standard handle stands for a stream.  Not when it is missing
 * (a parent that gave none) or not open, nor when it is a directory: Wine,
 * started with a descriptor closed, hands over a handle on a directory
 * there (a descriptor of its own took the number).  A directory is never a
 * standard stream otherwise (cmd.exe cannot redirect one), so it is taken
 * for the closed descriptor it stands for.
 */
static bool usable(HANDLE h)
{
    if (h == NULL || h == INVALID_HANDLE_VALUE)
        return false;
    SetLastError(NO_ERROR);
    DWORD type = GetFileType(h);
    if (type == FILE_TYPE_UNKNOWN)
        return GetLastError() == NO_ERROR;
    FILE_STANDARD_INFO info;
    return type != FILE_TYPE_DISK ||
           !GetFileInformationByHandleEx(h, FileStandardInfo, &info, sizeof info) ||
           !info.Directory;
}

void stdfd_reserve(void)
{
    /* Nothing to do: see stdfd.h.  stdfd_take() finds an invalid handle. */
}

int stdfd_take(int fd, struct stdfd *s, iocp_socket_t *handle)
{
    s->flags = 0;
    s->released = false;
    HANDLE h = GetStdHandle(fd == 0 ? STD_INPUT_HANDLE : STD_OUTPUT_HANDLE);
    if (!usable(h)) {
        s->flags = -1;
        return 1;
    }
    HANDLE self = GetCurrentProcess(), dup;
    if (!DuplicateHandle(self, h, self, &dup, 0, FALSE, DUPLICATE_SAME_ACCESS))
        return GetLastError() == ERROR_INVALID_HANDLE ? 1 : IOCP_EIO;
    *handle = (iocp_socket_t)dup;
    return 0;
}

void stdfd_close(iocp_socket_t handle)
{
    CloseHandle((HANDLE)handle);
}

void stdfd_restore(int fd, const struct stdfd *s)
{
    (void)fd;
    (void)s;
}

void stdfd_release_stdout(struct stdfd *s)
{
    int null = _open("NUL", _O_WRONLY | _O_BINARY);
    if (null >= 0) {
        _dup2(null, 1);
        _close(null);
        s->released = true;
    }
}

bool stdfd_isatty(int fd)
{
    return _isatty(fd) != 0;
}
