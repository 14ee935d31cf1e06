/* SPDX-License-Identifier: MIT */
/*
 * The connection registry of registry.h: the sharded online list, the socket
 * hash and the slot table that turns a connection ID into an entry.
 *
 * Locks, always taken in this order and never the other way round:
 *
 *   entry lock (by the entry's address)  ->  shard lock  ->  bucket stripe
 *
 * add and remove take all three, so each is one step for anyone who holds
 * any of them.  find takes only the stripe, lookup and foreach only the
 * shard, count one lock at a time.  No callback from a caller runs with a
 * lock held except ops.hold and ops.release, which registry.h forbids from
 * calling back in.
 */
#include "registry.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NO_SLOT UINT32_MAX

static struct iocp_mutex *entry_lock(struct iocp_registry *reg, const struct iocp_reg_entry *entry)
{
    /* Fibonacci hashing: the top bits of the product mix every address bit,
     * so entries that sit at a fixed stride in a pool spread over the locks. */
    uint64_t h = (uint64_t)(uintptr_t)entry * 0x9E3779B97F4A7C15ull;
    return &reg->entry_locks[(h >> 32) % IOCP_REGISTRY_ENTRY_LOCKS];
}

static struct iocp_mutex *stripe_of(struct iocp_registry *reg, uint32_t bucket)
{
    return &reg->stripes[bucket % IOCP_REGISTRY_LOCK_STRIPES];
}

static struct iocp_reg_entry *online_entry(struct iocp_list *node)
{
    return iocp_list_entry(node, struct iocp_reg_entry, online);
}

static iocp_conn_id_t make_id(uint32_t generation, uint32_t index)
{
    return ((uint64_t)generation << 32) | index;
}

uint32_t iocp__registry_bucket(iocp_socket_t sock)
{
    /* The low 16 bits that vary spread sockets over the buckets (internal.h
     * says which bits those are on each platform). */
    return (uint32_t)((sock >> IOCP_SOCKET_HASH_SHIFT) & 0xFFFFu);
}

void iocp__reg_entry_init(struct iocp_reg_entry *entry)
{
    iocp_list_init(&entry->online);
    iocp_list_init(&entry->hash_link);
    entry->sock = IOCP_INVALID_SOCKET;
    atomic_init(&entry->id, IOCP_CONN_ID_NONE);
    iocp_casflag_init(&entry->connected, false);
    entry->shard = 0;
    entry->is_marker = false;
    entry->kind = IOCP_REG_CONN;
}

int iocp__registry_init(struct iocp_registry *reg, uint32_t capacity,
                        const struct iocp_registry_ops *ops)
{
    unsigned shards = 0, stripes = 0, elocks = 0;
    int rc;

    if (reg == NULL || ops == NULL || ops->hold == NULL || ops->release == NULL || capacity == 0 ||
        capacity > (1u << 31))
        return IOCP_EINVAL;
    memset(reg, 0, sizeof *reg);
    reg->ops = *ops;
    reg->capacity = capacity;

    /* A large calloc is served by fresh zero pages, so the slot table costs
     * memory only where slots have been used.  That is why a slot's first
     * generation is set when it is first handed out, not here. */
    rc = IOCP_ENOMEM;
    reg->slots = calloc(capacity, sizeof *reg->slots);
    if (reg->slots == NULL)
        goto err0;
    reg->buckets = calloc(IOCP_REGISTRY_BUCKETS, sizeof *reg->buckets);
    if (reg->buckets == NULL)
        goto err1;
    reg->bucket_len = calloc(IOCP_REGISTRY_BUCKETS, sizeof *reg->bucket_len);
    if (reg->bucket_len == NULL)
        goto err2;
    for (uint32_t b = 0; b < IOCP_REGISTRY_BUCKETS; b++)
        iocp_list_init(&reg->buckets[b]);

    for (; shards < IOCP_REGISTRY_SHARDS; shards++) {
        struct iocp_reg_shard *sh = &reg->shards[shards];
        if ((rc = iocp__mutex_init(&sh->lock)) < 0)
            goto err3;
        iocp_list_init(&sh->online);
        sh->free_head = NO_SLOT;
        /* Shard s owns slots s, s + SHARDS, s + 2 * SHARDS, ...; when
         * capacity < SHARDS some shards own none and next_unused starts
         * beyond the table. */
        sh->next_unused = shards;
        sh->count = 0;
    }
    for (; stripes < IOCP_REGISTRY_LOCK_STRIPES; stripes++)
        if ((rc = iocp__mutex_init(&reg->stripes[stripes])) < 0)
            goto err3;
    for (; elocks < IOCP_REGISTRY_ENTRY_LOCKS; elocks++)
        if ((rc = iocp__mutex_init(&reg->entry_locks[elocks])) < 0)
            goto err3;

    atomic_init(&reg->online_count, 0);
    atomic_init(&reg->buckets_used, 0);
    atomic_init(&reg->next_shard, 0);
    return 0;

err3:
    while (elocks > 0)
        iocp__mutex_fini(&reg->entry_locks[--elocks]);
    while (stripes > 0)
        iocp__mutex_fini(&reg->stripes[--stripes]);
    while (shards > 0)
        iocp__mutex_fini(&reg->shards[--shards].lock);
    free(reg->bucket_len);
err2:
    free(reg->buckets);
err1:
    free(reg->slots);
err0:
    memset(reg, 0, sizeof *reg);
    return rc;
}

