/* SPDX-License-Identifier: MIT */
/*
 * listen --key and connect --key (docs/PROTOCOL.md) through the binaries:
 * round trips on every backend, 64 MiB each way with a half-close, -k and
 * --broker with a channel per client, and each failure the channel must
 * catch: a wrong key, one bit flipped anywhere in the handshake or the
 * data, a frame or a stream cut short, a replayed handshake, a peer
 * without --key, and a stalled handshake, which times out without holding
 * up anyone else.
 *
 * The tampering is done by a proxy thread between the two ends.  It
 * follows the frames going through (their lengths are in clear), so each
 * test knows exactly which plaintext may come out of a failed stream: that
 * of the whole frames before the bad one, and not one byte more.  Bit
 * positions are drawn from a seed that is logged (IOCP_TEST_SEED replays
 * a run), so that runs cover different positions.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "nc_support.h"

static char tmpdir[64];

static void remove_dir(void)
{
    proc_cleanup_all();
    if (!tmpdir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", tmpdir);
}

/* Run iocptool with stdin on /dev/null and the arguments; its status. */
static int run(struct proc *p, const char *const *args)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_start(p, devnull, args));
    close(devnull);
    return proc_wait(p, 10000);
}

#if IOCP_HAVE_SODIUM

static char key1[96], key2[96];

static void keygen(const char *path)
{
    struct proc p;
    const char *args[] = {"keygen", path, NULL};
    cr_assert_eq(run(&p, args), 0, "keygen %s: %s", path, p.errbuf);
}

static void make_keys(void)
{
    /* A reader that went away is a failed check, not a dead test. */
    signal(SIGPIPE, SIG_IGN);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/iocp-secure-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    snprintf(key1, sizeof key1, "%s/one.key", tmpdir);
    snprintf(key2, sizeof key2, "%s/two.key", tmpdir);
    keygen(key1);
    keygen(key2);
}

TestSuite(cli_secure, .init = make_keys, .fini = remove_dir, .timeout = 150);

#define HS_BYTES       126 /* each way: Hello 70, Confirm 56 */
#define FRAME_OVERHEAD 19  /* length 2, secretstream tag and MAC 17 */
#define TIMEOUT_MS     10000
#define REC_MAX        ((size_t)1 << 20)

#ifdef IOCP_TEST_SANITIZED
#define BULK_BYTES ((size_t)16 << 20)
#else
#define BULK_BYTES ((size_t)64 << 20)
#endif

/* What a failed channel may say (secure_strerror), one of them per end. */
static const char *const reasons[] = {
    "the peer does not speak iocptool's encrypted protocol",
    "the peer speaks another version of the encrypted protocol",
    "both ends took the same role",
    "authentication failed: wrong key or tampered handshake",
    "data authentication failed: tampered or corrupted frame",
    "frame length out of range: tampered or corrupted stream",
    "frame out of sequence",
    "stream cut before its authenticated end",
    "connection closed during the handshake",
};

static bool says_why(const char *err)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (strstr(err, reasons[i]))
            return true;
    return false;
}

/* ---- a seeded generator: positions differ across runs, and replay ---- */

static uint64_t rng_state, seed;

static void seed_rng(void)
{
    const char *env = getenv("IOCP_TEST_SEED");
    seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    rng_state = seed ? seed : 1;
    cr_log_info("seed %llu (IOCP_TEST_SEED=%llu replays this run)", (unsigned long long)seed,
                (unsigned long long)seed);
}

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

/* ---- the tampering proxy ---- */

/* One direction through the proxy: what to do to it, and what it saw. */
struct tap {
    int64_t flip_at; /* flip bit flip_bit of the byte at this offset; -1: none */
    int flip_bit;
    int64_t cut_at; /* forward nothing from this offset on; -1: none */
    int cut_frame;  /* or from cut_delta bytes into data frame cut_frame (from 1); 0: none */
    int cut_delta;
    size_t cut_tail; /* or drop the last cut_tail bytes of the stream */

    uint64_t off;          /* bytes seen */
    int frame;             /* data frames begun */
    uint64_t frame_start;  /* offset of the current frame */
    uint64_t next_start;   /* offset of the next one */
    unsigned char len_hi;  /* first byte of the current frame's length */
    uint64_t plain;        /* plaintext of the frames begun (once their length is in) */
    uint64_t plain_before; /* plaintext of the frames before the current one */
    int64_t hit_plain;     /* plaintext before the frame the flip or cut hit; -1: none */
    bool cut;              /* nothing more is forwarded */
    bool eof;              /* the source has ended */
    unsigned char *rec;    /* the first REC_MAX bytes, as sent (before a flip) */
    size_t nrec;
    unsigned char hold[64]; /* held back for cut_tail */
    size_t nhold;
};

struct proxy {
    int lfd, fd[2]; /* fd[0]: the client's side, fd[1]: the server's side */
    uint16_t port, target;
    struct tap tap[2]; /* 0: client to server, 1: server to client */
    pthread_t thread;
};

static void proxy_init(struct proxy *px)
{
    memset(px, 0, sizeof *px);
    px->fd[0] = px->fd[1] = -1;
    for (int d = 0; d < 2; d++) {
        struct tap *t = &px->tap[d];
        t->flip_at = t->cut_at = t->hit_plain = -1;
        t->next_start = HS_BYTES;
        t->rec = malloc(REC_MAX);
        cr_assert_not_null(t->rec);
    }
    px->lfd = tn_listen(&px->port);
    cr_assert_geq(px->lfd, 0);
}

