/* SPDX-License-Identifier: MIT */
/*
 * The port contract (port.h), one suite for every backend.  CTest runs this
 * file once per backend with IOCP_BACKEND set; each test opens a port of that
 * backend and drives it the way the engine does: submit, wait, dispatch
 * through req->done, give provided buffers back.
 */
#include <pthread.h>
#include <sys/wait.h>
#include <stdlib.h>

#include <criterion/criterion.h>

#include "port.h"
#include "testnet.h"

static const struct iocp_port_ops *ops;
static struct iocp_port *port;

static void open_port(void)
{
    const char *name = getenv("IOCP_BACKEND");
    ops = name ? iocp__port_find(name) : iocp__port_backends[0];
    if (!ops) {
        if (getenv("IOCP_TEST_REQUIRE_ALL"))
            cr_assert_fail("backend %s is not in this build", name);
        cr_skip_test("backend %s is not in this build", name);
    }
    struct iocp_port_config cfg = {.entries = 64, .buffer_count = 16, .buffer_size = 4096};
    int rc = ops->open(&port, &cfg);
    if (rc < 0 && !getenv("IOCP_TEST_REQUIRE_ALL"))
        cr_skip_test("backend %s cannot open here: %s", ops->name, iocp_strerror(rc));
    cr_assert_eq(rc, 0, "open %s: %s", ops->name, iocp_strerror(rc));
}

static void close_port(void)
{
    if (port)
        ops->close(port);
    port = NULL;
}

TestSuite(port, .init = open_port, .fini = close_port, .timeout = 30);

/* A request that records what came back. */
struct rec {
    struct iocp_req req;
    int completions;
    int32_t last_result;
    uint32_t last_flags;
    size_t bytes;
    unsigned char *sink; /* provided-buffer data is copied here */
    size_t sink_cap;
    bool ended; /* a completion without IOCP_EV_MORE came */
};

static void rec_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct rec *r = iocp_container_of(req, struct rec, req);
    r->completions++;
    r->last_result = result;
    r->last_flags = flags;
    if (result > 0) {
        if (r->sink && r->bytes + (size_t)result <= r->sink_cap)
            memcpy(r->sink + r->bytes, data, (size_t)result);
        r->bytes += (size_t)result;
    }
    if (!(flags & IOCP_EV_MORE))
        r->ended = true;
}

static void rec_init(struct rec *r, struct iocp_handle *h, enum iocp_op op)
{
    memset(r, 0, sizeof *r);
    r->req.done = rec_done;
    r->req.handle = h;
    r->req.op = (uint8_t)op;
    r->req.accepted = IOCP_INVALID_SOCKET;
}

/* Packets seen by pump(). */
static uint64_t packets_seen;
static uint64_t packet_arg_sum;

/* Dispatch completions until done(arg) or timeout; false on timeout. */
static bool pump(bool (*done)(void *arg), void *arg, unsigned timeout_ms)
{
    struct iocp_event ev[32];
    uint64_t end = tn_now_ms() + timeout_ms;
    while (!done || !done(arg)) {
        if (tn_now_ms() > end)
            return false;
        int n = ops->wait(port, ev, 32, 20);
        cr_assert_geq(n, 0, "wait: %s", iocp_strerror(n));
        for (int i = 0; i < n; i++) {
            if (!ev[i].req) {
                packets_seen++;
                packet_arg_sum += ev[i].arg;
                continue;
            }
            ev[i].req->done(ev[i].req, ev[i].result, ev[i].flags, ev[i].data);
            if (ev[i].flags & IOCP_EV_BUFFER)
                ops->release_buffer(port, ev[i].buf_id);
        }
        if (!done && n == 0)
            return true;
    }
    return true;
}

static bool rec_ended(void *arg)
{
    return ((struct rec *)arg)->ended;
}

static int nonblocking_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    return fd;
}

/* An accepted, connected pair: *server is bound to the port, *client is a
 * blocking socket for the test to drive. */
