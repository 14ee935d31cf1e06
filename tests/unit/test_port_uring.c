/* SPDX-License-Identifier: MIT */
/*
 * What only the io_uring backend does: multishot accept, multishot recv into
 * the provided buffer ring, a recv that outlives an empty ring without the
 * caller ever seeing ENOBUFS, batches larger than the submission queue, and a
 * ring opened on one thread and served on another.  test_port.c checks the
 * contract every backend shares.
 */
#include <pthread.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "port.h"
#include "thread.h"
#include "testnet.h"

static const struct iocp_port_ops *ops;
static struct iocp_port *port;

/* Open a uring port, or skip (fail under IOCP_TEST_REQUIRE_ALL) where the
 * kernel or a seccomp filter refuses io_uring. */
static void open_uring(unsigned entries, unsigned buffer_count, unsigned buffer_size)
{
    ops = iocp__port_find("uring");
    if (!ops) {
        if (getenv("IOCP_TEST_REQUIRE_ALL"))
            cr_assert_fail("the uring backend is not in this build");
        cr_skip_test("the uring backend is not in this build");
    }
    struct iocp_port_config cfg = {
        .entries = entries, .buffer_count = buffer_count, .buffer_size = buffer_size};
    int rc = ops->open(&port, &cfg);
    if (rc < 0 && !getenv("IOCP_TEST_REQUIRE_ALL"))
        cr_skip_test("io_uring cannot be used here: %s", iocp_strerror(rc));
    cr_assert_eq(rc, 0, "open: %s", iocp_strerror(rc));
}

static void close_port(void)
{
    if (port)
        ops->close(port);
    port = NULL;
}

TestSuite(port_uring, .fini = close_port, .timeout = 30);

static void no_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    (void)req;
    (void)result;
    (void)flags;
    (void)data;
}

static void req_init(struct iocp_req *req, struct iocp_handle *h, enum iocp_op op, uint8_t flags)
{
    memset(req, 0, sizeof *req);
    req->done = no_done;
    req->handle = h;
    req->op = (uint8_t)op;
    req->flags = flags;
    req->accepted = IOCP_INVALID_SOCKET;
}

static void bind_handle(struct iocp_handle *h, int fd, enum iocp_handle_kind kind)
{
    iocp__handle_init(h, fd, kind);
    cr_assert_eq(iocp__port_bind(port, h), 0);
}

static void release_handle(struct iocp_handle *h)
{
    iocp__port_unbind(h);
    close(h->sock);
}

/* A connected loopback pair: *h is the port's side, *client a blocking socket. */
static void tcp_pair(struct iocp_handle *h, int *client)
{
    uint16_t lport;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    *client = tn_connect(lport);
    cr_assert_geq(*client, 0);
    int sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert_geq(sfd, 0);
    close(lfd);
    bind_handle(h, sfd, IOCP_HANDLE_SOCKET);
}

/* Wait until at least one event or timeout_ms; returns what wait() gave. */
static int wait_events(struct iocp_event *ev, int max, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        int n = ops->wait(port, ev, max, 20);
        cr_assert_geq(n, 0, "wait: %s", iocp_strerror(n));
        if (n > 0 || tn_now_ms() >= end)
            return n;
    }
}

/* Wait for req's final completion, ignoring other events; its result. */
static int32_t wait_final(struct iocp_req *req, unsigned timeout_ms)
{
    struct iocp_event ev[16];
    uint64_t end = tn_now_ms() + timeout_ms;
    while (tn_now_ms() < end) {
        int n = wait_events(ev, 16, 100);
        for (int i = 0; i < n; i++) {
            if (ev[i].flags & IOCP_EV_BUFFER)
                ops->release_buffer(port, ev[i].buf_id);
            if (ev[i].req == req && !(ev[i].flags & IOCP_EV_MORE))
                return ev[i].result;
        }
    }
    cr_assert_fail("no final completion within %u ms", timeout_ms);
    return 0;
}