static void send_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* that end is gone: its own outcome tells */
        p += w;
        n -= (size_t)w;
    }
}

/*
 * Pass n bytes that came in on direction t to dst, doing to them what t
 * says.  The frame tracking reads the bytes as sent, before any flip: the
 * frames are those the sender made.
 */
static void tap_pass(struct tap *t, unsigned char *buf, size_t n, int dst)
{
    size_t pass = 0;
    for (; pass < n; pass++) {
        uint64_t off = t->off;
        unsigned char byte = buf[pass];
        if (t->nrec < REC_MAX)
            t->rec[t->nrec++] = byte;
        if (off >= HS_BYTES) {
            if (off == t->next_start) {
                t->frame++;
                t->frame_start = off;
                t->plain_before = t->plain;
                t->len_hi = byte;
            } else if (off == t->frame_start + 1) {
                size_t len = (size_t)t->len_hi << 8 | byte;
                t->plain += len;
                t->next_start = t->frame_start + len + FRAME_OVERHEAD;
            }
        }
        uint64_t before = off < HS_BYTES ? 0 : t->plain_before;
        if ((t->cut_at >= 0 && off == (uint64_t)t->cut_at) ||
            (t->cut_frame && t->frame == t->cut_frame &&
             off == t->frame_start + (uint64_t)t->cut_delta)) {
            t->cut = true;
            t->hit_plain = (int64_t)before;
            break;
        }
        if (t->flip_at >= 0 && off == (uint64_t)t->flip_at) {
            buf[pass] ^= (unsigned char)(1u << t->flip_bit);
            t->hit_plain = (int64_t)before;
        }
        t->off++;
    }
    if (t->cut_tail == 0) {
        send_all(dst, buf, pass);
    } else {
        /* Keep the last cut_tail bytes back until more come: at the end
         * of the stream they are the ones dropped. */
        unsigned char *all = malloc(t->nhold + pass);
        memcpy(all, t->hold, t->nhold);
        memcpy(all + t->nhold, buf, pass);
        size_t total = t->nhold + pass;
        size_t out = total > t->cut_tail ? total - t->cut_tail : 0;
        send_all(dst, all, out);
        t->nhold = total - out;
        memcpy(t->hold, all + out, t->nhold);
        free(all);
    }
    if (t->cut)
        shutdown(dst, SHUT_WR); /* a FIN as an attacker would forge it */
}

static void *proxy_run(void *arg)
{
    struct proxy *px = arg;
    px->fd[0] = nc_accept(px->lfd, 10000);
    if (px->fd[0] < 0)
        return NULL;
    px->fd[1] = tn_connect(px->target);
    if (px->fd[1] < 0)
        return NULL;
    unsigned char *buf = malloc(1 << 16);
    uint64_t end = tn_now_ms() + 30000;
    while (!(px->tap[0].eof && px->tap[1].eof) && tn_now_ms() < end) {
        struct pollfd pfd[2];
        int k = 0, map[2];
        for (int d = 0; d < 2; d++) {
            if (!px->tap[d].eof) {
                pfd[k] = (struct pollfd){.fd = px->fd[d], .events = POLLIN};
                map[k++] = d;
            }
        }
        if (poll(pfd, (nfds_t)k, 100) <= 0)
            continue;
        for (int j = 0; j < k; j++) {
            if (!pfd[j].revents)
                continue;
            int d = map[j];
            struct tap *t = &px->tap[d];
            ssize_t n = recv(px->fd[d], buf, 1 << 16, 0);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0) {
                /* The end (or a reset) of one side is passed on as an end;
                 * what cut_tail held back is dropped. */
                t->eof = true;
                if (!t->cut)
                    shutdown(px->fd[!d], SHUT_WR);
                continue;
            }
            if (!t->cut) /* after a cut the rest is read and dropped */
                tap_pass(t, buf, (size_t)n, px->fd[!d]);
        }
    }
    free(buf);
    return NULL;
}

static void proxy_start(struct proxy *px, uint16_t target)
{
    px->target = target;
    cr_assert_eq(pthread_create(&px->thread, NULL, proxy_run, px), 0);
}

static void proxy_end(struct proxy *px)
{
    pthread_join(px->thread, NULL);
    for (int d = 0; d < 2; d++)
        if (px->fd[d] >= 0)
            close(px->fd[d]);
    close(px->lfd);
}

static void proxy_free(struct proxy *px)
{
    for (int d = 0; d < 2; d++)
        free(px->tap[d].rec);
}

/* ---- driving processes: feed stdin, collect stdout, until all end ---- */

struct io {
    struct proc *p;
    const unsigned char *in; /* written to stdin, which is then closed */
    size_t nin, written;
    bool keep_in;       /* keep stdin open (and empty) until stdout ends */
    unsigned char *out; /* stdout, up to cap bytes */
    size_t cap, nout;
    bool eof;
};

static void io_init(struct io *io, struct proc *p, const void *in, size_t nin, size_t cap)
{
    memset(io, 0, sizeof *io);
    io->p = p;
    io->in = in;
    io->nin = nin;
    io->cap = cap;
    io->out = malloc(cap ? cap : 1);
    if (p->in >= 0)
        tn_set_nonblock(p->in, true);
}

