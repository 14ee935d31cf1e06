/* SPDX-License-Identifier: MIT */
/*
 * loadgen: the load generator for the echo benchmark.  Each thread drives
 * its share of the connections from one level-triggered epoll set and prints
 * nothing until the end, when the process writes one line of key=value
 * pairs.  Three modes:
 *
 *   echo    every connection sends SIZE bytes, waits for all of them to come
 *           back (and checks them), and starts again: a closed loop.  A
 *           request's latency runs from its first send to its last byte.
 *   accept  CONNS slots each connect, send one byte, read it back and close,
 *           over and over: connections per second.
 *   idle    open CONNS connections, echo one byte on each so the server has
 *           really set it up, print "idle N ready" on stdout, hold them SECS.
 *
 * Loopback only: this is a tool for measuring servers on the same machine,
 * and it refuses to point its load anywhere else.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MAX_CONNS    100000
#define MAX_SIZE     (16u << 20)
#define MAX_SECS     3600.0
#define MAX_THREADS  64
#define MAX_SRCS     64
#define MAX_EVENTS   256
#define MAX_SAID     5
#define RBUF_SIZE    65536
/* Connects in flight per thread while setting up: enough to be quick, few
 * enough that a single-threaded server's listen backlog never overflows (a
 * dropped SYN costs a one-second retransmit). */
#define SETUP_WINDOW 64
#define SETUP_LIMIT  (60 * NS_PER_S)
#define NS_PER_S     1000000000ull

enum mode { MODE_ECHO, MODE_ACCEPT, MODE_IDLE };
static const char *const mode_names[] = {
    [MODE_ECHO] = "echo", [MODE_ACCEPT] = "accept", [MODE_IDLE] = "idle"};

enum state { ST_NEW, ST_CONNECTING, ST_BUSY, ST_READY, ST_DEAD };

struct conn {
    int fd;
    uint8_t state;
    bool want_out; /* EPOLLOUT is in the interest set */
    uint32_t len;  /* bytes in the current request */
    uint32_t sent, rcvd;
    uint64_t t0; /* ns, start of the current request */
};

/*
 * Latency histogram: 32 linear sub-buckets per power of two of nanoseconds,
 * so every value is kept within 3% in a fixed 15 KiB, whatever the count.
 */
#define SUB_BITS 5
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

struct worker {
    pthread_t tid;
    int ep;
    struct conn *conns;
    int nconns;
    unsigned src_next; /* round-robin over the -b addresses */
    bool running;      /* past setup: completed requests count */
    uint64_t deadline; /* ns */
    uint64_t requests, errors, ready;
    char rbuf[RBUF_SIZE];
    uint64_t hist[NBUCKETS];
};

static struct {
    enum mode mode;
    int conns, threads;
    uint32_t size;
    double secs;
    struct sockaddr_storage dst;
    socklen_t dstlen;
    struct sockaddr_in srcs[MAX_SRCS];
    int nsrcs;
} opt = {.mode = MODE_ECHO, .conns = 1, .threads = 1, .size = 64, .secs = 5};

static char *pattern;
static pthread_barrier_t setup_done;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static unsigned hist_index(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned shift = 63u - (unsigned)__builtin_clzll(v) - SUB_BITS;
    return (shift + 1) * SUB + (unsigned)((v >> shift) & (SUB - 1));
}

/* The middle of bucket i, in ns. */
static double hist_value(unsigned i)
{
    if (i < SUB)
        return i;
    unsigned shift = i / SUB - 1;
    uint64_t low = (uint64_t)(SUB + i % SUB) << shift;
    return (double)low + (double)((1ull << shift) - 1) / 2;
}

static double hist_quantile(const uint64_t *h, uint64_t total, double q)
{
    uint64_t want = (uint64_t)ceil(q * (double)total), seen = 0;
    for (unsigned i = 0; i < NBUCKETS && total; i++) {
        seen += h[i];
        if (seen >= want && seen)
            return hist_value(i);
    }
    return 0;
}

static void set_interest(struct worker *w, struct conn *c, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    if (epoll_ctl(w->ep, op, c->fd, &ev) < 0) {
        perror("loadgen: epoll_ctl");
        exit(1);
    }
}

/*
 * Errors are counted, and the first few also said, so that a run with
 * errors=N in its line leaves some trace of what went wrong.  err is an errno
 * value or 0.
 */
static void fail(struct worker *w, struct conn *c, const char *why, int err)
{
    static atomic_int said;
    if (atomic_fetch_add(&said, 1) < MAX_SAID)
        fprintf(stderr, "loadgen: connection error: %s%s%s\n", why, err ? ": " : "",
                err ? strerror(err) : "");
    w->errors++;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_DEAD;
}

