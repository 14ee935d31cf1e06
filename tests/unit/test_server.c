/* SPDX-License-Identifier: MIT */
/*
 * The engine, servers and clients end to end, on the backend named by
 * IOCP_BACKEND: byte-exact echo at scale, connect/close churn, safe stop
 * under load, restarts, injected failures, descriptor exhaustion, back-
 * pressure against a slow reader, and the client side.  Every test ends
 * with the stop audit: each request submitted completed, each pooled
 * connection came back.
 */
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <poll.h>

#include <criterion/criterion.h>

#include "core.h"
#include "echoclient.h"
#include "engine_fixture.h"
#include "fault.h"
#include "testnet.h"

#ifdef IOCP_TEST_SANITIZED
/* Sanitizers slow byte-heavy loops several times over: the same scenarios,
 * smaller volumes. */
#define SCALE 8
#else
#define SCALE 1
#endif

static struct iocp_engine *engine;
static struct iocp_server *server;
static uint16_t port;

static void echo_data(struct iocp_conn *c, const void *data, size_t len)
{
    if (iocp_conn_send(c, data, len) < 0)
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static void quiet_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
}

static const struct iocp_conn_handler echo_handler = {.on_data = echo_data,
                                                      .on_close = quiet_close};

static void start_engine(unsigned workers)
{
    struct iocp_engine_config cfg = {.workers = workers};
    ef_start(&engine, &cfg);
}

static void start_server(const struct iocp_server_config *cfg)
{
    struct iocp_server_config def = {.host = "127.0.0.1", .handler = &echo_handler};
    if (!cfg)
        cfg = &def;
    cr_assert_eq(iocp_server_new(&server, engine, cfg), 0);
    int rc = iocp_server_start(server);
    cr_assert_eq(rc, 0, "server start: %s", iocp_strerror(rc));
    port = iocp_server_port(server);
    cr_assert_neq(port, 0);
}

/* Stop everything and insist that the books balance. */
static void stop_and_audit(void)
{
    ef_stop_and_audit(&engine, &server);
}

static void setup(void)
{
    start_engine(2);
}

TestSuite(server, .init = setup, .fini = stop_and_audit, .timeout = 240);

static bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (tn_now_ms() > end)
            return false;
        usleep(1000);
    }
    return true;
}

static bool server_empty(void *arg)
{
    (void)arg;
    return iocp_server_conns(server) == 0;
}

static uint32_t want_conns;
static bool server_has_want(void *arg)
{
    (void)arg;
    return iocp_server_conns(server) >= want_conns;
}

Test(server, a_thousand_clients_each_echo_a_mebibyte_byte_exact)
{
    start_server(NULL);
    struct ec_result r = ec_run(port, 1000, (1u << 20) / SCALE, 180000);
    cr_expect_eq(r.ok, 1000, "%d ok, %d bad, %d unfinished", r.ok, r.bad, r.pending);
    cr_expect(wait_for(server_empty, NULL, 10000), "connections left: %u",
              iocp_server_conns(server));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.accepted, 1000);
    cr_expect_eq(st.bytes_in, (uint64_t)1000 * ((1u << 20) / SCALE));
    cr_expect_eq(st.bytes_out, st.bytes_in);
}

/* The kernel's count of connections dropped because a listen queue was full
 * (TcpExt ListenDrops): a client may see its connect succeed and still never
 * reach accept() when the queue overflows under load. */
static uint64_t listen_drops(void)
{
    FILE *f = fopen("/proc/net/netstat", "r");
    char names[4096], values[4096];
    uint64_t drops = 0;
    if (!f)
        return 0;
    while (fgets(names, sizeof names, f) && fgets(values, sizeof values, f)) {
        if (strncmp(names, "TcpExt:", 7) != 0)
            continue;
        char *ns, *vs;
        char *n = strtok_r(names, " \n", &ns), *v = strtok_r(values, " \n", &vs);
        while (n && v) {
            if (strcmp(n, "ListenDrops") == 0)
                drops = strtoull(v, NULL, 10);
            n = strtok_r(NULL, " \n", &ns);
            v = strtok_r(NULL, " \n", &vs);
        }
    }
    fclose(f);
    return drops;
}

/* The worker counts a connection closed and calls its on_close before it
 * puts the connection object back in its pool, so a reader on another
 * thread can see the close counted with the object still out: the books
 * are settled once the last object is back too. */
static uint64_t want_accepted;
static bool all_accepted_and_closed(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    /* want_accepted is a lower bound (other processes' listen drops lower
     * it): a connection may still be on its way in, so no connection may be
     * online or unclosed either. */
    return st.accepted >= want_accepted && st.closed >= want_accepted && st.closed == st.accepted &&
           st.online == 0 && iocp_server_conns(server) == 0 && st.pool_lent == st.pool_returned;
}

struct churn {
    int cycles;
    int failures;
};

