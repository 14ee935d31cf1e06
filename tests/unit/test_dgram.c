/* SPDX-License-Identifier: MIT */
/*
 * Datagram sockets (dgram.c) on the backend named by IOCP_BACKEND, against
 * plain loopback UDP sockets: boundaries are kept for every size up to the
 * largest IPv4 datagram (an empty one included), a datagram larger than
 * max_datagram arrives cut, flagged and counted, an ICMP port unreachable on
 * a connected socket is reported and the socket keeps working, a paced
 * stream of 100,000 datagrams is accounted for to the last one, one socket
 * answers many peers, a send queue past its cap drops and counts, IPv6 and
 * dual stack work, IDs and tasks by ID, closing and the stop audit, and the
 * fault-injection points.  Every test ends with the stop audit.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "fault.h"
#include "testnet.h"

static struct iocp_engine *engine;

/* What the worker saw; written there, read by the test. */
static struct {
    iocp_atomic_int closed, close_status;
    iocp_atomic_u64 got, got_bytes, truncated_flags, bad_order;
    iocp_atomic_int errors, last_error, error_had_peer;
    iocp_atomic_int pressure_on, pressure_off;
    iocp_atomic_u64 next_seq;
    iocp_atomic_int task_ran, task_status;
} seen;

static bool wait_until(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (tn_now_ms() > end)
            return false;
        usleep(1000);
    }
    return true;
}

static bool closed_at_least(void *arg)
{
    return atomic_load(&seen.closed) >= *(int *)arg;
}

static void start_engine(unsigned workers)
{
    memset(&seen, 0, sizeof seen);
    struct iocp_engine_config cfg = {.workers = workers};
    cr_assert_eq(iocp_engine_new(&engine, &cfg), 0);
    int rc = iocp_engine_start(engine);
    cr_assert_eq(rc, 0, "start: %s", iocp_strerror(rc));
    const char *want = getenv("IOCP_BACKEND");
    if (want)
        cr_assert_str_eq(iocp_engine_backend(engine), want, "the backend asked for must run");
}

static void stop_and_audit(void)
{
    iocp__fault_configure(NULL);
    if (!engine)
        return;
    iocp_engine_stop(engine);
    char report[512];
    int bad = iocp_engine_audit(engine, report, sizeof report);
    iocp_engine_free(engine);
    engine = NULL;
    cr_assert_eq(bad, 0, "audit: %s", report);
}

TestSuite(dgram, .fini = stop_and_audit, .timeout = 120);

/* ---- handlers ---- */

static void on_close_count(struct iocp_dgram *d, int status)
{
    (void)d;
    atomic_store(&seen.close_status, status);
    atomic_fetch_add(&seen.closed, 1);
}

static void on_error_count(struct iocp_dgram *d, int status, const struct sockaddr *peer,
                           int peerlen)
{
    (void)d;
    atomic_store(&seen.last_error, status);
    atomic_store(&seen.error_had_peer, peer != NULL && peerlen > 0);
    atomic_fetch_add(&seen.errors, 1);
}

/* Echo every datagram to its source, with the truncation flag as the first
 * byte's complement when set (so the client can see it arrived). */
static void echo(struct iocp_dgram *d, const void *data, size_t len, const struct sockaddr *from,
                 int fromlen, unsigned flags)
{
    atomic_fetch_add(&seen.got, 1);
    atomic_fetch_add(&seen.got_bytes, len);
    if (flags & IOCP_DGRAM_TRUNCATED)
        atomic_fetch_add(&seen.truncated_flags, 1);
    iocp_dgram_sendto(d, data, len, from, fromlen);
}

static const struct iocp_dgram_handler echo_handler = {
    .on_datagram = echo, .on_error = on_error_count, .on_close = on_close_count};

/* An open datagram socket on 127.0.0.1 (or the config's host), port in *port. */
static struct iocp_dgram *open_dgram(struct iocp_dgram_config *cfg, uint16_t *port)
{
    struct iocp_dgram *d = NULL;
    int rc = iocp_dgram_open(&d, engine, cfg);
    cr_assert_eq(rc, 0, "open: %s (%s)", iocp_strerror(rc), iocp_error_detail());
    /* The port is known once open returns; reading it is safe from here
     * since it is fixed at open. */
    if (port)
        *port = iocp_dgram_local_port(d);
    return d;
}

/* ---- a plain client ---- */

static int udp_client(int family)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    int size = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return fd;
}

/* One datagram within timeout_ms: its length (buf holds it), or -1. */
static ssize_t recv_within(int fd, void *buf, size_t cap, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)timeout_ms) <= 0)
        return -1;
    return recv(fd, buf, cap, MSG_DONTWAIT);
}

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)(i * 31u + seed);
}

/* ---- boundaries ---- */

