/* SPDX-License-Identifier: MIT */
/*
 * What only the epoll backend does: regular files served without readiness,
 * edge-triggered reads that must keep going past one buffer, a recv parked
 * while every provided buffer is out, round-robin service between busy
 * handles, hang-ups that raise no second edge, sends that wait for EPOLLOUT,
 * a multishot accept that holds its socket until it was handed out, and
 * descriptors epoll refuses.  test_port.c checks the contract every backend
 * shares.
 */
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <criterion/criterion.h>

#include "port.h"
#include "testnet.h"
#include "thread.h"

static const struct iocp_port_ops *ops;
static struct iocp_port *port;

static void open_epoll(unsigned buffer_count, unsigned buffer_size)
{
    ops = iocp__port_find("epoll");
    cr_assert_not_null(ops, "the epoll backend is in every Linux build");
    cr_assert_eq(ops->shared, false);
    struct iocp_port_config cfg = {.buffer_count = buffer_count, .buffer_size = buffer_size};
    int rc = ops->open(&port, &cfg);
    cr_assert_eq(rc, 0, "open: %s", iocp_strerror(rc));
}

static void close_port(void)
{
    if (port)
        ops->close(port);
    port = NULL;
}

TestSuite(port_epoll, .fini = close_port, .timeout = 30);

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
    int rc = iocp__port_bind(port, h);
    cr_assert_eq(rc, 0, "bind: %s", iocp_strerror(rc));
}

static void release_handle(struct iocp_handle *h)
{
    iocp__port_unbind(h);
    close(h->sock);
}

/* Wait for one completion, for up to timeout_ms; false when none came. */
static bool wait_one(struct iocp_event *ev, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        int n = ops->wait(port, ev, 1, 20);
        cr_assert_geq(n, 0, "wait: %s", iocp_strerror(n));
        if (n == 1)
            return true;
        if (tn_now_ms() >= end)
            return false;
    }
}

/* A connected AF_UNIX stream pair: *h is the port's side, *peer a blocking
 * socket for the test.  Unix sockets charge data to the sender until it is
 * read, so "the buffer is full" stays full until the test reads. */
static void unix_pair(struct iocp_handle *h, int *peer)
{
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    bind_handle(h, sv[0], IOCP_HANDLE_SOCKET);
    *peer = sv[1];
}

/* A connected loopback TCP pair, the port's side accepted nonblocking. */
static void tcp_pair(struct iocp_handle *h, int *client)
{
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    *client = tn_connect(lport);
    cr_assert_geq(*client, 0);
    int sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    cr_assert_geq(sfd, 0);
    close(lfd);
    bind_handle(h, sfd, IOCP_HANDLE_SOCKET);
}

/* Write until the socket is full (the peer end made nonblocking for it). */
static size_t fill(int fd, uint64_t seed)
{
    static unsigned char chunk[65536];
    size_t total = 0;
    tn_set_nonblock(fd, true);
    for (;;) {
        tn_pattern(chunk, sizeof chunk, seed, total);
        ssize_t n = write(fd, chunk, sizeof chunk);
        if (n <= 0)
            break;
        total += (size_t)n;
    }
    tn_set_nonblock(fd, false);
    return total;
}

