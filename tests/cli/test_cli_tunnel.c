/* SPDX-License-Identifier: MIT */
/*
 * Two relays as an encrypted tunnel (relay --key-target in front, relay
 * --key-listen behind, as spiped -e and -d): bytes exact both ways through
 * it to an echo server, a gigabyte included, half-closes each way, a
 * wrong key between the relays, which resets the client, reaches nothing
 * behind the tunnel and leaves the relays serving others, a stream cut
 * short, which resets the target rather than ending its input, and a
 * stalled handshake, which times out while others go through.  With a
 * channel client of its own (secure.h compiled in), the suite fails a
 * client's channel on cue while the target connects, is connected, or has
 * half-closed, and checks that the target is reset each time; and trickles
 * a handshake to check that its deadline does not move.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>

#include <sodium.h>

#include "proc.h"
#include "secure.h"

static char tmpdir[64], key1[96], key2[96];

static void keygen(const char *path)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "keygen", path, NULL));
    cr_assert_eq(proc_wait(&p, 10000), 0, "keygen %s: %s", path, p.errbuf);
}

static void tunnel_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    cr_assert_geq(sodium_init(), 0);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/iocptool-tunnel-XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
    /* Stats endpoints of our own, apart from concurrent suites. */
    setenv("XDG_RUNTIME_DIR", tmpdir, 1);
    snprintf(key1, sizeof key1, "%s/one.key", tmpdir);
    snprintf(key2, sizeof key2, "%s/two.key", tmpdir);
    keygen(key1);
    keygen(key2);
}

