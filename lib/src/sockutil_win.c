/* SPDX-License-Identifier: MIT */
/*
 * Socket helpers on Windows: Winsock start-up, socket creation with the
 * flags every socket of the library needs (overlapped, not inherited by
 * child processes), the closes, address formatting, the kind of a handle,
 * and the Winsock extension functions.
 *
 * The extension functions are not exported by ws2_32: each provider hands
 * them out through WSAIoctl(SIO_GET_EXTENSION_FUNCTION_POINTER) on one of
 * its sockets.  DIOCP's loadExFunctions created a socket for that and never
 * closed it (seed 3).  Here they are loaded through the socket that is about
 * to use them, the listener or the connecting socket, so there is no
 * temporary socket at all, and they are cached per address family (the
 * provider is chosen by family, and one process may serve IPv4 and IPv6).
 */
#include "sockutil.h"
#include "sockutil_win.h"

#include <stdio.h>
#include <string.h>

#include "fault.h"
#include "sockpool.h"

/* ---- start-up ---- */

static INIT_ONCE winsock_once = INIT_ONCE_STATIC_INIT;
static int winsock_status;

static BOOL CALLBACK winsock_start(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    WSADATA wsa;
    int rc = WSAStartup(MAKEWORD(2, 2), &wsa);
    winsock_status = rc ? iocp__err_from_win32((unsigned long)rc) : 0;
    return TRUE;
}

int iocp__winsock_init(void)
{
    InitOnceExecuteOnce(&winsock_once, winsock_start, NULL, NULL);
    return winsock_status;
}

bool iocp__running_on_wine(void)
{
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}

/* ---- extension functions ---- */

struct wsx_slot {
    bool loaded;
    struct iocp_wsx fn;
};

static SRWLOCK wsx_lock = SRWLOCK_INIT;
static struct wsx_slot wsx_slots[3]; /* AF_INET, AF_INET6, AF_UNIX */

static int load_one(SOCKET sock, GUID guid, void *fn, size_t size)
{
    DWORD bytes = 0;
    if (WSAIoctl(sock, SIO_GET_EXTENSION_FUNCTION_POINTER, &guid, sizeof guid, fn, (DWORD)size,
                 &bytes, NULL, NULL) != 0)
        return iocp__err_from_win32((unsigned long)WSAGetLastError());
    return 0;
}

int iocp__wsx_get(iocp_socket_t sock, int family, const struct iocp_wsx **out)
{
    if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
        return IOCP_EAFNOSUPPORT;
    struct wsx_slot *slot = &wsx_slots[family == AF_INET6 ? 1 : family == AF_UNIX ? 2 : 0];
    AcquireSRWLockShared(&wsx_lock);
    bool loaded = slot->loaded;
    ReleaseSRWLockShared(&wsx_lock);
    if (loaded) {
        *out = &slot->fn;
        return 0;
    }

    /* Load into a local copy and publish it whole: a partial set is never
     * cached, and another thread never sees one. */
    struct iocp_wsx fn;
    memset(&fn, 0, sizeof fn);
    GUID accept_guid = WSAID_ACCEPTEX, addrs_guid = WSAID_GETACCEPTEXSOCKADDRS;
    GUID connect_guid = WSAID_CONNECTEX, disconnect_guid = WSAID_DISCONNECTEX;
    int rc = load_one((SOCKET)sock, accept_guid, &fn.accept_ex, sizeof fn.accept_ex);
    if (rc == 0)
        rc = load_one((SOCKET)sock, addrs_guid, &fn.get_accept_ex_sockaddrs,
                      sizeof fn.get_accept_ex_sockaddrs);
    if (rc == 0)
        rc = load_one((SOCKET)sock, connect_guid, &fn.connect_ex, sizeof fn.connect_ex);
    /* AF_UNIX sockets are never recycled (port_iocp.c): DisconnectEx is
     * not needed for them, whether their provider has it or not. */
    if (rc == 0 && family != AF_UNIX)
        rc = load_one((SOCKET)sock, disconnect_guid, &fn.disconnect_ex, sizeof fn.disconnect_ex);
    if (rc < 0)
        return rc;
    AcquireSRWLockExclusive(&wsx_lock);
    if (!slot->loaded) {
        slot->fn = fn;
        slot->loaded = true;
    }
    ReleaseSRWLockExclusive(&wsx_lock);
    *out = &slot->fn;
    return 0;
}

void iocp__wsx_reset(void)
{
    AcquireSRWLockExclusive(&wsx_lock);
    memset(wsx_slots, 0, sizeof wsx_slots);
    ReleaseSRWLockExclusive(&wsx_lock);
}

/* ---- sockets ---- */

