/* SPDX-License-Identifier: MIT */
/*
 * The connection registry: membership by CAS flag, the socket hash (with the
 * review's lost-chain-head bug as a regression case), generation-tagged IDs,
 * capacity, walks that call out with no lock held, the counters, and many
 * threads churning entries whose socket values are reused.
 */
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "internal.h"
#include "registry.h"
#include "thread.h"

/* A registered object, as a connection would be: the entry plus a refcount. */
struct item {
    struct iocp_reg_entry reg;
    iocp_atomic_int refs;
    int tag;
};

static struct iocp_registry reg;
static iocp_atomic_size holds, releases;

static struct item *item_of(struct iocp_reg_entry *e)
{
    return iocp_container_of(e, struct item, reg);
}

static void hold(struct iocp_reg_entry *e)
{
    atomic_fetch_add(&item_of(e)->refs, 1);
    atomic_fetch_add(&holds, 1);
}

static void release(struct iocp_reg_entry *e)
{
    atomic_fetch_sub(&item_of(e)->refs, 1);
    atomic_fetch_add(&releases, 1);
}

static const struct iocp_registry_ops item_ops = {.hold = hold, .release = release};

/* On Windows the tests share one process: start each from zero. */
static void reset_counts(void)
{
    atomic_store(&holds, 0);
    atomic_store(&releases, 0);
}

/*
 * A socket value in hash bucket b, the k-th of the values that share it.  On
 * Windows the registry drops a SOCKET's two low bits (always zero there), so
 * the values are multiples of 4; the bucket function itself says which
 * scheme is in force.
 */
static iocp_socket_t sock_at(uint32_t b, uint32_t k)
{
    uint64_t unit = iocp__registry_bucket(4) == 1 ? 4 : 1;
    return (iocp_socket_t)(((uint64_t)b + (uint64_t)k * 65536u) * unit);
}

static void setup(uint32_t capacity)
{
    cr_assert_eq(iocp__registry_init(&reg, capacity, &item_ops), 0);
}

static void items_init(struct item *items, int n)
{
    for (int i = 0; i < n; i++) {
        iocp__reg_entry_init(&items[i].reg);
        atomic_init(&items[i].refs, 0);
        items[i].tag = i;
    }
}

static iocp_conn_id_t id_of(const struct item *it)
{
    return atomic_load(&it->reg.id);
}

/* find(sock) is exactly want (or NULL), and the reference it took is dropped. */
static void expect_found(iocp_socket_t sock, struct item *want)
{
    struct iocp_reg_entry *e = iocp__registry_find(&reg, sock);
    if (want == NULL) {
        cr_expect_null(e, "socket %d should not be found", (int)sock);
        return;
    }
    cr_expect_eq(e, &want->reg, "socket %d should find item %d", (int)sock, want->tag);
    if (e != NULL) {
        cr_expect_eq(e->sock, sock);
        cr_expect_geq(atomic_load(&item_of(e)->refs), 1, "find must hold the entry");
        release(e);
    }
}

static struct iocp_registry_counts counts_now(void)
{
    struct iocp_registry_counts c;
    iocp__registry_count(&reg, &c);
    return c;
}

static void expect_counts(size_t online, size_t buckets_used, size_t longest)
{
    struct iocp_registry_counts c = counts_now();
    cr_expect_eq(c.online, online, "online %zu, want %zu", c.online, online);
    cr_expect_eq(c.walked, online, "walked %zu, want %zu", c.walked, online);
    cr_expect_eq(c.hashed, online, "hashed %zu, want %zu", c.hashed, online);
    cr_expect_eq(c.buckets_used, buckets_used, "buckets used %zu, want %zu", c.buckets_used,
                 buckets_used);
    cr_expect_eq(c.longest_chain, longest, "longest chain %zu, want %zu", c.longest_chain, longest);
    cr_expect_eq(iocp__registry_online(&reg), online);
}

static void remove_all(struct item *items, int n)
{
    for (int i = 0; i < n; i++)
        iocp__registry_remove(&reg, &items[i].reg);
}

TestSuite(registry, .init = reset_counts, .timeout = 120);

Test(registry, init_rejects_zero_capacity_and_missing_callbacks)
{
    struct iocp_registry_ops no_release = {.hold = hold};
    cr_expect_eq(iocp__registry_init(&reg, 0, &item_ops), IOCP_EINVAL);
    cr_expect_eq(iocp__registry_init(&reg, 16, NULL), IOCP_EINVAL);
    cr_expect_eq(iocp__registry_init(&reg, 16, &no_release), IOCP_EINVAL);
    cr_expect_eq(iocp__registry_init(&reg, (1u << 31) + 1, &item_ops), IOCP_EINVAL);
}

#ifdef _WIN32
Test(registry, bucket_of_a_socket_skips_its_two_always_zero_bits)
{
    cr_expect_eq(iocp__registry_bucket(4 * 5), 5u);
    cr_expect_eq(iocp__registry_bucket(4 * (5 + 65536)), 5u);
    cr_expect_eq(iocp__registry_bucket(4 * 0xFFFF), 0xFFFFu);
    cr_expect_eq(iocp__registry_bucket(4 * 0x10000), 0u);
}
#else
Test(registry, bucket_of_a_socket_is_its_low_16_bits)
{
    cr_expect_eq(iocp__registry_bucket(5), 5u);
    cr_expect_eq(iocp__registry_bucket(5 + 65536), 5u);
    cr_expect_eq(iocp__registry_bucket(0xFFFF), 0xFFFFu);
    cr_expect_eq(iocp__registry_bucket(0x10000), 0u);
}
#endif