static void tunnel_fini(void)
{
    proc_cleanup_all();
    if (!tmpdir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", tmpdir);
}

TestSuite(cli_tunnel, .init = tunnel_init, .fini = tunnel_fini, .timeout = 150);

#ifdef IOCP_TEST_SANITIZED
#define BIG_TRANSFER (64ull << 20)
#else
#define BIG_TRANSFER (1ull << 30)
#endif

/* ---- helpers ---- */

/* relay -W 2 -v OPTION KEY 127.0.0.1:0 127.0.0.1:TARGET; its port. */
static uint16_t start_relay(struct proc *p, const char *option, const char *key, uint16_t target)
{
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%u", target);
    cr_assert(proc_start(p, -1, "relay", "-W", "2", "-v", option, key, "127.0.0.1:0", to, NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* The tunnel to target: the port of its plaintext entrance. */
struct tunnel {
    struct proc front, back;
    uint16_t port, back_port;
};

static void start_tunnel(struct tunnel *t, uint16_t target)
{
    t->back_port = start_relay(&t->back, "--key-listen", key1, target);
    t->port = start_relay(&t->front, "--key-target", key1, t->back_port);
}

/* Stop a relay as a user does: status 0, books balanced (-v audits them at
 * stop), no sanitizer report. */
static void expect_clean_exit(struct proc *p)
{
    cr_expect_eq(proc_signal(p, SIGTERM, 10000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "mismatch"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

static uint16_t start_echo(struct proc *p)
{
    cr_assert(proc_start(p, -1, "echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

static int accept_within(int lfd, unsigned ms)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) <= 0)
        return -1;
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* The byte at offset o of the stream: a random block whose length is
 * prime, so that a chunk lost, repeated or swapped anywhere shows. */
#define PAT_LEN ((1u << 20) + 7u)
static unsigned char *pat_block(void)
{
    static unsigned char *block;
    if (!block) {
        block = malloc(PAT_LEN);
        tn_pattern(block, PAT_LEN, 4242, 0);
    }
    return block;
}

static void pat_fill(unsigned char *buf, size_t len, uint64_t off)
{
    const unsigned char *b = pat_block();
    while (len) {
        size_t pos = (size_t)(off % PAT_LEN);
        size_t n = PAT_LEN - pos < len ? PAT_LEN - pos : len;
        memcpy(buf, b + pos, n);
        buf += n;
        off += n;
        len -= n;
    }
}

static bool pat_check(const unsigned char *buf, size_t len, uint64_t off)
{
    const unsigned char *b = pat_block();
    while (len) {
        size_t pos = (size_t)(off % PAT_LEN);
        size_t n = PAT_LEN - pos < len ? PAT_LEN - pos : len;
        if (memcmp(buf, b + pos, n) != 0)
            return false;
        buf += n;
        off += n;
        len -= n;
    }
    return true;
}

struct sender {
    int fd;
    uint64_t total;
    bool ok;
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    size_t chunk = 256 * 1024;
    unsigned char *buf = malloc(chunk);
    uint64_t off = 0;
    s->ok = true;
    while (off < s->total) {
        size_t n = s->total - off < chunk ? (size_t)(s->total - off) : chunk;
        pat_fill(buf, n, off);
        if (!tn_write_all(s->fd, buf, n)) {
            s->ok = false;
            break;
        }
        off += n;
    }
    shutdown(s->fd, SHUT_WR);
    free(buf);
    return NULL;
}

/* ---- through the tunnel ---- */

Test(cli_tunnel, a_message_goes_to_the_echo_server_and_back)
{
    struct proc echo;
    struct tunnel t;
    start_tunnel(&t, start_echo(&echo));
    int c = tn_connect(t.port);
    cr_assert_geq(c, 0);
    const char msg[] = "through the tunnel and back";
    cr_assert(tn_write_all(c, msg, sizeof msg - 1));
    char buf[64];
    cr_expect_eq(tn_read_full(c, buf, sizeof msg - 1, 5000), sizeof msg - 1);
    cr_expect_eq(memcmp(buf, msg, sizeof msg - 1), 0);
    /* Still open both ways: a second message, then the end. */
    cr_assert(tn_write_all(c, "again", 5));
    cr_expect_eq(tn_read_full(c, buf, 5, 5000), 5);
    cr_expect_eq(memcmp(buf, "again", 5), 0);
    shutdown(c, SHUT_WR);
    cr_expect(tn_wait_eof(c, 5000), "the end comes back through the tunnel");
    close(c);
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
    expect_clean_exit(&echo);
}

Test(cli_tunnel, a_gigabyte_goes_to_the_echo_server_and_back_byte_exact)
{
    struct proc echo;
    struct tunnel t;
    start_tunnel(&t, start_echo(&echo));
    struct sender s = {.fd = tn_connect(t.port), .total = BIG_TRANSFER};
    cr_assert_geq(s.fd, 0);
    uint64_t start = tn_now_ms();
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, send_all, &s), 0);

    size_t bufsize = 1 << 20;
    unsigned char *buf = malloc(bufsize);
    uint64_t got = 0;
    bool exact = true;
    for (;;) {
        size_t n = tn_read_full(s.fd, buf, bufsize, 60000);
        if (exact && !pat_check(buf, n, got))
            exact = false;
        got += n;
        if (n < bufsize)
            break; /* EOF, or nothing for a minute */
    }
    pthread_join(th, NULL);
    close(s.fd);
    free(buf);
    uint64_t ms = tn_now_ms() - start;
    cr_log_info("%llu MiB each way through the tunnel in %llu ms",
                (unsigned long long)(BIG_TRANSFER >> 20), (unsigned long long)ms);

    cr_expect(s.ok, "the client wrote everything");
    cr_expect_eq(got, BIG_TRANSFER, "%llu of %llu bytes came back", (unsigned long long)got,
                 (unsigned long long)BIG_TRANSFER);
    cr_expect(exact, "the bytes came back exactly as sent");
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
    expect_clean_exit(&echo);
}

/* ---- half-close, each way ---- */

Test(cli_tunnel, client_shutdown_reaches_the_target_which_can_still_answer)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct tunnel t;
    start_tunnel(&t, tport);
    int c = tn_connect(t.port);
    cr_assert_geq(c, 0);

    cr_assert(tn_write_all(c, "question", 8));
    shutdown(c, SHUT_WR);
    int s = accept_within(lfd, 10000);
    cr_assert_geq(s, 0);
    char buf[64];
    cr_expect_eq(tn_read_full(s, buf, 8, 5000), 8);
    cr_expect_eq(memcmp(buf, "question", 8), 0);
    cr_expect_eq(tn_read_full(s, buf, 1, 5000), 0, "the target reads EOF");

    /* The other direction is still open. */
    cr_assert(tn_write_all(s, "answer", 6));
    cr_expect_eq(tn_read_full(c, buf, 6, 5000), 6, "the client still receives");
    cr_expect_eq(memcmp(buf, "answer", 6), 0);
    shutdown(s, SHUT_WR);
    cr_expect(tn_wait_eof(c, 5000), "then the client reads EOF");
    close(c);
    close(s);
    close(lfd);
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
}

Test(cli_tunnel, target_shutdown_reaches_the_client_which_can_still_send)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct tunnel t;
    start_tunnel(&t, tport);
    int c = tn_connect(t.port);
    cr_assert_geq(c, 0);
    /* The back relay connects once the channel is open, which needs no
     * byte from the client. */
    int s = accept_within(lfd, 10000);
    cr_assert_geq(s, 0);

    cr_assert(tn_write_all(s, "banner", 6));
    shutdown(s, SHUT_WR);
    char buf[64];
    cr_expect_eq(tn_read_full(c, buf, 6, 5000), 6);
    cr_expect_eq(memcmp(buf, "banner", 6), 0);
    cr_expect_eq(tn_read_full(c, buf, 1, 5000), 0, "the client reads EOF");

    cr_assert(tn_write_all(c, "upload", 6));
    cr_expect_eq(tn_read_full(s, buf, 6, 5000), 6, "the target still receives");
    cr_expect_eq(memcmp(buf, "upload", 6), 0);
    shutdown(c, SHUT_WR);
    cr_expect(tn_wait_eof(s, 5000), "then the target reads EOF");
    close(c);
    close(s);
    close(lfd);
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
}

/* ---- the wrong key ---- */

Test(cli_tunnel, a_wrong_key_resets_the_client_and_reaches_nothing)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct tunnel t;
    start_tunnel(&t, tport);
    struct proc wrong;
    uint16_t wport = start_relay(&wrong, "--key-target", key2, t.back_port);

    int c = tn_connect(wport);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "secret", 6));
    char buf[64];
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    cr_expect_gt(poll(&pfd, 1, 5000), 0, "the client hears back");
    ssize_t n = read(c, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET, "a reset, not an orderly EOF (read %zd, %s)", n,
              n < 0 ? strerror(errno) : "-");
    close(c);
    cr_expect_lt(accept_within(lfd, 500), 0, "nothing reaches the target");

    /* Each relay says why, and keeps serving: the right key still goes
     * through. */
    c = tn_connect(t.port);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "hello", 5));
    int s = accept_within(lfd, 10000);
    cr_assert_geq(s, 0, "the right key reaches the target");
    cr_expect_eq(tn_read_full(s, buf, 5, 5000), 5);
    cr_expect_eq(memcmp(buf, "hello", 5), 0);
    close(s);
    close(c);
    close(lfd);

    for (int i = 0; i < 5; i++) {
        proc_pump_err(&wrong, 100);
        proc_pump_err(&t.back, 100);
    }
    /* Whichever end checks the other's Confirm first resets the pair and
     * says why; the other may only see the reset. */
    const char *said = strstr(wrong.errbuf, "authentication failed") ? wrong.errbuf : t.back.errbuf;
    cr_expect(strstr(said, "iocptool: relay: 127.0.0.1:") && strstr(said, "authentication failed"),
              "front: %s\nback: %s", wrong.errbuf, t.back.errbuf);
    expect_clean_exit(&wrong);
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
}

