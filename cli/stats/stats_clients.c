/* SPDX-License-Identifier: MIT */
/*
 * stats_clients.h: a chained hash table from connection ID to the client's
 * name, under a spin lock (held for a walk of one short chain).
 */
#include "stats_clients.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define BUCKETS 1024u /* a power of two */

struct entry {
    struct entry *next;
    iocp_conn_id_t id;
    char name[64]; /* as long as iocp_conn_info.peer */
};

static struct entry *buckets[BUCKETS];
static atomic_flag lock = ATOMIC_FLAG_INIT;

static void take(void)
{
    while (atomic_flag_test_and_set_explicit(&lock, memory_order_acquire))
        ;
}

static void give(void)
{
    atomic_flag_clear_explicit(&lock, memory_order_release);
}

static struct entry **slot(iocp_conn_id_t id)
{
    /* IDs carry a generation in their high bits and a slot in their low
     * ones: mixing both spreads them over the buckets. */
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return &buckets[(h >> 32) & (BUCKETS - 1)];
}

bool stats_client_name_set(iocp_conn_id_t id, const char *client)
{
    struct entry *e = malloc(sizeof *e);
    if (!e)
        return false;
    e->id = id;
    snprintf(e->name, sizeof e->name, "%s", client);
    take();
    struct entry **b = slot(id);
    e->next = *b;
    *b = e;
    give();
    return true;
}

void stats_client_name_clear(iocp_conn_id_t id)
{
    struct entry *gone = NULL;
    take();
    for (struct entry **p = slot(id); *p; p = &(*p)->next)
        if ((*p)->id == id) {
            gone = *p;
            *p = gone->next;
            break;
        }
    give();
    free(gone);
}

bool stats_client_name_get(iocp_conn_id_t id, char *buf, size_t len)
{
    bool found = false;
    take();
    for (struct entry *e = *slot(id); e; e = e->next)
        if (e->id == id) {
            snprintf(buf, len, "%s", e->name);
            found = true;
            break;
        }
    give();
    return found;
}