/* Until every stdout has ended (or timeout_ms); true if they all did. */
static bool drive(struct io *io, int n, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    unsigned char buf[1 << 16];
    for (;;) {
        struct pollfd pfd[12];
        struct io *owner[12];
        int kind[12], k = 0;
        bool done = true;
        for (int i = 0; i < n; i++) {
            struct proc *p = io[i].p;
            if (p->in >= 0 && !io[i].keep_in && io[i].written == io[i].nin)
                proc_close_in(p);
            if (p->in >= 0 && io[i].written < io[i].nin) {
                pfd[k] = (struct pollfd){.fd = p->in, .events = POLLOUT};
                owner[k] = &io[i];
                kind[k++] = 0;
            }
            if (!io[i].eof) {
                done = false;
                pfd[k] = (struct pollfd){.fd = p->out, .events = POLLIN};
                owner[k] = &io[i];
                kind[k++] = 1;
            }
            if (p->err >= 0) {
                pfd[k] = (struct pollfd){.fd = p->err, .events = POLLIN};
                owner[k] = &io[i];
                kind[k++] = 2;
            }
        }
        uint64_t now = tn_now_ms();
        if (done || now >= end)
            return done;
        if (poll(pfd, (nfds_t)k, (int)(end - now)) <= 0)
            continue;
        for (int j = 0; j < k; j++) {
            struct io *x = owner[j];
            if (!pfd[j].revents)
                continue;
            if (kind[j] == 0) {
                ssize_t w = write(x->p->in, x->in + x->written, x->nin - x->written);
                if (w > 0)
                    x->written += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR)
                    x->written = x->nin; /* it is gone; its status tells why */
            } else if (kind[j] == 1) {
                ssize_t r = read(x->p->out, buf, sizeof buf);
                if (r < 0 && (errno == EAGAIN || errno == EINTR))
                    continue;
                if (r <= 0) {
                    x->eof = true;
                    if (x->keep_in)
                        proc_close_in(x->p);
                    continue;
                }
                size_t room = x->nout < x->cap ? x->cap - x->nout : 0;
                memcpy(x->out + x->nout, buf, (size_t)r < room ? (size_t)r : room);
                x->nout += (size_t)r;
            } else {
                proc_pump_err(x->p, 0);
            }
        }
    }
}

static void io_free(struct io *io, int n)
{
    for (int i = 0; i < n; i++)
        free(io[i].out);
}

static char port_buf[8][8];

static const char *port_str(int slot, uint16_t port)
{
    snprintf(port_buf[slot], sizeof port_buf[slot], "%u", port);
    return port_buf[slot];
}

/* ---- one connection through the proxy ---- */

enum { LISTEN = 0, CONNECT = 1 };

struct pair {
    struct proc p[2]; /* LISTEN, CONNECT */
    struct io io[2];
    int status[2];
};

/*
 * run_pair(px, dir, data, len, pr):
 * listen --key and connect --key through the proxy px.  The sender of
 * direction dir (0: connect to listen, 1: listen to connect) gets data on
 * stdin, then its end; the receiver gets nothing, and its stdin stays open
 * until its stdout ends, so that it never ends its own direction before it
 * has seen the whole of the other: a receiver that fails has sent no FINAL
 * frame, and the sender must see the cut.
 */
static void run_pair(struct proxy *px, int dir, const unsigned char *data, size_t len,
                     struct pair *pr)
{
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&pr->p[LISTEN], largs);
    proxy_start(px, port);
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, px->port), NULL};
    cr_assert(nc_start(&pr->p[CONNECT], -1, cargs));
    int sender = dir == 0 ? CONNECT : LISTEN;
    for (int i = 0; i < 2; i++) {
        bool sends = i == sender;
        io_init(&pr->io[i], &pr->p[i], sends ? data : NULL, sends ? len : 0, len + 1);
        pr->io[i].keep_in = !sends;
    }
    cr_expect(drive(pr->io, 2, 30000), "seed %llu: the ends did not finish; stderr: %s / %s",
              (unsigned long long)seed, pr->p[0].errbuf, pr->p[1].errbuf);
    for (int i = 0; i < 2; i++)
        pr->status[i] = proc_wait(&pr->p[i], 15000);
    proxy_end(px);
}

static void pair_free(struct pair *pr)
{
    io_free(pr->io, 2);
}

static const char *const names[] = {"listen", "connect"};

/*
 * The receiver of the tampered direction failed with a reason, wrote only
 * the plaintext of the whole frames before the one hit (exactly), and the
 * sender failed too, having received nothing.
 */