/* ---- a cut stream, a stalled handshake ---- */

Test(cli_tunnel, a_cut_stream_resets_the_target_instead_of_ending_it)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct tunnel t;
    start_tunnel(&t, tport);
    int c = tn_connect(t.port);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "partial", 7));
    int s = accept_within(lfd, 10000);
    cr_assert_geq(s, 0);
    char buf[64];
    cr_expect_eq(tn_read_full(s, buf, 7, 5000), 7);

    /* The front relay dies: the back one gets a TCP end without the
     * channel's end, which must not pass for a complete stream. */
    proc_signal(&t.front, SIGKILL, 5000);
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    cr_expect_gt(poll(&pfd, 1, 5000), 0, "the target hears back");
    ssize_t n = read(s, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET, "a reset, not an orderly EOF (read %zd, %s)", n,
              n < 0 ? strerror(errno) : "-");
    close(s);
    close(c);
    close(lfd);
    for (int i = 0; i < 5 && !strstr(t.back.errbuf, "stream cut"); i++)
        proc_pump_err(&t.back, 100);
    cr_expect_not_null(strstr(t.back.errbuf, "iocptool: relay: 127.0.0.1:"), "%s", t.back.errbuf);
    cr_expect_not_null(strstr(t.back.errbuf, "stream cut"), "%s", t.back.errbuf);
    expect_clean_exit(&t.back);
}