static void *churn_thread(void *arg)
{
    struct churn *ch = arg;
    for (int i = 0; i < ch->cycles; i++) {
        int fd = tn_connect(port);
        if (fd < 0) {
            ch->failures++;
            continue;
        }
        if (i % 2) {
            /* Half the clients reset, half close in order: both paths. */
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        close(fd);
    }
    return NULL;
}

Test(server, a_hundred_thousand_connect_close_cycles_balance_the_books)
{
    start_server(NULL);
    enum { THREADS = 4 };
    struct churn ch[THREADS];
    pthread_t t[THREADS];
    int total = 100000 / SCALE;
    uint64_t drops_before = listen_drops();
    for (int i = 0; i < THREADS; i++) {
        ch[i] = (struct churn){.cycles = total / THREADS};
        pthread_create(&t[i], NULL, churn_thread, &ch[i]);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        failures += ch[i].failures;
    }
    cr_expect_eq(failures, 0, "%d connects failed", failures);
    /* The last connections may still sit in the accept queue: wait until
     * every one was accepted and closed again.  Under heavy load the kernel
     * may drop some from a full queue (ListenDrops, counted machine-wide, so
     * other processes' drops only loosen the bound). */
    uint64_t dropped = listen_drops() - drops_before;
    want_accepted = (uint64_t)total - (dropped < (uint64_t)total ? dropped : (uint64_t)total);
    cr_expect(wait_for(all_accepted_and_closed, NULL, 30000),
              "%u connections still open (or objects still out of the pool)",
              iocp_server_conns(server));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect(st.accepted >= want_accepted && st.accepted <= (uint64_t)total,
              "accepted %llu of %d (%llu dropped by the kernel), refused %llu, accept errors "
              "%llu, back-offs %llu",
              (unsigned long long)st.accepted, total, (unsigned long long)dropped,
              (unsigned long long)st.refused, (unsigned long long)st.accept_errors,
              (unsigned long long)st.accept_backoffs);
    cr_expect_eq(st.closed, st.accepted, "every accepted connection was closed");
    cr_expect_eq(st.online, 0);
    cr_expect_eq(st.walked, 0);
    cr_expect_eq(st.pool_lent, st.pool_returned);
    cr_expect_eq(st.accept_errors, 0);
}

/* Sockets this process holds open. */
static int open_sockets(void)
{
    return tn_sockets_of((long)getpid(), 0);
}

static int sockets_want;
static bool sockets_at_want(void *arg)
{
    (void)arg;
    return open_sockets() == sockets_want;
}

/* A connection's descriptor is released once it closes (the io_uring
 * backend closes it with the ring's next submission, not at once), and the
 * closes still queued when the engine stops are carried out by the stop:
 * no descriptor outlives its connection. */
Test(server, closed_connections_give_their_descriptors_back_while_serving_and_at_stop)
{
    int before = open_sockets();
    start_server(NULL);
    int listening = open_sockets() - before;
    cr_assert_geq(listening, 1);
    for (int i = 0; i < 300; i++) {
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        char b = 'x';
        cr_assert_eq(write(fd, &b, 1), 1);
        cr_assert_eq(read(fd, &b, 1), 1);
        close(fd);
    }
    cr_expect(wait_for(server_empty, NULL, 10000), "connections left: %u",
              iocp_server_conns(server));
    sockets_want = before + listening;
    cr_expect(wait_for(sockets_at_want, NULL, 10000), "%d sockets open, want %d",
              open_sockets(), sockets_want);

    /* Clients that all close at once, with the engine stopped right after:
     * some of the server's closes may still be queued when it stops. */
    enum { BURST = 200 };
    int fds[BURST];
    cr_assert(tn_connect_all(port, fds, BURST));
    want_conns = BURST;
    cr_assert(wait_for(server_has_want, NULL, 10000), "%u of %d accepted",
              iocp_server_conns(server), BURST);
    for (int i = 0; i < BURST; i++)
        close(fds[i]);
    stop_and_audit();
    cr_expect_eq(open_sockets(), before, "sockets left open after the stop");
}

static bool all_online(void *arg)
{
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.online == (uint64_t)(uintptr_t)arg;
}

/* The clients never close: a stop that waited for them would never end.
 * The bound is far above what a stop takes (tens of milliseconds, logged)
 * so that a loaded machine does not fail it. */
Test(server, stop_with_a_thousand_live_connections_returns_without_waiting_for_their_clients)
{
    start_server(NULL);
    enum { N = 1000 };
    static int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0);
    }
    want_conns = N;
    cr_assert(wait_for(server_has_want, NULL, 10000), "only %u accepted",
              iocp_server_conns(server));
    /* A connection is counted by its server when it is accepted and goes
     * online (the registry) a moment later, on its worker. */
    cr_assert(wait_for(all_online, (void *)(uintptr_t)N, 10000));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.online, N);
    cr_expect_eq(st.walked, N, "the walk must agree with the counter");
    cr_expect_eq(st.hashed, N);

    uint64_t t0 = tn_now_ms();
    iocp_server_stop(server);
    iocp_engine_stop(engine);
    uint64_t took = tn_now_ms() - t0;
    cr_log_info("stop with %d connections: %llu ms", N, (unsigned long long)took);
    cr_expect_lt(took, 10000, "stop took %llu ms", (unsigned long long)took);
    cr_expect_not(iocp_engine_running(engine));
    /* Every client sees its connection end. */
    int ended = 0;
    for (int i = 0; i < N; i++) {
        if (tn_wait_eof(fds[i], 2000))
            ended++;
        close(fds[i]);
    }
    cr_expect_eq(ended, N);
}

Test(server, start_and_stop_a_hundred_times_in_one_process)
{
    stop_and_audit();
    for (int round = 0; round < 100; round++) {
        start_engine(2);
        start_server(NULL);
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0, "round %d", round);
        char buf[5];
        cr_assert(tn_write_all(fd, "ping!", 5));
        cr_assert_eq(tn_read_full(fd, buf, 5, 5000), 5, "round %d: no echo", round);
        cr_assert_eq(memcmp(buf, "ping!", 5), 0);
        close(fd);
        stop_and_audit();
    }
}

Test(server, the_same_engine_starts_again_after_a_stop)
{
    start_server(NULL);
    iocp_server_stop(server);
    iocp_server_free(server);
    server = NULL;
    cr_assert_eq(iocp_engine_stop(engine), 0);
    for (int round = 0; round < 20; round++) {
        cr_assert_eq(iocp_engine_start(engine), 0, "round %d", round);
        start_server(NULL);
        struct ec_result r = ec_run(port, 4, 4096, 10000);
        cr_assert_eq(r.ok, 4, "round %d", round);
        iocp_server_stop(server);
        iocp_server_free(server);
        server = NULL;
        cr_assert_eq(iocp_engine_stop(engine), 0);
        char report[256];
        cr_assert_eq(iocp_engine_audit(engine, report, sizeof report), 0, "%s", report);
    }
}

Test(server, injected_failures_on_every_operation_leave_the_server_serving)
{
    start_server(NULL);
    cr_assert_eq(iocp__fault_configure("accept=7,recv=13,send=17,submit=29,seed=3"), 0);
    struct ec_result r = ec_run(port, 200, 64 * 1024, 60000);
    cr_expect_eq(r.ok + r.bad, 200, "every client ends one way or the other (%d pending)",
                 r.pending);
    cr_expect_gt(r.ok, 0);
    cr_expect_gt(iocp__fault_injected(IOCP_FAULT_RECV) + iocp__fault_injected(IOCP_FAULT_SEND), 0);
    iocp__fault_configure(NULL);
    /* The server is unharmed: a clean round passes in full. */
    r = ec_run(port, 50, 64 * 1024, 60000);
    cr_expect_eq(r.ok, 50, "%d ok, %d bad, %d pending", r.ok, r.bad, r.pending);
    cr_expect(wait_for(server_empty, NULL, 10000));
}

