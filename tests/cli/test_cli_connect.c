/* SPDX-License-Identifier: MIT */
/*
 * iocptool connect: port probes (-z), the connect time-out, refused and
 * unknown hosts, the source address and port, the --progress line, usage
 * errors, and byte-exact interop with ncat and socat at the other end of
 * listen and connect.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "nc_support.h"

TestSuite(cli_connect, .fini = proc_cleanup_all, .timeout = 60);

#define INTEROP_BYTES ((size_t)8 << 20)

static void portarg(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "%u", port);
}

/* ---- -z ---- */

/* Three consecutive ports: the outer two listening, the middle one not. */
static uint16_t open_closed_open(int lfd[2])
{
    for (int tries = 0; tries < 200; tries++) {
        uint16_t base =
            (uint16_t)(20000 + (tn_now_ms() * 7919u + (unsigned)tries * 104729u) % 40000u);
        int fds[3];
        bool ok = true;
        for (int k = 0; k < 3 && ok; k++) {
            fds[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            struct sockaddr_in sa = tn_loopback((uint16_t)(base + k));
            ok = bind(fds[k], (struct sockaddr *)&sa, sizeof sa) == 0 &&
                 (k == 1 || listen(fds[k], 64) == 0);
            if (!ok)
                for (int j = 0; j <= k; j++)
                    close(fds[j]);
        }
        if (!ok)
            continue;
        close(fds[1]); /* bound a moment ago, so nothing listens there */
        lfd[0] = fds[0];
        lfd[1] = fds[2];
        return base;
    }
    cr_assert_fail("no three free consecutive ports");
    return 0;
}

Test(cli_connect, probe_lists_and_ranges_print_each_open_port_in_order)
{
    int lfd[2];
    uint16_t base = open_closed_open(lfd);
    uint16_t other = 0;
    int ofd = tn_listen(&other);
    uint16_t closed1 = tn_closed_port(), closed2 = tn_closed_port();
    char range[16], list[16], c2[8];
    snprintf(range, sizeof range, "%u-%u", base, base + 2);
    snprintf(list, sizeof list, "%u,%u", closed1, other);
    portarg(c2, sizeof c2, closed2);

    struct proc p;
    const char *args[] = {"connect", "-z", "127.0.0.1", range, list, c2, NULL};
    cr_assert(nc_start(&p, -1, args));
    char out[256];
    size_t n = tn_read_full(p.out, out, sizeof out - 1, 10000);
    out[n] = '\0';
    cr_expect_eq(proc_wait(&p, 10000), 0, "some port is open: status 0; stderr: %s", p.errbuf);
    char want[256];
    snprintf(want, sizeof want, "127.0.0.1 %u open\n127.0.0.1 %u open\n127.0.0.1 %u open\n", base,
             base + 2, other);
    cr_expect_str_eq(out, want);
    cr_expect_eq(p.errlen, 0, "nothing on stderr without -v: %s", p.errbuf);
    close(lfd[0]);
    close(lfd[1]);
    close(ofd);
}

Test(cli_connect, probe_with_every_port_closed_prints_nothing_and_exits_1)
{
    char a[8], b[8];
    portarg(a, sizeof a, tn_closed_port());
    portarg(b, sizeof b, tn_closed_port());
    struct proc p;
    const char *args[] = {"connect", "-z", "-v", "127.0.0.1", a, b, NULL};
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 10000), 1);
    char c;
    cr_expect_eq(read(p.out, &c, 1), 0, "nothing on stdout");
    cr_expect(strstr(p.errbuf, "connection refused"), "-v says why: %s", p.errbuf);
}

Test(cli_connect, probe_port_ranges_are_checked)
{
    struct proc p;
    const char *args[] = {"connect", "-z", "127.0.0.1", "25-20", NULL};
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 5000), 2);
    cr_expect(strstr(p.errbuf, "iocptool: connect: port range 25-20: goes backwards"), "%s",
              p.errbuf);
}