static void connected_pair(struct iocp_handle *server, int *client)
{
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    *client = tn_connect(lport);
    cr_assert_geq(*client, 0);
    int sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert_geq(sfd, 0);
    close(lfd);
    iocp__handle_init(server, sfd, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, server), 0);
}

static void release_handle(struct iocp_handle *h)
{
    iocp__port_unbind(h);
    close(h->sock);
}

Test(port, an_empty_port_opens_and_waits_without_events)
{
    struct iocp_event ev[4];
    cr_expect_str_eq(ops->name, getenv("IOCP_BACKEND") ? getenv("IOCP_BACKEND") : ops->name);
    cr_expect_eq(ops->wait(port, ev, 4, 0), 0);
}

Test(port, wait_returns_after_its_timeout_when_nothing_happens)
{
    struct iocp_event ev[4];
    uint64_t start = tn_now_ms();
    int n = ops->wait(port, ev, 4, 30);
    cr_expect_eq(n, 0);
    cr_expect_geq(tn_now_ms() - start, 20, "wait returned early, after %llu ms",
                  (unsigned long long)(tn_now_ms() - start));
}

Test(port, a_second_bind_of_the_same_handle_is_refused_before_the_os_sees_it)
{
    struct iocp_handle h;
    iocp__handle_init(&h, nonblocking_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    cr_expect(h.bound);
    cr_expect_eq(iocp__port_bind(port, &h), IOCP_EALREADY);
    cr_expect(h.bound, "a refused second bind must leave the first in place");
    release_handle(&h);
    cr_expect_not(h.bound);
}

Test(port, posted_packets_come_back_with_their_code_and_argument)
{
    struct iocp_event ev[8];
    cr_assert_eq(ops->post(port, 7, 0x1122334455667788ull), 0);
    int n = 0;
    for (int tries = 0; tries < 50 && n == 0; tries++)
        n = ops->wait(port, ev, 8, 20);
    cr_assert_eq(n, 1);
    cr_expect_null(ev[0].req);
    cr_expect_eq(ev[0].code, 7);
    cr_expect_eq(ev[0].arg, 0x1122334455667788ull);
}

#define POSTERS 4
#define POSTS_EACH 5000

static void *poster(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * POSTS_EACH;
    for (uint64_t i = 1; i <= POSTS_EACH; i++) {
        /* A full queue is an answer, not a loss: retry until it lands. */
        for (int tries = 0; ops->post(port, 1, base + i) != 0; tries++) {
            if (tries > 100000)
                return (void *)1;
            sched_yield();
        }
    }
    return NULL;
}

static bool all_posts_seen(void *arg)
{
    (void)arg;
    return packets_seen == (uint64_t)POSTERS * POSTS_EACH;
}

Test(port, posts_from_many_threads_all_arrive_exactly_once)
{
    pthread_t t[POSTERS];
    packets_seen = packet_arg_sum = 0;
    for (uintptr_t i = 0; i < POSTERS; i++)
        pthread_create(&t[i], NULL, poster, (void *)i);
    cr_expect(pump(all_posts_seen, NULL, 20000), "only %llu packets arrived",
              (unsigned long long)packets_seen);
    for (int i = 0; i < POSTERS; i++) {
        void *failed;
        pthread_join(t[i], &failed);
        cr_expect_null(failed, "a poster gave up");
    }
    uint64_t n = (uint64_t)POSTERS * POSTS_EACH;
    cr_expect_eq(packet_arg_sum, n * (n + 1) / 2, "every argument exactly once");
    pump(NULL, NULL, 100);
    cr_expect_eq(packets_seen, n, "no packet twice");
}

Test(port, a_full_post_queue_refuses_and_loses_nothing)
{
    uint64_t accepted = 0;
    int rc = 0;
    while (accepted < 2000000 && (rc = ops->post(port, 2, 1)) == 0)
        accepted++;
    cr_assert_eq(rc, IOCP_EAGAIN, "a bounded queue must eventually refuse: %s",
                 iocp_strerror(rc));
    packets_seen = packet_arg_sum = 0;
    uint64_t end = tn_now_ms() + 10000;
    while (packets_seen < accepted && tn_now_ms() < end)
        pump(NULL, NULL, 100);
    cr_expect_eq(packets_seen, accepted, "every accepted post arrives once");
    cr_expect_eq(ops->post(port, 2, 1), 0, "a drained queue accepts again");
}

Test(port, accept_completes_with_a_connected_socket_and_the_peer_address)
{
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    tn_set_nonblock(lfd, true);
    struct iocp_handle lh;
    iocp__handle_init(&lh, lfd, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &lh), 0);

    struct sockaddr_storage peer;
    struct rec r;
    rec_init(&r, &lh, IOCP_OP_ACCEPT);
    r.req.addr = &peer;
    r.req.addrlen = sizeof peer;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(r.req.in_flight);

    int c = tn_connect(lport);
    cr_assert(pump(rec_ended, &r, 5000), "no accept completion");
    cr_expect_eq(r.completions, 1);
    cr_expect_eq(r.last_result, 0, "accept: %s", iocp_strerror(r.last_result));
    cr_expect_not(r.req.in_flight);
    cr_assert_geq(r.req.accepted, 0);
    cr_expect_eq(((struct sockaddr_in *)&peer)->sin_family, AF_INET);
    cr_expect_eq(((struct sockaddr_in *)&peer)->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

    /* The accepted socket really is the client's peer. */
    cr_expect(tn_write_all(c, "ping", 4));
    char buf[4];
    tn_set_nonblock(r.req.accepted, false);
    cr_expect_eq(tn_read_full(r.req.accepted, buf, 4, 2000), 4);
    cr_expect_eq(memcmp(buf, "ping", 4), 0);
    close(r.req.accepted);
    close(c);
    release_handle(&lh);
}

Test(port, connect_completes_with_zero_when_someone_listens)
{
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    struct iocp_handle h;
    iocp__handle_init(&h, nonblocking_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    struct sockaddr_storage target;
    struct sockaddr_in sa = tn_loopback(lport);
    memcpy(&target, &sa, sizeof sa);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_CONNECT);
    r.req.addr = &target;
    r.req.addrlen = sizeof sa;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0, "connect: %s", iocp_strerror(r.last_result));
    cr_expect_eq(r.completions, 1);
    release_handle(&h);
    close(lfd);
}

