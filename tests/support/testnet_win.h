/* SPDX-License-Identifier: MIT */
/*
 * testnet.h for Windows tests: blocking Winsock helpers on 127.0.0.1, with
 * reads and writes bounded by deadlines, and the same byte pattern.
 */
#ifndef IOCP_TESTNET_WIN_H
#define IOCP_TESTNET_WIN_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>

static inline void tw_init(void)
{
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
}

static inline uint64_t tw_now_ms(void)
{
    return (uint64_t)GetTickCount64();
}

static inline struct sockaddr_in tw_loopback(uint16_t port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sa;
}

/* A listening socket on 127.0.0.1 and a free port; the port in *port. */
static inline SOCKET tw_listen(uint16_t *port)
{
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET)
        return s;
    struct sockaddr_in sa = tw_loopback(0);
    int len = sizeof sa;
    if (bind(s, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(s, SOMAXCONN) != 0 ||
        getsockname(s, (struct sockaddr *)&sa, &len) != 0) {
        closesocket(s);
        return INVALID_SOCKET;
    }
    *port = ntohs(sa.sin_port);
    return s;
}

/* A blocking client connected to 127.0.0.1:port, or INVALID_SOCKET. */
static inline SOCKET tw_connect(uint16_t port)
{
    SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
    if (s == INVALID_SOCKET)
        return s;
    struct sockaddr_in sa = tw_loopback(port);
    if (connect(s, (struct sockaddr *)&sa, sizeof sa) != 0) {
        closesocket(s);
        return INVALID_SOCKET;
    }
    BOOL one = TRUE;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof one);
    return s;
}

/* A port on 127.0.0.1 that nothing listens on. */
static inline uint16_t tw_closed_port(void)
{
    uint16_t port = 0;
    SOCKET s = tw_listen(&port);
    if (s != INVALID_SOCKET)
        closesocket(s);
    return port;
}

static inline void tw_set_nonblock(SOCKET s, bool on)
{
    u_long v = on;
    ioctlsocket(s, FIONBIO, &v);
}

static inline bool tw_write_all(SOCKET s, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        int n = send(s, p, len > 65536 ? 65536 : (int)len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Wait up to ms for s to be readable; false on time-out. */
static inline bool tw_readable(SOCKET s, unsigned ms)
{
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(s, &rd);
    struct timeval tv = {(long)(ms / 1000), (long)(ms % 1000) * 1000};
    return select(0, &rd, NULL, NULL, &tv) > 0;
}

/* Read exactly len bytes within timeout_ms; returns how many were read. */
static inline size_t tw_read_full(SOCKET s, void *buf, size_t len, unsigned timeout_ms)
{
    char *p = buf;
    size_t got = 0;
    uint64_t end = tw_now_ms() + timeout_ms;
    while (got < len) {
        uint64_t now = tw_now_ms();
        if (now >= end || !tw_readable(s, (unsigned)(end - now)))
            break;
        size_t want = len - got > 65536 ? 65536 : len - got;
        int n = recv(s, p + got, (int)want, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* True when s reaches EOF (or a reset) within timeout_ms; data is skipped. */
static inline bool tw_wait_eof(SOCKET s, unsigned timeout_ms)
{
    char buf[4096];
    uint64_t end = tw_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tw_now_ms();
        if (now >= end || !tw_readable(s, (unsigned)(end - now)))
            return false;
        int n = recv(s, buf, sizeof buf, 0);
        if (n <= 0)
            return true;
    }
}

/* The byte pattern of testnet.h: reproducible from seed and offset. */
static inline void tw_pattern(void *buf, size_t len, uint64_t seed, uint64_t offset)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (seed * 0x9e3779b97f4a7c15ull) ^ (offset + i);
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ull;
        p[i] = (unsigned char)(x >> 56);
    }
}

#endif /* IOCP_TESTNET_WIN_H */