void iocp__registry_fini(struct iocp_registry *reg)
{
    assert(atomic_load(&reg->online_count) == 0);
    for (unsigned i = 0; i < IOCP_REGISTRY_ENTRY_LOCKS; i++)
        iocp__mutex_fini(&reg->entry_locks[i]);
    for (unsigned i = 0; i < IOCP_REGISTRY_LOCK_STRIPES; i++)
        iocp__mutex_fini(&reg->stripes[i]);
    for (unsigned i = 0; i < IOCP_REGISTRY_SHARDS; i++)
        iocp__mutex_fini(&reg->shards[i].lock);
    free(reg->bucket_len);
    free(reg->buckets);
    free(reg->slots);
    memset(reg, 0, sizeof *reg);
}

/* A free slot of shard sh, or NO_SLOT.  Called with the shard's lock held. */
static uint32_t take_slot(struct iocp_registry *reg, struct iocp_reg_shard *sh)
{
    uint32_t idx = sh->free_head;
    if (idx != NO_SLOT) {
        sh->free_head = reg->slots[idx].next_free;
        return idx;
    }
    if (sh->next_unused < reg->capacity) {
        idx = sh->next_unused;
        sh->next_unused += IOCP_REGISTRY_SHARDS;
        reg->slots[idx].generation = 1; /* 0 is never part of an ID */
        return idx;
    }
    return NO_SLOT;
}

/* Give slot idx back to its shard.  Called with the shard's lock held. */
static void free_slot(struct iocp_registry *reg, struct iocp_reg_shard *sh, uint32_t idx)
{
    struct iocp_reg_slot *slot = &reg->slots[idx];
    slot->entry = NULL;
    /* The new generation makes every ID given out for this slot stale at
     * once.  After 2^32 reuses it wraps; 0 is skipped so that no ID is 0. */
    if (++slot->generation == 0)
        slot->generation = 1;
    slot->next_free = sh->free_head;
    sh->free_head = idx;
}

