/* SPDX-License-Identifier: MIT */
/*
 * Windows error conversion: WSA and Win32 codes, and the C runtime's errno
 * values (whose numbers are not Linux's), become IOCP_E* codes here, once,
 * so that the layers above compare against one set of numbers on every
 * platform.
 */
#include <errno.h>

#include <winsock2.h>
#include <windows.h>

#include "internal.h"

int iocp__err_from_errno(int e)
{
    switch (e) {
#define IOCP_ERR_FROM_(name, value)                                                                \
    case name:                                                                                     \
        return value;
        IOCP_ERR_FROM_(EPERM, IOCP_EPERM)
        IOCP_ERR_FROM_(ENOENT, IOCP_ENOENT)
        IOCP_ERR_FROM_(EINTR, IOCP_EINTR)
        IOCP_ERR_FROM_(EBADF, IOCP_EBADF)
        IOCP_ERR_FROM_(EAGAIN, IOCP_EAGAIN)
        IOCP_ERR_FROM_(ENOMEM, IOCP_ENOMEM)
        IOCP_ERR_FROM_(EACCES, IOCP_EACCES)
        IOCP_ERR_FROM_(EBUSY, IOCP_EBUSY)
        IOCP_ERR_FROM_(EEXIST, IOCP_EEXIST)
        IOCP_ERR_FROM_(EINVAL, IOCP_EINVAL)
        IOCP_ERR_FROM_(ENFILE, IOCP_ENFILE)
        IOCP_ERR_FROM_(EMFILE, IOCP_EMFILE)
        IOCP_ERR_FROM_(ENOSPC, IOCP_ENOSPC)
        IOCP_ERR_FROM_(EPIPE, IOCP_EPIPE)
        IOCP_ERR_FROM_(ERANGE, IOCP_ERANGE)
        IOCP_ERR_FROM_(ENAMETOOLONG, IOCP_ENAMETOOLONG)
        IOCP_ERR_FROM_(ENOSYS, IOCP_ENOSYS)
#undef IOCP_ERR_FROM_
    default:
        return IOCP_EIO;
    }
}

int iocp__err_from_win32(unsigned long code)
{
    switch (code) {
    case 0:
        return 0;
    case WSAEINTR:
        return IOCP_EINTR;
    case WSAEBADF:
    case WSAENOTSOCK:
    case ERROR_INVALID_HANDLE:
        return IOCP_EBADF;
    case WSAEACCES:
    case ERROR_ACCESS_DENIED:
        return IOCP_EACCES;
    case WSAEFAULT:
    case WSAEINVAL:
    case ERROR_INVALID_PARAMETER:
        return IOCP_EINVAL;
    case WSAEMFILE:
    case ERROR_TOO_MANY_OPEN_FILES:
        return IOCP_EMFILE;
    case WSAEWOULDBLOCK:
    case ERROR_IO_PENDING:
        return IOCP_EAGAIN;
    case WSAEINPROGRESS:
        return IOCP_EINPROGRESS;
    case WSAEALREADY:
        return IOCP_EALREADY;
    case WSAEMSGSIZE:
        return IOCP_EMSGSIZE;
    case WSAEPROTONOSUPPORT:
        return IOCP_EPROTONOSUPPORT;
    case WSAEOPNOTSUPP:
    case ERROR_NOT_SUPPORTED:
        return IOCP_ENOTSUP;
    case WSAEAFNOSUPPORT:
    case WSAEPFNOSUPPORT:
        return IOCP_EAFNOSUPPORT;
    case WSAEADDRINUSE:
        return IOCP_EADDRINUSE;
    case WSAEADDRNOTAVAIL:
        return IOCP_EADDRNOTAVAIL;
    case WSAENETDOWN:
        return IOCP_ENETDOWN;
    case WSAENETUNREACH:
    case ERROR_NETWORK_UNREACHABLE:
        return IOCP_ENETUNREACH;
    case WSAECONNABORTED:
    case ERROR_CONNECTION_ABORTED:
    case ERROR_NETNAME_DELETED:
        return IOCP_ECONNABORTED;
    case WSAECONNRESET:
        return IOCP_ECONNRESET;
    case WSAENOBUFS:
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return IOCP_ENOBUFS;
    case WSAEISCONN:
        return IOCP_EISCONN;
    case WSAENOTCONN:
        return IOCP_ENOTCONN;
    case WSAESHUTDOWN:
        return IOCP_ESHUTDOWN;
    case WSAETIMEDOUT:
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:
        return IOCP_ETIMEDOUT;
    case WSAECONNREFUSED:
    case ERROR_CONNECTION_REFUSED:
        return IOCP_ECONNREFUSED;
    case WSAEHOSTUNREACH:
    case ERROR_HOST_UNREACHABLE:
        return IOCP_EHOSTUNREACH;
    case WSAHOST_NOT_FOUND:
    case WSANO_DATA:
        return IOCP_ENONAME;
    case WSATRY_AGAIN:
        return IOCP_EAITEMP;
    case ERROR_OPERATION_ABORTED:
        return IOCP_ECANCELED;
    case ERROR_BROKEN_PIPE:
    case ERROR_NO_DATA:
    case ERROR_PIPE_NOT_CONNECTED:
        return IOCP_EPIPE;
    case ERROR_HANDLE_EOF:
        return IOCP_EOF;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
        return IOCP_ENOENT;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:
        return IOCP_EEXIST;
    default:
        return IOCP_EIO;
    }
}