Test(server, failed_posts_are_retried_and_lose_nothing)
{
    cr_assert_eq(iocp__fault_configure("post=2"), 0);
    start_server(NULL); /* acceptor start tasks are posts */
    struct ec_result r = ec_run(port, 20, 4096, 20000);
    cr_expect_eq(r.ok, 20);
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    cr_expect_gt(st.failed_submits, 0, "posts must have failed and been retried");
    stop_and_audit(); /* exit packets are posts too */
    iocp__fault_configure(NULL);
}

Test(server, running_out_of_descriptors_pauses_accepting_and_resumes)
{
    int go[2];
    cr_assert_eq(pipe(go), 0);
    pid_t child = fork();
    if (child == 0) {
        /* The client side, with its own descriptor limit. */
        /* The server starts after the fork: its port comes through the pipe. */
        if (read(go[0], &port, sizeof port) != sizeof port)
            _exit(2);
        static int fds[300];
        int connected = 0;
        for (int i = 0; i < 300; i++)
            connected += (fds[i] = tn_connect(port)) >= 0;
        if (connected < 300)
            _exit(3);
        usleep(300 * 1000);
        for (int i = 0; i < 300; i++)
            if (fds[i] >= 0)
                close(fds[i]);
        _exit(0);
    }
    /* Leave the server room for about 100 connections. */
    struct rlimit old, low;
    getrlimit(RLIMIT_NOFILE, &old);
    int probe = dup(0);
    low = old;
    low.rlim_cur = (rlim_t)probe + 100;
    close(probe);
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* io_uring takes the descriptor limit when an accept is queued, so the
     * server starts under the low limit. */
    start_server(NULL);
    cr_assert_eq(write(go[1], &port, sizeof port), (ssize_t)sizeof port);
    int status;
    waitpid(child, &status, 0);
    cr_expect_eq(status, 0);
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    cr_expect_gt(st.accept_backoffs, 0,
                 "EMFILE must have paused accepting (accepted %llu, errors %llu, refused %llu)",
                 (unsigned long long)st.accepted, (unsigned long long)st.accept_errors,
                 (unsigned long long)st.refused);
    setrlimit(RLIMIT_NOFILE, &old);
    cr_expect(wait_for(server_empty, NULL, 10000));
    /* Accepting resumed: new clients are served. */
    struct ec_result r = ec_run(port, 20, 1024, 20000);
    cr_expect_eq(r.ok, 20, "%d ok, %d bad, %d pending", r.ok, r.bad, r.pending);
}

/* ---- back-pressure ---- */

static iocp_atomic_size max_queued;

static void tracking_echo(struct iocp_conn *c, const void *data, size_t len)
{
    echo_data(c, data, len);
    size_t q = iocp_conn_queued(c);
    size_t seen = atomic_load(&max_queued);
    while (q > seen && !atomic_compare_exchange_weak(&max_queued, &seen, q))
        ;
}

static const struct iocp_conn_handler tracking_handler = {.on_data = tracking_echo,
                                                          .on_close = quiet_close};

struct slow_reader {
    int fd;
    size_t total;
    size_t got;
};

static void *slow_read(void *arg)
{
    struct slow_reader *sr = arg;
    char buf[4096];
    while (sr->got < sr->total) {
        ssize_t n = read(sr->fd, buf, sizeof buf);
        if (n <= 0)
            break;
        sr->got += (size_t)n;
        /* Slow at first, so that the server's queue fills; then catch up. */
        if (sr->got < 64u * 1024 * 1024 / SCALE)
            usleep(50);
    }
    return NULL;
}

Test(server, a_slow_reader_holds_server_memory_to_the_watermarks)
{
    /* Few receive buffers: a completion port may fill every free one before
     * a pause reaches it, and that is the slack above the high mark. */
    stop_and_audit();
    struct iocp_engine_config ecfg = {.workers = 1, .recv_buffers = 16, .recv_buffer_size = 16384};
    cr_assert_eq(iocp_engine_new(&engine, &ecfg), 0);
    cr_assert_eq(iocp_engine_start(engine), 0);
    struct iocp_server_config cfg = {.host = "127.0.0.1",
                                     .handler = &tracking_handler,
                                     .send_low = 64 * 1024,
                                     .send_high = 256 * 1024};
    start_server(&cfg);
    atomic_store(&max_queued, 0);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    struct slow_reader sr = {.fd = fd, .total = (size_t)1 << 30};
    sr.total /= SCALE;
    pthread_t t;
    pthread_create(&t, NULL, slow_read, &sr);
    const unsigned char *block = ec_block();
    size_t sent = 0;
    while (sent < sr.total) {
        size_t n = sr.total - sent < EC_BLOCK ? sr.total - sent : EC_BLOCK;
        cr_assert(tn_write_all(fd, block, n));
        sent += n;
    }
    pthread_join(t, NULL);
    close(fd);
    cr_expect_eq(sr.got, sr.total, "every byte came back");
    /* At most the high mark plus one receive buffer: whatever the port had
     * received when the pause landed stays within the receive's budget. */
    size_t bound = 256 * 1024 + 16384;
    cr_expect_leq(atomic_load(&max_queued), bound, "queue reached %zu bytes",
                  atomic_load(&max_queued));
    cr_expect_gt(atomic_load(&max_queued), 64 * 1024, "the reader was slow enough to matter");
}

/* ---- memory per slow connection ---- */

#define SLOW_HIGH (256u * 1024u)
#define SLOW_BUFFER 16384u
#define SLOW_CLIENTS (16 / (SCALE > 4 ? 4 : SCALE))

static iocp_atomic_u32 slow_paused;

/* Echo, and remember the deepest queue any connection reached; the first
 * time a connection's queue passes the high mark it is paused (the default
 * pressure rule), and its user data marks it. */
static void paused_echo(struct iocp_conn *c, const void *data, size_t len)
{
    tracking_echo(c, data, len);
    if (iocp_conn_queued(c) > SLOW_HIGH && !iocp_conn_data(c)) {
        iocp_conn_set_data(c, c);
        atomic_fetch_add(&slow_paused, 1);
    }
}

static const struct iocp_conn_handler paused_handler = {.on_data = paused_echo,
                                                        .on_close = quiet_close};

/* What a worker's connections hold at rest, taken on that worker. */
struct held_probe {
    struct iocp_task task;
    struct iocp_worker *w;
    size_t max_queued;
    size_t conns;
    iocp_atomic_bool done;
};

