/* SPDX-License-Identifier: MIT */
/*
 * The port contract (port.h) on the IOCP backend, on Windows (and under
 * Wine): AcceptEx, ConnectEx, send and receive, the zero-byte provided
 * receive, cancellation per overlapped, posts from many threads and to many
 * waiting threads, completions that finish inline in skip-on-success mode,
 * the bound-once rule with the OS's own error for a forced second bind, and
 * streams over pipes with and without overlapped I/O.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "core.h"
#include "port.h"
#include "sockutil_win.h"
#include "testnet_win.h"

extern const struct iocp_port_ops iocp__port_iocp_ops;

static const struct iocp_port_ops *ops = &iocp__port_iocp_ops;
static struct iocp_port *port;

static void open_port(void)
{
    tw_init();
    struct iocp_port_config cfg = {
        .entries = 64, .buffer_count = 16, .buffer_size = 4096, .workers = 1};
    int rc = ops->open(&port, &cfg);
    cr_assert_eq(rc, 0, "open: %s", iocp_strerror(rc));
}

static void close_port(void)
{
    if (port)
        ops->close(port);
    port = NULL;
}

TestSuite(port_iocp, .init = open_port, .fini = close_port, .timeout = 60);

/* A request that records what came back. */
struct rec {
    struct iocp_req req;
    unsigned char scratch[IOCP_ACCEPT_SCRATCH];
    int completions;
    int32_t last_result;
    uint32_t last_flags;
    size_t bytes;
    unsigned char *sink;
    size_t sink_cap;
    bool ended;
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

static uint64_t packets_seen, packet_arg_sum;

/* Dispatch the way the engine does: the request stays in flight until its
 * last completion has been dispatched. */
static void dispatch(struct iocp_event *ev, int n)
{
    for (int i = 0; i < n; i++) {
        if (!ev[i].req) {
            packets_seen++;
            packet_arg_sum += ev[i].arg;
            continue;
        }
        if (!(ev[i].flags & IOCP_EV_MORE))
            ev[i].req->in_flight = false;
        ev[i].req->done(ev[i].req, ev[i].result, ev[i].flags, ev[i].data);
        if (ev[i].flags & IOCP_EV_BUFFER)
            ops->release_buffer(port, ev[i].buf_id);
    }
}

/* Dispatch until done(arg) or timeout; false on timeout. */
static bool pump(bool (*done)(void *arg), void *arg, unsigned timeout_ms)
{
    struct iocp_event ev[32];
    uint64_t end = tw_now_ms() + timeout_ms;
    while (!done || !done(arg)) {
        if (tw_now_ms() > end)
            return false;
        int n = ops->wait(port, ev, 32, 20);
        cr_assert_geq(n, 0, "wait: %s", iocp_strerror(n));
        dispatch(ev, n);
        if (!done && n == 0)
            return true;
    }
    return true;
}

static bool rec_ended(void *arg)
{
    return ((struct rec *)arg)->ended;
}

static iocp_socket_t new_socket(void)
{
    iocp_socket_t s;
    cr_assert_eq(iocp__socket_stream(AF_INET, &s), 0);
    return s;
}

/* An accepted, connected pair: *server bound to the port, *client blocking. */
static void connected_pair(struct iocp_handle *server, SOCKET *client)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    cr_assert_neq(l, INVALID_SOCKET);
    *client = tw_connect(lport);
    cr_assert_neq(*client, INVALID_SOCKET);
    SOCKET s = accept(l, NULL, NULL);
    cr_assert_neq(s, INVALID_SOCKET);
    closesocket(l);
    iocp__handle_init(server, (iocp_socket_t)s, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, server), 0);
}

static void release_handle(struct iocp_handle *h)
{
    iocp__port_unbind(h);
    closesocket((SOCKET)h->sock);
}

Test(port_iocp, an_empty_port_waits_for_its_timeout)
{
    struct iocp_event ev[4];
    cr_expect_eq(ops->wait(port, ev, 4, 0), 0);
    uint64_t start = tw_now_ms();
    cr_expect_eq(ops->wait(port, ev, 4, 50), 0);
    cr_expect_geq(tw_now_ms() - start, 30, "wait returned early");
    cr_expect(ops->shared, "one IOCP port serves every worker");
}

