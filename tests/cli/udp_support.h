/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the UDP suites of the command-line tool: test-side datagram
 * sockets on loopback, receiving with a deadline, waiting for a line on a
 * child's stderr, and finding the port a peer program bound.
 */
#ifndef IOCP_UDP_SUPPORT_H
#define IOCP_UDP_SUPPORT_H

#include <criterion/criterion.h>

#include <sys/resource.h>

#include "nc_support.h"

/* A datagram socket on 127.0.0.1 (port 0: any free one); *port gets the
 * bound port.  Large buffers: the suites send 65,507-byte datagrams. */
static inline int us_socket(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    struct sockaddr_in sa = tn_loopback(port ? *port : 0);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "bind: %s", strerror(errno));
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    if (port)
        *port = ntohs(sa.sin_port);
    return fd;
}

/* A socket connected to 127.0.0.1:port (so that ICMP errors reach it). */
static inline int us_connected(uint16_t port)
{
    int fd = us_socket(NULL);
    struct sockaddr_in to = tn_loopback(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    return fd;
}

static inline void us_sendto(int fd, uint16_t port, const void *data, size_t len)
{
    struct sockaddr_in to = tn_loopback(port);
    ssize_t n = sendto(fd, data, len, 0, (struct sockaddr *)&to, sizeof to);
    cr_assert_eq(n, (ssize_t)len, "sendto: %s", strerror(errno));
}

/* One datagram within timeout_ms: its length (0 allowed), or -1 on
 * time-out, -2 on an error (errno kept: ECONNREFUSED for a port
 * unreachable on a connected socket).  from may be NULL. */
static inline ssize_t us_recv(int fd, void *buf, size_t cap, unsigned timeout_ms,
                              struct sockaddr_in *from)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            return -1;
        int r = poll(&pfd, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            return -1;
        socklen_t len = sizeof *from;
        ssize_t n =
            recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, from ? &len : NULL);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n < 0 ? -2 : n;
    }
}

/* One datagram that must be exactly `want` (a string). */
static inline bool us_recv_is(int fd, const char *want, unsigned timeout_ms)
{
    char buf[2048];
    ssize_t n = us_recv(fd, buf, sizeof buf - 1, timeout_ms, NULL);
    if (n < 0) {
        cr_log_error("no datagram \"%s\" (%s)", want, n == -1 ? "time-out" : strerror(errno));
        return false;
    }
    buf[n] = '\0';
    if ((size_t)n != strlen(want) || memcmp(buf, want, (size_t)n) != 0) {
        cr_log_error("datagram \"%s\", wanted \"%s\"", buf, want);
        return false;
    }
    return true;
}

/* A UDP port on 127.0.0.1 with nobody on it (bound, then closed). */
static inline uint16_t us_closed_port(void)
{
    uint16_t port = 0;
    close(us_socket(&port));
    return port;
}

/* Whether some other socket holds UDP port (how a test learns that a peer
 * program has bound the port it was told). */
static inline bool us_port_taken(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = tn_loopback(port);
    bool taken = bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno == EADDRINUSE;
    close(fd);
    return taken;
}

static inline bool us_wait_port_taken(uint16_t port, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (tn_now_ms() < end) {
        if (us_port_taken(port))
            return true;
        usleep(10000);
    }
    return false;
}

/* Wait until a child's stderr holds `what` (its -v output); bounded. */
static inline bool us_err_has(struct proc *p, const char *what, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        if (strstr(p->errbuf, what))
            return true;
        if (tn_now_ms() >= end || p->err < 0)
            return strstr(p->errbuf, what) != NULL;
        proc_pump_err(p, 20);
    }
}

/* How often `what` occurs in a child's stderr so far. */
static inline unsigned us_err_count(const struct proc *p, const char *what)
{
    unsigned n = 0;
    for (const char *s = p->errbuf; (s = strstr(s, what)) != NULL; s += strlen(what))
        n++;
    return n;
}

static inline bool us_have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* A peer program is needed: without it, skip, except where every test
 * must run (IOCP_TEST_REQUIRE_ALL, as CI sets it), where that fails. */
#define US_NEED(prog)                                                                              \
    do {                                                                                           \
        if (!us_have(prog)) {                                                                      \
            cr_assert(!getenv("IOCP_TEST_REQUIRE_ALL"), "%s is not installed (.ci/deps)", prog);   \
            cr_skip_test("%s is not installed (.ci/deps installs it)", prog);                      \
        }                                                                                          \
    } while (0)

/* Room for a thousand sockets here and in the children (which inherit it). */
static inline void us_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* "listen" and friends with -u on 127.0.0.1:0: start and return the port. */
static inline uint16_t us_start(struct proc *p, const char *const *args)
{
    cr_assert(nc_start(p, -1, args), "cannot start iocptool");
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

#endif /* IOCP_UDP_SUPPORT_H */
