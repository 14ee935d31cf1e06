/* SPDX-License-Identifier: MIT */
/*
 * Two relays as an encrypted tunnel (relay --key-target in front, relay
 * --key-listen behind, as spiped -e and -d): bytes exact both ways through
 * it to an echo server, a gigabyte included, half-closes each way, a
 * wrong key between the relays, which resets the client, reaches nothing
 * behind the tunnel and leaves the relays serving others, a stream cut
 * short, which resets the target rather than ending its input, and a
 * stalled handshake, which times out while others go through.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>

#include "proc.h"

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
