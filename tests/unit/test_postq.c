/* SPDX-License-Identifier: MIT */
/*
 * The cross-thread packet queue of the Linux backends (postq.c): capacity
 * rounding, a full queue that refuses and loses nothing, FIFO order, one
 * eventfd wake-up per burst, a drain bounded by its caller, injected post
 * failures, and many producers against one consumer with every packet
 * arriving exactly once and in each producer's order.
 */
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "fault.h"
#include "internal.h"
#include "postq.h"

static struct iocp_postq q;

static void fini(void)
{
    iocp__fault_configure(NULL);
    if (q.ring)
        iocp__postq_fini(&q);
}

TestSuite(postq, .fini = fini, .timeout = 60);

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

Test(postq, capacity_is_rounded_up_to_a_power_of_two)
{
    static const struct {
        uint32_t ask, get;
    } cases[] = {{0, 16}, {1, 16}, {16, 16}, {17, 32}, {1000, 1024}, {1024, 1024}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(iocp__postq_init(&q, cases[i].ask), 0);
        cr_assert_eq(q.capacity, cases[i].get, "asked %u", cases[i].ask);
        iocp__postq_fini(&q);
    }
}

Test(postq, a_full_queue_refuses_and_loses_nothing_in_fifo_order)
{
    cr_assert_eq(iocp__postq_init(&q, 16), 0);
    for (uint32_t i = 0; i < 16; i++)
        cr_assert_eq(iocp__postq_push(&q, i, (uint64_t)i << 32 | 7u), 0);
    cr_assert_eq(iocp__postq_push(&q, 99, 99), IOCP_EAGAIN, "a full queue refuses");
    struct iocp_packet out[32];
    int n = iocp__postq_drain(&q, out, 32);
    cr_assert_eq(n, 16, "the refused packet left nothing behind");
    for (uint32_t i = 0; i < 16; i++) {
        cr_assert_eq(out[i].code, i);
        cr_assert_eq(out[i].arg, (uint64_t)i << 32 | 7u);
    }
    cr_assert_eq(iocp__postq_push(&q, 5, 5), 0, "room again after a drain");
}

Test(postq, a_burst_wakes_once_and_a_bounded_drain_leaves_the_rest_pending)
{
    cr_assert_eq(iocp__postq_init(&q, 64), 0);
    cr_assert_not(readable(q.efd));
    for (uint32_t i = 0; i < 10; i++)
        cr_assert_eq(iocp__postq_push(&q, 1, i), 0);
    cr_assert(readable(q.efd), "the first post wakes the consumer");
    uint64_t count = 0;
    cr_assert_eq(read(q.efd, &count, sizeof count), (ssize_t)sizeof count);
    cr_assert_eq(count, 1, "ten posts in a burst wrote the eventfd once");
    struct iocp_packet out[4];
    cr_assert_eq(iocp__postq_drain(&q, out, 4), 4);
    cr_assert(iocp__postq_pending(&q), "six are still waiting");
    cr_assert_eq(out[3].arg, 3);
    cr_assert_eq(iocp__postq_drain(&q, out, 4), 4);
    cr_assert_eq(iocp__postq_drain(&q, out, 4), 2);
    cr_assert_not(iocp__postq_pending(&q));
    cr_assert_eq(out[1].arg, 9);
    cr_assert_not(readable(q.efd), "a drained queue does not stay readable");
    cr_assert_eq(iocp__postq_push(&q, 1, 1), 0);
    cr_assert(readable(q.efd), "an empty queue that gets a post wakes again");
}

Test(postq, an_injected_post_failure_queues_nothing)
{
    cr_assert_eq(iocp__postq_init(&q, 16), 0);
    cr_assert_eq(iocp__fault_configure("post=2"), 0);
    int ok = 0;
    for (uint32_t i = 0; i < 10; i++) {
        int rc = iocp__postq_push(&q, 1, i);
        cr_assert(rc == 0 || rc == IOCP_EAGAIN);
        ok += rc == 0;
    }
    cr_assert_eq(ok, 5);
    struct iocp_packet out[16];
    cr_assert_eq(iocp__postq_drain(&q, out, 16), 5, "only the posts that succeeded arrived");
    for (int i = 0; i < 5; i++)
        cr_assert_eq(out[i].arg, (uint64_t)(2 * i), "call %d", i);
}

enum { PRODUCERS = 4, PER_PRODUCER = 20000 };

struct producer {
    struct iocp_thread thread;
    uint32_t index;
    int refused;
};

static void produce(void *arg)
{
    struct producer *p = arg;
    for (uint64_t i = 0; i < PER_PRODUCER; i++) {
        /* A refused post is retried: the caller still holds what it meant. */
        while (iocp__postq_push(&q, p->index, i) == IOCP_EAGAIN) {
            p->refused++;
            iocp__sleep_ms(0);
        }
    }
}

Test(postq, many_producers_one_consumer_every_packet_once_in_order)
{
    cr_assert_eq(iocp__postq_init(&q, 64), 0);
    struct producer p[PRODUCERS];
    memset(p, 0, sizeof p);
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        p[i].index = i;
        cr_assert_eq(iocp__thread_start(&p[i].thread, produce, &p[i]), 0);
    }
    uint64_t next[PRODUCERS] = {0};
    uint64_t total = 0, end = iocp__now_ms() + 60000;
    struct iocp_packet out[32];
    while (total < (uint64_t)PRODUCERS * PER_PRODUCER && iocp__now_ms() < end) {
        struct pollfd pf = {.fd = q.efd, .events = POLLIN};
        if (!iocp__postq_pending(&q) && poll(&pf, 1, 100) <= 0)
            continue;
        int n = iocp__postq_drain(&q, out, 32);
        for (int i = 0; i < n; i++) {
            cr_assert_lt(out[i].code, PRODUCERS);
            cr_assert_eq(out[i].arg, next[out[i].code], "producer %u: got %llu, wanted %llu",
                         out[i].code, (unsigned long long)out[i].arg,
                         (unsigned long long)next[out[i].code]);
            next[out[i].code]++;
        }
        total += (uint64_t)n;
    }
    for (uint32_t i = 0; i < PRODUCERS; i++)
        iocp__thread_join(&p[i].thread);
    cr_assert_eq(total, (uint64_t)PRODUCERS * PER_PRODUCER);
    cr_assert_not(iocp__postq_pending(&q), "nothing arrived twice");
}
