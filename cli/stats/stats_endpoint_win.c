/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h on Windows: the per-user directory and its DACL, the
 * endpoint (AF_UNIX, or loopback TCP guarded by a token file where AF_UNIX
 * is missing), the thread that serves it, and how `stats` reaches it.  The
 * answers come from stats_report.c, as on POSIX.
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
 *
 * The thread waits in WSAPoll() on the listening socket, a wake-up socket
 * (UDP on loopback, connected to itself so that only its own datagrams
 * arrive) and at most STATS_MAX_CLIENTS clients, all non-blocking, with the
 * same states, limits and slot policy as the POSIX endpoint; a token
 * client's first line is its token, then comes its request line.
 */
#include "stats_endpoint.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <winsock2.h>
#include <ws2tcpip.h>
#include <afunix.h>
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <aclapi.h>
#include <bcrypt.h>
#include <sddl.h>
#include <shlobj.h>

#include "diag.h"
#include "json.h"
#include "stats_report.h"

#define EP_TOKEN_BYTES    32
#define EP_TOKEN_HEX      (2 * EP_TOKEN_BYTES)
/* The longest token line: the token and "\r\n". */
#define EP_TOKEN_LINE     (EP_TOKEN_HEX + 2)
/* A token line and a request line may arrive in one read. */
#define EP_IN_MAX         (EP_TOKEN_LINE + STATS_REQ_MAX)
/* What the token file holds: "PORT TOKEN\n". */
#define EP_TOKEN_FILE_MAX 128

enum ep_state { EP_READING, EP_WRITING, EP_DRAINING };

enum ep_kind { EP_UNIX, EP_TOKEN, EP_TCP };

struct ep_client {
    SOCKET fd; /* INVALID_SOCKET: free slot */
    enum ep_state state;
    bool authed; /* its token line is in (or it needs none) */
    uint64_t since, deadline;
    char in[EP_IN_MAX];
    size_t inlen;
    struct json_buf out;
    size_t outoff;
};

static struct {
    bool running;
    enum ep_kind kind;
    SOCKET lfd;
    SOCKET wake;
    HANDLE thread;
    volatile LONG stopping;
    char path[MAX_PATH]; /* the socket or token file */
    HANDLE file;         /* the token file, open delete-on-close */
    char token[EP_TOKEN_HEX + 1];
    struct ep_client clients[STATS_MAX_CLIENTS];
    struct stats_source src;
} ep = {.lfd = INVALID_SOCKET, .wake = INVALID_SOCKET, .file = INVALID_HANDLE_VALUE};

static uint64_t now_ms(void)
{
    return GetTickCount64();
}

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

/* ---- addresses and connecting ---- */

static bool is_token_file(const char *spec)
{
    size_t n = strlen(spec);
    return n > 4 && !_stricmp(spec + n - 4, ".tcp");
}