Test(registry, added_entry_is_found_by_its_socket_and_held)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &a.reg, sock_at(7, 0)), 1);
    cr_expect(iocp_casflag_get(&a.reg.connected));
    cr_expect_neq(id_of(&a), IOCP_CONN_ID_NONE);
    expect_found(sock_at(7, 0), &a);
    expect_found(sock_at(8, 0), NULL);
    expect_found(sock_at(7, 1), NULL);
    cr_expect_eq(atomic_load(&a.refs), 0, "every reference taken by find was dropped");
    expect_counts(1, 1, 1);
    remove_all(&a, 1);
    iocp__registry_fini(&reg);
}

Test(registry, removed_entry_is_no_longer_found)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &a.reg, sock_at(7, 0)), 1);
    cr_expect(iocp__registry_remove(&reg, &a.reg));
    expect_found(sock_at(7, 0), NULL);
    cr_expect_not(iocp_casflag_get(&a.reg.connected));
    cr_expect_eq(id_of(&a), IOCP_CONN_ID_NONE);
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}

Test(registry, second_add_returns_zero_and_changes_nothing)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &a.reg, sock_at(7, 0)), 1);
    iocp_conn_id_t id = id_of(&a);
    struct iocp_registry_counts before = counts_now();

    cr_expect_eq(iocp__registry_add(&reg, &a.reg, sock_at(9, 0)), 0);
    struct iocp_registry_counts after = counts_now();
    cr_expect_eq(memcmp(&before, &after, sizeof before), 0, "counts changed");
    cr_expect_eq(a.reg.sock, sock_at(7, 0));
    cr_expect_eq(id_of(&a), id);
    expect_found(sock_at(7, 0), &a);
    expect_found(sock_at(9, 0), NULL);
    remove_all(&a, 1);
    iocp__registry_fini(&reg);
}

Test(registry, second_remove_returns_false_and_changes_nothing)
{
    struct item it[2];
    items_init(it, 2);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &it[0].reg, sock_at(7, 0)), 1);
    cr_assert_eq(iocp__registry_add(&reg, &it[1].reg, sock_at(7, 1)), 1);
    cr_expect(iocp__registry_remove(&reg, &it[0].reg));
    struct iocp_registry_counts before = counts_now();

    cr_expect_not(iocp__registry_remove(&reg, &it[0].reg));
    struct iocp_registry_counts after = counts_now();
    cr_expect_eq(memcmp(&before, &after, sizeof before), 0, "counts changed");
    expect_found(sock_at(7, 1), &it[1]);
    expect_counts(1, 1, 1);
    remove_all(it, 2);
    iocp__registry_fini(&reg);
}

Test(registry, remove_of_an_entry_never_added_returns_false)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_expect_not(iocp__registry_remove(&reg, &a.reg));
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}

/* Three sockets that share bucket 7. */
static iocp_socket_t colliding(int i)
{
    return sock_at(7, (uint32_t)i);
}

Test(registry, colliding_sockets_are_all_found_whatever_the_insert_order)
{
    static const int orders[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                     {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
    for (int o = 0; o < 6; o++) {
        struct item it[3];
        items_init(it, 3);
        setup(64);
        for (int k = 0; k < 3; k++) {
            int i = orders[o][k];
            cr_assert_eq(iocp__registry_add(&reg, &it[i].reg, colliding(i)), 1);
            /* Every entry inserted so far stays reachable after each insert:
             * an insert that forgot to store the new chain head would lose
             * the earlier ones (or the new one). */
            for (int m = 0; m <= k; m++)
                expect_found(colliding(orders[o][m]), &it[orders[o][m]]);
        }
        cr_expect_eq(reg.bucket_len[7], 3u);
        expect_counts(3, 1, 3);
        remove_all(it, 3);
        iocp__registry_fini(&reg);
    }
}

Test(registry, removing_the_first_middle_or_last_of_a_chain_keeps_the_others_found)
{
    for (int victim = 0; victim < 3; victim++) {
        struct item it[3];
        items_init(it, 3);
        setup(64);
        for (int i = 0; i < 3; i++)
            cr_assert_eq(iocp__registry_add(&reg, &it[i].reg, colliding(i)), 1);
        cr_expect(iocp__registry_remove(&reg, &it[victim].reg));
        for (int i = 0; i < 3; i++)
            expect_found(colliding(i), i == victim ? NULL : &it[i]);
        cr_expect_eq(reg.bucket_len[7], 2u);
        expect_counts(2, 1, 2);

        /* Empty the chain one by one, the others found each time. */
        for (int i = 0; i < 3; i++) {
            if (i == victim)
                continue;
            cr_expect(iocp__registry_remove(&reg, &it[i].reg));
            for (int j = 0; j < 3; j++)
                if (iocp_casflag_get(&it[j].reg.connected))
                    expect_found(colliding(j), &it[j]);
        }
        expect_counts(0, 0, 0);
        cr_expect_eq(reg.bucket_len[7], 0u);
        iocp__registry_fini(&reg);
    }
}

Test(registry, reused_socket_value_finds_the_new_entry_and_the_old_id_is_stale)
{
    struct item it[2];
    items_init(it, 2);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &it[0].reg, sock_at(7, 0)), 1);
    iocp_conn_id_t old_id = id_of(&it[0]);
    cr_assert(iocp__registry_remove(&reg, &it[0].reg));
    /* The system hands socket 7 to the next connection at once. */
    cr_assert_eq(iocp__registry_add(&reg, &it[1].reg, sock_at(7, 0)), 1);
    expect_found(sock_at(7, 0), &it[1]);
    cr_expect_null(iocp__registry_lookup(&reg, old_id));
    cr_expect_neq(id_of(&it[1]), old_id);
    expect_counts(1, 1, 1);
    remove_all(it, 2);
    iocp__registry_fini(&reg);
}

