/* SPDX-License-Identifier: MIT */
/*
 * The engine, servers and clients on the IOCP backend, where every worker
 * waits on one shared port: byte-exact echo, connect/close churn, stop under
 * load, restarts, injected failures, idle time-outs armed across threads,
 * callbacks of one worker never overlapping, clients, pipes, and the stop
 * audit after every test (each request submitted completed, each pooled
 * connection came back).
 */
#define FD_SETSIZE 1024

#include <stdlib.h>

#include <criterion/criterion.h>

#include "core.h"
#include "fault.h"
#include "sockutil_win.h"
#include "testnet_win.h"

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
    cr_assert_eq(iocp_engine_new(&engine, &cfg), 0);
    int rc = iocp_engine_start(engine);
    cr_assert_eq(rc, 0, "start: %s", iocp_strerror(rc));
    cr_assert_str_eq(iocp_engine_backend(engine), "iocp");
}

static void start_server(const struct iocp_server_config *cfg)
{
    struct iocp_server_config def = {.host = "127.0.0.1", .handler = &echo_handler};
    if (!cfg)
        cfg = &def;
    cr_assert_eq(iocp_server_new(&server, engine, cfg), 0);
    int rc = iocp_server_start(server);
    cr_assert_eq(rc, 0, "server start: %s (%s)", iocp_strerror(rc), iocp_error_detail());
    port = iocp_server_port(server);
    cr_assert_neq(port, 0);
}

static void stop_and_audit(void)
{
    iocp__fault_configure(NULL);
    if (!engine)
        return;
    if (server)
        iocp_server_stop(server);
    iocp_engine_stop(engine);
    char report[512];
    int bad = iocp_engine_audit(engine, report, sizeof report);
    iocp_server_free(server);
    server = NULL;
    iocp_engine_free(engine);
    engine = NULL;
    cr_assert_eq(bad, 0, "audit: %s", report);
}

static void setup(void)
{
    tw_init();
    start_engine(4);
}

TestSuite(engine_win, .init = setup, .fini = stop_and_audit, .timeout = 180);

static bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = tw_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (tw_now_ms() > end)
            return false;
        Sleep(1);
    }
    return true;
}

static bool server_empty(void *arg)
{
    (void)arg;
    return iocp_server_conns(server) == 0;
}

static uint64_t want_online;
static bool online_has_want(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.online >= want_online;
}

/* ---- a many-connection echo client: select(), non-blocking ---- */

struct ew_conn {
    SOCKET s;
    size_t sent, recvd;
    bool shut, done;
};

struct ew_result {
    int ok, bad, pending;
};

/*
 * The 1 MiB pattern the streams are cut from, made once by whichever thread
 * asks first.  Callbacks on several workers may ask at the same moment (the
 * on_open of clients on different workers, when no test before them made
 * it): with a plain "if (!block)" one of them could see the pointer before
 * the pattern was written and send zeros, which the check then reported as
 * wrong bytes from the transport.
 */
static unsigned char *ew_mem;

static BOOL CALLBACK ew_fill(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    unsigned char *block = malloc(1u << 20);
    if (!block)
        return FALSE;
    tw_pattern(block, 1u << 20, 12345, 0);
    ew_mem = block;
    return TRUE;
}

static const unsigned char *ew_block(void)
{
    static INIT_ONCE once = INIT_ONCE_STATIC_INIT;
    if (!InitOnceExecuteOnce(&once, ew_fill, NULL, NULL))
        abort();
    return ew_mem;
}

/* Connection i's stream: the block from offset i * 7919, wrapping. */
static size_t ew_span(size_t i, size_t off, size_t want, const unsigned char **p)
{
    size_t pos = (off + i * 7919u) % (1u << 20);
    size_t n = (1u << 20) - pos;
    *p = ew_block() + pos;
    return n < want ? n : want;
}

