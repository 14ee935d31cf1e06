/* SPDX-License-Identifier: MIT */
/*
 * Per-worker pools of connection objects and send-queue chunks.
 *
 * A busy server creates and drops connections and queues many small sends;
 * recycling both on the worker that owns them keeps malloc off the hot path
 * without any lock.  Each pool is bounded: beyond its cap an object goes
 * back to the allocator, so a burst does not pin memory forever.  The
 * counters (created, lent, returned) are audited at stop: every object lent
 * must have come back.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#include "sendq.h"

#define CONN_POOL_CAP 1024u
#define CHUNK_POOL_CAP 64u

struct iocp_conn *iocp__conn_get(struct iocp_worker *w)
{
    struct iocp_conn *c = w->free_conns;
    if (c) {
        w->free_conns = c->next_free;
        w->nfree_conns--;
    } else {
        c = malloc(sizeof *c);
        if (!c)
            return NULL;
        IOCP_COUNT(w, pool_created, 1);
    }
    memset(c, 0, sizeof *c);
    IOCP_COUNT(w, pool_lent, 1);
    return c;
}

void iocp__conn_put(struct iocp_worker *w, struct iocp_conn *c)
{
    IOCP_COUNT(w, pool_returned, 1);
    if (w->nfree_conns >= CONN_POOL_CAP || w->stopping) {
        IOCP_COUNT(w, pool_destroyed, 1);
        free(c);
        return;
    }
    c->next_free = w->free_conns;
    w->free_conns = c;
    w->nfree_conns++;
}

struct iocp_send_chunk *iocp__chunk_get(struct iocp_worker *w, size_t need)
{
    struct iocp_send_chunk *k;
    if (need <= IOCP_CHUNK_SIZE && w->free_chunks) {
        k = w->free_chunks;
        w->free_chunks = k->next;
        w->nfree_chunks--;
    } else {
        size_t cap = need <= IOCP_CHUNK_SIZE ? IOCP_CHUNK_SIZE : need;
        k = malloc(sizeof *k + cap);
        if (!k)
            return NULL;
        k->cap = (uint32_t)cap;
    }
    k->next = NULL;
    k->start = k->end = 0;
    return k;
}

void iocp__chunk_put(struct iocp_worker *w, struct iocp_send_chunk *k)
{
    if (k->cap != IOCP_CHUNK_SIZE || w->nfree_chunks >= CHUNK_POOL_CAP) {
        free(k);
        return;
    }
    k->next = w->free_chunks;
    w->free_chunks = k;
    w->nfree_chunks++;
}

void iocp__pool_drain(struct iocp_worker *w)
{
    while (w->free_conns) {
        struct iocp_conn *c = w->free_conns;
        w->free_conns = c->next_free;
        IOCP_COUNT(w, pool_destroyed, 1);
        free(c);
    }
    w->nfree_conns = 0;
    while (w->free_chunks) {
        struct iocp_send_chunk *k = w->free_chunks;
        w->free_chunks = k->next;
        free(k);
    }
    w->nfree_chunks = 0;
}