Test(cli_tunnel, a_stalled_handshake_times_out_without_holding_up_others)
{
    struct proc echo;
    struct tunnel t;
    start_tunnel(&t, start_echo(&echo));
    /* A client of the back relay that never says a word. */
    int mute = tn_connect(t.back_port);
    cr_assert_geq(mute, 0);
    uint64_t start = tn_now_ms();

    /* Others go through meanwhile. */
    int c = tn_connect(t.port);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "meanwhile", 9));
    char buf[128];
    cr_expect_eq(tn_read_full(c, buf, 9, 5000), 9);
    close(c);

    /* Our Hello comes (70 bytes), then the reset, after the time-out. */
    cr_expect_eq(tn_read_full(mute, buf, 70, 5000), 70);
    struct pollfd pfd = {.fd = mute, .events = POLLIN};
    cr_expect_gt(poll(&pfd, 1, 15000), 0, "the relay gives up on it");
    uint64_t ms = tn_now_ms() - start;
    ssize_t n = read(mute, buf, sizeof buf);
    cr_expect(n <= 0, "nothing but the Hello (read %zd)", n);
    cr_expect_geq(ms, 9000, "closed after %llu ms", (unsigned long long)ms);
    close(mute);
    for (int i = 0; i < 5 && !strstr(t.back.errbuf, "handshake timed out"); i++)
        proc_pump_err(&t.back, 100);
    cr_expect_not_null(strstr(t.back.errbuf, "handshake timed out"), "%s", t.back.errbuf);
    expect_clean_exit(&t.front);
    expect_clean_exit(&t.back);
    expect_clean_exit(&echo);
}

/* ---- options ---- */

Test(cli_tunnel, a_missing_key_file_is_a_usage_error)
{
    struct proc p;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.key", tmpdir);
    cr_assert(
        proc_start(&p, -1, "relay", "--key-listen", missing, "127.0.0.1:0", "127.0.0.1:9", NULL));
    cr_expect_eq(proc_wait(&p, 10000), 2, "stderr: %s", p.errbuf);
    cr_expect_not_null(strstr(p.errbuf, "iocptool: relay: "), "%s", p.errbuf);
}

/* ---- a channel client of our own, to fail a channel on cue ---- */

/* The key in a key file (iocptool-key-v1:<base64 of key and check>). */
static void read_key(const char *path, uint8_t key[SECURE_KEY_BYTES])
{
    char line[128] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "%s", path);
    cr_assert_not_null(fgets(line, sizeof line, f));
    fclose(f);
    const char *b64 = strchr(line, ':');
    cr_assert_not_null(b64, "%s", line);
    uint8_t raw[64];
    size_t n = 0;
    cr_assert_eq(sodium_base642bin(raw, sizeof raw, b64 + 1, 48, NULL, &n, NULL,
                                   sodium_base64_VARIANT_ORIGINAL),
                 0);
    cr_assert_geq(n, SECURE_KEY_BYTES);
    memcpy(key, raw, SECURE_KEY_BYTES);
}

