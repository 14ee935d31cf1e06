/* SPDX-License-Identifier: MIT */
/*
 * iocptool listen (and connect at the other end), driven as users drive
 * them: bulk transfers both ways, -k fan-in of many clients, --broker,
 * --max-conns accounting, back-pressure, the idle time-out, and usage
 * errors.  Access lists have their own suite (test_cli_acl.c).
 */
#include <criterion/criterion.h>

#include <sys/resource.h>

#include "nc_support.h"

TestSuite(cli_listen, .fini = proc_cleanup_all, .timeout = 90);

#ifdef IOCP_TEST_SANITIZED
#define BULK_BYTES ((size_t)16 << 20)
#else
#define BULK_BYTES ((size_t)100 << 20)
#endif

static void portarg(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "%u", port);
}

/* listen and connect back to back; n bytes each way at once, checked. */
static void transfer(const char *vflag, size_t bytes)
{
    struct proc l, c;
    const char *largs[] = {"listen", vflag, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    char p[8];
    portarg(p, sizeof p, port);
    const char *cargs[] = {"connect", vflag, "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, cargs));

    struct nc_flow f[2];
    nc_flow_init(&f[0], l.in, c.out, bytes, 1);
    nc_flow_init(&f[1], c.in, l.out, bytes, 2);
    proc_forget_fd(&l, l.in);
    proc_forget_fd(&c, c.in);
    l.in = c.in = -1; /* closed by the pump at the end of each stream */
    uint64_t t0 = tn_now_ms();
    cr_expect(nc_pump(f, 2, 80000), "byte-exact both ways; stderr: %s / %s", l.errbuf, c.errbuf);
    cr_log_info("%zu MiB each way in %llu ms", bytes >> 20, (unsigned long long)(tn_now_ms() - t0));
    cr_expect_eq(proc_wait(&l, 5000), 0, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, 5000), 0, "connect: %s", c.errbuf);
    /* Diagnostics went to stderr (the data above was exact). */
    cr_expect(strstr(l.errbuf, "connection from 127.0.0.1:"), "stderr: %s", l.errbuf);
    cr_expect(strstr(c.errbuf, "connected to 127.0.0.1:"), "stderr: %s", c.errbuf);
    char want[96];
    snprintf(want, sizeof want, "%zu bytes sent, %zu bytes received in", bytes, bytes);
    cr_expect(strstr(l.errbuf, want), "listen -v summary; stderr: %s", l.errbuf);
    cr_expect(strstr(c.errbuf, want), "connect -v summary; stderr: %s", c.errbuf);
    /* At -v the engine's books are checked at stop. */
    cr_expect_null(strstr(l.errbuf, "mismatch"), "stderr: %s", l.errbuf);
    cr_expect_null(strstr(c.errbuf, "mismatch"), "stderr: %s", c.errbuf);
}

Test(cli_listen, bulk_both_ways_at_once_is_byte_exact)
{
    transfer("-v", BULK_BYTES);
}

Test(cli_listen, with_vv_stdout_still_carries_only_the_data)
{
    transfer("-vv", 1u << 20);
}

/* ---- -k: many clients ---- */

#define FANIN_CLIENTS 200
#define FANIN_LINES   10

Test(cli_listen, keep_open_fans_200_clients_in_to_stdout_and_stdin_out_to_all)
{
    struct proc l;
    const char *args[] = {"listen", "-k", "--max-conns", "256", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fds[FANIN_CLIENTS];
    for (int i = 0; i < FANIN_CLIENTS; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0, "client %d", i);
    }
    /* Each client writes its lines in one go. */
    for (int i = 0; i < FANIN_CLIENTS; i++) {
        char buf[FANIN_LINES * 40];
        size_t n = 0;
        for (int k = 0; k < FANIN_LINES; k++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "client %03d line %02d\n", i, k);
        cr_assert(tn_write_all(fds[i], buf, n));
    }
    /* Every line arrives on stdout, whole, exactly once. */
    static char seen[FANIN_CLIENTS][FANIN_LINES];
    memset(seen, 0, sizeof seen);
    size_t want = (size_t)FANIN_CLIENTS * FANIN_LINES * 19, got = 0;
    char *all = malloc(want + 1);
    got = tn_read_full(l.out, all, want, 30000);
    all[got] = '\0';
    cr_assert_eq(got, want, "%zu of %zu bytes on stdout; stderr: %s", got, want, l.errbuf);
    int lines = 0;
    for (char *line = all; *line;) {
        char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        int ci, li;
        cr_assert_eq(sscanf(line, "client %03d line %02d", &ci, &li), 2, "mangled line: %.19s",
                     line);
        cr_assert(ci >= 0 && ci < FANIN_CLIENTS && li >= 0 && li < FANIN_LINES);
        cr_expect_eq(seen[ci][li], 0, "line %d of client %d twice", li, ci);
        seen[ci][li] = 1;
        lines++;
        line = nl + 1;
    }
    cr_expect_eq(lines, FANIN_CLIENTS * FANIN_LINES);
    free(all);

    /* stdin goes to every client. */
    cr_assert(tn_write_all(l.in, "to everyone\n", 12));
    for (int i = 0; i < FANIN_CLIENTS; i++)
        cr_expect(nc_read_is(fds[i], "to everyone\n", 10000), "client %d", i);
    /* A client that ends is closed; the others and stdout stay. */
    shutdown(fds[0], SHUT_WR);
    cr_expect(nc_eof_within(fds[0], 5000));
    cr_assert(tn_write_all(fds[1], "still here\n", 11));
    cr_expect(nc_read_is(l.out, "still here\n", 5000));
    for (int i = 0; i < FANIN_CLIENTS; i++)
        close(fds[i]);
    cr_expect(nc_quiet_for(l.out, 300), "-k never closes stdout");
    /* A listen stopped by a signal says so: 128 + SIGTERM. */
    cr_expect_eq(proc_signal(&l, SIGTERM, 5000), 128 + SIGTERM, "stderr: %s", l.errbuf);
}

Test(cli_listen, broker_sends_each_clients_data_to_the_others_only)
{
    struct proc l;
    const char *args[] = {"listen", "--broker", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fd[3];
    for (int i = 0; i < 3; i++) {
        fd[i] = tn_connect(port);
        cr_assert_geq(fd[i], 0);
    }
    /* All three are in the broker once a message from each reaches the
     * others; retry the first message until the third client is seen. */
    for (int i = 0; i < 3; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "from %d\n", i);
        if (i == 0) {
            usleep(200 * 1000);
        }
        cr_assert(tn_write_all(fd[i], msg, strlen(msg)));
        for (int j = 0; j < 3; j++) {
            if (j != i)
                cr_expect(nc_read_is(fd[j], msg, 5000), "client %d gets client %d's data", j, i);
        }
        cr_expect(nc_quiet_for(fd[i], 200), "client %d does not get its own data back", i);
    }
    /* One leaves: the other two go on. */
    close(fd[2]);
    cr_assert(tn_write_all(fd[0], "two left\n", 9));
    cr_expect(nc_read_is(fd[1], "two left\n", 5000));
    cr_expect(nc_quiet_for(l.out, 200), "--broker writes nothing to stdout");
    cr_expect_eq(proc_signal(&l, SIGTERM, 5000), 128 + SIGTERM);
    close(fd[0]);
    close(fd[1]);
}

/* ---- --max-conns: ncat's accounting test ---- */

/* A client counts as accepted when its data comes out on stdout. */
static bool accepted(struct proc *l, int fd, int tag)
{
    char msg[32];
    snprintf(msg, sizeof msg, "c%04d\n", tag);
    return tn_write_all(fd, msg, strlen(msg)) && nc_read_is(l->out, msg, 5000);
}

static void max_conns(int n)
{
    struct proc l;
    char nbuf[8];
    snprintf(nbuf, sizeof nbuf, "%d", n);
    const char *args[] = {"listen", "-k", "--max-conns", nbuf, "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fds[16];
    for (int i = 0; i < n; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0);
        cr_assert(accepted(&l, fds[i], i), "client %d of %d accepted; stderr: %s", i + 1, n,
                  l.errbuf);
    }
    for (int extra = 1; extra <= 2; extra++) {
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        cr_expect(nc_eof_within(fd, 5000), "client N+%d is turned away", extra);
        close(fd);
    }
    close(fds[0]);
    /* The slot frees once the tool has closed its side: retry briefly. */
    bool ok = false;
    for (int tries = 0; tries < 50 && !ok; tries++) {
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        if (nc_eof_state(fd, 100) == 0) {
            ok = accepted(&l, fd, 1000 + tries);
            fds[0] = fd;
            break;
        }
        close(fd);
    }
    cr_expect(ok, "after one closes, a new client is accepted");
    for (int i = 0; i < n; i++)
        close(fds[i]);
    cr_expect_eq(proc_signal(&l, SIGTERM, 5000), 128 + SIGTERM);
}

Test(cli_listen, max_conns_1_accounts_for_each_client)
{
    max_conns(1);
}

Test(cli_listen, max_conns_10_accounts_for_each_client)
{
    max_conns(10);
}

Test(cli_listen, without_k_a_second_client_is_turned_away_and_the_tool_ends_with_the_first)
{
    struct proc l;
    const char *args[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int a = tn_connect(port);
    cr_assert(accepted(&l, a, 1));
    int b = tn_connect(port);
    if (b >= 0) {
        cr_expect(nc_eof_within(b, 5000), "the second client is closed");
        close(b);
    }
    proc_close_in(&l);
    shutdown(a, SHUT_WR);
    cr_expect(nc_eof_within(l.out, 5000));
    cr_expect_eq(proc_wait(&l, 5000), 0, "stderr: %s", l.errbuf);
    close(a);
}

/* ---- back-pressure ---- */

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

Test(cli_listen, a_stalled_stdout_pauses_the_socket_and_memory_stays_flat)
{
    struct proc l;
    const char *args[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    long rss0 = rss_kib(l.pid);
    /* Nobody reads the tool's stdout: the client gets stuck after the
     * pipe, the tool's queue and the socket buffers are full. */
    size_t total = 64u << 20, sent = 0;
    const unsigned char *pat = nc_pattern(3);
    tn_set_nonblock(fd, true);
    uint64_t end = tn_now_ms() + 3000;
    while (tn_now_ms() < end && sent < total) {
        ssize_t w = write(fd, pat + sent % NC_PERIOD, 65536);
        if (w > 0)
            sent += (size_t)w;
        else
            usleep(20 * 1000);
    }
    long rss1 = rss_kib(l.pid);
    cr_expect_lt(sent, (size_t)24 << 20, "the writer was held back (%zu bytes went in)", sent);
    cr_expect_lt(rss1 - rss0, 16 * 1024, "memory stays flat: %ld KiB then %ld KiB", rss0, rss1);
    /* Reading stdout again releases everything, in order. */
    struct nc_flow f;
    nc_flow_init(&f, fd, l.out, total, 3);
    f.written = sent;
    cr_expect(nc_pump(&f, 1, 30000), "stderr: %s", l.errbuf);
    free((void *)pat);
    proc_close_in(&l);
    cr_expect_eq(proc_wait(&l, 5000), 0, "stderr: %s", l.errbuf);
}

Test(cli_listen, a_stalled_socket_pauses_stdin)
{
    struct proc l;
    const char *args[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    /* The client never reads: stdin is read only as far as the socket
     * buffers and the queue allow. */
    tn_set_nonblock(l.in, true);
    const unsigned char *pat = nc_pattern(4);
    size_t sent = 0;
    uint64_t end = tn_now_ms() + 3000;
    while (tn_now_ms() < end) {
        ssize_t w = write(l.in, pat + sent % NC_PERIOD, 65536);
        if (w > 0)
            sent += (size_t)w;
        else
            usleep(20 * 1000);
    }
    cr_expect_lt(sent, (size_t)24 << 20, "stdin was held back (%zu bytes went in)", sent);
    struct nc_flow f;
    nc_flow_init(&f, l.in, fd, sent, 4);
    f.written = sent;
    proc_forget_fd(&l, l.in);
    l.in = -1;
    cr_expect(nc_pump(&f, 1, 30000), "stderr: %s", l.errbuf);
    free((void *)pat);
    shutdown(fd, SHUT_WR);
    cr_expect_eq(proc_wait(&l, 5000), 0, "stderr: %s", l.errbuf);
    close(fd);
}

/* ---- idle time-out ---- */

Test(cli_listen, idle_timeout_ends_a_silent_connection_with_status_1)
{
    struct proc l;
    const char *args[] = {"listen", "-i", "1", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, args);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    /* Traffic either way resets the timer: 2 s of it keeps it alive. */
    for (int i = 0; i < 5; i++) {
        usleep(400 * 1000);
        if (i % 2)
            cr_assert(accepted(&l, fd, i));
        else
            cr_assert(tn_write_all(l.in, "x", 1) && nc_read_is(fd, "x", 2000));
    }
    cr_expect(proc_still_running(&l, 100), "still running while traffic flows");
    uint64_t t0 = tn_now_ms();
    cr_expect_eq(proc_wait(&l, 5000), 1, "idle: exit 1; stderr: %s", l.errbuf);
    uint64_t took = tn_now_ms() - t0;
    cr_expect(took >= 700 && took <= 3000, "ended %llu ms after the last byte",
              (unsigned long long)took);
    cr_expect(strstr(l.errbuf, "idle timeout expired"), "stderr: %s", l.errbuf);
    cr_expect(nc_eof_within(fd, 2000));
    close(fd);
}

/* ---- addresses and usage ---- */

Test(cli_listen, ipv6_only_listens_on_v6_and_refuses_v4)
{
    struct proc l;
    const char *args[] = {"listen", "-6", "0", NULL};
    uint16_t port = nc_listen(&l, args);
    cr_expect(strstr(l.errbuf, "listening on :: "), "stderr: %s", l.errbuf);
    cr_expect_lt(tn_connect(port), 0, "no IPv4 listener");
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {
        .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_expect(accepted(&l, fd, 6));
    close(fd);
}

Test(cli_listen, source_and_port_options_work_like_netcats_l_p)
{
    struct proc l;
    const char *args[] = {"listen", "-l", "-s", "127.0.0.1", "-p", "0", NULL};
    uint16_t port = nc_listen(&l, args);
    cr_expect(strstr(l.errbuf, "listening on 127.0.0.1 "), "stderr: %s", l.errbuf);
    int fd = tn_connect(port);
    cr_expect(accepted(&l, fd, 7));
    close(fd);
}

static void expect_usage_error(const char *const *args, const char *const *messages)
{
    struct proc p;
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 5000), 2, "stderr: %s", p.errbuf);
    for (int i = 0; messages[i]; i++)
        cr_expect(strstr(p.errbuf, messages[i]), "wanted \"%s\" in: %s", messages[i], p.errbuf);
    char c;
    cr_expect_eq(read(p.out, &c, 1), 0, "nothing on stdout");
}

Test(cli_listen, conflicting_options_are_all_reported_with_status_2)
{
    const char *args[] = {"listen",      "--send-only", "--recv-only", "-z",
                          "--max-conns", "5",           "0",           NULL};
    const char *msgs[] = {"iocptool: listen: --send-only and --recv-only exclude each other",
                          "iocptool: listen: -z:", "iocptool: listen: --max-conns:", NULL};
    expect_usage_error(args, msgs);
}

Test(cli_listen, bad_numbers_say_why)
{
    const char *a1[] = {"listen", "70000", NULL};
    const char *m1[] = {"iocptool: listen: port 70000: too large", NULL};
    expect_usage_error(a1, m1);
    const char *a2[] = {"listen", "-k", "--max-conns", "0", "0", NULL};
    const char *m2[] = {"--max-conns 0: too small", NULL};
    expect_usage_error(a2, m2);
    const char *a3[] = {"listen", "-q", "-1", "0", NULL};
    const char *m3[] = {"-q -1: must not be negative", NULL};
    expect_usage_error(a3, m3);
    const char *a4[] = {"listen", "-n", "localhost:0", NULL};
    const char *m4[] = {"not a numeric address", NULL};
    expect_usage_error(a4, m4);
}

Test(cli_listen, a_port_in_use_is_a_runtime_error)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char arg[32];
    snprintf(arg, sizeof arg, "127.0.0.1:%u", port);
    struct proc p;
    const char *args[] = {"listen", arg, NULL};
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 5000), 1);
    cr_expect(strstr(p.errbuf, "address already in use"), "stderr: %s", p.errbuf);
    close(lfd);
}

Test(cli_listen, help_goes_to_stdout)
{
    struct proc p;
    const char *args[] = {"listen", "--help", NULL};
    cr_assert(nc_start(&p, -1, args));
    char buf[4096];
    size_t n = tn_read_full(p.out, buf, sizeof buf - 1, 5000);
    buf[n] = '\0';
    cr_expect_eq(proc_wait(&p, 5000), 0);
    cr_expect(strstr(buf, "usage: iocptool listen"));
    cr_expect_eq(p.errlen, 0, "stderr: %s", p.errbuf);
}
