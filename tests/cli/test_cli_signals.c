/* SPDX-License-Identifier: MIT */
/*
 * Stop signals, as a script sees them: a transfer stopped by SIGINT,
 * SIGTERM or SIGHUP exits 128 + the signal (as ncat and socat do), after
 * writing to stdout everything it had received; `listen -k` does the same
 * with a slow reader on its stdout; a signal ignored at start (nohup)
 * stays ignored; SIGUSR1 from outside is not taken for the tool's own
 * wake-up; servers whose normal end is a signal (echo, relay) exit 0.
 */
#include <criterion/criterion.h>

#include <fcntl.h>

#include "nc_support.h"

TestSuite(cli_signals, .fini = proc_cleanup_all, .timeout = 120);

/* What each client sends: one byte value per client, so that the fan-in
 * on stdout can be counted per client whatever the interleaving. */
#define FILL(i) ((unsigned char)('a' + (i)))

/* The "N bytes received" of the -v summary, or -1. */
static long long received_of(const struct proc *p)
{
    const char *at = strstr(p->errbuf, " bytes sent, ");
    long long n;
    if (!at || sscanf(at, " bytes sent, %lld bytes received", &n) != 1)
        return -1;
    return n;
}

/* buf[0..len) is the start of pattern pat (nc_pattern's two periods). */
static bool is_prefix(const unsigned char *buf, size_t len, const unsigned char *pat)
{
    for (size_t k = 0; k < len; k += NC_PERIOD) {
        size_t n = len - k < NC_PERIOD ? len - k : NC_PERIOD;
        if (memcmp(buf + k, pat, n) != 0)
            return false;
    }
    return true;
}

/* Read fd to EOF into a growing buffer, at most timeout_ms; the length. */
static size_t read_to_eof(int fd, unsigned char **out, unsigned timeout_ms)
{
    size_t cap = 1 << 20, len = 0;
    unsigned char *buf = malloc(cap);
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        if (len == cap)
            buf = realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len);
        if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
            break;
        if (n > 0)
            len += (size_t)n;
    }
    *out = buf;
    return len;
}

/*
 * Write to a non-blocking socket until it takes nothing more for
 * `stuck_ms` (every buffer on the way is full: the tool's stdout queue
 * included, as the test does not read its stdout), at most `max` bytes.
 * Returns how many bytes were written.
 */
static size_t fill_until_stuck(int fd, const unsigned char *pat, size_t max, unsigned stuck_ms)
{
    size_t written = 0;
    tn_set_nonblock(fd, true);
    while (written < max) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, (int)stuck_ms) <= 0)
            break;
        size_t len = max - written < 65536 ? max - written : 65536;
        ssize_t n = write(fd, pat + written % NC_PERIOD, len);
        if (n <= 0)
            break;
        written += (size_t)n;
    }
    return written;
}

/* A receiver (listen, one client) stopped mid-transfer by sig. */
static void receiver_stopped_by(int sig)
{
    signal(SIGPIPE, SIG_IGN);
    struct proc l;
    const char *args[] = {"listen", "-v", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    const unsigned char *pat = nc_pattern(7);
    /* Data flows: something reaches stdout. */
    cr_assert(tn_write_all(c, pat, 4096));
    struct pollfd pfd = {.fd = l.out, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "nothing on stdout; stderr: %s", l.errbuf);
    /* Then more than the tool can write, as its stdout is not read: the
     * tool holds received data in its stdout queue when the signal comes. */
    size_t sent = 4096 + fill_until_stuck(c, pat + 4096, 64u << 20, 500);

    cr_assert_eq(kill(l.pid, sig), 0);
    unsigned char *out;
    size_t got = read_to_eof(l.out, &out, 30000);
    int status = proc_wait(&l, 10000);
    cr_expect_eq(status, 128 + sig, "status %d after signal %d; stderr: %s", status, sig,
                 l.errbuf);
    /* Exactly what the tool had received, in order, nothing else. */
    long long received = received_of(&l);
    cr_expect_gt(got, 0);
    cr_expect_leq(got, sent);
    cr_expect(is_prefix(out, got, pat), "stdout is not a prefix of what was sent");
    cr_expect_eq((long long)got, received, "%zu bytes on stdout, %lld received; stderr: %s", got,
                 received, l.errbuf);
    /* The sender sees the transfer cut, not a clean end. */
    cr_expect_eq(nc_eof_state(c, 5000), 2, "the sender sees a reset");
    cr_expect_null(strstr(l.errbuf, "mismatch"), "stderr: %s", l.errbuf);
    free(out);
    free((void *)pat);
    close(c);
}

Test(cli_signals, a_receiver_stopped_by_sigterm_exits_143_with_all_it_received_on_stdout)
{
    receiver_stopped_by(SIGTERM);
}

Test(cli_signals, a_receiver_stopped_by_sigint_exits_130_with_all_it_received_on_stdout)
{
    receiver_stopped_by(SIGINT);
}

Test(cli_signals, a_receiver_stopped_by_sighup_exits_129_with_all_it_received_on_stdout)
{
    receiver_stopped_by(SIGHUP);
}

/* connect, mid-transfer both ways, stopped by sig: 128 + sig, the peer cut. */
static void sender_stopped_by(int sig)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    struct proc c;
    const char *args[] = {"connect", "127.0.0.1", portbuf, NULL};
    cr_assert(nc_start(&c, -1, args));
    int peer = nc_accept(lfd, 10000);
    close(lfd);
    cr_assert_geq(peer, 0, "no connection; stderr: %s", c.errbuf);
    cr_assert(tn_write_all(c.in, "up\n", 3));
    cr_assert(nc_read_is(peer, "up\n", 10000), "stderr: %s", c.errbuf);
    cr_assert(tn_write_all(peer, "down\n", 5));
    cr_assert(nc_read_is(c.out, "down\n", 10000), "stderr: %s", c.errbuf);
    cr_expect_eq(proc_signal(&c, sig, 10000), 128 + sig, "stderr: %s", c.errbuf);
    cr_expect_eq(nc_eof_state(peer, 5000), 2, "the peer sees the transfer cut (a reset)");
    close(peer);
}

