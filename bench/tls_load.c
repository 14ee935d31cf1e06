/* SPDX-License-Identifier: MIT */
/*
 * tls_load: the load side of the TLS benchmark (tls.sh), on OpenSSL, one
 * thread, one level-triggered epoll set, non-blocking sockets with the
 * SSL objects on them directly.  Five modes:
 *
 *   sink    plain TCP server: accept, read and discard (the target behind a
 *           terminator for "up").
 *   source  plain TCP server: accept, write zeros as fast as the peer takes
 *           them (the target for "down").
 *   up      CONNS TLS connections through the terminator, each writing
 *           plaintext as fast as it is taken: Gbit/s of plaintext written
 *           after a warm-up.
 *   down    CONNS TLS connections reading what the source sends through the
 *           terminator: Gbit/s of plaintext read after a warm-up.
 *   hs      CONNS slots, each: connect, a full handshake (no session is ever
 *           offered for resumption, no ticket kept), one byte written and
 *           read back (an echo server behind the terminator, so the
 *           terminator has finished its side and reached its target),
 *           close_notify, close.  Handshakes per second and the latency of
 *           the whole exchange.
 *
 * The client offers one cipher suite and one group, so every terminator
 * negotiates the same: TLS 1.3 TLS_AES_128_GCM_SHA256 or TLS 1.2
 * ECDHE-ECDSA-AES128-GCM-SHA256 (ECDHE-RSA-... for an RSA certificate,
 * --rsa), X25519 (P-256 offered too: in TLS 1.2 the groups also say which
 * ECDSA curves the client takes).  The certificate is not verified (the handshake's own
 * signature still is): the load side should spend its CPU on the protocol,
 * not on path building.  Loopback only.
 *
 * Servers print "listening on 127.0.0.1 PORT" on stderr once bound; clients
 * print one line of key=value pairs on stdout at the end.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
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

#include <openssl/err.h>
#include <openssl/ssl.h>

#define MAX_CONNS  10000
#define MAX_EVENTS 256
#define BUF_SIZE   (256 * 1024)
#define NS_PER_S   1000000000ull
/* Latency: 32 linear sub-buckets per power of two of nanoseconds. */
#define SUB_BITS 5
#define SUB      (1u << SUB_BITS)
#define NBUCKETS ((64 - SUB_BITS + 1) * SUB)

enum mode { M_SINK, M_SOURCE, M_UP, M_DOWN, M_HS };
enum state { ST_IDLE, ST_CONNECTING, ST_HANDSHAKE, ST_PING, ST_PONG, ST_OPEN };

struct conn {
    int fd;
    SSL *ssl;
    enum state state;
    uint64_t t0;
};

static volatile sig_atomic_t stop;
static unsigned char buf[BUF_SIZE];
static uint64_t hist[NBUCKETS];
static uint64_t nhist;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - SUB_BITS;
    return (shift + 1) * SUB + (unsigned)((v >> shift) & (SUB - 1));
}

static double bucket_value(unsigned b)
{
    if (b < SUB)
        return b;
    unsigned shift = b / SUB - 1;
    return (double)((uint64_t)(SUB + b % SUB) << shift) * 1.015;
}

static double percentile(double p)
{
    if (!nhist)
        return 0;
    uint64_t want = (uint64_t)(p * (double)nhist), seen = 0;
    for (unsigned b = 0; b < NBUCKETS; b++) {
        seen += hist[b];
        if (seen > want)
            return bucket_value(b);
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: tls_load --mode sink|source -p PORT\n"
                    "       tls_load --mode up|down|hs -p PORT [-c CONNS] [-d SECS] "
                    "[-w WARMUP] [--tls 1.2|1.3] [--rsa]\n");
    exit(2);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 4096) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("tls_load: listen");
        exit(1);
    }
    fprintf(stderr, "listening on 127.0.0.1 %d\n", ntohs(sa.sin_port));
    return fd;
}

/* sink and source: plain servers, as many connections as come. */
static int serve(int port, bool source)
{
    int lfd = listen_on(port);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event cev = {.events = source ? EPOLLOUT | EPOLLIN : EPOLLIN,
                                              .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            bool dead = false;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                for (;;) {
                    ssize_t r = read(fd, buf, sizeof buf);
                    if (r > 0)
                        continue;
                    if (r == 0 || errno != EAGAIN)
                        dead = true;
                    break;
                }
            }
            if (!dead && source && (evs[i].events & EPOLLOUT)) {
                ssize_t w = write(fd, buf, sizeof buf);
                if (w < 0 && errno != EAGAIN)
                    dead = true;
            }
            if (dead)
                close(fd);
        }
    }
    return 0;
}

