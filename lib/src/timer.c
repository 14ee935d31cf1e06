/* SPDX-License-Identifier: MIT */
/*
 * Per-worker timers: a binary min-heap ordered by due time.
 *
 * Idle and connect time-outs must not cost an O(N) scan of connections.
 * With a heap, arming and disarming are O(log N) and finding the next due
 * time is O(1).  Idle time-outs are cheaper still: a connection's timer is
 * armed once per period and, when it fires, compares the time of the last
 * I/O to decide whether to close or re-arm, so traffic never touches the
 * heap (see conn.c).
 *
 * Timers due at the same millisecond fire in the order they were armed: the
 * heap orders by (due time, arming number), so a burst armed for "now" runs
 * first come, first served.  The public timers of timer.h are built on these
 * nodes in timer_public.c.
 */
#include "core.h"

#include <stdlib.h>

int iocp__timers_init(struct iocp_timer_heap *h)
{
    h->count = 0;
    h->cap = 64;
    h->items = malloc(h->cap * sizeof *h->items);
    return h->items ? 0 : IOCP_ENOMEM;
}

void iocp__timers_fini(struct iocp_timer_heap *h)
{
    free(h->items);
    h->items = NULL;
    h->count = h->cap = 0;
}

void iocp__timer_init(struct iocp_heap_timer *t, void (*fn)(struct iocp_heap_timer *t))
{
    t->due_ms = 0;
    t->order = 0;
    t->heap_index = IOCP_TIMER_IDLE;
    t->fn = fn;
}

/* Publish the earliest due time for the threads of a shared port, which
 * may run this worker's timers (engine.c); one relaxed store otherwise. */
static void publish(struct iocp_worker *w)
{
    struct iocp_timer_heap *h = &w->timers;
    atomic_store_explicit(&w->next_due, h->count ? h->items[0]->due_ms : UINT64_MAX,
                          memory_order_relaxed);
}

/* True when a must fire before b. */
static bool before(const struct iocp_heap_timer *a, const struct iocp_heap_timer *b)
{
    return a->due_ms < b->due_ms || (a->due_ms == b->due_ms && a->order < b->order);
}

static void place(struct iocp_timer_heap *h, uint32_t i, struct iocp_heap_timer *t)
{
    h->items[i] = t;
    t->heap_index = i;
}

static void sift_up(struct iocp_timer_heap *h, uint32_t i)
{
    struct iocp_heap_timer *t = h->items[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(t, h->items[parent]))
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct iocp_timer_heap *h, uint32_t i)
{
    struct iocp_heap_timer *t = h->items[i];
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && before(h->items[child + 1], h->items[child]))
            child++;
        if (!before(h->items[child], t))
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, t);
}

static void heap_remove(struct iocp_timer_heap *h, struct iocp_heap_timer *t)
{
    uint32_t i = t->heap_index;
    t->heap_index = IOCP_TIMER_IDLE;
    h->count--;
    if (i == h->count)
        return;
    /* The last timer fills the hole, then moves down or up to its place. */
    struct iocp_heap_timer *moved = h->items[h->count];
    place(h, i, moved);
    sift_down(h, i);
    sift_up(h, moved->heap_index);
}

int iocp__timer_start(struct iocp_worker *w, struct iocp_heap_timer *t, uint64_t due_ms)
{
    struct iocp_timer_heap *h = &w->timers;
    if (t->heap_index != IOCP_TIMER_IDLE)
        heap_remove(h, t);
    if (h->count == h->cap) {
        uint32_t cap = h->cap * 2;
        struct iocp_heap_timer **items = realloc(h->items, cap * sizeof *items);
        if (!items)
            return IOCP_ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->due_ms = due_ms;
    t->order = w->timer_order++;
    h->items[h->count] = t;
    t->heap_index = h->count++;
    sift_up(h, t->heap_index);
    publish(w);
    return 0;
}

void iocp__timer_stop(struct iocp_worker *w, struct iocp_heap_timer *t)
{
    if (t->heap_index != IOCP_TIMER_IDLE) {
        heap_remove(&w->timers, t);
        publish(w);
    }
}

void iocp__timers_remove_if(struct iocp_worker *w, bool (*drop)(struct iocp_heap_timer *t))
{
    struct iocp_timer_heap *h = &w->timers;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < h->count; i++) {
        struct iocp_heap_timer *t = h->items[i];
        t->heap_index = IOCP_TIMER_IDLE;
        if (!drop(t)) /* drop may free t: not touched after a true */
            place(h, kept++, t);
    }
    h->count = kept;
    /* Rebuild the heap bottom-up: O(n), once per engine stop. */
    for (uint32_t i = kept / 2; i-- > 0;)
        sift_down(h, i);
    publish(w);
}

int iocp__timers_run(struct iocp_worker *w)
{
    struct iocp_timer_heap *h = &w->timers;
    /* Bound the turn: a callback that re-arms its timer for "now" must not
     * keep this loop from returning to the port. */
    for (uint32_t budget = h->count; h->count && budget; budget--) {
        struct iocp_heap_timer *t = h->items[0];
        if (t->due_ms > w->now_ms)
            break;
        heap_remove(h, t);
        t->fn(t);
    }
    publish(w);
    if (!h->count)
        return -1;
    uint64_t due = h->items[0]->due_ms;
    if (due <= w->now_ms)
        return 0;
    uint64_t wait = due - w->now_ms;
    return wait > 60000 ? 60000 : (int)wait;
}