static struct ew_result ew_run(uint16_t to, int n, size_t each, unsigned timeout_ms)
{
    struct ew_result r = {0, 0, 0};
    struct ew_conn *c = calloc((size_t)n, sizeof *c);
    for (int i = 0; i < n; i++) {
        c[i].s = tw_connect(to);
        if (c[i].s == INVALID_SOCKET) {
            c[i].done = true;
            r.bad++;
            continue;
        }
        tw_set_nonblock(c[i].s, true);
    }
    unsigned char buf[16384];
    uint64_t end = tw_now_ms() + timeout_ms;
    for (;;) {
        int live = 0;
        /* select() takes at most FD_SETSIZE sockets: serve in slices. */
        for (int base = 0; base < n; base += FD_SETSIZE / 2) {
            fd_set rd, wr;
            FD_ZERO(&rd);
            FD_ZERO(&wr);
            int in_set = 0;
            for (int i = base; i < n && i < base + FD_SETSIZE / 2; i++) {
                if (c[i].done)
                    continue;
                FD_SET(c[i].s, &rd);
                if (!c[i].shut)
                    FD_SET(c[i].s, &wr);
                in_set++;
            }
            if (!in_set)
                continue;
            live += in_set;
            struct timeval tv = {0, 10000};
            if (select(0, &rd, &wr, NULL, &tv) <= 0)
                continue;
            for (int i = base; i < n && i < base + FD_SETSIZE / 2; i++) {
                struct ew_conn *k = &c[i];
                if (k->done)
                    continue;
                if (!k->shut && FD_ISSET(k->s, &wr)) {
                    const unsigned char *p;
                    size_t want = ew_span((size_t)i, k->sent, each - k->sent, &p);
                    if (want > 65536)
                        want = 65536;
                    int put = want ? send(k->s, (const char *)p, (int)want, 0) : 0;
                    if (put > 0)
                        k->sent += (size_t)put;
                    if (k->sent == each) {
                        shutdown(k->s, SD_SEND);
                        k->shut = true;
                    }
                }
                if (FD_ISSET(k->s, &rd)) {
                    int got = recv(k->s, (char *)buf, sizeof buf, 0);
                    if (got > 0) {
                        size_t at = 0;
                        bool same = true;
                        while (at < (size_t)got && same) {
                            const unsigned char *p;
                            size_t m = ew_span((size_t)i, k->recvd + at, (size_t)got - at, &p);
                            same = memcmp(buf + at, p, m) == 0;
                            at += m;
                        }
                        k->recvd += (size_t)got;
                        if (!same || k->recvd > each) {
                            k->done = true;
                            r.bad++;
                            closesocket(k->s);
                        }
                    } else if (got == 0 || WSAGetLastError() != WSAEWOULDBLOCK) {
                        k->done = true;
                        if (got == 0 && k->recvd == each)
                            r.ok++;
                        else
                            r.bad++;
                        closesocket(k->s);
                    }
                }
            }
        }
        if (!live || tw_now_ms() > end)
            break;
    }
    for (int i = 0; i < n; i++)
        if (!c[i].done) {
            r.pending++;
            closesocket(c[i].s);
        }
    free(c);
    return r;
}

/* ---- echo at scale ---- */

Test(engine_win, two_hundred_clients_each_echo_256_kib_byte_exact)
{
    start_server(NULL);
    struct ew_result r = ew_run(port, 200, 256 * 1024, 120000);
    cr_expect_eq(r.ok, 200, "%d ok, %d bad, %d unfinished", r.ok, r.bad, r.pending);
    cr_expect(wait_for(server_empty, NULL, 10000), "connections left: %u",
              iocp_server_conns(server));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.accepted, 200u);
    cr_expect_eq(st.bytes_in, (uint64_t)200 * 256 * 1024);
    cr_expect_eq(st.bytes_out, st.bytes_in);
    unsigned busy = 0;
    for (unsigned i = 0; i < st.workers; i++)
        busy += st.worker[i].completions > 0;
    cr_expect_gt(busy, 1u, "the connections spread over the workers");
}

struct churn {
    uint16_t port;
    int cycles, failures;
};

static DWORD WINAPI churn_thread(void *arg)
{
    struct churn *ch = arg;
    for (int i = 0; i < ch->cycles; i++) {
        SOCKET s = tw_connect(ch->port);
        if (s == INVALID_SOCKET) {
            ch->failures++;
            continue;
        }
        if (i % 3 == 0) {
            char b[4];
            if (!tw_write_all(s, "abcd", 4) || tw_read_full(s, b, 4, 5000) != 4)
                ch->failures++;
        }
        if (i % 2) {
            struct linger lg = {1, 0};
            setsockopt(s, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
        }
        closesocket(s);
    }
    return 0;
}

static uint64_t want_closed;
static bool all_closed(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.closed >= want_closed && iocp_server_conns(server) == 0;
}

Test(engine_win, four_thousand_connect_close_cycles_balance_the_books)
{
    start_server(NULL);
    enum { THREADS = 4, EACH = 1000 };
    struct churn ch[THREADS];
    HANDLE t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ch[i] = (struct churn){port, EACH, 0};
        t[i] = CreateThread(NULL, 0, churn_thread, &ch[i], 0, NULL);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        WaitForSingleObject(t[i], INFINITE);
        CloseHandle(t[i]);
        failures += ch[i].failures;
    }
    cr_expect_eq(failures, 0);
    want_closed = THREADS * EACH;
    cr_expect(wait_for(all_closed, NULL, 30000), "%u connections never closed",
              iocp_server_conns(server));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.accepted, (uint64_t)THREADS * EACH);
    cr_expect_eq(st.closed, st.accepted);
    cr_expect_eq(st.online, 0u);
    cr_expect_eq(st.walked, 0u);
    cr_expect_eq(st.accept_errors, 0u);
    cr_expect_geq(st.pending_accepts, 4u, "the accept pool stays between its marks");
}

