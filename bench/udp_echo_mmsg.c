/* SPDX-License-Identifier: MIT */
/*
 * udp_echo_mmsg: the plain UDP echo server that `iocptool echo -u` is
 * measured against.  One thread, one socket, blocking recvmmsg of up to 64
 * datagrams (MSG_WAITFORONE: it returns as soon as one has come and takes
 * whatever else is already queued), then one sendmmsg that returns each to
 * its sender.  No event loop and no copies: the floor for a single-threaded
 * UDP echo on Linux.
 *
 *   udp_echo_mmsg PORT        (0: any free port)
 *
 * Prints "listening on 127.0.0.1 PORT" on stderr once bound; exits 0 on
 * SIGINT or SIGTERM.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH     64
#define DGRAM_MAX 65536

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: udp_echo_mmsg PORT\n");
        return 2;
    }
    /* No SA_RESTART: a signal interrupts the blocking recvmmsg. */
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)atoi(argv[1])),
                               .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (fd < 0 || bind(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        perror("udp_echo_mmsg: bind");
        return 1;
    }
    socklen_t alen = sizeof addr;
    getsockname(fd, (struct sockaddr *)&addr, &alen);
    fprintf(stderr, "listening on 127.0.0.1 %u\n", ntohs(addr.sin_port));

    static unsigned char bufs[BATCH][DGRAM_MAX];
    static struct sockaddr_in from[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr msgs[BATCH];
    while (!stopping) {
        for (int i = 0; i < BATCH; i++) {
            iov[i] = (struct iovec){bufs[i], DGRAM_MAX};
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &from[i],
                                              .msg_namelen = sizeof from[i],
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("udp_echo_mmsg: recvmmsg");
            return 1;
        }
        /* Each datagram goes back with the length it came with. */
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len;
        for (int sent = 0; sent < n;) {
            int r = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
            if (r < 0) {
                if (errno == EINTR)
                    continue;
                /* A full buffer or a vanished client: drop the rest of the
                 * batch, as any UDP server may. */
                break;
            }
            sent += r;
        }
    }
    close(fd);
    return 0;
}