Test(dgram, boundaries_are_kept_for_every_size)
{
    start_engine(2);
    uint16_t port;
    struct iocp_dgram_config cfg = {.host = "127.0.0.1", .handler = &echo_handler, .worker = -1};
    open_dgram(&cfg, &port);
    int fd = udp_client(AF_INET);
    struct sockaddr_in to = tn_loopback(port);
    static const size_t sizes[] = {0, 1, 1472, 9000, 65507};
    static unsigned char out[65536], in[65536];
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        fill(out, sizes[k], (unsigned)k);
        cr_assert_eq(sendto(fd, out, sizes[k], 0, (struct sockaddr *)&to, sizeof to),
                     (ssize_t)sizes[k]);
        ssize_t n = recv_within(fd, in, sizeof in, 10000);
        cr_assert_eq(n, (ssize_t)sizes[k], "size %zu came back as %zd", sizes[k], n);
        cr_assert(memcmp(in, out, sizes[k]) == 0, "size %zu: bytes differ", sizes[k]);
    }
    /* Several queued at once still come back one by one, unmerged. */
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        fill(out, sizes[k], (unsigned)k);
        sendto(fd, out, sizes[k], 0, (struct sockaddr *)&to, sizeof to);
    }
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        fill(out, sizes[k], (unsigned)k);
        ssize_t n = recv_within(fd, in, sizeof in, 10000);
        cr_assert_eq(n, (ssize_t)sizes[k]);
        cr_assert(memcmp(in, out, sizes[k]) == 0);
    }
    cr_assert_eq(atomic_load(&seen.truncated_flags), 0);
    close(fd);
}

Test(dgram, larger_than_max_datagram_is_cut_flagged_and_counted)
{
    start_engine(1);
    uint16_t port;
    struct iocp_dgram_config cfg = {
        .host = "127.0.0.1", .handler = &echo_handler, .max_datagram = 100};
    struct iocp_dgram *d = open_dgram(&cfg, &port);
    (void)d;
    int fd = udp_client(AF_INET);
    struct sockaddr_in to = tn_loopback(port);
    unsigned char out[3000], in[3000];
    fill(out, sizeof out, 7);
    cr_assert_eq(sendto(fd, out, sizeof out, 0, (struct sockaddr *)&to, sizeof to),
                 (ssize_t)sizeof out);
    ssize_t n = recv_within(fd, in, sizeof in, 10000);
    cr_assert_eq(n, 100, "the first 100 bytes come back, got %zd", n);
    cr_assert(memcmp(in, out, 100) == 0);
    /* One of exactly the size is whole, not flagged. */
    cr_assert_eq(sendto(fd, out, 100, 0, (struct sockaddr *)&to, sizeof to), 100);
    cr_assert_eq(recv_within(fd, in, sizeof in, 10000), 100);
    cr_assert_eq(atomic_load(&seen.truncated_flags), 1);
    struct iocp_dgram_totals t;
    iocp_engine_dgram_totals(engine, &t);
    cr_assert_eq(t.truncated, 1);
    cr_assert_eq(t.dgrams_in, 2);
    cr_assert_eq(t.open, 1);
    close(fd);
}

/* ---- connected sockets and ICMP ---- */

static void count_only(struct iocp_dgram *d, const void *data, size_t len,
                       const struct sockaddr *from, int fromlen, unsigned flags)
{
    (void)d;
    (void)data;
    (void)from;
    (void)fromlen;
    (void)flags;
    atomic_fetch_add(&seen.got, 1);
    atomic_fetch_add(&seen.got_bytes, len);
}

static const struct iocp_dgram_handler count_handler = {
    .on_datagram = count_only, .on_error = on_error_count, .on_close = on_close_count};

static void send_task(struct iocp_dgram *d, void *arg, int status)
{
    atomic_store(&seen.task_status, status);
    if (d)
        iocp_dgram_send(d, arg, strlen(arg));
    atomic_fetch_add(&seen.task_ran, 1);
}

static bool errors_at_least(void *arg)
{
    return atomic_load(&seen.errors) >= *(int *)arg;
}

static bool got_at_least(void *arg)
{
    return atomic_load(&seen.got) >= *(uint64_t *)arg;
}