Test(port_iocp, posted_packets_come_back_with_their_code_and_argument)
{
    struct iocp_event ev[8];
    cr_assert_eq(ops->post(port, 7, 0x1122334455667788ull), 0);
    int n = ops->wait(port, ev, 8, 1000);
    cr_assert_eq(n, 1);
    cr_expect_null(ev[0].req);
    cr_expect_eq(ev[0].code, 7u);
    cr_expect_eq(ev[0].arg, 0x1122334455667788ull);
}

#define POSTERS    4
#define POSTS_EACH 5000

static DWORD WINAPI poster(void *arg)
{
    uint64_t base = (uint64_t)(uintptr_t)arg * POSTS_EACH;
    for (uint64_t i = 1; i <= POSTS_EACH; i++)
        for (int tries = 0; ops->post(port, 1, base + i) != 0; tries++) {
            if (tries > 100000)
                return 1;
            Sleep(0);
        }
    return 0;
}

static bool all_posts_seen(void *arg)
{
    (void)arg;
    return packets_seen == (uint64_t)POSTERS * POSTS_EACH;
}

Test(port_iocp, posts_from_many_threads_all_arrive_exactly_once)
{
    HANDLE t[POSTERS];
    packets_seen = packet_arg_sum = 0;
    for (uintptr_t i = 0; i < POSTERS; i++)
        t[i] = CreateThread(NULL, 0, poster, (void *)i, 0, NULL);
    cr_expect(pump(all_posts_seen, NULL, 20000), "only %llu packets arrived",
              (unsigned long long)packets_seen);
    for (int i = 0; i < POSTERS; i++) {
        DWORD code = 1;
        WaitForSingleObject(t[i], INFINITE);
        GetExitCodeThread(t[i], &code);
        CloseHandle(t[i]);
        cr_expect_eq(code, 0u, "a poster gave up");
    }
    uint64_t n = (uint64_t)POSTERS * POSTS_EACH;
    cr_expect_eq(packet_arg_sum, n * (n + 1) / 2, "every argument exactly once");
}

/* Several threads wait on the one port, as the engine's workers do. */
struct waiter {
    iocp_atomic_u64 *seen;
    iocp_atomic_u64 *sum;
    iocp_atomic_bool *stop;
};

static DWORD WINAPI waiter_main(void *arg)
{
    struct waiter *w = arg;
    struct iocp_event ev[16];
    while (!atomic_load(w->stop)) {
        int n = ops->wait(port, ev, 16, 20);
        for (int i = 0; i < n; i++) {
            atomic_fetch_add(w->seen, 1);
            atomic_fetch_add(w->sum, ev[i].arg);
        }
    }
    return 0;
}

Test(port_iocp, packets_reach_threads_waiting_together_exactly_once)
{
    iocp_atomic_u64 seen = 0, sum = 0;
    iocp_atomic_bool stop = false;
    struct waiter w = {&seen, &sum, &stop};
    HANDLE t[4];
    for (int i = 0; i < 4; i++)
        t[i] = CreateThread(NULL, 0, waiter_main, &w, 0, NULL);
    const uint64_t total = 20000;
    for (uint64_t i = 1; i <= total; i++)
        cr_assert_eq(ops->post(port, 3, i), 0);
    uint64_t end = tw_now_ms() + 20000;
    while (atomic_load(&seen) < total && tw_now_ms() < end)
        Sleep(5);
    atomic_store(&stop, true);
    for (int i = 0; i < 4; i++) {
        WaitForSingleObject(t[i], INFINITE);
        CloseHandle(t[i]);
    }
    cr_expect_eq(atomic_load(&seen), total);
    cr_expect_eq(atomic_load(&sum), total * (total + 1) / 2);
}