static bool fill_unix(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, errlen, "%s: path too long for a Unix-domain socket (at most %zu bytes)",
                 path, sizeof sa->sun_path - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

/* Read a token file: its port and token.  false with the reason in err. */
static bool read_token_file(const char *path, unsigned *port, char token[EP_TOKEN_HEX + 1],
                            char *err, size_t errlen)
{
    char why[200];
    /* The server holds it open delete-on-close: share delete too. */
    HANDLE h =
        CreateFileA(path, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        snprintf(err, errlen, "%s: %s", path, win_error(GetLastError(), why, sizeof why));
        return false;
    }
    char text[EP_TOKEN_FILE_MAX + 1];
    DWORD got = 0;
    BOOL ok = ReadFile(h, text, EP_TOKEN_FILE_MAX, &got, NULL);
    CloseHandle(h);
    text[ok ? got : 0] = '\0';
    char hex[EP_TOKEN_HEX + 2] = "";
    int used = 0;
    if (!ok || sscanf(text, "%u %65[0-9a-f]%n", port, hex, &used) != 2 ||
        strlen(hex) != EP_TOKEN_HEX || *port == 0 || *port > 65535 || text[used] != '\n') {
        /* Also what a file being written looks like. */
        snprintf(err, errlen, "%s: not a token file (PORT TOKEN)", path);
        return false;
    }
    memcpy(token, hex, EP_TOKEN_HEX + 1);
    return true;
}

/*
 * A blocking stream socket connected to the endpoint named by spec: a
 * socket path, a token file (its token line, "TOKEN\n", then goes into
 * first_line) or tcp:[HOST:]PORT.  INVALID_SOCKET with the reason in err.
 */
static SOCKET endpoint_connect(const char *spec, char *first_line, size_t first_len, char *err,
                               size_t errlen)
{
    char why[200];
    if (first_line)
        first_line[0] = '\0';
    if (stats_is_tcp(spec) || is_token_file(spec)) {
        char host[256], port[8];
        if (is_token_file(spec)) {
            unsigned p;
            char token[EP_TOKEN_HEX + 1];
            if (!read_token_file(spec, &p, token, err, errlen))
                return INVALID_SOCKET;
            snprintf(host, sizeof host, "127.0.0.1");
            snprintf(port, sizeof port, "%u", p);
            if (first_line)
                snprintf(first_line, first_len, "%s\n", token);
            SecureZeroMemory(token, sizeof token);
        } else if (!stats_parse_tcp(spec, host, sizeof host, port, sizeof port)) {
            snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
            return INVALID_SOCKET;
        }
        struct addrinfo hints, *res;
        memset(&hints, 0, sizeof hints);
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        int gai = getaddrinfo(host, port, &hints, &res);
        if (gai != 0) {
            snprintf(err, errlen, "%s: %s", spec, win_error((DWORD)gai, why, sizeof why));
            return INVALID_SOCKET;
        }
        SOCKET fd = INVALID_SOCKET;
        DWORD saved = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);
            if (fd != INVALID_SOCKET && connect(fd, ai->ai_addr, (int)ai->ai_addrlen) == 0)
                break;
            saved = (DWORD)WSAGetLastError();
            if (fd != INVALID_SOCKET)
                closesocket(fd);
            fd = INVALID_SOCKET;
        }
        freeaddrinfo(res);
        if (fd == INVALID_SOCKET)
            snprintf(err, errlen, "%s: %s", spec, win_error(saved, why, sizeof why));
        return fd;
    }
    struct sockaddr_un sa;
    if (!fill_unix(&sa, spec, err, errlen))
        return INVALID_SOCKET;
    SOCKET fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd == INVALID_SOCKET || connect(fd, (struct sockaddr *)&sa, (int)sizeof sa) != 0) {
        snprintf(err, errlen, "%s: %s", spec, win_error((DWORD)WSAGetLastError(), why, sizeof why));
        if (fd != INVALID_SOCKET)
            closesocket(fd);
        return INVALID_SOCKET;
    }
    return fd;
}

/* ---- opening the endpoint ---- */

static bool set_nonblocking(SOCKET fd)
{
    u_long on = 1;
    return ioctlsocket(fd, FIONBIO, &on) == 0;
}

/* A Unix-domain socket at path, its file restricted to the user before it
 * listens.  A stale socket file (nobody accepts on it) is replaced. */
static SOCKET open_unix(const char *path, char *err, size_t errlen)
{
    char why[200];
    struct sockaddr_un sa;
    if (!fill_unix(&sa, path, err, errlen))
        return INVALID_SOCKET;
    SOCKET fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd == INVALID_SOCKET) {
        snprintf(err, errlen, "%s: %s", path, win_error((DWORD)WSAGetLastError(), why, sizeof why));
        return INVALID_SOCKET;
    }
    if (GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES) {
        char ignored[512];
        SOCKET probe = endpoint_connect(path, NULL, 0, ignored, sizeof ignored);
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
    ep.kind = EP_UNIX;
    snprintf(ep.path, sizeof ep.path, "%s", path);
    diag_info(1, "stats endpoint unix %s", path);
    return fd;
}

/* A listening TCP socket at spec's address, or on 127.0.0.1 at an
 * ephemeral port when spec is NULL; its port into *port. */