Test(port_uring, multishot_accept_gives_several_connections_from_one_request)
{
    open_uring(64, 16, 4096);
    uint16_t lport;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    struct iocp_handle lh;
    bind_handle(&lh, lfd, IOCP_HANDLE_SOCKET);

    struct sockaddr_storage peer;
    struct iocp_req acc;
    req_init(&acc, &lh, IOCP_OP_ACCEPT, IOCP_REQ_MULTI);
    acc.addr = &peer;
    cr_assert_eq(ops->submit(port, &acc), 0);

    enum { CLIENTS = 5 };
    int clients[CLIENTS], accepted[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        clients[i] = tn_connect(lport);
        cr_assert_geq(clients[i], 0);
    }
    int got = 0;
    struct iocp_event ev[8];
    uint64_t end = tn_now_ms() + 5000;
    while (got < CLIENTS && tn_now_ms() < end) {
        int n = wait_events(ev, 8, 100);
        for (int i = 0; i < n; i++) {
            cr_assert_eq(ev[i].req, &acc);
            cr_assert_eq(ev[i].result, 0, "accept: %s", iocp_strerror(ev[i].result));
            cr_expect(ev[i].flags & IOCP_EV_MORE, "a multishot accept stays armed");
            cr_assert_geq(acc.accepted, 0);
            /* The peer address belongs to this connection, not the latest. */
            struct sockaddr_in want;
            socklen_t len = sizeof want;
            cr_assert_eq(getpeername(acc.accepted, (struct sockaddr *)&want, &len), 0);
            cr_expect_eq(acc.addrlen, len);
            cr_expect_eq(((struct sockaddr_in *)&peer)->sin_port, want.sin_port);
            accepted[got++] = acc.accepted;
        }
    }
    cr_assert_eq(got, CLIENTS, "one request accepted %d of %d connections", got, CLIENTS);
    cr_expect(acc.in_flight);

    /* Each accepted socket is a distinct, working connection. */
    for (int i = 0; i < CLIENTS; i++) {
        char b = (char)('a' + i), r = 0;
        cr_expect(tn_write_all(clients[i], &b, 1));
        tn_set_nonblock(accepted[i], false);
        (void)tn_read_full(accepted[i], &r, 1, 2000);
        cr_expect_eq(r, b);
    }

    cr_assert_eq(ops->cancel(port, &acc), 0);
    cr_expect_eq(wait_final(&acc, 5000), IOCP_ECANCELED);
    cr_expect_not(acc.in_flight);
    for (int i = 0; i < CLIENTS; i++) {
        close(clients[i]);
        close(accepted[i]);
    }
    release_handle(&lh);
}

/* A sender on its own thread, so the socket buffers never block the test. */
struct sender {
    int fd;
    const unsigned char *data;
    size_t len;
    bool ok;
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    s->ok = tn_write_all(s->fd, s->data, s->len);
    return NULL;
}

/*
 * Receive through a multishot provided recv into `in` until `total` bytes,
 * holding buffers as the caller asks.  Returns the bytes received.
 */
struct stream {
    struct iocp_req recv;
    unsigned char *in;
    size_t total;
    size_t got;
    int completions;
    bool saw_enobufs;
    bool ended;
};

static void stream_event(struct stream *st, const struct iocp_event *ev)
{
    cr_assert_eq(ev->req, &st->recv);
    if (ev->result == IOCP_ENOBUFS)
        st->saw_enobufs = true;
    cr_assert_geq(ev->result, 0, "recv: %s", iocp_strerror(ev->result));
    st->completions++;
    if (ev->result > 0) {
        cr_assert(ev->flags & IOCP_EV_BUFFER);
        cr_assert_leq(st->got + (size_t)ev->result, st->total);
        memcpy(st->in + st->got, ev->data, (size_t)ev->result);
        st->got += (size_t)ev->result;
    }
    if (!(ev->flags & IOCP_EV_MORE)) {
        /* A multishot recv may end without error or EOF: the caller re-arms. */
        if (ev->result > 0)
            cr_assert_eq(ops->submit(port, &st->recv), 0);
        else
            st->ended = true;
    }
}

