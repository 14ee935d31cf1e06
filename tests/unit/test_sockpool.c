/* SPDX-License-Identifier: MIT */
/*
 * The reusable-socket pool and its bound-once rule (seed 2c), on a fake OS
 * that behaves as Windows does: a socket may be associated with the
 * completion port once, and a second association fails with EINVAL (what
 * ERROR_INVALID_PARAMETER becomes).  The fake counts associations, open
 * sockets and closes, so the tests can prove that a reused socket is never
 * bound twice, that a real second bind shows the OS's error, and that
 * nothing leaks.  Pure logic: it runs on every platform.
 */
#include <stdlib.h>

#include <criterion/criterion.h>

#include "port.h"
#include "sockpool.h"

/* ---- the fake OS ---- */

#define FAKE_MAX 4096

struct fake_os {
    struct iocp_mutex lock;
    bool open[FAKE_MAX];
    bool associated[FAKE_MAX];
    int associations, refused, closes, opens;
    int open_error; /* the next fake_open fails with it */
    iocp_socket_t next;
};

static struct fake_os os;

/* A new socket: the lowest free number, as systems hand them out. */
static iocp_socket_t fake_socket(void)
{
    iocp__mutex_lock(&os.lock);
    iocp_socket_t s = 1;
    while (os.open[s])
        s++;
    os.open[s] = true;
    os.associated[s] = false;
    iocp__mutex_unlock(&os.lock);
    return s;
}

static int fake_associate(void *ctx, iocp_socket_t s)
{
    (void)ctx;
    iocp__mutex_lock(&os.lock);
    int rc = 0;
    if (!os.open[s]) {
        rc = IOCP_EBADF;
    } else if (os.associated[s]) {
        os.refused++;
        rc = IOCP_EINVAL; /* Windows: ERROR_INVALID_PARAMETER (87) */
    } else {
        os.associated[s] = true;
        os.associations++;
    }
    iocp__mutex_unlock(&os.lock);
    return rc;
}

static void fake_close(void *ctx, iocp_socket_t s)
{
    (void)ctx;
    iocp__mutex_lock(&os.lock);
    os.open[s] = false;
    os.associated[s] = false;
    os.closes++;
    iocp__mutex_unlock(&os.lock);
}

static int open_sockets(void)
{
    int n = 0;
    for (int i = 0; i < FAKE_MAX; i++)
        n += os.open[i];
    return n;
}

/* The pool's way to a new socket (connects). */
static int fake_open(void *ctx, int family, iocp_socket_t *out)
{
    (void)ctx;
    (void)family;
    if (os.open_error) {
        int rc = os.open_error;
        os.open_error = 0;
        return rc;
    }
    *out = fake_socket();
    iocp__mutex_lock(&os.lock);
    os.opens++;
    iocp__mutex_unlock(&os.lock);
    return 0;
}

static const struct iocp_sockpool_ops fake_ops = {fake_open, fake_associate, fake_close};

static struct iocp_sockpool pool;

static void setup(void)
{
    memset(&os, 0, sizeof os);
    iocp__mutex_init(&os.lock);
    cr_assert_eq(iocp__sockpool_init(&pool, 8, &fake_ops, NULL), 0);
}

static void teardown(void)
{
    iocp__sockpool_fini(&pool);
    iocp__mutex_fini(&os.lock);
}

TestSuite(sockpool, .init = setup, .fini = teardown, .timeout = 60);

/* A connection's life with reuse: bind, disconnect into the pool, and the
 * next accept takes it again. */
static iocp_socket_t cycle(iocp_socket_t s)
{
    bool skip = false;
    int rc = iocp__sockpool_bind(&pool, s, &skip);
    cr_assert_geq(rc, 0, "bind: %s", iocp_strerror(rc));
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, s, true);
    iocp_socket_t again;
    cr_assert(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &again, &skip));
    cr_expect(skip, "the socket's mode comes back with it");
    return again;
}

Test(sockpool, a_fresh_socket_is_associated_once_by_the_os)
{
    iocp_socket_t s = fake_socket();
    cr_expect_eq(iocp__sockpool_bind(&pool, s, NULL), 0);
    cr_expect_eq(os.associations, 1);
    fake_close(NULL, s);
}

Test(sockpool, a_reused_socket_is_never_bound_twice)
{
    iocp_socket_t s = fake_socket();
    for (int i = 0; i < 1000; i++) {
        iocp_socket_t again = cycle(s);
        cr_assert_eq(again, s, "LIFO: the same socket comes back");
    }
    cr_expect_eq(iocp__sockpool_bind(&pool, s, NULL), 1, "the last take is lent: free bind");
    cr_expect_eq(os.associations, 1, "one association for a thousand uses");
    cr_expect_eq(os.refused, 0, "the OS never saw a second bind");
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.associations, 1u);
    cr_expect_eq(st.reused, 1000u);
    cr_expect_eq(st.lent, 0u);
    fake_close(NULL, s);
}

