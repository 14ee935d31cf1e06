/* SPDX-License-Identifier: MIT */
/*
 * stats_transport.h on Windows: the per-user directory and its DACL, the
 * endpoint (AF_UNIX, or loopback TCP guarded by a token file where AF_UNIX
 * is missing), Winsock's calls, a UDP socket as the wake-up, and a thread.
 * stats_endpoint_dir() and stats_endpoint_of_pid() are here too: where the
 * endpoint lives is the platform's business.
 *
 * Who may connect.  The directory is under %LOCALAPPDATA%, which is in the
 * user's profile: only the user, SYSTEM and administrators can make
 * anything there.  That alone is not enough, because a file's own DACL is
 * what counts when it is opened by its full path (everyone holds the
 * privilege to traverse directories they cannot list), so the directory is
 * given a protected DACL with one entry, the user's SID with full access,
 * inheritable by files and subdirectories, and the socket or token file
 * gets that DACL explicitly as well.  AF_UNIX on Windows checks the socket
 * file's DACL at connect; the token file's DACL keeps the token from other
 * users, and without the token a connection gets nothing but an error.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats_transport.h"
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>
#include <bcrypt.h>
#include <sddl.h>
#include <shlobj.h>

#include "diag.h"
#include "stats_endpoint.h"
#include "stats_report.h"

#define TOKEN_BYTES    (STATS_TOKEN_HEX / 2)
/* What the token file holds: "PORT TOKEN\n". */
#define TOKEN_FILE_MAX 128

enum kind { KIND_UNIX, KIND_TOKEN, KIND_TCP };

static struct {
    enum kind kind;
    char path[MAX_PATH]; /* the socket or token file */
    HANDLE file;         /* the token file, open delete-on-close */
    char token[STATS_TOKEN_HEX + 1];
    SOCKET wake;
    HANDLE thread;
    void (*fn)(void);
} tp = {.file = INVALID_HANDLE_VALUE, .wake = INVALID_SOCKET};

/* The Winsock errors this file meets, for a system without their text
 * (Wine's message tables lack them). */
static const char *wsa_text(DWORD code)
{
    switch (code) {
    case WSAEACCES:
        return "access denied";
    case WSAEAFNOSUPPORT:
        return "address family not supported";
    case WSAEADDRINUSE:
        return "address already in use";
    case WSAEADDRNOTAVAIL:
        return "address not available";
    case WSAECONNREFUSED:
        return "connection refused";
    case WSAECONNRESET:
        return "connection reset by peer";
    case WSAETIMEDOUT:
        return "timed out";
    case WSAHOST_NOT_FOUND:
        return "unknown host";
    default:
        return NULL;
    }
}

/* "what (code)" for a Win32 or Winsock error code, into buf. */
static const char *win_error(DWORD code, char *buf, size_t len)
{
    char text[256];
    DWORD n =
        FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, code,
                       MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), text, (DWORD)sizeof text, NULL);
    while (n &&
           (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ' || text[n - 1] == '.'))
        n--;
    const char *known = wsa_text(code);
    if (n)
        snprintf(buf, len, "%.*s (%lu)", (int)n, text, (unsigned long)code);
    else if (known)
        snprintf(buf, len, "%s (%lu)", known, (unsigned long)code);
    else
        snprintf(buf, len, "error %lu", (unsigned long)code);
    return buf;
}

/* ---- who the user is ---- */

/* The user's SID as text (LocalFree() it), or NULL. */
static char *user_sid(void)
{
    HANDLE token;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
        return NULL;
    union {
        TOKEN_USER user;
        char bytes[sizeof(TOKEN_USER) + SECURITY_MAX_SID_SIZE];
    } info;
    DWORD len;
    char *text = NULL;
    if (GetTokenInformation(token, TokenUser, &info, sizeof info, &len))
        ConvertSidToStringSidA(info.user.User.Sid, &text);
    CloseHandle(token);
    return text;
}

/*
 * A security descriptor (LocalFree() it) whose DACL gives the user full
 * access and nobody else any, protected from the entries its parent would
 * pass on; with inherit, what is made inside a directory gets the entry
 * too.  NULL on failure, with GetLastError() set.
 */
static PSECURITY_DESCRIPTOR user_only(bool inherit)
{
    char *sid = user_sid();
    if (!sid)
        return NULL;
    char sddl[256];
    snprintf(sddl, sizeof sddl, "D:P(A;%s;FA;;;%s)", inherit ? "OICI" : "", sid);
    LocalFree(sid);
    PSECURITY_DESCRIPTOR sd = NULL;
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd, NULL))
        return NULL;
    return sd;
}

