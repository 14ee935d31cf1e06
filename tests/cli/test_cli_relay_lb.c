/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay in front of a pool: which target each client reaches
 * (weighted round robin, leastconn, first, hash), targets going out and
 * coming back (passive health, the active check, every target out),
 * failover while a target is killed and restarted under a load of short
 * connections, port ranges, and what stats says about ports and targets.
 *
 * Targets are listening sockets of the test's own where the test must
 * see which one a client reached, and iocptool echo servers where it
 * needs a service.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>

#include "nc_support.h"
#include "statsclient.h"

static char tmpdir[64];

static void lb_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "lb");
}

static void lb_fini(void)
{
    nc_dir_fini(tmpdir);
}

TestSuite(cli_relay_lb, .init = lb_init, .fini = lb_fini, .timeout = 90);

/* ---- helpers ---- */

static void expect_clean_exit(struct proc *p)
{
    cr_expect_eq(proc_signal(p, SIGTERM, 10000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "mismatch"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* n listening sockets of the test's: the targets. */
static void listeners(int *fds, uint16_t *ports, char (*names)[32], int n)
{
    for (int i = 0; i < n; i++) {
        fds[i] = tn_listen(&ports[i]);
        cr_assert_geq(fds[i], 0);
        snprintf(names[i], sizeof names[i], "127.0.0.1:%u", ports[i]);
    }
}

/* The listener (index) that a connection reached within ms, accepted into
 * *s; -1 when none did. */
static int reached(int *fds, int n, int *s, unsigned ms)
{
    struct pollfd pfd[16];
    for (int i = 0; i < n; i++)
        pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
    if (poll(pfd, (nfds_t)n, (int)ms) <= 0)
        return -1;
    for (int i = 0; i < n; i++)
        if (pfd[i].revents & POLLIN) {
            *s = accept4(fds[i], NULL, NULL, SOCK_CLOEXEC);
            return *s >= 0 ? i : -1;
        }
    return -1;
}

/* A client from source address src (NULL: the default) to port. */
static int connect_from(const char *src, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (src) {
        struct sockaddr_in sa = {.sin_family = AF_INET};
        inet_pton(AF_INET, src, &sa.sin_addr);
        cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    }
    struct sockaddr_in to = tn_loopback(port);
    cr_assert_eq(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    return fd;
}

/* One short client: which target it reached (both ends closed after). */
static int one_client(const char *src, uint16_t port, int *fds, int n)
{
    int c = connect_from(src, port);
    cr_assert(tn_write_all(c, "x", 1));
    int s = -1;
    int i = reached(fds, n, &s, 10000);
    if (s >= 0)
        close(s);
    close(c);
    return i;
}

/* The JSON report has this target in this state. */
static bool target_state(const char *stats, const char *target, const char *state)
{
    char want[128];
    snprintf(want, sizeof want, "\"target\":\"%s\",\"state\":\"%s\"", target, state);
    char *json = stats_ask(stats, "json\n", 5000);
    bool ok = json && strstr(json, want);
    free(json);
    return ok;
}

static bool wait_target_state(const char *stats, const char *target, const char *state,
                              unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    while (tn_now_ms() < end) {
        if (target_state(stats, target, state))
            return true;
        usleep(50000);
    }
    return false;
}

static const char *stats_path(const char *name)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s.sock", tmpdir, name);
    return path;
}

/* 1: reset; 0: nothing within ms; -1: EOF or data. */
static int reset_within(int fd, unsigned ms)
{
    int st = nc_eof_state(fd, ms);
    return st == 2 ? 1 : st == 0 ? 0 : -1;
}

/* ---- choosing ---- */

Test(cli_relay_lb, weights_share_clients_in_proportion_round_robin)
{
    int fds[2];
    uint16_t ports[2];
    char names[2][32], heavy[48];
    listeners(fds, ports, names, 2);
    snprintf(heavy, sizeof heavy, "%s,weight=3", names[0]);
    struct proc relay;
    uint16_t port = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--no-stats",
                                                       "127.0.0.1:0", heavy, names[1], NULL});
    int count[2] = {0, 0};
    for (int k = 0; k < 12; k++) {
        int i = one_client(NULL, port, fds, 2);
        cr_assert_geq(i, 0, "client %d reached no target", k);
        count[i]++;
    }
    cr_expect_eq(count[0], 9, "weight 3: %d of 12", count[0]);
    cr_expect_eq(count[1], 3, "weight 1: %d of 12", count[1]);
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, hash_keeps_a_client_on_its_target)
{
    int fds[3];
    uint16_t ports[3];
    char names[3][32];
    listeners(fds, ports, names, 3);
    struct proc relay;
    uint16_t port =
        nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--no-stats", "--balance", "hash",
                                           "127.0.0.1:0", names[0], names[1], names[2], NULL});
    /* Eight client addresses, three connections each from new ports. */
    bool used[3] = {false, false, false};
    for (int a = 2; a < 10; a++) {
        char src[32];
        snprintf(src, sizeof src, "127.0.0.%d", a);
        int first = one_client(src, port, fds, 3);
        cr_assert_geq(first, 0);
        used[first] = true;
        for (int k = 0; k < 2; k++)
            cr_expect_eq(one_client(src, port, fds, 3), first, "%s moved to another target", src);
    }
    cr_expect((int)used[0] + used[1] + used[2] >= 2, "eight clients all hashed to one target");
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, leastconn_spreads_long_connections_evenly)
{
    enum { T = 3, N = 10 };
    int fds[T];
    uint16_t ports[T];
    char names[T][32];
    listeners(fds, ports, names, T);
    const char *stats = stats_path("leastconn");
    struct proc relay;
    uint16_t port = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--stats", stats,
                                                       "--balance", "leastconn", "127.0.0.1:0",
                                                       names[0], names[1], names[2], NULL});
    /* Long connections, opened one after the other and all kept open. */
    int c[N], s[N], count[T] = {0};
    for (int k = 0; k < N; k++) {
        c[k] = tn_connect(port);
        cr_assert(tn_write_all(c[k], "x", 1));
        int i = reached(fds, T, &s[k], 5000);
        cr_assert_geq(i, 0);
        count[i]++;
    }
    int lo = N, hi = 0;
    for (int i = 0; i < T; i++) {
        lo = count[i] < lo ? count[i] : lo;
        hi = count[i] > hi ? count[i] : hi;
    }
    cr_expect_leq(hi - lo, 1, "spread %d/%d/%d", count[0], count[1], count[2]);
    /* Close the connections of target 0: the next clients go there. */
    for (int k = 0; k < N; k++) {
        struct sockaddr_in sa;
        socklen_t sl = sizeof sa;
        getsockname(s[k], (struct sockaddr *)&sa, &sl);
        if (ntohs(sa.sin_port) == ports[0]) {
            close(c[k]);
            close(s[k]);
            c[k] = s[k] = -1;
        }
    }
    char want[96];
    snprintf(want, sizeof want, "\"target\":\"%s\",\"state\":\"up\",\"weight\":1,\"live\":0",
             names[0]);
    uint64_t end = tn_now_ms() + 5000;
    bool zero = false;
    while (!zero && tn_now_ms() < end) {
        char *json = stats_ask(stats, "json\n", 5000);
        zero = json && strstr(json, want);
        free(json);
        if (!zero)
            usleep(20000);
    }
    cr_expect(zero, "stats shows target 0 with no live connection");
    for (int k = 0; k < count[0]; k++)
        cr_expect_eq(one_client(NULL, port, fds, T), 0, "the emptied target takes the next (%d/%d/%d)", count[0], count[1], count[2]);
    for (int k = 0; k < N; k++)
        if (c[k] >= 0) {
            close(c[k]);
            close(s[k]);
        }
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, first_uses_the_primary_then_the_next)
{
    int fds[2];
    uint16_t ports[2];
    char names[2][32];
    listeners(fds, ports, names, 2);
    char dead[32];
    snprintf(dead, sizeof dead, "127.0.0.1:%u", tn_closed_port());
    const char *stats = stats_path("first");
    struct proc relay;
    uint16_t port =
        nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--stats", stats, "--balance",
                                           "first", "--max-fails", "1", "--fail-timeout", "60",
                                           "127.0.0.1:0", names[0], dead, names[1], NULL});
    for (int k = 0; k < 4; k++)
        cr_expect_eq(one_client(NULL, port, fds, 2), 0, "the primary takes every client");
    /* The primary goes away: the dead second is tried once, taken out,
     * and the third takes the clients. */
    close(fds[0]);
    fds[0] = tn_listen(&ports[0]); /* a stand-in on another port: never reached */
    for (int k = 0; k < 4; k++)
        cr_expect_eq(one_client(NULL, port, fds, 2), 1, "client %d goes to the third", k);
    cr_expect(target_state(stats, dead, "down"), "the dead target is out");
    cr_expect(target_state(stats, names[0], "down"), "the primary is out");
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, every_target_out_refuses_clients_at_once)
{
    char dead1[32], dead2[32];
    snprintf(dead1, sizeof dead1, "127.0.0.1:%u", tn_closed_port());
    snprintf(dead2, sizeof dead2, "127.0.0.1:%u", tn_closed_port());
    const char *stats = stats_path("allout");
    struct proc relay;
    uint16_t port = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "-v", "--stats", stats,
                                                       "--max-fails", "1", "--fail-timeout", "60",
                                                       "127.0.0.1:0", dead1, dead2, NULL});
    /* The first client tries both, which takes both out. */
    int c = tn_connect(port);
    cr_expect_eq(reset_within(c, 5000), 1, "the first client is reset");
    close(c);
    cr_expect(target_state(stats, dead1, "down") && target_state(stats, dead2, "down"));
    /* The next ones are reset without any connect being tried. */
    for (int k = 0; k < 5; k++) {
        c = tn_connect(port);
        cr_expect_eq(reset_within(c, 5000), 1, "client %d is reset", k);
        close(c);
    }
    char *json = stats_ask(stats, "json\n", 5000);
    const char *ports = json ? strstr(json, "\"ports\"") : NULL;
    cr_expect_eq(stats_json_number(ports, "refused"), 6, "%s", json);
    cr_expect(strstr(json, "\"failures\":1,") != NULL, "one failed connect each: %s", json);
    free(json);
    uint64_t end = tn_now_ms() + 2000;
    while (!strstr(relay.errbuf, "every target is out, resetting the client") &&
           tn_now_ms() < end && relay.err >= 0)
        proc_pump_err(&relay, 50);
    cr_expect_not_null(strstr(relay.errbuf, "every target is out, resetting the client"), "%s",
                       relay.errbuf);
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, the_active_check_takes_a_target_out_and_back)
{
    struct proc echo, relay;
    /* Restarted on its port below: one outside the ephemeral range (see
     * the failover test). */
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", tn_server_port());
    uint16_t eport =
        nc_listen(&echo, (const char *[]){"echo", "-W", "1", "--no-stats", target, NULL});
    snprintf(target, sizeof target, "127.0.0.1:%u", eport);
    const char *stats = stats_path("check");
    nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--stats", stats, "--check", "0.2",
                                       "127.0.0.1:0", target, NULL});
    cr_expect(wait_target_state(stats, target, "up", 5000));
    cr_assert_eq(proc_signal(&echo, SIGKILL, 5000), 128 + SIGKILL);
    cr_expect(wait_target_state(stats, target, "down", 10000), "the check takes it out");
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", eport);
    nc_listen(&echo, (const char *[]){"echo", "-W", "1", "--no-stats", addr, NULL});
    cr_expect(wait_target_state(stats, target, "up", 10000), "the check brings it back");
    expect_clean_exit(&relay);
    expect_clean_exit(&echo);
}