Test(sockpool, without_the_tracking_the_os_refuses_the_second_bind)
{
    /* What DIOCP did: bind a pooled socket again.  The OS says no, and the
     * pool passes its error on unchanged. */
    iocp_socket_t s = fake_socket();
    cr_assert_eq(iocp__sockpool_bind(&pool, s, NULL), 0);
    cr_expect_eq(iocp__sockpool_bind(&pool, s, NULL), IOCP_EINVAL);
    cr_expect_eq(os.refused, 1);
    fake_close(NULL, s);
}

Test(sockpool, a_lent_socket_closed_unbound_is_forgotten_before_its_number_returns)
{
    iocp_socket_t s = fake_socket();
    cr_assert_eq(iocp__sockpool_bind(&pool, s, NULL), 0);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, s, true);
    iocp_socket_t lent;
    cr_assert(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &lent, NULL));
    /* A refused connection: closed without a bind, as the library's socket
     * close does it (forget first). */
    iocp__sockpool_forget_everywhere(lent);
    fake_close(NULL, lent);
    /* The system hands the number out again for a brand-new socket: that
     * one must really be associated. */
    iocp_socket_t fresh = fake_socket();
    cr_assert_eq(fresh, lent, "the fake reuses numbers at once, as systems do");
    cr_expect_eq(iocp__sockpool_bind(&pool, fresh, NULL), 0);
    cr_expect_eq(os.associations, 2);
    fake_close(NULL, fresh);
}

Test(sockpool, families_are_kept_apart)
{
    iocp_socket_t s4 = fake_socket(), s6 = fake_socket();
    iocp__sockpool_bind(&pool, s4, NULL);
    iocp__sockpool_bind(&pool, s6, NULL);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, s4, false);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET6, s6, false);
    iocp_socket_t got;
    cr_assert(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET6, &got, NULL));
    cr_expect_eq(got, s6);
    cr_expect_not(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET6, &got, NULL));
    cr_assert(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &got, NULL));
    cr_expect_eq(got, s4);
    iocp__sockpool_forget(&pool, s4);
    iocp__sockpool_forget(&pool, s6);
    fake_close(NULL, s4);
    fake_close(NULL, s6);
}

Test(sockpool, a_full_pool_closes_the_extra_and_fini_closes_the_rest)
{
    iocp_socket_t s[12];
    for (int i = 0; i < 12; i++) {
        s[i] = fake_socket();
        iocp__sockpool_bind(&pool, s[i], NULL);
        iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, s[i], false);
    }
    cr_expect_eq(os.closes, 4, "the pool keeps 8 per family");
    cr_expect_eq(open_sockets(), 8);
    iocp__sockpool_fini(&pool);
    cr_expect_eq(open_sockets(), 0, "no socket outlives the pool");
    cr_assert_eq(iocp__sockpool_init(&pool, 8, &fake_ops, NULL), 0);
}

Test(sockpool, an_empty_pool_lends_nothing_and_costs_one_load_to_forget)
{
    iocp_socket_t got;
    cr_expect_not(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &got, NULL));
    iocp__sockpool_forget_everywhere(42);
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.free, 0u);
    cr_expect_eq(st.lent, 0u);
}

/* Many threads run connections through the pool at once. */
struct churn_arg {
    int rounds;
    int failures;
};

static void churn(void *arg)
{
    struct churn_arg *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        iocp_socket_t s;
        bool reused = iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &s, NULL);
        if (!reused)
            s = fake_socket();
        int rc = iocp__sockpool_bind(&pool, s, NULL);
        if (rc != (reused ? 1 : 0))
            a->failures++;
        if (i % 5 == 4) {
            iocp__sockpool_forget_everywhere(s);
            fake_close(NULL, s);
        } else {
            iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, s, false);
        }
    }
}

Test(sockpool, threads_taking_binding_and_returning_never_bind_twice)
{
    enum { THREADS = 4 };
    struct iocp_thread t[THREADS];
    struct churn_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct churn_arg){2000, 0};
        cr_assert_eq(iocp__thread_start(&t[i], churn, &args[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        iocp__thread_join(&t[i]);
        failures += args[i].failures;
    }
    cr_expect_eq(failures, 0, "a bind went to the wrong path");
    cr_expect_eq(os.refused, 0, "no socket was associated twice");
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.lent, 0u);
    cr_expect_eq((uint64_t)os.associations, st.associations);
    cr_expect_gt(st.reused, 0u);
}

/* ---- outgoing connections (ConnectEx) ---- */

