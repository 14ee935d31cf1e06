/* SPDX-License-Identifier: MIT */
/*
 * The pending-accept pool (seed 4): how many accept requests are posted,
 * which ones, and when to post more, with the OS reduced to three function
 * pointers so that every path, the failing ones first, can be tested
 * without a socket.
 *
 * One lock guards the list and every counter; it is never held while an op
 * runs, because a post may complete at once on another thread (or inline,
 * on this one) and that completion takes the lock.  A request is therefore
 * linked and counted before it is posted, and taken back out if the post
 * fails, so that a completion which overtakes its own post finds it.
 */
#include "accept_pool.h"

#include <assert.h>
#include <limits.h>

#include "internal.h"

int iocp__accept_pool_init(struct iocp_accept_pool *pool, size_t low, size_t high,
                           const struct iocp_accept_pool_ops *ops, void *ctx)
{
    int rc;

    /* refill returns a count as an int, hence the INT_MAX bound. */
    if (pool == NULL || ops == NULL || ops->alloc == NULL || ops->free == NULL ||
        ops->post == NULL || low >= high || high > INT_MAX)
        return IOCP_EINVAL;
    rc = iocp__mutex_init(&pool->lock);
    if (rc < 0)
        return rc;
    iocp_list_init(&pool->pending);
    pool->ops = *ops;
    pool->ctx = ctx;
    pool->low = low;
    pool->high = high;
    pool->reserved = 0;
    pool->posting = 0;
    pool->shut = false;
    pool->stats = (struct iocp_accept_pool_stats){.low = low, .high = high};
    return 0;
}

/*
 * Count req as pending and posted before ops.post runs.  Counting it as
 * posted already (and taking that back on failure) keeps posted ==
 * completed + detached + pending true in every snapshot, even while a
 * completion overtakes its post.  Called with the lock held.
 */
static void link_pending(struct iocp_accept_pool *pool, struct iocp_accept_req *req)
{
    iocp_list_insert_head(&pool->pending, &req->link);
    req->pool = pool;
    req->pending = true;
    pool->stats.pending++;
    pool->stats.posted++;
    pool->posting++;
}

/* Post a linked request; if the post fails, unlink and free it.  Called
 * without the lock.  0 or the post's error. */
static int post_linked(struct iocp_accept_pool *pool, struct iocp_accept_req *req)
{
    int rc = pool->ops.post(pool->ctx, req);

    /* On success req may already be completed and freed by another
     * thread: from here on only a failed post may touch it. */
    iocp__mutex_lock(&pool->lock);
    pool->posting--;
    if (rc < 0) {
        /* No completion will come, and shutdown waits for posting to reach
         * zero before it detaches anything, so req is still linked here. */
        iocp_list_remove(&req->link);
        req->pending = false;
        pool->stats.pending--;
        pool->stats.posted--;
        pool->stats.failed_posts++;
        pool->stats.freed++;
    }
    iocp__mutex_unlock(&pool->lock);
    if (rc >= 0)
        return 0;
    pool->ops.free(pool->ctx, req);
    return rc;
}

int iocp__accept_pool_refill(struct iocp_accept_pool *pool)
{
    struct iocp_accept_req *req, *unused = NULL;
    size_t have, left;
    int posted = 0, err = 0;

    iocp__mutex_lock(&pool->lock);
    /* Requests another refill has reserved but not yet linked count as
     * pending, so that concurrent refills together stop at high. */
    have = pool->stats.pending + pool->reserved;
    if (pool->shut || have > pool->low) {
        iocp__mutex_unlock(&pool->lock);
        return 0;
    }
    left = pool->high - have;
    pool->reserved += left;
    iocp__mutex_unlock(&pool->lock);

    while (left > 0) {
        /* Allocation may create a socket: keep it outside the lock. */
        req = pool->ops.alloc(pool->ctx);
        iocp__mutex_lock(&pool->lock);
        if (req == NULL) {
            err = IOCP_ENOMEM;
            goto out;
        }
        pool->stats.allocated++;
        if (pool->shut) {
            pool->stats.freed++;
            unused = req;
            goto out;
        }
        pool->reserved--;
        left--;
        link_pending(pool, req);
        iocp__mutex_unlock(&pool->lock);
        err = post_linked(pool, req);
        if (err < 0) {
            iocp__mutex_lock(&pool->lock);
            goto out;
        }
        posted++;
    }
    return posted;

out:
    /* Give back what this call reserved and will not post. */
    pool->reserved -= left;
    iocp__mutex_unlock(&pool->lock);
    if (unused != NULL)
        pool->ops.free(pool->ctx, unused);
    return posted > 0 ? posted : err;
}