static void expect_failed(struct pair *pr, int dir, size_t want_out, const unsigned char *data,
                          const char *what)
{
    int rcv = dir == 0 ? LISTEN : CONNECT, snd = !rcv;
    struct proc *r = &pr->p[rcv], *s = &pr->p[snd];
    unsigned long long sd = (unsigned long long)seed;
    cr_expect_eq(pr->status[rcv], 1, "seed %llu, %s: %s exits %d; stderr: %s", sd, what, names[rcv],
                 pr->status[rcv], r->errbuf);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "iocptool: %s: 127.0.0.1:", names[rcv]);
    cr_expect(strstr(r->errbuf, prefix) && says_why(r->errbuf),
              "seed %llu, %s: %s says no reason: %s", sd, what, names[rcv], r->errbuf);
    cr_expect_eq(pr->io[rcv].nout, want_out,
                 "seed %llu, %s: %s wrote %zu bytes, the frames before the bad one hold %zu", sd,
                 what, names[rcv], pr->io[rcv].nout, want_out);
    size_t n = pr->io[rcv].nout < want_out ? pr->io[rcv].nout : want_out;
    cr_expect(memcmp(pr->io[rcv].out, data, n) == 0, "seed %llu, %s: %s wrote other bytes", sd,
              what, names[rcv]);
    cr_expect_eq(pr->status[snd], 1, "seed %llu, %s: %s exits %d; stderr: %s", sd, what, names[snd],
                 pr->status[snd], s->errbuf);
    cr_expect_eq(pr->io[snd].nout, 0, "seed %llu, %s: %s wrote %zu bytes", sd, what, names[snd],
                 pr->io[snd].nout);
}

#define TAMPER_BYTES ((size_t)256 << 10)

/* ---- round trips ---- */

/*
 * listen and connect with the same key, bytes each way at once: `first`
 * sends first_bytes and ends its stdin (a half-close), the other sends
 * other_bytes, ending only once it has seen that end.
 */
static void round_trip(int first, size_t first_bytes, size_t other_bytes)
{
    struct proc l, c;
    const char *largs[] = {"listen", "-v", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *cargs[] = {"connect", "-v", "--key", key1, "127.0.0.1", port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, cargs));

    struct nc_flow f[2];
    size_t l_bytes = first == LISTEN ? first_bytes : other_bytes;
    size_t c_bytes = first == LISTEN ? other_bytes : first_bytes;
    nc_flow_init(&f[0], l.in, c.out, l_bytes, 11); /* listen to connect */
    nc_flow_init(&f[1], c.in, l.out, c_bytes, 12); /* connect to listen */
    f[first == LISTEN ? 1 : 0].after = first == LISTEN ? 0 : 1;
    proc_forget_fd(&l, l.in);
    proc_forget_fd(&c, c.in);
    l.in = c.in = -1; /* closed by the pump at the end of each stream */
    uint64_t t0 = tn_now_ms();
    cr_expect(nc_pump(f, 2, 100000), "byte-exact both ways; stderr: %s / %s", l.errbuf, c.errbuf);
    cr_log_info("%zu + %zu MiB, encrypted, in %llu ms", first_bytes >> 20, other_bytes >> 20,
                (unsigned long long)(tn_now_ms() - t0));
    cr_expect_eq(proc_wait(&l, 10000), 0, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, 10000), 0, "connect: %s", c.errbuf);
    cr_expect(strstr(l.errbuf, "connection from 127.0.0.1:"), "stderr: %s", l.errbuf);
    cr_expect_null(strstr(l.errbuf, "mismatch"), "stderr: %s", l.errbuf);
    cr_expect_null(strstr(c.errbuf, "mismatch"), "stderr: %s", c.errbuf);
}

Test(cli_secure, round_trip_64_mib_each_way_byte_exact_listen_ends_first)
{
    round_trip(LISTEN, BULK_BYTES, BULK_BYTES);
}

Test(cli_secure, after_a_half_close_the_other_side_sends_on_and_ends)
{
    /* connect's end comes early; listen goes on sending long after it. */
    round_trip(CONNECT, (size_t)1 << 20, BULK_BYTES / 2);
}

Test(cli_secure, a_receiver_with_empty_stdin_gets_the_whole_stream)
{
    /* Its end of input comes before the channel is open: the half-close
     * waits for the channel, and the data it asked for still comes. */
    struct proc l, c;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, port), NULL};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_start(&c, devnull, cargs));
    close(devnull);
    size_t len = (size_t)1 << 20;
    unsigned char *data = malloc(len);
    tn_pattern(data, len, 21, 0);
    struct io io[2];
    io_init(&io[0], &l, data, len, len + 1);
    io_init(&io[1], &c, NULL, 0, len + 1);
    cr_expect(drive(io, 2, 20000), "stderr: %s / %s", l.errbuf, c.errbuf);
    cr_expect_eq(proc_wait(&l, 10000), 0, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, 10000), 0, "connect: %s", c.errbuf);
    cr_expect_eq(io[1].nout, len);
    cr_expect(io[1].nout == len && memcmp(io[1].out, data, len) == 0);
    cr_expect_eq(io[0].nout, 0);
    io_free(io, 2);
    free(data);
}

Test(cli_secure, the_proxy_alone_changes_nothing)
{
    /* The tests below rely on the proxy: untouched, it must pass a clean
     * session, and its frame tracking must end where the stream ends. */
    unsigned char *data = malloc(TAMPER_BYTES);
    tn_pattern(data, TAMPER_BYTES, 7, 0);
    for (int dir = 0; dir < 2; dir++) {
        struct proxy px;
        struct pair pr;
        proxy_init(&px);
        run_pair(&px, dir, data, TAMPER_BYTES, &pr);
        int recv = dir == 0 ? LISTEN : CONNECT;
        cr_expect_eq(pr.status[0], 0, "listen: %s", pr.p[0].errbuf);
        cr_expect_eq(pr.status[1], 0, "connect: %s", pr.p[1].errbuf);
        cr_expect_eq(pr.io[recv].nout, TAMPER_BYTES);
        cr_expect(memcmp(pr.io[recv].out, data, TAMPER_BYTES) == 0);
        struct tap *t = &px.tap[dir];
        cr_expect_eq(t->plain, TAMPER_BYTES, "frames carried %llu bytes",
                     (unsigned long long)t->plain);
        cr_expect_eq(t->next_start, t->off, "the last frame ends with the stream");
        pair_free(&pr);
        proxy_free(&px);
    }
    free(data);
}

