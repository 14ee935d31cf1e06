/* SPDX-License-Identifier: MIT */
/*
 * The connection registry (seeds 4', 5, 6, 7): which connections are online,
 * how to find one by its socket, and how to find one by its 64-bit ID.
 *
 *  - an intrusive online list, sharded, each shard under its own lock;
 *  - a 65,536-bucket hash keyed by socket, each bucket an intrusive chain,
 *    the buckets guarded by a stripe of locks;
 *  - a slot table that turns an iocp_conn_id_t (slot index in the low 32
 *    bits, the slot's generation in the high 32) into an entry in O(1) and
 *    rejects a stale ID;
 *  - membership decided by the entry's CAS `connected` flag: a second add or
 *    a second remove returns false and changes nothing.
 *
 * The registry never owns an entry's memory.  It takes references through
 * the hold/release callbacks given at init (the connection's refcount), so
 * that an entry handed out by find, lookup or foreach stays valid until the
 * caller releases it, even if another thread removes it meanwhile.
 *
 * Invariant the users keep: an entry leaves the registry (and so the hash)
 * before its socket is closed, because the system hands the same socket value
 * to the next connection at once.
 */
#ifndef IOCP_REGISTRY_H
#define IOCP_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iocp/types.h"
#include "casflag.h"
#include "list.h"
#include "thread.h"

#define IOCP_REGISTRY_BUCKETS    65536u
#define IOCP_REGISTRY_LOCK_STRIPES 256u
#define IOCP_REGISTRY_SHARDS     16u
#define IOCP_REGISTRY_ENTRY_LOCKS 256u

/* Embedded in the object that is registered (a connection). */
struct iocp_reg_entry {
    struct iocp_list online;    /* node in its shard's online list */
    struct iocp_list hash_link; /* node in its bucket's chain */
    iocp_socket_t sock;         /* the hash key, saved at add time */
    /* Valid while registered; IOCP_CONN_ID_NONE otherwise.  Atomic because a
     * holder may read it while another thread's remove clears it. */
    iocp_atomic_u64 id;
    struct iocp_casflag connected;
    uint8_t shard;
    bool is_marker;             /* a walk's cursor, not a real entry */
    uint8_t kind;               /* enum iocp_reg_kind: what embeds the entry */
};

/* What embeds a registry entry: IDs are one space, and whoever turns one
 * back into an object checks that it is the kind it expects. */
enum iocp_reg_kind { IOCP_REG_CONN = 0, IOCP_REG_DGRAM = 1 };

struct iocp_registry_ops {
    /* Take and drop one reference on the entry's owner.  Both may be called
     * with a registry lock held: they must not call back into the registry. */
    void (*hold)(struct iocp_reg_entry *entry);
    void (*release)(struct iocp_reg_entry *entry);
};

struct iocp_reg_slot {
    struct iocp_reg_entry *entry; /* NULL when free */
    uint32_t generation;          /* bumped each time the slot is freed */
    uint32_t next_free;           /* index of the next free slot of the shard */
};

struct iocp_reg_shard {
    struct iocp_mutex lock;   /* guards online, the shard's slots and free list */
    struct iocp_list online;
    uint32_t free_head;       /* UINT32_MAX when empty */
    uint32_t next_unused;     /* slots never handed out start here */
    size_t count;
};

struct iocp_registry {
    struct iocp_registry_ops ops;
    uint32_t capacity;              /* most entries at once */
    struct iocp_reg_slot *slots;    /* capacity slots; slot i belongs to shard i % SHARDS */
    struct iocp_reg_shard shards[IOCP_REGISTRY_SHARDS];
    struct iocp_list *buckets;      /* IOCP_REGISTRY_BUCKETS chain heads */
    uint32_t *bucket_len;           /* chain length per bucket */
    struct iocp_mutex stripes[IOCP_REGISTRY_LOCK_STRIPES];
    /* Serialise add and remove of one entry (chosen by the entry's address):
     * the flag alone cannot tell a remove which shard and bucket an add that
     * is still linking will use, nor stop a re-add from relinking the nodes
     * while a remove is still unlinking them. */
    struct iocp_mutex entry_locks[IOCP_REGISTRY_ENTRY_LOCKS];
    iocp_atomic_size online_count;
    iocp_atomic_size buckets_used;
    iocp_atomic_u32 next_shard;     /* round robin for add */
};