/* Give the file or directory at path a user-only DACL (see user_only).
 * Through a handle opened on the name itself, so that a socket file (a
 * reparse point nobody can open through) gets it.  0 or a Win32 error. */
static DWORD restrict_to_user(const char *path, bool inherit)
{
    PSECURITY_DESCRIPTOR sd = user_only(inherit);
    if (!sd)
        return GetLastError();
    DWORD rc = ERROR_SUCCESS;
    PACL dacl = NULL;
    BOOL present = FALSE, defaulted = FALSE;
    if (!GetSecurityDescriptorDacl(sd, &present, &dacl, &defaulted)) {
        rc = GetLastError();
        goto out;
    }
    HANDLE h = CreateFileA(
        path, READ_CONTROL | WRITE_DAC, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
        NULL, OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        rc = GetLastError();
        goto out;
    }
    rc = SetSecurityInfo(h, SE_FILE_OBJECT,
                         DACL_SECURITY_INFORMATION | PROTECTED_DACL_SECURITY_INFORMATION, NULL,
                         NULL, dacl, NULL);
    CloseHandle(h);
out:
    LocalFree(sd);
    return rc;
}

/* ---- the per-user directory ---- */

int stats_endpoint_dir(char *buf, size_t len, bool create, const char **why)
{
    static char reason[320];
    char folder[MAX_PATH];
    const char *base = getenv("LOCALAPPDATA");
    if (!base || !*base) {
        if (SHGetFolderPathA(NULL, CSIDL_LOCAL_APPDATA, NULL, SHGFP_TYPE_CURRENT, folder) != S_OK) {
            snprintf(buf, len, "%%LOCALAPPDATA%%");
            *why = "not set, and the system names no such folder";
            errno = ENOENT;
            return -1;
        }
        base = folder;
    }
    int n = snprintf(buf, len, "%s\\iocptool", base);
    if (n < 0 || (size_t)n >= len || (size_t)n >= MAX_PATH - 16) {
        *why = "path too long";
        errno = ENAMETOOLONG;
        return -1;
    }
    if (create) {
        PSECURITY_DESCRIPTOR sd = user_only(true);
        SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
        BOOL made = sd && CreateDirectoryA(buf, &sa);
        DWORD code = GetLastError();
        if (sd)
            LocalFree(sd);
        if (!made && code != ERROR_ALREADY_EXISTS) {
            *why = win_error(code, reason, sizeof reason);
            errno = EACCES;
            return -1;
        }
    }
    DWORD attr = GetFileAttributesA(buf);
    if (attr == INVALID_FILE_ATTRIBUTES) {
        DWORD code = GetLastError();
        if (code == ERROR_FILE_NOT_FOUND || code == ERROR_PATH_NOT_FOUND) {
            *why = "no such directory";
            errno = ENOENT;
        } else {
            *why = win_error(code, reason, sizeof reason);
            errno = EACCES;
        }
        return -1;
    }
    /* A link or junction could lead anywhere, with any DACL. */
    if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
        *why = "is a link or junction (reparse point)";
        errno = ELOOP;
        return -1;
    }
    if (!(attr & FILE_ATTRIBUTE_DIRECTORY)) {
        *why = "not a directory";
        errno = ENOTDIR;
        return -1;
    }
    if (create) {
        /* Again on a directory that was there: one made by an older
         * version, or opened up since, is closed before an endpoint goes
         * in it. */
        DWORD code = restrict_to_user(buf, true);
        if (code != ERROR_SUCCESS) {
            char text[256];
            snprintf(reason, sizeof reason, "cannot restrict it to the user: %s",
                     win_error(code, text, sizeof text));
            *why = reason;
            errno = EACCES;
            return -1;
        }
    }
    return 0;
}

/* ---- sockets ---- */

static bool set_nonblocking(SOCKET fd)
{
    u_long on = 1;
    return ioctlsocket(fd, FIONBIO, &on) == 0;
}

iocp_socket_t stats_sock_open(int family, bool nonblocking)
{
    SOCKET fd = socket(family, SOCK_STREAM, 0);
    if (fd != INVALID_SOCKET && nonblocking && !set_nonblocking(fd)) {
        closesocket(fd);
        return INVALID_SOCKET;
    }
    return fd;
}