static void probe_held(struct iocp_task *t)
{
    struct held_probe *hp = iocp_container_of(t, struct held_probe, task);
    struct iocp_list *pos;
    iocp_list_foreach(pos, &hp->w->conns)
    {
        struct iocp_conn *c = iocp_container_of(pos, struct iocp_conn, wlink);
        size_t q = iocp_conn_queued(c);
        if (q > hp->max_queued)
            hp->max_queued = q;
        hp->conns++;
    }
    atomic_store(&hp->done, true);
}

static bool probe_done(void *arg)
{
    return atomic_load(&((struct held_probe *)arg)->done);
}

/*
 * Clients that send and never read, against an echo server with the
 * default buffers (256 receive buffers of 16 KiB per worker) and
 * watermarks: each connection's queue passes the high mark and the
 * connection pauses.  What it holds then, and at any moment before, is at
 * most the high mark plus one receive buffer, on every backend.  (An
 * io_uring multishot receive used to keep filling buffers after the pause,
 * up to what the socket held: about 1 MiB per connection.)
 */
Test(server, clients_that_never_read_hold_the_high_mark_plus_one_buffer_each)
{
    stop_and_audit();
    struct iocp_engine_config ecfg = {.workers = 2, .recv_buffer_size = SLOW_BUFFER};
    cr_assert_eq(iocp_engine_new(&engine, &ecfg), 0);
    cr_assert_eq(iocp_engine_start(engine), 0);
    struct iocp_server_config cfg = {.host = "127.0.0.1",
                                     .handler = &paused_handler,
                                     .send_high = SLOW_HIGH};
    start_server(&cfg);
    atomic_store(&max_queued, 0);
    atomic_store(&slow_paused, 0);

    int fds[SLOW_CLIENTS];
    for (int i = 0; i < SLOW_CLIENTS; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0);
        tn_set_nonblock(fds[i], true);
    }
    /* Write until every connection has paused. */
    const unsigned char *block = ec_block();
    uint64_t end = tn_now_ms() + 120000;
    while (atomic_load(&slow_paused) < SLOW_CLIENTS && tn_now_ms() < end) {
        struct pollfd pfd[SLOW_CLIENTS];
        for (int i = 0; i < SLOW_CLIENTS; i++)
            pfd[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
        if (poll(pfd, SLOW_CLIENTS, 10) <= 0)
            continue;
        for (int i = 0; i < SLOW_CLIENTS; i++)
            if (pfd[i].revents & POLLOUT)
                (void)!write(fds[i], block, EC_BLOCK);
    }
    cr_assert_eq(atomic_load(&slow_paused), SLOW_CLIENTS, "only %u of %d connections paused",
                 atomic_load(&slow_paused), SLOW_CLIENTS);

    /* Twice round every worker, so that what the ports had in hand when the
     * last pause landed has been delivered, then look at what is held. */
    size_t held = 0, conns = 0;
    for (int round = 0; round < 2; round++) {
        held = conns = 0;
        for (unsigned i = 0; i < iocp_engine_workers(engine); i++) {
            struct held_probe hp = {.task = {.fn = probe_held}, .w = &engine->workers[i]};
            cr_assert_eq(iocp_engine_post(engine, i, &hp.task), 0);
            cr_assert(wait_for(probe_done, &hp, 10000));
            held = hp.max_queued > held ? hp.max_queued : held;
            conns += hp.conns;
        }
    }
    size_t bound = SLOW_HIGH + SLOW_BUFFER;
    cr_expect_eq(conns, (size_t)SLOW_CLIENTS);
    cr_expect_leq(held, bound, "a paused connection holds %zu bytes (bound %zu)", held, bound);
    cr_expect_leq(atomic_load(&max_queued), bound, "a queue reached %zu bytes (bound %zu)",
                  atomic_load(&max_queued), bound);
    for (int i = 0; i < SLOW_CLIENTS; i++)
        close(fds[i]);
    cr_assert(wait_for(server_empty, NULL, 20000));
}

/* ---- a port that fails for good ---- */

static char failure_log[256];
static iocp_atomic_int failure_logged;

static void capture_error(void *arg, int level, const char *message)
{
    (void)arg;
    if (level == IOCP_LOG_ERROR && !atomic_exchange(&failure_logged, 1))
        snprintf(failure_log, sizeof failure_log, "%s", message);
}

/* The io_uring rings and epoll sets open in the process, as a bit set (the
 * test harness may have epoll sets of its own). */
