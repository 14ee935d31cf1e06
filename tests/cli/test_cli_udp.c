/* SPDX-License-Identifier: MIT */
/*
 * iocptool with -u: datagram boundaries through echo and connect, the end
 * of input of connect -u, a port unreachable, listen -u with one peer,
 * with -k and three peers, the TTL, --broker, truncation, a flood at a
 * slow stdout, 100,000 datagrams through echo -u, connect -z -u, the usage
 * errors, and interop both ways with nc.openbsd, ncat and socat.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdlib.h>

#include "udp_support.h"

TestSuite(cli_udp, .fini = proc_cleanup_all, .timeout = 60);

static void portarg(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "%u", port);
}

static unsigned char big[65536], got[65536 + 16];

/* ---- boundaries ---- */

Test(cli_udp, echo_returns_datagrams_of_0_1_1472_9000_and_65507_bytes_whole)
{
    struct proc e;
    const char *args[] = {"echo", "-u", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&e, args);
    int fd = us_connected(port);
    static const size_t sizes[] = {0, 1, 1472, 9000, 65507};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tn_pattern(big, sizes[i], 7 + i, 0);
        cr_assert_eq(send(fd, big, sizes[i], 0), (ssize_t)sizes[i]);
        ssize_t n = us_recv(fd, got, sizeof got, 10000, NULL);
        cr_assert_eq(n, (ssize_t)sizes[i], "%zu bytes sent, %zd came back", sizes[i], n);
        cr_assert_eq(memcmp(got, big, sizes[i]), 0, "%zu bytes: the same bytes", sizes[i]);
    }
    close(fd);
    cr_expect_eq(proc_signal(&e, SIGTERM, 10000), 0, "echo ends with 0: %s", e.errbuf);
}

Test(cli_udp, connect_sends_each_read_of_stdin_as_one_datagram)
{
    uint16_t port = 0;
    int srv = us_socket(&port);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    const char *args[] = {"connect", "-u", "-q", "0.2", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    static const size_t sizes[] = {1, 1472, 9000, 65507};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tn_pattern(big, sizes[i], 3 + i, 0);
        /* One write, then its datagram, before the next: each is one read
         * of the tool's stdin. */
        cr_assert(tn_write_all(c.in, big, sizes[i]));
        ssize_t n = us_recv(srv, got, sizeof got, 10000, NULL);
        cr_assert_eq(n, (ssize_t)sizes[i], "a write of %zu bytes: a datagram of %zd", sizes[i], n);
        cr_assert_eq(memcmp(got, big, sizes[i]), 0);
    }
    proc_close_in(&c);
    cr_expect_eq(proc_wait(&c, 10000), 0, "%s", c.errbuf);
    close(srv);
}

/* ---- connect -u: replies, the end of input, a port unreachable ---- */