Test(engine_win, stop_with_live_connections_returns_promptly_and_every_client_sees_the_end)
{
    start_server(NULL);
    enum { N = 300 };
    static SOCKET s[N];
    for (int i = 0; i < N; i++) {
        s[i] = tw_connect(port);
        cr_assert_neq(s[i], INVALID_SOCKET);
    }
    /* The server counts a connection when it reserves its place, a moment
     * before it is online: wait for the registry. */
    want_online = N;
    cr_assert(wait_for(online_has_want, NULL, 10000), "only %u accepted",
              iocp_server_conns(server));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, true);
    cr_expect_eq(st.online, N);
    cr_expect_eq(st.walked, N, "the walk agrees with the counter");

    uint64_t t0 = tw_now_ms();
    iocp_server_stop(server);
    iocp_engine_stop(engine);
    uint64_t took = tw_now_ms() - t0;
    cr_expect_lt(took, 2000, "stop took %llu ms", (unsigned long long)took);
    cr_expect_not(iocp_engine_running(engine));
    int ended = 0;
    for (int i = 0; i < N; i++) {
        if (tw_wait_eof(s[i], 2000))
            ended++;
        closesocket(s[i]);
    }
    cr_expect_eq(ended, N);
}

/* Streams in flight while the engine stops: nothing may hang or leak. */
Test(engine_win, stop_under_load_leaves_nothing_behind)
{
    start_server(NULL);
    enum { N = 64 };
    SOCKET s[N];
    unsigned char *chunk = malloc(65536);
    tw_pattern(chunk, 65536, 9, 0);
    for (int i = 0; i < N; i++) {
        s[i] = tw_connect(port);
        cr_assert_neq(s[i], INVALID_SOCKET);
        tw_set_nonblock(s[i], true);
    }
    /* Keep every connection busy, then stop in the middle of it. */
    for (int round = 0; round < 20; round++)
        for (int i = 0; i < N; i++) {
            send(s[i], (const char *)chunk, 65536, 0);
            char sink[65536];
            recv(s[i], sink, sizeof sink, 0);
        }
    iocp_server_stop(server);
    uint64_t t0 = tw_now_ms();
    iocp_engine_stop(engine);
    cr_expect_lt(tw_now_ms() - t0, 3000);
    for (int i = 0; i < N; i++)
        closesocket(s[i]);
    free(chunk);
}

Test(engine_win, start_and_stop_thirty_times_in_one_process)
{
    stop_and_audit();
    for (int round = 0; round < 30; round++) {
        start_engine(1 + round % 4);
        start_server(NULL);
        SOCKET s = tw_connect(port);
        cr_assert_neq(s, INVALID_SOCKET, "round %d", round);
        char buf[5];
        cr_assert(tw_write_all(s, "ping!", 5));
        cr_assert_eq(tw_read_full(s, buf, 5, 5000), 5u, "round %d: no echo", round);
        cr_assert_eq(memcmp(buf, "ping!", 5), 0);
        closesocket(s);
        stop_and_audit();
    }
}

Test(engine_win, the_same_engine_starts_again_after_a_stop)
{
    for (int round = 0; round < 10; round++) {
        if (round) {
            cr_assert_eq(iocp_engine_start(engine), 0, "round %d", round);
        }
        start_server(NULL);
        struct ew_result r = ew_run(port, 8, 4096, 10000);
        cr_assert_eq(r.ok, 8, "round %d", round);
        iocp_server_stop(server);
        iocp_server_free(server);
        server = NULL;
        cr_assert_eq(iocp_engine_stop(engine), 0);
        char report[256];
        cr_assert_eq(iocp_engine_audit(engine, report, sizeof report), 0, "%s", report);
    }
    cr_assert_eq(iocp_engine_start(engine), 0);
}

/* ---- rare paths ---- */

