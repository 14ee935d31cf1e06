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
 * freed, never leaked, and the pending count never counts it.
 *
 * Ownership of a request: the pool owns it from alloc until post() succeeds;
 * the OS owns it until its completion; complete() hands it to the caller,
 * who reposts or releases it.  After shutdown, the detach callback decides:
 * free at once (nothing in flight) or wait for the OS to give it back, in
 * which case complete() returns false and the caller releases it.
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
     * caller still owns req.  Called without the pool's lock held, so the
     * completion may reach complete() on another thread (or on this one)
     * before post returns; once it returns 0 the pool never touches req. */
    int (*post)(void *ctx, struct iocp_accept_req *req);
};

/*
 * At any moment, under the lock: posted == completed + detached + pending.
 * Once every request has come back: allocated == freed.
 */
struct iocp_accept_pool_stats {
    size_t pending;        /* posted and not completed */
    size_t low, high;      /* the watermarks */
    uint64_t posted;       /* posts that succeeded (or are under way) */
    uint64_t completed;    /* completions taken back */
    uint64_t detached;     /* pending requests handed to detach at shutdown */
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
    size_t reserved; /* requests a refill has promised to post, not yet linked */
    size_t posting;  /* calls to ops.post under way */
    bool shut;
    struct iocp_accept_pool_stats stats; /* pending/low/high mirrored here */
};

/*
 * iocp__accept_pool_init(pool, low, high, ops, ctx):
 * Set the pool up empty.  Requires 0 <= low < high <= INT_MAX and all three
 * ops.  0, IOCP_EINVAL, or the error of creating the lock.  ops is copied;
 * ctx is passed to each op and stays the caller's.
 */
int iocp__accept_pool_init(struct iocp_accept_pool *pool, size_t low, size_t high,
                           const struct iocp_accept_pool_ops *ops, void *ctx);

/*
 * iocp__accept_pool_refill(pool):
 * If more than `low` requests are pending (counting those another refill
 * is about to post), do nothing and return 0.  Otherwise allocate and post
 * requests until `high` are pending, stopping at the first failure: a
 * failing alloc or post means a resource is short, and trying again at once
 * would only fail again.  Returns how many were posted, or the error if not
 * one could be (IOCP_ENOMEM from alloc, or post's error); a request whose
 * post failed is freed.  Safe to call from several threads at once: together
 * they never post beyond `high`.  Does nothing after shutdown.
 */
int iocp__accept_pool_refill(struct iocp_accept_pool *pool);

/*
 * iocp__accept_pool_repost(pool, req):
 * Post a request that just completed (successfully or not) again, reusing
 * it.  The pool takes req in every case.  Returns 0 when it was posted, or
 * when `high` are already pending (a concurrent refill topped the pool up)
 * and it was freed instead; the post's error, in which case req has been
 * freed; IOCP_ECANCELED after shutdown, req freed.
 */
int iocp__accept_pool_repost(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/*
 * iocp__accept_pool_complete(pool, req):
 * A posted request completed: unlink it in O(1).  The caller then reposts
 * it, frees it with iocp__accept_pool_release, or keeps it.  Returns false if
 * req was not pending (detached by shutdown, or completed twice), in which
 * case nothing changes; a detached request whose detach callback returned
 * false is then the caller's to release.
 */
bool iocp__accept_pool_complete(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/* Free a request that is not pending.  The pool must not have been fini'd. */
void iocp__accept_pool_release(struct iocp_accept_pool *pool, struct iocp_accept_req *req);

/*
 * iocp__accept_pool_shutdown(pool, detach, arg):
 * Stop refilling, wait for posts under way on other threads to return, and
 * detach every pending request: each is unlinked, its pool pointer cleared,
 * and handed to detach(req, arg).  detach starts the cancel in the OS and
 * returns true if nothing is in flight, so the pool frees req at once, or
 * false if the OS will still give it back (its completion then finds
 * complete() returning false, and the caller releases it).  detach runs
 * under the pool's lock, so that no completion can free the request while
 * detach holds it: it must not call back into the pool.  With detach NULL,
 * each is freed at once.  Returns how many were detached.  Must not be
 * called from inside ops.post.  A second call detaches nothing.
 */
size_t iocp__accept_pool_shutdown(struct iocp_accept_pool *pool,
                                  bool (*detach)(struct iocp_accept_req *req, void *arg),
                                  void *arg);

/* A consistent copy of the counters. */
void iocp__accept_pool_stats(struct iocp_accept_pool *pool, struct iocp_accept_pool_stats *out);

/* Release the lock; the pool must be shut down and empty, and no thread in
 * refill or repost. */
void iocp__accept_pool_fini(struct iocp_accept_pool *pool);

#endif /* IOCP_ACCEPT_POOL_H */
