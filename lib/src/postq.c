/* SPDX-License-Identifier: MIT */
/*
 * postq.h: the bounded packet queue and its eventfd.
 */
#include "postq.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fault.h"
#include "internal.h"

int iocp__postq_init(struct iocp_postq *q, uint32_t capacity)
{
    uint32_t cap = 16;
    while (cap < capacity && cap < (1u << 24))
        cap <<= 1;
    q->ring = calloc(cap, sizeof *q->ring);
    if (!q->ring)
        return IOCP_ENOMEM;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0) {
        int rc = iocp__err_from_errno(errno);
        free(q->ring);
        return rc;
    }
    q->capacity = cap;
    q->head = q->tail = 0;
    iocp__mutex_init(&q->lock);
    return 0;
}

void iocp__postq_fini(struct iocp_postq *q)
{
    iocp__mutex_fini(&q->lock);
    close(q->efd);
    free(q->ring);
    q->ring = NULL;
}

int iocp__postq_push(struct iocp_postq *q, uint32_t code, uint64_t arg)
{
    int rc = iocp__fault_check(IOCP_FAULT_POST);
    if (rc < 0)
        return rc;
    iocp__mutex_lock(&q->lock);
    if (q->tail - q->head == q->capacity) {
        iocp__mutex_unlock(&q->lock);
        return IOCP_EAGAIN;
    }
    bool was_empty = q->tail == q->head;
    q->ring[q->tail & (q->capacity - 1)] = (struct iocp_packet){code, arg};
    q->tail++;
    iocp__mutex_unlock(&q->lock);
    if (was_empty) {
        /* The eventfd counter cannot overflow in practice (2^64 - 2 wake-ups);
         * EAGAIN would only mean it is already readable, which is enough. */
        uint64_t one = 1;
        ssize_t n;
        do
            n = write(q->efd, &one, sizeof one);
        while (n < 0 && errno == EINTR);
    }
    return 0;
}

int iocp__postq_drain(struct iocp_postq *q, struct iocp_packet *out, int max)
{
    uint64_t count;
    ssize_t n;
    do
        n = read(q->efd, &count, sizeof count);
    while (n < 0 && errno == EINTR);

    int got = 0;
    iocp__mutex_lock(&q->lock);
    while (got < max && q->head != q->tail) {
        out[got++] = q->ring[q->head & (q->capacity - 1)];
        q->head++;
    }
    iocp__mutex_unlock(&q->lock);
    return got;
}

bool iocp__postq_pending(struct iocp_postq *q)
{
    iocp__mutex_lock(&q->lock);
    bool pending = q->head != q->tail;
    iocp__mutex_unlock(&q->lock);
    return pending;
}
