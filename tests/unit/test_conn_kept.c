/* SPDX-License-Identifier: MIT */
/*
 * Sending straight from a receive buffer (conn.c, send_kept): where the
 * port lets a connection keep the buffer a receive landed in (io_uring), an
 * echo's reply goes out from that buffer, and the buffer returns to the port
 * only when the send is done.  With a port of four small buffers, these
 * tests check what a user would see go wrong if a buffer were lost or
 * reused too early: every byte comes back in order on many connections at
 * once, replies the peer does not read yet (the send completes in parts)
 * still arrive whole, the bytes read on one connection and sent on another
 * arrive whole, and aborting connections with replies in flight leaves
 * the port serving new ones.  Run on every backend: where buffers are not
 * kept, the same echoes go through the copy.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "engine_fixture.h"
#include "fault.h"
#include "testnet.h"

#define BUFFERS     4u
#define BUFFER_SIZE 4096u

static struct iocp_engine *engine;
static struct iocp_server *server;
static uint16_t port;

static void start_with(const struct iocp_conn_handler *h, unsigned buffers)
{
    struct iocp_engine_config cfg = {
        .workers = 1, .recv_buffers = buffers, .recv_buffer_size = BUFFER_SIZE};
    ef_start(&engine, &cfg);
    struct iocp_server_config sc = {.host = "127.0.0.1", .handler = h};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), 0);
    port = iocp_server_port(server);
}

static void start(const struct iocp_conn_handler *h)
{
    start_with(h, BUFFERS);
}

static void stop_and_audit(void)
{
    ef_stop_and_audit(&engine, &server);
}

TestSuite(conn_kept, .fini = stop_and_audit, .timeout = 120);

static void echo_data(struct iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
}

static void ignore_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
}

static const struct iocp_conn_handler echo_handler = {.on_data = echo_data,
                                                      .on_close = ignore_close};

/*
 * Write out[0..len) to each of n non-blocking sockets and read as much back
 * from each, all at once, in bounded time; chunk caps each write, so the
 * server sees many small receives or few large ones.  Returns the number of
 * sockets whose echo came back complete and equal to what was sent.
 */