Test(cli_signals, connect_stopped_by_sigint_exits_130)
{
    sender_stopped_by(SIGINT);
}

Test(cli_signals, connect_stopped_by_sigterm_exits_143)
{
    sender_stopped_by(SIGTERM);
}

/* SIGUSR1 is not the tool's wake-up: from outside it does what it does to
 * any program that does not handle it (the process ends by the signal),
 * and never passes for a finished transfer. */
Test(cli_signals, sigusr1_from_outside_never_ends_a_transfer_with_status_0)
{
    struct proc l;
    const char *args[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "part\n", 5));
    cr_assert(nc_read_is(l.out, "part\n", 10000), "stderr: %s", l.errbuf);
    cr_expect_eq(proc_signal(&l, SIGUSR1, 10000), 128 + SIGUSR1, "stderr: %s", l.errbuf);
    close(c);
}

/* nohup: a SIGHUP ignored when the tool starts stays ignored. */
Test(cli_signals, a_hangup_ignored_at_start_stays_ignored)
{
    struct proc l;
    const char *args[] = {"listen", "-k", "127.0.0.1:0", NULL};
    void (*old)(int) = signal(SIGHUP, SIG_IGN); /* inherited by the child */
    uint16_t port = nc_listen(&l, args);
    signal(SIGHUP, old);
    cr_assert_eq(kill(l.pid, SIGHUP), 0);
    /* Still serving: a client connects after the hangup and is heard. */
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "after hup\n", 10));
    cr_expect(nc_read_is(l.out, "after hup\n", 10000), "stderr: %s", l.errbuf);
    cr_expect_eq(proc_wait(&l, 0), -1, "still running");
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "stderr: %s", l.errbuf);
    close(c);
}

#define KEEP_CLIENTS 4

/*
 * listen -k, its stdout read slowly: at SIGTERM it stops accepting and
 * reading, writes every byte it had received, then exits 143.
 */