static void port_descriptors(bool *is_port, int max)
{
    for (int fd = 0; fd < max; fd++) {
        is_port[fd] = false;
        char path[64], link[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        ssize_t len = readlink(path, link, sizeof link - 1);
        if (len <= 0)
            continue;
        link[len] = '\0';
        is_port[fd] = strcmp(link, "anon_inode:[io_uring]") == 0 ||
                      strcmp(link, "anon_inode:[eventpoll]") == 0;
    }
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void nothing(struct iocp_task *t)
{
    (void)t;
}

struct waiter {
    int rc;
    iocp_atomic_bool done;
};

static void *wait_engine(void *arg)
{
    struct waiter *wt = arg;
    wt->rc = iocp_engine_wait(engine);
    atomic_store(&wt->done, true);
    return NULL;
}

static bool waiter_done(void *arg)
{
    return atomic_load(&((struct waiter *)arg)->done);
}

/*
 * A worker's port descriptor is replaced by /dev/null behind the engine's
 * back (what happens when a program starts with stdout closed: the ring or
 * epoll set becomes descriptor 1, and is later taken for stdout).  Its next
 * wait fails for good: the worker ends instead of spinning on the error,
 * the log hook names it and the reason, the engine stops, and the stop
 * reports the error.
 */
Test(server, a_port_that_fails_for_good_ends_its_worker_and_the_stop_reports_it)
{
    stop_and_audit();
    atomic_store(&failure_logged, 0);
    struct iocp_engine_config ecfg = {.workers = 2, .log = capture_error};
    cr_assert_eq(iocp_engine_new(&engine, &ecfg), 0);
    static bool before[1024], after[1024];
    port_descriptors(before, 1024);
    cr_assert_eq(iocp_engine_start(engine), 0);
    port_descriptors(after, 1024);
    int fds[2], n = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (after[fd] && !before[fd] && n < 2)
            fds[n++] = fd;
    cr_assert_eq(n, 2, "one port per worker");
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(devnull, 0);
    cr_assert_geq(dup2(devnull, fds[0]), 0);
    close(devnull);

    double cpu0 = cpu_seconds();
    struct waiter wt = {0};
    pthread_t t;
    pthread_create(&t, NULL, wait_engine, &wt);
    /* Wake both workers: each finishes the wait it was blocked in (which
     * holds the old descriptor) and waits again.  A worker that was not
     * blocked may have failed and stopped the engine already, and then
     * the post is refused. */
    struct iocp_task wake[2] = {{.fn = nothing}, {.fn = nothing}};
    for (unsigned i = 0; i < 2; i++) {
        int rc = iocp_engine_post(engine, i, &wake[i]);
        cr_assert(rc == 0 || rc == IOCP_ESTATE, "post: %s", iocp_strerror(rc));
    }
    bool stopped = wait_for(waiter_done, &wt, 30000);
    double cpu = cpu_seconds() - cpu0;
    cr_assert(stopped, "the engine did not stop (%.1f s of CPU meanwhile)", cpu);
    pthread_join(t, NULL);

    cr_expect_lt(wt.rc, 0, "the wait reports the failure, not %d", wt.rc);
    cr_expect_eq(iocp_engine_stop(engine), wt.rc, "and so does the stop");
    cr_expect_not(iocp_engine_running(engine));
    cr_expect(atomic_load(&failure_logged), "the log hook was told");
    cr_expect(strstr(failure_log, "worker ") && strstr(failure_log, iocp_strerror(wt.rc)),
              "the log names the worker and the reason: %s", failure_log);
    /* Generous: a worker spinning on its error for the seconds this took
     * would have used about as much CPU as wall-clock time. */
    cr_expect_lt(cpu, 5.0, "%.1f s of CPU while the engine stopped", cpu);
    /* The engine starts again on fresh ports. */
    cr_assert_eq(iocp_engine_start(engine), 0);
    cr_expect_eq(iocp_engine_stop(engine), 0);
}

/* ---- callbacks and stop from inside ---- */

static void stopping_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    /* Stop from inside a callback: must not deadlock or crash. */
    cr_expect_eq(iocp_engine_stop(iocp_conn_engine(c)), 0);
}

static const struct iocp_conn_handler stopping_handler = {.on_data = stopping_data,
                                                          .on_close = quiet_close};

Test(server, stop_may_be_called_from_inside_a_callback)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &stopping_handler};
    start_server(&cfg);
    int fd = tn_connect(port);
    cr_assert(tn_write_all(fd, "x", 1));
    cr_assert_eq(iocp_engine_wait(engine), 0);
    cr_expect_not(iocp_engine_running(engine));
    cr_expect(tn_wait_eof(fd, 5000));
    close(fd);
}

Test(server, a_missing_callback_fails_at_start_and_is_named)
{
    struct iocp_conn_handler no_data = {.on_close = quiet_close};
    struct iocp_server_config cfg = {.handler = &no_data};
    struct iocp_server *s = NULL;
    cr_expect_eq(iocp_server_new(&s, engine, &cfg), IOCP_EINVAL);
    cr_expect_null(s);
    cr_expect(strstr(iocp_error_detail(), "on_data") != NULL, "detail: %s", iocp_error_detail());
    struct iocp_conn_handler no_close = {.on_data = echo_data};
    cfg.handler = &no_close;
    cr_expect_eq(iocp_server_new(&s, engine, &cfg), IOCP_EINVAL);
    cr_expect(strstr(iocp_error_detail(), "on_close") != NULL, "detail: %s", iocp_error_detail());
    struct iocp_connect_config cc = {.host = "127.0.0.1", .port = 1, .handler = &no_close};
    cr_expect_eq(iocp_connect(engine, &cc), IOCP_EINVAL);
    cr_expect(strstr(iocp_error_detail(), "on_close") != NULL);
}

Test(server, a_port_in_use_is_reported_as_eaddrinuse)
{
    start_server(NULL);
    struct iocp_server_config cfg = {.host = "127.0.0.1", .port = port, .handler = &echo_handler};
    struct iocp_server *second;
    cr_assert_eq(iocp_server_new(&second, engine, &cfg), 0);
    cr_expect_eq(iocp_server_start(second), IOCP_EADDRINUSE);
    iocp_server_free(second);
}

Test(server, max_conns_refuses_the_next_and_accepts_again_after_a_close)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &echo_handler, .max_conns = 2};
    start_server(&cfg);
    int a = tn_connect(port), b = tn_connect(port);
    want_conns = 2;
    cr_assert(wait_for(server_has_want, NULL, 5000));
    int c = tn_connect(port);
    cr_expect(tn_wait_eof(c, 5000), "the third connection must be closed");
    close(c);
    close(a);
    cr_assert(tn_write_all(b, "ok", 2));
    char buf[2];
    cr_expect_eq(tn_read_full(b, buf, 2, 5000), 2);
    want_conns = 1;
    uint64_t end = tn_now_ms() + 5000;
    while (iocp_server_conns(server) != 1 && tn_now_ms() < end)
        usleep(1000);
    int d = tn_connect(port);
    cr_assert(tn_write_all(d, "hi", 2));
    cr_expect_eq(tn_read_full(d, buf, 2, 5000), 2, "a place freed up: the next one is served");
    close(b);
    close(d);
}

static iocp_atomic_u32 outliving_closed;
static void outliving_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
    atomic_fetch_add(&outliving_closed, 1);
}
static const struct iocp_conn_handler outliving_handler = {.on_data = echo_data,
                                                           .on_close = outliving_close};
static bool outliving_all_closed(void *arg)
{
    return atomic_load(&outliving_closed) == *(uint32_t *)arg;
}

Test(server, connections_outlive_a_freed_server_and_keep_working)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &outliving_handler};
    atomic_store(&outliving_closed, 0);
    start_server(&cfg);
    enum { N = 8 };
    int fds[N];
    for (int i = 0; i < N; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0);
    }
    want_conns = N;
    cr_assert(wait_for(server_has_want, NULL, 5000));
    iocp_server_stop(server);
    iocp_server_free(server);
    server = NULL;
    /* The accepted connections still echo, then end one by one. */
    for (int i = 0; i < N; i++) {
        char buf[5];
        cr_assert(tn_write_all(fds[i], "hello", 5));
        cr_expect_eq(tn_read_full(fds[i], buf, 5, 5000), 5, "connection %d still echoes", i);
        close(fds[i]);
    }
    uint32_t want = N;
    cr_expect(wait_for(outliving_all_closed, &want, 5000), "%u of %d closed",
              atomic_load(&outliving_closed), N);
}

