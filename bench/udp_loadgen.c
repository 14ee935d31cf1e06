/* SPDX-License-Identifier: MIT */
/*
 * udp_loadgen: the load generator of the UDP benchmarks.  Closed loop:
 * each of C connected sockets keeps W datagrams of SIZE bytes in flight,
 * and sends a new one for every reply it receives, so the rate measured is
 * what the server sustains, not how fast its queue overflows.  A socket
 * that hears nothing for 100 ms counts what it still waits for as lost and
 * sends a fresh window, so a lost datagram slows the run but never stalls
 * it.  One thread, epoll, recvmmsg and sendmmsg in batches.
 *
 *   udp_loadgen -p PORT [-h HOST] [-s SIZE] [-c SOCKETS] [-w WINDOW] [-d SECONDS]
 *
 * Prints one line on stdout:
 *   replies=N seconds=S rate=R lost=L sent=T
 * and exits 0, or 1 when no reply came at all.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH       64
#define MAX_SOCKETS 4096
#define STALL_MS    100

struct sock {
    int fd;
    unsigned in_flight;
    uint64_t last_reply_ms;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static unsigned char payload[65536];
static uint64_t sent_total;

/* Send n datagrams on s (fewer if its buffer is full). */
static void send_n(struct sock *s, unsigned n, size_t size)
{
    struct iovec iov = {payload, size};
    struct mmsghdr msgs[BATCH];
    while (n > 0) {
        unsigned k = n < BATCH ? n : BATCH;
        for (unsigned i = 0; i < k; i++)
            msgs[i].msg_hdr = (struct msghdr){.msg_iov = &iov, .msg_iovlen = 1};
        int r = sendmmsg(s->fd, msgs, k, MSG_DONTWAIT);
        if (r <= 0)
            return;
        s->in_flight += (unsigned)r;
        sent_total += (uint64_t)r;
        n -= (unsigned)r;
    }
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 0, opt;
    size_t size = 64;
    unsigned nsock = 16, window = 16;
    double seconds = 5;
    while ((opt = getopt(argc, argv, "h:p:s:c:w:d:")) != -1) {
        switch (opt) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 's':
            size = (size_t)atol(optarg);
            break;
        case 'c':
            nsock = (unsigned)atoi(optarg);
            break;
        case 'w':
            window = (unsigned)atoi(optarg);
            break;
        case 'd':
            seconds = atof(optarg);
            break;
        default:
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || size > sizeof payload || nsock == 0 || nsock > MAX_SOCKETS ||
        window == 0 || seconds <= 0) {
        fprintf(stderr, "usage: udp_loadgen -p PORT [-h HOST] [-s SIZE] [-c SOCKETS] [-w WINDOW] "
                        "[-d SECONDS]\n");
        return 2;
    }
    memset(payload, 'x', size);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        fprintf(stderr, "udp_loadgen: %s: not an IPv4 address\n", host);
        return 2;
    }
    int ep = epoll_create1(EPOLL_CLOEXEC);
    static struct sock socks[MAX_SOCKETS];
    for (unsigned i = 0; i < nsock; i++) {
        socks[i].fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int buf = 1 << 20;
        setsockopt(socks[i].fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
        if (connect(socks[i].fd, (struct sockaddr *)&to, sizeof to) < 0) {
            perror("udp_loadgen: connect");
            return 1;
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, socks[i].fd, &ev);
    }
    uint64_t start = now_ms(), end = start + (uint64_t)(seconds * 1000), last_check = start;
    uint64_t replies = 0, lost = 0;
    for (unsigned i = 0; i < nsock; i++) {
        socks[i].last_reply_ms = start;
        send_n(&socks[i], window, size);
    }
    static unsigned char rbuf[BATCH][2048];
    struct iovec riov[BATCH];
    struct mmsghdr rmsgs[BATCH];
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end)
            break;
        struct epoll_event evs[256];
        int n = epoll_wait(ep, evs, 256, (int)(end - now < STALL_MS ? end - now : STALL_MS));
        for (int k = 0; k < n; k++) {
            struct sock *s = &socks[evs[k].data.u32];
            for (;;) {
                for (int i = 0; i < BATCH; i++) {
                    riov[i] = (struct iovec){rbuf[i], sizeof rbuf[i]};
                    rmsgs[i].msg_hdr = (struct msghdr){.msg_iov = &riov[i], .msg_iovlen = 1};
                }
                int r = recvmmsg(s->fd, rmsgs, BATCH, MSG_DONTWAIT, NULL);
                if (r <= 0) {
                    if (r < 0 && errno == ECONNREFUSED) {
                        fprintf(stderr, "udp_loadgen: %s:%d: port unreachable\n", host, port);
                        return 1;
                    }
                    break;
                }
                replies += (uint64_t)r;
                s->in_flight = s->in_flight > (unsigned)r ? s->in_flight - (unsigned)r : 0;
                s->last_reply_ms = now_ms();
                send_n(s, window - s->in_flight, size);
            }
        }
        now = now_ms();
        if (now - last_check >= STALL_MS) {
            last_check = now;
            for (unsigned i = 0; i < nsock; i++) {
                struct sock *s = &socks[i];
                if (now - s->last_reply_ms >= STALL_MS) {
                    lost += s->in_flight;
                    s->in_flight = 0;
                    s->last_reply_ms = now;
                    send_n(s, window, size);
                }
            }
        }
    }
    double took = (double)(now_ms() - start) / 1000.0;
    printf("replies=%llu seconds=%.3f rate=%.0f lost=%llu sent=%llu\n", (unsigned long long)replies,
           took, (double)replies / took, (unsigned long long)lost, (unsigned long long)sent_total);
    return replies ? 0 : 1;
}