Test(port_uring, multishot_provided_recv_of_one_mib_arrives_complete_and_in_order)
{
    open_uring(64, 64, 16 * 1024);
    struct iocp_handle h;
    int c;
    tcp_pair(&h, &c);

    size_t total = 1024 * 1024;
    unsigned char *out = malloc(total);
    struct stream st = {.in = malloc(total), .total = total};
    tn_pattern(out, total, 11, 0);
    req_init(&st.recv, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &st.recv), 0);

    struct sender s = {.fd = c, .data = out, .len = total};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_all, &s), 0);

    struct iocp_event ev[64];
    uint64_t end = tn_now_ms() + 10000;
    while (st.got < total && !st.ended && tn_now_ms() < end) {
        int n = wait_events(ev, 64, 100);
        for (int i = 0; i < n; i++) {
            stream_event(&st, &ev[i]);
            if (ev[i].flags & IOCP_EV_BUFFER)
                ops->release_buffer(port, ev[i].buf_id);
        }
    }
    pthread_join(t, NULL);
    cr_expect(s.ok);
    cr_assert_eq(st.got, total, "%zu of %zu bytes", st.got, total);
    cr_expect_eq(memcmp(st.in, out, total), 0, "bytes arrive in order");
    cr_expect_gt(st.completions, 1);

    /* The peer's EOF ends the recv: result 0, no MORE. */
    shutdown(c, SHUT_WR);
    cr_expect_eq(wait_final(&st.recv, 5000), 0);
    cr_expect_not(st.recv.in_flight);
    free(out);
    free(st.in);
    close(c);
    release_handle(&h);
}

Test(port_uring, an_exhausted_buffer_ring_parks_the_recv_until_buffers_return)
{
    enum { NBUF = 8, BUFSZ = 4096 };
    open_uring(64, NBUF, BUFSZ);
    struct iocp_handle h;
    int c;
    tcp_pair(&h, &c);

    size_t total = 16 * NBUF * BUFSZ;
    unsigned char *out = malloc(total);
    struct stream st = {.in = malloc(total), .total = total};
    tn_pattern(out, total, 12, 0);
    req_init(&st.recv, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &st.recv), 0);
    struct sender s = {.fd = c, .data = out, .len = total};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, send_all, &s), 0);

    /* Hold every buffer: the ring runs dry. */
    uint32_t held[NBUF];
    int nheld = 0;
    struct iocp_event ev[16];
    uint64_t end = tn_now_ms() + 5000;
    while (nheld < NBUF && tn_now_ms() < end) {
        int n = wait_events(ev, 16, 100);
        for (int i = 0; i < n; i++) {
            stream_event(&st, &ev[i]);
            if (ev[i].flags & IOCP_EV_BUFFER)
                held[nheld++] = ev[i].buf_id;
        }
    }
    cr_assert_eq(nheld, NBUF, "the sender should fill every buffer");

    /* Data is waiting and no buffer is free: the recv stays quietly armed. */
    int quiet = 0;
    end = tn_now_ms() + 300;
    while (tn_now_ms() < end)
        quiet += ops->wait(port, ev, 16, 50);
    cr_expect_eq(quiet, 0, "nothing may complete while the ring is empty");
    cr_expect(st.recv.in_flight);
    cr_expect_not(st.ended);

    /* Give half back; the rest of the stream then flows, released as it comes. */
    for (int i = 0; i < NBUF / 2; i++)
        ops->release_buffer(port, held[i]);
    end = tn_now_ms() + 10000;
    while (st.got < total && tn_now_ms() < end) {
        int n = wait_events(ev, 16, 100);
        for (int i = 0; i < n; i++) {
            stream_event(&st, &ev[i]);
            if (ev[i].flags & IOCP_EV_BUFFER)
                ops->release_buffer(port, ev[i].buf_id);
        }
    }
    pthread_join(t, NULL);
    cr_assert_eq(st.got, total, "%zu of %zu bytes", st.got, total);
    cr_expect_not(st.saw_enobufs);
    cr_expect_eq(memcmp(st.in, out, total), 0, "bytes arrive in order");
    cr_expect(st.recv.in_flight, "still armed after the stream");
    for (int i = NBUF / 2; i < NBUF; i++)
        ops->release_buffer(port, held[i]);

    cr_assert_eq(ops->cancel(port, &st.recv), 0);
    cr_expect_eq(wait_final(&st.recv, 5000), IOCP_ECANCELED);
    free(out);
    free(st.in);
    close(c);
    release_handle(&h);
}

