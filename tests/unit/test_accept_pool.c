/* SPDX-License-Identifier: MIT */
/*
 * The pending-accept pool, driven by fake ops: a fake that counts what it
 * allocates and frees, makes post fail on demand, and plays the OS by
 * holding posted requests until the test (or a thread) completes them.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "accept_pool.h"
#include "internal.h"

#define LIVE 0x4c495645u
#define DEAD 0x44454144u

struct fake_req {
    struct iocp_accept_req base;
    struct fake_req *next; /* in one of the fake's queues */
    unsigned magic;
    iocp_atomic_int detach_calls;
};

struct queue {
    struct fake_req *head, *tail;
    size_t count;
};

struct fake {
    struct iocp_accept_pool pool;
    iocp_atomic_u64 allocs, frees, post_calls, inline_done;
    iocp_atomic_u64 bad; /* anything a thread saw that must not happen */
    iocp_atomic_u64 detaches;
    /* What post and alloc do; set before the pool is used. */
    unsigned fail_every; /* post fails on every Nth call */
    unsigned fail_call;  /* post fails on this call only (1-based) */
    bool fail_always;
    int fail_rc;
    long alloc_budget;    /* alloc returns NULL once this many were made; -1: never */
    bool complete_inline; /* post completes and releases req before returning */
    bool complete_across; /* ...the same, on another thread it waits for */
    bool yield_in_post;   /* widen the windows the threaded tests race in */
    bool detach_frees;    /* detach says nothing is in flight */
    bool block_in_post;   /* post waits for `unblock` before deciding */
    iocp_atomic_bool in_post, unblock;
    /* The fake OS: posted requests, then completions delivered. */
    struct iocp_mutex lock;
    struct queue in_flight, port;
};

static struct fake_req *to_fake(struct iocp_accept_req *req)
{
    return iocp_container_of(req, struct fake_req, base);
}

static void q_push(struct queue *q, struct fake_req *r)
{
    r->next = NULL;
    if (q->tail)
        q->tail->next = r;
    else
        q->head = r;
    q->tail = r;
    q->count++;
}

/* Remove and return the i-th request of q, or NULL. */
static struct fake_req *q_take(struct queue *q, size_t i)
{
    struct fake_req **pp = &q->head, *r, *prev = NULL;
    while (*pp && i-- > 0) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    r = *pp;
    if (r == NULL)
        return NULL;
    *pp = r->next;
    if (q->tail == r)
        q->tail = prev;
    q->count--;
    r->next = NULL;
    return r;
}

static struct iocp_accept_req *fake_alloc(void *ctx)
{
    struct fake *f = ctx;
    struct fake_req *r;
    if (f->alloc_budget >= 0 && atomic_load(&f->allocs) >= (uint64_t)f->alloc_budget)
        return NULL;
    r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->magic = LIVE;
    atomic_init(&r->detach_calls, 0);
    atomic_fetch_add(&f->allocs, 1);
    return &r->base;
}

static void fake_free(void *ctx, struct iocp_accept_req *req)
{
    struct fake *f = ctx;
    struct fake_req *r = to_fake(req);
    if (r->magic != LIVE || req->pending) {
        atomic_fetch_add(&f->bad, 1);
        return;
    }
    r->magic = DEAD;
    atomic_fetch_add(&f->frees, 1);
    free(r);
}

static void complete_and_release(struct fake *f, struct iocp_accept_req *req)
{
    if (!iocp__accept_pool_complete(&f->pool, req))
        atomic_fetch_add(&f->bad, 1);
    iocp__accept_pool_release(&f->pool, req);
    atomic_fetch_add(&f->inline_done, 1);
}

struct across {
    struct fake *f;
    struct iocp_accept_req *req;
};

static void across_main(void *arg)
{
    struct across *a = arg;
    complete_and_release(a->f, a->req);
}

