/* SPDX-License-Identifier: MIT */
/*
 * relay_balance.h: choosing targets, and passive health.
 */
#include "relay_balance.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "opts.h"

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void lock(struct balance *b)
{
    while (atomic_flag_test_and_set_explicit(&b->lock, memory_order_acquire))
        ;
}

static void unlock(struct balance *b)
{
    atomic_flag_clear_explicit(&b->lock, memory_order_release);
}

bool balance_parse_mode(const char *text, enum balance_mode *mode)
{
    static const char *const names[] = {"rr", "leastconn", "first", "hash"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(text, names[i])) {
            *mode = (enum balance_mode)i;
            return true;
        }
    return false;
}

const char *balance_mode_name(enum balance_mode mode)
{
    switch (mode) {
    case BALANCE_LEASTCONN:
        return "leastconn";
    case BALANCE_FIRST:
        return "first";
    case BALANCE_HASH:
        return "hash";
    default:
        return "rr";
    }
}

const char *balance_state_name(int state)
{
    return state == TARGET_DOWN ? "down" : state == TARGET_PROBING ? "probing" : "up";
}

/* The keys a target may carry after its address. */
static bool known_option(const char *opt)
{
    return strncmp(opt, "weight=", 7) == 0;
}

const char *balance_target_options(const char *text)
{
    const char *opts = NULL;
    for (const char *end = text + strlen(text); end > text;) {
        const char *comma = end;
        while (comma > text && comma[-1] != ',')
            comma--;
        if (comma == text || !known_option(comma))
            break;
        opts = comma - 1;
        end = comma - 1;
    }
    return opts;
}

bool balance_parse_target(const char *cmd, const char *text, struct balance_target *t)
{
    char spec[ADDR_HOST_MAX + 32];
    if (strlen(text) >= sizeof spec) {
        diag_error("%s: %s: target too long", cmd, text);
        return false;
    }
    const char *opts = balance_target_options(text);
    size_t addr_len = opts ? (size_t)(opts - text) : strlen(text);
    snprintf(spec, sizeof spec, "%.*s", (int)addr_len, text);
    /* Only a Unix path may have a comma of its own: in any other address
     * it is an option misspelt. */
    const char *stray = strchr(spec, ',');
    if (stray && !addr_is_unix(spec)) {
        diag_error("%s: %s: unknown target option \"%s\" (expected weight=N)", cmd, text,
                   stray + 1);
        return false;
    }
    t->weight = 1;
    bool weighted = false;
    for (const char *opt = opts; opt && *opt == ',';) {
        opt++;
        size_t n = strcspn(opt, ",");
        char one[32];
        long long w;
        if (weighted) {
            diag_error("%s: %s: weight given twice", cmd, text);
            return false;
        }
        if (n >= sizeof one) {
            diag_error("%s: %s: option \"%.*s\" too long", cmd, text, (int)n, opt);
            return false;
        }
        snprintf(one, sizeof one, "%.*s", (int)n, opt);
        if (!opt_number(cmd, "weight", one + 7, 1, 1000, &w))
            return false;
        t->weight = (unsigned)w;
        weighted = true;
        opt += n;
    }
    if (!addr_target(cmd, spec, t->host, sizeof t->host, &t->port))
        return false;
    addr_format(t->host, t->port, t->name, sizeof t->name);
    snprintf(t->what, sizeof t->what, "target %s", t->name);
    t->health.what = t->what;
    return true;
}

void balance_init(struct balance *b, struct balance_target *t, unsigned n, enum balance_mode mode)
{
    b->mode = mode;
    b->t = t;
    b->n = n;
    atomic_flag_clear(&b->lock);
    for (unsigned i = 0; i < n; i++)
        atomic_store(&t[i].state, TARGET_UP);
}

/* May target i take this client?  A target out whose time is up becomes
 * the probe: it takes this one client, and no other until it answered. */
static bool usable(struct balance *b, unsigned i, uint64_t tried, uint64_t now, bool *probe)
{
    struct balance_target *t = &b->t[i];
    *probe = false;
    if (tried >> i & 1u)
        return false;
    int state = atomic_load_explicit(&t->state, memory_order_relaxed);
    if (state == TARGET_UP)
        return true;
    if (state == TARGET_DOWN && now >= t->down_until_ms) {
        *probe = true;
        return true;
    }
    return false;
}