Test(port_uring, cancel_of_a_recv_parked_on_an_empty_ring_gives_ecanceled)
{
    enum { NBUF = 2, BUFSZ = 1024 };
    open_uring(16, NBUF, BUFSZ);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct iocp_handle h;
    bind_handle(&h, sv[0], IOCP_HANDLE_SOCKET);

    struct iocp_req recv;
    req_init(&recv, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &recv), 0);
    char data[4 * BUFSZ];
    memset(data, 'p', sizeof data);
    cr_assert(tn_write_all(sv[1], data, sizeof data));

    uint32_t held[NBUF];
    int nheld = 0;
    struct iocp_event ev[8];
    uint64_t end = tn_now_ms() + 5000;
    while (nheld < NBUF && tn_now_ms() < end) {
        int n = wait_events(ev, 8, 100);
        for (int i = 0; i < n; i++) {
            cr_assert_gt(ev[i].result, 0);
            cr_assert(ev[i].flags & IOCP_EV_MORE);
            held[nheld++] = ev[i].buf_id;
        }
    }
    cr_assert_eq(nheld, NBUF);
    cr_expect_eq(ops->wait(port, ev, 8, 100), 0);

    cr_assert_eq(ops->cancel(port, &recv), 0);
    int n = wait_events(ev, 8, 2000);
    cr_assert_eq(n, 1);
    cr_expect_eq(ev[0].req, &recv);
    cr_expect_eq(ev[0].result, IOCP_ECANCELED);
    cr_expect_not(ev[0].flags & (IOCP_EV_MORE | IOCP_EV_BUFFER));
    cr_expect_not(recv.in_flight);
    /* Giving the buffers back now must not revive the cancelled recv. */
    for (int i = 0; i < NBUF; i++)
        ops->release_buffer(port, held[i]);
    cr_expect_eq(ops->wait(port, ev, 8, 100), 0);
    close(sv[1]);
    release_handle(&h);
}

Test(port_uring, cancel_of_an_armed_multishot_recv_ends_it_without_more)
{
    open_uring(16, 16, 4096);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct iocp_handle h;
    bind_handle(&h, sv[0], IOCP_HANDLE_SOCKET);

    struct iocp_req recv;
    req_init(&recv, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &recv), 0);
    cr_assert(tn_write_all(sv[1], "armed", 5));
    struct iocp_event ev[8];
    int n = wait_events(ev, 8, 2000);
    cr_assert_eq(n, 1);
    cr_expect_eq(ev[0].result, 5);
    cr_expect_eq(ev[0].flags, IOCP_EV_MORE | IOCP_EV_BUFFER);
    cr_expect_eq(memcmp(ev[0].data, "armed", 5), 0);
    ops->release_buffer(port, ev[0].buf_id);

    cr_assert_eq(ops->cancel(port, &recv), 0);
    n = wait_events(ev, 8, 2000);
    cr_assert_eq(n, 1, "only the cancelled recv completes (the cancel's own CQE is internal)");
    cr_expect_eq(ev[0].req, &recv);
    cr_expect_eq(ev[0].result, IOCP_ECANCELED);
    cr_expect_not(ev[0].flags & IOCP_EV_MORE);
    cr_expect_not(recv.in_flight);
    close(sv[1]);
    release_handle(&h);
}