static unsigned pump(int *fds, unsigned n, const unsigned char *out, size_t len, size_t chunk,
                     unsigned timeout_ms)
{
    size_t *sent = calloc(n, sizeof *sent), *got = calloc(n, sizeof *got);
    unsigned char **in = calloc(n, sizeof *in);
    cr_assert(sent && got && in);
    for (unsigned i = 0; i < n; i++) {
        in[i] = malloc(len);
        cr_assert_not_null(in[i]);
        tn_set_nonblock(fds[i], true);
    }
    uint64_t end = tn_now_ms() + timeout_ms;
    unsigned done = 0;
    while (done < n && tn_now_ms() < end) {
        struct pollfd pfd[64];
        cr_assert(n <= 64);
        for (unsigned i = 0; i < n; i++) {
            pfd[i].fd = fds[i];
            pfd[i].events = (short)((got[i] < len ? POLLIN : 0) | (sent[i] < len ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        if (poll(pfd, n, 100) <= 0)
            continue;
        done = 0;
        for (unsigned i = 0; i < n; i++) {
            if ((pfd[i].revents & POLLOUT) && sent[i] < len) {
                size_t want = len - sent[i] < chunk ? len - sent[i] : chunk;
                ssize_t k = send(fds[i], out + sent[i], want, MSG_NOSIGNAL);
                if (k > 0)
                    sent[i] += (size_t)k;
            }
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && got[i] < len) {
                ssize_t k = recv(fds[i], in[i] + got[i], len - got[i], 0);
                if (k > 0)
                    got[i] += (size_t)k;
            }
            if (got[i] == len)
                done++;
        }
    }
    unsigned ok = 0;
    for (unsigned i = 0; i < n; i++) {
        if (got[i] == len && memcmp(in[i], out, len) == 0)
            ok++;
        free(in[i]);
    }
    free(in);
    free(sent);
    free(got);
    return ok;
}

Test(conn_kept, many_connections_echo_every_byte_in_order_through_four_buffers)
{
    enum { CONNS = 16, LEN = 256 * 1024 };
    start(&echo_handler);
    unsigned char *out = malloc(LEN);
    cr_assert_not_null(out);
    tn_pattern(out, LEN, 3, 0);
    int fds[CONNS];
    cr_assert(tn_connect_all(port, fds, CONNS));
    /* Small writes: many receives, each reply kept while the pool allows. */
    cr_assert_eq(pump(fds, CONNS, out, LEN / 4, 100, 60000), CONNS);
    /* Large writes: receives that fill whole buffers. */
    cr_assert_eq(pump(fds, CONNS, out, LEN, 65536, 60000), CONNS);
    for (unsigned i = 0; i < CONNS; i++)
        close(fds[i]);
    free(out);
}

/* A small send buffer on the server's socket: a reply then often finds room
 * for only part of itself, and its send completes in parts. */
static void small_sndbuf(struct iocp_conn *c)
{
    int size = 4096;
    setsockopt(iocp_conn_socket(c), SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
}

static const struct iocp_conn_handler small_sndbuf_echo_handler = {
    .on_open = small_sndbuf, .on_data = echo_data, .on_close = ignore_close};

Test(conn_kept, replies_the_peer_reads_late_arrive_whole)
{
    enum { LEN = 512 * 1024, PIECE = 3000 };
    /* Buffers to spare, so that replies are sent from them even while the
     * peer reads nothing. */
    start_with(&small_sndbuf_echo_handler, 64);
    unsigned char *out = malloc(LEN), *in = malloc(LEN);
    cr_assert(out && in);
    tn_pattern(out, LEN, 5, 0);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    /* A small receive window on our side, and small pieces written while we
     * read nothing: each piece is one receive whose reply goes out from its
     * buffer, until the replies fill our window and the server's socket,
     * and then those sends complete in parts, or wait, while the server
     * stops reading at its high watermark and our writes block. */
    int small = 16384;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    tn_set_nonblock(fd, true);
    size_t sent = 0, got = 0;
    uint64_t end = tn_now_ms() + 60000;
    while (sent < LEN && tn_now_ms() < end) {
        size_t want = LEN - sent < PIECE ? LEN - sent : PIECE;
        ssize_t k = send(fd, out + sent, want, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k;
            usleep(100); /* one receive per piece, mostly */
            continue;
        }
        /* Blocked: wait a moment for the server to be stuck too. */
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        if (poll(&pfd, 1, 200) <= 0)
            break;
    }
    cr_assert_gt(sent, 0);
    /* Then everything, both ways. */
    while (got < LEN && tn_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (sent < LEN ? POLLOUT : 0)};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        if ((pfd.revents & POLLOUT) && sent < LEN) {
            ssize_t k = send(fd, out + sent, LEN - sent, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t k = recv(fd, in + got, LEN - got, 0);
            if (k > 0)
                got += (size_t)k;
            else if (k == 0)
                break;
        }
    }
    cr_assert_eq(got, (size_t)LEN, "echoed %zu of %u bytes", got, (unsigned)LEN);
    cr_assert(memcmp(in, out, LEN) == 0, "the echo differs from what was sent");
    close(fd);
    free(out);
    free(in);
}

/* ---- bytes read on one connection, sent on another ---- */

/* The first connection is the source, the second the sink: what the source
 * sends goes to the sink (a relay's direction), from the source's buffer. */
static struct iocp_conn *sink;
static iocp_atomic_int conns_open;

static void pair_open(struct iocp_conn *c)
{
    if (atomic_fetch_add(&conns_open, 1) == 1)
        sink = c;
}

static void pair_data(struct iocp_conn *c, const void *data, size_t len)
{
    if (sink && c != sink)
        iocp_conn_send(sink, data, len);
}

static void pair_close(struct iocp_conn *c, int status)
{
    (void)status;
    if (c == sink)
        sink = NULL;
}

static const struct iocp_conn_handler pair_handler = {
    .on_open = pair_open, .on_data = pair_data, .on_close = pair_close};

static bool both_open(void)
{
    uint64_t end = tn_now_ms() + 10000;
    while (atomic_load(&conns_open) < 2 && tn_now_ms() < end)
        usleep(1000);
    return atomic_load(&conns_open) == 2;
}

Test(conn_kept, bytes_read_on_one_connection_and_sent_on_another_arrive_whole)
{
    enum { LEN = 1024 * 1024 };
    atomic_store(&conns_open, 0);
    sink = NULL;
    start(&pair_handler);
    int src = tn_connect(port);
    cr_assert_geq(src, 0);
    /* The sink must be the second connection the server opens. */
    uint64_t end = tn_now_ms() + 10000;
    while (atomic_load(&conns_open) < 1 && tn_now_ms() < end)
        usleep(1000);
    int dst = tn_connect(port);
    cr_assert_geq(dst, 0);
    cr_assert(both_open(), "the server did not open both connections");
    unsigned char *out = malloc(LEN), *in = malloc(LEN);
    cr_assert(out && in);
    tn_pattern(out, LEN, 9, 0);
    size_t sent = 0, got = 0;
    tn_set_nonblock(src, true);
    tn_set_nonblock(dst, true);
    end = tn_now_ms() + 60000;
    while (got < LEN && tn_now_ms() < end) {
        struct pollfd pfd[2] = {{.fd = src, .events = sent < LEN ? POLLOUT : 0},
                                {.fd = dst, .events = POLLIN}};
        if (poll(pfd, 2, 100) <= 0)
            continue;
        if ((pfd[0].revents & POLLOUT) && sent < LEN) {
            size_t want = LEN - sent < 3000 ? LEN - sent : 3000;
            ssize_t k = send(src, out + sent, want, MSG_NOSIGNAL);
            if (k > 0)
                sent += (size_t)k;
        }
        if (pfd[1].revents & POLLIN) {
            ssize_t k = recv(dst, in + got, LEN - got, 0);
            if (k > 0)
                got += (size_t)k;
        }
    }
    cr_assert_eq(got, (size_t)LEN, "relayed %zu of %u bytes", got, (unsigned)LEN);
    cr_assert(memcmp(in, out, LEN) == 0, "the relayed bytes differ from what was sent");
    close(src);
    close(dst);
    free(out);
    free(in);
}

/* ---- aborts with replies in flight ---- */

static void echo_then_abort(struct iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

/* Set by the test, read on the worker: 1 aborts after the echo. */
static iocp_atomic_int aborting;

static void switch_data(struct iocp_conn *c, const void *data, size_t len)
{
    if (atomic_load(&aborting))
        echo_then_abort(c, data, len);
    else
        echo_data(c, data, len);
}

static const struct iocp_conn_handler switch_handler = {.on_data = switch_data,
                                                        .on_close = ignore_close};

Test(conn_kept, aborts_with_replies_in_flight_leave_the_buffers_to_new_connections)
{
    atomic_store(&aborting, 1);
    start(&switch_handler);
    unsigned char msg[BUFFER_SIZE];
    tn_pattern(msg, sizeof msg, 13, 0);
    /* More aborted connections than the port has buffers: a buffer kept by
     * a reply that never completes normally must still come back. */
    for (unsigned i = 0; i < 4 * BUFFERS; i++) {
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        cr_assert(tn_write_all(fd, msg, sizeof msg));
        cr_assert(tn_wait_eof(fd, 10000), "connection %u was not closed", i);
        close(fd);
    }
    /* Then an echo that needs every buffer again. */
    atomic_store(&aborting, 0);
    int fds[8];
    cr_assert(tn_connect_all(port, fds, 8));
    cr_assert_eq(pump(fds, 8, msg, sizeof msg, sizeof msg, 30000), 8);
    for (unsigned i = 0; i < 8; i++)
        close(fds[i]);
}

/* Every stream send handed to the kernel cut to its first half (the fault
 * point send_short, io_uring): each reply completes short and the rest must
 * follow from where the send stopped, from a kept receive buffer or from
 * the queue.  Every byte still comes back, once and in order. */
Test(conn_kept, sends_that_complete_short_still_deliver_every_byte_in_order)
{
    enum { CONNS = 8, LEN = 128 * 1024 };
    cr_assert_eq(iocp__fault_configure("send_short=p1"), 0);
    start(&echo_handler);
    unsigned char *out = malloc(LEN);
    cr_assert_not_null(out);
    tn_pattern(out, LEN, 5, 0);
    int fds[CONNS];
    cr_assert(tn_connect_all(port, fds, CONNS));
    unsigned ok_small = pump(fds, CONNS, out, LEN / 4, 1000, 60000);
    unsigned ok_large = pump(fds, CONNS, out, LEN, 65536, 60000);
    uint64_t cut = iocp__fault_injected(IOCP_FAULT_SEND_SHORT);
    iocp__fault_configure(NULL);
    cr_assert_eq(ok_small, CONNS);
    cr_assert_eq(ok_large, CONNS);
    const char *backend = iocp_engine_backend(engine);
    if (strcmp(backend, "uring") == 0)
        cr_assert_gt(cut, 0, "no send was cut short: the test did not test");
    for (unsigned i = 0; i < CONNS; i++)
        close(fds[i]);
    free(out);
}
