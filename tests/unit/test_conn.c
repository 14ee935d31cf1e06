/* SPDX-License-Identifier: MIT */
/*
 * Connections (conn.c) on the backend named by IOCP_BACKEND, against plain
 * blocking loopback clients: a graceful close sends everything queued
 * first, an abort resets, a half-close lets reading go on, the watermarks
 * raise and clear back-pressure once each, pausing and resuming lose
 * nothing, a connection without on_eof flushes and closes, the accessors
 * describe the connection, and on_close runs exactly once however many
 * closes race.  Every test ends with the stop audit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "engine_fixture.h"
#include "testnet.h"

#define BIG (1u << 20)

static struct iocp_engine *engine;
static struct iocp_server *server;
static uint16_t port;

/* What the server side saw; written on the worker, read by the test. */
static struct {
    iocp_atomic_int opened, closed, close_status;
    iocp_atomic_int send_after_close, send_after_shutdown, bad_watermarks;
    iocp_atomic_int pressure_on, pressure_off, pressure_wrong;
    iocp_atomic_u64 received;
    iocp_atomic_int pattern_bad;
    iocp_atomic_u64 bytes_in_at_close, bytes_out_at_close;
    char peer[64], local[64];
    iocp_atomic_u64 id;
    iocp_atomic_int worker_ok;
} seen;

static unsigned char *big;

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

static int want_closed;
static bool closed_enough(void *arg)
{
    (void)arg;
    return atomic_load(&seen.closed) >= want_closed;
}

static void start(const struct iocp_conn_handler *h)
{
    memset(&seen, 0, sizeof seen);
    struct iocp_engine_config cfg = {.workers = 2};
    ef_start(&engine, &cfg);
    struct iocp_server_config sc = {.host = "127.0.0.1", .handler = h};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), 0);
    port = iocp_server_port(server);
}

static void setup(void)
{
    big = malloc(BIG);
    cr_assert_not_null(big);
    tn_pattern(big, BIG, 11, 0);
}

static void stop_and_audit(void)
{
    free(big);
    big = NULL;
    ef_stop_and_audit(&engine, &server);
}

TestSuite(conn, .init = setup, .fini = stop_and_audit, .timeout = 120);

static void record_close(struct iocp_conn *c, int status)
{
    atomic_store(&seen.bytes_in_at_close, iocp_conn_bytes_in(c));
    atomic_store(&seen.bytes_out_at_close, iocp_conn_bytes_out(c));
    atomic_store(&seen.close_status, status);
    atomic_fetch_add(&seen.closed, 1);
}

static void count_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    atomic_fetch_add(&seen.received, len);
}

/* ---- closing ---- */

static void send_big_then_close(struct iocp_conn *c)
{
    for (size_t off = 0; off < BIG; off += 65536)
        iocp_conn_send(c, big + off, 65536);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    if (iocp_conn_send(c, "x", 1) == IOCP_ENOTCONN)
        atomic_store(&seen.send_after_close, 1);
}

static const struct iocp_conn_handler graceful_handler = {
    .on_open = send_big_then_close, .on_data = count_data, .on_close = record_close};

Test(conn, a_graceful_close_sends_everything_queued_first)
{
    start(&graceful_handler);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    unsigned char *got = malloc(BIG);
    cr_assert_eq(tn_read_full(fd, got, BIG, 30000), BIG, "the queued mebibyte did not arrive");
    cr_assert(memcmp(got, big, BIG) == 0, "the bytes arrived changed");
    cr_assert(tn_wait_eof(fd, 30000), "no EOF after the queue");
    free(got);
    close(fd);
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000));
    cr_expect_eq(atomic_load(&seen.close_status), 0);
    cr_expect_eq(atomic_load(&seen.send_after_close), 1, "a send after close was accepted");
    cr_expect_eq(atomic_load(&seen.bytes_out_at_close), BIG);
}

static void send_big_then_abort(struct iocp_conn *c)
{
    for (size_t off = 0; off < BIG; off += 65536)
        iocp_conn_send(c, big + off, 65536);
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static const struct iocp_conn_handler abort_handler = {
    .on_open = send_big_then_abort, .on_data = count_data, .on_close = record_close};

Test(conn, an_abort_drops_the_queue_and_resets_the_peer)
{
    start(&abort_handler);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000));
    cr_expect_eq(atomic_load(&seen.close_status), 0, "an abort asked for is not an error");
    /* Read to the end: a reset, never a clean EOF after all the bytes. */
    char buf[65536];
    size_t total = 0;
    int err = 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) {
            total += (size_t)n;
            continue;
        }
        err = n < 0 ? errno : 0;
        break;
    }
    cr_expect_eq(err, ECONNRESET, "read ended with %s after %zu bytes", strerror(err), total);
    cr_expect_lt(total, BIG, "the whole queue was sent");
    close(fd);
}

/* ---- half-close ---- */