static int fake_post(void *ctx, struct iocp_accept_req *req)
{
    struct fake *f = ctx;
    uint64_t n = atomic_fetch_add(&f->post_calls, 1) + 1;

    if (f->block_in_post) {
        atomic_store(&f->in_post, true);
        while (!atomic_load(&f->unblock))
            iocp__sleep_ms(1);
    }
    if (f->fail_always || (f->fail_every && n % f->fail_every == 0) || n == f->fail_call)
        return f->fail_rc;
    if (f->complete_inline) {
        complete_and_release(f, req);
        return 0;
    }
    if (f->complete_across) {
        struct across a = {f, req};
        struct iocp_thread t;
        if (iocp__thread_start(&t, across_main, &a) < 0)
            return IOCP_EAGAIN;
        iocp__thread_join(&t);
        return 0;
    }
    iocp__mutex_lock(&f->lock);
    q_push(&f->in_flight, to_fake(req));
    iocp__mutex_unlock(&f->lock);
    /* From here req may be completed and freed by another thread. */
    if (f->yield_in_post)
        sched_yield();
    return 0;
}

static const struct iocp_accept_pool_ops fake_ops = {
    .alloc = fake_alloc,
    .free = fake_free,
    .post = fake_post,
};

static void fake_init(struct fake *f)
{
    memset(f, 0, sizeof *f);
    atomic_init(&f->allocs, 0);
    atomic_init(&f->frees, 0);
    atomic_init(&f->post_calls, 0);
    atomic_init(&f->inline_done, 0);
    atomic_init(&f->bad, 0);
    atomic_init(&f->detaches, 0);
    atomic_init(&f->in_post, false);
    atomic_init(&f->unblock, false);
    f->fail_rc = IOCP_ENOBUFS;
    f->alloc_budget = -1;
    cr_assert_eq(iocp__mutex_init(&f->lock), 0);
}

static void fake_start(struct fake *f, size_t low, size_t high)
{
    fake_init(f);
    cr_assert_eq(iocp__accept_pool_init(&f->pool, low, high, &fake_ops, f), 0);
}

/* The i-th request the fake OS holds, taken out as if it had completed. */
static struct iocp_accept_req *os_take(struct fake *f, size_t i)
{
    struct fake_req *r;
    iocp__mutex_lock(&f->lock);
    r = q_take(&f->in_flight, i);
    iocp__mutex_unlock(&f->lock);
    cr_assert_not_null(r, "the fake OS holds no request %zu", i);
    return &r->base;
}

static size_t os_count(struct fake *f)
{
    size_t n;
    iocp__mutex_lock(&f->lock);
    n = f->in_flight.count;
    iocp__mutex_unlock(&f->lock);
    return n;
}

static struct iocp_accept_pool_stats stats_of(struct fake *f)
{
    struct iocp_accept_pool_stats s;
    iocp__accept_pool_stats(&f->pool, &s);
    return s;
}

/* Complete n requests the OS holds and free them. */
static void complete_some(struct fake *f, size_t n)
{
    while (n-- > 0) {
        struct iocp_accept_req *req = os_take(f, 0);
        cr_assert(iocp__accept_pool_complete(&f->pool, req));
        iocp__accept_pool_release(&f->pool, req);
    }
}

/* The books agree with each other and with what the fake saw. */
static void expect_books_balance(struct fake *f)
{
    struct iocp_accept_pool_stats s = stats_of(f);
    cr_expect_eq(s.posted, s.completed + s.detached + s.pending,
                 "posted %llu != completed %llu + detached %llu + pending %zu",
                 (unsigned long long)s.posted, (unsigned long long)s.completed,
                 (unsigned long long)s.detached, s.pending);
    cr_expect_eq(s.allocated, atomic_load(&f->allocs));
    cr_expect_eq(s.freed, atomic_load(&f->frees));
    cr_expect_eq(atomic_load(&f->bad), 0, "a request was freed twice, or freed while pending");
}

static bool count_detach(struct iocp_accept_req *req, void *arg);

/* Shut down as an acceptor does, let the OS give back what it still holds,
 * and check that nothing leaked. */
