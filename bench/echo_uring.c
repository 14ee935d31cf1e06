/* SPDX-License-Identifier: MIT */
/*
 * echo_uring: the plain io_uring peer for the echo benchmark, on liburing
 * 2.3.  One thread, one ring: a multishot accept on the listener, a
 * multishot recv per connection that picks its buffers from a provided
 * buffer ring, a send straight from the buffer the data arrived in, and the
 * buffer goes back to the ring when that send completes.  Nothing is copied
 * and nothing is allocated per connection: the only per-connection state is
 * five bytes in tables indexed by fd.
 *
 * usage: echo_uring PORT      (0 picks a free port; prints it on stderr)
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include <liburing.h>

/*
 * 16 KiB buffers take the benchmark's largest message in one completion;
 * 1024 of them cover one message in flight on each of 1000 connections.
 */
#define BUF_SHIFT  14
#define BUF_SIZE   (1u << BUF_SHIFT)
#define NBUFS      1024u
#define BGID       0
#define SQ_ENTRIES 1024
/* A large CQ makes overflow, which ends multishot requests, unlikely. */
#define CQ_ENTRIES 16384
#define NONE       0xffffu

enum op { OP_ACCEPT, OP_RECV, OP_SEND, OP_CLOSE, OP_SIGNAL };

/* Per-fd flags. */
#define F_EOF    1 /* the multishot recv has ended for good: close once sends drain */
#define F_BROKEN 2 /* a send failed: drop what still arrives */

static struct io_uring ring;
static struct io_uring_buf_ring *br;
static char *bufs;
static unsigned nreturned; /* buffers added to the ring but not yet published */
static unsigned inuse;     /* buffers the kernel filled that we still hold */

/*
 * Each connection has at most one send in flight, so replies leave in the
 * order the requests came.  Buffers waiting behind it form a queue threaded
 * through bnext; qhead is the buffer being sent.
 */
static uint16_t bnext[NBUFS];
static uint32_t blen[NBUFS], boff[NBUFS];
static uint16_t *qhead, *qtail;
static uint8_t *fflags;
static int nfds;

/* Connections whose recv stopped because every buffer was in use, first
 * stalled first resumed; a circular queue of nfds entries, as each fd is in
 * it at most once. */
static int *stalled;
static unsigned stall_head, nstalled;

static uint64_t pack(enum op op, int fd, unsigned bid)
{
    return (uint64_t)op | (uint64_t)(uint32_t)fd << 8 | (uint64_t)bid << 40;
}

/* A full SQ is submitted on the spot, even halfway through a batch of
 * completions; the kernel refuses only if its CQ overflow backlog is full,
 * which CQ_ENTRIES keeps out of reach. */
static struct io_uring_sqe *get_sqe(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    if (!sqe) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    if (!sqe) {
        fprintf(stderr, "echo_uring: submission queue stuck full\n");
        exit(1);
    }
    return sqe;
}

static void arm_accept(int lfd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, 0);
    io_uring_sqe_set_data64(sqe, pack(OP_ACCEPT, lfd, 0));
}

static void arm_recv(int fd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = BGID;
    io_uring_sqe_set_data64(sqe, pack(OP_RECV, fd, 0));
}

/* MSG_WAITALL makes the kernel finish a short send itself (since 5.19). */
static void send_head(int fd)
{
    unsigned bid = qhead[fd];
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_send(sqe, fd, bufs + ((size_t)bid << BUF_SHIFT) + boff[bid],
                       blen[bid] - boff[bid], MSG_WAITALL | MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, pack(OP_SEND, fd, bid));
}

static void close_conn(int fd)
{
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_close(sqe, fd);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    io_uring_sqe_set_data64(sqe, pack(OP_CLOSE, fd, 0));
}

/* Published in one step per batch of completions, see the main loop. */
static void ring_add(unsigned bid)
{
    io_uring_buf_ring_add(br, bufs + ((size_t)bid << BUF_SHIFT), BUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(NBUFS), (int)nreturned++);
}