Test(registry, lookup_by_id_returns_the_entry_held)
{
    struct item it[40];
    items_init(it, 40);
    setup(64);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(iocp__registry_add(&reg, &it[i].reg, sock_at(100 + (uint32_t)i, 0)), 1);
    for (int i = 0; i < 40; i++) {
        iocp_conn_id_t id = id_of(&it[i]);
        cr_expect_neq(id, IOCP_CONN_ID_NONE);
        struct iocp_reg_entry *e = iocp__registry_lookup(&reg, id);
        cr_expect_eq(e, &it[i].reg);
        if (e != NULL) {
            cr_expect_eq(atomic_load(&it[i].refs), 1);
            release(e);
        }
    }
    remove_all(it, 40);
    iocp__registry_fini(&reg);
}

Test(registry, lookup_of_a_removed_entrys_id_returns_null)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &a.reg, sock_at(7, 0)), 1);
    iocp_conn_id_t id = id_of(&a);
    cr_assert(iocp__registry_remove(&reg, &a.reg));
    cr_expect_null(iocp__registry_lookup(&reg, id));
    cr_expect_eq(atomic_load(&holds), 0u, "nothing may be held for a stale id");
    iocp__registry_fini(&reg);
}

Test(registry, lookup_of_id_zero_or_an_index_out_of_range_returns_null)
{
    struct item a;
    items_init(&a, 1);
    setup(64);
    cr_assert_eq(iocp__registry_add(&reg, &a.reg, sock_at(7, 0)), 1);
    iocp_conn_id_t id = id_of(&a);
    uint64_t gen = id >> 32;
    cr_expect_null(iocp__registry_lookup(&reg, IOCP_CONN_ID_NONE));
    cr_expect_null(iocp__registry_lookup(&reg, (gen << 32) | 64u), "index == capacity");
    cr_expect_null(iocp__registry_lookup(&reg, (gen << 32) | 0xFFFFFFFFu));
    cr_expect_null(iocp__registry_lookup(&reg, id & 0xFFFFFFFFu), "generation 0");
    cr_expect_null(iocp__registry_lookup(&reg, id + (1ull << 32)), "a future generation");
    cr_expect_null(iocp__registry_lookup(&reg, (gen << 32) | ((uint32_t)id ^ 1u)),
                   "a slot never used");
    cr_expect_eq(atomic_load(&holds), 0u);
    remove_all(&a, 1);
    iocp__registry_fini(&reg);
}

Test(registry, reused_slot_gets_a_different_id)
{
    struct item it[3];
    items_init(it, 3);
    setup(1);
    cr_assert_eq(iocp__registry_add(&reg, &it[0].reg, sock_at(7, 0)), 1);
    iocp_conn_id_t first = id_of(&it[0]);
    cr_assert(iocp__registry_remove(&reg, &it[0].reg));
    cr_assert_eq(iocp__registry_add(&reg, &it[1].reg, sock_at(7, 0)), 1);
    iocp_conn_id_t second = id_of(&it[1]);
    cr_assert(iocp__registry_remove(&reg, &it[1].reg));
    /* The same entry added again is a new connection too. */
    cr_assert_eq(iocp__registry_add(&reg, &it[0].reg, sock_at(7, 0)), 1);
    iocp_conn_id_t third = id_of(&it[0]);

    cr_expect_eq((uint32_t)first, (uint32_t)second, "one slot, so one index");
    cr_expect_eq((uint32_t)second, (uint32_t)third);
    cr_expect_neq(first, second);
    cr_expect_neq(second, third);
    cr_expect_neq(first, third);
    cr_expect_null(iocp__registry_lookup(&reg, first));
    cr_expect_null(iocp__registry_lookup(&reg, second));
    struct iocp_reg_entry *e = iocp__registry_lookup(&reg, third);
    cr_expect_eq(e, &it[0].reg);
    if (e != NULL)
        release(e);
    remove_all(it, 3);
    iocp__registry_fini(&reg);
}

