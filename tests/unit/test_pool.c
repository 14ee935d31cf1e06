/* SPDX-License-Identifier: MIT */
/*
 * The per-worker pools of pool.c, on a worker that never runs: connection
 * objects come back zeroed and are recycled first, every object is counted
 * (created, lent, returned, destroyed) so that the stop audit can balance,
 * the pools are bounded, a stopping worker frees instead of pooling, and
 * send-queue chunks of the standard size are recycled while larger ones are
 * not.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"
#include "sendq.h"

static struct iocp_worker w;

static void setup(void)
{
    memset(&w, 0, sizeof w);
}

static void teardown(void)
{
    iocp__pool_drain(&w);
}

TestSuite(pool, .init = setup, .fini = teardown, .timeout = 30);

#define COUNT(field) atomic_load(&w.cnt.field)

Test(pool, a_returned_connection_is_lent_again_first_and_zeroed)
{
    struct iocp_conn *a = iocp__conn_get(&w);
    cr_assert_not_null(a);
    a->data = &w;
    a->flags = 0xffff;
    a->refs = 7;
    iocp__conn_put(&w, a);
    struct iocp_conn *b = iocp__conn_get(&w);
    cr_assert_eq(b, a, "the pooled object is reused before any allocation");
    static const struct iocp_conn zero;
    cr_assert(memcmp(b, &zero, sizeof zero) == 0, "a lent connection starts zeroed");
    cr_assert_eq(COUNT(pool_created), 1);
    cr_assert_eq(COUNT(pool_lent), 2);
    cr_assert_eq(COUNT(pool_returned), 1);
    iocp__conn_put(&w, b);
}

Test(pool, every_object_is_counted_so_the_books_balance)
{
    struct iocp_conn *c[10];
    for (int i = 0; i < 10; i++)
        cr_assert_not_null(c[i] = iocp__conn_get(&w));
    cr_assert_eq(COUNT(pool_created), 10);
    cr_assert_eq(COUNT(pool_lent), 10);
    for (int i = 0; i < 10; i++)
        iocp__conn_put(&w, c[i]);
    cr_assert_eq(COUNT(pool_returned), 10);
    cr_assert_eq(w.nfree_conns, 10);
    cr_assert_eq(COUNT(pool_destroyed), 0, "returned objects stay pooled");
    iocp__pool_drain(&w);
    cr_assert_eq(COUNT(pool_destroyed), 10, "a drain frees every pooled object");
    cr_assert_eq(w.nfree_conns, 0);
    cr_assert_null(w.free_conns);
}

Test(pool, the_connection_pool_is_bounded)
{
    enum { N = 1100, CAP = 1024 };
    struct iocp_conn **c = calloc(N, sizeof *c);
    cr_assert_not_null(c);
    for (int i = 0; i < N; i++)
        cr_assert_not_null(c[i] = iocp__conn_get(&w));
    for (int i = 0; i < N; i++)
        iocp__conn_put(&w, c[i]);
    cr_assert_eq(w.nfree_conns, CAP, "a burst does not pin memory beyond the cap");
    cr_assert_eq(COUNT(pool_destroyed), N - CAP);
    cr_assert_eq(COUNT(pool_returned), N);
    free(c);
}

Test(pool, a_stopping_worker_frees_what_comes_back)
{
    struct iocp_conn *c = iocp__conn_get(&w);
    w.stopping = true;
    iocp__conn_put(&w, c);
    cr_assert_eq(w.nfree_conns, 0);
    cr_assert_eq(COUNT(pool_destroyed), 1);
    cr_assert_eq(COUNT(pool_returned), 1);
}

Test(pool, standard_chunks_are_recycled_and_large_ones_are_not)
{
    struct iocp_send_chunk *k = iocp__chunk_get(&w, 10);
    cr_assert_not_null(k);
    cr_assert_eq(k->cap, IOCP_CHUNK_SIZE, "a small need gets a standard chunk");
    cr_assert_eq(k->start, 0);
    cr_assert_eq(k->end, 0);
    cr_assert_null(k->next);
    k->start = 3;
    k->end = 9;
    memset(k->data, 0x5a, k->cap); /* the whole capacity is usable */
    iocp__chunk_put(&w, k);
    cr_assert_eq(w.nfree_chunks, 1);
    struct iocp_send_chunk *again = iocp__chunk_get(&w, IOCP_CHUNK_SIZE);
    cr_assert_eq(again, k, "a standard chunk is reused");
    cr_assert_eq(again->start, 0, "a reused chunk starts empty");
    cr_assert_eq(again->end, 0);

    struct iocp_send_chunk *big = iocp__chunk_get(&w, IOCP_CHUNK_SIZE + 1);
    cr_assert_not_null(big);
    cr_assert_eq(big->cap, IOCP_CHUNK_SIZE + 1, "a large send gets a chunk of its own size");
    memset(big->data, 0xa5, big->cap);
    iocp__chunk_put(&w, big);
    cr_assert_eq(w.nfree_chunks, 0, "a large chunk goes back to the allocator");
    iocp__chunk_put(&w, again);
}

Test(pool, the_chunk_pool_is_bounded)
{
    enum { N = 100, CAP = 64 };
    struct iocp_send_chunk *k[N];
    for (int i = 0; i < N; i++)
        cr_assert_not_null(k[i] = iocp__chunk_get(&w, 1));
    for (int i = 0; i < N; i++)
        iocp__chunk_put(&w, k[i]);
    cr_assert_eq(w.nfree_chunks, CAP);
    iocp__pool_drain(&w);
    cr_assert_eq(w.nfree_chunks, 0);
    cr_assert_null(w.free_chunks);
}