static void finish(struct fake *f)
{
    struct iocp_accept_req *req;
    f->detach_frees = false;
    iocp__accept_pool_shutdown(&f->pool, count_detach, f);
    while (os_count(f) > 0) {
        req = os_take(f, 0);
        cr_expect_not(iocp__accept_pool_complete(&f->pool, req));
        iocp__accept_pool_release(&f->pool, req);
    }
    expect_books_balance(f);
    cr_expect_eq(atomic_load(&f->allocs), atomic_load(&f->frees), "requests leaked");
    iocp__accept_pool_fini(&f->pool);
    iocp__mutex_fini(&f->lock);
}

TestSuite(accept_pool, .timeout = 60);

Test(accept_pool, watermarks_with_low_not_below_high_are_invalid)
{
    struct fake f;
    fake_init(&f);
    cr_expect_eq(iocp__accept_pool_init(&f.pool, 4, 4, &fake_ops, &f), IOCP_EINVAL);
    cr_expect_eq(iocp__accept_pool_init(&f.pool, 5, 2, &fake_ops, &f), IOCP_EINVAL);
    cr_expect_eq(iocp__accept_pool_init(&f.pool, 0, 0, &fake_ops, &f), IOCP_EINVAL);
    struct iocp_accept_pool_ops no_post = fake_ops;
    no_post.post = NULL;
    cr_expect_eq(iocp__accept_pool_init(&f.pool, 0, 1, &no_post, &f), IOCP_EINVAL);
    cr_assert_eq(iocp__accept_pool_init(&f.pool, 0, 1, &fake_ops, &f), 0);
    finish(&f);
}

Test(accept_pool, refill_from_empty_posts_up_to_high)
{
    struct fake f;
    fake_start(&f, 2, 8);
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 8);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 8);
    cr_expect_eq(s.posted, 8);
    cr_expect_eq(s.allocated, 8);
    cr_expect_eq(s.low, 2);
    cr_expect_eq(s.high, 8);
    cr_expect_eq(os_count(&f), 8);
    finish(&f);
}

Test(accept_pool, refill_does_nothing_while_more_than_low_are_pending)
{
    struct fake f;
    fake_start(&f, 2, 8);
    iocp__accept_pool_refill(&f.pool);
    complete_some(&f, 5); /* 3 left, one more than low */
    uint64_t calls = atomic_load(&f.post_calls);
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 0);
    cr_expect_eq(stats_of(&f).pending, 3);
    cr_expect_eq(atomic_load(&f.post_calls), calls, "refill must not even try to post");
    cr_expect_eq(atomic_load(&f.allocs), 8);
    finish(&f);
}

Test(accept_pool, refill_tops_up_to_high_once_low_or_fewer_are_pending)
{
    struct fake f;
    fake_start(&f, 2, 8);
    iocp__accept_pool_refill(&f.pool);
    complete_some(&f, 6); /* exactly low left */
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 6);
    cr_expect_eq(stats_of(&f).pending, 8);
    complete_some(&f, 7); /* fewer than low left */
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 7);
    cr_expect_eq(stats_of(&f).pending, 8);
    finish(&f);
}

Test(accept_pool, completing_the_middle_request_leaves_the_others_pending)
{
    struct fake f;
    struct iocp_accept_req *reqs[5];
    struct iocp_list *pos;
    fake_start(&f, 1, 5);
    iocp__accept_pool_refill(&f.pool);
    for (int i = 0; i < 5; i++)
        reqs[i] = os_take(&f, 0);

    cr_expect(iocp__accept_pool_complete(&f.pool, reqs[2]));
    cr_expect_eq(stats_of(&f).pending, 4);
    cr_expect_not(reqs[2]->pending);
    cr_expect_not(iocp_list_linked(&reqs[2]->link));
    size_t walked = 0;
    iocp_list_foreach(pos, &f.pool.pending)
    {
        cr_expect_neq(pos, &reqs[2]->link, "the completed request is still listed");
        walked++;
    }
    cr_expect_eq(walked, 4);

    for (int i = 0; i < 5; i++) {
        if (i != 2)
            cr_expect(iocp__accept_pool_complete(&f.pool, reqs[i]), "request %d", i);
        iocp__accept_pool_release(&f.pool, reqs[i]);
    }
    cr_expect_eq(stats_of(&f).pending, 0);
    cr_expect_eq(stats_of(&f).completed, 5);
    finish(&f);
}