Test(port_iocp, a_second_bind_is_refused_before_the_os_sees_it)
{
    struct iocp_handle h;
    iocp__handle_init(&h, new_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    cr_expect(h.bound);
    cr_expect_eq(iocp__port_bind(port, &h), IOCP_EALREADY);
    cr_expect(h.bound, "a refused second bind leaves the first in place");
    release_handle(&h);
}

Test(port_iocp, a_forced_second_bind_reports_the_os_error)
{
    /* Seed 2c: DIOCP could not tell a second association from a real
     * failure.  Forcing one past the tracking shows the OS's own answer:
     * CreateIoCompletionPort fails with ERROR_INVALID_PARAMETER (87). */
    struct iocp_handle h, again;
    iocp_socket_t s = new_socket();
    iocp__handle_init(&h, s, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    iocp__handle_init(&again, s, IOCP_HANDLE_SOCKET);
    int rc = iocp__port_bind(port, &again);
    cr_expect_eq(rc, IOCP_EINVAL, "got %s", iocp_err_name(rc));
    cr_expect_not(again.bound, "a failed bind leaves the handle unbound");
    cr_expect(strstr(iocp_error_detail(), "error 87") != NULL, "detail: %s", iocp_error_detail());
    release_handle(&h);
}

Test(port_iocp, sockets_are_bound_in_skip_on_success_mode)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    cr_expect(h.skip, "skip-on-success must be on for an IFS socket");
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, accept_completes_with_a_connected_socket_and_the_peer_address)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    struct iocp_handle lh;
    iocp__handle_init(&lh, (iocp_socket_t)l, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &lh), 0);

    struct sockaddr_storage peer;
    struct rec r;
    rec_init(&r, &lh, IOCP_OP_ACCEPT);
    r.req.addr = &peer;
    r.req.addrlen = sizeof peer;
    r.req.buf = r.scratch;
    r.req.len = sizeof r.scratch;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(r.req.in_flight);
    cr_expect_neq(r.req.accepted, IOCP_INVALID_SOCKET, "the accept socket is made at submit");

    SOCKET c = tw_connect(lport);
    cr_assert(pump(rec_ended, &r, 5000), "no accept completion");
    cr_expect_eq(r.completions, 1);
    cr_expect_eq(r.last_result, 0, "accept: %s", iocp_strerror(r.last_result));
    cr_assert_neq(r.req.accepted, IOCP_INVALID_SOCKET);
    struct sockaddr_in *in = (struct sockaddr_in *)&peer;
    cr_expect_eq(in->sin_family, AF_INET);
    cr_expect_eq(in->sin_addr.s_addr, htonl(INADDR_LOOPBACK));

    /* SO_UPDATE_ACCEPT_CONTEXT was set: the socket knows its peer. */
    struct sockaddr_in got;
    int glen = sizeof got;
    cr_expect_eq(getpeername((SOCKET)r.req.accepted, (struct sockaddr *)&got, &glen), 0);
    cr_expect(tw_write_all(c, "ping", 4));
    char buf[4];
    cr_expect_eq(tw_read_full((SOCKET)r.req.accepted, buf, 4, 2000), 4u);
    cr_expect_eq(memcmp(buf, "ping", 4), 0);
    closesocket((SOCKET)r.req.accepted);
    closesocket(c);
    release_handle(&lh);
}

Test(port_iocp, an_accept_that_finishes_at_once_still_completes_through_wait)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    struct iocp_handle lh;
    iocp__handle_init(&lh, (iocp_socket_t)l, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &lh), 0);
    /* The connection waits in the backlog before AcceptEx is issued. */
    SOCKET c = tw_connect(lport);
    Sleep(50);
    struct sockaddr_storage peer;
    struct rec r;
    rec_init(&r, &lh, IOCP_OP_ACCEPT);
    r.req.addr = &peer;
    r.req.addrlen = sizeof peer;
    r.req.buf = r.scratch;
    r.req.len = sizeof r.scratch;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect_eq(r.completions, 0, "never a callback from submit");
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0);
    cr_expect_eq(r.completions, 1, "one completion, from wait()");
    closesocket((SOCKET)r.req.accepted);
    closesocket(c);
    release_handle(&lh);
}

Test(port_iocp, a_cancelled_accept_completes_and_closes_its_socket)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    struct iocp_handle lh;
    iocp__handle_init(&lh, (iocp_socket_t)l, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &lh), 0);
    struct sockaddr_storage peer;
    struct rec r;
    rec_init(&r, &lh, IOCP_OP_ACCEPT);
    r.req.addr = &peer;
    r.req.addrlen = sizeof peer;
    r.req.buf = r.scratch;
    r.req.len = sizeof r.scratch;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    iocp_socket_t pre = r.req.accepted;
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECANCELED, "got %s", iocp_err_name(r.last_result));
    cr_expect_eq(r.req.accepted, IOCP_INVALID_SOCKET);
    /* The pre-created socket was closed: it is no socket any more. */
    int type = 0, tlen = sizeof type;
    cr_expect_neq(getsockopt((SOCKET)pre, SOL_SOCKET, SO_TYPE, (char *)&type, &tlen), 0);
    release_handle(&lh);
}