Test(cli_udp, connect_waits_for_the_reply_after_the_end_of_stdin)
{
    uint16_t port = 0;
    int srv = us_socket(&port);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    const char *args[] = {"connect", "-u", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_assert(tn_write_all(c.in, "query\n", 6));
    struct sockaddr_in from;
    char buf[64];
    cr_assert_eq(us_recv(srv, buf, sizeof buf, 10000, &from), 6);
    /* The end of stdin comes first, the answer after it (ncat would be
     * gone by then). */
    proc_close_in(&c);
    usleep(300 * 1000);
    cr_assert_eq(sendto(srv, "answer\n", 7, 0, (struct sockaddr *)&from, sizeof from), 7);
    cr_expect(nc_read_is(c.out, "answer\n", 10000), "the reply reaches stdout");
    /* Then the peer goes quiet, and the tool ends on its own, status 0. */
    cr_expect(nc_eof_within(c.out, 10000), "stdout closes");
    cr_expect_eq(proc_wait(&c, 10000), 0, "%s", c.errbuf);
    close(srv);
}

Test(cli_udp, connect_to_a_port_nobody_listens_on_says_so_and_exits_1)
{
    char p[8];
    portarg(p, sizeof p, us_closed_port());
    struct proc c;
    const char *args[] = {"connect", "-u", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_assert(tn_write_all(c.in, "anyone?\n", 8));
    cr_expect_eq(proc_wait(&c, 10000), 1, "status 1; stderr: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "port unreachable"), "says why: %s", c.errbuf);
}

Test(cli_udp, connect_with_q_0_ends_at_the_end_of_stdin)
{
    uint16_t port = 0;
    int srv = us_socket(&port);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    const char *args[] = {"connect", "-u", "-q", "0", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_assert(tn_write_all(c.in, "fire and forget", 15));
    proc_close_in(&c);
    cr_expect_eq(proc_wait(&c, 10000), 0, "%s", c.errbuf);
    cr_expect(us_recv_is(srv, "fire and forget", 5000), "what was read before the end was sent");
    close(srv);
}

/* ---- listen -u ---- */

Test(cli_udp, listen_takes_the_first_peer_and_drops_the_others)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-v", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int a = us_connected(port), b = us_connected(port);
    cr_assert_eq(send(a, "hello\n", 6, 0), 6);
    cr_assert(nc_read_is(l.out, "hello\n", 10000));
    cr_assert(tn_write_all(l.in, "back\n", 5));
    cr_expect(us_recv_is(a, "back\n", 10000), "stdin goes to the first peer");
    cr_assert_eq(send(b, "intruder\n", 9, 0), 9);
    cr_assert_eq(send(a, "again\n", 6, 0), 6);
    cr_expect(nc_read_is(l.out, "again\n", 10000), "only the first peer reaches stdout");
    cr_expect(us_err_has(&l, "is not the peer", 5000), "-v says another was dropped: %s", l.errbuf);
    char buf[64];
    cr_expect_eq(us_recv(b, buf, sizeof buf, 200, NULL), -1, "stdin never went to the other");
    /* The end of stdin does not end a listener. */
    proc_close_in(&l);
    cr_assert_eq(send(a, "still\n", 6, 0), 6);
    cr_expect(nc_read_is(l.out, "still\n", 10000), "it listens on after stdin ended");
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM);
    close(a);
    close(b);
}

Test(cli_udp, listen_k_with_three_peers_fans_in_and_sends_stdin_to_all)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-k", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int peer[3];
    const char *said[3] = {"from a\n", "from b\n", "from c\n"};
    char out[64] = "";
    size_t have = 0;
    for (int i = 0; i < 3; i++) {
        peer[i] = us_connected(port);
        cr_assert_eq(send(peer[i], said[i], 7, 0), 7);
        /* Each arrives before the next is sent: the order is known. */
        have += tn_read_full(l.out, out + have, 7, 10000);
    }
    cr_expect_str_eq(out, "from a\nfrom b\nfrom c\n");
    cr_assert(tn_write_all(l.in, "to all\n", 7));
    for (int i = 0; i < 3; i++)
        cr_expect(us_recv_is(peer[i], "to all\n", 10000), "peer %d gets stdin", i);
    cr_expect_eq(proc_signal(&l, SIGTERM, 10000), 128 + SIGTERM, "%s", l.errbuf);
    for (int i = 0; i < 3; i++)
        close(peer[i]);
}

Test(cli_udp, listen_k_forgets_a_peer_silent_for_the_ttl)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-k", "-vv", "--udp-ttl", "0.3", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int a = us_connected(port);
    cr_assert_eq(send(a, "a\n", 2, 0), 2);
    cr_assert(nc_read_is(l.out, "a\n", 10000));
    cr_assert(us_err_has(&l, "forgotten", 10000), "a silent peer is forgotten: %s", l.errbuf);
    int b = us_connected(port);
    cr_assert_eq(send(b, "b\n", 2, 0), 2);
    cr_assert(nc_read_is(l.out, "b\n", 10000));
    cr_assert(tn_write_all(l.in, "x\n", 2));
    cr_expect(us_recv_is(b, "x\n", 10000), "the peer heard from lately gets stdin");
    char buf[16];
    cr_expect_eq(us_recv(a, buf, sizeof buf, 300, NULL), -1, "the forgotten one does not");
    close(a);
    close(b);
}