Test(engine_win, injected_failures_on_every_operation_leave_the_server_serving)
{
    start_server(NULL);
    cr_assert_eq(iocp__fault_configure("accept=7,send=p0.02,recv=p0.02,submit=p0.01,seed=7"), 0);
    ew_run(port, 100, 64 * 1024, 60000);
    iocp__fault_configure(NULL);
    struct ew_result r = ew_run(port, 20, 64 * 1024, 30000);
    cr_expect_eq(r.ok, 20, "after the faults: %d ok, %d bad, %d unfinished", r.ok, r.bad,
                 r.pending);
    cr_expect(wait_for(server_empty, NULL, 10000));
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    cr_expect_gt(st.accept_errors, 0u, "some accepts failed");
}

Test(engine_win, failed_posts_are_retried_and_lose_nothing)
{
    cr_assert_eq(iocp__fault_configure("post=3"), 0);
    start_server(NULL);
    struct ew_result r = ew_run(port, 20, 16 * 1024, 30000);
    cr_expect_eq(r.ok, 20);
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    cr_expect_gt(st.failed_submits, 0u, "posts did fail");
}

static uint64_t want_accepted;
static bool accepted_enough(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.accepted >= want_accepted;
}

static bool backed_off(void *arg)
{
    (void)arg;
    struct iocp_stats st;
    iocp_engine_stats(engine, &st, false);
    return st.accept_backoffs > 0;
}

Test(engine_win, running_out_of_sockets_pauses_accepting_and_resumes)
{
    /* AcceptEx needs a socket made in advance: when none can be made
     * (WSAEMFILE, WSAENOBUFS), the acceptor backs off on a timer instead of
     * spinning or giving up, and resumes once sockets can be made again. */
    struct iocp_server_config cfg = {
        .host = "127.0.0.1", .handler = &echo_handler, .accept_low = 1, .accept_high = 2};
    start_server(&cfg);
    cr_assert_eq(iocp__fault_configure("socket=p1"), 0);
    enum { N = 12 };
    SOCKET s[N];
    for (int i = 0; i < N; i++) {
        s[i] = tw_connect(port);
        cr_assert_neq(s[i], INVALID_SOCKET, "the backlog takes them");
    }
    cr_expect(wait_for(backed_off, NULL, 5000), "no back-off");
    iocp__fault_configure(NULL);
    want_accepted = N;
    cr_expect(wait_for(accepted_enough, NULL, 5000), "accepting did not resume");
    for (int i = 0; i < N; i++) {
        char b[3];
        cr_expect(tw_write_all(s[i], "abc", 3));
        cr_expect_eq(tw_read_full(s[i], b, 3, 5000), 3u, "connection %d not served", i);
        closesocket(s[i]);
    }
}

/* ---- the shared port keeps a worker's callbacks apart ---- */

static iocp_atomic_int inside[8];
static iocp_atomic_int overlaps, wrong_worker;

static void exclusive_data(struct iocp_conn *c, const void *data, size_t len)
{
    unsigned w = iocp_conn_worker(c);
    if (atomic_fetch_add(&inside[w], 1) != 0)
        atomic_fetch_add(&overlaps, 1);
    struct iocp_worker *cur = iocp__worker_current();
    if (!cur || cur->index != w)
        atomic_fetch_add(&wrong_worker, 1);
    /* Linger, so that another thread holding this worker's next completion
     * would run into us. */
    for (volatile int spin = 0; spin < 20000; spin++)
        ;
    echo_data(c, data, len);
    atomic_fetch_sub(&inside[w], 1);
}

static const struct iocp_conn_handler exclusive_handler = {.on_data = exclusive_data,
                                                           .on_close = quiet_close};

Test(engine_win, callbacks_of_one_worker_never_run_at_the_same_time)
{
    memset(inside, 0, sizeof inside);
    atomic_store(&overlaps, 0);
    atomic_store(&wrong_worker, 0);
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &exclusive_handler};
    start_server(&cfg);
    struct ew_result r = ew_run(port, 64, 128 * 1024, 60000);
    cr_expect_eq(r.ok, 64);
    cr_expect_eq(atomic_load(&overlaps), 0, "two threads ran one worker's callbacks at once");
    cr_expect_eq(atomic_load(&wrong_worker), 0, "current worker is the connection's");
}

/* ---- time-outs: timers armed by whichever thread dispatched ---- */

Test(engine_win, idle_connections_are_closed_after_the_idle_timeout)
{
    struct iocp_server_config cfg = {
        .host = "127.0.0.1", .handler = &echo_handler, .idle_timeout_ms = 200};
    start_server(&cfg);
    enum { N = 16 };
    SOCKET s[N];
    for (int i = 0; i < N; i++)
        s[i] = tw_connect(port);
    uint64_t t0 = tw_now_ms();
    for (int i = 0; i < N; i++) {
        cr_expect(tw_wait_eof(s[i], 5000), "connection %d stayed open", i);
        closesocket(s[i]);
    }
    uint64_t took = tw_now_ms() - t0;
    cr_expect_geq(took, 150, "closed too early");
    cr_expect_lt(took, 2000, "closed late: %llu ms", (unsigned long long)took);
}

