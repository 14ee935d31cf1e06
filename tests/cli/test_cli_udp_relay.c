/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay -u: datagram boundaries through the relay, 1,000
 * concurrent sessions each getting its own replies, the session TTL, round
 * robin per new session, --max-conns counting sessions, and a port
 * unreachable from the target that ends neither the session nor the relay.
 */
#include <criterion/criterion.h>

#include <stdlib.h>

#include "udp_support.h"

TestSuite(cli_udp_relay, .fini = proc_cleanup_all, .timeout = 60);

static unsigned char big[65536], got[65536 + 16];

/* relay -u ARGS... 127.0.0.1:0 TARGETS: started, its port returned. */
static uint16_t start_relay(struct proc *r, const char *const *args)
{
    return us_start(r, args);
}

static void target_arg(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "127.0.0.1:%u", port);
}

Test(cli_udp_relay, datagrams_of_0_1_1472_9000_and_65507_bytes_pass_whole_both_ways)
{
    struct proc e, r;
    const char *eargs[] = {"echo", "-u", "127.0.0.1:0", NULL};
    char t[32];
    target_arg(t, sizeof t, us_start(&e, eargs));
    const char *rargs[] = {"relay", "-u", "127.0.0.1:0", t, NULL};
    int fd = us_connected(start_relay(&r, rargs));
    static const size_t sizes[] = {0, 1, 1472, 9000, 65507};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        tn_pattern(big, sizes[i], 11 + i, 0);
        cr_assert_eq(send(fd, big, sizes[i], 0), (ssize_t)sizes[i]);
        ssize_t n = us_recv(fd, got, sizeof got, 10000, NULL);
        cr_assert_eq(n, (ssize_t)sizes[i], "%zu bytes sent, %zd came back", sizes[i], n);
        cr_assert_eq(memcmp(got, big, sizes[i]), 0);
    }
    close(fd);
    cr_expect_eq(proc_signal(&r, SIGTERM, 10000), 0, "%s", r.errbuf);
}

Test(cli_udp_relay, a_thousand_concurrent_sessions_each_get_their_own_replies)
{
    enum { CLIENTS = 1000 };
    us_raise_nofile();
    struct proc e, r;
    const char *eargs[] = {"echo", "-u", "127.0.0.1:0", NULL};
    char t[32];
    target_arg(t, sizeof t, us_start(&e, eargs));
    const char *rargs[] = {"relay", "-u", "-v", "127.0.0.1:0", t, NULL};
    uint16_t port = start_relay(&r, rargs);
    static int fds[CLIENTS];
    static bool answered[CLIENTS];
    struct pollfd *pfds = calloc(CLIENTS, sizeof *pfds);
    cr_assert(pfds);
    for (int i = 0; i < CLIENTS; i++) {
        fds[i] = us_connected(port);
        pfds[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    }
    /* Every client speaks before any reply is read: the sessions are all
     * open at once.  Each says who it is, and must hear only that back. */
    for (int i = 0; i < CLIENTS; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "client %d", i);
        cr_assert_eq(send(fds[i], msg, (size_t)len, 0), len);
    }
    unsigned done = 0, wrong = 0;
    uint64_t end = tn_now_ms() + 20000;
    while (done < CLIENTS && tn_now_ms() < end) {
        if (poll(pfds, CLIENTS, 200) <= 0)
            continue;
        for (int i = 0; i < CLIENTS; i++) {
            if (!(pfds[i].revents & POLLIN))
                continue;
            char buf[64], want[32];
            ssize_t n = recv(fds[i], buf, sizeof buf - 1, MSG_DONTWAIT);
            if (n < 0)
                continue;
            buf[n] = '\0';
            snprintf(want, sizeof want, "client %d", i);
            if (strcmp(buf, want) != 0) {
                wrong++;
                cr_log_error("client %d got \"%s\"", i, buf);
            } else if (!answered[i]) {
                answered[i] = true;
                done++;
            }
        }
    }
    cr_expect_eq(done, CLIENTS, "%u of %d clients got their reply", done, CLIENTS);
    cr_expect_eq(wrong, 0, "nobody got another's reply");
    cr_expect_eq(proc_signal(&r, SIGINT, 10000), 0, "%s", r.errbuf);
    cr_expect(strstr(r.errbuf, "relay: 1000 sessions"), "one session per client: %s", r.errbuf);
    for (int i = 0; i < CLIENTS; i++)
        close(fds[i]);
    free(pfds);
}