static void give_back(unsigned bid)
{
    ring_add(bid);
    inuse--;
}

static void on_accept(int lfd, int res, unsigned flags)
{
    static const int one = 1;
    if (res >= nfds) {
        close(res);
    } else if (res >= 0) {
        /* Replies are written in one piece; Nagle would only delay them. */
        setsockopt(res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        qhead[res] = qtail[res] = NONE;
        fflags[res] = 0;
        arm_recv(res);
    }
    /* A multishot accept ends on an error or a CQ overflow: start it again. */
    if (!(flags & IORING_CQE_F_MORE))
        arm_accept(lfd);
}

static void on_recv(int fd, int res, unsigned flags)
{
    if (res > 0) {
        unsigned bid = flags >> IORING_CQE_BUFFER_SHIFT;
        inuse++;
        if (fflags[fd] & F_BROKEN) {
            give_back(bid);
        } else {
            blen[bid] = (uint32_t)res;
            boff[bid] = 0;
            bnext[bid] = NONE;
            if (qhead[fd] == NONE) {
                qhead[fd] = qtail[fd] = (uint16_t)bid;
                send_head(fd);
            } else {
                bnext[qtail[fd]] = (uint16_t)bid;
                qtail[fd] = (uint16_t)bid;
            }
        }
    }
    if (flags & IORING_CQE_F_MORE)
        return;
    if (res > 0) {
        arm_recv(fd); /* ended by a CQ overflow, not by the socket */
    } else if (res == -ENOBUFS) {
        /* The data waits in the socket; try again once buffers come back. */
        stalled[(stall_head + nstalled++) % (unsigned)nfds] = fd;
    } else {
        fflags[fd] |= F_EOF;
        if (qhead[fd] == NONE)
            close_conn(fd);
    }
}

static void on_send(int fd, unsigned bid, int res)
{
    if (res <= 0) {
        /*
         * The peer is gone.  shutdown() makes the multishot recv end with 0,
         * so its F_EOF path closes the fd; closing it here instead would leave
         * that recv armed on a socket nobody can reach, and its completions
         * would name an fd number accept may hand out again.
         */
        fflags[fd] |= F_BROKEN;
        shutdown(fd, SHUT_RDWR);
        for (unsigned b = qhead[fd]; b != NONE; b = bnext[b])
            give_back(b);
        qhead[fd] = qtail[fd] = NONE;
    } else if ((boff[bid] += (uint32_t)res) < blen[bid]) {
        send_head(fd);
        return;
    } else {
        qhead[fd] = bnext[bid];
        give_back(bid);
        if (qhead[fd] != NONE) {
            send_head(fd);
            return;
        }
    }
    if (fflags[fd] & F_EOF)
        close_conn(fd);
}

static int listen_on(int port)
{
    static const int one = 1;
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    socklen_t len = sizeof sin;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
        perror("echo_uring: listen");
        exit(1);
    }
    fprintf(stderr, "listening on 127.0.0.1 %d\n", ntohs(sin.sin_port));
    return fd;
}

/*
 * SINGLE_ISSUER|DEFER_TASKRUN (6.1) runs completion work only when we ask for
 * completions, in our own thread, instead of interrupting us; older kernels
 * refuse the flags with EINVAL and get the plain setup.
 */
static int setup_ring(void)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && rc == -EINVAL; i++) {
        struct io_uring_params p = {.flags = tries[i] | IORING_SETUP_CQSIZE,
                                    .cq_entries = CQ_ENTRIES};
        rc = io_uring_queue_init_params(SQ_ENTRIES, &ring, &p);
    }
    if (rc < 0)
        return rc;
    io_uring_register_ring_fd(&ring); /* saves an fd lookup per enter; optional */

    /*
     * liburing 2.3 has no io_uring_setup_buf_ring, so the ring is mapped and
     * registered by hand.  MAP_POPULATE faults the buffers in now: they are a
     * fixed cost of the server and must not show up as memory per connection
     * when the first connections happen to touch them.
     */
    size_t ring_bytes = NBUFS * sizeof(struct io_uring_buf);
    br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
              -1, 0);
    bufs = mmap(NULL, (size_t)NBUFS * BUF_SIZE, PROT_READ | PROT_WRITE,
                MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (br == MAP_FAILED || bufs == MAP_FAILED)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = NBUFS, .bgid = BGID};
    rc = io_uring_register_buf_ring(&ring, &reg, 0);
    if (rc < 0)
        return rc;
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < NBUFS; i++)
        ring_add(i);
    io_uring_buf_ring_advance(br, (int)nreturned);
    nreturned = 0;
    return 0;
}