/* ---- -k and --broker: a channel per client ---- */

/* Wait until stderr holds needle n times. */
static bool wait_count(struct proc *p, const char *needle, int n, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        int k = 0;
        for (const char *s = p->errbuf; (s = strstr(s, needle)) != NULL; s++)
            k++;
        if (k >= n)
            return true;
        if (tn_now_ms() >= end || p->err < 0)
            return false;
        proc_pump_err(p, 50);
    }
}

Test(cli_secure, keep_open_serves_each_client_on_its_own_channel)
{
    struct proc l, c[3];
    const char *largs[] = {"listen", "-k", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    for (int i = 0; i < 3; i++) {
        const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(i, port), NULL};
        cr_assert(nc_start(&c[i], -1, cargs));
        char line[16];
        snprintf(line, sizeof line, "client %d\n", i);
        cr_assert(tn_write_all(c[i].in, line, strlen(line)));
    }
    /* Every line arrives once, whole: each channel decrypts its own. */
    char all[64] = "";
    cr_assert_eq(tn_read_full(l.out, all, 27, 10000), 27, "stderr: %s", l.errbuf);
    for (int i = 0; i < 3; i++) {
        char line[16];
        snprintf(line, sizeof line, "client %d\n", i);
        cr_expect(strstr(all, line), "no \"client %d\" in \"%s\"", i, all);
    }
    /* stdin is sealed for each of them. */
    cr_assert(tn_write_all(l.in, "to all\n", 7));
    for (int i = 0; i < 3; i++)
        cr_expect(nc_read_is(c[i].out, "to all\n", 10000), "client %d: %s", i, c[i].errbuf);
    /* A client that ends gets the end of our direction and leaves cleanly. */
    for (int i = 0; i < 3; i++) {
        proc_close_in(&c[i]);
        cr_expect(nc_eof_within(c[i].out, 10000), "client %d", i);
        cr_expect_eq(proc_wait(&c[i], 10000), 0, "client %d: %s", i, c[i].errbuf);
    }
    cr_expect(nc_quiet_for(l.out, 200), "-k never closes stdout");
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "stderr: %s", l.errbuf);
}

Test(cli_secure, broker_seals_each_clients_data_for_every_other_client)
{
    struct proc l, c[3];
    const char *largs[] = {"listen", "-vv", "--broker", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    for (int i = 0; i < 3; i++) {
        const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(i, port), NULL};
        cr_assert(nc_start(&c[i], -1, cargs));
    }
    cr_assert(wait_count(&l, "encrypted channel open", 3, 10000), "stderr: %s", l.errbuf);
    cr_assert(tn_write_all(c[0].in, "from 0\n", 7));
    cr_expect(nc_read_is(c[1].out, "from 0\n", 10000), "client 1: %s", c[1].errbuf);
    cr_expect(nc_read_is(c[2].out, "from 0\n", 10000), "client 2: %s", c[2].errbuf);
    cr_expect(nc_quiet_for(c[0].out, 300), "the sender gets nothing back");
    cr_assert(tn_write_all(c[2].in, "from 2\n", 7));
    cr_expect(nc_read_is(c[0].out, "from 2\n", 10000), "client 0: %s", c[0].errbuf);
    cr_expect(nc_read_is(c[1].out, "from 2\n", 10000), "client 1: %s", c[1].errbuf);
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "stderr: %s", l.errbuf);
}

/* ---- failures ---- */

Test(cli_secure, a_wrong_key_fails_both_ends_and_nothing_is_written)
{
    struct proc l, c;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *cargs[] = {"connect", "--key", key2, "127.0.0.1", port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    unsigned char data[4096];
    tn_pattern(data, sizeof data, 3, 0);
    struct io io[2];
    io_init(&io[0], &l, data, sizeof data, 1 << 16);
    io_init(&io[1], &c, data, sizeof data, 1 << 16);
    cr_expect(drive(io, 2, 20000));
    cr_expect_eq(proc_wait(&l, 10000), 1, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, 10000), 1, "connect: %s", c.errbuf);
    const char *why = "authentication failed: wrong key or tampered handshake";
    cr_expect(strstr(l.errbuf, "iocptool: listen: 127.0.0.1:") && strstr(l.errbuf, why),
              "listen: %s", l.errbuf);
    cr_expect(strstr(c.errbuf, "iocptool: connect: 127.0.0.1:") && strstr(c.errbuf, why),
              "connect: %s", c.errbuf);
    cr_expect_eq(io[0].nout, 0, "listen wrote %zu bytes", io[0].nout);
    cr_expect_eq(io[1].nout, 0, "connect wrote %zu bytes", io[1].nout);
    io_free(io, 2);
}