/* ---- failover under load ---- */

struct load {
    uint16_t port;
    volatile bool stop;
    /* closed: EOF before the echo, when the target killed had taken the
     * connection but not yet the bytes (its kernel sends a FIN, which the
     * relay passes on as the target's end). */
    int echoed, reset, closed, hung, other;
};

/* Short clients one after the other, each bounded: its echo or a reset
 * within 5 s (the relay's connect time-out is 2 s), or it counts as hung. */
static void *load_run(void *arg)
{
    struct load *l = arg;
    while (!l->stop) {
        int c = tn_connect(l->port);
        if (c < 0) {
            l->other++;
            continue;
        }
        char buf[8];
        if (!tn_write_all(c, "ping", 4)) {
            l->reset++;
            close(c);
            continue;
        }
        size_t got = tn_read_full(c, buf, 4, 5000);
        if (got == 4 && !memcmp(buf, "ping", 4)) {
            l->echoed++;
        } else {
            int st = nc_eof_state(c, 10);
            if (st == 2 || errno == ECONNRESET)
                l->reset++;
            else if (got == 0 && st == 1)
                l->closed++;
            else if (got == 0 && st == 0)
                l->hung++;
            else
                l->other++;
        }
        close(c);
    }
    return NULL;
}

Test(cli_relay_lb, a_target_killed_and_restarted_under_load_leaves_and_comes_back)
{
    struct proc echo[3], relay;
    uint16_t eport[3];
    char names[3][32];
    for (int i = 0; i < 3; i++) {
        /* Target 1 comes back on its port seconds after it died: a port
         * from below the ephemeral range, which no outgoing connection of
         * another test can be handed in the meantime, as a service's fixed
         * port is in real life. */
        char any[32];
        snprintf(any, sizeof any, "127.0.0.1:%u", i == 1 ? tn_server_port() : 0u);
        eport[i] =
            nc_listen(&echo[i], (const char *[]){"echo", "-W", "1", "--no-stats", any, NULL});
        snprintf(names[i], sizeof names[i], "127.0.0.1:%u", eport[i]);
    }
    const char *stats = stats_path("failover");
    uint16_t port = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--stats", stats, "-w",
                                                       "2", "--max-fails", "2", "--fail-window",
                                                       "5", "--fail-timeout", "1", "127.0.0.1:0",
                                                       names[0], names[1], names[2], NULL});
    struct load l[2] = {{.port = port}, {.port = port}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, load_run, &l[i]);
    usleep(2000000);
    /* Target 1 dies: it leaves. */
    cr_assert_eq(proc_signal(&echo[1], SIGKILL, 5000), 128 + SIGKILL);
    cr_expect(wait_target_state(stats, names[1], "down", 5000), "the dead target is out");
    usleep(3000000);
    /* It comes back on its port: a probe finds it and it takes clients. */
    nc_listen(&echo[1], (const char *[]){"echo", "-W", "1", "--no-stats", names[1], NULL});
    cr_expect(wait_target_state(stats, names[1], "up", 8000), "the target is back in");
    char *before = stats_ask(stats, "json\n", 5000);
    usleep(3000000);
    for (int i = 0; i < 2; i++) {
        l[i].stop = true;
        pthread_join(th[i], NULL);
    }
    char *after = stats_ask(stats, "json\n", 5000);
    /* It was given clients again once back. */
    char key[64];
    snprintf(key, sizeof key, "\"target\":\"%s\"", names[1]);
    const char *b = before ? strstr(before, key) : NULL, *a = after ? strstr(after, key) : NULL;
    cr_assert(a && b);
    long long cb = stats_json_number(b, "connects"), ca = stats_json_number(a, "connects");
    cr_expect_gt(ca, cb, "the restarted target takes clients again (%lld then %lld)", cb, ca);
    free(before);
    free(after);
    int echoed = l[0].echoed + l[1].echoed, reset = l[0].reset + l[1].reset;
    int hung = l[0].hung + l[1].hung, other = l[0].other + l[1].other;
    int closed = l[0].closed + l[1].closed;
    cr_log_info("failover: %d echoed, %d reset, %d closed by the dying target, %d hung, %d other",
                echoed, reset, closed, hung, other);
    cr_expect_eq(hung, 0, "no client waits past the bound");
    cr_expect_eq(other, 0, "every client gets its echo, a reset or its target's end");
    cr_expect_leq(reset + closed, 10, "only clients in flight to the killed target fail");
    cr_expect_gt(echoed, 100, "the load ran (%d echoed)", echoed);
    expect_clean_exit(&relay);
    for (int i = 0; i < 3; i++)
        expect_clean_exit(&echo[i]);
}

