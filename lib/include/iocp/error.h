/* SPDX-License-Identifier: MIT */
/*
 * Error codes.  Every fallible libiocp function returns an int: zero or a
 * count on success, a negative IOCP_E* code on failure.
 *
 * The numbers are Linux's errno values, negated, on every platform: on Linux
 * IOCP_EFOO == -EFOO, so an OS error converts for free, and on Windows the
 * same fixed numbers are produced by converting WSA and Win32 errors once, at
 * the lowest layer.  Codes that have no errno counterpart live below -4000.
 */
#ifndef IOCP_ERROR_H
#define IOCP_ERROR_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, message): codes that mirror an errno value... */
#define IOCP_ERRNO_MAP_SYS(X)                                                                      \
    X(EPERM, -1, "operation not permitted")                                                        \
    X(ENOENT, -2, "no such file or directory")                                                     \
    X(EINTR, -4, "interrupted system call")                                                        \
    X(EIO, -5, "i/o error")                                                                        \
    X(EBADF, -9, "bad file descriptor")                                                            \
    X(EAGAIN, -11, "resource temporarily unavailable")                                             \
    X(ENOMEM, -12, "not enough memory")                                                            \
    X(EACCES, -13, "permission denied")                                                            \
    X(EBUSY, -16, "resource busy or locked")                                                       \
    X(EEXIST, -17, "file already exists")                                                          \
    X(EINVAL, -22, "invalid argument")                                                             \
    X(ENFILE, -23, "file table overflow")                                                          \
    X(EMFILE, -24, "too many open files")                                                          \
    X(ENOSPC, -28, "no space left on device")                                                      \
    X(EPIPE, -32, "broken pipe")                                                                   \
    X(ERANGE, -34, "result too large")                                                             \
    X(ENAMETOOLONG, -36, "name too long")                                                          \
    X(ENOSYS, -38, "function not implemented")                                                     \
    X(ENOTSOCK, -88, "socket operation on non-socket")                                             \
    X(EMSGSIZE, -90, "message too long")                                                           \
    X(EPROTO, -71, "protocol error")                                                               \
    X(EPROTONOSUPPORT, -93, "protocol not supported")                                              \
    X(ENOTSUP, -95, "operation not supported")                                                     \
    X(EAFNOSUPPORT, -97, "address family not supported")                                          \
    X(EADDRINUSE, -98, "address already in use")                                                   \
    X(EADDRNOTAVAIL, -99, "address not available")                                                 \
    X(ENETDOWN, -100, "network is down")                                                           \
    X(ENETUNREACH, -101, "network is unreachable")                                                 \
    X(ECONNABORTED, -103, "connection aborted")                                                    \
    X(ECONNRESET, -104, "connection reset by peer")                                                \
    X(ENOBUFS, -105, "no buffer space available")                                                  \
    X(EISCONN, -106, "socket is already connected")                                                \
    X(ENOTCONN, -107, "socket is not connected")                                                   \
    X(ESHUTDOWN, -108, "cannot send after socket shutdown")                                        \
    X(ETIMEDOUT, -110, "connection timed out")                                                     \
    X(ECONNREFUSED, -111, "connection refused")                                                    \
    X(EHOSTUNREACH, -113, "host is unreachable")                                                   \
    X(EALREADY, -114, "operation already in progress")                                             \
    X(EINPROGRESS, -115, "operation in progress")                                                  \
    X(ESTALE, -116, "stale connection identifier")                                                 \
    X(ECANCELED, -125, "operation canceled")

/* ...and codes of libiocp's own. */
#define IOCP_ERRNO_MAP_OWN(X)                                                                      \
    X(EOF, -4095, "end of file")                                                                   \
    X(ENONAME, -4094, "unknown host or service")                                                   \
    X(EAINOADDR, -4093, "host has no address of the requested family")                            \
    X(EAITEMP, -4092, "temporary failure in name resolution")                                      \
    X(ESTATE, -4091, "object is in the wrong state for this call")                                 \
    X(EAUTH, -4090, "authentication failed")

#define IOCP_ERRNO_MAP(X) IOCP_ERRNO_MAP_SYS(X) IOCP_ERRNO_MAP_OWN(X)

enum iocp_errno {
#define IOCP_ERR_ENUM_(name, value, msg) IOCP_##name = (value),
    IOCP_ERRNO_MAP(IOCP_ERR_ENUM_)
#undef IOCP_ERR_ENUM_
};

/*
 * iocp_strerror(err):
 * A human-readable description of err, a negative IOCP_E* code (a positive
 * value is taken as its negation).  Never returns NULL: an unknown code gives
 * "unknown error".  The string is static.
 */
IOCP_EXTERN const char *iocp_strerror(int err);

/*
 * iocp_err_name(err):
 * The symbolic name of err ("EINVAL" for IOCP_EINVAL), or "UNKNOWN".
 */
IOCP_EXTERN const char *iocp_err_name(int err);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_ERROR_H */