/*
 * A nonblocking connect from the next source address.  With -b the port is
 * left to connect(), not bind(): IP_BIND_ADDRESS_NO_PORT lets the kernel
 * pick per destination and reuse ports in TIME_WAIT, without which accept
 * mode runs out of ports after a few seconds.
 */
static int start_connect(struct worker *w, struct conn *c, uint32_t events)
{
    static const int one = 1;
    int err, fd = socket(opt.dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (opt.mode == MODE_ECHO)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (opt.nsrcs) {
        const struct sockaddr_in *src = &opt.srcs[w->src_next++ % (unsigned)opt.nsrcs];
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        if (bind(fd, (const struct sockaddr *)src, sizeof *src) < 0)
            goto err;
    }
    if (connect(fd, (struct sockaddr *)&opt.dst, opt.dstlen) < 0 && errno != EINPROGRESS)
        goto err;
    c->fd = fd;
    c->state = ST_CONNECTING;
    c->want_out = true;
    c->t0 = now_ns();
    set_interest(w, c, EPOLL_CTL_ADD, events);
    return 0;
err:
    err = errno;
    close(fd);
    errno = err;
    return -1;
}

static void record(struct worker *w, struct conn *c, uint64_t t)
{
    w->hist[hist_index(t - c->t0)]++;
}

/* Sends what the socket takes; EPOLLOUT stays in the set only while some of
 * the request is still unsent. */
static bool push(struct worker *w, struct conn *c)
{
    if (c->sent < c->len) {
        ssize_t n = send(c->fd, pattern + c->sent, c->len - c->sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return false;
        if (n > 0)
            c->sent += (uint32_t)n;
    }
    bool want_out = c->sent < c->len;
    if (want_out != c->want_out) {
        set_interest(w, c, EPOLL_CTL_MOD, EPOLLIN | (want_out ? EPOLLOUT : 0));
        c->want_out = want_out;
    }
    return true;
}

static bool begin_request(struct worker *w, struct conn *c, uint32_t len, uint64_t t)
{
    c->state = ST_BUSY;
    c->len = len;
    c->sent = c->rcvd = 0;
    c->t0 = t;
    return push(w, c);
}

/*
 * Reading goes on while sending does, so a message larger than the socket
 * buffers cannot deadlock with a server that is blocked writing it back.
 * Returns 1 when the whole request came back, 0 to wait, -1 on error.
 */
static int pump(struct worker *w, struct conn *c, uint32_t events, const char **why)
{
    if ((events & EPOLLOUT) && !push(w, c)) {
        *why = "send";
        return -1;
    }
    if (!(events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
        return 0;
    size_t room = c->len - c->rcvd;
    ssize_t n = recv(c->fd, w->rbuf, room < RBUF_SIZE ? room : RBUF_SIZE, 0);
    if (n < 0 && errno == EAGAIN)
        return 0;
    if (n <= 0) {
        *why = n ? "recv" : "the server closed the connection";
        errno = n ? errno : 0;
        return -1;
    }
    /* Every request carries the same bytes, so pattern+rcvd is what must
     * come back; a server that reorders or corrupts counts as an error. */
    if ((uint32_t)n > c->sent - c->rcvd || memcmp(w->rbuf, pattern + c->rcvd, (size_t)n) != 0) {
        *why = "the echo differs from what was sent";
        errno = 0;
        return -1;
    }
    c->rcvd += (uint32_t)n;
    return c->rcvd == c->len;
}

/* Echo and idle modes: one event on one connection, during setup or run. */
static void on_event(struct worker *w, struct conn *c, uint32_t events)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        uint32_t first = opt.mode == MODE_IDLE ? 1 : opt.size;
        if (err)
            fail(w, c, "connect", err);
        else if (!begin_request(w, c, first, c->t0))
            fail(w, c, "send", errno);
        return;
    }
    if (c->state != ST_BUSY) {
        fail(w, c, "the server closed or wrote to an idle connection", 0);
        return;
    }
    const char *why;
    int r = pump(w, c, events, &why);
    if (r < 0) {
        fail(w, c, why, errno);
        return;
    }
    if (r == 0)
        return;
    uint64_t t = now_ns();
    if (!w->running) {
        /* Setup latency (connect, then the first echo) is what idle mode
         * reports; echo mode forgets it and starts counting afresh. */
        if (opt.mode == MODE_IDLE)
            record(w, c, t);
        c->state = ST_READY;
        w->ready++;
        return;
    }
    if (t >= w->deadline) {
        c->state = ST_READY;
        return;
    }
    record(w, c, t);
    w->requests++;
    if (!begin_request(w, c, opt.size, t))
        fail(w, c, "send", errno);
}

static int wait_ms(uint64_t until)
{
    uint64_t t = now_ns();
    return t >= until ? 0 : (int)((until - t + 999999) / 1000000);
}

/* Opens every connection of the thread, SETUP_WINDOW at a time, and echoes
 * one message on each.  What is not up within SETUP_LIMIT counts as errors. */
static void setup(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t limit = now_ns() + SETUP_LIMIT;
    int next = 0, busy = 0;
    for (;;) {
        /* EPOLLIN is in the set from the start: push() only ever toggles
         * EPOLLOUT, and a first message larger than the socket buffers needs
         * reading while it is being sent. */
        for (; next < w->nconns && busy < SETUP_WINDOW; next++) {
            if (start_connect(w, &w->conns[next], EPOLLIN | EPOLLOUT) == 0)
                busy++;
            else
                fail(w, &w->conns[next], "connect", errno);
        }
        if (busy == 0 || now_ns() >= limit)
            break;
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, wait_ms(limit));
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            bool was_busy = c->state == ST_CONNECTING || c->state == ST_BUSY;
            on_event(w, c, evs[i].events);
            busy -= was_busy && (c->state == ST_READY || c->state == ST_DEAD);
        }
    }
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].state == ST_CONNECTING || w->conns[i].state == ST_BUSY)
            fail(w, &w->conns[i], "not set up within the time limit", 0);
}