/* ---- stop from inside, errors at start ---- */

static void stopping_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    cr_expect_eq(iocp_engine_stop(iocp_conn_engine(c)), 0);
}

static const struct iocp_conn_handler stopping_handler = {.on_data = stopping_data,
                                                          .on_close = quiet_close};

Test(engine_win, stop_may_be_called_from_inside_a_callback)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &stopping_handler};
    start_server(&cfg);
    SOCKET s = tw_connect(port);
    cr_assert(tw_write_all(s, "x", 1));
    cr_expect(tw_wait_eof(s, 5000));
    cr_expect_eq(iocp_engine_wait(engine), 0);
    cr_expect_not(iocp_engine_running(engine));
    closesocket(s);
}

Test(engine_win, a_port_in_use_is_reported_as_eaddrinuse)
{
    start_server(NULL);
    struct iocp_server_config cfg = {.host = "127.0.0.1", .port = port, .handler = &echo_handler};
    struct iocp_server *second;
    cr_assert_eq(iocp_server_new(&second, engine, &cfg), 0);
    int rc = iocp_server_start(second);
    cr_expect(rc == IOCP_EADDRINUSE || rc == IOCP_EACCES, "got %s", iocp_err_name(rc));
    iocp_server_free(second);
}

static void abort_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static const struct iocp_conn_handler abort_handler = {.on_data = abort_data,
                                                       .on_close = quiet_close};

Test(engine_win, an_abortive_close_resets_the_connection)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &abort_handler};
    start_server(&cfg);
    SOCKET s = tw_connect(port);
    cr_assert(tw_write_all(s, "x", 1));
    cr_assert(tw_readable(s, 5000));
    char b[4];
    int n = recv(s, b, sizeof b, 0);
    if (iocp__running_on_wine() && n == 0) {
        /* Wine 8 ends a socket closed with a zero linger in an orderly way
         * (measured: no RST reaches the peer), so only the end is checked. */
        closesocket(s);
        return;
    }
    cr_expect_eq(n, SOCKET_ERROR, "a reset, not an orderly EOF");
    cr_expect_eq(WSAGetLastError(), WSAECONNRESET);
    closesocket(s);
}

/* A graceful close after a large reply: every byte reaches the peer before
 * the socket closes, then an orderly EOF. */
static void reply_and_close(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    static unsigned char big[1 << 20];
    tw_pattern(big, sizeof big, 77, 0);
    iocp_conn_send(c, big, sizeof big);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static const struct iocp_conn_handler reply_handler = {.on_data = reply_and_close,
                                                       .on_close = quiet_close};

Test(engine_win, a_graceful_close_drains_pending_writes_first)
{
    struct iocp_server_config cfg = {.host = "127.0.0.1", .handler = &reply_handler};
    start_server(&cfg);
    SOCKET s = tw_connect(port);
    cr_assert(tw_write_all(s, "go", 2));
    size_t total = 1 << 20;
    unsigned char *got = malloc(total), *want = malloc(total);
    tw_pattern(want, total, 77, 0);
    cr_expect_eq(tw_read_full(s, got, total, 10000), total);
    cr_expect_eq(memcmp(got, want, total), 0);
    cr_expect(tw_wait_eof(s, 5000));
    closesocket(s);
    free(got);
    free(want);
}

/* ---- clients ---- */

struct client_state {
    iocp_atomic_int opened, closed, status;
    char got[64];
    iocp_atomic_size ngot;
};
static struct client_state cs;

static void client_open(struct iocp_conn *c)
{
    atomic_store(&cs.opened, 1);
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

Test(engine_win, a_client_connects_echoes_and_closes)
{
    start_server(NULL);
    memset(&cs, 0, sizeof cs);
    struct iocp_connect_config cc = {
        .host = "127.0.0.1", .port = port, .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 5000));
    cr_expect_eq(atomic_load(&cs.opened), 1);
    cr_expect_eq(atomic_load(&cs.status), 0, "%s", iocp_strerror(atomic_load(&cs.status)));
    cr_expect_eq(atomic_load(&cs.ngot), 5u);
    cr_expect_eq(memcmp(cs.got, "hello", 5), 0);
}

Test(engine_win, a_client_resolves_localhost)
{
    start_server(NULL);
    memset(&cs, 0, sizeof cs);
    struct iocp_connect_config cc = {
        .host = "localhost", .port = port, .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 10000));
    cr_expect_eq(atomic_load(&cs.status), 0, "%s", iocp_strerror(atomic_load(&cs.status)));
    cr_expect_eq(atomic_load(&cs.ngot), 5u);
}