static SOCKET open_tcp(const char *spec, unsigned *port, char *err, size_t errlen)
{
    char why[200];
    char host[256] = "127.0.0.1", portstr[8] = "0";
    if (spec && !stats_parse_tcp(spec, host, sizeof host, portstr, sizeof portstr)) {
        snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
        return INVALID_SOCKET;
    }
    const char *name = spec ? spec : "127.0.0.1";
    struct addrinfo hints, *res;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host, portstr, &hints, &res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", name, win_error((DWORD)gai, why, sizeof why));
        return INVALID_SOCKET;
    }
    SOCKET fd = INVALID_SOCKET;
    DWORD saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM, IPPROTO_TCP);
        if (fd == INVALID_SOCKET) {
            saved = (DWORD)WSAGetLastError();
            continue;
        }
        /* Nobody else may bind the same port and take our clients. */
        BOOL one = TRUE;
        setsockopt(fd, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof one);
        if (bind(fd, ai->ai_addr, (int)ai->ai_addrlen) == 0 && listen(fd, 64) == 0 &&
            set_nonblocking(fd))
            break;
        saved = (DWORD)WSAGetLastError();
        closesocket(fd);
        fd = INVALID_SOCKET;
    }
    freeaddrinfo(res);
    if (fd == INVALID_SOCKET) {
        snprintf(err, errlen, "%s: %s", name, win_error(saved, why, sizeof why));
        return INVALID_SOCKET;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    char h[NI_MAXHOST] = "?", p[NI_MAXSERV] = "0";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, (socklen_t)len, h, sizeof h, p, sizeof p,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    *port = (unsigned)strtoul(p, NULL, 10);
    if (spec)
        diag_info(1, "stats endpoint tcp %s %s", h, p);
    return fd;
}

/* 32 bytes from the system's generator, as hex. */
static bool make_token(char hex[EP_TOKEN_HEX + 1])
{
    unsigned char raw[EP_TOKEN_BYTES];
    if (!BCRYPT_SUCCESS(
            BCryptGenRandom(NULL, raw, (ULONG)sizeof raw, BCRYPT_USE_SYSTEM_PREFERRED_RNG)))
        return false;
    for (int i = 0; i < EP_TOKEN_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    SecureZeroMemory(raw, sizeof raw);
    return true;
}

/* Loopback TCP on an ephemeral port, and the token file dir\<pid>.tcp that
 * says where and holds the token (user-only DACL, delete-on-close). */
static SOCKET open_token(const char *dir, char *err, size_t errlen)
{
    char why[200];
    unsigned port;
    SOCKET fd = open_tcp(NULL, &port, err, errlen);
    if (fd == INVALID_SOCKET)
        return INVALID_SOCKET;
    if (!make_token(ep.token)) {
        snprintf(err, errlen, "no random token: %s", win_error(GetLastError(), why, sizeof why));
        goto fail;
    }
    snprintf(ep.path, sizeof ep.path, "%s\\%lu.tcp", dir, (unsigned long)GetCurrentProcessId());
    /* A file in our name is a dead process's: no live one has our PID. */
    DeleteFileA(ep.path);
    PSECURITY_DESCRIPTOR sd = user_only(false);
    if (!sd) {
        snprintf(err, errlen, "%s: %s", ep.path, win_error(GetLastError(), why, sizeof why));
        goto fail;
    }
    SECURITY_ATTRIBUTES sa = {sizeof sa, sd, FALSE};
    /* Delete-on-close: the system removes it however the process ends. */
    ep.file = CreateFileA(ep.path, GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_DELETE, &sa,
                          CREATE_NEW, FILE_ATTRIBUTE_NORMAL | FILE_FLAG_DELETE_ON_CLOSE, NULL);
    DWORD code = GetLastError();
    LocalFree(sd);
    if (ep.file == INVALID_HANDLE_VALUE) {
        snprintf(err, errlen, "%s: %s", ep.path, win_error(code, why, sizeof why));
        goto fail;
    }
    char text[EP_TOKEN_FILE_MAX];
    int n = snprintf(text, sizeof text, "%u %s\n", port, ep.token);
    DWORD wrote = 0;
    if (!WriteFile(ep.file, text, (DWORD)n, &wrote, NULL) || wrote != (DWORD)n) {
        snprintf(err, errlen, "%s: %s", ep.path, win_error(GetLastError(), why, sizeof why));
        SecureZeroMemory(text, sizeof text);
        CloseHandle(ep.file);
        ep.file = INVALID_HANDLE_VALUE;
        goto fail;
    }
    SecureZeroMemory(text, sizeof text);
    ep.kind = EP_TOKEN;
    diag_info(1, "stats endpoint tcp 127.0.0.1 %u token %s", port, ep.path);
    return fd;

fail:
    SecureZeroMemory(ep.token, sizeof ep.token);
    closesocket(fd);
    return INVALID_SOCKET;
}

/* A UDP socket on loopback connected to itself: a datagram sent on it
 * wakes WSAPoll(), and nobody else's datagrams are let in. */
static SOCKET open_wake(void)
{
    SOCKET fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_UDP);
    if (fd == INVALID_SOCKET)
        return INVALID_SOCKET;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || !set_nonblocking(fd)) {
        closesocket(fd);
        return INVALID_SOCKET;
    }
    return fd;
}