static void run_echo(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    uint64_t t = now_ns();
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].state == ST_READY && !begin_request(w, &w->conns[i], opt.size, t))
            fail(w, &w->conns[i], "send", errno);
    while (now_ns() < w->deadline) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, wait_ms(w->deadline));
        for (int i = 0; i < n; i++)
            on_event(w, evs[i].data.ptr, evs[i].events);
    }
}

/*
 * Accept mode: a slot's cycle is connect, send one byte, read it back, close.
 * Edge-triggered interest in both directions, set once when the socket is
 * made, saves an epoll_ctl per step: the connect completing is one EPOLLOUT
 * edge, the echo arriving one EPOLLIN edge.
 */
static void cycle_event(struct worker *w, struct conn *c, uint32_t events)
{
    static const char byte = 'x';
    char got = 0;
    ssize_t n;
    const char *why;
    if (c->state == ST_CONNECTING) {
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        n = send(c->fd, &byte, 1, MSG_NOSIGNAL);
        why = "connect or send";
        if (n != 1)
            goto err;
        c->state = ST_BUSY;
        return;
    }
    n = recv(c->fd, &got, 1, 0);
    if (n < 0 && errno == EAGAIN)
        return;
    why = n < 0 ? "recv" : n == 0 ? "the server closed the connection" : "wrong echo";
    if (n != 1 || got != byte)
        goto err;
    close(c->fd);
    c->fd = -1;
    c->state = ST_NEW;
    uint64_t t = now_ns();
    if (t < w->deadline) {
        record(w, c, t);
        w->requests++;
    }
    return;
err:
    fail(w, c, why, n < 0 ? errno : 0);
    c->state = ST_NEW;
}

static void run_accept(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        /* Restart every slot that finished or failed; one that cannot even
         * start (no port, no fd) waits for the next round. */
        bool idle_slot = false;
        for (int i = 0; i < w->nconns; i++) {
            struct conn *c = &w->conns[i];
            if (c->state != ST_NEW)
                continue;
            if (start_connect(w, c, EPOLLIN | EPOLLOUT | EPOLLET) < 0) {
                fail(w, c, "connect", errno);
                c->state = ST_NEW;
                idle_slot = true;
            }
        }
        int timeout = wait_ms(w->deadline);
        if (timeout == 0)
            break;
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, idle_slot && timeout > 1 ? 1 : timeout);
        for (int i = 0; i < n; i++)
            cycle_event(w, evs[i].data.ptr, evs[i].events);
    }
}