Test(port_iocp, an_accept_request_without_scratch_space_is_refused)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    struct iocp_handle lh;
    iocp__handle_init(&lh, (iocp_socket_t)l, IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &lh), 0);
    struct rec r;
    rec_init(&r, &lh, IOCP_OP_ACCEPT);
    cr_expect_eq(ops->submit(port, &r.req), IOCP_EINVAL);
    cr_expect_not(r.req.in_flight);
    release_handle(&lh);
}

Test(port_iocp, connect_completes_with_zero_when_someone_listens)
{
    uint16_t lport = 0;
    SOCKET l = tw_listen(&lport);
    struct iocp_handle h;
    iocp__handle_init(&h, new_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    struct sockaddr_storage target;
    struct sockaddr_in sa = tw_loopback(lport);
    memcpy(&target, &sa, sizeof sa);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_CONNECT);
    r.req.addr = &target;
    r.req.addrlen = sizeof sa;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0, "connect: %s", iocp_strerror(r.last_result));
    /* SO_UPDATE_CONNECT_CONTEXT was set: getpeername works. */
    struct sockaddr_in got;
    int glen = sizeof got;
    cr_expect_eq(getpeername((SOCKET)h.sock, (struct sockaddr *)&got, &glen), 0);
    cr_expect_eq(ntohs(got.sin_port), lport);
    release_handle(&h);
    closesocket(l);
}

Test(port_iocp, connect_to_a_closed_port_completes_with_econnrefused)
{
    struct iocp_handle h;
    iocp__handle_init(&h, new_socket(), IOCP_HANDLE_SOCKET);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    struct sockaddr_storage target;
    struct sockaddr_in sa = tw_loopback(tw_closed_port());
    memcpy(&target, &sa, sizeof sa);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_CONNECT);
    r.req.addr = &target;
    r.req.addrlen = sizeof sa;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 10000));
    cr_expect_eq(r.last_result, IOCP_ECONNREFUSED, "got %s", iocp_err_name(r.last_result));
    release_handle(&h);
}

Test(port_iocp, send_and_recv_move_the_bytes_exactly)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    char out[1000];
    tw_pattern(out, sizeof out, 1, 0);
    struct rec s;
    rec_init(&s, &h, IOCP_OP_SEND);
    s.req.buf = out;
    s.req.len = sizeof out;
    cr_assert_eq(ops->submit(port, &s.req), 0);
    cr_expect_eq(s.completions, 0, "an inline send completes through wait(), not submit()");
    cr_assert(pump(rec_ended, &s, 5000));
    cr_expect_eq(s.last_result, (int32_t)sizeof out);
    char got[1000];
    cr_expect_eq(tw_read_full(c, got, sizeof got, 2000), sizeof got);
    cr_expect_eq(memcmp(got, out, sizeof out), 0);

    char in[64] = {0};
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tw_write_all(c, "hello", 5));
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 5);
    cr_expect_eq(memcmp(in, "hello", 5), 0);
    cr_expect_eq(r.completions, 1);
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, a_recv_with_data_waiting_completes_inline_through_wait)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    cr_expect(tw_write_all(c, "early", 5));
    Sleep(50);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect_eq(r.completions, 0);
    struct iocp_event ev[4];
    int n = ops->wait(port, ev, 4, 0);
    cr_expect_eq(n, 1, "the inline completion is ready at once");
    dispatch(ev, n > 0 ? n : 0);
    cr_expect_eq(r.last_result, 5);
    closesocket(c);
    release_handle(&h);
}

struct writer_job {
    SOCKET s;
    const unsigned char *data;
    size_t len;
};

static DWORD WINAPI writer_thread(void *arg)
{
    struct writer_job *j = arg;
    bool ok = tw_write_all(j->s, j->data, j->len) && shutdown(j->s, SD_SEND) == 0;
    return ok ? 0 : 1;
}