Test(cli_udp, broker_passes_each_datagram_to_every_other_peer)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "--broker", "-vv", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int peer[3];
    for (int i = 0; i < 3; i++) {
        peer[i] = us_connected(port);
        cr_assert_eq(send(peer[i], "", 0, 0), 0);
        /* Known to the broker before the next one speaks. */
        uint64_t end = tn_now_ms() + 10000;
        while (us_err_count(&l, "new peer") < (unsigned)i + 1 && tn_now_ms() < end)
            proc_pump_err(&l, 20);
        cr_assert_eq(us_err_count(&l, "new peer"), (unsigned)i + 1, "%s", l.errbuf);
    }
    /* Each one's empty datagram went to those already there. */
    for (int i = 0; i < 2; i++)
        for (int k = i + 1; k < 3; k++)
            cr_assert(us_recv_is(peer[i], "", 10000), "peer %d hears peer %d", i, k);
    cr_assert_eq(send(peer[0], "from a", 6, 0), 6);
    cr_expect(us_recv_is(peer[1], "from a", 10000));
    cr_expect(us_recv_is(peer[2], "from a", 10000));
    char buf[16];
    cr_expect_eq(us_recv(peer[0], buf, sizeof buf, 200, NULL), -1, "not back to its sender");
    cr_expect(nc_quiet_for(l.out, 100), "nothing on stdout");
    for (int i = 0; i < 3; i++)
        close(peer[i]);
}

Test(cli_udp, a_port_unreachable_does_not_end_a_listener)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-k", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int a = us_connected(port), b = us_connected(port);
    cr_assert_eq(send(a, "a\n", 2, 0), 2);
    cr_assert(nc_read_is(l.out, "a\n", 10000));
    cr_assert_eq(send(b, "b\n", 2, 0), 2);
    cr_assert(nc_read_is(l.out, "b\n", 10000));
    close(a); /* gone: its copy of stdin meets a port unreachable */
    cr_assert(tn_write_all(l.in, "x\n", 2));
    cr_expect(us_recv_is(b, "x\n", 10000), "stdin went to both");
    cr_assert_eq(send(b, "b2\n", 3, 0), 3);
    cr_expect(nc_read_is(l.out, "b2\n", 10000), "the listener goes on");
    cr_assert(tn_write_all(l.in, "y\n", 2));
    cr_expect(us_recv_is(b, "y\n", 10000));
    cr_expect_eq(proc_wait(&l, 0), -1, "still running");
    close(b);
}

Test(cli_udp, a_datagram_longer_than_max_datagram_is_cut_and_said)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-v", "--max-datagram", "100", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int a = us_connected(port);
    tn_pattern(big, 300, 5, 0);
    cr_assert_eq(send(a, big, 300, 0), 300);
    cr_assert_eq(send(a, "next", 4, 0), 4);
    cr_expect_eq(tn_read_full(l.out, got, 104, 10000), 104, "the first 100 bytes, then the next");
    cr_expect_eq(memcmp(got, big, 100), 0);
    cr_expect_eq(memcmp(got + 100, "next", 4), 0);
    cr_expect(us_err_has(&l, "longer than 100 bytes and was cut", 5000), "%s", l.errbuf);
    cr_expect_eq(proc_signal(&l, SIGINT, 10000), 128 + SIGINT);
    cr_expect(strstr(l.errbuf, "1 datagrams cut to --max-datagram"), "-v counts it: %s", l.errbuf);
    close(a);
}

/* ---- a flood at a slow stdout ---- */

static uint64_t rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    uint64_t kib = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %" SCNu64, &kib) == 1)
            break;
    if (f)
        fclose(f);
    return kib;
}