Test(accept_pool, completing_a_request_twice_returns_false)
{
    struct fake f;
    fake_start(&f, 0, 2);
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *req = os_take(&f, 0);
    cr_expect(iocp__accept_pool_complete(&f.pool, req));
    cr_expect_not(iocp__accept_pool_complete(&f.pool, req));
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.completed, 1);
    cr_expect_eq(s.pending, 1);
    iocp__accept_pool_release(&f.pool, req);
    finish(&f);
}

Test(accept_pool, a_post_failing_every_third_call_loses_and_leaks_nothing)
{
    struct fake f;
    fake_start(&f, 2, 8);
    f.fail_every = 3;
    for (int round = 0; round < 20; round++) {
        int rc = iocp__accept_pool_refill(&f.pool);
        cr_expect(rc >= 0 || rc == IOCP_ENOBUFS, "round %d: refill gave %d", round, rc);
        struct iocp_accept_pool_stats s = stats_of(&f);
        uint64_t calls = atomic_load(&f.post_calls);
        cr_expect_eq(s.pending, os_count(&f), "round %d: pending is not what was posted", round);
        cr_expect_eq(s.allocated - s.freed, s.pending, "round %d: a request leaked", round);
        cr_expect_eq(s.failed_posts, calls / 3);
        cr_expect_eq(s.posted, calls - calls / 3);
        expect_books_balance(&f);
        if (os_count(&f) > 0)
            complete_some(&f, 1 + (size_t)round % os_count(&f));
    }
    cr_expect_gt(stats_of(&f).failed_posts, 0);
    finish(&f);
}

Test(accept_pool, a_post_that_always_fails_returns_its_error_and_keeps_nothing)
{
    struct fake f;
    fake_start(&f, 2, 8);
    f.fail_always = true;
    f.fail_rc = IOCP_EMFILE;
    for (int i = 0; i < 3; i++)
        cr_expect_eq(iocp__accept_pool_refill(&f.pool), IOCP_EMFILE);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.posted, 0);
    cr_expect_eq(s.failed_posts, 3, "a refill stops at its first failed post");
    cr_expect_eq(s.allocated, s.freed);
    cr_expect_eq(os_count(&f), 0);
    finish(&f);
}

Test(accept_pool, a_failed_post_midway_keeps_the_requests_already_posted)
{
    struct fake f;
    fake_start(&f, 3, 8);
    f.fail_call = 4;
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 3);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 3);
    cr_expect_eq(s.failed_posts, 1);
    cr_expect_eq(s.allocated, 4);
    cr_expect_eq(s.freed, 1);
    /* Three pending is not more than low: the next refill finishes the job. */
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 5);
    cr_expect_eq(stats_of(&f).pending, 8);
    finish(&f);
}

Test(accept_pool, alloc_returning_null_gives_enomem_and_leaks_nothing)
{
    struct fake f;
    fake_start(&f, 2, 8);
    f.alloc_budget = 0;
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), IOCP_ENOMEM);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.allocated, 0);
    cr_expect_eq(atomic_load(&f.post_calls), 0);

    f.alloc_budget = 3;
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 3, "what could be allocated is posted");
    cr_expect_eq(stats_of(&f).pending, 3);
    finish(&f);
}