Test(engine_win, a_client_to_a_closed_port_gets_econnrefused)
{
    memset(&cs, 0, sizeof cs);
    struct iocp_connect_config cc = {
        .host = "127.0.0.1", .port = tw_closed_port(), .worker = -1, .handler = &client_handler};
    cr_assert_eq(iocp_connect(engine, &cc), 0);
    cr_assert(wait_for(client_done, NULL, 10000));
    cr_expect_eq(atomic_load(&cs.opened), 0, "on_open must not run");
    cr_expect_eq(atomic_load(&cs.status), IOCP_ECONNREFUSED, "%s",
                 iocp_err_name(atomic_load(&cs.status)));
}

/* ---- clients against a peer outside this process ---- */

/*
 * IOCP_PEER=HOST:PORT names an echo server run by someone else: the Linux
 * iocptool when tests/wine/cli.sh runs this under Wine.  Clients of the
 * IOCP engine stream to it and check every byte that comes back.
 *
 * Each client sends a stream of its own, strongly mixed so that any 16
 * bytes of it occur once in all the streams: a wrong byte can then be
 * traced to where it came from.  The first one is reported with its offset,
 * the bytes expected and received, the stream and offset the received bytes
 * belong to (later in the same stream: a gap or a reordering; earlier: a
 * repeat; another client's: data crossed between connections; none:
 * corrupted), and where the deliveries around it came from.
 */
#define PEER_CLIENTS 16
#define PEER_BYTES   (512u * 1024u)
#define PEER_TRACE   4 /* deliveries recorded on each side of the first wrong byte */

struct peer_delivery {
    size_t off, len; /* where it landed in the stream, and its size */
    int from;        /* whose stream its first bytes are from, or -1 */
    size_t from_off; /* and their offset there */
    size_t run;      /* how many bytes in a row follow that stream */
};

struct peer_client {
    size_t got;
    iocp_atomic_int status, closed;
    bool bad;
    size_t bad_off, bad_run; /* the first wrong byte; wrong bytes up to the next good 8 */
    unsigned char want[8], seen[8];
    size_t nwant, nseen;
    unsigned nbefore, nafter;
    struct peer_delivery before[PEER_TRACE], after[PEER_TRACE];
};

static struct peer_client peers[PEER_CLIENTS];
static unsigned char *peer_stream[PEER_CLIENTS];

static void peer_fill(unsigned char *p, size_t client)
{
    for (size_t k = 0; k < PEER_BYTES; k += 8) {
        /* splitmix64 of (client, position) */
        uint64_t x = ((uint64_t)(client + 1) << 40 | k) + 0x9e3779b97f4a7c15ull;
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
        x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
        x ^= x >> 31;
        memcpy(p + k, &x, 8);
    }
}

/* Which client's stream holds these bytes, and at which offset (the
 * client's own stream is searched first). */
static struct peer_delivery peer_delivery(size_t self, size_t off, const unsigned char *p,
                                          size_t len)
{
    struct peer_delivery d = {off, len, -1, 0, 0};
    size_t n = len < 16 ? len : 16;
    for (size_t k = 0; n && k < PEER_CLIENTS && d.from < 0; k++) {
        size_t j = (self + k) % PEER_CLIENTS;
        const unsigned char *s = peer_stream[j], *end = s + PEER_BYTES - n + 1;
        for (const unsigned char *q = s; q < end; q++) {
            q = memchr(q, p[0], (size_t)(end - q));
            if (!q)
                break;
            if (memcmp(q, p, n) == 0) {
                d.from = (int)j;
                d.from_off = (size_t)(q - s);
                break;
            }
        }
    }
    if (d.from >= 0)
        while (d.run < len && d.from_off + d.run < PEER_BYTES &&
               p[d.run] == peer_stream[d.from][d.from_off + d.run])
            d.run++;
    return d;
}

static void peer_open(struct iocp_conn *c)
{
    struct peer_client *pc = iocp_conn_data(c);
    size_t i = (size_t)(pc - peers);
    cr_expect_eq(iocp_conn_send(c, peer_stream[i], PEER_BYTES), 0, "client %zu: send", i);
    iocp_conn_shutdown(c);
}