struct client {
    enum mode mode;
    SSL_CTX *ctx;
    struct sockaddr_in to;
    int ep;
    struct conn *conns;
    int nconns;
    uint64_t start, end; /* counting window, ns */
    uint64_t bytes, done, errors;
    uint64_t all_bytes, all_done; /* the whole run, warm-up included */
};

static void set_events(struct client *cl, struct conn *c, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(cl->ep, op, c->fd, &ev);
}

static void conn_close(struct client *cl, struct conn *c)
{
    (void)cl;
    if (c->ssl)
        SSL_free(c->ssl);
    c->ssl = NULL;
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->state = ST_IDLE;
}

static void conn_open(struct client *cl, struct conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->ssl = SSL_new(cl->ctx);
    SSL_set_fd(c->ssl, c->fd);
    SSL_set_connect_state(c->ssl);
    c->t0 = now_ns();
    int r = connect(c->fd, (struct sockaddr *)&cl->to, sizeof cl->to);
    if (r < 0 && errno != EINPROGRESS) {
        cl->errors++;
        conn_close(cl, c);
        return;
    }
    c->state = ST_CONNECTING;
    set_events(cl, c, EPOLLOUT, EPOLL_CTL_ADD);
}

/* An SSL call that did not finish: wait for what it wants, or fail. */
static bool wait_for(struct client *cl, struct conn *c, int r)
{
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        set_events(cl, c, EPOLLIN, EPOLL_CTL_MOD);
        return true;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        set_events(cl, c, EPOLLOUT, EPOLL_CTL_MOD);
        return true;
    }
    if (cl->errors < 3) {
        char msg[256];
        ERR_error_string_n(ERR_peek_last_error(), msg, sizeof msg);
        fprintf(stderr, "tls_load: SSL error %d in state %d: %s\n", e, c->state, msg);
    }
    ERR_clear_error();
    cl->errors++;
    conn_close(cl, c);
    return false;
}

static void count(struct client *cl, uint64_t t, uint64_t n)
{
    cl->all_bytes += n;
    if (t >= cl->start && t < cl->end)
        cl->bytes += n;
}

static void step(struct client *cl, struct conn *c)
{
    for (;;) {
        switch (c->state) {
        case ST_IDLE:
            return;
        case ST_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                cl->errors++;
                conn_close(cl, c);
                return;
            }
            c->state = ST_HANDSHAKE;
            break;
        }
        case ST_HANDSHAKE: {
            int r = SSL_do_handshake(c->ssl);
            if (r != 1) {
                wait_for(cl, c, r);
                return;
            }
            c->state = cl->mode == M_HS ? ST_PING : ST_OPEN;
            set_events(cl, c, cl->mode == M_UP ? EPOLLOUT : EPOLLIN, EPOLL_CTL_MOD);
            break;
        }
        case ST_PING: {
            size_t n = 0;
            int r = SSL_write_ex(c->ssl, "x", 1, &n);
            if (r != 1) {
                wait_for(cl, c, r);
                return;
            }
            c->state = ST_PONG;
            set_events(cl, c, EPOLLIN, EPOLL_CTL_MOD);
            break;
        }
        case ST_PONG: {
            size_t n = 0;
            int r = SSL_read_ex(c->ssl, buf, 1, &n);
            if (r != 1) {
                wait_for(cl, c, r);
                return;
            }
            uint64_t t = now_ns();
            cl->all_done++;
            if (t >= cl->start && t < cl->end) {
                cl->done++;
                hist[bucket_of(t - c->t0)]++;
                nhist++;
            }
            /* close_notify, then the socket: a client that says goodbye. */
            SSL_shutdown(c->ssl);
            conn_close(cl, c);
            if (!stop && t < cl->end)
                conn_open(cl, c);
            return;
        }
        case ST_OPEN:
            if (cl->mode == M_UP) {
                for (int i = 0; i < 64; i++) {
                    size_t n = 0;
                    int r = SSL_write_ex(c->ssl, buf, 64 * 1024, &n);
                    if (r != 1) {
                        wait_for(cl, c, r);
                        return;
                    }
                    count(cl, now_ns(), n);
                }
            } else {
                for (int i = 0; i < 64; i++) {
                    size_t n = 0;
                    int r = SSL_read_ex(c->ssl, buf, sizeof buf, &n);
                    if (r != 1) {
                        wait_for(cl, c, r);
                        return;
                    }
                    count(cl, now_ns(), n);
                }
            }
            return;
        }
    }
}