int iocp__registry_add(struct iocp_registry *reg, struct iocp_reg_entry *entry, iocp_socket_t sock)
{
    struct iocp_mutex *elock = entry_lock(reg, entry);
    struct iocp_reg_shard *sh = NULL;
    uint32_t idx = NO_SLOT, start, s = 0;

    assert(!entry->is_marker);
    iocp__mutex_lock(elock);
    if (!iocp_casflag_raise(&entry->connected)) {
        iocp__mutex_unlock(elock);
        return 0;
    }

    /* Round robin spreads entries (and so lock traffic) over the shards; a
     * full shard sends us on to the next, so ENFILE means every slot is
     * taken, not just this shard's share. */
    start = atomic_fetch_add_explicit(&reg->next_shard, 1, memory_order_relaxed);
    for (unsigned k = 0; k < IOCP_REGISTRY_SHARDS; k++) {
        s = (start + k) % IOCP_REGISTRY_SHARDS;
        sh = &reg->shards[s];
        iocp__mutex_lock(&sh->lock);
        idx = take_slot(reg, sh);
        if (idx != NO_SLOT)
            break;
        iocp__mutex_unlock(&sh->lock);
    }
    if (idx == NO_SLOT) {
        /* We hold the entry lock, so no remove has seen the raised flag. */
        iocp_casflag_lower(&entry->connected);
        iocp__mutex_unlock(elock);
        return IOCP_ENFILE;
    }

    /* Everything is linked with the shard lock and the stripe held, so a
     * lookup (shard) or a find (stripe) sees the entry either not at all
     * or complete, with its sock and ID in place. */
    uint32_t b = iocp__registry_bucket(sock);
    struct iocp_mutex *stripe = stripe_of(reg, b);
    iocp__mutex_lock(stripe);
    entry->sock = sock;
    entry->shard = (uint8_t)s;
    atomic_store_explicit(&entry->id, make_id(reg->slots[idx].generation, idx),
                          memory_order_relaxed);
    reg->slots[idx].entry = entry;
    iocp_list_insert_tail(&sh->online, &entry->online);
    sh->count++;
    /* Store the new chain head in the bucket itself (the list head is the
     * bucket), the step the review's own insert sample forgot. */
    iocp_list_insert_head(&reg->buckets[b], &entry->hash_link);
    if (reg->bucket_len[b]++ == 0)
        atomic_fetch_add_explicit(&reg->buckets_used, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&reg->online_count, 1, memory_order_relaxed);
    iocp__mutex_unlock(stripe);
    iocp__mutex_unlock(&sh->lock);
    iocp__mutex_unlock(elock);
    return 1;
}

bool iocp__registry_remove(struct iocp_registry *reg, struct iocp_reg_entry *entry)
{
    struct iocp_mutex *elock = entry_lock(reg, entry);

    assert(!entry->is_marker);
    iocp__mutex_lock(elock);
    if (!iocp_casflag_lower(&entry->connected)) {
        iocp__mutex_unlock(elock);
        return false;
    }

    /* The add that raised the flag finished under the entry lock we now
     * hold, so sock, shard and id are complete and cannot change under us:
     * a re-add waits for this lock. */
    struct iocp_reg_shard *sh = &reg->shards[entry->shard];
    uint32_t b = iocp__registry_bucket(entry->sock);
    struct iocp_mutex *stripe = stripe_of(reg, b);
    uint32_t idx = (uint32_t)atomic_load_explicit(&entry->id, memory_order_relaxed);

    iocp__mutex_lock(&sh->lock);
    iocp__mutex_lock(stripe);
    /* Out of the hash before we return: the caller closes the socket next,
     * and the system hands its value to the next connection at once. */
    iocp_list_remove(&entry->hash_link);
    assert(reg->bucket_len[b] > 0);
    if (--reg->bucket_len[b] == 0)
        atomic_fetch_sub_explicit(&reg->buckets_used, 1, memory_order_relaxed);
    iocp__mutex_unlock(stripe);

    /* A walker's marker may sit next to the entry; unlinking splices the
     * neighbours together and leaves the marker where it is. */
    iocp_list_remove(&entry->online);
    sh->count--;
    assert(reg->slots[idx].entry == entry);
    free_slot(reg, sh, idx);
    atomic_store_explicit(&entry->id, IOCP_CONN_ID_NONE, memory_order_relaxed);
    atomic_fetch_sub_explicit(&reg->online_count, 1, memory_order_relaxed);
    iocp__mutex_unlock(&sh->lock);
    iocp__mutex_unlock(elock);
    return true;
}

struct iocp_reg_entry *iocp__registry_find(struct iocp_registry *reg, iocp_socket_t sock)
{
    uint32_t b = iocp__registry_bucket(sock);
    struct iocp_mutex *stripe = stripe_of(reg, b);
    struct iocp_reg_entry *found = NULL;
    struct iocp_list *pos;

    iocp__mutex_lock(stripe);
    iocp_list_foreach(pos, &reg->buckets[b])
    {
        struct iocp_reg_entry *e = iocp_list_entry(pos, struct iocp_reg_entry, hash_link);
        if (e->sock == sock) {
            /* Held before the stripe is dropped, so a remove that runs
             * right after cannot let the owner recycle it under us. */
            reg->ops.hold(e);
            found = e;
            break;
        }
    }
    iocp__mutex_unlock(stripe);
    return found;
}

struct iocp_reg_entry *iocp__registry_lookup(struct iocp_registry *reg, iocp_conn_id_t id)
{
    uint32_t idx = (uint32_t)id;
    uint32_t generation = (uint32_t)(id >> 32);
    struct iocp_reg_entry *e;

