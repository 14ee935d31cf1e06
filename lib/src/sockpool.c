/* SPDX-License-Identifier: MIT */
/*
 * Reusable sockets with the bound-once rule (sockpool.h).  Platform-free:
 * the IOCP backend supplies the OS calls, the tests a fake.
 */
#include "sockpool.h"

#include <stdlib.h>
#include <string.h>

#include "port.h" /* the socket headers: AF_INET6 */

/* Every live pool, so that a socket closed anywhere in the library can be
 * forgotten by the pool that lent it. */
static struct iocp_list pools = {&pools, &pools};
static struct iocp_mutex pools_lock;
static iocp_atomic_size lending; /* sockets lent by all pools together */
static iocp_atomic_int pools_ready;

/* 0: not made, 1: being made, 2: ready.  The first pool makes the lock. */
static void pools_init(void)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&pools_ready, &expected, 1)) {
        iocp__mutex_init(&pools_lock);
        atomic_store(&pools_ready, 2);
        return;
    }
    while (atomic_load(&pools_ready) != 2)
        iocp__sleep_ms(0);
}

static int slot_of(enum iocp_sockpool_use use, int family)
{
    return (use == IOCP_SOCKPOOL_CONNECT ? 2 : 0) + (family == AF_INET6 ? 1 : 0);
}

int iocp__sockpool_init(struct iocp_sockpool *pool, size_t cap, const struct iocp_sockpool_ops *ops,
                        void *ctx)
{
    struct iocp_sockpool_entry *stacks[4] = {NULL, NULL, NULL, NULL};
    for (int f = 0; cap && f < 4; f++) {
        stacks[f] = calloc(cap, sizeof *stacks[f]);
        if (!stacks[f]) {
            for (int g = 0; g < f; g++)
                free(stacks[g]);
            return IOCP_ENOMEM;
        }
    }
    memset(pool, 0, sizeof *pool);
    pool->cap = cap;
    pool->ops = *ops;
    pool->ctx = ctx;
    for (int f = 0; f < 4; f++)
        pool->free[f] = stacks[f];
    iocp__mutex_init(&pool->lock);
    pools_init();
    iocp__mutex_lock(&pools_lock);
    iocp_list_insert_tail(&pools, &pool->link);
    iocp__mutex_unlock(&pools_lock);
    return 0;
}

void iocp__sockpool_fini(struct iocp_sockpool *pool)
{
    iocp__mutex_lock(&pools_lock);
    iocp_list_remove(&pool->link);
    iocp__mutex_unlock(&pools_lock);
    for (int f = 0; f < 4; f++) {
        for (size_t i = 0; i < pool->nfree[f]; i++) {
            pool->ops.close(pool->ctx, pool->free[f][i].s);
            pool->stats.closed++;
        }
        pool->nfree[f] = 0;
        free(pool->free[f]);
        pool->free[f] = NULL;
    }
    atomic_fetch_sub(&lending, pool->nlent);
    free(pool->lent);
    pool->lent = NULL;
    pool->nlent = pool->lent_cap = 0;
    iocp__mutex_fini(&pool->lock);
}

/* The index of s among the lent sockets, or SIZE_MAX; under the lock. */
static size_t find_lent(struct iocp_sockpool *pool, iocp_socket_t s)
{
    for (size_t i = 0; i < pool->nlent; i++)
        if (pool->lent[i].s == s)
            return i;
    return SIZE_MAX;
}

static void unlend(struct iocp_sockpool *pool, size_t i)
{
    pool->lent[i] = pool->lent[--pool->nlent];
    atomic_fetch_sub(&lending, 1);
}

bool iocp__sockpool_take(struct iocp_sockpool *pool, enum iocp_sockpool_use use, int family,
                         iocp_socket_t *out, bool *skip)
{
    int f = slot_of(use, family);
    iocp__mutex_lock(&pool->lock);
    if (!pool->nfree[f]) {
        iocp__mutex_unlock(&pool->lock);
        return false;
    }
    if (pool->nlent == pool->lent_cap) {
        size_t cap = pool->lent_cap ? pool->lent_cap * 2 : 16;
        struct iocp_sockpool_entry *lent = realloc(pool->lent, cap * sizeof *lent);
        if (!lent) {
            /* Without room to remember it, the socket cannot be lent. */
            iocp__mutex_unlock(&pool->lock);
            return false;
        }
        pool->lent = lent;
        pool->lent_cap = cap;
    }
    struct iocp_sockpool_entry e = pool->free[f][--pool->nfree[f]];
    pool->lent[pool->nlent++] = e;
    atomic_fetch_add(&lending, 1);
    iocp__mutex_unlock(&pool->lock);
    *out = e.s;
    if (skip)
        *skip = e.skip;
    return true;
}

int iocp__sockpool_connect_socket(struct iocp_sockpool *pool, int family, iocp_socket_t *out,
                                  bool *reused)
{
    *reused = iocp__sockpool_take(pool, IOCP_SOCKPOOL_CONNECT, family, out, NULL);
    if (*reused)
        return 0;
    return pool->ops.open(pool->ctx, family, out);
}

int iocp__sockpool_bind(struct iocp_sockpool *pool, iocp_socket_t s, bool *skip)
{
    if (atomic_load(&lending)) {
        iocp__mutex_lock(&pool->lock);
        size_t i = find_lent(pool, s);
        if (i != SIZE_MAX) {
            if (skip)
                *skip = pool->lent[i].skip;
            unlend(pool, i);
            pool->stats.reused++;
            iocp__mutex_unlock(&pool->lock);
            return 1;
        }
        iocp__mutex_unlock(&pool->lock);
    }
    int rc = pool->ops.associate(pool->ctx, s);
    if (rc == 0) {
        iocp__mutex_lock(&pool->lock);
        pool->stats.associations++;
        iocp__mutex_unlock(&pool->lock);
    }
    return rc;
}

void iocp__sockpool_put(struct iocp_sockpool *pool, enum iocp_sockpool_use use, int family,
                        iocp_socket_t s, bool skip)
{
    int f = slot_of(use, family);
    iocp__mutex_lock(&pool->lock);
    if (pool->nfree[f] < pool->cap) {
        pool->free[f][pool->nfree[f]++] = (struct iocp_sockpool_entry){s, skip};
        pool->stats.pooled++;
        iocp__mutex_unlock(&pool->lock);
        return;
    }
    pool->stats.closed++;
    iocp__mutex_unlock(&pool->lock);
    pool->ops.close(pool->ctx, s);
}

void iocp__sockpool_forget(struct iocp_sockpool *pool, iocp_socket_t s)
{
    iocp__mutex_lock(&pool->lock);
    size_t i = find_lent(pool, s);
    if (i != SIZE_MAX)
        unlend(pool, i);
    iocp__mutex_unlock(&pool->lock);
}

void iocp__sockpool_forget_everywhere(iocp_socket_t s)
{
    if (!atomic_load(&lending))
        return;
    iocp__mutex_lock(&pools_lock);
    struct iocp_list *pos;
    iocp_list_foreach(pos, &pools)
    {
        iocp__sockpool_forget(iocp_list_entry(pos, struct iocp_sockpool, link), s);
    }
    iocp__mutex_unlock(&pools_lock);
}

void iocp__sockpool_stats(struct iocp_sockpool *pool, struct iocp_sockpool_stats *out)
{
    iocp__mutex_lock(&pool->lock);
    *out = pool->stats;
    out->free = pool->nfree[0] + pool->nfree[1] + pool->nfree[2] + pool->nfree[3];
    out->lent = pool->nlent;
    iocp__mutex_unlock(&pool->lock);
}
