/* SPDX-License-Identifier: MIT */
/*
 * Tasks and closes by connection ID (iocp_conn_post, iocp_conn_close_id) on
 * the backend named by IOCP_BACKEND, with the library's own server and
 * clients on loopback: a stale ID is refused at once and its task never
 * runs, a task reaches the live connection on its worker, a connection that
 * closes before its task runs gets the task with NULL and IOCP_ENOENT, and
 * threads racing closes and tasks over many connections see every accepted
 * task run exactly once.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "engine_fixture.h"

#define MAX_CONNS 64

static struct iocp_engine *engine;
static struct iocp_server *server;

/* Server side: the IDs of the accepted connections, and how they ended. */
static iocp_atomic_u64 ids[MAX_CONNS];
static iocp_atomic_int nids, server_closed, server_close_errors;
/* Client side. */
static iocp_atomic_int clients_open, clients_closed, client_bytes;

/* nids hands out the slots; ids_stored counts the IDs written, so that the
 * test thread never reads a slot before its ID is in it. */
static iocp_atomic_int ids_stored;

static void server_open(struct iocp_conn *c)
{
    int i = atomic_fetch_add(&nids, 1);
    if (i < MAX_CONNS)
        atomic_store(&ids[i], iocp_conn_id(c));
    atomic_fetch_add(&ids_stored, 1);
}

static void server_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static void server_close(struct iocp_conn *c, int status)
{
    (void)c;
    if (status != 0 && status != IOCP_ECANCELED)
        atomic_fetch_add(&server_close_errors, 1);
    atomic_fetch_add(&server_closed, 1);
}

static const struct iocp_conn_handler server_handler = {
    .on_open = server_open, .on_data = server_data, .on_close = server_close};

static void client_open(struct iocp_conn *c)
{
    (void)c;
    atomic_fetch_add(&clients_open, 1);
}

static void client_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    atomic_fetch_add(&client_bytes, (int)len);
}

static void client_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
    atomic_fetch_add(&clients_closed, 1);
}

static const struct iocp_conn_handler client_handler = {
    .on_open = client_open, .on_data = client_data, .on_close = client_close};

static bool wait_for(bool (*cond)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t end = iocp__now_ms() + timeout_ms;
    while (!cond(arg)) {
        if (iocp__now_ms() > end)
            return false;
        iocp__sleep_ms(1);
    }
    return true;
}

static int want;
static bool accepted_want(void *arg)
{
    (void)arg;
    return atomic_load(&ids_stored) >= want && atomic_load(&clients_open) >= want;
}

static bool server_closed_want(void *arg)
{
    (void)arg;
    return atomic_load(&server_closed) >= want;
}

static void setup(void)
{
    atomic_store(&nids, 0);
    atomic_store(&ids_stored, 0);
    atomic_store(&server_closed, 0);
    atomic_store(&server_close_errors, 0);
    atomic_store(&clients_open, 0);
    atomic_store(&clients_closed, 0);
    atomic_store(&client_bytes, 0);
#ifdef _WIN32
    WSADATA wsa;
    WSAStartup(MAKEWORD(2, 2), &wsa);
#endif
    struct iocp_engine_config cfg = {.workers = 2};
    ef_start(&engine, &cfg);
    struct iocp_server_config sc = {.host = "127.0.0.1", .handler = &server_handler};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    int rc = iocp_server_start(server);
    cr_assert_eq(rc, 0, "server start: %s", iocp_strerror(rc));
}

static void stop_and_audit(void)
{
    ef_stop_and_audit(&engine, &server);
}

TestSuite(conn_task, .init = setup, .fini = stop_and_audit, .timeout = 120);