/* ---- port ranges ---- */

/* n consecutive free loopback ports, bound now (fds) or only found. */
static uint16_t consecutive_ports(int n, int *fds)
{
    for (int attempt = 0; attempt < 200; attempt++) {
        uint16_t base = (uint16_t)(20000 + (unsigned)(rand() % 30000));
        int k;
        for (k = 0; k < n; k++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
            struct sockaddr_in sa = tn_loopback((uint16_t)(base + k));
            if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 64) < 0) {
                close(fd);
                break;
            }
            fds[k] = fd;
        }
        if (k == n)
            return base;
        while (k-- > 0)
            close(fds[k]);
    }
    cr_assert_fail("no %d consecutive free ports", n);
    return 0;
}

Test(cli_relay_lb, a_port_range_maps_each_port_to_its_target_port)
{
    enum { N = 4 };
    srand((unsigned)getpid());
    int tfd[N], lfd[N];
    uint16_t tbase = consecutive_ports(N, tfd);
    uint16_t lbase = consecutive_ports(N, lfd);
    for (int k = 0; k < N; k++)
        close(lfd[k]); /* the relay's to take */
    char listen[48], target[48];
    snprintf(listen, sizeof listen, "127.0.0.1:%u-%u", lbase, lbase + N - 1);
    snprintf(target, sizeof target, "127.0.0.1:%u-%u", tbase, tbase + N - 1);
    const char *stats = stats_path("ranges");
    struct proc relay;
    cr_assert(nc_start(&relay, -1,
                       (const char *[]){"relay", "-W", "2", "--stats", stats, listen, target,
                                        NULL}));
    /* One listening line per port. */
    for (int k = 0; k < N; k++) {
        char line[64];
        snprintf(line, sizeof line, "listening on 127.0.0.1 %u\n", lbase + k);
        uint64_t end = tn_now_ms() + 10000;
        while (!strstr(relay.errbuf, line) && tn_now_ms() < end && relay.err >= 0)
            proc_pump_err(&relay, 50);
        cr_assert_not_null(strstr(relay.errbuf, line), "%s", relay.errbuf);
    }
    /* Port lbase+k reaches target port tbase+k, in any order. */
    for (int r = 0; r < 2; r++)
        for (int k = N - 1; k >= 0; k--)
            cr_expect_eq(one_client(NULL, (uint16_t)(lbase + k), tfd, N), k, "port %u",
                         lbase + k);
    char *json = stats_ask(stats, "json\n", 5000);
    for (int k = 0; k < N; k++) {
        char want[48];
        snprintf(want, sizeof want, "{\"port\":%u,\"live\":", lbase + k);
        const char *at = json ? strstr(json, want) : NULL;
        cr_expect_not_null(at, "port %u in stats: %s", lbase + k, json);
        if (at)
            cr_expect_eq(stats_json_number(at, "accepted"), 2, "per-port count");
    }
    free(json);
    char *prom = stats_ask(stats, "prometheus\n", 5000);
    char want[96];
    snprintf(want, sizeof want, "iocptool_relay_port_accepted_total{port=\"%u\"} 2\n", lbase);
    cr_expect(prom && strstr(prom, want), "%s", prom);
    free(prom);
    char *text = stats_ask(stats, "stats\n", 5000);
    snprintf(want, sizeof want, "target 127.0.0.1:%u", tbase + N - 1);
    cr_expect(text && strstr(text, want), "%s", text);
    free(text);
    expect_clean_exit(&relay);
}

Test(cli_relay_lb, mismatched_ranges_and_bad_weights_are_usage_errors)
{
    struct proc p;
    cr_assert(nc_start(&p, -1,
                       (const char *[]){"relay", "127.0.0.1:8000-8003", "127.0.0.1:9000-9001",
                                        NULL}));
    cr_expect_eq(proc_wait(&p, 5000), 2);
    cr_expect_not_null(strstr(p.errbuf, "2 ports for 4 listening ports"), "%s", p.errbuf);
    cr_assert(nc_start(&p, -1, (const char *[]){"relay", "0", "127.0.0.1:9,weight=0", NULL}));
    cr_expect_eq(proc_wait(&p, 5000), 2, "%s", p.errbuf);
    cr_assert(nc_start(&p, -1, (const char *[]){"relay", "0", "127.0.0.1:9,wait=1", NULL}));
    cr_expect_eq(proc_wait(&p, 5000), 2, "%s", p.errbuf);
    cr_assert(nc_start(&p, -1, (const char *[]){"relay", "--balance", "random", "0",
                                                "127.0.0.1:9", NULL}));
    cr_expect_eq(proc_wait(&p, 5000), 2, "%s", p.errbuf);
}