Test(cli_udp_relay, a_session_silent_for_the_ttl_ends_and_the_next_datagram_opens_another)
{
    uint16_t tport = 0;
    int target = us_socket(&tport);
    char t[32];
    target_arg(t, sizeof t, tport);
    struct proc r;
    const char *rargs[] = {"relay", "-u", "-vv", "--udp-ttl", "0.3", "127.0.0.1:0", t, NULL};
    int c = us_connected(start_relay(&r, rargs));
    struct sockaddr_in first, second;
    char buf[64];
    cr_assert_eq(send(c, "one", 3, 0), 3);
    cr_assert_eq(us_recv(target, buf, sizeof buf, 10000, &first), 3);
    /* A reply keeps the session alive and reaches the client. */
    cr_assert_eq(sendto(target, "r1", 2, 0, (struct sockaddr *)&first, sizeof first), 2);
    cr_expect(us_recv_is(c, "r1", 10000));
    cr_assert(us_err_has(&r, "silent for 300 ms: closed", 10000), "the TTL ends it: %s", r.errbuf);
    cr_assert_eq(send(c, "two", 3, 0), 3);
    cr_assert_eq(us_recv(target, buf, sizeof buf, 10000, &second), 3);
    uint64_t end = tn_now_ms() + 10000;
    while (us_err_count(&r, "relay: session ") < 3 && tn_now_ms() < end)
        proc_pump_err(&r, 20);
    cr_expect_eq(us_err_count(&r, "relay: session "), 3, "opened, closed, opened: %s", r.errbuf);
    cr_expect_neq(first.sin_port, second.sin_port, "a new socket towards the target");
    cr_assert_eq(sendto(target, "r2", 2, 0, (struct sockaddr *)&second, sizeof second), 2);
    cr_expect(us_recv_is(c, "r2", 10000), "the new session carries the reply");
    close(c);
    close(target);
}

Test(cli_udp_relay, each_new_session_takes_the_next_target)
{
    uint16_t p1 = 0, p2 = 0;
    int t1 = us_socket(&p1), t2 = us_socket(&p2);
    char a1[32], a2[32];
    target_arg(a1, sizeof a1, p1);
    target_arg(a2, sizeof a2, p2);
    struct proc r;
    const char *rargs[] = {"relay", "-u", "127.0.0.1:0", a1, a2, NULL};
    uint16_t port = start_relay(&r, rargs);
    int c[3];
    const char *msg[3] = {"c0", "c1", "c2"};
    int expect_on[3] = {t1, t2, t1};
    for (int i = 0; i < 3; i++) {
        c[i] = us_connected(port);
        cr_assert_eq(send(c[i], msg[i], 2, 0), 2);
        cr_expect(us_recv_is(expect_on[i], msg[i], 10000), "client %d to target %d", i, i % 2 + 1);
    }
    /* A session keeps its target. */
    cr_assert_eq(send(c[1], "c1", 2, 0), 2);
    cr_expect(us_recv_is(t2, "c1", 10000));
    for (int i = 0; i < 3; i++)
        close(c[i]);
    close(t1);
    close(t2);
}

Test(cli_udp_relay, max_conns_counts_sessions)
{
    struct proc e, r;
    const char *eargs[] = {"echo", "-u", "127.0.0.1:0", NULL};
    char t[32];
    target_arg(t, sizeof t, us_start(&e, eargs));
    const char *rargs[] = {"relay", "-u", "-v", "-m", "2", "127.0.0.1:0", t, NULL};
    uint16_t port = start_relay(&r, rargs);
    int c[3];
    for (int i = 0; i < 2; i++) {
        c[i] = us_connected(port);
        cr_assert_eq(send(c[i], "hi", 2, 0), 2);
        cr_expect(us_recv_is(c[i], "hi", 10000), "session %d", i);
    }
    c[2] = us_connected(port);
    cr_assert_eq(send(c[2], "hi", 2, 0), 2);
    cr_expect(us_err_has(&r, "2 sessions already (--max-conns)", 10000), "%s", r.errbuf);
    char buf[8];
    cr_expect_eq(us_recv(c[2], buf, sizeof buf, 200, NULL), -1, "the third gets nothing");
    for (int i = 0; i < 3; i++)
        close(c[i]);
}