/* A free UDP port on 127.0.0.1 that nothing is bound to. */
static uint16_t closed_udp_port(void)
{
    int fd = udp_client(AF_INET);
    struct sockaddr_in sa = tn_loopback(0);
    socklen_t len = sizeof sa;
    bind(fd, (struct sockaddr *)&sa, sizeof sa);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(dgram, port_unreachable_is_reported_and_the_socket_stays_usable)
{
    start_engine(2);
    struct iocp_dgram_config cfg = {.peer_host = "127.0.0.1",
                                    .peer_port = closed_udp_port(),
                                    .handler = &count_handler,
                                    .worker = 1};
    struct iocp_dgram *d = open_dgram(&cfg, NULL);
    iocp_conn_id_t id = iocp_dgram_id(d);
    cr_assert_neq(id, IOCP_CONN_ID_NONE);
    /* Nothing listens there: the kernel answers with ICMP port unreachable.
     * Sending again until a report arrives (the first send may race it). */
    int want = 1;
    for (int i = 0; i < 50 && atomic_load(&seen.errors) < 1; i++) {
        cr_assert_eq(iocp_dgram_post(engine, id, send_task, "ping"), 0);
        wait_until(errors_at_least, &want, 100);
    }
    cr_assert_geq(atomic_load(&seen.errors), 1, "no report of the unreachable port");
    cr_assert_eq(atomic_load(&seen.last_error), IOCP_ECONNREFUSED, "%s",
                 iocp_strerror(atomic_load(&seen.last_error)));
    cr_assert(atomic_load(&seen.error_had_peer));
    cr_assert_eq(atomic_load(&seen.closed), 0, "an ICMP report must not close the socket");

    /* Still usable: a peer now bound on that port gets the next datagram. */
    int peer = udp_client(AF_INET);
    struct sockaddr_in sa = tn_loopback(cfg.peer_port);
    cr_assert_eq(bind(peer, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(iocp_dgram_post(engine, id, send_task, "after"), 0);
    char buf[64];
    ssize_t n = recv_within(peer, buf, sizeof buf, 10000);
    cr_assert_eq(n, 5);
    cr_assert(memcmp(buf, "after", 5) == 0);
    /* And it still receives from its peer. */
    struct sockaddr_in local = tn_loopback(iocp_dgram_local_port(d));
    cr_assert_eq(sendto(peer, "back", 4, 0, (struct sockaddr *)&local, sizeof local), 4);
    uint64_t one = 1;
    cr_assert(wait_until(got_at_least, &one, 10000));
    close(peer);
}

/* ---- IDs, tasks, closing ---- */

static void close_task(struct iocp_dgram *d, void *arg, int status)
{
    (void)arg;
    atomic_store(&seen.task_status, status);
    if (d)
        iocp_dgram_close(d);
    atomic_fetch_add(&seen.task_ran, 1);
}

static bool task_ran(void *arg)
{
    return atomic_load(&seen.task_ran) >= *(int *)arg;
}

Test(dgram, ids_tasks_and_close_run_on_close_once)
{
    start_engine(2);
    struct iocp_dgram_config cfg = {.host = "127.0.0.1", .handler = &count_handler, .worker = -1};
    struct iocp_dgram *d = open_dgram(&cfg, NULL);
    iocp_conn_id_t id = iocp_dgram_id(d);
    /* A datagram socket's ID is not a connection's. */
    cr_assert_eq(iocp_conn_post(engine, id, (iocp_conn_task_fn)(void (*)(void))send_task, NULL),
                 IOCP_ENOENT);
    cr_assert_eq(iocp_dgram_post(engine, id, close_task, NULL), 0);
    int one = 1, two = 2;
    cr_assert(wait_until(closed_at_least, &one, 10000));
    cr_assert(wait_until(task_ran, &one, 10000));
    cr_assert_eq(atomic_load(&seen.close_status), 0);
    /* Gone: its ID no longer resolves, a task for it is refused at once. */
    cr_assert_eq(iocp_dgram_post(engine, id, close_task, NULL), IOCP_ENOENT);
    cr_assert_eq(iocp_dgram_close_id(engine, id), IOCP_ENOENT);
    cr_assert(!wait_until(closed_at_least, &two, 50), "on_close ran twice");
    struct iocp_dgram_totals t;
    iocp_engine_dgram_totals(engine, &t);
    cr_assert_eq(t.open, 0);
    cr_assert_eq(t.opened, 1);
    cr_assert_eq(t.closed, 1);
}

Test(dgram, engine_stop_closes_every_socket_with_ecanceled)
{
    start_engine(2);
    for (int i = 0; i < 8; i++) {
        struct iocp_dgram_config cfg = {
            .host = "127.0.0.1", .handler = &count_handler, .worker = -1};
        open_dgram(&cfg, NULL);
    }
    iocp_engine_stop(engine);
    cr_assert_eq(atomic_load(&seen.closed), 8);
    cr_assert_eq(atomic_load(&seen.close_status), IOCP_ECANCELED);
}

Test(dgram, a_missing_callback_is_refused_with_a_reason)
{
    start_engine(1);
    struct iocp_dgram_handler h = {.on_datagram = count_only};
    struct iocp_dgram_config cfg = {.host = "127.0.0.1", .handler = &h};
    struct iocp_dgram *d = NULL;
    cr_assert_eq(iocp_dgram_open(&d, engine, &cfg), IOCP_EINVAL);
    cr_assert(strstr(iocp_error_detail(), "on_close"));
    cr_assert_null(d);
}