Test(port_iocp, a_multishot_provided_recv_delivers_a_stream_in_order_then_eof)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    size_t total = 512 * 1024; /* many times the port's 16 x 4 KiB buffers */
    unsigned char *out = malloc(total), *in = malloc(total);
    tw_pattern(out, total, 2, 0);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    r.sink = in;
    r.sink_cap = total;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    struct writer_job job = {c, out, total};
    HANDLE t = CreateThread(NULL, 0, writer_thread, &job, 0, NULL);
    cr_assert(pump(rec_ended, &r, 20000), "stream did not end: %zu of %zu bytes", r.bytes, total);
    DWORD code = 1;
    WaitForSingleObject(t, INFINITE);
    GetExitCodeThread(t, &code);
    CloseHandle(t);
    cr_expect_eq(code, 0u);
    cr_expect_eq(r.last_result, 0, "the last completion is the EOF, got %d", r.last_result);
    cr_expect_eq(r.bytes, total);
    cr_expect_eq(memcmp(in, out, total), 0, "bytes arrive in order");
    cr_expect_gt(r.completions, 2, "one request, many completions");
    free(out);
    free(in);
    closesocket(c);
    release_handle(&h);
}

/*
 * The budget of a provided receive (port.h): with 64 KiB already in the
 * socket, each arming with a budget of 10,000 bytes brings in at most that
 * much and then ends, and arming again continues the stream in order.
 */
Test(port_iocp, a_provided_recv_with_a_budget_brings_in_no_more_and_then_ends)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    size_t total = 64 * 1024;
    const uint32_t budget = 10000;
    unsigned char *out = malloc(total), *in = malloc(total);
    tw_pattern(out, total, 5, 0);
    cr_assert(tw_write_all(c, out, total));
    cr_assert_eq(shutdown(c, SD_SEND), 0);

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
        got += r.bytes;
        eof = r.last_result == 0;
    }
    cr_expect(eof, "the stream ends in EOF");
    cr_expect_eq(got, total);
    cr_expect_eq(memcmp(in, out, total), 0, "bytes arrive in order across armings");
    cr_expect_gt(arms, (int)(total / budget), "no arming went past its budget");
    free(out);
    free(in);
    closesocket(c);
    release_handle(&h);
}

/* The same stream with the buffers kept busy: completions are dispatched
 * late, so that receives park while every buffer is lent out. */
Test(port_iocp, receives_park_while_every_buffer_is_lent_and_lose_nothing)
{
    enum { CONNS = 24 };
    struct iocp_handle h[CONNS];
    SOCKET c[CONNS];
    struct rec r[CONNS];
    size_t each = 64 * 1024;
    unsigned char *out = malloc(each);
    tw_pattern(out, each, 3, 0);
    unsigned char *in[CONNS];
    for (int i = 0; i < CONNS; i++) {
        connected_pair(&h[i], &c[i]);
        in[i] = malloc(each);
        rec_init(&r[i], &h[i], IOCP_OP_RECV);
        r[i].req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
        r[i].sink = in[i];
        r[i].sink_cap = each;
        cr_assert_eq(ops->submit(port, &r[i].req), 0);
    }
    HANDLE t[CONNS];
    struct writer_job jobs[CONNS];
    for (int i = 0; i < CONNS; i++) {
        jobs[i] = (struct writer_job){c[i], out, each};
        t[i] = CreateThread(NULL, 0, writer_thread, &jobs[i], 0, NULL);
    }
    uint64_t end = tw_now_ms() + 30000;
    int ended = 0;
    while (ended < CONNS && tw_now_ms() < end) {
        struct iocp_event ev[64];
        int n = ops->wait(port, ev, 64, 20);
        dispatch(ev, n);
        ended = 0;
        for (int i = 0; i < CONNS; i++)
            ended += r[i].ended;
    }
    cr_expect_eq(ended, CONNS);
    for (int i = 0; i < CONNS; i++) {
        WaitForSingleObject(t[i], INFINITE);
        CloseHandle(t[i]);
        cr_expect_eq(r[i].bytes, each, "connection %d", i);
        cr_expect_eq(memcmp(in[i], out, each), 0, "connection %d: bytes in order", i);
        free(in[i]);
        closesocket(c[i]);
        release_handle(&h[i]);
    }
    free(out);
}