Test(accept_pool, repost_reuses_the_request_without_allocating)
{
    struct fake f;
    fake_start(&f, 1, 4);
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *req = os_take(&f, 2);
    cr_assert(iocp__accept_pool_complete(&f.pool, req));
    cr_expect_eq(iocp__accept_pool_repost(&f.pool, req), 0);
    cr_expect_eq(atomic_load(&f.allocs), 4);
    cr_expect(req->pending);
    cr_expect_eq(os_take(&f, 3), req, "the same request is posted again");
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 4);
    cr_expect_eq(s.posted, 5);
    iocp__mutex_lock(&f.lock);
    q_push(&f.in_flight, to_fake(req));
    iocp__mutex_unlock(&f.lock);
    finish(&f);
}

Test(accept_pool, a_failed_repost_frees_the_request)
{
    struct fake f;
    fake_start(&f, 1, 4);
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *req = os_take(&f, 0);
    cr_assert(iocp__accept_pool_complete(&f.pool, req));
    f.fail_always = true;
    cr_expect_eq(iocp__accept_pool_repost(&f.pool, req), IOCP_ENOBUFS);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 3);
    cr_expect_eq(s.failed_posts, 1);
    cr_expect_eq(s.freed, 1);
    cr_expect_eq(atomic_load(&f.frees), 1);
    finish(&f);
}

Test(accept_pool, repost_when_high_are_already_pending_frees_the_request)
{
    struct fake f;
    struct iocp_accept_req *held[3];
    fake_start(&f, 1, 4);
    iocp__accept_pool_refill(&f.pool);
    for (int i = 0; i < 3; i++) {
        held[i] = os_take(&f, 0);
        cr_assert(iocp__accept_pool_complete(&f.pool, held[i]));
    }
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 3); /* back to high */
    for (int i = 0; i < 3; i++)
        cr_expect_eq(iocp__accept_pool_repost(&f.pool, held[i]), 0);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 4, "pending never goes beyond high");
    cr_expect_eq(s.freed, 3);
    finish(&f);
}

Test(accept_pool, a_post_that_completes_inline_keeps_the_count_right)
{
    struct fake f;
    fake_start(&f, 2, 8);
    f.complete_inline = true;
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 8);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(atomic_load(&f.inline_done), 8);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.posted, 8);
    cr_expect_eq(s.completed, 8);
    cr_expect_eq(s.allocated, 8);
    cr_expect_eq(s.freed, 8);

    /* A repost that completes inline as well. */
    f.complete_inline = false;
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *req = os_take(&f, 0);
    cr_assert(iocp__accept_pool_complete(&f.pool, req));
    f.complete_inline = true;
    cr_expect_eq(iocp__accept_pool_repost(&f.pool, req), 0);
    s = stats_of(&f);
    cr_expect_eq(s.pending, 7);
    cr_expect_eq(s.completed, 10);
    expect_books_balance(&f);
    finish(&f);
}

Test(accept_pool, a_completion_that_overtakes_its_post_on_another_thread_is_counted_once)
{
    struct fake f;
    fake_start(&f, 2, 8);
    f.complete_across = true;
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 8);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(atomic_load(&f.inline_done), 8);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.posted, 8);
    cr_expect_eq(s.completed, 8);
    cr_expect_eq(s.freed, 8);
    finish(&f);
}

static bool count_detach(struct iocp_accept_req *req, void *arg)
{
    struct fake *f = arg;
    atomic_fetch_add(&to_fake(req)->detach_calls, 1);
    atomic_fetch_add(&f->detaches, 1);
    if (req->pool != NULL || req->pending || iocp_list_linked(&req->link))
        atomic_fetch_add(&f->bad, 1);
    return f->detach_frees;
}