/* Idle mode: any event now is a connection the server dropped. */
static void run_idle(struct worker *w)
{
    struct epoll_event evs[MAX_EVENTS];
    while (now_ns() < w->deadline) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, wait_ms(w->deadline));
        for (int i = 0; i < n; i++)
            on_event(w, evs[i].data.ptr, evs[i].events);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    if (opt.mode != MODE_ACCEPT)
        setup(w);
    pthread_barrier_wait(&setup_done);
    w->running = true;
    w->deadline = now_ns() + (uint64_t)(opt.secs * NS_PER_S);
    if (opt.mode == MODE_ECHO)
        run_echo(w);
    else if (opt.mode == MODE_ACCEPT)
        run_accept(w);
    else
        run_idle(w);
    for (int i = 0; i < w->nconns; i++)
        if (w->conns[i].fd >= 0)
            close(w->conns[i].fd);
    return NULL;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: loadgen [--mode echo|accept|idle] -p PORT [-H HOST] [-c CONNS] [-s SIZE]\n"
            "               [-d SECS] [-t THREADS] [-b SRC,SRC,...]\n"
            "  -m, --mode      echo (closed loop, req/s and latency), accept (connect, 1-byte\n"
            "                  echo, close: conn/s) or idle (hold CONNS open SECS)\n"
            "  -c, --conns     connections, or parallel slots in accept mode (1)\n"
            "  -s, --size      message bytes in echo mode (64)\n"
            "  -d, --duration  seconds to run or hold (5)\n"
            "  -H, --host      loopback address of the server (127.0.0.1)\n"
            "  -p, --port      port of the server\n"
            "  -b, --bind      127.0.0.x source addresses to spread connections over\n"
            "  -t, --threads   threads (1)\n"
            "Prints one line: mode conns size secs requests req_per_s p50_us p99_us errors.\n");
}

static void die_usage(const char *flag, const char *arg, const char *why)
{
    fprintf(stderr, "loadgen: %s %s: %s\n", flag, arg, why);
    exit(2);
}

static long parse_long(const char *flag, const char *arg, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (end == arg || *end || errno)
        die_usage(flag, arg, "not a number");
    if (v < min)
        die_usage(flag, arg, "too small");
    if (v > max)
        die_usage(flag, arg, "too large");
    return v;
}