Test(port_iocp, cancel_of_a_pending_recv_completes_it_with_ecanceled)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    pump(NULL, NULL, 50);
    cr_expect_eq(r.completions, 0);
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000), "a cancelled request must still complete");
    cr_expect_eq(r.last_result, IOCP_ECANCELED, "got %s", iocp_err_name(r.last_result));
    cr_expect_eq(r.completions, 1);
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, cancel_of_an_armed_multishot_recv_ends_it_and_keeps_the_data)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tw_write_all(c, "abc", 3));
    uint64_t end = tw_now_ms() + 5000;
    while (r.bytes < 3 && tw_now_ms() < end)
        pump(NULL, NULL, 20);
    cr_expect_eq(r.bytes, 3u);
    cr_expect_not(r.ended, "a multishot recv stays armed");
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECANCELED, "got %s", iocp_err_name(r.last_result));

    /* Data sent while nothing reads waits in the socket for the next one. */
    cr_expect(tw_write_all(c, "defg", 4));
    Sleep(50);
    struct rec again;
    rec_init(&again, &h, IOCP_OP_RECV);
    again.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    unsigned char sink[8];
    again.sink = sink;
    again.sink_cap = sizeof sink;
    cr_assert_eq(ops->submit(port, &again.req), 0);
    end = tw_now_ms() + 5000;
    while (again.bytes < 4 && tw_now_ms() < end)
        pump(NULL, NULL, 20);
    cr_expect_eq(again.bytes, 4u);
    cr_expect_eq(memcmp(sink, "defg", 4), 0);
    ops->cancel(port, &again.req);
    cr_assert(pump(rec_ended, &again, 5000));
    closesocket(c);
    release_handle(&h);
}

/* A callback that cancels its own multishot receive, as a connection does
 * when it pauses. */
static void cancel_from_callback(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    rec_done(req, result, flags, data);
    if (flags & IOCP_EV_MORE)
        ops->cancel(port, req);
}

Test(port_iocp, a_cancel_from_the_data_callback_ends_the_receive_on_release)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    r.req.done = cancel_from_callback;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tw_write_all(c, "xyz", 3));
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.bytes, 3u);
    cr_expect_eq(r.last_result, IOCP_ECANCELED);
    cr_expect_eq(r.completions, 2, "the data, then the end");
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, cancel_after_completion_changes_nothing)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_expect(tw_write_all(c, "x", 1));
    cr_assert(pump(rec_ended, &r, 5000));
    r.req.in_flight = true; /* as if not yet dispatched */
    ops->cancel(port, &r.req);
    r.req.in_flight = false;
    pump(NULL, NULL, 100);
    cr_expect_eq(r.completions, 1, "exactly one completion");
    cr_expect_eq(r.last_result, 1);
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, recv_reports_eof_when_the_peer_shuts_down)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    char in[16];
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    shutdown(c, SD_SEND);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0);
    closesocket(c);
    release_handle(&h);
}

Test(port_iocp, recv_reports_a_reset_as_econnreset)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    struct rec r;
    rec_init(&r, &h, IOCP_OP_RECV);
    r.req.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    pump(NULL, NULL, 50);
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(c, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof lg);
    closesocket(c);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect(r.last_result == IOCP_ECONNRESET || r.last_result == IOCP_ECONNABORTED, "got %s",
              iocp_err_name(r.last_result));
    release_handle(&h);
}

struct reader_job {
    SOCKET s;
    unsigned char *buf;
    size_t len;
    size_t got;
};

static DWORD WINAPI reader_thread(void *arg)
{
    struct reader_job *j = arg;
    j->got = tw_read_full(j->s, j->buf, j->len, 30000);
    return 0;
}