Test(accept_pool, shutdown_hands_each_pending_request_to_detach_exactly_once)
{
    struct fake f;
    struct iocp_accept_req *reqs[6];
    fake_start(&f, 2, 6);
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *in_hand = os_take(&f, 0);
    cr_assert(iocp__accept_pool_complete(&f.pool, in_hand));

    f.detach_frees = false; /* the OS still holds them */
    cr_expect_eq(iocp__accept_pool_shutdown(&f.pool, count_detach, &f), 5);
    cr_expect_eq(atomic_load(&f.detaches), 5);
    cr_expect_eq(atomic_load(&to_fake(in_hand)->detach_calls), 0);
    cr_expect_eq(iocp__accept_pool_shutdown(&f.pool, count_detach, &f), 0, "nothing is left");
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.detached, 5);
    cr_expect(iocp_list_empty(&f.pool.pending));

    /* The OS gives them back: complete says they are no longer the pool's. */
    for (int i = 0; i < 5; i++) {
        reqs[i] = os_take(&f, 0);
        cr_expect_eq(atomic_load(&to_fake(reqs[i])->detach_calls), 1);
        cr_expect_null(reqs[i]->pool);
        cr_expect_not(iocp__accept_pool_complete(&f.pool, reqs[i]));
        iocp__accept_pool_release(&f.pool, reqs[i]);
    }
    iocp__accept_pool_release(&f.pool, in_hand);
    s = stats_of(&f);
    cr_expect_eq(s.completed, 1);
    cr_expect_eq(s.posted, s.completed + s.detached);
    finish(&f);
}

Test(accept_pool, shutdown_frees_requests_that_detach_says_are_idle)
{
    struct fake f;
    fake_start(&f, 2, 6);
    iocp__accept_pool_refill(&f.pool);
    f.detach_frees = true;
    cr_expect_eq(iocp__accept_pool_shutdown(&f.pool, count_detach, &f), 6);
    cr_expect_eq(atomic_load(&f.detaches), 6);
    cr_expect_eq(atomic_load(&f.frees), 6);
    cr_expect_eq(stats_of(&f).freed, 6);
    /* The fake OS forgets them: the pool has freed them. */
    iocp__mutex_lock(&f.lock);
    f.in_flight = (struct queue){0};
    iocp__mutex_unlock(&f.lock);
    finish(&f);
}

Test(accept_pool, shutdown_without_detach_frees_every_pending_request)
{
    struct fake f;
    fake_start(&f, 2, 6);
    iocp__accept_pool_refill(&f.pool);
    cr_expect_eq(iocp__accept_pool_shutdown(&f.pool, NULL, NULL), 6);
    cr_expect_eq(atomic_load(&f.frees), 6);
    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(s.freed, 6);
    cr_expect_eq(s.pending, 0);
    iocp__mutex_lock(&f.lock);
    f.in_flight = (struct queue){0};
    iocp__mutex_unlock(&f.lock);
    finish(&f);
}

Test(accept_pool, refill_after_shutdown_posts_nothing)
{
    struct fake f;
    fake_start(&f, 2, 6);
    iocp__accept_pool_shutdown(&f.pool, NULL, NULL);
    cr_expect_eq(iocp__accept_pool_refill(&f.pool), 0);
    cr_expect_eq(atomic_load(&f.post_calls), 0);
    cr_expect_eq(atomic_load(&f.allocs), 0);
    finish(&f);
}

Test(accept_pool, repost_after_shutdown_frees_the_request_and_returns_ecanceled)
{
    struct fake f;
    fake_start(&f, 2, 6);
    iocp__accept_pool_refill(&f.pool);
    struct iocp_accept_req *req = os_take(&f, 0);
    cr_assert(iocp__accept_pool_complete(&f.pool, req));
    iocp__accept_pool_shutdown(&f.pool, count_detach, &f);
    uint64_t calls = atomic_load(&f.post_calls);
    cr_expect_eq(iocp__accept_pool_repost(&f.pool, req), IOCP_ECANCELED);
    cr_expect_eq(atomic_load(&f.post_calls), calls);
    cr_expect_eq(atomic_load(&f.frees), 1);
    finish(&f);
}

/* Threads: a shutdown racing a post, refills racing on an empty pool, then
 * the whole life cycle. */

struct shutter {
    struct fake *f;
    size_t detached;
    iocp_atomic_bool done;
};

static void refill_main(void *arg)
{
    iocp__accept_pool_refill(&((struct fake *)arg)->pool);
}