/* Fill every slot, check one more is refused, then that a freed slot is reused. */
static void fill_to_capacity(uint32_t capacity)
{
    struct item *it = calloc(capacity + 1, sizeof *it);
    cr_assert_not_null(it);
    items_init(it, (int)capacity + 1);
    setup(capacity);
    for (uint32_t i = 0; i < capacity; i++)
        cr_assert_eq(iocp__registry_add(&reg, &it[i].reg, sock_at(10 + i, 0)), 1, "add %u of %u", i,
                     capacity);

    struct item *extra = &it[capacity];
    cr_expect_eq(iocp__registry_add(&reg, &extra->reg, sock_at(5, 0)), IOCP_ENFILE);
    cr_expect_not(iocp_casflag_get(&extra->reg.connected), "a refused entry stays offline");
    cr_expect_eq(id_of(extra), IOCP_CONN_ID_NONE);
    expect_found(sock_at(5, 0), NULL);
    cr_expect_not(iocp__registry_remove(&reg, &extra->reg));
    expect_counts(capacity, capacity, 1);

    cr_assert(iocp__registry_remove(&reg, &it[capacity / 2].reg));
    cr_expect_eq(iocp__registry_add(&reg, &extra->reg, sock_at(5, 0)), 1,
                 "a freed slot is used again");
    expect_found(sock_at(5, 0), extra);
    expect_counts(capacity, capacity, 1);
    remove_all(it, (int)capacity + 1);
    iocp__registry_fini(&reg);
    free(it);
}

Test(registry, add_beyond_capacity_returns_enfile_and_leaves_the_entry_offline)
{
    /* 40 is not a multiple of the shard count: shards hold 3 or 2 slots,
     * and the round robin must find the last free ones wherever they are. */
    fill_to_capacity(40);
}

Test(registry, capacity_below_the_shard_count_is_usable_in_full)
{
    fill_to_capacity(3);
    fill_to_capacity(1);
}

/* Walk helpers. */
struct walk {
    int seen[256];
    size_t calls;
    size_t stop_after;  /* return false on this call (0: never) */
    struct item *items; /* the test's items, for callbacks that act on others */
    int n;
    bool remove_current;  /* remove every entry with an even tag when visited */
    bool remove_all;      /* on the first call, remove every entry and scribble on the others */
    iocp_socket_t reused; /* socket for the entry added from inside the walk */
};

static bool visit(struct iocp_reg_entry *e, void *arg)
{
    struct walk *w = arg;
    struct item *it = item_of(e);
    cr_assert_not(e->is_marker, "a marker reached the callback");
    cr_expect_geq(atomic_load(&it->refs), 1, "the entry is held during the callback");
    w->seen[it->tag]++;
    w->calls++;
    if (w->remove_current && it->tag % 2 == 0)
        cr_expect(iocp__registry_remove(&reg, e));
    if (w->remove_all && w->calls == 1) {
        for (int i = 0; i < w->n; i++) {
            cr_expect(iocp__registry_remove(&reg, &w->items[i].reg));
            /* An owner may recycle an unheld entry as soon as it is out: a
             * walk that kept a pointer to one would now follow garbage. */
            if (&w->items[i] != it)
                memset(&w->items[i].reg, 0xA5, sizeof w->items[i].reg);
        }
    }
    return w->stop_after == 0 || w->calls < w->stop_after;
}