static void send_then_shutdown(struct iocp_conn *c)
{
    iocp_conn_send(c, "bye", 3);
    iocp_conn_shutdown(c);
    if (iocp_conn_send(c, "x", 1) == IOCP_ESHUTDOWN)
        atomic_store(&seen.send_after_shutdown, 1);
}

static void close_after_ping(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    if (atomic_fetch_add(&seen.received, len) + len >= 4)
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static const struct iocp_conn_handler shutdown_handler = {
    .on_open = send_then_shutdown, .on_data = close_after_ping, .on_close = record_close};

Test(conn, a_half_close_ends_our_side_and_reading_goes_on)
{
    start(&shutdown_handler);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    char buf[8];
    cr_assert_eq(tn_read_full(fd, buf, 3, 30000), 3);
    cr_assert(memcmp(buf, "bye", 3) == 0);
    cr_assert(tn_wait_eof(fd, 30000), "the half-close did not reach the peer");
    cr_assert(tn_write_all(fd, "ping", 4), "the peer could not send after our half-close");
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000), "the server never got the bytes");
    cr_expect_eq(atomic_load(&seen.received), 4);
    cr_expect_eq(atomic_load(&seen.send_after_shutdown), 1);
    cr_expect_eq(atomic_load(&seen.close_status), 0);
    close(fd);
}

/* ---- back-pressure ---- */

static void pressure(struct iocp_conn *c, bool full)
{
    size_t q = iocp_conn_queued(c);
    if (full) {
        atomic_fetch_add(&seen.pressure_on, 1);
        if (q <= 256 * 1024)
            atomic_fetch_add(&seen.pressure_wrong, 1);
    } else {
        atomic_fetch_add(&seen.pressure_off, 1);
        if (q > 64 * 1024)
            atomic_fetch_add(&seen.pressure_wrong, 1);
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    }
}

static void fill_queue(struct iocp_conn *c)
{
    if (iocp_conn_set_watermarks(c, 10, 10) == IOCP_EINVAL)
        atomic_store(&seen.bad_watermarks, 1);
    if (iocp_conn_set_watermarks(c, 64 * 1024, 256 * 1024) != 0)
        atomic_fetch_add(&seen.pressure_wrong, 1);
    for (size_t off = 0; off < BIG; off += 16384)
        iocp_conn_send(c, big + off, 16384);
}

static const struct iocp_conn_handler pressure_handler = {.on_open = fill_queue,
                                                          .on_data = count_data,
                                                          .on_pressure = pressure,
                                                          .on_close = record_close};

static bool pressure_on(void *arg)
{
    (void)arg;
    return atomic_load(&seen.pressure_on) > 0;
}

Test(conn, the_watermarks_raise_and_clear_back_pressure_once_each)
{
    start(&pressure_handler);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(wait_for(pressure_on, NULL, 30000), "a mebibyte queued never raised pressure");
    unsigned char *got = malloc(BIG);
    cr_assert_eq(tn_read_full(fd, got, BIG, 30000), BIG);
    cr_assert(memcmp(got, big, BIG) == 0);
    free(got);
    cr_assert(tn_wait_eof(fd, 30000), "the close on the low mark did not come");
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000));
    cr_expect_eq(atomic_load(&seen.pressure_on), 1);
    cr_expect_eq(atomic_load(&seen.pressure_off), 1);
    cr_expect_eq(atomic_load(&seen.pressure_wrong), 0, "pressure changed away from a mark");
    cr_expect_eq(atomic_load(&seen.bad_watermarks), 1, "low == high was accepted");
    close(fd);
}

/* ---- pausing ---- */

static void resume_task(struct iocp_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0 && iocp_conn_resume(c) != 0)
        atomic_store(&seen.pattern_bad, 1);
}

/* Check the bytes against the pattern, then pause and have a task by ID
 * resume: every delivery goes through a pause. */
static void check_then_pause(struct iocp_conn *c, const void *data, size_t len)
{
    uint64_t off = atomic_load(&seen.received);
    unsigned char want[16384];
    const unsigned char *p = data;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof want ? len - done : sizeof want;
        tn_pattern(want, n, 11, off + done);
        if (memcmp(p + done, want, n) != 0)
            atomic_store(&seen.pattern_bad, 1);
        done += n;
    }
    atomic_fetch_add(&seen.received, len);
    if (off + len >= BIG) {
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
        return;
    }
    iocp_conn_pause(c);
    if (iocp_conn_post(iocp_conn_engine(c), iocp_conn_id(c), resume_task, NULL) != 0)
        iocp_conn_resume(c);
}

static const struct iocp_conn_handler pause_handler = {.on_data = check_then_pause,
                                                       .on_close = record_close};

Test(conn, pausing_and_resuming_lose_and_reorder_nothing)
{
    start(&pause_handler);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, big, BIG));
    cr_assert(tn_wait_eof(fd, 60000));
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000));
    cr_expect_eq(atomic_load(&seen.received), BIG);
    cr_expect_eq(atomic_load(&seen.pattern_bad), 0, "bytes were lost, changed or reordered");
    close(fd);
}