Test(port_uring, more_requests_than_the_submission_queue_holds_all_complete)
{
    enum { PAIRS = 100 };
    open_uring(4, 16, 4096); /* an SQ of 4 entries */
    struct iocp_handle h[PAIRS];
    int peer[PAIRS];
    struct iocp_req recv[PAIRS];
    char in[PAIRS][4];
    for (int i = 0; i < PAIRS; i++) {
        int sv[2];
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        bind_handle(&h[i], sv[0], IOCP_HANDLE_SOCKET);
        peer[i] = sv[1];
        req_init(&recv[i], &h[i], IOCP_OP_RECV, 0);
        recv[i].buf = in[i];
        recv[i].len = sizeof in[i];
        cr_assert_eq(ops->submit(port, &recv[i]), 0, "submit %d", i);
    }
    for (int i = 0; i < PAIRS; i++)
        cr_assert(tn_write_all(peer[i], &i, 1));

    bool seen[PAIRS] = {false};
    int done = 0;
    struct iocp_event ev[7]; /* fewer than PAIRS: several batches */
    uint64_t end = tn_now_ms() + 5000;
    while (done < PAIRS && tn_now_ms() < end) {
        int n = wait_events(ev, 7, 100);
        cr_assert_leq(n, 7);
        for (int j = 0; j < n; j++) {
            int i = (int)(ev[j].req - recv);
            cr_assert(i >= 0 && i < PAIRS && !seen[i]);
            cr_expect_eq(ev[j].result, 1);
            cr_expect_eq(in[i][0], (char)i);
            seen[i] = true;
            done++;
        }
    }
    cr_expect_eq(done, PAIRS);
    for (int i = 0; i < PAIRS; i++) {
        close(peer[i]);
        release_handle(&h[i]);
    }
}

Test(port_uring, a_pipe_is_written_and_read_in_both_orders)
{
    open_uring(16, 16, 4096);
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0); /* blocking: the ring must not care */
    struct iocp_handle rh, wh;
    bind_handle(&rh, fds[0], IOCP_HANDLE_PIPE);
    bind_handle(&wh, fds[1], IOCP_HANDLE_PIPE);
    struct iocp_req r, w;
    char in[16];

    /* Write first, then read. */
    req_init(&w, &wh, IOCP_OP_WRITE, 0);
    w.buf = "first";
    w.len = 5;
    cr_assert_eq(ops->submit(port, &w), 0);
    cr_expect_eq(wait_final(&w, 2000), 5);
    req_init(&r, &rh, IOCP_OP_READ, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_expect_eq(wait_final(&r, 2000), 5);
    cr_expect_eq(memcmp(in, "first", 5), 0);

    /* A read waiting on an empty pipe completes when the write comes. */
    req_init(&r, &rh, IOCP_OP_READ, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    struct iocp_event ev[4];
    cr_expect_eq(ops->wait(port, ev, 4, 50), 0);
    req_init(&w, &wh, IOCP_OP_WRITE, 0);
    w.buf = "second";
    w.len = 6;
    cr_assert_eq(ops->submit(port, &w), 0);
    int results = 0;
    uint64_t end = tn_now_ms() + 2000;
    while (results < 2 && tn_now_ms() < end) {
        int n = wait_events(ev, 4, 100);
        for (int i = 0; i < n; i++) {
            cr_expect_eq(ev[i].result, 6, "%s: %d", ev[i].req == &r ? "read" : "write",
                         ev[i].result);
            results++;
        }
    }
    cr_expect_eq(results, 2);
    cr_expect_eq(memcmp(in, "second", 6), 0);
    release_handle(&wh);
    release_handle(&rh);
}

#define POSTERS    4
#define POSTS_EACH 20000

static void *poster(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;
    for (uint64_t i = 0; i < POSTS_EACH; i++) {
        int tries = 0;
        while (ops->post(port, id, i) != 0) {
            if (++tries > 1000000)
                return (void *)1;
            sched_yield();
        }
    }
    return NULL;
}

Test(port_uring, posts_from_four_threads_all_arrive_in_each_posters_order)
{
    open_uring(64, 16, 4096);
    pthread_t t[POSTERS];
    for (uintptr_t i = 0; i < POSTERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, poster, (void *)i), 0);

    uint64_t next[POSTERS] = {0};
    uint64_t total = 0;
    struct iocp_event ev[100];
    uint64_t end = tn_now_ms() + 20000;
    while (total < (uint64_t)POSTERS * POSTS_EACH && tn_now_ms() < end) {
        int n = wait_events(ev, 100, 100);
        for (int i = 0; i < n; i++) {
            cr_assert_null(ev[i].req);
            cr_assert_lt(ev[i].code, POSTERS);
            cr_assert_eq(ev[i].arg, next[ev[i].code], "poster %u: got %llu, expected %llu",
                         ev[i].code, (unsigned long long)ev[i].arg,
                         (unsigned long long)next[ev[i].code]);
            next[ev[i].code]++;
            total++;
        }
    }
    for (int i = 0; i < POSTERS; i++) {
        void *failed;
        pthread_join(t[i], &failed);
        cr_expect_null(failed);
    }
    cr_expect_eq(total, (uint64_t)POSTERS * POSTS_EACH);
    cr_expect_eq(ops->wait(port, ev, 100, 50), 0, "nothing twice");
}