/* Open n client connections to the server and wait until both ends are up. */
static void open_clients(int n)
{
    for (int i = 0; i < n; i++) {
        struct iocp_connect_config cc = {.host = "127.0.0.1",
                                         .port = iocp_server_port(server),
                                         .worker = -1,
                                         .handler = &client_handler};
        cr_assert_eq(iocp_connect(engine, &cc), 0);
    }
    want = n;
    cr_assert(wait_for(accepted_want, NULL, 30000), "%d of %d connections up",
              atomic_load(&ids_stored), n);
}

/* A task that records how it was called. */
struct call {
    iocp_atomic_int runs, live, gone, wrong;
    iocp_conn_id_t id;
};

static void record(struct iocp_conn *c, void *arg, int status)
{
    struct call *k = arg;
    if (c) {
        struct iocp_worker *w = iocp__worker_current();
        if (status != 0 || (k->id && iocp_conn_id(c) != k->id) || !w ||
            w->index != iocp_conn_worker(c))
            atomic_fetch_add(&k->wrong, 1);
        atomic_fetch_add(&k->live, 1);
    } else {
        if (status != IOCP_ENOENT)
            atomic_fetch_add(&k->wrong, 1);
        atomic_fetch_add(&k->gone, 1);
    }
    atomic_fetch_add(&k->runs, 1);
}

static bool ran(void *arg)
{
    return atomic_load(&((struct call *)arg)->runs) > 0;
}

Test(conn_task, a_task_reaches_the_live_connection_on_its_worker)
{
    open_clients(4);
    for (int i = 0; i < 4; i++) {
        struct call k = {.id = atomic_load(&ids[i])};
        cr_assert_eq(iocp_conn_post(engine, k.id, record, &k), 0);
        cr_assert(wait_for(ran, &k, 30000), "the task never ran");
        cr_expect_eq(atomic_load(&k.live), 1);
        cr_expect_eq(atomic_load(&k.wrong), 0, "the task ran with the wrong connection or thread");
    }
}

static void say_hello(struct iocp_conn *c, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        iocp_conn_send(c, "hello", 5);
}

static bool got_hello(void *arg)
{
    (void)arg;
    return atomic_load(&client_bytes) >= 5;
}

Test(conn_task, a_task_may_send_on_the_connection)
{
    open_clients(1);
    cr_assert_eq(iocp_conn_post(engine, atomic_load(&ids[0]), say_hello, NULL), 0);
    cr_assert(wait_for(got_hello, NULL, 30000), "the peer did not get the bytes the task sent");
    cr_expect_eq(atomic_load(&client_bytes), 5);
}

Test(conn_task, a_stale_id_is_refused_at_once_and_its_task_never_runs)
{
    struct call k = {0};
    cr_assert_eq(iocp_conn_post(engine, IOCP_CONN_ID_NONE, record, &k), IOCP_ENOENT);
    cr_assert_eq(iocp_conn_post(engine, ((iocp_conn_id_t)7 << 32) | 12345u, record, &k),
                 IOCP_ENOENT);
    cr_assert_eq(iocp_conn_close_id(engine, IOCP_CONN_ID_NONE, IOCP_CLOSE_ABORT), IOCP_ENOENT);

    /* The ID of a connection that has closed, even once its slot serves a
     * newer connection. */
    open_clients(1);
    iocp_conn_id_t old = atomic_load(&ids[0]);
    cr_assert_eq(iocp_conn_close_id(engine, old, IOCP_CLOSE_GRACEFUL), 0);
    want = 1;
    cr_assert(wait_for(server_closed_want, NULL, 30000), "close by ID did not close");
    cr_expect_eq(atomic_load(&server_close_errors), 0, "a graceful close reported an error");
    atomic_store(&nids, 0);
    atomic_store(&ids_stored, 0);
    atomic_store(&clients_open, 0);
    open_clients(1);
    cr_assert_neq(atomic_load(&ids[0]), old);
    cr_assert_eq(iocp_conn_post(engine, old, record, &k), IOCP_ENOENT);
    cr_assert_eq(iocp_conn_close_id(engine, old, IOCP_CLOSE_ABORT), IOCP_ENOENT);
    cr_expect_eq(atomic_load(&k.runs), 0, "a refused task ran");
    cr_expect_eq(iocp_conn_post(NULL, old, record, &k), IOCP_EINVAL);
    cr_expect_eq(iocp_conn_post(engine, old, NULL, &k), IOCP_EINVAL);
}