static char *temp_path(void)
{
    static char path[64];
    strcpy(path, "/tmp/iocp-epoll-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    return path;
}

Test(port_epoll, a_regular_file_is_written_and_read_through_file_handles)
{
    open_epoll(4, 4096);
    char *path = temp_path();
    int wfd = open(path, O_WRONLY | O_CLOEXEC);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    unlink(path);
    cr_assert_geq(wfd, 0);
    cr_assert_geq(rfd, 0);
    struct iocp_handle wh, rh;
    bind_handle(&wh, wfd, IOCP_HANDLE_FILE);
    bind_handle(&rh, rfd, IOCP_HANDLE_FILE);

    /* Two writes follow the file position: the second lands after the first. */
    struct iocp_req w;
    struct iocp_event ev;
    const char *parts[2] = {"completion ", "ports"};
    for (int i = 0; i < 2; i++) {
        req_init(&w, &wh, IOCP_OP_WRITE, 0);
        w.buf = (void *)parts[i];
        w.len = (uint32_t)strlen(parts[i]);
        cr_assert_eq(ops->submit(port, &w), 0);
        cr_assert(wait_one(&ev, 2000), "a file write completes in the next round");
        cr_expect_eq(ev.req, &w);
        cr_expect_eq(ev.result, (int32_t)strlen(parts[i]));
        cr_expect_not(w.in_flight);
    }

    char in[64] = {0};
    struct iocp_req r;
    req_init(&r, &rh, IOCP_OP_READ, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 16);
    cr_expect_eq(memcmp(in, "completion ports", 16), 0);
    cr_expect_eq(ev.data, in);

    /* At the end of the file a read completes with 0 instead of waiting. */
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 0);
    release_handle(&wh);
    release_handle(&rh);
}

Test(port_epoll, a_multishot_provided_read_walks_a_regular_file_to_its_end)
{
    open_epoll(4, 4096);
    char *path = temp_path();
    size_t total = 100000;
    unsigned char *out = malloc(total), *in = calloc(1, total);
    tn_pattern(out, total, 9, 0);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    unlink(path);
    cr_assert(tn_write_all(fd, out, total));
    lseek(fd, 0, SEEK_SET);
    struct iocp_handle h;
    bind_handle(&h, fd, IOCP_HANDLE_FILE);

    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_READ, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &r), 0);
    size_t got = 0;
    struct iocp_event ev;
    for (int i = 0; i < 1000; i++) {
        cr_assert(wait_one(&ev, 2000));
        if (!(ev.flags & IOCP_EV_MORE))
            break;
        cr_assert(ev.flags & IOCP_EV_BUFFER);
        cr_assert_leq(got + (size_t)ev.result, total);
        memcpy(in + got, ev.data, (size_t)ev.result);
        got += (size_t)ev.result;
        ops->release_buffer(port, ev.buf_id);
    }
    cr_expect_eq(ev.result, 0, "the last completion is the end of the file");
    cr_expect_eq(got, total);
    cr_expect_eq(memcmp(in, out, total), 0);
    free(out);
    free(in);
    release_handle(&h);
}

struct writer {
    int fd;
    const unsigned char *buf;
    size_t len;
    bool ok;
};

static void *write_all_then_shut(void *arg)
{
    struct writer *w = arg;
    w->ok = tn_write_all(w->fd, w->buf, w->len) && shutdown(w->fd, SHUT_WR) == 0;
    return NULL;
}