Test(cli_secure, a_bit_flipped_anywhere_fails_and_nothing_of_its_frame_is_written)
{
    seed_rng();
    unsigned char *data = malloc(TAMPER_BYTES);
    tn_pattern(data, TAMPER_BYTES, 5, 0);
    /* 30 positions: a third in the handshakes, the rest in the data, each
     * direction in turn. */
    for (int i = 0; i < 30; i++) {
        int dir = i % 2;
        struct proxy px;
        struct pair pr;
        proxy_init(&px);
        struct tap *t = &px.tap[dir];
        t->flip_at = (int64_t)(i < 10 ? rng() % HS_BYTES : HS_BYTES + rng() % TAMPER_BYTES);
        t->flip_bit = (int)(rng() % 8);
        char what[96];
        snprintf(what, sizeof what, "%s byte %lld bit %d",
                 dir ? "listen->connect" : "connect->listen", (long long)t->flip_at, t->flip_bit);
        run_pair(&px, dir, data, TAMPER_BYTES, &pr);
        cr_expect_geq(t->hit_plain, 0, "seed %llu, %s: the stream ended before it",
                      (unsigned long long)seed, what);
        expect_failed(&pr, dir, t->hit_plain < 0 ? 0 : (size_t)t->hit_plain, data, what);
        pair_free(&pr);
        proxy_free(&px);
    }
    free(data);
}

Test(cli_secure, a_frame_cut_short_fails_after_the_whole_frames_before_it)
{
    seed_rng();
    unsigned char *data = malloc(TAMPER_BYTES);
    tn_pattern(data, TAMPER_BYTES, 6, 0);
    for (int i = 0; i < 8; i++) {
        int dir = i % 2;
        struct proxy px;
        struct pair pr;
        proxy_init(&px);
        struct tap *t = &px.tap[dir];
        char what[96];
        if (i < 2) {
            /* Inside the handshake. */
            t->cut_at = (int64_t)(1 + rng() % (HS_BYTES - 1));
            snprintf(what, sizeof what, "cut at byte %lld", (long long)t->cut_at);
        } else {
            /* Inside data frame 1 to 16 (a frame holds at most 16 KiB), at
             * least one byte in, at most FRAME_OVERHEAD - 1: inside any. */
            t->cut_frame = 1 + (int)(rng() % 16);
            t->cut_delta = 1 + (int)(rng() % (FRAME_OVERHEAD - 1));
            snprintf(what, sizeof what, "cut %d bytes into frame %d", t->cut_delta, t->cut_frame);
        }
        run_pair(&px, dir, data, TAMPER_BYTES, &pr);
        cr_expect(t->cut, "seed %llu, %s: the stream ended before it", (unsigned long long)seed,
                  what);
        expect_failed(&pr, dir, t->hit_plain < 0 ? 0 : (size_t)t->hit_plain, data, what);
        int recv = dir == 0 ? LISTEN : CONNECT;
        cr_expect(strstr(pr.p[recv].errbuf, i < 2 ? "connection closed during the handshake"
                                                  : "stream cut before its authenticated end"),
                  "%s: %s", what, pr.p[recv].errbuf);
        pair_free(&pr);
        proxy_free(&px);
    }
    free(data);
}

Test(cli_secure, a_stream_cut_between_frames_is_an_error_never_an_end)
{
    seed_rng();
    unsigned char *data = malloc(TAMPER_BYTES);
    tn_pattern(data, TAMPER_BYTES, 8, 0);
    /* At a frame boundary in the data, and just before the FINAL frame:
     * every byte sent arrives, and still the end is not authenticated. */
    for (int i = 0; i < 4; i++) {
        int dir = i % 2;
        struct proxy px;
        struct pair pr;
        proxy_init(&px);
        struct tap *t = &px.tap[dir];
        char what[96];
        size_t want;
        if (i < 2) {
            t->cut_frame = 1 + (int)(rng() % 16);
            snprintf(what, sizeof what, "cut before frame %d", t->cut_frame);
        } else {
            t->cut_tail = FRAME_OVERHEAD; /* the FINAL frame, empty */
            snprintf(what, sizeof what, "cut before the FINAL frame");
        }
        run_pair(&px, dir, data, TAMPER_BYTES, &pr);
        if (i < 2) {
            cr_expect(t->cut, "%s: the stream ended before it", what);
            want = t->hit_plain < 0 ? 0 : (size_t)t->hit_plain;
        } else {
            want = TAMPER_BYTES;
        }
        expect_failed(&pr, dir, want, data, what);
        int recv = dir == 0 ? LISTEN : CONNECT;
        cr_expect(strstr(pr.p[recv].errbuf, "stream cut before its authenticated end"), "%s: %s",
                  what, pr.p[recv].errbuf);
        pair_free(&pr);
        proxy_free(&px);
    }
    free(data);
}