/* On the owner: queue a second task, then close the connection; the second
 * task must run once with NULL and IOCP_ENOENT. */
static struct call second;

static void post_then_close(struct iocp_conn *c, void *arg, int status)
{
    struct call *first = arg;
    if (status == 0) {
        if (iocp_conn_post(iocp_conn_engine(c), iocp_conn_id(c), record, &second) != 0)
            atomic_fetch_add(&first->wrong, 1);
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
    }
    atomic_fetch_add(&first->runs, 1);
}

Test(conn_task, a_connection_closed_before_its_task_runs_gets_null_and_enoent)
{
    open_clients(1);
    memset(&second, 0, sizeof second);
    struct call first = {0};
    cr_assert_eq(iocp_conn_post(engine, atomic_load(&ids[0]), post_then_close, &first), 0);
    cr_assert(wait_for(ran, &first, 30000));
    cr_assert(wait_for(ran, &second, 30000), "the queued task never ran");
    cr_expect_eq(atomic_load(&first.wrong), 0);
    cr_expect_eq(atomic_load(&second.gone), 1, "the task saw a connection that had closed");
    cr_expect_eq(atomic_load(&second.live), 0);
    cr_expect_eq(atomic_load(&second.wrong), 0);
}

/* Threads that post tasks to and close the same connections at once. */
struct racer {
    struct iocp_thread thread;
    int n;
    iocp_atomic_int accepted; /* posts that returned 0 */
    struct call k;            /* runs of those tasks */
};

static void race_main(void *arg)
{
    struct racer *r = arg;
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < r->n; i++) {
            iocp_conn_id_t id = atomic_load(&ids[i]);
            if (iocp_conn_post(engine, id, record, &r->k) == 0)
                atomic_fetch_add(&r->accepted, 1);
            if (round == 1 && i % 2 == 0)
                iocp_conn_close_id(engine, id, i % 4 ? IOCP_CLOSE_GRACEFUL : IOCP_CLOSE_ABORT);
        }
}

struct race_all {
    struct racer *r;
    int n;
};

static bool all_tasks_ran(void *arg)
{
    struct race_all *a = arg;
    for (int i = 0; i < a->n; i++)
        if (atomic_load(&a->r[i].k.runs) != atomic_load(&a->r[i].accepted))
            return false;
    return true;
}

Test(conn_task, racing_closes_and_tasks_run_every_accepted_task_exactly_once)
{
    open_clients(MAX_CONNS);
    struct racer r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) {
        r[i].n = MAX_CONNS;
        r[i].k.id = IOCP_CONN_ID_NONE; /* any ID: checked below by the live count */
        cr_assert_eq(iocp__thread_start(&r[i].thread, race_main, &r[i]), 0);
    }
    for (int i = 0; i < 3; i++)
        iocp__thread_join(&r[i].thread);
    struct race_all all = {r, 3};
    cr_assert(wait_for(all_tasks_ran, &all, 30000), "some accepted tasks never ran");
    int gone = 0, live = 0;
    for (int i = 0; i < 3; i++) {
        live += atomic_load(&r[i].k.live);
        gone += atomic_load(&r[i].k.gone);
    }
    /* Half the connections were closed in round 1: every post of round 0
     * and every post to the other half found its connection. */
    cr_expect_geq(live, 3 * (MAX_CONNS + MAX_CONNS / 2), "%d live, %d gone", live, gone);
    want = MAX_CONNS / 2;
    cr_expect(wait_for(server_closed_want, NULL, 30000), "closes by ID did not all close");
    cr_expect_eq(atomic_load(&server_closed), MAX_CONNS / 2);
}