/* ---- the default end of input ---- */

static void echo(struct iocp_conn *c, const void *data, size_t len)
{
    atomic_fetch_add(&seen.received, len);
    iocp_conn_send(c, data, len);
    iocp_conn_send(c, data, len);
}

static void describe(struct iocp_conn *c)
{
    if (atomic_fetch_add(&seen.opened, 1) != 0)
        return; /* the first connection describes itself */
    iocp_conn_peer(c, seen.peer, sizeof seen.peer);
    iocp_conn_local(c, seen.local, sizeof seen.local);
    atomic_store(&seen.id, iocp_conn_id(c));
    struct iocp_worker *w = iocp__worker_current();
    atomic_store(&seen.worker_ok, w && w->index == iocp_conn_worker(c) &&
                                      iocp_conn_engine(c) == engine &&
                                      iocp_conn_socket(c) != IOCP_INVALID_SOCKET);
}

static const struct iocp_conn_handler echo_no_eof = {
    .on_open = describe, .on_data = echo, .on_close = record_close};

Test(conn, without_on_eof_the_connection_flushes_and_closes_and_the_accessors_tell_it)
{
    start(&echo_no_eof);
    int fd = tn_connect(port);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "0123456789", 10));
    shutdown(fd, SHUT_WR);
    char buf[32];
    cr_assert_eq(tn_read_full(fd, buf, 20, 30000), 20, "the echo did not come back twice");
    cr_assert(memcmp(buf, "01234567890123456789", 20) == 0);
    cr_assert(tn_wait_eof(fd, 30000), "no close after the peer's EOF");
    want_closed = 1;
    cr_assert(wait_for(closed_enough, NULL, 30000));
    cr_expect_eq(atomic_load(&seen.close_status), 0);
    cr_expect_eq(atomic_load(&seen.bytes_in_at_close), 10);
    cr_expect_eq(atomic_load(&seen.bytes_out_at_close), 20);

    struct sockaddr_in me;
    socklen_t len = sizeof me;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&me, &len), 0);
    char want_peer[64], want_local[64];
    snprintf(want_peer, sizeof want_peer, "127.0.0.1:%u", ntohs(me.sin_port));
    snprintf(want_local, sizeof want_local, "127.0.0.1:%u", port);
    cr_expect_str_eq(seen.peer, want_peer);
    cr_expect_str_eq(seen.local, want_local);
    cr_expect_neq(atomic_load(&seen.id), IOCP_CONN_ID_NONE);
    cr_expect_eq(atomic_load(&seen.worker_ok), 1, "worker, engine or socket were wrong");
    close(fd);
}

/* ---- racing closes ---- */

static void close_every_way(struct iocp_conn *c, const void *data, size_t len)
{
    (void)data;
    (void)len;
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    if (iocp_conn_shutdown(c) != IOCP_ENOTCONN || iocp_conn_pause(c) != IOCP_ENOTCONN ||
        iocp_conn_send(c, "x", 1) != IOCP_ENOTCONN)
        atomic_fetch_add(&seen.pattern_bad, 1);
    iocp_conn_close_id(iocp_conn_engine(c), iocp_conn_id(c), IOCP_CLOSE_ABORT);
}

static const struct iocp_conn_handler close_handler = {.on_open = describe,
                                                       .on_data = close_every_way,
                                                       .on_close = record_close};

static int want_opened;
static bool opened_enough(void *arg)
{
    (void)arg;
    return atomic_load(&seen.opened) >= want_opened;
}

Test(conn, on_close_runs_exactly_once_however_many_closes_race)
{
    enum { N = 50 };
    start(&close_handler);
    int fd[N];
    for (int i = 0; i < N; i++)
        cr_assert_geq(fd[i] = tn_connect(port), 0);
    want_opened = N;
    cr_assert(wait_for(opened_enough, NULL, 30000));
    for (int i = 0; i < N; i++) {
        if (i % 2 == 0)
            tn_write_all(fd[i], "x", 1); /* the server closes it every way at once */
        else {
            struct linger lg = {1, 0}; /* and the peer resets at the same time */
            setsockopt(fd[i], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
            tn_write_all(fd[i], "x", 1);
            close(fd[i]);
            fd[i] = -1;
        }
    }
    want_closed = N;
    cr_assert(wait_for(closed_enough, NULL, 30000), "%d of %d closed", atomic_load(&seen.closed),
              N);
    for (int i = 0; i < N; i++)
        if (fd[i] >= 0)
            close(fd[i]);
    cr_expect_eq(atomic_load(&seen.pattern_bad), 0, "a closing connection accepted a call");
    /* A late duplicate on_close would show up by the time the engine stops. */
    iocp_server_stop(server);
    iocp_engine_stop(engine);
    cr_expect_eq(atomic_load(&seen.closed), N);
}