static SSL_CTX *client_ctx(int version, bool rsa)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int v = version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") != 1 ||
        SSL_CTX_set_cipher_list(ctx, rsa ? "ECDHE-RSA-AES128-GCM-SHA256"
                                         : "ECDHE-ECDSA-AES128-GCM-SHA256") != 1 ||
        SSL_CTX_set1_groups_list(ctx, "X25519:P-256") != 1) {
        fprintf(stderr, "tls_load: cannot configure TLS\n");
        exit(1);
    }
    return ctx;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"mode", required_argument, NULL, 'm'}, {"tls", required_argument, NULL, 'v'},
        {"rsa", no_argument, NULL, 'r'},        {NULL, 0, NULL, 0},
    };
    enum mode mode = M_UP;
    int port = -1, conns = 1, version = 13;
    double secs = 5, warm = 0.5;
    bool rsa = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "m:p:c:d:w:", longs, NULL)) != -1) {
        switch (opt) {
        case 'm':
            if (!strcmp(optarg, "sink"))
                mode = M_SINK;
            else if (!strcmp(optarg, "source"))
                mode = M_SOURCE;
            else if (!strcmp(optarg, "up"))
                mode = M_UP;
            else if (!strcmp(optarg, "down"))
                mode = M_DOWN;
            else if (!strcmp(optarg, "hs"))
                mode = M_HS;
            else
                usage();
            break;
        case 'p':
            port = atoi(optarg);
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'd':
            secs = atof(optarg);
            break;
        case 'w':
            warm = atof(optarg);
            break;
        case 'v':
            version = !strcmp(optarg, "1.2") ? 12 : !strcmp(optarg, "1.3") ? 13 : 0;
            break;
        case 'r':
            rsa = true;
            break;
        default:
            usage();
        }
    }
    if (port < 0 || port > 65535 || conns < 1 || conns > MAX_CONNS || secs <= 0 ||
        secs > 3600 || warm < 0 || version == 0 || optind != argc)
        usage();
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (mode == M_SINK || mode == M_SOURCE)
        return serve(port, mode == M_SOURCE);

    struct client cl = {.mode = mode, .ctx = client_ctx(version, rsa), .nconns = conns};
    cl.to.sin_family = AF_INET;
    cl.to.sin_port = htons((uint16_t)port);
    cl.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cl.ep = epoll_create1(0);
    cl.conns = calloc((size_t)conns, sizeof *cl.conns);
    uint64_t t0 = now_ns(), t = t0;
    cl.start = t + (uint64_t)(warm * 1e9);
    cl.end = cl.start + (uint64_t)(secs * 1e9);
    for (int i = 0; i < conns; i++) {
        cl.conns[i].fd = -1;
        conn_open(&cl, &cl.conns[i]);
    }
    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        t = now_ns();
        if (t >= cl.end)
            break;
        int n = epoll_wait(cl.ep, evs, MAX_EVENTS, 100);
        for (int i = 0; i < n; i++)
            step(&cl, evs[i].data.ptr);
        /* A bulk connection that failed is not replaced: its loss shows as
         * errors; a handshake slot that failed starts over. */
        if (mode == M_HS)
            for (int i = 0; i < conns; i++)
                if (cl.conns[i].state == ST_IDLE && now_ns() < cl.end)
                    conn_open(&cl, &cl.conns[i]);
    }
    double window = (double)(cl.end - cl.start) / 1e9;
    double elapsed = (double)(now_ns() - t0) / 1e9;
    if (mode == M_HS) {
        printf("mode=hs tls=1.%d conns=%d secs=%.2f handshakes=%llu per_s=%.1f p50_us=%.1f "
               "p99_us=%.1f all=%llu elapsed=%.3f errors=%llu\n",
               version - 10, conns, window, (unsigned long long)cl.done,
               (double)cl.done / window, percentile(0.5) / 1e3, percentile(0.99) / 1e3,
               (unsigned long long)cl.all_done, elapsed, (unsigned long long)cl.errors);
    } else {
        printf("mode=%s conns=%d secs=%.2f bytes=%llu gbit_per_s=%.3f all=%llu elapsed=%.3f "
               "errors=%llu\n",
               mode == M_UP ? "up" : "down", conns, window, (unsigned long long)cl.bytes,
               (double)cl.bytes * 8 / window / 1e9, (unsigned long long)cl.all_bytes, elapsed,
               (unsigned long long)cl.errors);
    }
    for (int i = 0; i < conns; i++)
        conn_close(&cl, &cl.conns[i]);
    SSL_CTX_free(cl.ctx);
    return cl.done || cl.bytes ? 0 : 1;
}