struct chan {
    int fd;
    struct secure *s;
    char plain[256]; /* what the peer sent, authenticated */
    size_t nplain;
};

static void chan_plain(void *arg, const void *data, size_t len)
{
    struct chan *ch = arg;
    size_t room = sizeof ch->plain - 1 - ch->nplain;
    size_t n = len < room ? len : room;
    memcpy(ch->plain + ch->nplain, data, n);
    ch->nplain += n;
    ch->plain[ch->nplain] = '\0';
}

/* Feed what comes on ch until ev shows in the events (or an error, EOF or
 * the deadline): the events seen. */
static int chan_until(struct chan *ch, int want, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    int seen = 0;
    while (!(seen & want)) {
        uint64_t now = tn_now_ms();
        struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
        if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
            return seen;
        unsigned char buf[4096];
        ssize_t n = read(ch->fd, buf, sizeof buf);
        if (n <= 0)
            return seen;
        int ev = secure_feed(ch->s, buf, (size_t)n, chan_plain, ch);
        if (ev < 0)
            return seen;
        if (ev & SECURE_EV_SEND) {
            size_t len;
            const void *hs = secure_handshake_out(ch->s, &len);
            cr_assert(tn_write_all(ch->fd, hs, len));
        }
        seen |= ev;
    }
    return seen;
}

/* Connect to an encrypted relay and open the channel with key. */
static void chan_open(struct chan *ch, uint16_t port, const uint8_t key[SECURE_KEY_BYTES])
{
    memset(ch, 0, sizeof *ch);
    ch->fd = tn_connect(port);
    cr_assert_geq(ch->fd, 0);
    cr_assert_eq(secure_new(&ch->s, SECURE_CLIENT, key), 0);
    size_t len;
    const void *hello = secure_handshake_out(ch->s, &len);
    cr_assert(tn_write_all(ch->fd, hello, len));
    cr_assert(chan_until(ch, SECURE_EV_OPEN, 10000) & SECURE_EV_OPEN, "the channel opens");
}

enum chan_failure {
    TAMPERED_FRAME, /* the first frame, one bit flipped */
    RESET,          /* an abortive close just after the handshake */
};