Test(port_epoll, one_mebibyte_sent_at_once_arrives_whole_and_in_order)
{
    /* Edge-triggered: the one edge of a large arrival must not be mistaken
     * for one buffer's worth of data. */
    open_epoll(8, 16384);
    struct iocp_handle h;
    int c;
    tcp_pair(&h, &c);
    size_t total = 1024 * 1024;
    unsigned char *out = malloc(total), *in = calloc(1, total);
    tn_pattern(out, total, 4, 0);

    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &r), 0);
    struct writer w = {.fd = c, .buf = out, .len = total};
    pthread_t t;
    pthread_create(&t, NULL, write_all_then_shut, &w);

    size_t got = 0;
    int chunks = 0;
    struct iocp_event ev = {0};
    uint64_t end = tn_now_ms() + 15000;
    while (tn_now_ms() < end) {
        if (!wait_one(&ev, 1000))
            continue;
        cr_assert_eq(ev.req, &r);
        if (!(ev.flags & IOCP_EV_MORE))
            break;
        cr_assert(ev.flags & IOCP_EV_BUFFER);
        cr_assert_gt(ev.result, 0);
        cr_assert_leq(got + (size_t)ev.result, total);
        memcpy(in + got, ev.data, (size_t)ev.result);
        got += (size_t)ev.result;
        chunks++;
        ops->release_buffer(port, ev.buf_id);
    }
    pthread_join(t, NULL);
    cr_expect(w.ok);
    cr_expect_eq(ev.result, 0, "ended by EOF, got %d", ev.result);
    cr_expect_not(ev.flags & IOCP_EV_MORE);
    cr_expect_eq(got, total);
    cr_expect_eq(memcmp(in, out, total), 0, "in order");
    cr_expect_geq(chunks, (int)(total / 16384));
    cr_expect_not(r.in_flight);
    free(out);
    free(in);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_recv_waits_while_every_buffer_is_out_and_resumes_on_release)
{
    open_epoll(2, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &r), 0);

    unsigned char chunk[4096];
    uint32_t held[2];
    for (int i = 0; i < 2; i++) {
        tn_pattern(chunk, sizeof chunk, 5, (uint64_t)i * sizeof chunk);
        cr_assert(tn_write_all(c, chunk, sizeof chunk));
        struct iocp_event ev;
        cr_assert(wait_one(&ev, 2000));
        cr_assert(ev.flags & IOCP_EV_BUFFER);
        cr_assert(ev.flags & IOCP_EV_MORE);
        cr_assert_eq(ev.result, 4096);
        cr_expect_eq(memcmp(ev.data, chunk, sizeof chunk), 0);
        held[i] = ev.buf_id;
    }
    cr_expect_neq(held[0], held[1]);

    /* Both buffers are out: the data waits, the request neither fails nor ends. */
    cr_assert(tn_write_all(c, "after", 5));
    struct iocp_event ev;
    cr_expect_not(wait_one(&ev, 200), "nothing can arrive without a buffer");
    cr_expect(r.in_flight);

    ops->release_buffer(port, held[0]);
    cr_assert(wait_one(&ev, 2000), "a released buffer lets the data in");
    cr_expect_eq(ev.req, &r);
    cr_expect_eq(ev.result, 5);
    cr_expect(ev.flags & IOCP_EV_MORE);
    cr_expect_eq(ev.buf_id, held[0]);
    cr_expect_eq(memcmp(ev.data, "after", 5), 0);
    ops->release_buffer(port, ev.buf_id);
    ops->release_buffer(port, held[1]);
    /* A second release of the same buffer is ignored, not lent twice. */
    ops->release_buffer(port, held[1]);

    cr_assert_eq(ops->cancel(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, IOCP_ECANCELED);
    cr_expect_not(ev.flags & IOCP_EV_MORE);
    close(c);
    release_handle(&h);
}