static void shutdown_main(void *arg)
{
    struct shutter *sh = arg;
    sh->detached = iocp__accept_pool_shutdown(&sh->f->pool, count_detach, sh->f);
    atomic_store(&sh->done, true);
}

/* Shut down while a post is under way on another thread, the post failing
 * or succeeding once shutdown has started. */
static void shutdown_during_post(bool post_fails)
{
    struct fake f;
    struct iocp_thread poster, closer;
    struct shutter sh = {.f = &f};

    fake_start(&f, 0, 1);
    f.block_in_post = true;
    f.fail_always = post_fails;
    atomic_init(&sh.done, false);
    cr_assert_eq(iocp__thread_start(&poster, refill_main, &f), 0);
    while (!atomic_load(&f.in_post))
        iocp__sleep_ms(1);
    cr_assert_eq(iocp__thread_start(&closer, shutdown_main, &sh), 0);
    iocp__sleep_ms(50);
    cr_expect_not(atomic_load(&sh.done), "shutdown returned while a post was under way");
    atomic_store(&f.unblock, true);
    iocp__thread_join(&poster);
    iocp__thread_join(&closer);

    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_eq(sh.detached, post_fails ? 0 : 1);
    cr_expect_eq(s.failed_posts, post_fails ? 1 : 0);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(atomic_load(&f.frees), post_fails ? 1 : 0);
    finish(&f);
}

Test(accept_pool, shutdown_waits_for_a_post_under_way_that_then_fails)
{
    shutdown_during_post(true);
}

Test(accept_pool, shutdown_waits_for_a_post_under_way_then_detaches_it)
{
    shutdown_during_post(false);
}

struct racer {
    struct fake *f;
    iocp_atomic_bool *go;
    iocp_atomic_bool *stop;
    int result;
    uint64_t seed;
};

static void refill_racer(void *arg)
{
    struct racer *r = arg;
    while (!atomic_load(r->go))
        sched_yield();
    r->result = iocp__accept_pool_refill(&r->f->pool);
}