static void parse_host(const char *arg, int port)
{
    struct sockaddr_in *in = (struct sockaddr_in *)&opt.dst;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&opt.dst;
    memset(&opt.dst, 0, sizeof opt.dst);
    if (inet_pton(AF_INET, arg, &in->sin_addr) == 1) {
        if ((ntohl(in->sin_addr.s_addr) >> 24) != 127)
            die_usage("-H", arg, "not a loopback address (127.0.0.0/8 or ::1 only)");
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        opt.dstlen = sizeof *in;
    } else if (inet_pton(AF_INET6, arg, &in6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
            die_usage("-H", arg, "not a loopback address (127.0.0.0/8 or ::1 only)");
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        opt.dstlen = sizeof *in6;
    } else {
        die_usage("-H", arg, "not a numeric IPv4 or IPv6 address");
    }
}

static void parse_srcs(char *arg)
{
    for (char *save, *s = strtok_r(arg, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        if (opt.nsrcs == MAX_SRCS)
            die_usage("-b", s, "too many addresses");
        struct sockaddr_in *src = &opt.srcs[opt.nsrcs++];
        memset(src, 0, sizeof *src);
        src->sin_family = AF_INET;
        if (inet_pton(AF_INET, s, &src->sin_addr) != 1 ||
            (ntohl(src->sin_addr.s_addr) >> 24) != 127)
            die_usage("-b", s, "not a 127.0.0.0/8 address");
    }
}

static void parse(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'}, {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'}, {"duration", required_argument, NULL, 'd'},
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'}, {"threads", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    const char *host = "127.0.0.1";
    char *srcs = NULL, *end;
    int port = -1, ch;
    while ((ch = getopt_long(argc, argv, "m:c:s:d:H:p:b:t:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            if (!strcmp(optarg, "echo"))
                opt.mode = MODE_ECHO;
            else if (!strcmp(optarg, "accept"))
                opt.mode = MODE_ACCEPT;
            else if (!strcmp(optarg, "idle"))
                opt.mode = MODE_IDLE;
            else
                die_usage("--mode", optarg, "not echo, accept or idle");
            break;
        case 'c':
            opt.conns = (int)parse_long("-c", optarg, 1, MAX_CONNS);
            break;
        case 's':
            opt.size = (uint32_t)parse_long("-s", optarg, 1, MAX_SIZE);
            break;
        case 'd':
            opt.secs = strtod(optarg, &end);
            if (end == optarg || *end)
                die_usage("-d", optarg, "not a number");
            if (!(opt.secs >= 0.1 && opt.secs <= MAX_SECS))
                die_usage("-d", optarg, "not between 0.1 and 3600 seconds");
            break;
        case 'H':
            host = optarg;
            break;
        case 'p':
            port = (int)parse_long("-p", optarg, 1, 65535);
            break;
        case 'b':
            srcs = optarg;
            break;
        case 't':
            opt.threads = (int)parse_long("-t", optarg, 1, MAX_THREADS);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "loadgen: %s: unexpected argument\n", argv[optind]);
        exit(2);
    }
    if (port < 0) {
        fprintf(stderr, "loadgen: -p PORT is required\n");
        exit(2);
    }
    parse_host(host, port);
    if (srcs) {
        if (opt.dst.ss_family != AF_INET)
            die_usage("-b", srcs, "source addresses need an IPv4 -H");
        parse_srcs(srcs);
    }
    if (opt.threads > opt.conns) {
        fprintf(stderr, "loadgen: -t %d: more threads than connections\n", opt.threads);
        exit(2);
    }
}

/* Every connection is an fd; raise the soft limit as far as it goes and
 * refuse up front rather than fail a few thousand connects later. */
static void check_nofile(void)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
    rlim_t need = (rlim_t)opt.conns + (rlim_t)opt.threads + 16;
    if (rl.rlim_cur < need) {
        fprintf(stderr, "loadgen: -c %d: needs %llu file descriptors, the limit is %llu\n",
                opt.conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    parse(argc, argv);
    check_nofile();
    signal(SIGPIPE, SIG_IGN);

    uint32_t plen = opt.mode == MODE_ECHO ? opt.size : 1;
    pattern = malloc(plen);
    struct worker *ws = calloc((size_t)opt.threads, sizeof *ws);
    struct conn *conns = calloc((size_t)opt.conns, sizeof *conns);
    if (!pattern || !ws || !conns) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    /* Not a repeating byte, so a reordered or shifted echo shows. */
    for (uint32_t i = 0; i < plen; i++)
        pattern[i] = (char)(i * 7 % 251);
    if (opt.mode == MODE_ACCEPT)
        pattern[0] = 'x';

    pthread_barrier_init(&setup_done, NULL, (unsigned)opt.threads + 1);
    for (int t = 0; t < opt.threads; t++) {
        struct worker *w = &ws[t];
        int first = (int)((long)opt.conns * t / opt.threads);
        w->conns = conns + first;
        w->nconns = (int)((long)opt.conns * (t + 1) / opt.threads) - first;
        w->src_next = (unsigned)first;
        for (int i = 0; i < w->nconns; i++)
            w->conns[i].fd = -1;
        w->ep = epoll_create1(EPOLL_CLOEXEC);
        if (w->ep < 0 || pthread_create(&w->tid, NULL, worker_main, w) != 0) {
            perror("loadgen: thread");
            return 1;
        }
    }

    pthread_barrier_wait(&setup_done);
    if (opt.mode == MODE_IDLE) {
        uint64_t ready = 0;
        for (int t = 0; t < opt.threads; t++)
            ready += ws[t].ready;
        printf("idle %llu ready\n", (unsigned long long)ready);
        fflush(stdout);
    }

    uint64_t requests = 0, errors = 0, total = 0;
    static uint64_t hist[NBUCKETS];
    for (int t = 0; t < opt.threads; t++) {
        pthread_join(ws[t].tid, NULL);
        requests += ws[t].requests;
        errors += ws[t].errors;
        for (unsigned i = 0; i < NBUCKETS; i++)
            hist[i] += ws[t].hist[i];
    }
    for (unsigned i = 0; i < NBUCKETS; i++)
        total += hist[i];
    /* In idle mode a "request" is a connection that was set up and held to
     * the end; one the server dropped is an error instead. */
    if (opt.mode == MODE_IDLE)
        for (int i = 0; i < opt.conns; i++)
            requests += conns[i].state == ST_READY;
    printf("mode=%s conns=%d size=%u secs=%.2f requests=%llu req_per_s=%.1f p50_us=%.1f "
           "p99_us=%.1f errors=%llu\n",
           mode_names[opt.mode], opt.conns, opt.mode == MODE_ECHO ? opt.size : 1, opt.secs,
           (unsigned long long)requests, opt.mode == MODE_IDLE ? 0.0 : (double)requests / opt.secs,
           hist_quantile(hist, total, 0.50) / 1000, hist_quantile(hist, total, 0.99) / 1000,
           (unsigned long long)errors);
    for (int t = 0; t < opt.threads; t++)
        close(ws[t].ep);
    pthread_barrier_destroy(&setup_done);
    free(conns);
    free(ws);
    free(pattern);
    /* Errors are in the line; the exit status says whether anything at all
     * was measured. */
    return requests ? 0 : 1;
}