/* What the library does with a connect's socket: take one, bind it to the
 * port (iocp__port_bind), and after a graceful close DisconnectEx puts it
 * back on the connects' stack.  Returns the socket; *reused says where it
 * came from. */
static iocp_socket_t connect_once(int family, bool *reused)
{
    iocp_socket_t s;
    cr_assert_eq(iocp__sockpool_connect_socket(&pool, family, &s, reused), 0);
    int rc = iocp__sockpool_bind(&pool, s, NULL);
    cr_assert_eq(rc, *reused ? 1 : 0, "bind: %d (reused %d)", rc, *reused);
    return s;
}

Test(sockpool, a_pooled_socket_handed_to_a_connect_is_not_bound_to_the_port_again)
{
    bool reused;
    iocp_socket_t s = connect_once(AF_INET, &reused);
    cr_expect_not(reused, "an empty pool: a new socket");
    cr_expect_eq(os.opens, 1);
    for (int i = 0; i < 100; i++) {
        iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, s, true);
        iocp_socket_t again = connect_once(AF_INET, &reused);
        cr_assert(reused, "round %d: the pooled socket is reused", i);
        cr_assert_eq(again, s);
    }
    cr_expect_eq(os.opens, 1, "no new socket after the first");
    cr_expect_eq(os.associations, 1, "one association for 101 connects");
    cr_expect_eq(os.refused, 0, "the OS never saw a second bind");
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.reused, 100u);
    cr_expect_eq(st.lent, 0u);
    cr_expect_eq(st.free, 0u);
    fake_close(NULL, s);
}

Test(sockpool, a_connect_of_another_family_takes_a_new_socket)
{
    bool reused;
    iocp_socket_t s4 = connect_once(AF_INET, &reused);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, s4, false);
    iocp_socket_t s6 = connect_once(AF_INET6, &reused);
    cr_expect_not(reused, "no IPv6 socket in the pool");
    cr_expect_neq(s6, s4);
    cr_expect_eq(os.opens, 2);
    cr_expect_eq(os.associations, 2, "the new socket is really associated");
    cr_expect_eq(os.refused, 0);
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.free, 1u, "the IPv4 socket waits for an IPv4 connect");
    iocp_socket_t again = connect_once(AF_INET, &reused);
    cr_expect(reused);
    cr_expect_eq(again, s4);
    fake_close(NULL, s4);
    fake_close(NULL, s6);
}

Test(sockpool, an_empty_pool_gives_a_connect_a_new_socket_or_the_error)
{
    bool reused = true;
    iocp_socket_t s;
    cr_assert_eq(iocp__sockpool_connect_socket(&pool, AF_INET, &s, &reused), 0);
    cr_expect_not(reused);
    cr_expect_eq(os.opens, 1);
    cr_expect_eq(iocp__sockpool_bind(&pool, s, NULL), 0, "a new socket goes to the OS");
    cr_expect_eq(os.associations, 1);
    fake_close(NULL, s);

    os.open_error = IOCP_ENOMEM;
    reused = true;
    cr_expect_eq(iocp__sockpool_connect_socket(&pool, AF_INET, &s, &reused), IOCP_ENOMEM);
    cr_expect_not(reused);
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.lent, 0u);
    cr_expect_eq(open_sockets(), 0);
}

Test(sockpool, accepted_and_connected_sockets_are_never_swapped)
{
    /* A socket ConnectEx used comes back bound and may not go to AcceptEx;
     * an accepted one may not go to ConnectEx. */
    bool reused;
    iocp_socket_t accepted = fake_socket();
    cr_assert_eq(iocp__sockpool_bind(&pool, accepted, NULL), 0);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, accepted, false);
    iocp_socket_t out = connect_once(AF_INET, &reused);
    cr_expect_not(reused, "an accepted socket is not handed to a connect");
    cr_expect_neq(out, accepted);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, out, false);
    iocp_socket_t got;
    cr_assert(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &got, NULL));
    cr_expect_eq(got, accepted, "an accept takes the accepted socket, not the newer connect one");
    cr_expect_not(iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &got, NULL),
                  "the connect socket is never handed to an accept");
    cr_expect_eq(iocp__sockpool_bind(&pool, accepted, NULL), 1);
    iocp_socket_t again = connect_once(AF_INET, &reused);
    cr_expect(reused);
    cr_expect_eq(again, out);
    cr_expect_eq(os.refused, 0);
    fake_close(NULL, accepted);
    fake_close(NULL, out);
}