/* FNV-1a of the client's host (the part before its last colon). */
static uint64_t client_hash(const char *client)
{
    const char *end = strrchr(client, ':');
    size_t n = end ? (size_t)(end - client) : strlen(client);
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)client[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int pick_locked(struct balance *b, const char *client, uint64_t tried, uint64_t now)
{
    bool probe;
    /* A target due for its probe goes first, whatever the mode: one
     * client's connect tells whether it is back (that client moves on to
     * another target if not). */
    for (unsigned i = 0; i < b->n; i++)
        if (usable(b, i, tried, now, &probe) && probe)
            return (int)i;
    int best = -1;
    switch (b->mode) {
    case BALANCE_FIRST:
        for (unsigned i = 0; i < b->n; i++)
            if (usable(b, i, tried, now, &probe))
                return (int)i;
        return -1;
    case BALANCE_HASH: {
        uint64_t total = 0;
        for (unsigned i = 0; i < b->n; i++)
            total += b->t[i].weight;
        uint64_t slot = client_hash(client) % total;
        unsigned home = 0;
        while (slot >= b->t[home].weight)
            slot -= b->t[home++].weight;
        for (unsigned k = 0; k < b->n; k++) {
            unsigned i = (home + k) % b->n;
            if (usable(b, i, tried, now, &probe))
                return (int)i;
        }
        return -1;
    }
    case BALANCE_LEASTCONN: {
        /* live / weight, compared as live_a * weight_b < live_b * weight_a;
         * the scan starts after the last winner, so ties take turns. */
        unsigned start = b->rr_next;
        for (unsigned k = 0; k < b->n; k++) {
            unsigned i = (start + k) % b->n;
            if (!usable(b, i, tried, now, &probe))
                continue;
            if (best < 0) {
                best = (int)i;
                continue;
            }
            uint64_t li = atomic_load(&b->t[i].live), lb = atomic_load(&b->t[best].live);
            if (li * b->t[best].weight < lb * b->t[i].weight)
                best = (int)i;
        }
        if (best >= 0)
            b->rr_next = (unsigned)best + 1;
        return best;
    }
    default: {
        /* Smooth weighted round robin: each usable target gains its
         * weight, the richest is chosen and pays the sum. */
        long long sum = 0;
        for (unsigned i = 0; i < b->n; i++) {
            if (!usable(b, i, tried, now, &probe))
                continue;
            b->t[i].rr_weight += b->t[i].weight;
            sum += b->t[i].weight;
            if (best < 0 || b->t[i].rr_weight > b->t[best].rr_weight)
                best = (int)i;
        }
        if (best >= 0)
            b->t[best].rr_weight -= sum;
        return best;
    }
    }
}

int balance_pick(struct balance *b, const char *client, uint64_t tried, unsigned *epoch)
{
    uint64_t now = now_ms();
    lock(b);
    int i = pick_locked(b, client, tried, now);
    if (i >= 0) {
        struct balance_target *t = &b->t[i];
        if (atomic_load_explicit(&t->state, memory_order_relaxed) == TARGET_DOWN)
            atomic_store(&t->state, TARGET_PROBING);
        atomic_fetch_add(&t->live, 1);
        *epoch = t->epoch;
    }
    unlock(b);
    return i;
}

bool balance_connected(struct balance *b, unsigned i, unsigned epoch)
{
    struct balance_target *t = &b->t[i];
    atomic_fetch_add_explicit(&t->connects, 1, memory_order_relaxed);
    /* Failures count within their window whatever worked in between (a
     * target that fails every other connect is still failing). */
    if (atomic_load_explicit(&t->state, memory_order_relaxed) == TARGET_UP)
        return true; /* the common case: nothing to change */
    lock(b);
    bool current = t->epoch == epoch;
    if (current) {
        atomic_store(&t->state, TARGET_UP);
        t->window_fails = 0;
    }
    unlock(b);
    return current;
}

/* Take target i out for the fail time-out (under the lock). */
static void take_out(struct balance *b, struct balance_target *t, uint64_t now)
{
    if (atomic_load(&t->state) != TARGET_DOWN)
        diag_info(1, "relay: %s out for %.3g s", t->what, b->fail_timeout_ms / 1000.0);
    atomic_store(&t->state, TARGET_DOWN);
    t->down_until_ms = now + b->fail_timeout_ms;
    t->window_fails = 0;
    t->epoch++;
}

void balance_failed(struct balance *b, unsigned i, unsigned epoch)
{
    struct balance_target *t = &b->t[i];
    atomic_fetch_add_explicit(&t->failures, 1, memory_order_relaxed);
    if (!b->max_fails)
        return;
    uint64_t now = now_ms();
    lock(b);
    if (t->epoch != epoch) {
        /* Begun before the target was last taken out: old news. */
    } else if (atomic_load(&t->state) == TARGET_PROBING) {
        take_out(b, t, now); /* the probe failed: out again */
    } else if (atomic_load(&t->state) == TARGET_UP) {
        if (t->window_fails == 0 || now - t->window_start_ms > b->fail_window_ms) {
            t->window_start_ms = now;
            t->window_fails = 0;
        }
        if (++t->window_fails >= b->max_fails)
            take_out(b, t, now);
    }
    unlock(b);
}

unsigned balance_epoch(struct balance *b, unsigned i)
{
    lock(b);
    unsigned epoch = b->t[i].epoch;
    unlock(b);
    return epoch;
}

bool balance_checked(struct balance *b, unsigned i, bool ok, unsigned epoch)
{
    struct balance_target *t = &b->t[i];
    uint64_t now = now_ms();
    lock(b);
    bool current = t->epoch == epoch;
    if (!current) {
        /* Begun before the target was last taken out: old news. */
    } else if (ok) {
        atomic_store(&t->state, TARGET_UP);
        t->window_fails = 0;
    } else if (atomic_load(&t->state) != TARGET_DOWN) {
        take_out(b, t, now);
    } else {
        t->down_until_ms = now + b->fail_timeout_ms;
    }
    unlock(b);
    return current;
}

void balance_done(struct balance *b, unsigned i, uint64_t up, uint64_t down)
{
    struct balance_target *t = &b->t[i];
    atomic_fetch_sub(&t->live, 1);
    atomic_fetch_add_explicit(&t->bytes_up, up, memory_order_relaxed);
    atomic_fetch_add_explicit(&t->bytes_down, down, memory_order_relaxed);
}