/* ---- failures ---- */

Test(cli_connect, connect_timeout_against_a_full_backlog_exits_1_after_about_w)
{
    /* listen(fd, 0) and fill the queue: further SYNs are dropped, so a
     * connect hangs as it would towards an unroutable address. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = tn_loopback(0);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &len), 0);
    int fill[64], nfill = 0;
    for (; nfill < 64; nfill++) {
        fill[nfill] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[nfill], (struct sockaddr *)&sa, sizeof sa);
        struct pollfd pfd = {.fd = fill[nfill], .events = POLLOUT};
        if (poll(&pfd, 1, 300) == 0) {
            nfill++;
            break; /* this one hangs: the queue is full */
        }
    }
    cr_assert_lt(nfill, 64, "the backlog never filled up");

    char p[8];
    portarg(p, sizeof p, ntohs(sa.sin_port));
    struct proc c;
    const char *args[] = {"connect", "-w", "1", "127.0.0.1", p, NULL};
    uint64_t t0 = tn_now_ms();
    cr_assert(nc_start(&c, -1, args));
    cr_expect_eq(proc_wait(&c, 10000), 1, "stderr: %s", c.errbuf);
    uint64_t took = tn_now_ms() - t0;
    cr_expect(took >= 900 && took < 4000, "gave up after %llu ms", (unsigned long long)took);
    cr_expect(strstr(c.errbuf, "iocptool: connect: 127.0.0.1:"), "stderr: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "timed out"), "stderr: %s", c.errbuf);
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    close(lfd);
}

