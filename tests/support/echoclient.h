/* SPDX-License-Identifier: MIT */
/*
 * A many-connection echo client for tests: opens N connections to a loopback
 * port, sends each one its own byte stream, half-closes, and checks that
 * exactly the same bytes come back, followed by EOF.  One thread, epoll,
 * non-blocking; every run is bounded by a deadline.
 */
#ifndef IOCP_ECHOCLIENT_H
#define IOCP_ECHOCLIENT_H

#include <stdlib.h>
#include <sys/epoll.h>

#include "testnet.h"

#define EC_BLOCK (1u << 20)

struct ec_conn {
    int fd;
    size_t sent, recvd;
    bool connected, shut, done, bad;
};

struct ec_result {
    int ok;      /* connections whose echo was byte-exact and ended in EOF */
    int bad;     /* wrong bytes, early EOF, or an error */
    int pending; /* unfinished at the deadline */
};

/* The stream of connection i: a shared random block read from offset i * 7919. */
static inline const unsigned char *ec_block(void)
{
    static unsigned char *block;
    if (!block) {
        block = malloc(EC_BLOCK);
        tn_pattern(block, EC_BLOCK, 12345, 0);
    }
    return block;
}

static inline size_t ec_span(size_t conn, size_t off, size_t want, const unsigned char **p)
{
    size_t pos = (off + conn * 7919u) % EC_BLOCK;
    size_t n = EC_BLOCK - pos;
    *p = ec_block() + pos;
    return n < want ? n : want;
}

static inline void ec_finish(struct ec_conn *c, int ep, struct ec_result *r, bool good)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    c->done = true;
    if (good)
        r->ok++;
    else
        r->bad++;
}

/*
 * ec_run(port, n, bytes, timeout_ms):
 * Run n concurrent echo conversations of `bytes` each against 127.0.0.1:port.
 */
static inline struct ec_result ec_run(uint16_t port, int n, size_t bytes, unsigned timeout_ms)
{
    struct ec_result r = {0, 0, 0};
    struct ec_conn *conns = calloc((size_t)n, sizeof *conns);
    unsigned char *buf = malloc(65536);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in sa = tn_loopback(port);
    int live = 0;
    for (int i = 0; i < n; i++) {
        struct ec_conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0 || (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
                          errno != EINPROGRESS)) {
            if (c->fd >= 0)
                close(c->fd);
            c->fd = -1;
            c->done = true;
            r.bad++;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
        live++;
    }
    uint64_t end = tn_now_ms() + timeout_ms;
    struct epoll_event evs[256];
    while (live > 0 && tn_now_ms() < end) {
        int k = epoll_wait(ep, evs, 256, 100);
        for (int e = 0; e < k; e++) {
            uint32_t i = evs[e].data.u32;
            struct ec_conn *c = &conns[i];
            if (c->done)
                continue;
            if ((evs[e].events & EPOLLOUT) && !c->shut) {
                while (c->sent < bytes) {
                    const unsigned char *p;
                    size_t want = bytes - c->sent < 65536 ? bytes - c->sent : 65536;
                    size_t len = ec_span(i, c->sent, want, &p);
                    ssize_t w = send(c->fd, p, len, MSG_NOSIGNAL);
                    if (w <= 0)
                        break;
                    c->sent += (size_t)w;
                }
                if (c->sent == bytes) {
                    shutdown(c->fd, SHUT_WR);
                    c->shut = true;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t got = recv(c->fd, buf, 65536, 0);
                    if (got < 0 && errno == EAGAIN)
                        break;
                    if (got <= 0) {
                        ec_finish(c, ep, &r, got == 0 && c->recvd == bytes && !c->bad);
                        live--;
                        break;
                    }
                    size_t off = 0;
                    while (off < (size_t)got) {
                        const unsigned char *p;
                        size_t len = ec_span(i, c->recvd + off, (size_t)got - off, &p);
                        if (c->recvd + off + len > bytes || memcmp(buf + off, p, len) != 0)
                            c->bad = true;
                        off += len;
                    }
                    c->recvd += (size_t)got;
                }
            }
        }
    }
    for (int i = 0; i < n; i++)
        if (!conns[i].done) {
            close(conns[i].fd);
            r.pending++;
        }
    close(ep);
    free(buf);
    free(conns);
    return r;
}

#endif /* IOCP_ECHOCLIENT_H */