Test(server, an_idle_connection_is_closed_after_the_idle_timeout)
{
    struct iocp_server_config cfg = {
        .host = "127.0.0.1", .handler = &echo_handler, .idle_timeout_ms = 200};
    start_server(&cfg);
    int fd = tn_connect(port);
    uint64_t t0 = tn_now_ms();
    cr_expect(tn_wait_eof(fd, 5000));
    cr_expect_geq(tn_now_ms() - t0, 150, "closed too early");
    close(fd);
}

/* ---- clients ---- */

struct client_state {
    iocp_atomic_int opened;
    iocp_atomic_int closed;
    iocp_atomic_int status;
    char got[64];
    iocp_atomic_size ngot;
};
static struct client_state cs;

static void client_open(struct iocp_conn *c)
{
    atomic_store(&cs.opened, 1);
    cr_expect_neq(iocp_conn_id(c), IOCP_CONN_ID_NONE);
    iocp_conn_send(c, "hello", 5);
}

static void client_data(struct iocp_conn *c, const void *data, size_t len)
{
    size_t n = atomic_load(&cs.ngot);
    if (n + len <= sizeof cs.got)
        memcpy(cs.got + n, data, len);
    atomic_store(&cs.ngot, n + len);
    if (n + len >= 5)
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static void client_close(struct iocp_conn *c, int status)
{
    (void)c;
    atomic_store(&cs.status, status);
    atomic_store(&cs.closed, 1);
}

static const struct iocp_conn_handler client_handler = {
    .on_open = client_open, .on_data = client_data, .on_close = client_close};

static bool client_done(void *arg)
{
    (void)arg;
    return atomic_load(&cs.closed) == 1;
}

static void reset_client(void)
{
    memset(&cs, 0, sizeof cs);
}

Test(server, a_client_connects_echoes_and_closes)
{
    start_server(NULL);
    reset_client();
    struct iocp_connect_config cc = {
        .host = "127.0.0.1", .port = port, .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 5000));
    cr_expect_eq(atomic_load(&cs.opened), 1);
    cr_expect_eq(atomic_load(&cs.status), 0);
    cr_expect_eq(atomic_load(&cs.ngot), 5);
    cr_expect_eq(memcmp(cs.got, "hello", 5), 0);
}

/* Small replies must leave at once, not wait for Nagle: every TCP
 * connection, accepted or made, has TCP_NODELAY (on Linux an accepted one
 * gets it from the listening socket rather than from a setsockopt of its
 * own). */
static iocp_atomic_int nodelay_seen[2]; /* [0] accepted, [1] made; -1 unset */
static void nodelay_record(struct iocp_conn *c, int which)
{
    int one = 0;
    socklen_t len = sizeof one;
    int rc = getsockopt(iocp_conn_socket(c), IPPROTO_TCP, TCP_NODELAY, &one, &len);
    atomic_store(&nodelay_seen[which], rc == 0 ? one != 0 : 0);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}
static void nodelay_accepted_open(struct iocp_conn *c)
{
    nodelay_record(c, 0);
}
static void nodelay_made_open(struct iocp_conn *c)
{
    nodelay_record(c, 1);
}
static const struct iocp_conn_handler nodelay_server_handler = {
    .on_open = nodelay_accepted_open, .on_data = echo_data, .on_close = quiet_close};
static const struct iocp_conn_handler nodelay_client_handler = {
    .on_open = nodelay_made_open, .on_data = echo_data, .on_close = quiet_close};
static bool nodelay_both(void *arg)
{
    (void)arg;
    return atomic_load(&nodelay_seen[0]) >= 0 && atomic_load(&nodelay_seen[1]) >= 0;
}

Test(server, accepted_and_made_tcp_connections_have_nodelay)
{
    atomic_store(&nodelay_seen[0], -1);
    atomic_store(&nodelay_seen[1], -1);
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &nodelay_server_handler};
    start_server(&cfg);
    struct iocp_connect_config cc = {
        .host = "127.0.0.1", .port = port, .worker = -1, .handler = &nodelay_client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(nodelay_both, NULL, 5000));
    cr_expect_eq(atomic_load(&nodelay_seen[0]), 1, "the accepted connection lacks TCP_NODELAY");
    cr_expect_eq(atomic_load(&nodelay_seen[1]), 1, "the made connection lacks TCP_NODELAY");
    cr_expect(wait_for(server_empty, NULL, 5000));
}

Test(server, a_client_resolves_a_name_and_falls_back_between_stacks)
{
    /* The server listens on IPv4 only; "localhost" may resolve to ::1
     * first, which is refused, and the client must go on to 127.0.0.1. */
    start_server(NULL);
    reset_client();
    struct iocp_connect_config cc = {
        .host = "localhost", .port = port, .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 10000));
    cr_expect_eq(atomic_load(&cs.status), 0, "%s", iocp_strerror(atomic_load(&cs.status)));
    cr_expect_eq(atomic_load(&cs.ngot), 5);
}

Test(server, a_client_to_a_closed_port_gets_econnrefused)
{
    reset_client();
    struct iocp_connect_config cc = {
        .host = "127.0.0.1", .port = tn_closed_port(), .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 5000));
    cr_expect_eq(atomic_load(&cs.opened), 0, "on_open must not run");
    cr_expect_eq(atomic_load(&cs.status), IOCP_ECONNREFUSED, "%s",
                 iocp_err_name(atomic_load(&cs.status)));
}

Test(server, a_client_times_out_against_a_full_backlog)
{
    /* A listener that never accepts, with its backlog filled: further SYNs
     * are dropped, so a connect hangs until its time-out. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = tn_loopback(0);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 0), 0);
    getsockname(lfd, (struct sockaddr *)&sa, &len);
    uint16_t full = ntohs(sa.sin_port);
    int fillers[8];
    for (int i = 0; i < 8; i++) {
        fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fillers[i], (struct sockaddr *)&sa, sizeof sa);
    }
    usleep(100 * 1000);
    reset_client();
    struct iocp_connect_config cc = {.host = "127.0.0.1",
                                     .port = full,
                                     .worker = -1,
                                     .timeout_ms = 300,
                                     .handler = &client_handler};
    uint64_t t0 = tn_now_ms();
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 10000));
    cr_expect_eq(atomic_load(&cs.status), IOCP_ETIMEDOUT, "%s",
                 iocp_err_name(atomic_load(&cs.status)));
    cr_expect_geq(tn_now_ms() - t0, 250);
    for (int i = 0; i < 8; i++)
        close(fillers[i]);
    close(lfd);
}

Test(server, an_unknown_name_fails_with_enoname_without_blocking_a_worker)
{
    start_server(NULL);
    reset_client();
    struct iocp_connect_config cc = {
        .host = "no-such-host.invalid", .port = 9, .worker = 0, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    /* Meanwhile the same worker keeps serving. */
    struct ec_result r = ec_run(port, 4, 1024, 5000);
    cr_expect_eq(r.ok, 4);
    cr_assert(wait_for(client_done, NULL, 30000));
    int st = atomic_load(&cs.status);
    cr_expect(st == IOCP_ENONAME || st == IOCP_EAITEMP || st == IOCP_EAINOADDR, "got %s",
              iocp_err_name(st));
}