Test(port_iocp, a_large_send_completes_with_what_was_sent)
{
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    size_t total = 8 * 1024 * 1024, sent = 0;
    unsigned char *out = malloc(total), *in = malloc(total);
    tw_pattern(out, total, 4, 0);
    struct reader_job job = {c, in, total, 0};
    HANDLE t = CreateThread(NULL, 0, reader_thread, &job, 0, NULL);
    struct rec s;
    while (sent < total) {
        rec_init(&s, &h, IOCP_OP_SEND);
        s.req.buf = out + sent;
        s.req.len = (uint32_t)(total - sent);
        cr_assert_eq(ops->submit(port, &s.req), 0);
        cr_assert(pump(rec_ended, &s, 20000));
        cr_assert_gt(s.last_result, 0, "send: %s", iocp_strerror(s.last_result));
        sent += (size_t)s.last_result;
    }
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
    cr_expect_eq(job.got, total);
    cr_expect_eq(memcmp(in, out, total), 0, "the peer got every byte in order");
    free(out);
    free(in);
    closesocket(c);
    release_handle(&h);
}

/* ---- streams ---- */

Test(port_iocp, an_anonymous_pipe_is_served_by_threads_and_ends_in_eof)
{
    HANDLE rd, wr;
    cr_assert(CreatePipe(&rd, &wr, NULL, 0));
    struct iocp_handle rh, wh;
    iocp__handle_init(&rh, (iocp_socket_t)rd, iocp__handle_kind((iocp_socket_t)rd));
    iocp__handle_init(&wh, (iocp_socket_t)wr, iocp__handle_kind((iocp_socket_t)wr));
    cr_expect_eq(rh.kind, IOCP_HANDLE_PIPE);
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

    /* A cancelled read completes at once; what comes later is kept. */
    rec_init(&r, &rh, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert_eq(ops->cancel(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, IOCP_ECANCELED);
    DWORD put;
    cr_assert(WriteFile(wr, "kept", 4, &put, NULL));

    rec_init(&r, &rh, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 4);
    cr_expect_eq(memcmp(in, "kept", 4), 0);

    /* Closing the write end gives the reader EOF. */
    iocp__port_unbind(&wh);
    CloseHandle(wr);
    rec_init(&r, &rh, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0);
    iocp__port_unbind(&rh);
    CloseHandle(rd);
}

Test(port_iocp, an_overlapped_named_pipe_is_bound_to_the_port)
{
    char name[64];
    snprintf(name, sizeof name, "\\\\.\\pipe\\iocp-test-%lu", (unsigned long)GetCurrentProcessId());
    HANDLE srv = CreateNamedPipeA(name, PIPE_ACCESS_INBOUND | FILE_FLAG_OVERLAPPED,
                                  PIPE_TYPE_BYTE | PIPE_WAIT, 1, 4096, 4096, 0, NULL);
    cr_assert_neq(srv, INVALID_HANDLE_VALUE);
    HANDLE cli = CreateFileA(name, GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    cr_assert_neq(cli, INVALID_HANDLE_VALUE);
    struct iocp_handle h;
    iocp__handle_init(&h, (iocp_socket_t)srv, IOCP_HANDLE_PIPE);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    cr_expect_eq(h.reader, NULL, "overlapped: no thread");
    char in[16] = {0};
    struct rec r;
    rec_init(&r, &h, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    DWORD put;
    cr_assert(WriteFile(cli, "named", 5, &put, NULL));
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 5);
    cr_expect_eq(memcmp(in, "named", 5), 0);
    cr_expect_eq(h.reader, NULL, "no helper thread was needed");
    CloseHandle(cli);
    rec_init(&r, &h, IOCP_OP_READ);
    r.req.buf = in;
    r.req.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r.req), 0);
    cr_assert(pump(rec_ended, &r, 5000));
    cr_expect_eq(r.last_result, 0, "the writer left: EOF");
    iocp__port_unbind(&h);
    CloseHandle(srv);
}

Test(port_iocp, an_overlapped_file_is_read_to_its_end)
{
    char path[MAX_PATH], dir[MAX_PATH];
    GetTempPathA(sizeof dir, dir);
    GetTempFileNameA(dir, "ioc", 0, path);
    HANDLE f = CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, 0, NULL);
    cr_assert_neq(f, INVALID_HANDLE_VALUE);
    size_t total = 100000;
    unsigned char *data = malloc(total), *got = malloc(total);
    tw_pattern(data, total, 5, 0);
    DWORD put;
    cr_assert(WriteFile(f, data, (DWORD)total, &put, NULL));
    CloseHandle(f);
    f = CreateFileA(path, GENERIC_READ, 0, NULL, OPEN_EXISTING, FILE_FLAG_OVERLAPPED, NULL);
    cr_assert_neq(f, INVALID_HANDLE_VALUE);
    struct iocp_handle h;
    iocp__handle_init(&h, (iocp_socket_t)f, iocp__handle_kind((iocp_socket_t)f));
    cr_expect_eq(h.kind, IOCP_HANDLE_FILE);
    cr_assert_eq(iocp__port_bind(port, &h), 0);
    size_t have = 0;
    struct rec r;
    for (int i = 0; i < 100; i++) {
        rec_init(&r, &h, IOCP_OP_READ);
        r.req.buf = got + have;
        r.req.len = (uint32_t)(total - have < 30000 ? total - have : 30000);
        if (r.req.len == 0) {
            static unsigned char spare[16];
            r.req.buf = spare;
            r.req.len = sizeof spare;
        }
        cr_assert_eq(ops->submit(port, &r.req), 0);
        cr_assert(pump(rec_ended, &r, 5000));
        cr_assert_geq(r.last_result, 0, "read: %s", iocp_strerror(r.last_result));
        if (r.last_result == 0)
            break;
        have += (size_t)r.last_result;
    }
    cr_expect_eq(have, total);
    cr_expect_eq(memcmp(data, got, total), 0);
    iocp__port_unbind(&h);
    CloseHandle(f);
    DeleteFileA(path);
    free(data);
    free(got);
}