Test(port, connect_to_a_closed_port_completes_with_econnrefused)
{
    struct iocp_handle h;
    iocp__handle_init(&h, nonblocking_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    struct sockaddr_storage target;
    struct sockaddr_in sa = tn_loopback(tn_closed_port());
    memcpy(&target, &sa, sizeof sa);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_CONNECT);
    r.req.addr = &target;
    r.req.addrlen = sizeof sa;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECONNREFUSED, "got %s", iocp_err_name(r.last_result));
    release_handle(&h);
}

Test(port, send_and_recv_move_the_bytes_exactly)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);

    char out[1000];
    tn_pattern(out, sizeof out, 1, 0);
    struct rec s;
    rec_init(&s, &h, IOCP_OP_SEND);
    s.req.buf = out;
    s.req.len = sizeof out;
    cr_assert_eq(ops->submit(port, &s.req), 0);
    cr_assert(pump(rec_ended, &s, 5000));
    cr_expect_eq(s.last_result, (int32_t)sizeof out, "a small send completes whole");
    char got[1000];
    cr_expect_eq(tn_read_full(c, got, sizeof got, 2000), sizeof got);
    cr_expect_eq(memcmp(got, out, sizeof out), 0);

    char in[64] = {0};
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tn_write_all(c, "hello", 5));
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 5);
    cr_expect_eq(memcmp(in, "hello", 5), 0);
    cr_expect_eq(r.completions, 1);
    close(c);
    release_handle(&h);
}