    /* Generation 0 is never given out, which also rejects id 0. */
    if (generation == 0 || idx >= reg->capacity)
        return NULL;
    struct iocp_reg_shard *sh = &reg->shards[idx % IOCP_REGISTRY_SHARDS];
    iocp__mutex_lock(&sh->lock);
    e = reg->slots[idx].entry;
    if (e != NULL && reg->slots[idx].generation == generation)
        reg->ops.hold(e);
    else
        e = NULL;
    iocp__mutex_unlock(&sh->lock);
    return e;
}

/*
 * The next real entry at or after node in sh's list, or NULL at the end.
 * Other walkers' markers are skipped: they are not entries.
 */
static struct iocp_reg_entry *next_real(struct iocp_reg_shard *sh, struct iocp_list *node)
{
    for (; node != &sh->online; node = node->next) {
        struct iocp_reg_entry *e = online_entry(node);
        if (!e->is_marker)
            return e;
    }
    return NULL;
}

size_t iocp__registry_foreach(struct iocp_registry *reg, iocp_reg_foreach_cb cb, void *arg)
{
    struct iocp_reg_entry marker;
    size_t calls = 0;

    if (cb == NULL)
        return 0;
    /* The callback runs with no lock held (it may remove entries, add them,
     * or walk again).  Reading `next` before the call would not be enough:
     * the callback, or another thread, may remove and recycle that next
     * entry too.  So a marker node on our stack is linked right after the
     * current entry while the lock is dropped; removals splice around it,
     * and after the call the walk resumes from whatever follows it. */
    iocp__reg_entry_init(&marker);
    marker.is_marker = true;
    for (unsigned s = 0; s < IOCP_REGISTRY_SHARDS; s++) {
        struct iocp_reg_shard *sh = &reg->shards[s];
        struct iocp_reg_entry *e;

        iocp__mutex_lock(&sh->lock);
        e = next_real(sh, sh->online.next);
        while (e != NULL) {
            reg->ops.hold(e);
            iocp__list_link(&marker.online, &e->online, e->online.next);
            iocp__mutex_unlock(&sh->lock);

            bool go_on = cb(e, arg);
            calls++;
            reg->ops.release(e);

            iocp__mutex_lock(&sh->lock);
            e = next_real(sh, marker.online.next);
            iocp_list_remove(&marker.online);
            if (!go_on) {
                iocp__mutex_unlock(&sh->lock);
                return calls;
            }
        }
        iocp__mutex_unlock(&sh->lock);
    }
    return calls;
}

size_t iocp__registry_online(const struct iocp_registry *reg)
{
    return atomic_load_explicit((iocp_atomic_size *)&reg->online_count, memory_order_relaxed);
}

void iocp__registry_count(struct iocp_registry *reg, struct iocp_registry_counts *counts)
{
    struct iocp_list *pos;

    memset(counts, 0, sizeof *counts);
    /* Lock by lock, not all at once: the result of a walk during churn is
     * a snapshot of each shard or stripe, and agrees with the counters only
     * when nothing is being added or removed. */
    for (unsigned s = 0; s < IOCP_REGISTRY_SHARDS; s++) {
        struct iocp_reg_shard *sh = &reg->shards[s];
        iocp__mutex_lock(&sh->lock);
        iocp_list_foreach(pos, &sh->online)
        {
            if (!online_entry(pos)->is_marker)
                counts->walked++;
        }
        iocp__mutex_unlock(&sh->lock);
    }
    for (unsigned t = 0; t < IOCP_REGISTRY_LOCK_STRIPES; t++) {
        iocp__mutex_lock(&reg->stripes[t]);
        for (uint32_t b = t; b < IOCP_REGISTRY_BUCKETS; b += IOCP_REGISTRY_LOCK_STRIPES) {
            size_t len = 0;
            iocp_list_foreach(pos, &reg->buckets[b])
            {
                len++;
            }
            assert(len == reg->bucket_len[b]);
            counts->hashed += len;
            if (len > counts->longest_chain)
                counts->longest_chain = len;
        }
        iocp__mutex_unlock(&reg->stripes[t]);
    }
    counts->online = atomic_load_explicit(&reg->online_count, memory_order_relaxed);
    counts->buckets_used = atomic_load_explicit(&reg->buckets_used, memory_order_relaxed);
}