Test(port_epoll, two_busy_handles_are_served_in_turn)
{
    open_epoll(8, 4096);
    struct iocp_handle h[2];
    int peer[2];
    size_t left[2];
    struct iocp_req r[2];
    for (int i = 0; i < 2; i++) {
        unix_pair(&h[i], &peer[i]);
        left[i] = fill(peer[i], 6 + (uint64_t)i);
        cr_assert_gt(left[i], 16 * 4096, "each side holds many buffers' worth");
        req_init(&r[i], &h[i], IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
        cr_assert_eq(ops->submit(port, &r[i]), 0);
    }

    /* While both have data, neither gets more than one read ahead: one
     * read per turn, which fills up to two buffers (two completions). */
    int served[2] = {0, 0}, max_lead = 0;
    struct iocp_event ev[16];
    uint64_t end = tn_now_ms() + 10000;
    while ((left[0] || left[1]) && tn_now_ms() < end) {
        int n = ops->wait(port, ev, 16, 100);
        cr_assert_geq(n, 0);
        for (int k = 0; k < n; k++) {
            int i = ev[k].req == &r[0] ? 0 : 1;
            cr_assert_eq(ev[k].req, &r[i]);
            cr_assert(ev[k].flags & IOCP_EV_BUFFER);
            cr_assert_leq((size_t)ev[k].result, left[i]);
            left[i] -= (size_t)ev[k].result;
            served[i]++;
            if (left[0] && left[1]) {
                int lead = abs(served[0] - served[1]);
                if (lead > max_lead)
                    max_lead = lead;
            }
            ops->release_buffer(port, ev[k].buf_id);
        }
    }
    cr_expect_eq(left[0], 0);
    cr_expect_eq(left[1], 0);
    cr_expect_leq(max_lead, 2, "one handle got %d completions ahead", max_lead);
    for (int i = 0; i < 2; i++) {
        cr_assert_eq(ops->cancel(port, &r[i]), 0);
        close(peer[i]);
    }
    struct iocp_event one;
    for (int i = 0; i < 2; i++) {
        cr_assert(wait_one(&one, 2000));
        cr_expect_eq(one.result, IOCP_ECANCELED);
    }
    release_handle(&h[0]);
    release_handle(&h[1]);
}

Test(port_epoll, data_and_a_half_close_that_came_together_give_data_then_eof)
{
    /* The FIN raised its edge before the first read; a short read must not
     * make the port wait for another one. */
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    tcp_pair(&h, &c);
    cr_assert(tn_write_all(c, "last words", 10));
    shutdown(c, SHUT_WR);
    struct iocp_event ev;
    cr_expect_not(wait_one(&ev, 100), "nothing was asked for");

    char in[64];
    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_RECV, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 10);
    cr_expect_eq(memcmp(in, "last words", 10), 0);
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000), "the EOF comes without a new edge");
    cr_expect_eq(ev.result, 0);
    /* EOF stays: asking again answers again. */
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 0);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_multishot_recv_ends_with_eof_after_the_last_data)
{
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_RECV, IOCP_REQ_MULTI | IOCP_REQ_PROVIDED);
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(tn_write_all(c, "one", 3));
    struct iocp_event ev;
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 3);
    cr_expect_eq(ev.flags, IOCP_EV_MORE | IOCP_EV_BUFFER);
    ops->release_buffer(port, ev.buf_id);
    cr_assert(tn_write_all(c, "two", 3));
    shutdown(c, SHUT_WR);
    size_t got = 0;
    for (int i = 0; i < 10; i++) {
        cr_assert(wait_one(&ev, 2000));
        if (ev.flags & IOCP_EV_BUFFER) {
            got += (size_t)ev.result;
            ops->release_buffer(port, ev.buf_id);
        }
        if (!(ev.flags & IOCP_EV_MORE))
            break;
    }
    cr_expect_eq(got, 3);
    cr_expect_eq(ev.result, 0);
    cr_expect_eq(ev.flags, 0, "EOF carries neither MORE nor a buffer");
    cr_expect_null(ev.data);
    cr_expect_not(r.in_flight);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_send_into_a_full_socket_waits_for_epollout)
{
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    size_t total = 4 * 1024 * 1024, sent = 0, got = 0;
    unsigned char *out = malloc(total), *in = malloc(total);
    tn_pattern(out, total, 7, 0);

    /* The first send fills the buffer and completes with what fitted. */
    struct iocp_req s;
    struct iocp_event ev;
    req_init(&s, &h, IOCP_OP_SEND, 0);
    s.buf = out;
    s.len = (uint32_t)total;
    cr_assert_eq(ops->submit(port, &s), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_assert_gt(ev.result, 0);
    cr_assert_lt((size_t)ev.result, total, "a 4 MiB send cannot fit at once");
    sent = (size_t)ev.result;

    /* The next waits: nobody reads, so no EPOLLOUT edge comes. */
    req_init(&s, &h, IOCP_OP_SEND, 0);
    s.buf = out + sent;
    s.len = (uint32_t)(total - sent);
    cr_assert_eq(ops->submit(port, &s), 0);
    cr_expect_not(wait_one(&ev, 200), "a send into a full socket waits");
    cr_expect(s.in_flight);

    /* Reading makes room: EPOLLOUT completes it, and so on until done. */
    tn_set_nonblock(c, true);
    uint64_t end = tn_now_ms() + 20000;
    bool waiting = true;
    while ((got < total || waiting) && tn_now_ms() < end) {
        ssize_t n = read(c, in + got, total - got);
        if (n > 0)
            got += (size_t)n;
        int k = ops->wait(port, &ev, 1, n > 0 ? 0 : 5);
        cr_assert_geq(k, 0);
        if (k == 1) {
            cr_assert_eq(ev.req, &s);
            cr_assert_gt(ev.result, 0, "send: %s", iocp_strerror(ev.result));
            sent += (size_t)ev.result;
            waiting = false;
            if (sent < total) {
                req_init(&s, &h, IOCP_OP_SEND, 0);
                s.buf = out + sent;
                s.len = (uint32_t)(total - sent);
                cr_assert_eq(ops->submit(port, &s), 0);
                waiting = true;
            }
        }
    }
    cr_expect_eq(sent, total);
    cr_expect_eq(got, total);
    cr_expect_eq(memcmp(in, out, total), 0, "every byte, in order");
    free(out);
    free(in);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_send_completes_through_wait_never_from_submit)
{
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    struct iocp_req s;
    req_init(&s, &h, IOCP_OP_SEND, 0);
    s.buf = "now";
    s.len = 3;
    cr_assert_eq(ops->submit(port, &s), 0);
    cr_expect(s.in_flight, "in flight until wait() hands the completion out");
    char got[3];
    cr_expect_eq(tn_read_full(c, got, 3, 2000), 3, "the bytes may leave at once");
    struct iocp_event ev;
    cr_assert_eq(ops->wait(port, &ev, 1, 0), 1);
    cr_expect_eq(ev.req, &s);
    cr_expect_eq(ev.result, 3);
    cr_expect_not(s.in_flight);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_second_request_in_the_same_direction_is_busy)
{
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    char a[8], b[8];
    struct iocp_req r1, r2, s;
    req_init(&r1, &h, IOCP_OP_RECV, 0);
    r1.buf = a;
    r1.len = sizeof a;
    req_init(&r2, &h, IOCP_OP_RECV, 0);
    r2.buf = b;
    r2.len = sizeof b;
    cr_assert_eq(ops->submit(port, &r1), 0);
    cr_expect_eq(ops->submit(port, &r2), IOCP_EBUSY);
    cr_expect_not(r2.in_flight, "a refused request stays the caller's");
    cr_expect_eq(ops->submit(port, &r1), IOCP_EBUSY, "a request in flight cannot go twice");
    /* The other direction is free. */
    req_init(&s, &h, IOCP_OP_SEND, 0);
    s.buf = "x";
    s.len = 1;
    cr_expect_eq(ops->submit(port, &s), 0);
    cr_assert_eq(ops->cancel(port, &r1), 0);
    int seen = 0;
    struct iocp_event ev;
    while (seen < 2 && wait_one(&ev, 2000))
        seen++;
    cr_expect_eq(seen, 2);
    close(c);
    release_handle(&h);
}

Test(port_epoll, a_multishot_accept_hands_out_each_socket_before_taking_the_next)
{
    open_epoll(4, 4096);
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    struct iocp_handle lh;
    bind_handle(&lh, lfd, IOCP_HANDLE_SOCKET);
    struct sockaddr_storage peer;
    struct iocp_req a;
    req_init(&a, &lh, IOCP_OP_ACCEPT, IOCP_REQ_MULTI);
    a.addr = &peer;
    a.addrlen = sizeof peer;
    cr_assert_eq(ops->submit(port, &a), 0);

    /* Five connections wait in the backlog before the port looks. */
    enum { N = 5 };
    int clients[N], accepted[N];
    for (int i = 0; i < N; i++) {
        clients[i] = tn_connect(lport);
        cr_assert_geq(clients[i], 0);
    }
    struct iocp_event ev[8];
    int got = 0;
    uint64_t end = tn_now_ms() + 5000;
    while (got < N && tn_now_ms() < end) {
        int n = ops->wait(port, ev, 8, 50);
        cr_assert_leq(n, 1, "the accepted socket lives in the request: one at a time");
        if (n == 1) {
            cr_assert_eq(ev[0].result, 0, "accept: %s", iocp_strerror(ev[0].result));
            cr_assert(ev[0].flags & IOCP_EV_MORE);
            cr_assert_geq(a.accepted, 0);
            cr_expect_eq(((struct sockaddr_in *)&peer)->sin_family, AF_INET);
            cr_expect(fcntl(a.accepted, F_GETFL) & O_NONBLOCK);
            cr_expect(fcntl(a.accepted, F_GETFD) & FD_CLOEXEC);
            accepted[got++] = a.accepted;
        }
    }
    cr_assert_eq(got, N);
    for (int i = 0; i < N; i++)
        for (int j = i + 1; j < N; j++)
            cr_expect_neq(accepted[i], accepted[j]);
    cr_assert_eq(ops->cancel(port, &a), 0);
    cr_assert(wait_one(&ev[0], 2000));
    cr_expect_eq(ev[0].result, IOCP_ECANCELED);
    cr_expect_not(ev[0].flags & IOCP_EV_MORE);
    cr_expect_not(a.in_flight);
    for (int i = 0; i < N; i++) {
        close(accepted[i]);
        close(clients[i]);
    }
    release_handle(&lh);
}

Test(port_epoll, a_multishot_accept_takes_no_second_socket_while_one_is_undelivered)
{
    /* A round that runs while an accept completion is still queued (the
     * caller asked for fewer events than were ready) must not accept again:
     * the new socket would overwrite the undelivered one in the request. */
    open_epoll(4, 4096);
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    struct iocp_handle lh;
    bind_handle(&lh, lfd, IOCP_HANDLE_SOCKET);
    struct iocp_req a;
    req_init(&a, &lh, IOCP_OP_ACCEPT, IOCP_REQ_MULTI);
    cr_assert_eq(ops->submit(port, &a), 0);
    int clients[3];
    for (int i = 0; i < 3; i++)
        clients[i] = tn_connect(lport);
    cr_assert_eq(ops->post(port, 1, 1), 0);

    /* The packet and the first accept come out of one round; take only the
     * packet, then ask for many. */
    struct iocp_event ev[8];
    cr_assert(wait_one(&ev[0], 2000));
    cr_assert_null(ev[0].req, "packets are queued before the round's I/O");
    int n = ops->wait(port, ev, 8, 100);
    cr_assert_eq(n, 1, "exactly the undelivered accept, got %d events", n);
    cr_assert_eq(ev[0].req, &a);
    int first = a.accepted;
    cr_assert_geq(first, 0);
    struct sockaddr_storage mine, theirs;
    socklen_t l1 = sizeof mine, l2 = sizeof theirs;
    getpeername(first, (struct sockaddr *)&mine, &l1);
    getsockname(clients[0], (struct sockaddr *)&theirs, &l2);
    cr_expect_eq(((struct sockaddr_in *)&mine)->sin_port, ((struct sockaddr_in *)&theirs)->sin_port,
                 "the first socket handed out is the first client's");
    int others = 0;
    for (int i = 0; i < 20 && others < 2; i++) {
        if (ops->wait(port, ev, 8, 50) == 1) {
            cr_expect_neq(a.accepted, first);
            close(a.accepted);
            others++;
        }
    }
    cr_expect_eq(others, 2);
    cr_assert_eq(ops->cancel(port, &a), 0);
    cr_assert(wait_one(&ev[0], 2000));
    cr_expect_eq(ev[0].result, IOCP_ECANCELED);
    close(first);
    for (int i = 0; i < 3; i++)
        close(clients[i]);
    release_handle(&lh);
}

Test(port_epoll, a_connect_is_not_fooled_by_the_edge_of_a_fresh_socket)
{
    /* A socket bound before connect() polls as writable and hung up; that
     * edge must not complete the connect early or as a failure. */
    open_epoll(4, 4096);
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    struct iocp_handle h;
    bind_handle(&h, socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), IOCP_HANDLE_SOCKET);
    struct iocp_event ev;
    cr_expect_not(wait_one(&ev, 50));
    struct sockaddr_storage target;
    struct sockaddr_in sa = tn_loopback(lport);
    memcpy(&target, &sa, sizeof sa);
    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_CONNECT, 0);
    r.addr = &target;
    r.addrlen = sizeof sa;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 0, "connect: %s", iocp_strerror(ev.result));
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    cr_expect_eq(getpeername(h.sock, (struct sockaddr *)&ss, &len), 0);

    /* And the connection carries data both ways through the port. */
    int sfd = accept(lfd, NULL, NULL);
    cr_assert_geq(sfd, 0);
    cr_assert(tn_write_all(sfd, "hi", 2));
    char in[8];
    req_init(&r, &h, IOCP_OP_RECV, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, 2);
    close(sfd);
    close(lfd);
    release_handle(&h);
}