Test(cli_udp, a_flood_at_a_slow_stdout_keeps_memory_bounded_and_counts_the_drops)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "-v", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    int a = us_connected(port);
    /* 112 MB at a reader that takes nothing: stdout's pipe fills at once. */
    memset(big, 'f', 1400);
    uint64_t peak = 0;
    for (int i = 0; i < 80000; i++) {
        while (send(a, big, 1400, 0) < 0 && errno == ENOBUFS)
            usleep(100);
        if (i % 10000 == 0) {
            uint64_t r = rss_kib(l.pid);
            peak = r > peak ? r : peak;
        }
    }
    uint64_t r = rss_kib(l.pid);
    peak = r > peak ? r : peak;
    /* The queue for stdout stops at its watermark, whatever came. */
    cr_expect_lt(peak, 64 * 1024, "RSS %" PRIu64 " KiB after 112 MB of datagrams", peak);
    kill(l.pid, SIGINT);
    char sink[65536];
    while (read(l.out, sink, sizeof sink) > 0)
        ;
    cr_expect_eq(proc_wait(&l, 15000), 128 + SIGINT, "%s", l.errbuf);
    cr_expect(strstr(l.errbuf, "dropped: stdout did not keep up"), "-v counts the drops: %s",
              l.errbuf);
    close(a);
}

/* ---- echo -u: every datagram accounted for ---- */

Test(cli_udp, echo_returns_100000_datagrams_every_one_accounted_for)
{
    struct proc e;
    const char *args[] = {"echo", "-u", "-v", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&e, args);
    int fd = us_connected(port);
    tn_set_nonblock(fd, true);
    enum { TOTAL = 100000, WINDOW = 64 };
    static unsigned char seen[TOTAL];
    unsigned sent = 0, received = 0, dups = 0;
    uint64_t last = tn_now_ms();
    /* Paced: at most WINDOW in flight, so loopback never has to drop. */
    while (received < TOTAL) {
        while (sent < TOTAL && sent - received < WINDOW) {
            uint32_t seq = sent;
            if (send(fd, &seq, sizeof seq, 0) != sizeof seq)
                break;
            sent++;
        }
        uint32_t seq;
        ssize_t n = us_recv(fd, &seq, sizeof seq, 2000, NULL);
        if (n == (ssize_t)sizeof seq && seq < TOTAL) {
            if (seen[seq]++)
                dups++;
            else
                received++;
            last = tn_now_ms();
        } else if (tn_now_ms() - last > 5000) {
            break;
        }
    }
    cr_expect_eq(received, TOTAL, "%u of %u came back", received, TOTAL);
    cr_expect_eq(dups, 0, "none twice");
    cr_expect_eq(proc_signal(&e, SIGTERM, 10000), 0);
    cr_expect(strstr(e.errbuf, "100000 datagrams (400000 bytes) received, 100000 echoed, 0 "
                               "dropped"),
              "the server counts the same: %s", e.errbuf);
    close(fd);
}

/* ---- connect -z -u ---- */

Test(cli_udp, probe_says_open_open_filtered_and_closed_as_nmap_does)
{
    struct proc e;
    const char *eargs[] = {"echo", "-u", "127.0.0.1:0", NULL};
    uint16_t open_port = us_start(&e, eargs);
    uint16_t silent_port = 0;
    int silent = us_socket(&silent_port); /* receives, never answers */
    uint16_t closed_port = us_closed_port();
    char o[8], s[8], c[8];
    portarg(o, sizeof o, open_port);
    portarg(s, sizeof s, silent_port);
    portarg(c, sizeof c, closed_port);
    struct proc p;
    const char *args[] = {"connect", "-z", "-u", "-v", "-w", "0.5", "127.0.0.1", c, s, o, NULL};
    cr_assert(nc_start(&p, -1, args));
    char out[256];
    size_t n = tn_read_full(p.out, out, sizeof out - 1, 10000);
    out[n] = '\0';
    cr_expect_eq(proc_wait(&p, 10000), 0, "something answers: status 0; %s", p.errbuf);
    char want[256];
    snprintf(want, sizeof want, "127.0.0.1 %u open|filtered\n127.0.0.1 %u open\n", silent_port,
             open_port);
    cr_expect_str_eq(out, want);
    char closed_line[64];
    snprintf(closed_line, sizeof closed_line, "port %u: closed", closed_port);
    cr_expect(strstr(p.errbuf, closed_line), "-v says which is closed: %s", p.errbuf);
    close(silent);
}

