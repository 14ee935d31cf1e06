/* SPDX-License-Identifier: MIT */
/*
 * Send-queue chunks.  A connection queues outgoing bytes in a chain of
 * chunks; small sends are appended to the tail chunk, so a stream of tiny
 * writes costs one buffer, and a large send gets a chunk of its own size.
 * Chunks of the standard size are recycled per worker (pool.c).
 */
#ifndef IOCP_SENDQ_H
#define IOCP_SENDQ_H

#include <stdint.h>

#define IOCP_CHUNK_SIZE 16384u

struct iocp_worker;

struct iocp_send_chunk {
    struct iocp_send_chunk *next;
    uint32_t cap;   /* bytes of data[] */
    uint32_t start; /* first byte not yet sent */
    uint32_t end;   /* one past the last byte queued */
    unsigned char data[];
};

/* A chunk that holds at least need bytes, or NULL. */
struct iocp_send_chunk *iocp__chunk_get(struct iocp_worker *w, size_t need);
void iocp__chunk_put(struct iocp_worker *w, struct iocp_send_chunk *k);

#endif /* IOCP_SENDQ_H */