Test(accept_pool, concurrent_refills_never_post_beyond_high)
{
    enum { THREADS = 8, HIGH = 32 };
    struct fake f;
    struct iocp_thread t[THREADS];
    struct racer r[THREADS];
    iocp_atomic_bool go;
    int sum = 0;

    for (int round = 0; round < 20; round++) {
        fake_start(&f, 4, HIGH);
        f.yield_in_post = true;
        atomic_init(&go, false);
        for (int i = 0; i < THREADS; i++) {
            r[i] = (struct racer){.f = &f, .go = &go};
            cr_assert_eq(iocp__thread_start(&t[i], refill_racer, &r[i]), 0);
        }
        atomic_store(&go, true);
        sum = 0;
        for (int i = 0; i < THREADS; i++) {
            iocp__thread_join(&t[i]);
            sum += r[i].result;
        }
        cr_expect_eq(sum, HIGH, "round %d", round);
        cr_expect_eq(stats_of(&f).pending, HIGH, "round %d", round);
        cr_expect_eq(atomic_load(&f.allocs), HIGH, "round %d", round);
        finish(&f);
    }
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The fake OS: completes posted requests in order, into the port queue. */
static void os_main(void *arg)
{
    struct racer *r = arg;
    struct fake *f = r->f;
    for (;;) {
        bool stop = atomic_load(r->stop);
        iocp__mutex_lock(&f->lock);
        struct fake_req *req = q_take(&f->in_flight, 0);
        if (req)
            q_push(&f->port, req);
        iocp__mutex_unlock(&f->lock);
        if (req == NULL) {
            if (stop)
                return;
            sched_yield();
        }
    }
}

static void check_snapshot(struct fake *f)
{
    struct iocp_accept_pool_stats s = stats_of(f);
    if (s.pending > s.high || s.posted != s.completed + s.detached + s.pending)
        atomic_fetch_add(&f->bad, 1);
}

/* A worker: takes completions, then reposts, or releases and refills. */
static void worker_main(void *arg)
{
    struct racer *r = arg;
    struct fake *f = r->f;
    for (;;) {
        bool stop = atomic_load(r->stop);
        iocp__mutex_lock(&f->lock);
        struct fake_req *done = q_take(&f->port, 0);
        iocp__mutex_unlock(&f->lock);
        if (done == NULL) {
            if (stop)
                return;
            /* An idle pool must not stall: failed posts can empty it. */
            iocp__accept_pool_refill(&f->pool);
            sched_yield();
            continue;
        }
        if (!iocp__accept_pool_complete(&f->pool, &done->base)) {
            /* Detached by shutdown, and now given back by the OS. */
            iocp__accept_pool_release(&f->pool, &done->base);
            continue;
        }
        if (next_rand(&r->seed) % 3 != 0) {
            iocp__accept_pool_repost(&f->pool, &done->base);
        } else {
            iocp__accept_pool_release(&f->pool, &done->base);
            iocp__accept_pool_refill(&f->pool);
        }
        if (next_rand(&r->seed) % 16 == 0)
            check_snapshot(f);
    }
}

Test(accept_pool, many_threads_completing_and_refilling_balance_the_books_at_shutdown)
{
    enum { WORKERS = 6 };
    struct fake f;
    struct iocp_thread os, w[WORKERS];
    struct racer ros, rw[WORKERS];
    iocp_atomic_bool stop_os, stop_workers;

    fake_start(&f, 8, 32);
    f.fail_every = 7;
    f.yield_in_post = true;
    atomic_init(&stop_os, false);
    atomic_init(&stop_workers, false);
    ros = (struct racer){.f = &f, .stop = &stop_os};
    cr_assert_eq(iocp__thread_start(&os, os_main, &ros), 0);
    for (int i = 0; i < WORKERS; i++) {
        rw[i] = (struct racer){.f = &f, .stop = &stop_workers, .seed = 0x9e3779b97f4a7c15u + i};
        cr_assert_eq(iocp__thread_start(&w[i], worker_main, &rw[i]), 0);
    }
    iocp__accept_pool_refill(&f.pool);

    /* About 2 s of racing, and on a slow machine (a sanitizer, a loaded
     * CI host) on until the threads have done enough to test anything:
     * the bound is on work done, time only caps a hang. */
    uint64_t start = iocp__now_ms();
    for (;;) {
        uint64_t done = stats_of(&f).completed, now = iocp__now_ms();
        if (done >= 20000 || now - start >= 60000 || (done > 1000 && now - start >= 2000))
            break;
        iocp__sleep_ms(5);
    }

    f.detach_frees = false; /* the fake OS will give them back */
    size_t detached = iocp__accept_pool_shutdown(&f.pool, count_detach, &f);
    cr_expect_eq(atomic_load(&f.detaches), detached);

    /* Every request comes back, whatever the workers were doing. */
    uint64_t deadline = iocp__now_ms() + 10000;
    while (atomic_load(&f.allocs) != atomic_load(&f.frees) && iocp__now_ms() < deadline)
        iocp__sleep_ms(1);
    atomic_store(&stop_os, true);
    iocp__thread_join(&os);
    atomic_store(&stop_workers, true);
    for (int i = 0; i < WORKERS; i++)
        iocp__thread_join(&w[i]);

    struct iocp_accept_pool_stats s = stats_of(&f);
    cr_expect_gt(s.completed, 1000, "the threads barely ran");
    cr_expect_gt(s.failed_posts, 0);
    cr_expect_eq(s.pending, 0);
    cr_expect_eq(s.detached, detached);
    cr_expect_eq(s.allocated, s.freed, "allocated %llu, freed %llu",
                 (unsigned long long)s.allocated, (unsigned long long)s.freed);
    cr_expect_eq(s.posted, s.completed + s.detached);
    cr_expect_eq(os_count(&f), 0);
    cr_expect_eq(f.port.count, 0);
    finish(&f);
}