/* ---- serving clients ---- */

static void client_close(struct ep_client *c)
{
    closesocket(c->fd);
    c->fd = INVALID_SOCKET;
    json_buf_free(&c->out);
}

static void client_answer(struct ep_client *c, size_t linelen)
{
    stats_answer(&ep.src, c->in, linelen, &c->out);
    c->state = EP_WRITING;
    c->deadline = now_ms() + STATS_WRITE_MS;
}

static void client_error(struct ep_client *c, const char *why)
{
    json_buf_free(&c->out);
    json_printf(&c->out, "error: %s\n", why);
    c->state = EP_WRITING;
    c->deadline = now_ms() + STATS_WRITE_MS;
}

/* The token line (its end included or not) against ours, in a time that
 * does not depend on where they differ. */
static bool token_matches(const char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len != EP_TOKEN_HEX) /* the length is no secret */
        return false;
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < EP_TOKEN_HEX; i++)
        diff |= (unsigned char)(line[i] ^ ep.token[i]);
    return diff == 0;
}

/* What the client has sent so far: its token line first where one is
 * needed, then its request line.  eof: it will send no more. */
static void client_input(struct ep_client *c, bool eof)
{
    if (!c->authed) {
        char *nl = memchr(c->in, '\n', c->inlen);
        if (!nl) {
            if (c->inlen == 0 && eof)
                client_close(c); /* connected and left: `stats` looking */
            else if (eof || c->inlen >= EP_TOKEN_LINE)
                client_error(c, "unauthorized (a wrong or missing token)");
            return;
        }
        size_t linelen = (size_t)(nl - c->in) + 1;
        if (!token_matches(c->in, linelen)) {
            client_error(c, "unauthorized (a wrong or missing token)");
            return;
        }
        c->authed = true;
        memmove(c->in, c->in + linelen, c->inlen - linelen);
        c->inlen -= linelen;
    }
    char *nl = memchr(c->in, '\n', c->inlen);
    if (nl && (size_t)(nl - c->in) + 1 > STATS_REQ_MAX)
        client_error(c, "request too long");
    else if (nl)
        client_answer(c, (size_t)(nl - c->in) + 1);
    else if (c->inlen >= STATS_REQ_MAX)
        client_error(c, "request too long");
    else if (eof && c->inlen) /* a request without its newline still counts */
        client_answer(c, c->inlen);
    else if (eof)
        client_close(c);
}

static void client_read(struct ep_client *c)
{
    if (c->state == EP_DRAINING) {
        char sink[4096];
        int n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && WSAGetLastError() != WSAEWOULDBLOCK))
            client_close(c);
        return;
    }
    size_t cap = c->authed ? STATS_REQ_MAX : sizeof c->in;
    int n = recv(c->fd, c->in + c->inlen, (int)(cap - c->inlen), 0);
    if (n < 0) {
        if (WSAGetLastError() != WSAEWOULDBLOCK)
            client_close(c);
        return;
    }
    c->inlen += (size_t)n;
    client_input(c, n == 0);
}

