/* SPDX-License-Identifier: MIT */
/*
 * Small blocking socket helpers for tests: a loopback listener on a free
 * port, a client connected to it, and reads and writes bounded by deadlines.
 * Everything here uses 127.0.0.1 only.
 */
#ifndef IOCP_TESTNET_H
#define IOCP_TESTNET_H

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
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
 * Ports below the system's ephemeral range, where no server that binds port
 * 0 and no outgoing connection can be handed the same port by the kernel
 * (a relay given a "dead" target equal to its own port would connect to
 * itself).  The 8,192 ports under the range are split in two halves so that
 * the two kinds never meet: a port a test keeps closed is never one that
 * another test's server binds.  Within a half the start is spread by
 * process ID and a per-process counter, and a port whose bind succeeds is
 * free now.  The range is read once per process.
 */
static inline unsigned tn_ephemeral_low(void)
{
    static atomic_uint low;
    unsigned v = atomic_load(&low);
    if (v)
        return v;
    v = 32768;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%u", &v) != 1)
            v = 32768;
        fclose(f);
    }
    atomic_store(&low, v);
    return v;
}

/* A free port in half 0 (for servers: the 4,096 ports just under the
 * range) or half 1 (kept closed: the 4,096 under those).  With no room
 * below the range: a port the kernel hands out, then closed. */
static inline uint16_t tn_port_below_range(unsigned half)
{
    static atomic_uint next;
    unsigned low = tn_ephemeral_low();
    for (unsigned i = 0; low > 10000 + 1024 && i < 512; i++) {
        unsigned k = (unsigned)getpid() * 131u + atomic_fetch_add(&next, 1u) * 37u;
        uint16_t port = (uint16_t)(low - 1 - half * 4096u - k % 4096u);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            break;
        struct sockaddr_in sa = tn_loopback(port);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(fd);
        if (ok)
            return port;
    }
    uint16_t port = 0;
    int fd = tn_listen(&port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A port on 127.0.0.1 that nothing listens on, and no test server will. */
static inline uint16_t tn_closed_port(void)
{
    return tn_port_below_range(1);
}

/*
 * A free port for a server the test starts on a port of its choosing (a
 * program that cannot be given a listening socket, a target restarted on
 * its port, a client's source port).  Another test may pick the same port
 * in the moment before the server binds it: a server started in another
 * process is checked with tn_listener_owned_by() and started again on
 * another port when it lost.
 */
static inline uint16_t tn_server_port(void)
{
    return tn_port_below_range(0);
}

#ifdef __linux__
/* The inode of the socket listening on 127.0.0.1:port (or any address),
 * from /proc/net/tcp; 0 when none. */
static inline unsigned long tn_listener_inode(uint16_t port)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    if (!f)
        return 0;
    char line[512];
    unsigned long found = 0;
    if (!fgets(line, sizeof line, f)) {
        fclose(f);
        return 0;
    }
    while (!found && fgets(line, sizeof line, f)) {
        unsigned addr, lport, st;
        unsigned long inode;
        /* sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode */
        if (sscanf(line, " %*u: %x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu", &addr, &lport,
                   &st, &inode) == 4 &&
            lport == port && st == 0x0A &&
            (addr == 0 || addr == htonl(INADDR_LOOPBACK)))
            found = inode;
    }
    fclose(f);
    return found;
}

/* How many of process pid's descriptors are sockets: any socket (inode 0)
 * or the one with this inode; 0 when its descriptors cannot be read. */
static inline int tn_sockets_of(long pid, unsigned long inode)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
    DIR *fds = opendir(dir);
    if (!fds)
        return 0; /* gone, or not ours to read */
    int n = 0;
    struct dirent *d;
    while ((d = readdir(fds))) {
        char path[64 + sizeof d->d_name], target[64];
        snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        unsigned long got;
        if (sscanf(target, "socket:[%lu]", &got) == 1 && (!inode || got == inode))
            n++;
    }
    closedir(fds);
    return n;
}

/*
 * Whether the socket listening on 127.0.0.1:port belongs to process pid or
 * to one of its children (servers that fork keep their listener in a
 * child).  A test that started a server on a port it chose asks this, so
 * that it never talks to another test's server that took the port first.
 */
static inline bool tn_listener_owned_by(pid_t pid, uint16_t port)
{
    unsigned long inode = tn_listener_inode(port);
    if (!inode)
        return false;
    if (tn_sockets_of(pid, inode))
        return true;
    /* Children: every process whose parent is pid. */
    DIR *proc = opendir("/proc");
    if (!proc)
        return false;
    bool owned = false;
    struct dirent *d;
    while (!owned && (d = readdir(proc))) {
        char *end;
        long other = strtol(d->d_name, &end, 10);
        if (*end || other <= 0)
            continue;
        char path[64], stat[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", other);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t n = fread(stat, 1, sizeof stat - 1, f);
        fclose(f);
        stat[n] = '\0';
        /* pid (comm) state ppid ...: comm may hold spaces, so from the last ')' */
        char *close_paren = strrchr(stat, ')');
        long ppid = 0;
        if (close_paren && sscanf(close_paren + 1, " %*c %ld", &ppid) == 1 && ppid == (long)pid)
            owned = tn_sockets_of(other, inode) > 0;
    }
    closedir(proc);
    return owned;
}

/*
 * Wait up to ms for the socket listening on port to be process pid's (or a
 * child's).  false at once when exited(arg) says the server has gone, and
 * when another process has held the port for a second: the server lost the
 * port and should be started again on another one.
 */
static inline bool tn_wait_listener_of(pid_t pid, uint16_t port, unsigned ms,
                                       bool (*exited)(void *), void *arg)
{
    uint64_t now = tn_now_ms(), end = now + ms, foreign_since = 0;
    for (; now < end; now = tn_now_ms()) {
        if (tn_listener_owned_by(pid, port))
            return true;
        if (exited(arg))
            return false;
        if (tn_listener_inode(port)) {
            if (!foreign_since)
                foreign_since = now;
            else if (now - foreign_since >= 1000)
                return false;
        } else {
            foreign_since = 0;
        }
        struct timespec pause = {.tv_sec = 0, .tv_nsec = 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    return false;
}
#endif

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