Test(port_epoll, a_write_to_a_pipe_without_reader_reports_epipe_and_raises_no_signal)
{
    open_epoll(4, 4096);
    int fds[2];
    cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
    close(fds[0]);
    struct iocp_handle h;
    bind_handle(&h, fds[1], IOCP_HANDLE_PIPE);
    cr_expect(fcntl(fds[1], F_GETFL) & O_NONBLOCK, "bind makes a pipe nonblocking");
    struct iocp_req w;
    req_init(&w, &h, IOCP_OP_WRITE, IOCP_REQ_NOSIGNAL);
    w.buf = "lost";
    w.len = 4;
    cr_assert_eq(ops->submit(port, &w), 0);
    struct iocp_event ev;
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.result, IOCP_EPIPE, "got %s", iocp_err_name(ev.result));
    sigset_t pending;
    sigpending(&pending);
    cr_expect_not(sigismember(&pending, SIGPIPE));
    release_handle(&h);
}

Test(port_epoll, a_device_that_epoll_refuses_is_served_as_always_ready)
{
    open_epoll(4, 4096);
    int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    cr_assert_geq(fd, 0);
    struct iocp_handle h;
    bind_handle(&h, fd, IOCP_HANDLE_PIPE);
    char buf[16];
    struct iocp_req r, w;
    req_init(&r, &h, IOCP_OP_READ, 0);
    r.buf = buf;
    r.len = sizeof buf;
    req_init(&w, &h, IOCP_OP_WRITE, 0);
    w.buf = "gone";
    w.len = 4;
    cr_assert_eq(ops->submit(port, &r), 0);
    cr_assert_eq(ops->submit(port, &w), 0);
    int seen = 0;
    struct iocp_event ev;
    while (seen < 2 && wait_one(&ev, 2000)) {
        seen++;
        cr_expect_eq(ev.result, ev.req == &r ? 0 : 4);
    }
    cr_expect_eq(seen, 2);
    release_handle(&h);
}