/* ---- streams: pipes and files through the engine ---- */

struct stream_state {
    iocp_atomic_int writer_open, reader_eof, closes;
    iocp_atomic_size got;
    unsigned char data[256 * 1024];
};
static struct stream_state ss;
static size_t stream_total;

static void writer_open(struct iocp_conn *c)
{
    /* More than a pipe holds (64 KiB): the write queue must drain in turns. */
    const unsigned char *block = ec_block();
    cr_expect_eq(iocp_conn_send(c, block, stream_total), 0);
    cr_expect_eq(iocp_conn_shutdown(c), 0);
    atomic_store(&ss.writer_open, 1);
}

static void reader_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    size_t n = atomic_load(&ss.got);
    if (n + len <= sizeof ss.data)
        memcpy(ss.data + n, data, len);
    atomic_store(&ss.got, n + len);
}

static void reader_eof(struct iocp_conn *c)
{
    atomic_store(&ss.reader_eof, 1);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static void stream_close(struct iocp_conn *c, int status)
{
    (void)c;
    cr_expect_eq(status, 0, "%s", iocp_strerror(status));
    atomic_fetch_add(&ss.closes, 1);
}

static const struct iocp_conn_handler writer_handler = {
    .on_open = writer_open, .on_data = reader_data, .on_close = stream_close};
static const struct iocp_conn_handler reader_handler = {
    .on_data = reader_data, .on_eof = reader_eof, .on_close = stream_close};

static bool two_closed(void *arg)
{
    (void)arg;
    return atomic_load(&ss.closes) == 2;
}

Test(server, a_pipe_carries_a_stream_through_the_engine_and_ends_in_eof)
{
    memset(&ss, 0, sizeof ss);
    stream_total = sizeof ss.data;
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    struct iocp_pipe_config rd = {
        .handle = fds[0], .worker = 0, .readable = true, .handler = &reader_handler};
    struct iocp_pipe_config wr = {
        .handle = fds[1], .worker = 1, .readable = false, .handler = &writer_handler};
    cr_assert_eq(iocp_pipe_open(engine, &rd), 0);
    cr_assert_eq(iocp_pipe_open(engine, &wr), 0);
    cr_assert(wait_for(two_closed, NULL, 10000), "closes: %d", atomic_load(&ss.closes));
    cr_expect_eq(atomic_load(&ss.reader_eof), 1);
    cr_expect_eq(atomic_load(&ss.got), stream_total);
    cr_expect_eq(memcmp(ss.data, ec_block(), stream_total), 0);
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.walked, 0, "streams are not network connections");
}

static bool one_closed(void *arg)
{
    (void)arg;
    return atomic_load(&ss.closes) == 1;
}

Test(server, a_regular_file_is_read_to_its_end)
{
    memset(&ss, 0, sizeof ss);
    char path[] = "/tmp/iocp-test-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    size_t total = 200000;
    cr_assert(tn_write_all(fd, ec_block(), total));
    lseek(fd, 0, SEEK_SET);
    struct iocp_pipe_config rd = {
        .handle = fd, .worker = -1, .readable = true, .handler = &reader_handler};
    cr_assert_eq(iocp_pipe_open(engine, &rd), 0);
    cr_assert(wait_for(one_closed, NULL, 10000));
    cr_expect_eq(atomic_load(&ss.got), total);
    cr_expect_eq(memcmp(ss.data, ec_block(), total), 0);
}

/* ---- address families and close modes ---- */

static int connect6(uint16_t p)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_port = htons(p),
                              .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static bool echo_once(int fd, const char *msg)
{
    size_t n = strlen(msg);
    char buf[64];
    return fd >= 0 && tn_write_all(fd, msg, n) && tn_read_full(fd, buf, n, 5000) == n &&
           memcmp(buf, msg, n) == 0;
}

Test(server, with_no_address_one_server_serves_ipv4_and_ipv6_clients)
{
    struct iocp_server_config cfg = {.handler = &echo_handler};
    start_server(&cfg);
    int fd4 = tn_connect(port);
    int fd6 = connect6(port);
    if (fd6 < 0 && errno == EADDRNOTAVAIL)
        cr_skip_test("no IPv6 loopback on this machine");
    cr_expect(echo_once(fd4, "over ipv4"));
    cr_expect(echo_once(fd6, "over ipv6"));
    close(fd4);
    close(fd6);
}

Test(server, an_ipv6_only_server_refuses_ipv4_clients)
{
    struct iocp_server_config cfg = {.host = "::1", .handler = &echo_handler};
    start_server(&cfg);
    int fd6 = connect6(port);
    cr_expect(echo_once(fd6, "v6"));
    cr_expect_lt(tn_connect(port), 0, "nothing listens on 127.0.0.1 at that port");
    close(fd6);
}

static void abort_on_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static const struct iocp_conn_handler abort_handler = {.on_data = abort_on_data,
                                                       .on_close = quiet_close};

Test(server, an_abortive_close_resets_the_connection)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &abort_handler};
    start_server(&cfg);
    int fd = tn_connect(port);
    cr_assert(tn_write_all(fd, "x", 1));
    char buf[16];
    ssize_t n;
    uint64_t end = tn_now_ms() + 5000;
    do {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        poll(&pfd, 1, 100);
        n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    } while (n < 0 && errno == EAGAIN && tn_now_ms() < end);
    cr_expect_eq(n, -1, "no orderly EOF: got %zd", n);
    cr_expect_eq(errno, ECONNRESET);
    close(fd);
}