static void client_write(struct ep_client *c)
{
    while (c->outoff < c->out.len) {
        size_t left = c->out.len - c->outoff;
        int n = send(c->fd, c->out.data + c->outoff, left > INT_MAX ? INT_MAX : (int)left, 0);
        if (n < 0) {
            if (WSAGetLastError() != WSAEWOULDBLOCK)
                client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    /* All sent: our end of the stream, then a short drain so that unread
     * input does not turn the close into a reset that eats the answer. */
    json_buf_free(&c->out);
    shutdown(c->fd, SD_SEND);
    c->state = EP_DRAINING;
    c->deadline = now_ms() + STATS_DRAIN_MS;
}

/* A slot for a new client, as on POSIX: a free one, else the oldest client
 * that is not being answered, else the oldest of all. */
static struct ep_client *free_slot(void)
{
    struct ep_client *idle = NULL, *any = NULL;
    for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
        struct ep_client *c = &ep.clients[i];
        if (c->fd == INVALID_SOCKET)
            return c;
        if (c->state != EP_WRITING && (!idle || c->since < idle->since))
            idle = c;
        if (!any || c->since < any->since)
            any = c;
    }
    struct ep_client *victim = idle ? idle : any;
    client_close(victim);
    return victim;
}

static void accept_clients(void)
{
    for (;;) {
        SOCKET fd = accept(ep.lfd, NULL, NULL);
        if (fd == INVALID_SOCKET)
            return; /* WSAEWOULDBLOCK, or an error the next poll reports again */
        if (!set_nonblocking(fd)) {
            closesocket(fd);
            continue;
        }
        struct ep_client *slot = free_slot();
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->state = EP_READING;
        slot->authed = ep.kind != EP_TOKEN;
        slot->since = now_ms();
        slot->deadline = slot->since + STATS_READ_MS;
    }
}

static DWORD WINAPI serve(void *arg)
{
    (void)arg;
    WSAPOLLFD pfd[STATS_MAX_CLIENTS + 2];
    int idx[STATS_MAX_CLIENTS + 2];
    while (!InterlockedCompareExchange(&ep.stopping, 0, 0)) {
        uint64_t now = now_ms();
        int n = 0, timeout = -1;
        pfd[n].fd = ep.wake;
        pfd[n].events = POLLRDNORM;
        idx[n++] = -1;
        for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
            struct ep_client *c = &ep.clients[i];
            if (c->fd == INVALID_SOCKET)
                continue;
            if (c->deadline <= now) {
                client_close(c);
                continue;
            }
            int left = (int)(c->deadline - now);
            if (timeout < 0 || left < timeout)
                timeout = left;
            pfd[n].fd = c->fd;
            pfd[n].events = c->state == EP_WRITING ? POLLWRNORM : POLLRDNORM;
            idx[n++] = i;
        }
        /* Last, so that a slot reused for a new client is not looked at
         * again in this round. */
        pfd[n].fd = ep.lfd;
        pfd[n].events = POLLRDNORM;
        idx[n++] = -2;
        for (int k = 0; k < n; k++)
            pfd[k].revents = 0;
        int r = WSAPoll(pfd, (ULONG)n, timeout);
        if (r < 0) {
            /* Not expected; do not spin if it persists. */
            Sleep(10);
            continue;
        }
        if (r == 0)
            continue;
        if (pfd[0].revents) {
            char sink[16];
            while (recv(ep.wake, sink, sizeof sink, 0) > 0)
                ;
            continue; /* the loop condition says whether to stop */
        }
        for (int k = 1; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] == -2) {
                accept_clients();
                continue;
            }
            struct ep_client *c = &ep.clients[idx[k]];
            if (c->state == EP_WRITING) {
                client_write(c);
                continue;
            }
            client_read(c);
            /* An answer can often go out at once. */
            if (c->fd != INVALID_SOCKET && c->state == EP_WRITING)
                client_write(c);
        }
    }
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        if (ep.clients[i].fd != INVALID_SOCKET)
            client_close(&ep.clients[i]);
    return 0;
}

/* ---- start and stop ---- */

static void close_endpoint(void)
{
    if (ep.lfd != INVALID_SOCKET)
        closesocket(ep.lfd);
    ep.lfd = INVALID_SOCKET;
    if (ep.wake != INVALID_SOCKET)
        closesocket(ep.wake);
    ep.wake = INVALID_SOCKET;
    if (ep.file != INVALID_HANDLE_VALUE)
        CloseHandle(ep.file); /* which deletes it */
    ep.file = INVALID_HANDLE_VALUE;
    if (ep.kind == EP_UNIX && ep.path[0])
        DeleteFileA(ep.path);
    ep.path[0] = '\0';
    SecureZeroMemory(ep.token, sizeof ep.token);
}