Test(cli_udp, probe_with_every_port_closed_exits_1)
{
    char a[8], b[8];
    portarg(a, sizeof a, us_closed_port());
    portarg(b, sizeof b, us_closed_port());
    struct proc p;
    const char *args[] = {"connect", "-z", "-u", "127.0.0.1", a, b, NULL};
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 10000), 1, "%s", p.errbuf);
    char ch;
    cr_expect_eq(read(p.out, &ch, 1), 0, "nothing on stdout");
}

/* ---- usage errors ---- */

static void usage_error(const char *const *args, const char *why)
{
    struct proc p;
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 10000), 2, "a usage error: %s", p.errbuf);
    cr_expect(strstr(p.errbuf, why), "says \"%s\": %s", why, p.errbuf);
}

Test(cli_udp, options_that_make_no_sense_for_datagrams_are_usage_errors)
{
    const char *a1[] = {"listen", "-u", "-k", "--broker", "--send-only", "0", NULL};
    usage_error(a1, "listen: --send-only: --broker does not use stdin or stdout");
    const char *a2[] = {"listen", "-u", "--key", "/nonexistent", "0", NULL};
    usage_error(a2, "--key: the encrypted channel needs a TCP stream");
    const char *a3[] = {"listen", "-u", "--no-shutdown", "0", NULL};
    usage_error(a3, "UDP has no half-close");
    const char *a4[] = {"connect", "-u", "-w", "1", "127.0.0.1", "9", NULL};
    usage_error(a4, "datagrams are not connected");
    const char *a5[] = {"echo", "-u", "-m", "5", "0", NULL};
    usage_error(a5, "echo: -m/--max-conns: UDP echo keeps no connections");
    const char *a6[] = {"relay", "-u", "--no-splice", "0", "127.0.0.1:9", NULL};
    usage_error(a6, "relay: --no-splice: datagrams are always copied");
    const char *a7[] = {"relay", "-u", "--key-target", "k", "0", "127.0.0.1:9", NULL};
    usage_error(a7, "relay: --key-target: the encrypted channel needs a TCP stream");
    const char *a8[] = {"listen", "--udp-ttl", "5", "0", NULL};
    usage_error(a8, "listen: --udp-ttl: only for datagrams (-u)");
    const char *a9[] = {"listen", "-u", "--udp-ttl", "5", "0", NULL};
    usage_error(a9, "--udp-ttl: without -k or --broker the first peer stays the peer");
    const char *a10[] = {"listen", "-u", "-k", "-i", "5", "0", NULL};
    usage_error(a10, "-i: with -k or --broker, --udp-ttl forgets silent peers");
}

Test(cli_udp, u_help_says_what_changes)
{
    struct proc p;
    const char *args[] = {"listen", "-u", "--help", NULL};
    cr_assert(nc_start(&p, -1, args));
    char out[4096];
    size_t n = tn_read_full(p.out, out, sizeof out - 1, 5000);
    out[n] = '\0';
    cr_expect_eq(proc_wait(&p, 5000), 0);
    cr_expect(strstr(out, "usage: iocptool listen -u"), "%s", out);
    cr_expect(strstr(out, "--udp-ttl"), "%s", out);
}

/* ---- interop ---- */

/* A free UDP port for a peer program to bind. */
static uint16_t free_udp_port(void)
{
    return us_closed_port();
}

/* tpl with its "{port}" replaced by port, into buf. */
static char *with_port(char *buf, size_t len, const char *tpl, uint16_t port)
{
    const char *at = strstr(tpl, "{port}");
    if (!at)
        snprintf(buf, len, "%s", tpl);
    else
        snprintf(buf, len, "%.*s%u%s", (int)(at - tpl), tpl, port, at + 6);
    return buf;
}