/* Counters read by stats, and the result of a full walk. */
struct iocp_registry_counts {
    size_t online;        /* the counter */
    size_t walked;        /* entries met walking the online lists */
    size_t hashed;        /* entries met walking every bucket */
    size_t buckets_used;  /* buckets with at least one entry (the counter) */
    size_t longest_chain; /* found by the bucket walk */
};

/*
 * iocp__registry_init(reg, capacity, ops):
 * Prepare reg to hold up to capacity entries (at most 2^31).  Slot memory is
 * reserved but only touched as it is used.  0, or IOCP_EINVAL / IOCP_ENOMEM.
 */
int iocp__registry_init(struct iocp_registry *reg, uint32_t capacity,
                        const struct iocp_registry_ops *ops);

/* Free what init allocated.  The registry must be empty. */
void iocp__registry_fini(struct iocp_registry *reg);

/* Make entry ready for add: unlinked nodes, flag down, no ID. */
void iocp__reg_entry_init(struct iocp_reg_entry *entry);

/*
 * iocp__registry_add(reg, entry, sock):
 * Put entry online under sock and give it a fresh ID (entry->id).  Returns 1
 * when added, 0 when entry was already online (nothing changes), or
 * IOCP_ENFILE when every slot is taken (entry stays offline).
 */
int iocp__registry_add(struct iocp_registry *reg, struct iocp_reg_entry *entry,
                       iocp_socket_t sock);

/*
 * iocp__registry_remove(reg, entry):
 * Take entry offline: out of the hash, the online list and the slot table;
 * its ID goes stale at once.  True for the caller that removed it, false if
 * it was not online (nothing changes).  After a true return the caller may
 * close entry->sock.
 */
bool iocp__registry_remove(struct iocp_registry *reg, struct iocp_reg_entry *entry);

/*
 * iocp__registry_find(reg, sock):
 * The online entry registered under sock, held (the caller releases it with
 * ops.release), or NULL.
 */
struct iocp_reg_entry *iocp__registry_find(struct iocp_registry *reg, iocp_socket_t sock);

/*
 * iocp__registry_lookup(reg, id):
 * The online entry with this ID, held, or NULL when the ID is stale, zero or
 * out of range.
 */
struct iocp_reg_entry *iocp__registry_lookup(struct iocp_registry *reg, iocp_conn_id_t id);

/*
 * Callback of iocp__registry_foreach: return false to stop the walk.  It runs
 * with no registry lock held and the entry held, so it may remove the entry,
 * close it, or add and remove others.
 */
typedef bool (*iocp_reg_foreach_cb)(struct iocp_reg_entry *entry, void *arg);

/*
 * iocp__registry_foreach(reg, cb, arg):
 * Call cb for each online entry (entries added or removed during the walk
 * may or may not be seen; every entry online throughout is seen exactly
 * once).  Returns how many times cb ran.  A NULL cb does nothing.
 */
size_t iocp__registry_foreach(struct iocp_registry *reg, iocp_reg_foreach_cb cb, void *arg);

/* The online count, read without walking. */
size_t iocp__registry_online(const struct iocp_registry *reg);

/* Walk the online lists and every bucket and fill counts (for stats). */
void iocp__registry_count(struct iocp_registry *reg, struct iocp_registry_counts *counts);

/* The bucket a socket value falls in. */
uint32_t iocp__registry_bucket(iocp_socket_t sock);

#endif /* IOCP_REGISTRY_H */