int iocp__accept_pool_repost(struct iocp_accept_pool *pool, struct iocp_accept_req *req)
{
    int rc;

    assert(!req->pending);
    iocp__mutex_lock(&pool->lock);
    if (pool->shut) {
        rc = IOCP_ECANCELED;
    } else if (pool->stats.pending + pool->reserved >= pool->high) {
        /* A refill topped the pool up while req was in the caller's hands:
         * posting it too would go beyond high, so retire it. */
        rc = 0;
    } else {
        link_pending(pool, req);
        iocp__mutex_unlock(&pool->lock);
        return post_linked(pool, req);
    }
    pool->stats.freed++;
    iocp__mutex_unlock(&pool->lock);
    pool->ops.free(pool->ctx, req);
    return rc;
}

bool iocp__accept_pool_complete(struct iocp_accept_pool *pool, struct iocp_accept_req *req)
{
    bool mine;

    /* req->pool and req->pending only change under this lock, so a detached
     * request, or one completed already, is recognised without a CAS. */
    iocp__mutex_lock(&pool->lock);
    mine = req->pool == pool && req->pending;
    if (mine) {
        iocp_list_remove(&req->link);
        req->pending = false;
        pool->stats.pending--;
        pool->stats.completed++;
    }
    iocp__mutex_unlock(&pool->lock);
    return mine;
}

void iocp__accept_pool_release(struct iocp_accept_pool *pool, struct iocp_accept_req *req)
{
    assert(!req->pending);
    iocp__mutex_lock(&pool->lock);
    pool->stats.freed++;
    iocp__mutex_unlock(&pool->lock);
    pool->ops.free(pool->ctx, req);
}

size_t iocp__accept_pool_shutdown(struct iocp_accept_pool *pool,
                                  bool (*detach)(struct iocp_accept_req *req, void *arg), void *arg)
{
    struct iocp_list done, *pos, *tmp;
    struct iocp_accept_req *req;
    size_t n = 0;

    iocp_list_init(&done);
    iocp__mutex_lock(&pool->lock);
    pool->shut = true;
    /* A post under way may yet fail, and its caller would then unlink and
     * free a request that detach had been given.  Once shut is set no new
     * post starts, so this wait lasts only as long as the current ones;
     * shutdown is rare enough for a sleep to do instead of a condition. */
    while (pool->posting > 0) {
        iocp__mutex_unlock(&pool->lock);
        iocp__sleep_ms(1);
        iocp__mutex_lock(&pool->lock);
    }
    iocp_list_foreach_safe(pos, tmp, &pool->pending)
    {
        req = iocp_list_entry(pos, struct iocp_accept_req, link);
        iocp_list_remove(pos);
        req->pool = NULL;
        req->pending = false;
        pool->stats.pending--;
        pool->stats.detached++;
        n++;
        /* detach runs under the lock: were it called after unlocking, the
         * request's completion could reach complete(), see it detached and
         * free it while detach still used it. */
        if (detach == NULL || detach(req, arg)) {
            pool->stats.freed++;
            iocp_list_insert_tail(&done, pos);
        }
    }
    iocp__mutex_unlock(&pool->lock);
    iocp_list_foreach_safe(pos, tmp, &done)
    {
        iocp_list_remove(pos);
        pool->ops.free(pool->ctx, iocp_list_entry(pos, struct iocp_accept_req, link));
    }
    return n;
}

void iocp__accept_pool_stats(struct iocp_accept_pool *pool, struct iocp_accept_pool_stats *out)
{
    iocp__mutex_lock(&pool->lock);
    *out = pool->stats;
    iocp__mutex_unlock(&pool->lock);
}

void iocp__accept_pool_fini(struct iocp_accept_pool *pool)
{
    assert(pool->shut);
    assert(iocp_list_empty(&pool->pending));
    assert(pool->posting == 0 && pool->reserved == 0);
    iocp__mutex_fini(&pool->lock);
}
