/* SPDX-License-Identifier: MIT */
/*
 * The pending-accept pool of seed 4, as pure logic with no operating system
 * in it: the acceptor (acceptor.c on each platform) supplies the functions
 * that allocate, post and free accept requests; this file keeps the count
 * right whatever they do.
 *
 * Pending requests sit in an intrusive doubly linked list: insert at the
 * head under the pool's lock, O(1) unlink when a request completes, and a
 * walk under the lock that detaches every request at shutdown.  refill()
 * carries out the review's checkPostRequest: if more than the low watermark
 * are pending, do nothing; otherwise post new requests until the high
 * watermark is reached.  A post that fails loses nothing: the request is
 * either kept for the next refill or freed, never leaked, and the pending
 * count never counts it.
 */
#ifndef IOCP_ACCEPT_POOL_H
#define IOCP_ACCEPT_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "list.h"
#include "thread.h"

struct iocp_accept_pool;

/* Embedded in the platform's accept request. */
struct iocp_accept_req {
    struct iocp_list link;         /* in pool->pending while posted */
    struct iocp_accept_pool *pool; /* NULL once detached by shutdown */
    bool pending;
};

struct iocp_accept_pool_ops {
    /* A new request, or NULL when memory is short. */
    struct iocp_accept_req *(*alloc)(void *ctx);
    /* Free a request that is not pending. */
    void (*free)(void *ctx, struct iocp_accept_req *req);
    /* Start the accept.  0 when posted (the completion will come), or a
     * negative IOCP_E* code, in which case no completion will come and the
     * caller still owns req.  Called without the pool's lock held. */
    int (*post)(void *ctx, struct iocp_accept_req *req);
};

struct iocp_accept_pool_stats {
    size_t pending;        /* posted and not completed */
    size_t low, high;      /* the watermarks */
    uint64_t posted;       /* posts that succeeded */
    uint64_t completed;    /* completions taken back */
    uint64_t failed_posts; /* posts that failed */
    uint64_t allocated;    /* requests made */
    uint64_t freed;        /* requests freed */
};

struct iocp_accept_pool {
    struct iocp_mutex lock;
    struct iocp_list pending;
    struct iocp_accept_pool_ops ops;
    void *ctx;
    size_t low, high;
    bool shut;
    struct iocp_accept_pool_stats stats; /* pending/low/high mirrored here */
};

/*
 * iocp__accept_pool_init(pool, low, high, ops, ctx):
 * Set the pool up empty.  Requires 0 <= low < high.  0 or IOCP_EINVAL.
 */
int iocp__accept_pool_init(struct iocp_accept_pool *pool, size_t low, size_t high,
                           const struct iocp_accept_pool_ops *ops, void *ctx);

/*
 * iocp__accept_pool_refill(pool):
 * If more than `low` requests are pending, do nothing and return 0.
 * Otherwise allocate and post requests until `high` are pending.  Returns
 * how many were posted, or the first error if not one could be posted
 * (IOCP_ENOMEM from alloc, or post's error); a request whose post failed is
 * freed.  Does nothing after shutdown.
 */
int iocp__accept_pool_refill(struct iocp_accept_pool *pool);

/*
 * iocp__accept_pool_repost(pool, req):
 * Post a request that just completed (successfully or not) again, reusing
 * it.  0, or the post's error, in which case req has been freed.  After
 * shutdown the request is freed and IOCP_ECANCELED returned.
 */
int iocp__accept_pool_repost(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/*
 * iocp__accept_pool_complete(pool, req):
 * A posted request completed: unlink it in O(1).  The caller then reposts
 * it, frees it with iocp__accept_pool_release, or keeps it.  Returns false if
 * req was not pending (detached by shutdown, or completed twice), in which
 * case nothing changes.
 */
bool iocp__accept_pool_complete(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/* Free a request that is not pending. */
void iocp__accept_pool_release(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/*
 * iocp__accept_pool_shutdown(pool, detach, arg):
 * Stop refilling and detach every pending request: each is unlinked, its
 * pool pointer cleared, and handed to detach(req, arg), which cancels it in
 * the OS and frees it once the OS gives it back (or at once, when nothing
 * is in flight).  With detach NULL, each is freed at once.  Returns how many
 * were detached.
 */
size_t iocp__accept_pool_shutdown(struct iocp_accept_pool *pool,
                                  void (*detach)(struct iocp_accept_req *req, void *arg),
                                  void *arg);

/* A consistent copy of the counters. */
void iocp__accept_pool_stats(struct iocp_accept_pool *pool, struct iocp_accept_pool_stats *out);

/* Release the lock; the pool must be shut down and empty. */
void iocp__accept_pool_fini(struct iocp_accept_pool *pool);

#endif /* IOCP_ACCEPT_POOL_H */