/* ---- what the Winsock layer gives ---- */

Test(port_iocp, extension_functions_load_through_the_socket_and_are_cached)
{
    iocp__wsx_reset();
    iocp_socket_t s = new_socket();
    const struct iocp_wsx *a, *b;
    cr_assert_eq(iocp__wsx_get(s, AF_INET, &a), 0);
    cr_expect_not_null(a->accept_ex);
    cr_expect_not_null(a->get_accept_ex_sockaddrs);
    cr_expect_not_null(a->connect_ex);
    cr_expect_not_null(a->disconnect_ex);
    cr_assert_eq(iocp__wsx_get(s, AF_INET, &b), 0);
    cr_expect_eq(a, b, "cached per family");
    cr_expect_eq(iocp__wsx_get(s, AF_IPX, &b), IOCP_EAFNOSUPPORT, "a family with no slot");
    closesocket((SOCKET)s);
    /* IPv6 has a slot of its own, loaded through an IPv6 socket. */
    if (iocp__socket_stream(AF_INET6, &s) == 0) {
        cr_expect_eq(iocp__wsx_get(s, AF_INET6, &b), 0);
        cr_expect_neq(a, b, "one slot per family");
        closesocket((SOCKET)s);
    }
}

Test(port_iocp, socket_reuse_is_on_by_default_but_off_under_wine_or_when_asked)
{
    /* TF_REUSE_SOCKET is not implemented by Wine: reuse must be off there. */
    cr_expect_eq(iocp__port_iocp_reuses(port), !iocp__running_on_wine());
    _putenv("IOCP_SOCKET_REUSE=0");
    struct iocp_port_config cfg = {.buffer_count = 4, .buffer_size = 4096, .workers = 1};
    struct iocp_port *off;
    int rc = ops->open(&off, &cfg);
    _putenv("IOCP_SOCKET_REUSE=");
    cr_assert_eq(rc, 0);
    cr_expect_not(iocp__port_iocp_reuses(off), "IOCP_SOCKET_REUSE=0 turns it off");
    /* Without reuse a closing socket is not taken: the caller closes it. */
    struct iocp_handle h;
    SOCKET c;
    connected_pair(&h, &c);
    iocp__port_unbind(&h);
    struct iocp_handle h2;
    iocp__handle_init(&h2, h.sock, IOCP_HANDLE_SOCKET);
    h2.bound = true;
    h2.port = off;
    h2.io = 0;
    cr_expect_not(ops->recycle(off, &h2));
    closesocket((SOCKET)h.sock);
    closesocket(c);
    ops->close(off);
}

Test(port_iocp, wine_is_recognised_when_it_runs_the_tests)
{
    const char *env = getenv("IOCP_EXPECT_WINE");
    if (!env)
        cr_skip_test("IOCP_EXPECT_WINE is not set");
    cr_expect_eq(iocp__running_on_wine(), env[0] == '1');
}
