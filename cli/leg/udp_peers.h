/* SPDX-License-Identifier: MIT */
/*
 * The peers of a datagram socket, by address: who sent to listen -u -k
 * lately, or the sessions of relay -u.  UDP has no connections, so a peer
 * is an address seen recently; it is forgotten once it has been silent
 * for the TTL.  A table belongs to one worker and needs no lock.
 *
 * The caller embeds a struct udp_peer in its own entry and owns its
 * memory; the table only links it (a hash by address, and a list in the
 * order the peers were last heard from, oldest first, so that expiry looks
 * only at the front).
 */
#ifndef IOCPTOOL_UDP_PEERS_H
#define IOCPTOOL_UDP_PEERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netcompat.h"

struct udp_peer {
    struct sockaddr_storage addr;
    int addrlen;
    uint64_t last_ms; /* when it was last heard from (or sent to, for a session) */
    uint32_t hash;
    struct udp_peer *chain;         /* next in its hash bucket */
    struct udp_peer *older, *newer; /* the list by last_ms */
};

struct udp_peers {
    struct udp_peer **buckets;
    uint32_t nbuckets; /* a power of two */
    size_t count;
    struct udp_peer *oldest, *newest;
};

/* An empty table sized for about `expected` peers.  false: out of memory. */
bool udp_peers_init(struct udp_peers *t, size_t expected);
void udp_peers_fini(struct udp_peers *t);

/* The peer with this address, or NULL. */
struct udp_peer *udp_peers_find(struct udp_peers *t, const struct sockaddr *sa, int salen);

/* Link p (its addr/addrlen filled by this call from sa) as heard at now. */
void udp_peers_add(struct udp_peers *t, struct udp_peer *p, const struct sockaddr *sa, int salen,
                   uint64_t now);

/* p was heard from (or sent to) at now: it moves to the newest end. */
void udp_peers_touch(struct udp_peers *t, struct udp_peer *p, uint64_t now);

/* Unlink p (its memory stays the caller's). */
void udp_peers_remove(struct udp_peers *t, struct udp_peer *p);

/* The peer silent longest if it has been silent at least ttl_ms at now,
 * else NULL: call until NULL to expire every stale peer. */
struct udp_peer *udp_peers_expired(struct udp_peers *t, uint64_t now, uint64_t ttl_ms);

/* The monotonic clock in milliseconds. */
uint64_t udp_now_ms(void);

#endif /* IOCPTOOL_UDP_PEERS_H */