static void peer_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct peer_client *pc = iocp_conn_data(c);
    size_t i = (size_t)(pc - peers);
    const unsigned char *got = data;
    if (pc->bad) {
        if (pc->nafter < PEER_TRACE)
            pc->after[pc->nafter++] = peer_delivery(i, pc->got, got, len);
        pc->got += len;
        return;
    }
    size_t room = pc->got < PEER_BYTES ? PEER_BYTES - pc->got : 0;
    const unsigned char *want = peer_stream[i] + pc->got;
    size_t k = 0, n = len < room ? len : room;
    while (k < n && got[k] == want[k])
        k++;
    if (k == len) {
        if (pc->nbefore == PEER_TRACE)
            memmove(pc->before, pc->before + 1, (PEER_TRACE - 1) * sizeof *pc->before);
        else
            pc->nbefore++;
        pc->before[pc->nbefore - 1] = (struct peer_delivery){pc->got, len, (int)i, pc->got, len};
        pc->got += len;
        return;
    }
    /* The first wrong byte (or one past the end of the stream). */
    pc->bad = true;
    pc->bad_off = pc->got + k;
    size_t end = k, good = 0;
    while (end < n && good < 8) {
        good = got[end] == want[end] ? good + 1 : 0;
        end++;
    }
    pc->bad_run = (good == 8 ? end - 8 : len) - k;
    pc->nwant = n - k < 8 ? n - k : 8;
    pc->nseen = len - k < 8 ? len - k : 8;
    memcpy(pc->want, want + k, pc->nwant);
    memcpy(pc->seen, got + k, pc->nseen);
    pc->after[pc->nafter++] = peer_delivery(i, pc->got + k, got + k, len - k);
    pc->got += len;
}

static void peer_hex(char *out, size_t cap, const unsigned char *p, size_t n)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t k = 0; k < n && used + 4 < cap; k++)
        used += (size_t)snprintf(out + used, cap - used, "%s%02x", k ? " " : "", p[k]);
}