Test(cli_signals, keep_open_at_sigterm_writes_all_it_received_to_a_slow_stdout)
{
    signal(SIGPIPE, SIG_IGN);
    struct proc l;
    const char *args[] = {"listen", "-k", "-v", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int c[KEEP_CLIENTS];
    size_t sent[KEEP_CLIENTS] = {0};
    static unsigned char fill[KEEP_CLIENTS][65536];
    for (int i = 0; i < KEEP_CLIENTS; i++) {
        c[i] = tn_connect(port);
        cr_assert_geq(c[i], 0, "client %d", i);
        memset(fill[i], FILL(i), sizeof fill[i]);
        tn_set_nonblock(c[i], true);
    }
    /* The clients send faster than stdout is read (a little at a time):
     * the tool's stdout queue fills, reading the clients pauses. */
    tn_set_nonblock(l.out, true);
    size_t got = 0, cap = 64u << 20;
    unsigned char *out = malloc(cap);
    uint64_t end = tn_now_ms() + 30000;
    bool all_stuck = false;
    while (!all_stuck && tn_now_ms() < end) {
        all_stuck = true;
        for (int i = 0; i < KEEP_CLIENTS; i++) {
            ssize_t n = write(c[i], fill[i], sizeof fill[i]);
            if (n > 0) {
                sent[i] += (size_t)n;
                all_stuck = false;
            }
        }
        ssize_t n = read(l.out, out + got, 4096);
        if (n > 0)
            got += (size_t)n;
        struct pollfd pfd = {.fd = l.out, .events = POLLIN};
        poll(&pfd, 1, 20);
    }
    cr_assert(all_stuck, "the clients never filled the tool; stderr: %s", l.errbuf);
    cr_assert_eq(kill(l.pid, SIGTERM), 0);

    /* Once the tool has acted on the signal the clients are reset, and the
     * listener is gone: nobody new gets in, though stdout is not drained. */
    for (int i = 0; i < KEEP_CLIENTS; i++)
        cr_expect_eq(nc_eof_state(c[i], 10000), 2, "client %d is reset", i);
    int late = tn_connect(port);
    cr_expect_lt(late, 0, "a client after the signal is refused");
    if (late >= 0)
        close(late);

    /* Then the rest of stdout, still slowly, to EOF. */
    tn_set_nonblock(l.out, false);
    unsigned char *rest;
    size_t nrest = read_to_eof(l.out, &rest, 30000);
    cr_assert_leq(got + nrest, cap);
    memcpy(out + got, rest, nrest);
    got += nrest;
    free(rest);
    int status = proc_wait(&l, 10000);
    cr_expect_eq(status, 128 + SIGTERM, "stderr: %s", l.errbuf);

    long long received = received_of(&l);
    cr_expect_eq((long long)got, received, "%zu bytes on stdout, %lld received; stderr: %s", got,
                 received, l.errbuf);
    size_t count[KEEP_CLIENTS] = {0};
    size_t others = 0;
    for (size_t k = 0; k < got; k++) {
        unsigned idx = (unsigned)(out[k] - 'a');
        if (idx < KEEP_CLIENTS)
            count[idx]++;
        else
            others++;
    }
    cr_expect_eq(others, 0, "stdout carries only what the clients sent");
    for (int i = 0; i < KEEP_CLIENTS; i++) {
        cr_expect_gt(count[i], 0, "client %d was heard", i);
        cr_expect_leq(count[i], sent[i], "client %d: more on stdout than it sent", i);
    }
    cr_expect_null(strstr(l.errbuf, "mismatch"), "stderr: %s", l.errbuf);
    free(out);
    for (int i = 0; i < KEEP_CLIENTS; i++)
        close(c[i]);
}

/* A stdout nobody reads cannot hold the stop for good: the tool gives up
 * after its time-out, says so, and still exits 143. */
Test(cli_signals, a_stdout_that_never_drains_does_not_hold_the_stop)
{
    signal(SIGPIPE, SIG_IGN);
    struct proc l;
    const char *args[] = {"listen", "-k", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    const unsigned char *pat = nc_pattern(3);
    fill_until_stuck(c, pat, 64u << 20, 500);
    cr_expect_eq(proc_signal(&l, SIGTERM, 60000), 128 + SIGTERM, "stderr: %s", l.errbuf);
    cr_expect(strstr(l.errbuf, "could not all be written"), "stderr: %s", l.errbuf);
    free((void *)pat);
    close(c);
}

/* Servers whose normal end is a signal. */
static void server_exits_0(const char *const *args, int sig)
{
    struct proc s;
    cr_assert(nc_start(&s, -1, args));
    cr_assert_neq(proc_listening(&s, 10000), 0, "stderr: %s", s.errbuf);
    cr_expect_eq(proc_signal(&s, sig, 10000), 0, "stderr: %s", s.errbuf);
}

Test(cli_signals, echo_and_relay_stopped_by_a_signal_exit_0)
{
    const char *echo[] = {"echo", "--no-stats", "127.0.0.1:0", NULL};
    server_exits_0(echo, SIGTERM);
    server_exits_0(echo, SIGHUP);
    const char *relay[] = {"relay", "--no-stats", "127.0.0.1:0", "127.0.0.1:9", NULL};
    server_exits_0(relay, SIGINT);
}

/* listen --broker is a listen: a signal is not its normal end. */
Test(cli_signals, broker_stopped_by_sigterm_exits_143)
{
    struct proc l;
    const char *args[] = {"listen", "--broker", "127.0.0.1:0", NULL};
    nc_listen(&l, args);
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "stderr: %s", l.errbuf);
}