static void chan_fail(struct chan *ch, enum chan_failure how)
{
    if (how == TAMPERED_FRAME) {
        unsigned char frame[64];
        int n = secure_seal(ch->s, "payload", 7, frame, sizeof frame);
        cr_assert_gt(n, 0);
        frame[n - 1] ^= 0x01;
        cr_assert(tn_write_all(ch->fd, frame, (size_t)n));
    } else {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(ch->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        close(ch->fd);
        ch->fd = -1;
    }
}

static void chan_close(struct chan *ch)
{
    if (ch->fd >= 0)
        close(ch->fd);
    secure_free(ch->s);
    ch->fd = -1;
    ch->s = NULL;
}

/* Read fd: it must be reset, never a clean end, and carry no data. */
static void expect_reset(int fd, const char *state, int trial)
{
    char buf[64];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    cr_expect_gt(poll(&pfd, 1, 10000), 0, "%s, trial %d: the target hears back", state, trial);
    ssize_t n = read(fd, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET,
              "%s, trial %d: the target is reset, not ended (read %zd, %s)", state, trial, n,
              n < 0 ? strerror(errno) : "-");
}

/* Forget the relay's stderr so far (so that a run of trials never fills
 * the buffer); what it says next is looked for from empty. */
static void forget_err(struct proc *p)
{
    proc_pump_err(p, 0);
    p->errlen = 0;
    p->errbuf[0] = '\0';
}

static bool wait_err(struct proc *p, const char *needle, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    while (!strstr(p->errbuf, needle)) {
        if (tn_now_ms() >= end || p->err < 0)
            return false;
        proc_pump_err(p, 20);
    }
    return true;
}

/* relay -W 2 -vv --key-listen key1 to target: -vv says when a client's
 * channel opened (the relay then connects) and when it closed. */
static uint16_t start_back_relay(struct proc *p, uint16_t target)
{
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%u", target);
    cr_assert(proc_start(p, -1, "relay", "-W", "2", "-vv", "--no-stats", "--key-listen", key1,
                         "127.0.0.1:0", to, NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

#define FAIL_TRIALS 20

/* ---- a failed client channel resets the target, whatever its state ---- */

Test(cli_tunnel, a_failed_client_channel_resets_a_target_still_connecting)
{
    /* A target whose accept queue is full: the relay's SYN is dropped, so
     * its connection stays in progress until we make room. */
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    cr_assert_eq(listen(lfd, 0), 0);
    struct proc back;
    uint16_t port = start_back_relay(&back, tport);
    uint8_t key[SECURE_KEY_BYTES];
    read_key(key1, key);

    for (int i = 0; i < FAIL_TRIALS; i++) {
        int filler = tn_connect(tport);
        cr_assert_geq(filler, 0);
        forget_err(&back);
        struct chan ch;
        chan_open(&ch, port, key);
        /* The relay has the key proved and is connecting to the target. */
        cr_assert(wait_err(&back, "encrypted channel open (client)", 10000), "%s", back.errbuf);
        chan_fail(&ch, i % 2 ? RESET : TAMPERED_FRAME);
        cr_assert(wait_err(&back, " closed (", 10000), "the client leg closes: %s", back.errbuf);
        chan_close(&ch);

        /* Room in the queue: the relay's connection comes in, and must
         * come reset. */
        int f = accept_within(lfd, 10000);
        cr_assert_geq(f, 0, "the filler");
        close(f);
        close(filler);
        int s = accept_within(lfd, 15000);
        cr_assert_geq(s, 0, "trial %d: the relay's connection arrives", i);
        expect_reset(s, "connecting", i);
        close(s);
    }
    close(lfd);
    expect_clean_exit(&back);
}

/* Trials against a target that accepts; half_close: the target ends its
 * side first (and the client has seen that end) before the channel fails. */
static void fail_with_target_up(bool half_close)
{
    const char *state = half_close ? "half-closed" : "connected";
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct proc back;
    uint16_t port = start_back_relay(&back, tport);
    uint8_t key[SECURE_KEY_BYTES];
    read_key(key1, key);

    for (int i = 0; i < FAIL_TRIALS; i++) {
        forget_err(&back);
        struct chan ch;
        chan_open(&ch, port, key);
        int s = accept_within(lfd, 10000);
        cr_assert_geq(s, 0, "trial %d: the relay connects", i);
        if (half_close) {
            cr_assert(tn_write_all(s, "banner", 6));
            shutdown(s, SHUT_WR);
            cr_assert(chan_until(&ch, SECURE_EV_END, 10000) & SECURE_EV_END,
                      "trial %d: the target's end reaches the client", i);
            cr_expect_str_eq(ch.plain, "banner");
        }
        chan_fail(&ch, i % 2 ? RESET : TAMPERED_FRAME);
        expect_reset(s, state, i);
        close(s);
        chan_close(&ch);
    }
    close(lfd);
    expect_clean_exit(&back);
}

Test(cli_tunnel, a_failed_client_channel_resets_a_connected_target)
{
    fail_with_target_up(false);
}

Test(cli_tunnel, a_failed_client_channel_resets_a_half_closed_target)
{
    fail_with_target_up(true);
}

/* ---- the handshake deadline ---- */

Test(cli_tunnel, a_trickled_handshake_cannot_stretch_the_deadline)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct proc back;
    uint16_t port = start_relay(&back, "--key-listen", key1, tport);
    uint8_t key[SECURE_KEY_BYTES];
    read_key(key1, key);
    struct secure *s;
    cr_assert_eq(secure_new(&s, SECURE_CLIENT, key), 0);
    size_t len;
    const unsigned char *hello = secure_handshake_out(s, &len);

    /* A byte of a real Hello now and one 8 s later: each is progress, and
     * none may move the deadline, 10 s after the connection came. */
    uint64_t t0 = tn_now_ms();
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, hello, 1));
    unsigned char buf[128];
    cr_expect_eq(tn_read_full(fd, buf, 70, 5000), 70, "the relay's Hello");
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int r = poll(&pfd, 1, (int)(t0 + 8000 - tn_now_ms()));
    cr_assert_eq(r, 0, "nothing happens in the first 8 s");
    cr_assert(tn_write_all(fd, hello + 1, 1));

    /* An idle timer re-armed by that byte would close it at 18 s. */
    int64_t left = (int64_t)(t0 + 14000) - (int64_t)tn_now_ms();
    cr_expect_gt(poll(&pfd, 1, left > 0 ? (int)left : 0), 0, "closed by the deadline");
    ssize_t n = read(fd, buf, sizeof buf);
    cr_expect(n <= 0, "nothing but the Hello (read %zd)", n);
    close(fd);
    secure_free(s);
    cr_expect(wait_err(&back, "handshake timed out", 5000), "%s", back.errbuf);
    cr_expect_lt(accept_within(lfd, 0), 0, "nothing reached the target");
    close(lfd);
    expect_clean_exit(&back);
}

/* ---- what the relay says without -v ---- */

/* A plain client where a channel is expected: it gets the relay's Hello,
 * then its end. */
static void plain_client_turned_away(uint16_t port)
{
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "GET / HTTP/1.0\r\n\r\n", 18));
    char buf[256];
    uint64_t end = tn_now_ms() + 10000;
    ssize_t n = 1;
    while (n > 0 && tn_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 1000) > 0)
            n = read(fd, buf, sizeof buf);
    }
    cr_expect_leq(n, 0, "the relay ends it");
    close(fd);
}