int iocp__socket_stream(int family, iocp_socket_t *out)
{
    int rc = iocp__fault_check(IOCP_FAULT_SOCKET);
    if (rc < 0)
        return rc;
    rc = iocp__winsock_init();
    if (rc < 0)
        return rc;
    /* Overlapped, so that the port can drive it; not inherited, so that a
     * child process cannot keep a connection open behind our back. */
    SOCKET s = WSASocketW(family, SOCK_STREAM, family == AF_UNIX ? 0 : IPPROTO_TCP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return iocp__err_from_win32((unsigned long)WSAGetLastError());
    *out = (iocp_socket_t)s;
    return 0;
}

#ifndef SIO_UDP_CONNRESET
#define SIO_UDP_CONNRESET _WSAIOW(IOC_VENDOR, 12)
#endif
#ifndef SIO_UDP_NETRESET
#define SIO_UDP_NETRESET _WSAIOW(IOC_VENDOR, 15)
#endif

int iocp__socket_dgram(int family, iocp_socket_t *out)
{
    int rc = iocp__fault_check(IOCP_FAULT_SOCKET);
    if (rc < 0)
        return rc;
    rc = iocp__winsock_init();
    if (rc < 0)
        return rc;
    SOCKET s = WSASocketW(family, SOCK_DGRAM, IPPROTO_UDP, NULL, 0,
                          WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
    if (s == INVALID_SOCKET)
        return iocp__err_from_win32((unsigned long)WSAGetLastError());
    /* Without this, an ICMP port unreachable for any peer fails the next
     * WSARecvFrom with WSAECONNRESET (and a TTL expiry with WSAENETRESET):
     * a server would see its own receive fail for someone else's packet.
     * Failure is not fatal (Wine may not know the codes): the receive path
     * treats both errors as reports anyway. */
    BOOL off = FALSE;
    DWORD got = 0;
    WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof off, NULL, 0, &got, NULL, NULL);
    WSAIoctl(s, SIO_UDP_NETRESET, &off, sizeof off, NULL, 0, &got, NULL, NULL);
    *out = (iocp_socket_t)s;
    return 0;
}

void iocp__socket_dgram_connected(iocp_socket_t sock)
{
    /* Reports about the one peer are what a connected socket is for
     * (connect -z -u, a relay's upstream): WSAECONNRESET, an on_error. */
    BOOL on = TRUE;
    DWORD got = 0;
    WSAIoctl((SOCKET)sock, SIO_UDP_CONNRESET, &on, sizeof on, NULL, 0, &got, NULL, NULL);
}

int iocp__socket_error(void)
{
    return iocp__err_from_win32((unsigned long)WSAGetLastError());
}

void iocp__socket_close(iocp_socket_t sock)
{
    /* A reused socket lent to an accept and refused before it was bound:
     * its pool must not take the number for itself once it is reused. */
    iocp__sockpool_forget_everywhere(sock);
    /* closesocket() also cancels whatever is still pending on the socket and
     * ends its association with the completion port. */
    closesocket((SOCKET)sock);
}

void iocp__socket_abort(iocp_socket_t sock)
{
    /* A zero linger turns closesocket() into a reset (RST): the peer sees
     * WSAECONNRESET / ECONNRESET instead of an orderly end. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt((SOCKET)sock, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    iocp__sockpool_forget_everywhere(sock);
    closesocket((SOCKET)sock);
}

int iocp__socket_shutdown_send(iocp_socket_t sock)
{
    if (shutdown((SOCKET)sock, SD_SEND) == 0)
        return 0;
    return iocp__socket_error();
}

void iocp__socket_nodelay(iocp_socket_t sock)
{
    BOOL one = TRUE;
    setsockopt((SOCKET)sock, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
}

void iocp__socket_listen_opts(iocp_socket_t sock)
{
    BOOL one = TRUE;
    setsockopt((SOCKET)sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
}

const char *iocp__addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (!buf || len == 0)
        return buf;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (!inet_ntop(AF_INET, &in->sin_addr, host, sizeof host))
            snprintf(host, sizeof host, "?");
        snprintf(buf, len, "%s:%u", host, ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (!inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host))
            snprintf(host, sizeof host, "?");
        snprintf(buf, len, "[%s]:%u", host, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "?");
    }
    return buf;
}

/* ---- other handles ---- */

enum iocp_handle_kind iocp__handle_kind(iocp_socket_t fd)
{
    HANDLE h = (HANDLE)fd;
    switch (GetFileType(h)) {
    case FILE_TYPE_DISK:
        return IOCP_HANDLE_FILE;
    case FILE_TYPE_PIPE: {
        /* Sockets are "pipes" to GetFileType; SO_TYPE tells them apart. */
        int type = 0, len = sizeof type;
        if (iocp__winsock_init() == 0 &&
            getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len) == 0)
            return IOCP_HANDLE_SOCKET;
        return IOCP_HANDLE_PIPE;
    }
    default:
        /* A console (FILE_TYPE_CHAR) or something unknown: read and written
         * like a pipe. */
        return IOCP_HANDLE_PIPE;
    }
}

void iocp__handle_close(iocp_socket_t fd)
{
    if (iocp__handle_kind(fd) == IOCP_HANDLE_SOCKET)
        iocp__socket_close(fd);
    else
        CloseHandle((HANDLE)fd);
}