static size_t peer_trace(char *out, size_t cap, size_t self, const struct peer_delivery *d,
                         unsigned n)
{
    size_t used = 0;
    for (unsigned k = 0; k < n && used + 1 < cap; k++) {
        int w;
        if (d[k].from < 0)
            w = snprintf(out + used, cap - used, " [%zu+%zu: from no stream]", d[k].off, d[k].len);
        else
            w = snprintf(out + used, cap - used, " [%zu+%zu: %zu from %s%d's %zu]", d[k].off,
                         d[k].len, d[k].run, (size_t)d[k].from == self ? "own " : "client ",
                         d[k].from, d[k].from_off);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    return used < cap ? used : cap - 1;
}

/* What went wrong with client i's stream, in one line. */
static void peer_explain(size_t i, char *out, size_t cap)
{
    const struct peer_client *pc = &peers[i];
    const struct peer_delivery *first = &pc->after[0];
    char want[32], seen[32], what[200];
    peer_hex(want, sizeof want, pc->want, pc->nwant);
    peer_hex(seen, sizeof seen, pc->seen, pc->nseen);
    if (pc->bad_off >= PEER_BYTES)
        snprintf(what, sizeof what, "more bytes than were sent");
    else if (first->from < 0)
        snprintf(what, sizeof what, "in no client's stream: corrupted");
    else if ((size_t)first->from != i)
        snprintf(what, sizeof what,
                 "%zu bytes of client %d's stream from its offset %zu: crossed connections",
                 first->run, first->from, first->from_off);
    else if (first->from_off > pc->bad_off)
        snprintf(what, sizeof what,
                 "%zu bytes of its own stream from offset %zu, %zu ahead: "
                 "a gap, or deliveries out of order",
                 first->run, first->from_off, first->from_off - pc->bad_off);
    else
        snprintf(what, sizeof what,
                 "%zu bytes of its own stream from offset %zu, %zu behind: a repeat", first->run,
                 first->from_off, pc->bad_off - first->from_off);
    int w = snprintf(out, cap,
                     "first wrong byte at offset %zu of %u (%zu wrong): expected %s, got %s; "
                     "those are %s; %zu bytes received in all; deliveries (offset+length: "
                     "where from) before it:",
                     pc->bad_off, PEER_BYTES, pc->bad_run, want, seen, what, pc->got);
    size_t used = w < 0 ? 0 : (size_t)w < cap ? (size_t)w : cap - 1;
    used += peer_trace(out + used, cap - used, i, pc->before, pc->nbefore);
    w = snprintf(out + used, cap - used, "; from it on:");
    used += w < 0 ? 0 : (size_t)w < cap - used ? (size_t)w : cap - used - 1;
    peer_trace(out + used, cap - used, i, pc->after, pc->nafter);
}

/* Keep reading while the send queue is full: the peer echoes what it reads,
 * and pausing here would stall both sides. */
static void peer_pressure(struct iocp_conn *c, bool full)
{
    (void)c;
    (void)full;
}

static void peer_close(struct iocp_conn *c, int status)
{
    struct peer_client *pc = iocp_conn_data(c);
    atomic_store(&pc->status, status);
    atomic_store(&pc->closed, 1);
}

static const struct iocp_conn_handler peer_handler = {.on_open = peer_open,
                                                      .on_data = peer_data,
                                                      .on_pressure = peer_pressure,
                                                      .on_close = peer_close};

static bool peers_closed(void *arg)
{
    (void)arg;
    for (int i = 0; i < PEER_CLIENTS; i++)
        if (!atomic_load(&peers[i].closed))
            return false;
    return true;
}

Test(engine_win, clients_stream_byte_exact_through_an_external_echo_peer)
{
    const char *peer = getenv("IOCP_PEER");
    if (!peer)
        cr_skip_test("IOCP_PEER=HOST:PORT is not set");
    char host[64];
    snprintf(host, sizeof host, "%s", peer);
    char *colon = strrchr(host, ':');
    cr_assert_not_null(colon, "IOCP_PEER must be HOST:PORT");
    *colon = '\0';
    memset(peers, 0, sizeof peers);
    for (int i = 0; i < PEER_CLIENTS; i++) {
        if (!peer_stream[i]) {
            peer_stream[i] = malloc(PEER_BYTES);
            cr_assert_not_null(peer_stream[i]);
        }
        peer_fill(peer_stream[i], (size_t)i);
    }
    for (int i = 0; i < PEER_CLIENTS; i++) {
        struct iocp_connect_config cc = {.host = host,
                                         .port = (uint16_t)atoi(colon + 1),
                                         .worker = -1,
                                         .handler = &peer_handler,
                                         .data = &peers[i]};
        cr_assert_eq(iocp_connect(engine, &cc), 0);
    }
    cr_assert(wait_for(peers_closed, NULL, 60000), "not every client finished");
    for (int i = 0; i < PEER_CLIENTS; i++) {
        cr_expect_eq(atomic_load(&peers[i].status), 0, "client %d: %s", i,
                     iocp_strerror(atomic_load(&peers[i].status)));
        cr_expect_eq(peers[i].got, PEER_BYTES, "client %d", i);
        if (peers[i].bad) {
            char why[1024];
            peer_explain((size_t)i, why, sizeof why);
            cr_expect_not(peers[i].bad, "client %d: wrong bytes: %s", i, why);
        }
    }
}

/* ---- streams: an anonymous pipe through the engine ---- */

struct stream_state {
    iocp_atomic_int reader_eof, closes, bad_status;
    iocp_atomic_size got;
    unsigned char data[256 * 1024];
};
static struct stream_state ss;

static void writer_open(struct iocp_conn *c)
{
    /* More than the pipe holds: the writes go out in turns. */
    iocp_conn_send(c, ew_block(), sizeof ss.data);
    iocp_conn_shutdown(c);
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
    if (status)
        atomic_store(&ss.bad_status, status);
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

Test(engine_win, a_pipe_carries_a_stream_through_the_engine_and_ends_in_eof)
{
    memset(&ss, 0, sizeof ss);
    HANDLE rd, wr;
    cr_assert(CreatePipe(&rd, &wr, NULL, 0));
    struct iocp_pipe_config rcfg = {
        .handle = (iocp_socket_t)rd, .worker = 0, .readable = true, .handler = &reader_handler};
    struct iocp_pipe_config wcfg = {
        .handle = (iocp_socket_t)wr, .worker = 1, .readable = false, .handler = &writer_handler};
    cr_assert_eq(iocp_pipe_open(engine, &rcfg), 0);
    cr_assert_eq(iocp_pipe_open(engine, &wcfg), 0);
    cr_assert(wait_for(two_closed, NULL, 20000), "closes: %d", atomic_load(&ss.closes));
    cr_expect_eq(atomic_load(&ss.bad_status), 0, "%s", iocp_strerror(atomic_load(&ss.bad_status)));
    cr_expect_eq(atomic_load(&ss.reader_eof), 1);
    cr_expect_eq(atomic_load(&ss.got), sizeof ss.data);
    cr_expect_eq(memcmp(ss.data, ew_block(), sizeof ss.data), 0);
}

/* ---- Windows specifics ---- */

Test(engine_win, wine_is_recognised_when_it_runs_the_tests)
{
    const char *env = getenv("IOCP_EXPECT_WINE");
    if (!env)
        cr_skip_test("IOCP_EXPECT_WINE is not set");
    cr_expect_eq(iocp__running_on_wine(), env[0] == '1');
}