int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec)
{
    char err[512], path[MAX_PATH];
    if (ep.running) {
        diag_error("stats endpoint: already running");
        return -1;
    }
    ep.kind = EP_TCP;
    ep.path[0] = '\0';
    if (spec && stats_is_tcp(spec)) {
        unsigned port;
        ep.lfd = open_tcp(spec, &port, err, sizeof err);
    } else if (spec) {
        ep.lfd = open_unix(spec, err, sizeof err);
    } else {
        const char *why;
        char dir[MAX_PATH];
        if (stats_endpoint_dir(dir, sizeof dir, true, &why) < 0) {
            diag_error("stats endpoint: %s: %s", dir, why);
            return -1;
        }
        snprintf(path, sizeof path, "%s\\%lu.sock", dir, (unsigned long)GetCurrentProcessId());
        ep.lfd = open_unix(path, err, sizeof err);
        if (ep.lfd == INVALID_SOCKET) {
            diag_info(1, "stats endpoint: %s; loopback TCP with a token instead", err);
            ep.lfd = open_token(dir, err, sizeof err);
        }
    }
    if (ep.lfd == INVALID_SOCKET) {
        diag_error("stats endpoint: %s", err);
        close_endpoint();
        return -1;
    }
    ep.wake = open_wake();
    if (ep.wake == INVALID_SOCKET) {
        diag_error("stats endpoint: no wake-up socket: %s",
                   win_error((DWORD)WSAGetLastError(), err, sizeof err));
        close_endpoint();
        return -1;
    }
    stats_source_init(&ep.src, e, s, (long)GetCurrentProcessId());
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        ep.clients[i].fd = INVALID_SOCKET;
    InterlockedExchange(&ep.stopping, 0);
    ep.thread = CreateThread(NULL, 0, serve, NULL, 0, NULL);
    if (!ep.thread) {
        diag_error("stats endpoint: cannot start its thread: %s",
                   win_error(GetLastError(), err, sizeof err));
        close_endpoint();
        return -1;
    }
    ep.running = true;
    return 0;
}

void stats_endpoint_stop(void)
{
    if (!ep.running)
        return;
    ep.running = false;
    InterlockedExchange(&ep.stopping, 1);
    send(ep.wake, "x", 1, 0);
    WaitForSingleObject(ep.thread, INFINITE);
    CloseHandle(ep.thread);
    ep.thread = NULL;
    close_endpoint();
    memset(&ep.src, 0, sizeof ep.src);
}

/* ---- the `stats` side ---- */

bool stats_endpoint_file(const char *name, long *pid)
{
    char *end;
    long v = strtol(name, &end, 10);
    if (end == name || v <= 0 || (_stricmp(end, ".sock") != 0 && _stricmp(end, ".tcp") != 0))
        return false;
    *pid = v;
    return true;
}

void stats_endpoint_of_pid(const char *dir, long pid, char *buf, size_t len)
{
    snprintf(buf, len, "%s\\%ld.sock", dir, pid);
    if (GetFileAttributesA(buf) == INVALID_FILE_ATTRIBUTES)
        snprintf(buf, len, "%s\\%ld.tcp", dir, pid);
}

bool stats_endpoint_probe(const char *spec)
{
    char ignored[512];
    SOCKET fd = endpoint_connect(spec, NULL, 0, ignored, sizeof ignored);
    if (fd == INVALID_SOCKET)
        return false;
    closesocket(fd);
    return true;
}

int stats_endpoint_ask(const char *spec, const char *request, struct json_buf *out, size_t max,
                       unsigned timeout_ms, char *err, size_t errlen)
{
    char why[200];
    char lines[EP_TOKEN_LINE + 64];
    SOCKET fd = endpoint_connect(spec, lines, sizeof lines, err, errlen);
    if (fd == INVALID_SOCKET)
        return -1;
    /* The token line (if any) and the request in one send. */
    size_t used = strlen(lines);
    int len = snprintf(lines + used, sizeof lines - used, "%s\n", request);
    len += (int)used;
    uint64_t end = now_ms() + timeout_ms;
    int rc = -1;
    if (send(fd, lines, len, 0) != len) {
        snprintf(err, errlen, "%s: %s", spec, win_error((DWORD)WSAGetLastError(), why, sizeof why));
        goto out;
    }
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end) {
            snprintf(err, errlen, "%s: no complete answer within %u seconds", spec,
                     timeout_ms / 1000);
            goto out;
        }
        WSAPOLLFD pfd = {.fd = fd, .events = POLLRDNORM};
        int r = WSAPoll(&pfd, 1, (int)(end - now));
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", spec,
                     win_error((DWORD)WSAGetLastError(), why, sizeof why));
            goto out;
        }
        if (r == 0)
            continue;
        char buf[65536];
        int n = recv(fd, buf, sizeof buf, 0);
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", spec,
                     win_error((DWORD)WSAGetLastError(), why, sizeof why));
            goto out;
        }
        if (n == 0)
            break;
        json_append(out, buf, (size_t)n);
        if (out->failed || out->len > max) {
            snprintf(err, errlen, "%s: answer too large", spec);
            goto out;
        }
    }
    rc = 0;
out:
    SecureZeroMemory(lines, sizeof lines);
    closesocket(fd);
    return rc;
}