void stats_sock_close(iocp_socket_t fd)
{
    closesocket(fd);
}

static int io_len(size_t len)
{
    return len > INT_MAX ? INT_MAX : (int)len;
}

long stats_sock_recv(iocp_socket_t fd, void *buf, size_t len)
{
    int n = recv(fd, buf, io_len(len), 0);
    if (n >= 0)
        return n;
    return WSAGetLastError() == WSAEWOULDBLOCK ? STATS_IO_AGAIN : STATS_IO_FAILED;
}

long stats_sock_send(iocp_socket_t fd, const void *buf, size_t len)
{
    int n = send(fd, buf, io_len(len), 0);
    if (n >= 0)
        return n;
    return WSAGetLastError() == WSAEWOULDBLOCK ? STATS_IO_AGAIN : STATS_IO_FAILED;
}

void stats_sock_shutdown_write(iocp_socket_t fd)
{
    shutdown(fd, SD_SEND);
}

void stats_sock_listen_options(iocp_socket_t fd)
{
    /* Nobody else may bind the same port and take our clients. */
    BOOL one = TRUE;
    setsockopt(fd, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
}

int stats_sock_poll(stats_pollfd *pfd, unsigned n, int timeout_ms)
{
    for (unsigned k = 0; k < n; k++)
        pfd[k].revents = 0;
    return WSAPoll(pfd, (ULONG)n, timeout_ms);
}

int stats_sock_error(void)
{
    return WSAGetLastError();
}

const char *stats_error_text(int code, char *buf, size_t len)
{
    return win_error((DWORD)code, buf, len);
}

const char *stats_gai_text(int code, char *buf, size_t len)
{
    return win_error((DWORD)code, buf, len);
}

enum stats_accept stats_transport_accept(iocp_socket_t lfd, iocp_socket_t *fd)
{
    *fd = accept(lfd, NULL, NULL);
    if (*fd == INVALID_SOCKET) {
        switch (WSAGetLastError()) {
        case WSAEWOULDBLOCK:
            return STATS_ACCEPT_NONE;
        case WSAECONNRESET:
        case WSAEINTR:
            return STATS_ACCEPT_AGAIN;
        default: /* WSAEMFILE, WSAENOBUFS, ... */
            return STATS_ACCEPT_STUCK;
        }
    }
    if (!set_nonblocking(*fd)) {
        closesocket(*fd);
        return STATS_ACCEPT_AGAIN;
    }
    return STATS_ACCEPTED;
}

/* ---- the token file ---- */

static bool is_token_file(const char *spec)
{
    size_t n = strlen(spec);
    return n > 4 && !_stricmp(spec + n - 4, ".tcp");
}

bool stats_transport_endpoint_suffix(const char *end)
{
    return _stricmp(end, ".sock") == 0 || _stricmp(end, ".tcp") == 0;
}

void stats_endpoint_of_pid(const char *dir, long pid, char *buf, size_t len)
{
    snprintf(buf, len, "%s\\%ld.sock", dir, pid);
    if (GetFileAttributesA(buf) == INVALID_FILE_ATTRIBUTES)
        snprintf(buf, len, "%s\\%ld.tcp", dir, pid);
}

int stats_transport_locate(const char *spec, char *host, size_t hostlen, char *port, size_t portlen,
                           char *line, size_t linelen, char *err, size_t errlen)
{
    char why[200];
    if (!is_token_file(spec))
        return 0;
    /* The server holds it open delete-on-close: share delete too. */
    HANDLE h =
        CreateFileA(spec, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        snprintf(err, errlen, "%s: %s", spec, win_error(GetLastError(), why, sizeof why));
        return -1;
    }
    char text[TOKEN_FILE_MAX + 1];
    DWORD got = 0;
    BOOL ok = ReadFile(h, text, TOKEN_FILE_MAX, &got, NULL);
    CloseHandle(h);
    text[ok ? got : 0] = '\0';
    char hex[STATS_TOKEN_HEX + 2] = "";
    unsigned p = 0;
    int used = 0;
    int rc = -1;
    if (!ok || sscanf(text, "%u %65[0-9a-f]%n", &p, hex, &used) != 2 ||
        strlen(hex) != STATS_TOKEN_HEX || p == 0 || p > 65535 || text[used] != '\n') {
        /* Also what a file being written looks like. */
        snprintf(err, errlen, "%s: not a token file (PORT TOKEN)", spec);
    } else {
        snprintf(host, hostlen, "127.0.0.1");
        snprintf(port, portlen, "%u", p);
        snprintf(line, linelen, "%s\n", hex);
        rc = 1;
    }
    stats_wipe(text, sizeof text);
    stats_wipe(hex, sizeof hex);
    return rc;
}

/* 32 bytes from the system's generator, as hex. */
static bool make_token(char hex[STATS_TOKEN_HEX + 1])
{
    unsigned char raw[TOKEN_BYTES];
    if (!BCRYPT_SUCCESS(
            BCryptGenRandom(NULL, raw, (ULONG)sizeof raw, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
        return false;
    for (int i = 0; i < TOKEN_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    stats_wipe(raw, sizeof raw);
    return true;
}

/* Loopback TCP on an ephemeral port, and the token file dir\<pid>.tcp that
 * says where and holds the token (user-only DACL, delete-on-close). */
static SOCKET open_token(const char *dir, char *err, size_t errlen)
{
    char why[200], addr[NI_MAXHOST];
    unsigned port;
    SOCKET fd =
        stats_tcp_listen("127.0.0.1", "127.0.0.1", "0", addr, sizeof addr, &port, err, errlen);
    if (fd == INVALID_SOCKET)
        return INVALID_SOCKET;
    if (!make_token(tp.token)) {
        snprintf(err, errlen, "no random token: %s", win_error(GetLastError(), why, sizeof why));
        goto fail;
    }
    snprintf(tp.path, sizeof tp.path, "%s\\%lu.tcp", dir, (unsigned long)GetCurrentProcessId());
    /* A file in our name is a dead process's: no live one has our PID. */
    DeleteFileA(tp.path);
    PSECURITY_DESCRIPTOR sd = user_only(false);
    if (!sd) {
        snprintf(err, errlen, "%s: %s", tp.path, win_error(GetLastError(), why, sizeof why));
        goto fail;
    }
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    /* Delete-on-close: the system removes it however the process ends. */
    tp.file = CreateFileA(tp.path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, &sa,
                          CREATE_NEW, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    DWORD code = GetLastError();
    LocalFree(sd);
    if (tp.file == INVALID_HANDLE_VALUE) {
        snprintf(err, errlen, "%s: %s", tp.path, win_error(code, why, sizeof why));
        goto fail;
    }
    char text[TOKEN_FILE_MAX];
    int n = snprintf(text, sizeof text, "%u %s\n", port, tp.token);
    DWORD wrote = 0;
    BOOL ok = WriteFile(tp.file, text, (DWORD)n, &wrote, NULL) && wrote == (DWORD)n;
    code = GetLastError();
    stats_wipe(text, sizeof text);
    if (!ok) {
        snprintf(err, errlen, "%s: %s", tp.path, win_error(code, why, sizeof why));
        CloseHandle(tp.file);
        tp.file = INVALID_HANDLE_VALUE;
        goto fail;
    }
    tp.kind = KIND_TOKEN;
    diag_info(1, "stats endpoint tcp 127.0.0.1 %u token %s", port, tp.path);
    return fd;

fail:
    stats_wipe(tp.token, sizeof tp.token);
    closesocket(fd);
    return INVALID_SOCKET;
}

/* ---- opening the endpoint ---- */

/* A Unix-domain socket at path, its file restricted to the user before it
 * listens.  A stale socket file (nobody accepts on it) is replaced. */
static SOCKET open_unix(const char *path, char *err, size_t errlen)
{
    char why[200];
    struct sockaddr_un sa;
    if (!stats_unix_address(&sa, path, err, errlen))
        return INVALID_SOCKET;
    SOCKET fd = stats_sock_open(AF_UNIX, false);
    if (fd == INVALID_SOCKET) {
        snprintf(err, errlen, "%s: %s", path, win_error((DWORD)WSAGetLastError(), why, sizeof why));
        return INVALID_SOCKET;
    }
    if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) {
        SOCKET probe = stats_unix_connect(path, why, sizeof why);
        if (probe != INVALID_SOCKET) {
            closesocket(probe);
            closesocket(fd);
            snprintf(err, errlen, "%s: in use by another process", path);
            return INVALID_SOCKET;
        }
        DeleteFileA(path);
    }
    DWORD code = 0;
    if (bind(fd, (struct sockaddr *)&sa, (int)sizeof sa) != 0)
        code = (DWORD)WSAGetLastError();
    else if ((code = restrict_to_user(path, false)) != ERROR_SUCCESS)
        DeleteFileA(path);
    else if (listen(fd, 64) != 0 || !set_nonblocking(fd)) {
        code = (DWORD)WSAGetLastError();
        DeleteFileA(path);
    }
    if (code) {
        snprintf(err, errlen, "%s: %s", path, win_error(code, why, sizeof why));
        closesocket(fd);
        return INVALID_SOCKET;
    }
    tp.kind = KIND_UNIX;
    snprintf(tp.path, sizeof tp.path, "%s", path);
    diag_info(1, "stats endpoint unix %s", path);
    return fd;
}

static SOCKET open_explicit_tcp(const char *spec, char *err, size_t errlen)
{
    char host[256], port[8], addr[NI_MAXHOST];
    unsigned portnum;
    if (!stats_parse_tcp(spec, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
        return INVALID_SOCKET;
    }
    SOCKET fd = stats_tcp_listen(spec, host, port, addr, sizeof addr, &portnum, err, errlen);
    if (fd != INVALID_SOCKET)
        diag_info(1, "stats endpoint tcp %s %u", addr, portnum);
    return fd;
}

iocp_socket_t stats_transport_open(const char *spec, const char **token, char *err, size_t errlen)
{
    char path[MAX_PATH];
    tp.kind = KIND_TCP;
    tp.path[0] = '\0';
    *token = NULL;
    if (spec && stats_is_tcp(spec))
        return open_explicit_tcp(spec, err, errlen);
    if (spec)
        return open_unix(spec, err, errlen);
    const char *why;
    char dir[MAX_PATH];
    if (stats_endpoint_dir(dir, sizeof dir, true, &why) < 0) {
        snprintf(err, errlen, "%s: %s", dir, why);
        return INVALID_SOCKET;
    }
    snprintf(path, sizeof path, "%s\\%lu.sock", dir, (unsigned long)GetCurrentProcessId());
    SOCKET fd = open_unix(path, err, errlen);
    if (fd != INVALID_SOCKET)
        return fd;
    diag_info(1, "stats endpoint: %s; loopback TCP with a token instead", err);
    fd = open_token(dir, err, errlen);
    if (fd != INVALID_SOCKET)
        *token = tp.token;
    return fd;
}

void stats_transport_close(iocp_socket_t lfd)
{
    closesocket(lfd);
    if (tp.file != INVALID_HANDLE_VALUE)
        CloseHandle(tp.file); /* which deletes it */
    tp.file = INVALID_HANDLE_VALUE;
    if (tp.kind == KIND_UNIX && tp.path[0])
        DeleteFileA(tp.path);
    tp.path[0] = '\0';
    stats_wipe(tp.token, sizeof tp.token);
}

long stats_transport_pid(void)
{
    return (long)GetCurrentProcessId();
}

/* ---- the wake-up and the thread ---- */

/* A UDP socket on loopback connected to itself: a datagram sent on it
 * wakes WSAPoll(), and nobody else's datagrams are let in. */
iocp_socket_t stats_wake_open(char *err, size_t errlen)
{
    SOCKET fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof sa;
    if (fd == INVALID_SOCKET || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || !set_nonblocking(fd)) {
        win_error((DWORD)WSAGetLastError(), err, errlen);
        if (fd != INVALID_SOCKET)
            closesocket(fd);
        return INVALID_SOCKET;
    }
    tp.wake = fd;
    return fd;
}

void stats_wake_fire(void)
{
    send(tp.wake, "x", 1, 0);
}

void stats_wake_drain(void)
{
    char sink[16];
    while (recv(tp.wake, sink, sizeof sink, 0) > 0)
        ;
}

void stats_wake_close(void)
{
    closesocket(tp.wake);
    tp.wake = INVALID_SOCKET;
}

static DWORD WINAPI thread_main(void *arg)
{
    (void)arg;
    tp.fn();
    return 0;
}

int stats_thread_start(void (*fn)(void), char *err, size_t errlen)
{
    tp.fn = fn;
    tp.thread = CreateThread(NULL, 0, thread_main, NULL, 0, NULL);
    if (!tp.thread) {
        win_error(GetLastError(), err, errlen);
        return -1;
    }
    return 0;
}

void stats_thread_join(void)
{
    WaitForSingleObject(tp.thread, INFINITE);
    CloseHandle(tp.thread);
    tp.thread = NULL;
}

uint64_t stats_now_ms(void)
{
    return GetTickCount64();
}

void stats_pause_ms(unsigned ms)
{
    Sleep(ms);
}