/* The engine opens ports on its main thread and serves each on a worker. */
struct served {
    struct iocp_handle *h;
    int peer;
    int32_t result;
    char in[8];
};

static void *serve(void *arg)
{
    struct served *s = arg;
    struct iocp_req r;
    req_init(&r, s->h, IOCP_OP_RECV, 0);
    r.buf = s->in;
    r.len = sizeof s->in;
    s->result = ops->submit(port, &r);
    if (s->result < 0)
        return NULL;
    (void)tn_write_all(s->peer, "worker", 6);
    struct iocp_event ev[4];
    uint64_t end = tn_now_ms() + 5000;
    s->result = IOCP_ETIMEDOUT;
    while (tn_now_ms() < end) {
        int n = ops->wait(port, ev, 4, 50);
        if (n < 0) {
            s->result = n;
            break;
        }
        if (n > 0 && ev[0].req == &r) {
            s->result = ev[0].result;
            break;
        }
    }
    return NULL;
}

Test(port_uring, a_port_opened_on_one_thread_is_served_on_another)
{
    open_uring(16, 16, 4096);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct iocp_handle h;
    bind_handle(&h, sv[0], IOCP_HANDLE_SOCKET);
    struct served s = {.h = &h, .peer = sv[1]};
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, serve, &s), 0);
    pthread_join(t, NULL);
    cr_expect_eq(s.result, 6, "worker: %s", iocp_strerror(s.result));
    cr_expect_eq(memcmp(s.in, "worker", 6), 0);
    /* Posting from the opening thread still wakes nobody in particular,
     * and closing from it is allowed once the worker has left. */
    cr_expect_eq(ops->post(port, 1, 2), 0);
    close(sv[1]);
    release_handle(&h);
}

static void *post_later(void *arg)
{
    (void)arg;
    iocp__sleep_ms(50);
    return (void *)(intptr_t)ops->post(port, 9, 99);
}

Test(port_uring, a_post_wakes_a_wait_that_has_no_timeout)
{
    open_uring(16, 16, 4096);
    struct iocp_event ev[4];
    cr_assert_eq(ops->wait(port, ev, 4, 0), 0); /* the worker owns the ring from here */
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, post_later, NULL), 0);
    int n = ops->wait(port, ev, 4, -1);
    void *rc;
    pthread_join(t, &rc);
    cr_expect_null(rc);
    cr_assert_eq(n, 1);
    cr_expect_null(ev[0].req);
    cr_expect_eq(ev[0].code, 9);
    cr_expect_eq(ev[0].arg, 99);
}

