/* SPDX-License-Identifier: MIT */
/*
 * echo_epoll: the plain-epoll peer for the echo benchmark.  One thread, one
 * level-triggered epoll set, one shared 64 KiB read buffer.  A connection
 * costs nothing in user space beyond its fd: the epoll event carries the fd
 * itself, and only a connection whose socket buffer filled up gets a small
 * heap block holding the bytes still to be written.
 *
 * usage: echo_epoll PORT      (0 picks a free port; prints it on stderr)
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#define READ_SIZE  65536
#define MAX_EVENTS 256

/* Bytes that did not fit in the socket buffer, kept until EPOLLOUT. */
struct pending {
    int fd;
    uint32_t off, len;
    char data[];
};

/*
 * epoll_data is either a tagged fd (low bit set) for a connection with
 * nothing pending, or a struct pending pointer, which malloc aligns to 16
 * bytes and so always has the low bit clear.
 */
static uint64_t tag_fd(int fd)
{
    return ((uint64_t)fd << 1) | 1;
}

static char buf[READ_SIZE];
static int ep;

static void set_interest(int fd, uint32_t events, uint64_t data, int op)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    if (epoll_ctl(ep, op, fd, &ev) < 0) {
        perror("echo_epoll: epoll_ctl");
        exit(1);
    }
}

/* close() also drops the fd from the epoll set: nobody else holds it. */
static void drop(int fd, struct pending *p)
{
    free(p);
    close(fd);
}

static void on_accept(int lfd)
{
    static const int one = 1;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("echo_epoll: accept");
            return;
        }
        /* Replies are written in one piece; Nagle would only delay them. */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        set_interest(fd, EPOLLIN, tag_fd(fd), EPOLL_CTL_ADD);
    }
}

/*
 * One read per wake-up: epoll is level-triggered, so whatever is left gets
 * another event, and a closed-loop client never leaves anything, which saves
 * the read that would only return EAGAIN.
 */
static void on_readable(int fd)
{
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            drop(fd, NULL);
        return;
    }
    ssize_t w = send(fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w == n)
        return;
    if (w < 0) {
        if (errno != EAGAIN) {
            drop(fd, NULL);
            return;
        }
        w = 0;
    }
    /* The socket buffer is full: keep the rest and stop reading until it
     * drains, which is the back-pressure a slow reader deserves. */
    struct pending *p = malloc(sizeof *p + (size_t)(n - w));
    if (!p) {
        drop(fd, NULL);
        return;
    }
    p->fd = fd;
    p->off = 0;
    p->len = (uint32_t)(n - w);
    memcpy(p->data, buf + w, p->len);
    set_interest(fd, EPOLLOUT, (uint64_t)(uintptr_t)p, EPOLL_CTL_MOD);
}

static void on_writable(struct pending *p)
{
    ssize_t w = send(p->fd, p->data + p->off, p->len - p->off, MSG_NOSIGNAL);
    if (w < 0) {
        if (errno != EAGAIN && errno != EINTR)
            drop(p->fd, p);
        return;
    }
    p->off += (uint32_t)w;
    if (p->off < p->len)
        return;
    int fd = p->fd;
    free(p);
    set_interest(fd, EPOLLIN, tag_fd(fd), EPOLL_CTL_MOD);
}

static int listen_on(int port)
{
    static const int one = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof sin;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        perror("echo_epoll: listen");
        exit(1);
    }
    fprintf(stderr, "listening on 127.0.0.1 %d\n", ntohs(sin.sin_port));
    return fd;
}

/* The benchmark holds 10,000 idle connections; the soft limit is often 1024. */
static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_epoll PORT\n");
        return 2;
    }
    raise_nofile();

    /* A signalfd in the epoll set makes SIGINT/SIGTERM an ordinary event,
     * with no window between checking a flag and going to sleep. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || sfd < 0) {
        perror("echo_epoll: setup");
        return 1;
    }
    int lfd = listen_on((int)port);
    set_interest(lfd, EPOLLIN, tag_fd(lfd), EPOLL_CTL_ADD);
    set_interest(sfd, EPOLLIN, tag_fd(sfd), EPOLL_CTL_ADD);

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno != EINTR) {
            perror("echo_epoll: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (!(d & 1)) {
                on_writable((struct pending *)(uintptr_t)d);
                continue;
            }
            int fd = (int)(d >> 1);
            if (fd == lfd)
                on_accept(lfd);
            else if (fd == sfd)
                goto out;
            else
                on_readable(fd);
        }
    }
out:
    /* Connections still open are closed by exit; none holds anything else. */
    close(lfd);
    close(sfd);
    close(ep);
    return 0;
}