static void shut_on_data(struct iocp_conn *c, const void *data, size_t len)
{
    /* Answer, then half-close: the client reads the answer and EOF, and can
     * still send, which the server keeps reading. */
    iocp_conn_send(c, data, len);
    iocp_conn_shutdown(c);
    cr_expect_eq(iocp_conn_send(c, "late", 4), IOCP_ESHUTDOWN);
}

static iocp_atomic_size after_shutdown;
static void count_eof(struct iocp_conn *c)
{
    atomic_store(&after_shutdown, iocp_conn_bytes_in(c));
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static const struct iocp_conn_handler shut_handler = {
    .on_data = shut_on_data, .on_eof = count_eof, .on_close = quiet_close};

Test(server, a_half_close_sends_eof_and_keeps_reading)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &shut_handler};
    start_server(&cfg);
    atomic_store(&after_shutdown, 0);
    int fd = tn_connect(port);
    cr_assert(tn_write_all(fd, "ab", 2));
    char buf[8];
    cr_expect_eq(tn_read_full(fd, buf, 2, 5000), 2);
    cr_expect(tn_wait_eof(fd, 5000), "the server's half-close arrives as EOF");
    cr_expect(tn_write_all(fd, "more", 4), "the client may still send");
    shutdown(fd, SHUT_WR);
    uint64_t end = tn_now_ms() + 5000;
    while (atomic_load(&after_shutdown) == 0 && tn_now_ms() < end)
        usleep(1000);
    cr_expect_geq(atomic_load(&after_shutdown), 6, "the server read past its own half-close");
    close(fd);
}

/* ---- splice: a relay that forwards inside the kernel ---- */

struct pair {
    struct iocp_conn *a, *b; /* client side, target side; NULL once closed */
    int eofs;
};

static uint16_t echo_port;
static iocp_atomic_int splice_refused;

static void pair_eof(struct iocp_conn *c)
{
    struct pair *p = iocp_conn_data(c);
    if (++p->eofs == 2) {
        /* Both directions ended: the relay is done with the pair. */
        if (p->a)
            iocp_conn_close(p->a, IOCP_CLOSE_GRACEFUL);
        if (p->b)
            iocp_conn_close(p->b, IOCP_CLOSE_GRACEFUL);
    }
}

static void pair_close(struct iocp_conn *c, int status)
{
    struct pair *p = iocp_conn_data(c);
    struct iocp_conn *other = p->a == c ? p->b : p->a;
    if (p->a == c)
        p->a = NULL;
    else
        p->b = NULL;
    if (other)
        iocp_conn_close(other, status ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
    else
        free(p);
}

static iocp_atomic_size copied;

static void pair_data(struct iocp_conn *c, const void *data, size_t len)
{
    atomic_fetch_add(&copied, len);
    /* Only before the splice is in place (bytes that raced it): copy. */
    struct pair *p = iocp_conn_data(c);
    struct iocp_conn *other = p->a == c ? p->b : p->a;
    if (!other || iocp_conn_send(other, data, len) < 0)
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static void target_open(struct iocp_conn *b)
{
    struct pair *p = iocp_conn_data(b);
    p->b = b;
    if (!p->a) {
        iocp_conn_close(b, IOCP_CLOSE_ABORT);
        return;
    }
    int r1 = iocp_conn_splice(p->a, b), r2 = iocp_conn_splice(b, p->a);
    if (r1 < 0 || r2 < 0)
        atomic_fetch_add(&splice_refused, 1);
}

static const struct iocp_conn_handler target_handler = {
    .on_open = target_open, .on_data = pair_data, .on_eof = pair_eof, .on_close = pair_close};

static void client_side_open(struct iocp_conn *a)
{
    struct pair *p = calloc(1, sizeof *p);
    p->a = a;
    iocp_conn_set_data(a, p);
    iocp_conn_pause(a); /* nothing to forward to yet */
    struct iocp_connect_config cc = {.host = "127.0.0.1",
                                     .port = echo_port,
                                     .worker = (int)iocp_conn_worker(a),
                                     .handler = &target_handler,
                                     .data = p};
    if (iocp_connect(iocp_conn_engine(a), &cc) < 0) {
        p->a = NULL;
        free(p);
        iocp_conn_set_data(a, NULL);
        iocp_conn_close(a, IOCP_CLOSE_ABORT);
    }
}

static void client_side_close(struct iocp_conn *c, int status)
{
    if (iocp_conn_data(c))
        pair_close(c, status);
}

static const struct iocp_conn_handler relay_handler = {.on_open = client_side_open,
                                                       .on_data = pair_data,
                                                       .on_eof = pair_eof,
                                                       .on_close = client_side_close};

static bool every_connection_closed(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.closed == st.accepted + st.connected && st.online == 0;
}

Test(server, a_spliced_relay_forwards_both_ways_byte_exact_with_half_close)
{
    start_server(NULL);
    echo_port = port;
    struct iocp_server *echo_server = server;
    struct iocp_server_config rc = {.host = "127.0.0.1", .handler = &relay_handler};
    cr_assert_eq(iocp_server_new(&server, engine, &rc), 0);
    cr_assert_eq(iocp_server_start(server), 0);
    uint16_t relay_port = iocp_server_port(server);
    atomic_store(&splice_refused, 0);
    atomic_store(&copied, 0);

    struct ec_result r = ec_run(relay_port, 20, (4u << 20) / SCALE, 60000);
    cr_expect_eq(r.ok, 20, "%d ok, %d bad, %d pending", r.ok, r.bad, r.pending);
    cr_expect_eq(atomic_load(&splice_refused), 0, "the backend must splice");
    /* The relay's target legs and the echo server's connections close after
     * the relay's client legs, and each counts its last bytes before its
     * close: wait until every connection of the engine has closed. */
    cr_expect(wait_for(every_connection_closed, NULL, 10000));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    /* Every byte is received three times (relay from the client, echo from
     * the relay, relay from the echo) and sent three times. */
    uint64_t moved = (uint64_t)20 * ((4u << 20) / SCALE);
    cr_expect_eq(st.bytes_in, 3 * moved, "bytes in %llu", (unsigned long long)st.bytes_in);
    cr_expect_eq(st.bytes_out, 3 * moved, "bytes out %llu", (unsigned long long)st.bytes_out);
    cr_expect_eq(atomic_load(&copied), 0, "%zu bytes went through user space",
                 atomic_load(&copied));
    iocp_server_stop(echo_server);
    iocp_server_free(echo_server);
}
