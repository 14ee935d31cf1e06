/* SPDX-License-Identifier: MIT */
/*
 * Hostile peers against the servers, as an attacker on the network would
 * behave: connections that trickle or stall (slowloris), peers that reset in
 * the middle of a transfer, descriptor exhaustion, garbage where an
 * encrypted handshake should be, and a relay whose targets reset.  Every
 * case checks the two things a user of the server cares about: a well-behaved
 * client is still served byte-exact while the attack goes on and after it,
 * and the server's books balance when it stops (-v audits them: no
 * "mismatch"), with no sanitizer report.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sys/resource.h>

#include <stdatomic.h>

#include "echoclient.h"
#include "proc.h"
#include "statsclient.h"

TestSuite(cli_hostile, .fini = proc_cleanup_all, .timeout = 240);

/* ---- helpers ---- */

static uint16_t start_server(struct proc *p, char *const args[])
{
    char *argv[32];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    cr_assert(proc_startv(p, -1, argv));
    uint16_t port = proc_listening(p, 15000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* A well-behaved client still gets its echo, byte-exact. */
static void expect_still_serving(uint16_t port, const char *when)
{
    struct ec_result r = ec_run(port, 8, 64 * 1024, 60000);
    cr_expect_eq(r.ok, 8, "%s: %d ok, %d bad, %d pending", when, r.ok, r.bad, r.pending);
}

/* Stop the server: it ends on SIGTERM within the bound, its books balance
 * and no sanitizer spoke. */
static void expect_clean_stop(struct proc *p)
{
    int st = proc_signal(p, SIGTERM, 20000);
    cr_expect_neq(st, -1, "the server did not stop on SIGTERM; stderr: %s", p->errbuf);
    cr_expect(st == 0 || st == 128 + SIGTERM, "exit status %d; stderr: %s", st, p->errbuf);
    cr_expect_null(strstr(p->errbuf, "mismatch"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

static int connect_nonblocking(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = tn_loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Close with a reset rather than a FIN. */
static void close_with_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Wait until every fd in fds has seen EOF or a reset; the count that did. */
static int count_ended(int *fds, int n, unsigned timeout_ms)
{
    int ended = 0;
    bool *done = calloc((size_t)n, sizeof *done);
    uint64_t end = tn_now_ms() + timeout_ms;
    char buf[4096];
    while (ended < n && tn_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            if (done[i])
                continue;
            ssize_t r = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
                done[i] = true;
                ended++;
            }
        }
        if (ended < n) {
            struct pollfd pfd = {.fd = -1};
            poll(&pfd, 0, 50);
        }
    }
    free(done);
    return ended;
}

/* ---- slowloris ---- */

Test(cli_hostile, slowloris_connections_do_not_starve_others_and_are_closed_when_idle)
{
    struct proc srv;
    uint16_t port = start_server(&srv, (char *[]){"echo", "-v", "-W", "2", "--no-stats",
                                                  "--idle-timeout", "2", "127.0.0.1:0", NULL});
    enum { SLOW = 200 };
    int fds[SLOW];
    for (int i = 0; i < SLOW; i++) {
        fds[i] = connect_nonblocking(port);
        cr_assert_geq(fds[i], 0);
    }
    /* Each slow peer trickles one byte, then stalls. */
    for (int i = 0; i < SLOW; i++) {
        struct pollfd pfd = {.fd = fds[i], .events = POLLOUT};
        poll(&pfd, 1, 5000);
        (void)send(fds[i], "x", 1, MSG_NOSIGNAL);
    }
    expect_still_serving(port, "during the slowloris");
    /* The idle time-out closes every stalled peer (2 s; generous bound). */
    int ended = count_ended(fds, SLOW, 60000);
    cr_expect_eq(ended, SLOW, "%d of %d stalled peers were closed by the idle time-out", ended,
                 SLOW);
    for (int i = 0; i < SLOW; i++)
        close(fds[i]);
    expect_still_serving(port, "after the slowloris");
    expect_clean_stop(&srv);
}

/* ---- abrupt resets ---- */

Test(cli_hostile, peers_that_reset_mid_transfer_leave_the_server_serving)
{
    struct proc srv;
    uint16_t port =
        start_server(&srv, (char *[]){"echo", "-v", "-W", "2", "--no-stats", "127.0.0.1:0", NULL});
    unsigned char *buf = malloc(256 * 1024);
    tn_pattern(buf, 256 * 1024, 7, 0);
    for (int round = 0; round < 5; round++) {
        enum { N = 100 };
        int fds[N];
        for (int i = 0; i < N; i++) {
            fds[i] = tn_connect(port);
            cr_assert_geq(fds[i], 0);
            tn_set_nonblock(fds[i], true);
            /* Fill the echo path: the server is sending back while we reset. */
            (void)send(fds[i], buf, 256 * 1024, MSG_NOSIGNAL);
        }
        for (int i = 0; i < N; i++)
            close_with_reset(fds[i]);
    }
    free(buf);
    expect_still_serving(port, "after 500 resets mid-transfer");
    expect_clean_stop(&srv);
}

/* A target that resets every connection it accepts, on its own thread. */
struct resetter {
    int lfd;
    atomic_bool stop;
    pthread_t thread;
};

static void *resetter_run(void *arg)
{
    struct resetter *r = arg;
    while (!atomic_load(&r->stop)) {
        struct pollfd pfd = {.fd = r->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (a >= 0)
            close_with_reset(a);
    }
    return NULL;
}

Test(cli_hostile, a_relay_whose_clients_and_targets_reset_keeps_relaying)
{
    struct proc echo, relay;
    uint16_t eport =
        start_server(&echo, (char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
    struct resetter bad = {.lfd = -1};
    uint16_t bad_port = 0;
    bad.lfd = tn_listen(&bad_port);
    cr_assert_geq(bad.lfd, 0);
    atomic_init(&bad.stop, false);
    cr_assert_eq(pthread_create(&bad.thread, NULL, resetter_run, &bad), 0);
    char good_target[32], bad_target[32];
    snprintf(good_target, sizeof good_target, "127.0.0.1:%u", eport);
    snprintf(bad_target, sizeof bad_target, "127.0.0.1:%u", bad_port);
    uint16_t port = start_server(&relay, (char *[]){"relay", "-v", "-W", "2", "--no-stats",
                                                    "127.0.0.1:0", good_target, bad_target, NULL});
    /* Clients that reset right after connecting, while the relay still opens
     * their target connection, and clients that reset mid-stream. */
    unsigned char chunk[16384];
    tn_pattern(chunk, sizeof chunk, 11, 0);
    for (int i = 0; i < 200; i++) {
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        if (i % 2)
            (void)send(fd, chunk, sizeof chunk, MSG_NOSIGNAL);
        close_with_reset(fd);
    }
    /* Well-behaved clients: one whose connection lands on the good target is
     * echoed byte-exact; one that lands on the resetting target is reset,
     * never given wrong bytes and never left hanging. */
    int ok = 0;
    for (int attempt = 0; attempt < 10 && ok < 3; attempt++) {
        struct ec_result r = ec_run(port, 1, 64 * 1024, 30000);
        cr_expect_eq(r.pending, 0, "a relayed client hung");
        ok += r.ok;
    }
    cr_expect_geq(ok, 3, "well-behaved clients served: %d", ok);
    atomic_store(&bad.stop, true);
    pthread_join(bad.thread, NULL);
    close(bad.lfd);
    expect_clean_stop(&relay);
    expect_clean_stop(&echo);
}

/* ---- descriptor exhaustion ---- */

Test(cli_hostile, running_out_of_descriptors_neither_spins_nor_stops_the_server)
{
    /* The server gets 64 descriptors; the attacker opens 150 connections. */
    struct rlimit old, low = {64, 64};
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low.rlim_max = old.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    struct proc srv;
    bool started = proc_start(&srv, -1, "echo", "-v", "-W", "1", "--no-stats", "127.0.0.1:0", NULL);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert(started);
    uint16_t port = proc_listening(&srv, 15000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", srv.errbuf);

    enum { N = 150 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_nonblocking(port);
        cr_assert_geq(fds[i], 0);
    }
    /* While descriptors are exhausted the server must back off, not spin:
     * over 2 s of wall time it may use well under one core. */
    uint64_t c0 = proc_cpu_ms(srv.pid), t0 = tn_now_ms();
    struct pollfd none = {.fd = -1};
    poll(&none, 0, 2000);
    uint64_t used = proc_cpu_ms(srv.pid) - c0, wall = tn_now_ms() - t0;
    cr_expect_lt(used * 2, wall,
                 "the server used %llu ms of CPU in %llu ms while out of descriptors",
                 (unsigned long long)used, (unsigned long long)wall);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    /* Descriptors come back: it serves again. */
    expect_still_serving(port, "after descriptor exhaustion");
    expect_clean_stop(&srv);
}

/* ---- the stats endpoint under attack ---- */

/* One of the servers that have a stats endpoint, started by the test. */
struct served {
    const char *kind; /* "echo", "listen" (-k) or "relay" (to an echo) */
    struct proc p, backend;
    uint16_t port;
    char dir[64], ep[96]; /* the endpoint: a socket in a directory of its own */
};

static const char *const served_kinds[] = {"echo", "listen", "relay"};

/* Start kind with its endpoint at s->ep; with limit, only that many
 * descriptors (the child inherits the limit: set around its start). */
static void start_served(struct served *s, const char *kind, rlim_t limit)
{
    memset(s, 0, sizeof *s);
    s->kind = kind;
    snprintf(s->dir, sizeof s->dir, "/tmp/iocp-hostile-XXXXXX");
    cr_assert_not_null(mkdtemp(s->dir));
    snprintf(s->ep, sizeof s->ep, "%s/s.sock", s->dir);
    char target[32];
    char *argv[16] = {IOCPTOOL_PATH, (char *)kind, "-v", "--stats", s->ep};
    int n = 5;
    if (!strcmp(kind, "echo")) {
        argv[n++] = "-W";
        argv[n++] = "1";
    } else if (!strcmp(kind, "listen")) {
        argv[n++] = "-k";
    }
    argv[n++] = "127.0.0.1:0";
    if (!strcmp(kind, "relay")) {
        uint16_t eport = start_server(
            &s->backend, (char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
        snprintf(target, sizeof target, "127.0.0.1:%u", eport);
        argv[n++] = target;
    }
    argv[n] = NULL;
    struct rlimit old, low;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = (struct rlimit){limit ? limit : old.rlim_cur, old.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    bool started = proc_startv(&s->p, -1, argv);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
    cr_assert(started);
    s->port = proc_listening(&s->p, 15000);
    cr_assert_neq(s->port, 0, "%s: no listening line; stderr: %s", kind, s->p.errbuf);
}

/* A normal client is still served: echo and relay echo it back byte-exact,
 * listen -k writes what it sends to standard output. */
static void expect_served(struct served *s, const char *when)
{
    if (strcmp(s->kind, "listen") != 0) {
        expect_still_serving(s->port, when);
        return;
    }
    char line[64], got[4096] = "";
    snprintf(line, sizeof line, "still served %s\n", when);
    int fd = tn_connect(s->port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, line, strlen(line)));
    size_t len = 0;
    uint64_t end = tn_now_ms() + 15000;
    while (!strstr(got, line) && len < sizeof got - 1 && tn_now_ms() < end) {
        struct pollfd pfd = {.fd = s->p.out, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t k = read(s->p.out, got + len, sizeof got - 1 - len);
        if (k <= 0)
            break;
        len += (size_t)k;
        got[len] = '\0';
    }
    cr_expect_not_null(strstr(got, line), "listen -k: '%s' on its stdout, got '%s'", line, got);
    close(fd);
}

static void stop_served(struct served *s)
{
    expect_clean_stop(&s->p);
    if (s->backend.pid)
        expect_clean_stop(&s->backend);
    rmdir(s->dir);
}

Test(cli_hostile, a_stats_storm_leaves_each_server_serving_with_its_books_balanced)
{
    for (size_t k = 0; k < sizeof served_kinds / sizeof served_kinds[0]; k++) {
        struct served s;
        start_served(&s, served_kinds[k], 0);
        /* Connections that hold an endpoint slot and say nothing, then a
         * storm of real queries on top. */
        int stalled[40];
        for (int i = 0; i < 40; i++) {
            stalled[i] = stats_connect(s.ep);
            cr_assert_geq(stalled[i], 0);
        }
        enum { N = 120 };
        struct storm r = stats_storm(s.ep, N);
        cr_expect_eq(r.answered, N, "%s: %d answered, %d refused, %d failed", s.kind, r.answered,
                     r.refused, r.failed);
        for (int i = 0; i < 40; i++)
            close(stalled[i]);
        expect_served(&s, "after a stats storm");
        stop_served(&s);
    }
}

/* Whether s has run out of descriptors: every one below limit in use, or
 * (a relay, which resets a client whose target it cannot connect and so
 * frees descriptors again) every one of the n clients accepted. */
static bool met_the_limit(struct served *s, int limit, int n)
{
    uint64_t end = tn_now_ms() + 30000;
    while (tn_now_ms() < end) {
        if (proc_fds_below(s->p.pid, limit) == limit)
            return true;
        if (!strcmp(s->kind, "relay")) {
            char *json = stats_ask(s->ep, "json\n", 2000);
            bool all = stats_json_number(json, "accepted") == n;
            free(json);
            if (all)
                return true;
        }
        usleep(20000);
    }
    return false;
}

/* Whether s has accepted or refused all n connections of the attack. */
static bool all_taken(struct served *s, int n)
{
    uint64_t end = tn_now_ms() + 30000;
    while (tn_now_ms() < end) {
        char *json = stats_ask(s->ep, "json\n", 2000);
        long long taken = stats_json_number(json, "accepted") + stats_json_number(json, "refused");
        free(json);
        if (taken >= n)
            return true;
        usleep(20000);
    }
    return false;
}

Test(cli_hostile, out_of_descriptors_each_server_and_its_stats_endpoint_wait_without_spinning)
{
    for (size_t k = 0; k < sizeof served_kinds / sizeof served_kinds[0]; k++) {
        enum { LIMIT = 64, N = 80 };
        struct served s;
        start_served(&s, served_kinds[k], LIMIT);
        int fds[N];
        for (int i = 0; i < N; i++) {
            fds[i] = connect_nonblocking(s.port);
            cr_assert_geq(fds[i], 0);
        }
        cr_expect(met_the_limit(&s, LIMIT, N), "%s: never out of descriptors", s.kind);
        /* A stats query waits meanwhile: the endpoint cannot accept it. */
        int q = stats_connect(s.ep);
        cr_assert_geq(q, 0);
        cr_assert(tn_write_all(q, "json\n", 5));
        uint64_t c0 = proc_cpu_ms(s.p.pid), t0 = tn_now_ms();
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 2000);
        uint64_t used = proc_cpu_ms(s.p.pid) - c0, wall = tn_now_ms() - t0;
        cr_expect_lt(used * 10, wall * 3, "%s: %llu ms of CPU in %llu ms out of descriptors",
                     s.kind, (unsigned long long)used, (unsigned long long)wall);
        for (int i = 0; i < N; i++)
            close(fds[i]);
        /* Descriptors come back: the query is answered, clients served. */
        char answer[2] = "";
        cr_expect_eq(tn_read_full(q, answer, 1, 15000), 1, "%s: the waiting query", s.kind);
        cr_expect_eq(answer[0], '{', "%s: the waiting query got '%s'", s.kind, answer);
        close(q);
        /* Once it has taken and closed every connection the attacker left
         * (those still in the listen queue are accepted after the back-off,
         * and would otherwise compete with the clients below for the last
         * descriptors), it serves as before. */
        cr_expect(all_taken(&s, N), "%s: the attack's connections taken", s.kind);
        cr_expect(stats_wait_for(s.ep, "counted", 0, 30000), "%s: the attack's connections closed",
                  s.kind);
        expect_served(&s, "after descriptor exhaustion");
        stop_served(&s);
    }
}

/* ---- garbage instead of an encrypted handshake ---- */

#if IOCP_HAVE_SODIUM
Test(cli_hostile, garbage_handshakes_at_an_encrypted_relay_reset_only_their_own_pairs)
{
    char dir[] = "/tmp/iocp-hostile-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char key[128];
    snprintf(key, sizeof key, "%s/k", dir);
    struct proc kg;
    cr_assert(proc_start(&kg, -1, "keygen", key, NULL));
    cr_assert_eq(proc_wait(&kg, 10000), 0, "%s", kg.errbuf);

    struct proc echo, back, front;
    uint16_t eport =
        start_server(&echo, (char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", eport);
    uint16_t bport = start_server(&back, (char *[]){"relay", "-v", "--no-stats", "--key-listen",
                                                    key, "127.0.0.1:0", target, NULL});
    char btarget[32];
    snprintf(btarget, sizeof btarget, "127.0.0.1:%u", bport);
    uint16_t fport = start_server(&front, (char *[]){"relay", "-v", "--no-stats", "--key-target",
                                                     key, "127.0.0.1:0", btarget, NULL});

    /* 100 clients send garbage of every length where the Hello belongs. */
    unsigned char junk[512];
    for (int i = 0; i < 100; i++) {
        int fd = tn_connect(bport);
        cr_assert_geq(fd, 0);
        size_t len = (size_t)(i * 37 % (int)sizeof junk) + 1;
        tn_pattern(junk, len, (uint64_t)i, 0);
        (void)send(fd, junk, len, MSG_NOSIGNAL);
        if (i % 3 == 0)
            close_with_reset(fd);
        else {
            /* The relay answers garbage by ending the connection. */
            cr_expect(tn_wait_eof(fd, 20000), "garbage client %d was not disconnected", i);
            close(fd);
        }
    }
    /* Meanwhile and afterwards, the real tunnel carries data byte-exact. */
    expect_still_serving(fport, "through the tunnel after garbage handshakes");
    expect_clean_stop(&front);
    expect_clean_stop(&back);
    expect_clean_stop(&echo);
    unlink(key);
    rmdir(dir);
}
#endif
