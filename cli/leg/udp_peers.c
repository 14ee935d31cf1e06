/* SPDX-License-Identifier: MIT */
/*
 * udp_peers.h: a hash of peer addresses with a list by age.
 */
#include "udp_peers.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t udp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The bytes that tell peers apart: family, port and address (and the
 * scope of a link-local IPv6 address); never padding. */
static size_t key_of(const struct sockaddr *sa, unsigned char key[32])
{
    size_t n = 0;
    key[n++] = (unsigned char)sa->sa_family;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        memcpy(key + n, &in->sin_port, 2);
        memcpy(key + n + 2, &in->sin_addr, 4);
        return n + 6;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
    memcpy(key + n, &in6->sin6_port, 2);
    memcpy(key + n + 2, &in6->sin6_addr, 16);
    memcpy(key + n + 18, &in6->sin6_scope_id, 4);
    return n + 22;
}

static uint32_t hash_key(const unsigned char *key, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 16777619u;
    return h;
}

bool udp_peers_init(struct udp_peers *t, size_t expected)
{
    memset(t, 0, sizeof *t);
    uint32_t n = 16;
    while (n < expected * 2 && n < (1u << 20))
        n *= 2;
    t->buckets = calloc(n, sizeof *t->buckets);
    if (!t->buckets)
        return false;
    t->nbuckets = n;
    return true;
}

void udp_peers_fini(struct udp_peers *t)
{
    free(t->buckets);
    memset(t, 0, sizeof *t);
}

struct udp_peer *udp_peers_find(struct udp_peers *t, const struct sockaddr *sa, int salen)
{
    (void)salen;
    unsigned char key[32], other[32];
    size_t n = key_of(sa, key);
    uint32_t h = hash_key(key, n);
    for (struct udp_peer *p = t->buckets[h & (t->nbuckets - 1)]; p; p = p->chain)
        if (p->hash == h && key_of((const struct sockaddr *)&p->addr, other) == n &&
            !memcmp(key, other, n))
            return p;
    return NULL;
}

static void link_newest(struct udp_peers *t, struct udp_peer *p)
{
    p->newer = NULL;
    p->older = t->newest;
    if (t->newest)
        t->newest->newer = p;
    else
        t->oldest = p;
    t->newest = p;
}

static void unlink_age(struct udp_peers *t, struct udp_peer *p)
{
    if (p->older)
        p->older->newer = p->newer;
    else
        t->oldest = p->newer;
    if (p->newer)
        p->newer->older = p->older;
    else
        t->newest = p->older;
}

void udp_peers_add(struct udp_peers *t, struct udp_peer *p, const struct sockaddr *sa, int salen,
                   uint64_t now)
{
    unsigned char key[32];
    size_t n = key_of(sa, key);
    memset(&p->addr, 0, sizeof p->addr);
    memcpy(&p->addr, sa, (size_t)salen < sizeof p->addr ? (size_t)salen : sizeof p->addr);
    p->addrlen = salen;
    p->hash = hash_key(key, n);
    p->last_ms = now;
    struct udp_peer **b = &t->buckets[p->hash & (t->nbuckets - 1)];
    p->chain = *b;
    *b = p;
    link_newest(t, p);
    t->count++;
}

void udp_peers_touch(struct udp_peers *t, struct udp_peer *p, uint64_t now)
{
    p->last_ms = now;
    if (t->newest == p)
        return;
    unlink_age(t, p);
    link_newest(t, p);
}

void udp_peers_remove(struct udp_peers *t, struct udp_peer *p)
{
    struct udp_peer **b = &t->buckets[p->hash & (t->nbuckets - 1)];
    while (*b && *b != p)
        b = &(*b)->chain;
    if (*b)
        *b = p->chain;
    unlink_age(t, p);
    t->count--;
}

struct udp_peer *udp_peers_expired(struct udp_peers *t, uint64_t now, uint64_t ttl_ms)
{
    struct udp_peer *p = t->oldest;
    return p && now - p->last_ms >= ttl_ms ? p : NULL;
}