static void add_many(struct item *it, int n)
{
    items_init(it, n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(iocp__registry_add(&reg, &it[i].reg, sock_at(1000 + (uint32_t)i, 0)), 1);
}

Test(registry, foreach_visits_every_entry_exactly_once)
{
    struct item it[100];
    struct walk w = {0};
    setup(256);
    add_many(it, 100);
    cr_expect_eq(iocp__registry_foreach(&reg, visit, &w), 100u);
    for (int i = 0; i < 100; i++)
        cr_expect_eq(w.seen[i], 1, "item %d seen %d times", i, w.seen[i]);
    remove_all(it, 100);
    iocp__registry_fini(&reg);
}

Test(registry, foreach_stops_when_the_callback_returns_false)
{
    struct item it[100];
    struct walk w = {.stop_after = 5};
    setup(256);
    add_many(it, 100);
    cr_expect_eq(iocp__registry_foreach(&reg, visit, &w), 5u);
    cr_expect_eq(w.calls, 5u);
    cr_expect_eq(atomic_load(&holds), atomic_load(&releases));
    expect_counts(100, 100, 1);
    remove_all(it, 100);
    iocp__registry_fini(&reg);
}

Test(registry, foreach_with_no_callback_does_nothing)
{
    struct item it[10];
    setup(64);
    add_many(it, 10);
    cr_expect_eq(iocp__registry_foreach(&reg, NULL, NULL), 0u);
    cr_expect_eq(atomic_load(&holds), 0u);
    expect_counts(10, 10, 1);
    remove_all(it, 10);
    iocp__registry_fini(&reg);
}

Test(registry, foreach_callback_may_remove_the_current_entry)
{
    struct item it[100];
    struct walk w = {.remove_current = true};
    setup(256);
    add_many(it, 100);
    cr_expect_eq(iocp__registry_foreach(&reg, visit, &w), 100u);
    for (int i = 0; i < 100; i++) {
        cr_expect_eq(w.seen[i], 1, "item %d seen %d times", i, w.seen[i]);
        cr_expect_eq(iocp_casflag_get(&it[i].reg.connected), i % 2 == 1);
    }
    expect_counts(50, 50, 1);
    remove_all(it, 100);
    iocp__registry_fini(&reg);
}

Test(registry, foreach_callback_may_remove_entries_not_yet_visited)
{
    struct item it[100];
    struct walk w = {.remove_all = true, .items = it, .n = 100};
    setup(256);
    add_many(it, 100);
    cr_expect_eq(iocp__registry_foreach(&reg, visit, &w), 1u,
                 "entries removed before their turn are not visited");
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}

Test(registry, foreach_balances_every_hold_with_a_release)
{
    struct item it[100];
    setup(256);
    add_many(it, 100);
    struct walk full = {0}, early = {.stop_after = 17}, removing = {.remove_current = true};
    iocp__registry_foreach(&reg, visit, &full);
    iocp__registry_foreach(&reg, visit, &early);
    iocp__registry_foreach(&reg, visit, &removing);
    cr_expect_eq(atomic_load(&holds), 100u + 17u + 100u);
    cr_expect_eq(atomic_load(&holds), atomic_load(&releases));
    for (int i = 0; i < 100; i++)
        cr_expect_eq(atomic_load(&it[i].refs), 0);
    remove_all(it, 100);
    iocp__registry_fini(&reg);
}

/*
 * Everything the registry offers, called from inside a walk.  Were any
 * registry lock still held, one of these would take it again and hang (the
 * suite's timeout turns that into a failure).
 */
static bool reenter(struct iocp_reg_entry *e, void *arg)
{
    struct walk *w = arg;
    struct item *it = item_of(e);
    struct item *fresh = &w->items[w->n - 1];
    struct iocp_registry_counts c;

    w->calls++;
    expect_found(e->sock, it);
    struct iocp_reg_entry *by_id = iocp__registry_lookup(&reg, atomic_load(&e->id));
    cr_expect_eq(by_id, e);
    if (by_id != NULL)
        release(by_id);
    iocp__registry_count(&reg, &c);
    cr_expect_eq(c.walked, c.online, "the walk's marker must not be counted");

    cr_expect_eq(iocp__registry_add(&reg, &fresh->reg, w->reused), 1);
    expect_found(w->reused, fresh);
    cr_expect(iocp__registry_remove(&reg, &fresh->reg));

    /* A walk inside the walk meets the outer walk's marker and skips it. */
    struct walk inner = {0};
    cr_expect_eq(iocp__registry_foreach(&reg, visit, &inner), (size_t)(w->n - 1));

    cr_expect(iocp__registry_remove(&reg, e));
    cr_expect_eq(iocp__registry_add(&reg, e, e->sock), 1, "re-added behind the walk");
    return w->calls < (size_t)(w->n - 1);
}

Test(registry, foreach_callback_may_call_find_lookup_add_remove_and_foreach)
{
    struct item it[21];
    struct walk w = {.items = it, .n = 21, .reused = sock_at(5, 0)};
    setup(64);
    add_many(it, 20);
    items_init(&it[20], 1);
    it[20].tag = 20;
    /* Re-added entries go to the tail and would be met again: the callback
     * stops after 20 calls, which is once per original entry. */
    cr_expect_eq(iocp__registry_foreach(&reg, reenter, &w), 20u);
    expect_counts(20, 20, 1);
    cr_expect_eq(atomic_load(&holds), atomic_load(&releases));
    remove_all(it, 21);
    iocp__registry_fini(&reg);
}

Test(registry, counters_agree_with_what_was_inserted)
{
    /* 10 entries in bucket 5, 3 in bucket 9, and one in each of 20 others. */
    struct item it[33];
    int n = 0;
    items_init(it, 33);
    setup(128);
    for (int k = 0; k < 10; k++)
        cr_assert_eq(iocp__registry_add(&reg, &it[n++].reg, sock_at(5, (uint32_t)k)), 1);
    for (int k = 0; k < 3; k++)
        cr_assert_eq(iocp__registry_add(&reg, &it[n++].reg, sock_at(9, (uint32_t)k)), 1);
    for (int k = 0; k < 20; k++)
        cr_assert_eq(iocp__registry_add(&reg, &it[n++].reg, sock_at(100 + (uint32_t)k, 0)), 1);
    expect_counts(33, 22, 10);
    cr_expect_eq(reg.bucket_len[5], 10u);
    cr_expect_eq(reg.bucket_len[9], 3u);

    size_t per_shard = 0;
    for (unsigned s = 0; s < IOCP_REGISTRY_SHARDS; s++)
        per_shard += reg.shards[s].count;
    cr_expect_eq(per_shard, 33u);

    /* Empty bucket 9 and shorten bucket 5's chain to 4. */
    for (int k = 0; k < 6; k++)
        cr_assert(iocp__registry_remove(&reg, &it[k].reg));
    for (int k = 10; k < 13; k++)
        cr_assert(iocp__registry_remove(&reg, &it[k].reg));
    expect_counts(24, 21, 4);
    remove_all(it, 33);
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}

/* ---- Threads ---------------------------------------------------------- */

static uint64_t next_rand(uint64_t *state)
{
    /* xorshift64*: fast, and good enough to pick operations and indices. */
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/*
 * Many threads add and remove the same few entries at once (seed 4'): the
 * flag lets exactly one of two racing adds (or removes) win, and each entry
 * ends up in or out, never half linked.
 */
#define RACE_THREADS 8
#define RACE_ENTRIES 32
#define RACE_OPS     40000

struct race {
    struct item items[RACE_ENTRIES];
    iocp_atomic_int added[RACE_ENTRIES];
    iocp_atomic_int removed[RACE_ENTRIES];
    iocp_atomic_int wrong;
    uint64_t seed;
};

static iocp_socket_t race_sock(int i)
{
    return sock_at(3 + (uint32_t)i / 8, (uint32_t)i % 8); /* eight per bucket */
}

static void race_worker(void *arg)
{
    struct race *r = arg;
    uint64_t rng = r->seed + iocp__thread_self();
    rng |= 1;
    for (int op = 0; op < RACE_OPS; op++) {
        uint64_t x = next_rand(&rng);
        int i = (int)((x >> 8) % RACE_ENTRIES);
        struct item *it = &r->items[i];
        switch (x % 4) {
        case 0: {
            int rc = iocp__registry_add(&reg, &it->reg, race_sock(i));
            if (rc == 1)
                atomic_fetch_add(&r->added[i], 1);
            else if (rc != 0)
                atomic_fetch_add(&r->wrong, 1);
            break;
        }
        case 1:
            if (iocp__registry_remove(&reg, &it->reg))
                atomic_fetch_add(&r->removed[i], 1);
            break;
        case 2: {
            /* Compare pointers only: a racing re-add rewrites e->sock. */
            struct iocp_reg_entry *e = iocp__registry_find(&reg, race_sock(i));
            if (e != NULL) {
                if (e != &it->reg)
                    atomic_fetch_add(&r->wrong, 1);
                release(e);
            }
            break;
        }
        default: {
            iocp_conn_id_t id = atomic_load(&it->reg.id);
            struct iocp_reg_entry *e = iocp__registry_lookup(&reg, id);
            if (e != NULL) {
                if (e != &it->reg)
                    atomic_fetch_add(&r->wrong, 1);
                release(e);
            }
            break;
        }
        }
    }
}

Test(registry, racing_adds_and_removes_of_the_same_entries_leave_each_in_or_out)
{
    static struct race r;
    struct iocp_thread th[RACE_THREADS];
    size_t online = 0;

    memset(&r, 0, sizeof r);
    items_init(r.items, RACE_ENTRIES);
    r.seed = 0x9E3779B97F4A7C15ull;
    setup(RACE_ENTRIES);
    for (int t = 0; t < RACE_THREADS; t++)
        cr_assert_eq(iocp__thread_start(&th[t], race_worker, &r), 0);
    for (int t = 0; t < RACE_THREADS; t++)
        iocp__thread_join(&th[t]);

    cr_expect_eq(atomic_load(&r.wrong), 0);
    for (int i = 0; i < RACE_ENTRIES; i++) {
        int in = atomic_load(&r.added[i]) - atomic_load(&r.removed[i]);
        bool flag = iocp_casflag_get(&r.items[i].reg.connected);
        cr_expect(in == (flag ? 1 : 0), "item %d: %d adds, %d removes, flag %d", i,
                  atomic_load(&r.added[i]), atomic_load(&r.removed[i]), flag);
        expect_found(race_sock(i), flag ? &r.items[i] : NULL);
        online += flag;
    }
    struct iocp_registry_counts c = counts_now();
    cr_expect_eq(c.online, online);
    cr_expect_eq(c.walked, online);
    cr_expect_eq(c.hashed, online);
    cr_expect_eq(atomic_load(&holds), atomic_load(&releases));
    remove_all(r.items, RACE_ENTRIES);
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}

/*
 * The stress test.  Entries outnumber socket values, so each value is reused
 * by many entries in turn, and the test keeps the engine's rules:
 *
 *  - a socket value goes to a new entry only after the entry that had it was
 *    removed (owner[]: socket -> entry, taken by CAS, freed after remove);
 *  - an entry is added again only once nobody holds it (claim[]: entry ->
 *    socket, and refs == 0), as a pooled connection is reused only at
 *    refcount zero.
 *
 * Capacity is below the number of socket values, so adds also meet ENFILE.
 */
#define ST_THREADS  8
#define ST_ENTRIES  10000
#define ST_SOCKETS  4096
#define ST_CAPACITY 1536
#define ST_OPS      (1000000 / ST_THREADS)

/* What a worker can see go wrong; counted, and reported by the main thread. */
enum { BAD_ADD, BAD_REMOVE, STALE_ID, BAD_FIND, BAD_LOOKUP, BAD_WALK, BAD_COUNT, N_BAD };
static const char *const bad_names[N_BAD] = {
    "add of a claimed entry did not return 1 or ENFILE",
    "removed entry had another socket than its claim",
    "an ID resolved after its entry was removed",
    "find returned an entry with another socket, or not held",
    "lookup returned an entry with another ID",
    "a walk met a marker, an unheld entry or a foreign socket",
    "a chain grew longer than the socket values that share its bucket",
};

struct stress {
    struct item items[ST_ENTRIES];
    iocp_atomic_int owner[ST_SOCKETS]; /* entry holding the socket value, or -1 */
    iocp_atomic_int claim[ST_ENTRIES]; /* socket index of the entry's life, or -1 */
    iocp_atomic_int wrong[N_BAD];
    iocp_atomic_size adds, enfile, removes, walks, visits;
};

struct stress_thread {
    struct stress *st;
    struct iocp_thread th;
    uint64_t rng;
    iocp_conn_id_t *ids; /* every ID this thread saw given out or go stale */
    size_t n_ids, cap_ids;
};

static struct stress st;

static iocp_socket_t st_sock(int k)
{
    /* 4096 values over 1024 buckets: chains of up to four. */
    return sock_at(3 + (uint32_t)k % 1024, (uint32_t)k / 1024);
}

static void note_id(struct stress_thread *t, iocp_conn_id_t id)
{
    if (id == IOCP_CONN_ID_NONE)
        return;
    if (t->n_ids == t->cap_ids) {
        t->cap_ids = t->cap_ids ? t->cap_ids * 2 : 4096;
        t->ids = realloc(t->ids, t->cap_ids * sizeof *t->ids);
        if (t->ids == NULL)
            abort();
    }
    t->ids[t->n_ids++] = id;
}

/* Take entry e offline; on success give its socket value and the entry back. */
static void st_remove(struct stress_thread *t, int e)
{
    struct item *it = &st.items[e];
    iocp_conn_id_t before = atomic_load(&it->reg.id);
    if (!iocp__registry_remove(&reg, &it->reg))
        return;
    int k = atomic_load(&st.claim[e]);
    if (k < 0 || it->reg.sock != st_sock(k) || atomic_load(&st.owner[k]) != e)
        atomic_fetch_add(&st.wrong[BAD_REMOVE], 1);
    /* The ID read before the remove is this life's (or NONE): stale now. */
    if (before != IOCP_CONN_ID_NONE) {
        struct iocp_reg_entry *stale = iocp__registry_lookup(&reg, before);
        if (stale != NULL) {
            atomic_fetch_add(&st.wrong[STALE_ID], 1);
            release(stale);
        }
    }
    note_id(t, before);
    atomic_fetch_add(&st.removes, 1);
    /* Out of the hash, so the socket value may go to another entry. */
    if (k >= 0)
        atomic_store(&st.owner[k], -1);
    atomic_store(&st.claim[e], -1);
}

static void st_add(struct stress_thread *t, int e, int k)
{
    struct item *it = &st.items[e];
    int none = -1;
    if (!atomic_compare_exchange_strong(&st.owner[k], &none, e))
        return;
    none = -1;
    if (!atomic_compare_exchange_strong(&st.claim[e], &none, k))
        goto give_back_socket;
    /* Offline entries cannot gain references, so zero stays zero. */
    if (atomic_load(&it->refs) != 0)
        goto give_back_entry;
    int rc = iocp__registry_add(&reg, &it->reg, st_sock(k));
    if (rc == 1) {
        atomic_fetch_add(&st.adds, 1);
        note_id(t, atomic_load(&it->reg.id));
        return;
    }
    if (rc == IOCP_ENFILE)
        atomic_fetch_add(&st.enfile, 1);
    else
        atomic_fetch_add(&st.wrong[BAD_ADD], 1); /* claimed entries are never online */
give_back_entry:
    atomic_store(&st.claim[e], -1);
give_back_socket:
    atomic_store(&st.owner[k], -1);
}

static bool st_visit(struct iocp_reg_entry *e, void *arg)
{
    struct stress_thread *t = arg;
    struct item *it = item_of(e);
    uint64_t x = next_rand(&t->rng);
    atomic_fetch_add(&st.visits, 1);
    if (e->is_marker || atomic_load(&it->refs) < 1 || iocp__registry_bucket(e->sock) < 3 ||
        iocp__registry_bucket(e->sock) >= 3 + 1024)
        atomic_fetch_add(&st.wrong[BAD_WALK], 1);
    if (x % 64 == 0)
        st_remove(t, it->tag);
    return x % 512 != 1;
}

static void stress_worker(void *arg)
{
    struct stress_thread *t = arg;
    for (int op = 0; op < ST_OPS; op++) {
        uint64_t x = next_rand(&t->rng);
        unsigned what = (unsigned)(x % 10000);
        int k = (int)((x >> 16) % ST_SOCKETS);
        int e = (int)((x >> 32) % ST_ENTRIES);
        if (what < 3500) {
            st_add(t, e, k);
        } else if (what < 6500) {
            /* By socket, so that the pick is usually online. */
            int owner = atomic_load(&st.owner[k]);
            if (owner >= 0)
                st_remove(t, owner);
        } else if (what < 8500) {
            struct iocp_reg_entry *found = iocp__registry_find(&reg, st_sock(k));
            if (found != NULL) {
                if (found->sock != st_sock(k) || atomic_load(&item_of(found)->refs) < 1)
                    atomic_fetch_add(&st.wrong[BAD_FIND], 1);
                release(found);
            }
        } else if (what < 9990) {
            iocp_conn_id_t id = t->n_ids ? t->ids[(x >> 40) % t->n_ids] : x;
            struct iocp_reg_entry *found = iocp__registry_lookup(&reg, id);
            if (found != NULL) {
                /* Held, so it may go offline (ID NONE) but not come back. */
                iocp_conn_id_t now = atomic_load(&found->id);
                if (now != id && now != IOCP_CONN_ID_NONE)
                    atomic_fetch_add(&st.wrong[BAD_LOOKUP], 1);
                release(found);
            }
        } else if (what < 9998) {
            iocp__registry_foreach(&reg, st_visit, t);
            atomic_fetch_add(&st.walks, 1);
        } else {
            struct iocp_registry_counts c;
            iocp__registry_count(&reg, &c);
            /* A socket value is in the hash at most once: chains stay <= 4.
             * (walked and hashed are not bounded by the capacity during
             * churn: count takes one lock at a time, so an entry that moves
             * from a shard already walked to one not yet walked counts
             * twice.) */
            if (c.longest_chain > 4)
                atomic_fetch_add(&st.wrong[BAD_COUNT], 1);
        }
    }
}

static int cmp_id(const void *a, const void *b)
{
    iocp_conn_id_t x = *(const iocp_conn_id_t *)a, y = *(const iocp_conn_id_t *)b;
    return (x > y) - (x < y);
}

Test(registry, many_threads_churning_reused_sockets_keep_everything_consistent)
{
    static struct stress_thread threads[ST_THREADS];
    uint32_t chain[1024] = {0};
    size_t online = 0, buckets = 0, longest = 0;
    uint64_t t0 = iocp__now_ms();

    memset(&st, 0, sizeof st);
    memset(threads, 0, sizeof threads);
    items_init(st.items, ST_ENTRIES);
    for (int k = 0; k < ST_SOCKETS; k++)
        atomic_init(&st.owner[k], -1);
    for (int e = 0; e < ST_ENTRIES; e++)
        atomic_init(&st.claim[e], -1);
    setup(ST_CAPACITY);
    for (int i = 0; i < ST_THREADS; i++) {
        threads[i].st = &st;
        threads[i].rng = 0x853C49E6748FEA9Bull * (uint64_t)(i + 1);
        cr_assert_eq(iocp__thread_start(&threads[i].th, stress_worker, &threads[i]), 0);
    }
    for (int i = 0; i < ST_THREADS; i++)
        iocp__thread_join(&threads[i].th);
    cr_log_info("stress: %zu adds, %zu ENFILE, %zu removes, %zu walks (%zu visits) in %llu ms",
                atomic_load(&st.adds), atomic_load(&st.enfile), atomic_load(&st.removes),
                atomic_load(&st.walks), atomic_load(&st.visits),
                (unsigned long long)(iocp__now_ms() - t0));

    for (int b = 0; b < N_BAD; b++)
        cr_expect_eq(atomic_load(&st.wrong[b]), 0, "%d times: %s", atomic_load(&st.wrong[b]),
                     bad_names[b]);
    cr_expect_gt(atomic_load(&st.enfile), 0u, "the run should have met a full table");
    cr_expect_gt(atomic_load(&st.walks), 0u);

    /* What the test believes is online, against what the registry holds. */
    for (int e = 0; e < ST_ENTRIES; e++) {
        int k = atomic_load(&st.claim[e]);
        bool flag = iocp_casflag_get(&st.items[e].reg.connected);
        cr_expect_eq(flag, k >= 0, "entry %d: flag %d, claim %d", e, flag, k);
        cr_expect_eq(atomic_load(&st.items[e].refs), 0, "entry %d still held", e);
        if (k < 0)
            continue;
        online++;
        cr_expect_eq(atomic_load(&st.owner[k]), e);
        expect_found(st_sock(k), &st.items[e]);
        uint32_t b = iocp__registry_bucket(st_sock(k)) - 3;
        if (chain[b]++ == 0)
            buckets++;
        if (chain[b] > longest)
            longest = chain[b];
    }
    expect_counts(online, buckets, longest);
    cr_expect_eq(atomic_load(&holds), atomic_load(&releases), "holds %zu, releases %zu",
                 atomic_load(&holds), atomic_load(&releases));

    /* Every ID ever seen resolves only if it is its entry's current one, and
     * each online entry's current ID is among them. */
    size_t n = 0, resolved = 0;
    for (int i = 0; i < ST_THREADS; i++)
        n += threads[i].n_ids;
    iocp_conn_id_t *all = malloc((n ? n : 1) * sizeof *all);
    cr_assert_not_null(all);
    n = 0;
    for (int i = 0; i < ST_THREADS; i++) {
        memcpy(all + n, threads[i].ids, threads[i].n_ids * sizeof *all);
        n += threads[i].n_ids;
        free(threads[i].ids);
    }
    qsort(all, n, sizeof *all, cmp_id);
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && all[i] == all[i - 1])
            continue;
        struct iocp_reg_entry *e = iocp__registry_lookup(&reg, all[i]);
        if (e == NULL)
            continue;
        resolved++;
        cr_expect_eq(atomic_load(&e->id), all[i], "a stale ID resolved");
        release(e);
    }
    cr_expect_eq(resolved, online);
    free(all);

    remove_all(st.items, ST_ENTRIES);
    expect_counts(0, 0, 0);
    iocp__registry_fini(&reg);
}