static bool rec_got_eof(void *arg)
{
    struct rec *r = arg;
    return r->ended;
}

Test(port, a_multishot_provided_recv_delivers_a_stream_in_order_then_eof)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);

    size_t total = 256 * 1024; /* many times the port's 16 x 4 KiB buffers */
    unsigned char *out = malloc(total), *in = malloc(total);
    tn_pattern(out, total, 2, 0);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    r.sink = in;
    r.sink_cap = total;
    cr_assert_eq(ops->submit(port, &r.req), 0);

    /* The writer runs concurrently: the socket buffers are smaller than total. */
    pid_t child = fork();
    if (child == 0) {
        _exit(tn_write_all(c, out, total) && shutdown(c, SHUT_WR) == 0 ? 0 : 1);
    }
    cr_assert(pump(rec_got_eof, &r, 10000), "stream did not end: %zu of %zu bytes", r.bytes,
              total);
    int status;
    waitpid(child, &status, 0);
    cr_expect_eq(status, 0);
    cr_expect_eq(r.last_result, 0, "the last completion is the EOF, got %d", r.last_result);
    cr_expect_eq(r.bytes, total);
    cr_expect_eq(memcmp(in, out, total), 0, "bytes arrive in order");
    cr_expect_gt(r.completions, 2, "one request, many completions");
    cr_expect_not(r.req.in_flight);
    free(out);
    free(in);
    close(c);
    release_handle(&h);
}

/*
 * The budget of a provided receive (port.h): with 64 KiB already in the
 * socket, each arming with a budget brings in at most that much and then
 * ends, and arming again continues the stream in order.  This
 * is what bounds what a paused connection still receives: a multishot
 * receive without it may drain the whole socket before a cancel lands.
 */
static void stream_by_budget(uint32_t budget)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    size_t total = 64 * 1024;
    unsigned char *out = malloc(total), *in = malloc(total);
    tn_pattern(out, total, 5, 0);
    cr_assert(tn_write_all(c, out, total));
    cr_assert_eq(shutdown(c, SHUT_WR), 0);

    size_t got = 0;
    int arms = 0;
    bool eof = false;
    while (!eof && arms < 1000) {
        struct rec r;
        rec_init(&r, &h, IOCP_OP_RECV);
        r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
        r.req.len = budget;
        r.sink = in + got;
        r.sink_cap = total - got;
        cr_assert_eq(ops->submit(port, &r.req), 0);
        arms++;
        cr_assert(pump(rec_ended, &r, 5000), "arming %d did not end after %zu bytes", arms,
                  r.bytes);
        cr_assert_geq(r.last_result, 0, "it ends with data or EOF, not %s",
                      iocp_strerror(r.last_result));
        cr_assert_leq(r.bytes, budget, "arming %d brought in %zu bytes", arms, r.bytes);
        cr_assert_not(r.req.in_flight);
        got += r.bytes;
        eof = r.last_result == 0;
    }
    cr_expect(eof, "the stream ends in EOF");
    cr_expect_eq(got, total);
    cr_expect_eq(memcmp(in, out, total), 0, "bytes arrive in order across armings");
    cr_expect_gt(arms, (int)(total / budget), "no arming went past its budget");
    free(out);
    free(in);
    close(c);
    release_handle(&h);
}

Test(port, a_provided_recv_with_a_budget_brings_in_no_more_and_then_ends)
{
    stream_by_budget(10000); /* two and a half of the port's buffers */
}

Test(port, a_provided_recv_with_a_budget_below_a_buffer_brings_in_no_more)
{
    stream_by_budget(1000);
}