Test(sockpool, a_failed_connect_on_a_reused_socket_closes_it)
{
    bool reused;
    iocp_socket_t s = connect_once(AF_INET, &reused);
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, s, true);

    /* Reused and bound, then ConnectEx fails (refused): the library unbinds
     * and closes it (iocp__socket_close: forget, then closesocket). */
    iocp_socket_t r = connect_once(AF_INET, &reused);
    cr_assert(reused);
    iocp__sockpool_forget_everywhere(r);
    fake_close(NULL, r);
    cr_expect_eq(open_sockets(), 0, "the reused socket is not leaked");

    /* Reused and closed before its bind (the bind failed): forgotten, so
     * the number, handed out again by the system, is really associated. */
    s = connect_once(AF_INET, &reused);
    cr_expect_not(reused, "the pool is empty: the failed socket did not come back");
    iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, s, true);
    iocp_socket_t lent;
    cr_assert_eq(iocp__sockpool_connect_socket(&pool, AF_INET, &lent, &reused), 0);
    cr_assert(reused);
    iocp__sockpool_forget_everywhere(lent);
    fake_close(NULL, lent);
    iocp_socket_t fresh = connect_once(AF_INET, &reused);
    cr_expect_not(reused);
    cr_expect_eq(fresh, lent, "the fake reuses numbers at once, as systems do");
    cr_expect_eq(os.refused, 0, "the new socket behind the old number was associated once");
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.lent, 0u);
    cr_expect_eq(st.free, 0u);
    fake_close(NULL, fresh);
    cr_expect_eq(open_sockets(), 0);
}

Test(sockpool, the_cap_holds_for_connect_sockets_too)
{
    iocp_socket_t s[12];
    bool reused;
    for (int i = 0; i < 12; i++)
        s[i] = connect_once(AF_INET, &reused);
    for (int i = 0; i < 12; i++)
        iocp__sockpool_put(&pool, IOCP_SOCKPOOL_CONNECT, AF_INET, s[i], false);
    cr_expect_eq(os.closes, 4, "the pool keeps 8 connect sockets per family");
    cr_expect_eq(open_sockets(), 8);
    /* The accepts' stack has its own 8. */
    for (int i = 0; i < 10; i++) {
        iocp_socket_t a = fake_socket();
        iocp__sockpool_bind(&pool, a, NULL);
        iocp__sockpool_put(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, a, false);
    }
    cr_expect_eq(os.closes, 6);
    cr_expect_eq(open_sockets(), 16);
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.free, 16u);
    cr_expect_eq(st.pooled, 16u);
    cr_expect_eq(st.closed, 6u);
    iocp__sockpool_fini(&pool);
    cr_expect_eq(open_sockets(), 0, "no socket outlives the pool");
    cr_assert_eq(iocp__sockpool_init(&pool, 8, &fake_ops, NULL), 0);
}

/* Connects and accepts share the pool from many threads. */
static void churn_mixed(void *arg)
{
    struct churn_arg *a = arg;
    for (int i = 0; i < a->rounds; i++) {
        bool out = i % 2 == 0, reused;
        iocp_socket_t s;
        if (out) {
            if (iocp__sockpool_connect_socket(&pool, AF_INET, &s, &reused) != 0) {
                a->failures++;
                continue;
            }
        } else {
            reused = iocp__sockpool_take(&pool, IOCP_SOCKPOOL_ACCEPT, AF_INET, &s, NULL);
            if (!reused)
                s = fake_socket();
        }
        if (iocp__sockpool_bind(&pool, s, NULL) != (reused ? 1 : 0))
            a->failures++;
        if (i % 7 == 6) {
            iocp__sockpool_forget_everywhere(s);
            fake_close(NULL, s);
        } else {
            iocp__sockpool_put(&pool, out ? IOCP_SOCKPOOL_CONNECT : IOCP_SOCKPOOL_ACCEPT, AF_INET,
                               s, false);
        }
    }
}

Test(sockpool, threads_connecting_and_accepting_never_bind_twice)
{
    enum { THREADS = 4 };
    struct iocp_thread t[THREADS];
    struct churn_arg args[THREADS];
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct churn_arg){2000, 0};
        cr_assert_eq(iocp__thread_start(&t[i], churn_mixed, &args[i]), 0);
    }
    int failures = 0;
    for (int i = 0; i < THREADS; i++) {
        iocp__thread_join(&t[i]);
        failures += args[i].failures;
    }
    cr_expect_eq(failures, 0, "a bind went to the wrong path");
    cr_expect_eq(os.refused, 0, "no socket was associated twice");
    struct iocp_sockpool_stats st;
    iocp__sockpool_stats(&pool, &st);
    cr_expect_eq(st.lent, 0u);
    cr_expect_eq((uint64_t)os.associations, st.associations);
    cr_expect_gt(st.reused, 0u);
    iocp__sockpool_fini(&pool);
    cr_expect_eq(open_sockets(), 0, "every socket was closed or pooled");
    cr_assert_eq(iocp__sockpool_init(&pool, 8, &fake_ops, NULL), 0);
}