Test(cli_tunnel, failing_client_channels_are_said_once_at_the_default_level)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    char to[32];
    snprintf(to, sizeof to, "127.0.0.1:%u", tport);
    struct proc back;
    cr_assert(proc_start(&back, -1, "relay", "-W", "2", "--no-stats", "--key-listen", key1,
                         "127.0.0.1:0", to, NULL));
    uint16_t port = proc_listening(&back, 10000);
    cr_assert_neq(port, 0, "stderr: %s", back.errbuf);

    for (int i = 0; i < 3; i++)
        plain_client_turned_away(port);
    const char failing[] = "iocptool: relay: clients: encrypted channels failing (127.0.0.1:";
    cr_expect(wait_err(&back, failing, 5000), "%s", back.errbuf);
    cr_expect_not_null(strstr(back.errbuf, "does not speak iocptool"), "says why: %s", back.errbuf);

    /* A client with the key: said once, with the count. */
    uint8_t key[SECURE_KEY_BYTES];
    read_key(key1, key);
    struct chan ch;
    chan_open(&ch, port, key);
    int s = accept_within(lfd, 10000);
    cr_expect_geq(s, 0, "the client with the key reaches the target");
    cr_expect(wait_err(&back,
                       "iocptool: relay: clients: encrypted channels open again after 3 failures\n",
                       5000),
              "%s", back.errbuf);
    const char *first = strstr(back.errbuf, failing);
    cr_expect(first && !strstr(first + 1, failing), "one line for three failures: %s", back.errbuf);
    /* Both ends end cleanly: no failure left to say at exit. */
    unsigned char fin[SECURE_FRAME_OVERHEAD];
    cr_assert_eq(secure_finish(ch.s, fin, sizeof fin), (int)sizeof fin);
    cr_assert(tn_write_all(ch.fd, fin, sizeof fin));
    shutdown(ch.fd, SHUT_WR);
    if (s >= 0) {
        cr_expect(tn_wait_eof(s, 5000), "the target reads the end");
        close(s);
    }
    cr_expect(chan_until(&ch, SECURE_EV_END, 5000) & SECURE_EV_END, "the client reads the end");
    chan_close(&ch);
    close(lfd);
    cr_expect_eq(proc_signal(&back, SIGTERM, 10000), 0, "%s", back.errbuf);
    cr_expect_null(strstr(back.errbuf, "still failing"), "%s", back.errbuf);
}