Test(cli_udp_relay, a_port_unreachable_from_the_target_ends_neither_the_session_nor_the_relay)
{
    uint16_t tport = 0;
    int target = us_socket(&tport);
    char t[32];
    target_arg(t, sizeof t, tport);
    struct proc r;
    const char *rargs[] = {"relay", "-u", "-v", "127.0.0.1:0", t, NULL};
    int c = us_connected(start_relay(&r, rargs));
    struct sockaddr_in up1, up2;
    char buf[64];
    cr_assert_eq(send(c, "1", 1, 0), 1);
    cr_assert_eq(us_recv(target, buf, sizeof buf, 10000, &up1), 1);
    /* The target goes away: the next datagram meets a port unreachable. */
    close(target);
    cr_assert_eq(send(c, "2", 1, 0), 1);
    cr_expect(us_err_has(&r, "port unreachable", 10000), "-v says so: %s", r.errbuf);
    /* It comes back on the same port: the same session carries on. */
    target = us_socket(&tport);
    cr_assert_eq(send(c, "3", 1, 0), 1);
    cr_assert_eq(us_recv(target, buf, sizeof buf, 10000, &up2), 1);
    cr_expect_eq(buf[0], '3');
    cr_expect_eq(up1.sin_port, up2.sin_port, "the same session socket");
    cr_assert_eq(sendto(target, "back", 4, 0, (struct sockaddr *)&up2, sizeof up2), 4);
    cr_expect(us_recv_is(c, "back", 10000));
    cr_expect_eq(proc_wait(&r, 0), -1, "the relay runs on");
    close(c);
    close(target);
}

/* What `iocptool stats ARGS PID` prints (status 0 asserted). */
static void stats_of(pid_t pid, const char *what, char *out, size_t cap)
{
    char p[16];
    snprintf(p, sizeof p, "%d", (int)pid);
    struct proc s;
    const char *args[] = {"stats", what, p, NULL};
    const char *plain[] = {"stats", p, NULL};
    cr_assert(nc_start(&s, -1, what ? args : plain));
    size_t n = tn_read_full(s.out, out, cap - 1, 10000);
    out[n] = '\0';
    cr_assert_eq(proc_wait(&s, 10000), 0, "stats: %s", s.errbuf);
}

Test(cli_udp_relay, stats_show_the_sessions_and_their_counters_as_text_json_and_prometheus)
{
    struct proc e, r;
    const char *eargs[] = {"echo", "-u", "127.0.0.1:0", NULL};
    char t[32];
    target_arg(t, sizeof t, us_start(&e, eargs));
    const char *rargs[] = {"relay", "-u", "-W", "1", "127.0.0.1:0", t, NULL};
    uint16_t port = start_relay(&r, rargs);
    int c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = us_connected(port);
        cr_assert_eq(send(c[i], "12345", 5, 0), 5);
        cr_assert(us_recv_is(c[i], "12345", 10000));
    }
    static char out[65536];
    stats_of(r.pid, NULL, out, sizeof out);
    cr_expect(strstr(out, "datagrams     4 sockets open, 3 relay sessions"), "%s", out);
    /* The listener took 3 in and sent 3 back; each session 1 each way. */
    cr_expect(strstr(out, "in 6 (30 B), out 6 (30 B), 0 truncated, 0 dropped"), "%s", out);
    cr_expect(strstr(out, t), "a session's peer is the target: %s", out);
    stats_of(r.pid, "--json", out, sizeof out);
    cr_expect(strstr(out, "\"relay_sessions\":3"), "%s", out);
    cr_expect(strstr(out, "\"datagrams_in\":6,\"bytes_in\":30"), "%s", out);
    cr_expect(strstr(out, "\"sockets\":[{\"id\":"), "%s", out);
    stats_of(r.pid, "--prometheus", out, sizeof out);
    cr_expect(strstr(out, "iocptool_relay_sessions 3\n"), "%s", out);
    cr_expect(strstr(out, "iocptool_datagrams_received_total 6\n"), "%s", out);
    cr_expect(strstr(out, "iocptool_datagram_sockets_open 4\n"), "%s", out);
    for (int i = 0; i < 3; i++)
        close(c[i]);
}
