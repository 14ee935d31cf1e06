/* SPDX-License-Identifier: MIT */
/*
 * Small blocking socket helpers for tests: a loopback listener on a free
 * port, a client connected to it, and reads and writes bounded by deadlines.
 * Everything here uses 127.0.0.1 only.
 */
#ifndef IOCP_TESTNET_H
#define IOCP_TESTNET_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t tn_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static inline void tn_set_nonblock(int fd, bool on)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

/* A listening socket on 127.0.0.1 and a free port; the port in *port. */
static inline int tn_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static inline struct sockaddr_in tn_loopback(uint16_t port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    return sa;
}

/* A blocking client connected to 127.0.0.1:port, or -1. */
static inline int tn_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = tn_loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* Connect n clients to 127.0.0.1:port into fds; false if one failed (the
 * ones before it stay open, for the caller's cleanup to close). */
static inline bool tn_connect_all(uint16_t port, int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if ((fds[i] = tn_connect(port)) < 0)
            return false;
    return true;
}

/*
 * A port on 127.0.0.1 that nothing listens on.  It is taken from below the
 * system's ephemeral range, so that no server of the test that binds port
 * 0 and no outgoing connection can be handed the same port by the kernel
 * (a relay given a "dead" target equal to its own port would connect to
 * itself).  A port whose bind succeeds is free now; the start is spread by
 * process ID so parallel suites rarely try the same ports.
 */
static inline uint16_t tn_closed_port(void)
{
    static atomic_uint next;
    unsigned low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%u %u", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    unsigned span = low > 10000 + 1024 ? 8192 : 0;
    for (unsigned i = 0; i < span && i < 512; i++) {
        uint16_t port = (uint16_t)(low - 1 - ((unsigned)getpid() * 131u + atomic_fetch_add(&next, 1u) * 37u) % span);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        struct sockaddr_in sa = tn_loopback(port);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return port;
    }
    /* No room below the range: a port the kernel hands out, then closed. */
    uint16_t port = 0;
    int fd = tn_listen(&port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* Write all of buf, or return false. */
static inline bool tn_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/*
 * Read exactly len bytes before deadline_ms has passed.  Returns the number
 * read (len on success, less on EOF, error or time-out).
 */
static inline size_t tn_read_full(int fd, void *buf, size_t len, unsigned timeout_ms)
{
    char *p = buf;
    size_t got = 0;
    uint64_t end = tn_now_ms() + timeout_ms;
    while (got < len) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t n = read(fd, p + got, len - got);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

/* True when fd reaches EOF (read returns 0) before timeout_ms; data is skipped. */
static inline bool tn_wait_eof(int fd, unsigned timeout_ms)
{
    char buf[4096];
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            return false;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(end - now));
        if (r <= 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0)
            return true;
        if (n < 0 && errno != EINTR && errno != EAGAIN)
            return true; /* reset also ends the stream */
    }
}

/* Fill buf with a reproducible byte pattern that depends on seed and offset. */
static inline void tn_pattern(void *buf, size_t len, uint64_t seed, uint64_t offset)
{
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        uint64_t x = (seed * 0x9e3779b97f4a7c15ull) ^ (offset + i);
        x ^= x >> 29;
        x *= 0xbf58476d1ce4e5b9ull;
        p[i] = (unsigned char)(x >> 56);
    }
}

#endif /* IOCP_TESTNET_H */