/* The benchmark holds 10,000 idle connections; the soft limit is often 1024.
 * The per-fd tables are sized by the limit, so no fd can fall outside them. */
/*
 * A table indexed by fd, of zeroed anonymous pages that are faulted in only
 * as fds get used (calloc would clear them all now), so the idle test sees
 * the tables as the per-connection cost they are rather than as a fixed one.
 */
static void *fd_table(size_t elem)
{
    void *p =
        mmap(NULL, (size_t)nfds * elem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("echo_uring: mmap");
        exit(1);
    }
    return p;
}

static void size_tables(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    nfds = rl.rlim_cur > 1 << 20 ? 1 << 20 : (int)rl.rlim_cur;
    qhead = fd_table(sizeof *qhead);
    qtail = fd_table(sizeof *qtail);
    fflags = fd_table(sizeof *fflags);
    stalled = fd_table(sizeof *stalled);
}

int main(int argc, char **argv)
{
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_uring PORT\n");
        return 2;
    }
    size_tables();

    /* SIGINT/SIGTERM arrive as a poll completion on a signalfd, so the loop
     * never sleeps through one. */
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
    if (sfd < 0) {
        perror("echo_uring: signalfd");
        return 1;
    }

    int rc = setup_ring();
    if (rc < 0) {
        fprintf(stderr, "echo_uring: io_uring setup: %s\n", strerror(-rc));
        return 1;
    }
    int lfd = listen_on((int)port);
    arm_accept(lfd);
    struct io_uring_sqe *sqe = get_sqe();
    io_uring_prep_poll_add(sqe, sfd, POLLIN);
    io_uring_sqe_set_data64(sqe, pack(OP_SIGNAL, sfd, 0));

    bool running = true;
    while (running) {
        rc = io_uring_submit_and_wait(&ring, 1);
        if (rc < 0 && rc != -EINTR && rc != -EBUSY) {
            fprintf(stderr, "echo_uring: io_uring_enter: %s\n", strerror(-rc));
            return 1;
        }
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int fd = (int)(uint32_t)(ud >> 8);
            seen++;
            switch ((enum op)(ud & 0xff)) {
            case OP_ACCEPT:
                on_accept(fd, cqe->res, cqe->flags);
                break;
            case OP_RECV:
                on_recv(fd, cqe->res, cqe->flags);
                break;
            case OP_SEND:
                on_send(fd, (unsigned)(ud >> 40), cqe->res);
                break;
            case OP_CLOSE:
                break;
            case OP_SIGNAL:
                running = false;
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
        if (nreturned) {
            io_uring_buf_ring_advance(br, (int)nreturned);
            nreturned = 0;
        }
        /*
         * Resume as many stalled connections as there are free buffers, not
         * all of them: the rest would only fail again.  And not "if something
         * came back in this batch": the buffers may have come back in an
         * earlier batch than the one that reports ENOBUFS, and then nothing
         * would ever wake the stalled connections.
         */
        for (unsigned avail = NBUFS - inuse; nstalled && avail; avail--, nstalled--) {
            arm_recv(stalled[stall_head]);
            stall_head = (stall_head + 1) % (unsigned)nfds;
        }
    }

    /* Tearing the ring down cancels every request; exit closes the sockets. */
    io_uring_queue_exit(&ring);
    close(lfd);
    close(sfd);
    return 0;
}