Test(port_uring, a_single_provided_recv_fills_one_buffer_and_ends)
{
    open_uring(16, 4, 1024);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct iocp_handle h;
    bind_handle(&h, sv[0], IOCP_HANDLE_SOCKET);
    char data[3000];
    tn_pattern(data, sizeof data, 5, 0);
    cr_assert(tn_write_all(sv[1], data, sizeof data));

    /* Each recv takes at most one buffer; the rest waits in the socket. */
    size_t got = 0;
    for (int round = 0; round < 10 && got < sizeof data; round++) {
        struct iocp_req recv;
        req_init(&recv, &h, IOCP_OP_RECV, IOCP_REQ_PROVIDED);
        cr_assert_eq(ops->submit(port, &recv), 0);
        struct iocp_event ev[4];
        int n = wait_events(ev, 4, 2000);
        cr_assert_eq(n, 1);
        cr_assert_eq(ev[0].req, &recv);
        cr_assert_gt(ev[0].result, 0, "recv: %s", iocp_strerror(ev[0].result));
        cr_assert_leq(ev[0].result, 1024);
        cr_expect_eq(ev[0].flags, IOCP_EV_BUFFER);
        cr_expect_eq(memcmp(ev[0].data, data + got, (size_t)ev[0].result), 0);
        got += (size_t)ev[0].result;
        cr_expect_not(recv.in_flight);
        ops->release_buffer(port, ev[0].buf_id);
    }
    cr_expect_eq(got, sizeof data);
    close(sv[1]);
    release_handle(&h);
}

Test(port_uring, a_cancel_that_finds_nothing_leaves_no_trace_on_the_request)
{
    enum { NBUF = 2, BUFSZ = 1024 };
    open_uring(16, NBUF, BUFSZ);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct iocp_handle h;
    bind_handle(&h, sv[0], IOCP_HANDLE_SOCKET);
    struct iocp_event ev[8];

    /* A dispatcher that keeps a reaped request marked in flight until it
     * calls done may cancel it in between: the kernel then finds nothing. */
    struct iocp_req recv;
    char one[8];
    req_init(&recv, &h, IOCP_OP_RECV, 0);
    recv.buf = one;
    recv.len = 1;
    cr_assert(tn_write_all(sv[1], "x", 1));
    cr_assert_eq(ops->submit(port, &recv), 0);
    cr_assert_eq(wait_final(&recv, 2000), 1);
    recv.in_flight = true;
    cr_assert_eq(ops->cancel(port, &recv), 0);
    recv.in_flight = false;
    cr_expect_eq(ops->wait(port, ev, 8, 50), 0, "the cancel's own CQE is internal");

    /* Reused as a multishot recv that runs out of buffers, it must park
     * quietly, not end with the old cancel's ECANCELED. */
    req_init(&recv, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &recv), 0);
    char data[4 * BUFSZ];
    memset(data, 'y', sizeof data);
    cr_assert(tn_write_all(sv[1], data, sizeof data));
    uint32_t held[NBUF];
    int nheld = 0;
    size_t got = 0;
    uint64_t end = tn_now_ms() + 2000;
    while (nheld < NBUF && tn_now_ms() < end) {
        int n = wait_events(ev, 8, 100);
        for (int i = 0; i < n; i++) {
            cr_assert_gt(ev[i].result, 0, "got %s", iocp_err_name(ev[i].result));
            cr_assert(ev[i].flags & IOCP_EV_MORE);
            got += (size_t)ev[i].result;
            held[nheld++] = ev[i].buf_id;
        }
    }
    cr_assert_eq(nheld, NBUF);
    cr_expect_eq(ops->wait(port, ev, 8, 100), 0, "the starved recv stays quiet");
    for (int i = 0; i < NBUF; i++)
        ops->release_buffer(port, held[i]);
    size_t want = sizeof data;
    end = tn_now_ms() + 2000;
    while (got < want && tn_now_ms() < end) {
        int n = wait_events(ev, 8, 100);
        for (int i = 0; i < n; i++) {
            cr_assert_gt(ev[i].result, 0, "got %s", iocp_err_name(ev[i].result));
            got += (size_t)ev[i].result;
            ops->release_buffer(port, ev[i].buf_id);
        }
    }
    cr_expect_eq(got, want);
    cr_assert_eq(ops->cancel(port, &recv), 0);
    cr_expect_eq(wait_final(&recv, 2000), IOCP_ECANCELED);
    close(sv[1]);
    release_handle(&h);
}