Test(cli_secure, a_replayed_handshake_never_completes_on_either_side)
{
    /* Record a clean session... */
    const char secret[] = "the secret of the recorded session\n";
    struct proxy px;
    struct pair pr;
    proxy_init(&px);
    run_pair(&px, 0, (const unsigned char *)secret, sizeof secret - 1, &pr);
    cr_assert_eq(pr.status[LISTEN], 0, "listen: %s", pr.p[LISTEN].errbuf);
    cr_assert_eq(pr.status[CONNECT], 0, "connect: %s", pr.p[CONNECT].errbuf);
    cr_assert_eq(pr.io[LISTEN].nout, sizeof secret - 1);
    pair_free(&pr);

    /* ...replay what the client sent to a fresh listener... */
    struct proc l;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, px.tap[0].rec, px.tap[0].nrec));
    shutdown(fd, SHUT_WR);
    unsigned char got[4096];
    size_t n = tn_read_full(fd, got, sizeof got, 10000);
    cr_expect_leq(n, HS_BYTES, "the listener sent %zu bytes: more than its handshake", n);
    close(fd);
    char out[256];
    cr_expect_eq(tn_read_full(l.out, out, sizeof out, 10000), 0, "listen wrote data");
    cr_expect_eq(proc_wait(&l, 10000), 1, "listen: %s", l.errbuf);
    cr_expect(strstr(l.errbuf, "authentication failed"), "listen: %s", l.errbuf);

    /* ...and what the server sent to a fresh client. */
    uint16_t sport;
    int lfd = tn_listen(&sport);
    cr_assert_geq(lfd, 0);
    struct proc c;
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, sport), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    fd = nc_accept(lfd, 10000);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, px.tap[1].rec, px.tap[1].nrec));
    shutdown(fd, SHUT_WR);
    n = tn_read_full(fd, got, sizeof got, 10000);
    cr_expect_leq(n, HS_BYTES, "the client sent %zu bytes: more than its handshake", n);
    close(fd);
    close(lfd);
    cr_expect_eq(tn_read_full(c.out, out, sizeof out, 10000), 0, "connect wrote data");
    cr_expect_eq(proc_wait(&c, 10000), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "authentication failed"), "connect: %s", c.errbuf);
    proxy_free(&px);
}

Test(cli_secure, a_peer_without_key_is_told_apart)
{
    const char *why = "the peer does not speak iocptool's encrypted protocol";
    /* A plain client of an encrypted listener... */
    struct proc l;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "hello, in clear\n", 16));
    cr_expect(tn_wait_eof(fd, 10000));
    close(fd);
    char out[256];
    cr_expect_eq(tn_read_full(l.out, out, sizeof out, 10000), 0, "listen wrote data");
    cr_expect_eq(proc_wait(&l, 10000), 1, "listen: %s", l.errbuf);
    cr_expect(strstr(l.errbuf, why), "listen: %s", l.errbuf);

    /* ...and an encrypted client of a plain server. */
    uint16_t sport;
    int lfd = tn_listen(&sport);
    cr_assert_geq(lfd, 0);
    struct proc c;
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, sport), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    fd = nc_accept(lfd, 10000);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "SSH-2.0-OpenSSH_9.2\r\n", 21));
    cr_expect(tn_wait_eof(fd, 10000));
    close(fd);
    close(lfd);
    cr_expect_eq(tn_read_full(c.out, out, sizeof out, 10000), 0, "connect wrote data");
    cr_expect_eq(proc_wait(&c, 10000), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, why), "connect: %s", c.errbuf);
}

/* ---- the handshake time-out ---- */

/* A connection that gets the peer's Hello and then its end, not earlier
 * than the time-out and not much later; the time it took. */
static uint64_t expect_hello_then_end(int fd, uint64_t t0)
{
    unsigned char buf[256];
    size_t n = tn_read_full(fd, buf, sizeof buf, TIMEOUT_MS + 5000);
    uint64_t took = tn_now_ms() - t0;
    cr_expect_eq(n, 70, "got %zu bytes: only a Hello should come", n);
    cr_expect_geq(took, TIMEOUT_MS - 100, "closed after %llu ms", (unsigned long long)took);
    cr_expect_leq(took, TIMEOUT_MS + 3000, "closed after %llu ms", (unsigned long long)took);
    return took;
}

Test(cli_secure, a_stalled_handshake_times_out_on_either_side)
{
    /* A client that connects and says nothing... */
    struct proc l;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    uint64_t t0 = tn_now_ms();
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    /* ...and a server that accepts and says nothing, at the same time. */
    uint16_t sport;
    int lfd = tn_listen(&sport);
    cr_assert_geq(lfd, 0);
    struct proc c;
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, sport), NULL};
    uint64_t t1 = tn_now_ms();
    cr_assert(nc_start(&c, -1, cargs));
    int sfd = nc_accept(lfd, 10000);
    cr_assert_geq(sfd, 0);

    expect_hello_then_end(fd, t0);
    expect_hello_then_end(sfd, t1);
    char out[64];
    cr_expect_eq(proc_wait(&l, 5000), 1, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, 5000), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(l.errbuf, "iocptool: listen: 127.0.0.1:") &&
                  strstr(l.errbuf, "handshake timed out"),
              "listen: %s", l.errbuf);
    cr_expect(strstr(c.errbuf, "iocptool: connect: 127.0.0.1:") &&
                  strstr(c.errbuf, "handshake timed out"),
              "connect: %s", c.errbuf);
    cr_expect_eq(tn_read_full(l.out, out, sizeof out, 1000), 0);
    cr_expect_eq(tn_read_full(c.out, out, sizeof out, 1000), 0);
    close(fd);
    close(sfd);
    close(lfd);
}