Test(cli_connect, a_refused_connection_exits_1_and_says_so)
{
    char p[8];
    portarg(p, sizeof p, tn_closed_port());
    struct proc c;
    const char *args[] = {"connect", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_expect_eq(proc_wait(&c, 10000), 1);
    char want[64];
    snprintf(want, sizeof want, "iocptool: connect: 127.0.0.1:%s: connection refused", p);
    cr_expect(strstr(c.errbuf, want), "stderr: %s", c.errbuf);
    char ch;
    cr_expect_eq(read(c.out, &ch, 1), 0, "nothing on stdout");
}

Test(cli_connect, an_unknown_host_exits_1)
{
    struct proc c;
    const char *args[] = {"connect", "no-such-host.invalid", "80", NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_expect_eq(proc_wait(&c, 20000), 1, "stderr: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "iocptool: connect: no-such-host.invalid:80: "), "stderr: %s",
              c.errbuf);
}

Test(cli_connect, numeric_only_refuses_a_name_as_a_usage_error)
{
    struct proc c;
    const char *args[] = {"connect", "-n", "localhost", "80", NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_expect_eq(proc_wait(&c, 5000), 2);
    cr_expect(strstr(c.errbuf, "iocptool: connect: localhost: not a numeric address (-n)"), "%s",
              c.errbuf);
}

/* ---- source address, verbosity ---- */

Test(cli_connect, source_address_and_port_are_used)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    uint16_t sport = tn_server_port();
    char p[8], sp[8];
    portarg(p, sizeof p, port);
    portarg(sp, sizeof sp, sport);
    struct proc c;
    const char *args[] = {"connect", "-v", "-s", "127.0.0.1", "-p", sp, "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    int fd = nc_accept(lfd, 10000);
    cr_assert_geq(fd, 0, "stderr: %s", c.errbuf);
    struct sockaddr_in peer;
    socklen_t len = sizeof peer;
    cr_assert_eq(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
    cr_expect_eq(ntohs(peer.sin_port), sport);
    proc_close_in(&c);
    cr_expect(nc_eof_within(fd, 5000));
    close(fd);
    cr_expect_eq(proc_wait(&c, 5000), 0, "stderr: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "iocptool: connect: connected to 127.0.0.1:"), "%s", c.errbuf);
    close(lfd);
}

/* A peer that sends one byte every 100 ms for about 1.6 s. */
static void trickle(int fd)
{
    for (int i = 0; i < 16; i++) {
        usleep(100 * 1000);
        tn_write_all(fd, "x", 1);
    }
    shutdown(fd, SHUT_WR);
}

Test(cli_connect, progress_prints_nothing_when_stderr_is_not_a_terminal)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *args[] = {"connect", "--progress", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, devnull, args));
    close(devnull);
    int fd = nc_accept(lfd, 10000);
    cr_assert_geq(fd, 0);
    trickle(fd);
    cr_expect_eq(proc_wait(&c, 5000), 0);
    cr_expect_eq(c.errlen, 0, "stderr stays empty: %s", c.errbuf);
    char buf[32];
    cr_expect_eq(tn_read_full(c.out, buf, sizeof buf, 2000), 16u, "stdout has the data only");
    close(fd);
    close(lfd);
}

Test(cli_connect, progress_shows_bytes_rate_and_time_on_a_terminal)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    char p[8];
    portarg(p, sizeof p, port);
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_geq(master, 0);
    grantpt(master);
    unlockpt(master);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_geq(slave, 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(devnull, 0);
        int null_out = open("/dev/null", O_WRONLY);
        dup2(null_out, 1);
        dup2(slave, 2);
        execl(IOCPTOOL_PATH, IOCPTOOL_PATH, "connect", "--progress", "127.0.0.1", p, (char *)NULL);
        _exit(127);
    }
    close(slave);
    close(devnull);
    int fd = nc_accept(lfd, 10000);
    cr_assert_geq(fd, 0);
    trickle(fd);
    int st;
    waitpid(pid, &st, 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    char buf[4096];
    size_t n = 0;
    struct pollfd pfd = {.fd = master, .events = POLLIN};
    while (n < sizeof buf - 1 && poll(&pfd, 1, 200) > 0) {
        ssize_t r = read(master, buf + n, sizeof buf - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    cr_expect(strstr(buf, "iocptool: ") && strstr(buf, " received, ") && strstr(buf, "/s, 0:0"),
              "a progress line: \"%s\"", buf);
    close(master);
    close(fd);
    close(lfd);
}

/* ---- usage ---- */

Test(cli_connect, conflicting_options_are_all_reported_with_status_2)
{
    struct proc c;
    const char *args[] = {"connect", "-z", "--send-only", "-k", "-l", "127.0.0.1", "80", NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_expect_eq(proc_wait(&c, 5000), 2);
    const char *msgs[] = {"iocptool: connect: --send-only: -z moves no data",
                          "iocptool: connect: -k:", "iocptool: connect: -l:", NULL};
    for (int i = 0; msgs[i]; i++)
        cr_expect(strstr(c.errbuf, msgs[i]), "wanted \"%s\" in: %s", msgs[i], c.errbuf);
}

Test(cli_connect, bad_numbers_say_why)
{
    static const char *const cases[][5] = {
        {"127.0.0.1", "0", NULL, NULL, "port 0: too small"},
        {"-w", "0", "127.0.0.1", "80", "-w 0: too small"},
        {"-w", "abc", "127.0.0.1", "80", "-w abc: not a number of seconds"},
        {"-i", "-2", "127.0.0.1", "80", "-i -2: must not be negative"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proc c;
        const char *args[] = {"connect", cases[i][0], cases[i][1], cases[i][2], cases[i][3], NULL};
        cr_assert(nc_start(&c, -1, args));
        cr_expect_eq(proc_wait(&c, 5000), 2, "case %zu", i);
        cr_expect(strstr(c.errbuf, cases[i][4]), "wanted \"%s\" in: %s", cases[i][4], c.errbuf);
    }
}

/* ---- interop ---- */

static bool have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* Wait until a peer program says it listens (its -v / -d output). */
static bool wait_for(struct proc *p, const char *what, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    while (tn_now_ms() < end) {
        if (strstr(p->errbuf, what))
            return true;
        proc_pump_err(p, 50);
    }
    return false;
}

/*
 * 8 MiB each way at once between an iocptool and a peer program.  With
 * peer_first, iocptool's stdin ends only after the peer's stream has
 * arrived: ncat 7.93 in listen mode quits at its client's EOF and drops the
 * rest of its own stdin (two ncats lose data the same way).
 */
static void exchange(struct proc *tool, struct proc *peer, bool peer_first)
{
    struct nc_flow f[2];
    nc_flow_init(&f[0], tool->in, peer->out, INTEROP_BYTES, 11);
    nc_flow_init(&f[1], peer->in, tool->out, INTEROP_BYTES, 12);
    if (peer_first)
        f[0].after = 1;
    proc_forget_fd(tool, tool->in);
    proc_forget_fd(peer, peer->in);
    tool->in = peer->in = -1;
    cr_expect(nc_pump(f, 2, 40000), "byte-exact both ways; iocptool: %s; peer: %s", tool->errbuf,
              peer->errbuf);
    cr_expect_eq(proc_wait(tool, 10000), 0, "iocptool: %s", tool->errbuf);
    cr_expect_eq(proc_wait(peer, 10000), 0, "peer: %s", peer->errbuf);
}

Test(cli_connect, interop_connect_to_an_ncat_listener)
{
    if (!have("ncat"))
        cr_skip_test("ncat is not installed (.ci/deps installs it)");
    char p[8];
    portarg(p, sizeof p, tn_server_port());
    struct proc n, t;
    char *nargs[] = {"ncat", "-v", "-l", "127.0.0.1", p, NULL};
    cr_assert(nc_spawn(&n, -1, nargs));
    cr_assert(wait_for(&n, "Listening on", 10000), "ncat: %s", n.errbuf);
    const char *targs[] = {"connect", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&t, -1, targs));
    exchange(&t, &n, true);
}

Test(cli_connect, interop_ncat_connects_to_listen)
{
    if (!have("ncat"))
        cr_skip_test("ncat is not installed (.ci/deps installs it)");
    struct proc n, t;
    const char *targs[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&t, targs);
    char p[8];
    portarg(p, sizeof p, port);
    char *nargs[] = {"ncat", "127.0.0.1", p, NULL};
    cr_assert(nc_spawn(&n, -1, nargs));
    exchange(&t, &n, false);
}

Test(cli_connect, interop_connect_to_a_socat_listener)
{
    if (!have("socat"))
        cr_skip_test("socat is not installed (.ci/deps installs it)");
    char p[8], addr[64];
    portarg(p, sizeof p, tn_server_port());
    snprintf(addr, sizeof addr, "TCP-LISTEN:%s,bind=127.0.0.1,reuseaddr", p);
    struct proc s, t;
    /* -t 30: socat's linger after the first EOF, made long enough that the
     * other direction always finishes. */
    char *sargs[] = {"socat", "-d", "-d", "-t", "30", addr, "STDIO", NULL};
    cr_assert(nc_spawn(&s, -1, sargs));
    cr_assert(wait_for(&s, "listening on", 10000), "socat: %s", s.errbuf);
    const char *targs[] = {"connect", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&t, -1, targs));
    exchange(&t, &s, false);
}

Test(cli_connect, interop_socat_connects_to_listen)
{
    if (!have("socat"))
        cr_skip_test("socat is not installed (.ci/deps installs it)");
    struct proc s, t;
    const char *targs[] = {"listen", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&t, targs);
    char addr[64];
    snprintf(addr, sizeof addr, "TCP:127.0.0.1:%u", port);
    char *sargs[] = {"socat", "-t", "30", "STDIO", addr, NULL};
    cr_assert(nc_spawn(&s, -1, sargs));
    exchange(&t, &s, false);
}
