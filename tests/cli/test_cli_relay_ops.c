/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay in production use: the graceful drain (live transfers
 * finish byte-exact, a second signal closes at once, the drain time-out
 * closes the rest), the hand-over of a port to a new relay with
 * --reuseport while clients hammer it (not one refused), and the access
 * log (one valid JSON line per connection with the bytes the clients
 * counted, the text format, a log nobody reads costing lines but never
 * the connections).
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "nc_support.h"
#include "relay_ops_support.h"
#include "statsclient.h"

static char tmpdir[64];

static void ops_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "relayops");
}

static void ops_fini(void)
{
    nc_dir_fini(tmpdir);
}

TestSuite(cli_relay_ops, .init = ops_init, .fini = ops_fini, .timeout = 120);

/* ---- helpers ---- */

static uint16_t start_echo(struct proc *p)
{
    cr_assert(proc_start(p, -1, "echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* relay -W 2 -v ARGS... LISTEN TARGET, where ARGS ends with NULL; listen is
 * "127.0.0.1:0" unless given. */
static uint16_t start_relay(struct proc *p, const char *listen, uint16_t target, ...)
{
    static char tgt[32];
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    argv[n++] = "relay";
    argv[n++] = "-W";
    argv[n++] = "2";
    argv[n++] = "-v";
    va_list ap;
    va_start(ap, target);
    char *a;
    while (n < 36 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    snprintf(tgt, sizeof tgt, "127.0.0.1:%u", target);
    argv[n++] = (char *)(listen ? listen : "127.0.0.1:0");
    argv[n++] = tgt;
    argv[n] = NULL;
    cr_assert(proc_startv(p, -1, argv));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* Wait until the child's stderr says `what` (bounded). */
static bool err_says(struct proc *p, const char *what, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (!strstr(p->errbuf, what)) {
        if (tn_now_ms() >= end || p->err < 0)
            return false;
        proc_pump_err(p, 20);
    }
    return true;
}

static void expect_no_reports(const struct proc *p)
{
    cr_expect_null(strstr(p->errbuf, "mismatch"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* The access log's lines: count them and check each is one JSON object;
 * count those whose "end" is `end` (NULL: any). */
static int log_lines(const char *path, const char *end, int *with_end)
{
    size_t text_len;
    char *text = ro_slurp(path, &text_len);
    cr_assert_not_null(text, "no log at %s", path);
    int n = 0;
    *with_end = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        /* memchr, not strchr: a checked build's strchr measures the
         * whole rest of the file at every line. */
        nl = memchr(line, '\n', (size_t)(text + text_len - line));
        cr_assert_not_null(nl, "last line not ended: %s", line);
        *nl = '\0';
        cr_assert(rj_valid_object(line), "not JSON: %s", line);
        char e[32];
        if (!end || !strcmp(rj_string_of(line, "end", e, sizeof e), end))
            (*with_end)++;
        n++;
    }
    free(text);
    return n;
}

/* A connection to the relay that has carried one byte each way. */
static int live_connection(uint16_t port)
{
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "a", 1));
    char c;
    cr_assert_eq(tn_read_full(fd, &c, 1, 10000), 1, "no echo through the relay");
    return fd;
}

/* ---- drain ---- */

#define LIVE      100
#define LIVE_HEAD (16u * 1024u)  /* sent and echoed before the signal */
#define LIVE_SIZE (256u * 1024u) /* each transfer in all */

Test(cli_relay_ops, drain_lets_100_live_transfers_finish_byte_exact)
{
    char log[128];
    snprintf(log, sizeof log, "%s/drain.log", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    uint16_t port =
        start_relay(&relay, NULL, eport, "--drain-timeout", "60", "--log", log, "--no-stats", NULL);

    static unsigned char out[LIVE_SIZE], in[LIVE_SIZE];
    int fd[LIVE];
    size_t written[LIVE], got[LIVE];
    bool eof[LIVE], shut[LIVE];
    for (int i = 0; i < LIVE; i++) {
        fd[i] = tn_connect(port);
        cr_assert_geq(fd[i], 0, "connection %d", i);
        tn_pattern(out, LIVE_HEAD, (uint64_t)i, 0);
        cr_assert(tn_write_all(fd[i], out, LIVE_HEAD));
        written[i] = LIVE_HEAD;
        shut[i] = eof[i] = false;
    }
    /* Every transfer is live end to end: its first part came back. */
    for (int i = 0; i < LIVE; i++) {
        cr_assert_eq(tn_read_full(fd[i], in, LIVE_HEAD, 20000), LIVE_HEAD, "transfer %d", i);
        tn_pattern(out, LIVE_HEAD, (uint64_t)i, 0);
        cr_assert_eq(memcmp(in, out, LIVE_HEAD), 0, "transfer %d", i);
        got[i] = LIVE_HEAD;
        tn_set_nonblock(fd[i], true);
    }

    kill(relay.pid, SIGTERM);
    cr_assert(err_says(&relay, "draining", 10000), "%s", relay.errbuf);
    /* It stopped accepting at once: a new client is refused. */
    int probe = tn_connect(port);
    if (probe >= 0)
        close(probe);
    cr_expect_lt(probe, 0, "a new connection was accepted while draining");
    cr_assert_eq(proc_wait(&relay, 0), -1, "the relay left before its transfers ended: %s",
                 relay.errbuf);

    /* The rest of every transfer, both ways, then the half-close. */
    uint64_t end = tn_now_ms() + 60000;
    int left = LIVE;
    while (left && tn_now_ms() < end) {
        struct pollfd pfd[LIVE];
        for (int i = 0; i < LIVE; i++) {
            pfd[i].fd = eof[i] ? -1 : fd[i];
            pfd[i].events = (short)(POLLIN | (written[i] < LIVE_SIZE ? POLLOUT : 0));
        }
        if (poll(pfd, LIVE, 1000) <= 0)
            continue;
        for (int i = 0; i < LIVE; i++) {
            if (pfd[i].revents & POLLOUT) {
                size_t n = LIVE_SIZE - written[i] > 16384 ? 16384 : LIVE_SIZE - written[i];
                tn_pattern(out, n, (uint64_t)i, written[i]);
                ssize_t w = write(fd[i], out, n);
                if (w > 0)
                    written[i] += (size_t)w;
            }
            if (written[i] == LIVE_SIZE && !shut[i]) {
                shutdown(fd[i], SHUT_WR);
                shut[i] = true;
            }
            if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) {
                ssize_t k = read(fd[i], in, sizeof in);
                if (k > 0) {
                    static unsigned char want[LIVE_SIZE];
                    tn_pattern(want, (size_t)k, (uint64_t)i, got[i]);
                    cr_assert(got[i] + (size_t)k <= LIVE_SIZE && !memcmp(in, want, (size_t)k),
                              "transfer %d: wrong bytes at %zu", i, got[i]);
                    got[i] += (size_t)k;
                } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
                    eof[i] = true;
                    left--;
                }
            }
        }
    }
    for (int i = 0; i < LIVE; i++) {
        cr_expect_eq(got[i], LIVE_SIZE, "transfer %d: %zu of %u bytes back", i, got[i],
                     LIVE_SIZE);
        close(fd[i]);
    }
    /* The last pair gone, the relay ends by itself, with status 0. */
    cr_expect_eq(proc_wait(&relay, 20000), 0, "%s", relay.errbuf);
    expect_no_reports(&relay);
    int eofs;
    int lines = log_lines(log, "eof", &eofs);
    cr_expect_eq(eofs, LIVE, "%d lines, %d ended eof", lines, eofs);
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_relay_ops, second_signal_closes_at_once)
{
    char log[128];
    snprintf(log, sizeof log, "%s/second.log", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    uint16_t port =
        start_relay(&relay, NULL, eport, "--drain-timeout", "600", "--log", log, "--no-stats", NULL);
    int fd = live_connection(port);

    kill(relay.pid, SIGTERM);
    cr_assert(err_says(&relay, "draining", 10000), "%s", relay.errbuf);
    /* Draining, it still relays for the live connection. */
    cr_assert(tn_write_all(fd, "b", 1));
    char c;
    cr_assert_eq(tn_read_full(fd, &c, 1, 10000), 1);
    cr_expect_eq(c, 'b');

    /* The second signal: closed at once, not after 600 s. */
    cr_expect_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    cr_expect_neq(ro_end_state(fd, 10000), 0, "the live connection was not closed");
    close(fd);
    expect_no_reports(&relay);
    int drained;
    cr_expect_eq(log_lines(log, "drained", &drained), 1);
    cr_expect_eq(drained, 1, "the live connection is logged as drained");
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_relay_ops, drain_timeout_closes_the_rest)
{
    char log[128];
    snprintf(log, sizeof log, "%s/timeout.log", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    uint16_t port =
        start_relay(&relay, NULL, eport, "--drain-timeout", "1", "--log", log, "--no-stats", NULL);
    int idle = live_connection(port);
    int done = live_connection(port);
    shutdown(done, SHUT_WR);
    cr_expect_eq(ro_end_state(done, 10000), 1, "a finished exchange ends with EOF");
    close(done);

    /* One connection stays idle: the drain waits for it a second, then
     * closes it, and the relay still exits 0. */
    cr_expect_eq(proc_signal(&relay, SIGTERM, 20000), 0, "%s", relay.errbuf);
    cr_expect(strstr(relay.errbuf, "drain time-out"), "%s", relay.errbuf);
    cr_expect_gt(ro_end_state(idle, 10000), 0, "the idle connection was not closed");
    close(idle);
    expect_no_reports(&relay);
    int drained, eofs;
    cr_expect_eq(log_lines(log, "drained", &drained), 2);
    cr_expect_eq(drained, 1);
    log_lines(log, "eof", &eofs);
    cr_expect_eq(eofs, 1);
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_relay_ops, refused_client_is_counted_and_logged)
{
    char log[128], ep[128];
    snprintf(log, sizeof log, "%s/refused.log", tmpdir);
    snprintf(ep, sizeof ep, "%s/refused.sock", tmpdir);
    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tn_closed_port(), "--log", log, "--stats", ep, NULL);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_expect_eq(ro_end_state(fd, 10000), 2, "a client with no target is reset");
    close(fd);
    cr_assert(stats_wait_for(ep, "relay_refused", 1, 10000), "%s", stats_ask(ep, "json\n", 5000));
    char *prom = stats_ask(ep, "prometheus\n", 5000);
    cr_expect(strstr(prom, "iocptool_relay_refused_total 1\n"), "%s", prom);
    cr_expect(strstr(prom, "iocptool_log_dropped_total 0\n"), "%s", prom);
    free(prom);
    cr_expect_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    int refused;
    cr_expect_eq(log_lines(log, "refused", &refused), 1);
    cr_expect_eq(refused, 1);
}

/* ---- hand-over ---- */

Test(cli_relay_ops, reuseport_swap_refuses_no_connection)
{
    char log_old[128], log_new[128], listen[32];
    snprintf(log_old, sizeof log_old, "%s/old.log", tmpdir);
    snprintf(log_new, sizeof log_new, "%s/new.log", tmpdir);
    struct proc echo, old, next;
    uint16_t eport = start_echo(&echo);
    uint16_t port = start_relay(&old, NULL, eport, "--reuseport", "--log", log_old, "--no-stats",
                                NULL);
    snprintf(listen, sizeof listen, "127.0.0.1:%u", port);

    struct ro_hammer h;
    ro_hammer_start(&h, port, 4, 0);
    cr_assert(ro_hammer_wait(&h, 300, 30000), "the old relay served %ld", atomic_load(&h.done));
    /* The successor binds the same port while the old one serves... */
    long before_swap = atomic_load(&h.done);
    start_relay(&next, listen, eport, "--reuseport", "--log", log_new, "--no-stats", NULL);
    /* ...and the old one drains away. */
    cr_expect_eq(proc_signal(&old, SIGTERM, 30000), 0, "%s", old.errbuf);
    long at_exit = atomic_load(&h.done);
    cr_assert(ro_hammer_wait(&h, at_exit + 300, 30000), "the new relay served %ld",
              atomic_load(&h.done) - at_exit);
    ro_hammer_stop(&h);

    long done = atomic_load(&h.done);
    cr_expect_eq(atomic_load(&h.failed[RO_REFUSED]), 0, "refused");
    cr_expect_eq(atomic_load(&h.failed[RO_RESET]), 0, "reset");
    cr_expect_eq(atomic_load(&h.failed[RO_SHORT]), 0, "cut short");
    cr_expect_eq(atomic_load(&h.failed[RO_WRONG]), 0, "wrong bytes");
    cr_expect_eq(atomic_load(&h.failed[RO_OTHER]), 0, "other errors");
    cr_expect_eq(atomic_load(&h.failed[RO_OK]), done);
    expect_no_reports(&old);

    /* Both served: the old before the swap, the new after it; together
     * every exchange. */
    cr_expect_eq(proc_signal(&next, SIGTERM, 30000), 0, "%s", next.errbuf);
    int e_old, e_new;
    int n_old = log_lines(log_old, "eof", &e_old), n_new = log_lines(log_new, "eof", &e_new);
    cr_expect_geq(n_old, before_swap, "old relay: %d lines", n_old);
    cr_expect_gt(n_new, 0);
    cr_expect_eq(n_old + n_new, done, "%d + %d lines, %ld exchanges", n_old, n_new, done);
    cr_expect_eq(e_old + e_new, done);
    proc_signal(&echo, SIGTERM, 10000);
}

/* ---- the access log ---- */

#ifdef IOCP_TEST_SANITIZED
#define LOG_CONNS 3000
#else
#define LOG_CONNS 10000
#endif

/* Check every line against what a client on that port sent and got. */
static void check_log_bytes(const char *path, int want_lines)
{
    size_t text_len;
    char *text = ro_slurp(path, &text_len);
    cr_assert_not_null(text);
    int n = 0, bad = 0;
    for (char *line = text, *nl; *line; line = nl + 1) {
        /* memchr, not strchr: a checked build's strchr measures the
         * whole rest of the file at every line. */
        nl = memchr(line, '\n', (size_t)(text + text_len - line));
        cr_assert_not_null(nl);
        *nl = '\0';
        cr_assert(rj_valid_object(line), "line %d not JSON: %s", n + 1, line);
        char client[80], end[16], listen[80], target[80], when[40];
        rj_string_of(line, "client", client, sizeof client);
        rj_string_of(line, "listen", listen, sizeof listen);
        rj_string_of(line, "target", target, sizeof target);
        rj_string_of(line, "time", when, sizeof when);
        char *colon = strrchr(client, ':');
        cr_assert_not_null(colon, "%s", line);
        long long size = (long long)ro_size_of((uint16_t)atoi(colon + 1));
        if (rj_number_of(line, "bytes_from_client") != size ||
            rj_number_of(line, "bytes_to_client") != size ||
            strcmp(rj_string_of(line, "end", end, sizeof end), "eof") ||
            strncmp(client, "127.0.0.1:", 10) || strncmp(listen, "127.0.0.1:", 10) ||
            strncmp(target, "127.0.0.1:", 10) || strlen(when) != 24 ||
            rj_number_of(line, "duration_ms") < 0 || rj_number_of(line, "id") < 0) {
            if (bad++ < 5)
                cr_log_error("line %d: %s (the client sent and got %lld)", n + 1, line, size);
        }
        n++;
    }
    free(text);
    cr_expect_eq(bad, 0, "%d lines disagree with the clients", bad);
    cr_expect_eq(n, want_lines);
}

Test(cli_relay_ops, log_has_one_json_line_per_connection_with_the_clients_bytes)
{
    char log[128];
    snprintf(log, sizeof log, "%s/conns.log", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    uint16_t port = start_relay(&relay, NULL, eport, "--log", log, "--no-stats", NULL);
    struct ro_hammer h;
    ro_hammer_start(&h, port, 6, LOG_CONNS);
    bool all = ro_hammer_wait(&h, LOG_CONNS, 100000);
    ro_hammer_stop(&h);
    cr_assert(all, "%ld of %d exchanges", atomic_load(&h.done), LOG_CONNS);
    cr_assert_eq(atomic_load(&h.failed[RO_OK]), LOG_CONNS, "exchanges that failed");
    /* Every line is in the file once the relay has stopped. */
    cr_expect_eq(proc_signal(&relay, SIGTERM, 20000), 0, "%s", relay.errbuf);
    expect_no_reports(&relay);
    check_log_bytes(log, LOG_CONNS);
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_relay_ops, log_text_format_is_one_line_per_connection)
{
    char log[128];
    snprintf(log, sizeof log, "%s/text.log", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    uint16_t port = start_relay(&relay, NULL, eport, "--log", log, "--log-format", "text",
                                "--no-stats", NULL);
    cr_assert_eq(ro_exchange(port, 10000), RO_OK);
    cr_assert_eq(ro_exchange(port, 10000), RO_OK);
    cr_expect_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    char *text = ro_slurp(log, NULL);
    cr_assert_not_null(text);
    int lines = 0;
    for (char *l = text; (l = strchr(l, '\n')); l++)
        lines++;
    cr_expect_eq(lines, 2, "%s", text);
    char want[64];
    snprintf(want, sizeof want, "-> 127.0.0.1:%u eof, ", eport);
    cr_expect(strstr(text, want), "%s", text);
    cr_expect(strstr(text, " bytes from the client, "), "%s", text);
    free(text);
    proc_signal(&echo, SIGTERM, 10000);
}

Test(cli_relay_ops, log_nobody_reads_drops_lines_not_connections)
{
    char ep[128];
    snprintf(ep, sizeof ep, "%s/stuck.sock", tmpdir);
    struct proc echo, relay;
    uint16_t eport = start_echo(&echo);
    /* The log goes to the relay's stdout, a pipe this test never reads: it
     * fills after a few hundred lines, then the 4 KiB buffer, then lines
     * are dropped. */
    uint16_t port =
        start_relay(&relay, NULL, eport, "--log", "-", "--log-buffer", "4", "--stats", ep, NULL);
    const int conns = 1500;
    struct ro_hammer h;
    ro_hammer_start(&h, port, 4, conns);
    bool all = ro_hammer_wait(&h, conns, 60000);
    ro_hammer_stop(&h);
    cr_assert(all, "%ld of %d exchanges", atomic_load(&h.done), conns);
    cr_expect_eq(atomic_load(&h.failed[RO_OK]), conns, "the connections paid for the log");

    char *json = NULL;
    uint64_t end = tn_now_ms() + 10000;
    long long lines = -1, dropped = -1;
    while (tn_now_ms() < end) {
        free(json);
        json = stats_ask(ep, "json\n", 5000);
        lines = stats_json_number(json, "log_lines");
        dropped = stats_json_number(json, "log_dropped");
        if (lines + dropped == conns)
            break;
        usleep(10000);
    }
    cr_expect_gt(dropped, 0, "%s", json);
    cr_expect_eq(lines + dropped, conns, "%s", json);
    free(json);
    /* The stuck log does not hold the exit either. */
    cr_expect_eq(proc_signal(&relay, SIGTERM, 20000), 0, "%s", relay.errbuf);
    expect_no_reports(&relay);
    proc_signal(&echo, SIGTERM, 10000);
}
