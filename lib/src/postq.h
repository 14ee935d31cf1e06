/* SPDX-License-Identifier: MIT */
/*
 * Cross-thread packets for the Linux backends: a bounded queue of
 * (code, arg) pairs plus an eventfd that wakes the port's worker.
 *
 * The queue has a fixed capacity and never allocates after init, so a post
 * either lands or fails with IOCP_EAGAIN and leaves nothing behind (seed
 * 2a): the poster still holds whatever the packet referred to and may
 * retry.  Writers take a mutex (posts are rare next to completions); the
 * eventfd is written only when the queue goes from empty to non-empty, so a
 * burst of posts costs one wake-up.
 */
#ifndef IOCP_POSTQ_H
#define IOCP_POSTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "thread.h"

struct iocp_packet {
    uint32_t code;
    uint64_t arg;
};

struct iocp_postq {
    struct iocp_mutex lock;
    struct iocp_packet *ring;
    uint32_t capacity; /* power of two */
    uint32_t head;     /* next to read */
    uint32_t tail;     /* next to write */
    int efd;           /* eventfd, readable while a wake-up is pending */
};

/* 0, or a negative code.  capacity is rounded up to a power of two. */
int iocp__postq_init(struct iocp_postq *q, uint32_t capacity);
void iocp__postq_fini(struct iocp_postq *q);

/* Queue a packet from any thread.  0 or IOCP_EAGAIN (full). */
int iocp__postq_push(struct iocp_postq *q, uint32_t code, uint64_t arg);

/*
 * Take up to max packets (the port's worker only).  Call after the eventfd
 * was seen readable; it consumes the eventfd's count first so that a post
 * racing with the drain wakes the worker again.
 */
int iocp__postq_drain(struct iocp_postq *q, struct iocp_packet *out, int max);

/* True when packets are waiting (the drain stopped at max). */
bool iocp__postq_pending(struct iocp_postq *q);

#endif /* IOCP_POSTQ_H */