/* A peer program's command line (at most 6 words), "{port}" standing for
 * the UDP port it is to use. */
static void spawn_peer(struct proc *peer, const char *const tpl[], uint16_t port)
{
    char words[6][64];
    char *argv[7];
    int i = 0;
    for (; tpl[i]; i++) {
        cr_assert(i < 6);
        argv[i] = with_port(words[i], sizeof words[i], tpl[i], port);
    }
    argv[i] = NULL;
    cr_assert(nc_spawn(peer, -1, argv));
}

/* The peer sends a line to listen -u, which writes it to stdout; what
 * listen reads on stdin goes back to the peer. */
static void peer_sends_to_listen(const char *const tpl[], const char *who)
{
    struct proc l;
    const char *args[] = {"listen", "-u", "127.0.0.1:0", NULL};
    uint16_t port = us_start(&l, args);
    struct proc n;
    spawn_peer(&n, tpl, port);
    char hi[64];
    snprintf(hi, sizeof hi, "hi from %s\n", who);
    cr_assert(tn_write_all(n.in, hi, strlen(hi)));
    cr_expect(nc_read_is(l.out, hi, 10000), "%s's datagram reaches stdout", who);
    cr_assert(tn_write_all(l.in, "hi from iocptool\n", 17));
    cr_expect(nc_read_is(n.out, "hi from iocptool\n", 10000), "stdin reaches %s", who);
}

/* connect -u to the peer listening on a UDP port: a line each way. */
static void connect_to_peer_listener(const char *const tpl[], const char *who)
{
    uint16_t port = free_udp_port();
    struct proc n;
    spawn_peer(&n, tpl, port);
    cr_assert(us_wait_port_taken(port, 10000), "%s binds the port", who);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    const char *args[] = {"connect", "-u", "127.0.0.1", p, NULL};
    cr_assert(nc_start(&c, -1, args));
    char to[64], from[64];
    snprintf(to, sizeof to, "to %s\n", who);
    snprintf(from, sizeof from, "from %s\n", who);
    cr_assert(tn_write_all(c.in, to, strlen(to)));
    cr_expect(nc_read_is(n.out, to, 10000), "%s gets the datagram", who);
    cr_assert(tn_write_all(n.in, from, strlen(from)));
    cr_expect(nc_read_is(c.out, from, 10000), "%s's reply reaches stdout", who);
}

Test(cli_udp, interop_nc_openbsd_sends_to_listen_and_gets_stdin_back)
{
    US_NEED("nc.openbsd");
    peer_sends_to_listen((const char *[]){"nc.openbsd", "-u", "127.0.0.1", "{port}", NULL}, "nc");
}

Test(cli_udp, interop_connect_to_an_nc_openbsd_listener)
{
    US_NEED("nc.openbsd");
    connect_to_peer_listener(
        (const char *[]){"nc.openbsd", "-u", "-l", "127.0.0.1", "{port}", NULL}, "nc");
}

Test(cli_udp, interop_ncat_sends_to_listen_and_gets_stdin_back)
{
    US_NEED("ncat");
    peer_sends_to_listen((const char *[]){"ncat", "-u", "127.0.0.1", "{port}", NULL}, "ncat");
}

Test(cli_udp, interop_connect_to_an_ncat_listener)
{
    US_NEED("ncat");
    connect_to_peer_listener((const char *[]){"ncat", "-u", "-l", "127.0.0.1", "{port}", NULL},
                             "ncat");
}

Test(cli_udp, interop_socat_sends_to_listen_and_gets_stdin_back)
{
    US_NEED("socat");
    peer_sends_to_listen((const char *[]){"socat", "STDIO", "UDP4:127.0.0.1:{port}", NULL},
                         "socat");
}

Test(cli_udp, interop_connect_to_a_socat_listener)
{
    US_NEED("socat");
    connect_to_peer_listener(
        (const char *[]){"socat", "UDP4-LISTEN:{port},bind=127.0.0.1", "STDIO", NULL}, "socat");
}