static void *post_later(void *arg)
{
    iocp__sleep_ms(100);
    ops->post(port, 42, (uint64_t)(uintptr_t)arg);
    return NULL;
}

Test(port_epoll, a_post_from_another_thread_wakes_a_blocked_wait)
{
    open_epoll(4, 4096);
    pthread_t t;
    pthread_create(&t, NULL, post_later, (void *)(uintptr_t)99);
    struct iocp_event ev[4];
    uint64_t start = tn_now_ms();
    int n = ops->wait(port, ev, 4, 5000);
    pthread_join(t, NULL);
    cr_assert_eq(n, 1);
    cr_expect_lt(tn_now_ms() - start, 4000, "woken by the post, not the time-out");
    cr_expect_null(ev[0].req);
    cr_expect_eq(ev[0].code, 42);
    cr_expect_eq(ev[0].arg, 99);
}

Test(port_epoll, unbind_with_a_request_still_waiting_completes_it_as_cancelled)
{
    open_epoll(4, 4096);
    struct iocp_handle h;
    int c;
    unix_pair(&h, &c);
    char in[8];
    struct iocp_req r;
    req_init(&r, &h, IOCP_OP_RECV, 0);
    r.buf = in;
    r.len = sizeof in;
    cr_assert_eq(ops->submit(port, &r), 0);
    release_handle(&h);
    struct iocp_event ev;
    cr_assert(wait_one(&ev, 2000));
    cr_expect_eq(ev.req, &r);
    cr_expect_eq(ev.result, IOCP_ECANCELED);
    cr_expect_not(r.in_flight);
    close(c);
}