Test(cli_secure, a_trickled_handshake_ends_at_the_deadline_all_the_same)
{
    struct proc l;
    const char *largs[] = {"listen", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    uint64_t t0 = tn_now_ms();
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    /* The start of a Hello, a byte every 4 s: each is progress, none may
     * move the deadline (a timer re-armed by each would never fire). */
    unsigned char buf[256];
    for (int i = 0; i < 3; i++) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int64_t wait = (int64_t)(t0 + 4000u * (unsigned)i) - (int64_t)tn_now_ms();
        if (wait > 0 && poll(&pfd, 1, (int)wait) > 0 && i > 0)
            break; /* the end came early: the checks below say so */
        cr_assert(tn_write_all(fd, &"iocp"[i], 1));
        if (i == 0)
            cr_expect_eq(tn_read_full(fd, buf, 70, 5000), 70, "its Hello");
    }
    size_t n = tn_read_full(fd, buf, sizeof buf, TIMEOUT_MS + 5000);
    uint64_t took = tn_now_ms() - t0;
    cr_expect_eq(n, 0, "nothing after the Hello");
    cr_expect_geq(took, TIMEOUT_MS - 100, "closed after %llu ms", (unsigned long long)took);
    cr_expect_leq(took, TIMEOUT_MS + 3000, "closed after %llu ms", (unsigned long long)took);
    close(fd);
    cr_expect_eq(proc_wait(&l, 5000), 1, "listen: %s", l.errbuf);
    cr_expect(strstr(l.errbuf, "handshake timed out"), "listen: %s", l.errbuf);
}

Test(cli_secure, keep_open_a_stalled_handshake_holds_nobody_up)
{
    struct proc l, c;
    const char *largs[] = {"listen", "-k", "--key", key1, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    uint64_t t0 = tn_now_ms();
    int stalled = tn_connect(port);
    cr_assert_geq(stalled, 0);

    /* Meanwhile another client opens its channel and talks both ways at
     * once, long before the stalled one times out. */
    const char *cargs[] = {"connect", "--key", key1, "127.0.0.1", port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    cr_assert(tn_write_all(c.in, "not held up\n", 12));
    cr_expect(nc_read_is(l.out, "not held up\n", 3000), "stderr: %s", l.errbuf);
    cr_assert(tn_write_all(l.in, "nor this\n", 9));
    cr_expect(nc_read_is(c.out, "nor this\n", 3000), "stderr: %s", c.errbuf);
    cr_expect_lt(tn_now_ms() - t0, 5000);

    /* The stalled one got our Hello, nothing of stdin, then its end. */
    expect_hello_then_end(stalled, t0);
    close(stalled);
    cr_expect(wait_count(&l, "handshake timed out", 1, 2000), "stderr: %s", l.errbuf);
    cr_expect_eq(proc_wait(&l, 0), -1, "-k goes on");
    cr_assert(tn_write_all(c.in, "still here\n", 11));
    cr_expect(nc_read_is(l.out, "still here\n", 3000));
    proc_close_in(&c);
    cr_expect(nc_eof_within(c.out, 10000));
    cr_expect_eq(proc_wait(&c, 10000), 0, "connect: %s", c.errbuf);
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "stderr: %s", l.errbuf);
}

/* ---- usage ---- */

Test(cli_secure, key_usage_errors_exit_2)
{
    struct proc p;
    const char *probe[] = {"connect", "-z", "--key", key1, "127.0.0.1", "1", NULL};
    cr_expect_eq(run(&p, probe), 2, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, "connect: --key: -z moves no data"), "stderr: %s", p.errbuf);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/missing.key", tmpdir);
    const char *lmissing[] = {"listen", "--key", missing, "127.0.0.1:0", NULL};
    cr_expect_eq(run(&p, lmissing), 2, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, "iocptool: listen: ") && strstr(p.errbuf, missing), "stderr: %s",
              p.errbuf);

    /* A key others may read is refused, before anything connects. */
    cr_assert_eq(chmod(key2, 0644), 0);
    const char *copen[] = {"connect", "--key", key2, "127.0.0.1", "1", NULL};
    cr_expect_eq(run(&p, copen), 2, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, "chmod 600"), "stderr: %s", p.errbuf);

    const char *noarg[] = {"listen", "127.0.0.1:0", "--key", NULL};
    cr_expect_eq(run(&p, noarg), 2, "stderr: %s", p.errbuf);
}

#else /* !IOCP_HAVE_SODIUM */

TestSuite(cli_secure, .fini = remove_dir, .timeout = 60);

Test(cli_secure, without_libsodium_key_is_refused_with_status_2)
{
    struct proc p;
    const char *why = "encryption is not built into this iocptool (it needs libsodium)";
    const char *largs[] = {"listen", "--key", "/nonexistent.key", "127.0.0.1:0", NULL};
    cr_expect_eq(run(&p, largs), 2, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, "iocptool: listen: ") && strstr(p.errbuf, why), "stderr: %s",
              p.errbuf);
    const char *cargs[] = {"connect", "--key", "/nonexistent.key", "127.0.0.1", "1", NULL};
    cr_expect_eq(run(&p, cargs), 2, "stderr: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, "iocptool: connect: ") && strstr(p.errbuf, why), "stderr: %s",
              p.errbuf);
}

#endif