Test(port, cancel_of_a_pending_recv_completes_it_with_ecanceled)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    pump(NULL, NULL, 50); /* let it reach the kernel */
    cr_expect_eq(r.completions, 0);
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000), "a cancelled request must still complete");
    cr_expect_eq(r.last_result, IOCP_ECANCELED);
    cr_expect_eq(r.completions, 1);
    cr_expect_not(r.req.in_flight);
    close(c);
    release_handle(&h);
}

Test(port, cancel_of_an_armed_multishot_recv_ends_it)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tn_write_all(c, "abc", 3));
    uint64_t end = tn_now_ms() + 5000;
    while (r.bytes < 3 && tn_now_ms() < end)
        pump(NULL, NULL, 20);
    cr_expect_eq(r.bytes, 3);
    cr_expect_not(r.ended, "a multishot recv stays armed");
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECANCELED);
    cr_expect_not(r.req.in_flight);
    close(c);
    release_handle(&h);
}

Test(port, cancel_after_completion_changes_nothing)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tn_write_all(c, "x", 1));
    cr_assert(pump(rec_ended, &r, 5000));
    ops->cancel(port, &r.req);
    pump(NULL, NULL, 100);
    cr_expect_eq(r.completions, 1, "exactly one completion");
    cr_expect_eq(r.last_result, 1);
    close(c);
    release_handle(&h);
}

Test(port, recv_reports_eof_when_the_peer_shuts_down)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    shutdown(c, SHUT_WR);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0);
    close(c);
    release_handle(&h);
}

Test(port, recv_reports_a_reset_as_econnreset)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECONNRESET, "got %s", iocp_err_name(r.last_result));
    release_handle(&h);
}

Test(port, a_large_send_completes_with_what_was_sent)
{
    struct iocp_handle h;
    int c;
    connected_pair(&h, &c);
    size_t total = 8 * 1024 * 1024, sent = 0;
    unsigned char *out = malloc(total), *in = malloc(total);
    tn_pattern(out, total, 3, 0);

    pid_t child = fork();
    if (child == 0) {
        size_t got = tn_read_full(c, in, total, 20000);
        _exit(got == total && memcmp(in, out, total) == 0 ? 0 : 1);
    }
    /* Resubmit the rest after each (possibly partial) completion, as conn.c does. */
    struct rec s;
    while (sent < total) {
        rec_init(&s, &h, IOCP_OP_SEND);
        s.req.buf = out + sent;
        s.req.len = (uint32_t)(total - sent);
        cr_assert_eq(ops->submit(port, &s.req), 0);
        cr_assert(pump(rec_ended, &s, 10000));
        cr_assert_gt(s.last_result, 0, "send: %s", iocp_strerror(s.last_result));
        sent += (size_t)s.last_result;
    }
    int status;
    waitpid(child, &status, 0);
    cr_expect_eq(status, 0, "the peer got every byte in order");
    free(out);
    free(in);
    close(c);
    release_handle(&h);
}

Test(port, a_pipe_is_read_and_written_through_the_port)
{
    int fds[2];
    cr_assert_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
    struct iocp_handle rh, wh;
    iocp__handle_init(&rh, fds[0], IOCP_HANDLE_PIPE);
    iocp__handle_init(&wh, fds[1], IOCP_HANDLE_PIPE);
    cr_assert_eq(iocp__port_bind(port, &rh), 0);
    cr_assert_eq(iocp__port_bind(port, &wh), 0);

    char in[32] = {0};
    struct rec r, w;
    rec_init(&r, &rh, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    rec_init(&w, &wh, IOCP_OP_WRITE);
    w.req.buf = "through a pipe";
    w.req.len = 14;
    cr_assert_eq(ops->submit(port, &w.req), 0);
    cr_assert(pump(rec_ended, &w, 5000));
    cr_expect_eq(w.last_result, 14);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 14);
    cr_expect_eq(memcmp(in, "through a pipe", 14), 0);

    /* Closing the write end gives the reader EOF. */
    rec_init(&r, &rh, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    release_handle(&wh);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0);
    release_handle(&rh);
}
