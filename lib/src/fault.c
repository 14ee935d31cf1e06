/* SPDX-License-Identifier: MIT */
/*
 * fault.h: the fault-injection rules and their checks.
 *
 * Rules live in a table of atomics so that checks from many workers need no
 * lock.  A probability rule hashes (seed, point, call number) instead of
 * keeping a shared random state: the same seed gives the same failures for
 * the same sequence of calls, and threads never contend on a generator.
 */
#include "fault.h"

#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct fault_rule {
    iocp_atomic_u64 every;     /* fail every Nth call; 0: off */
    iocp_atomic_u64 threshold; /* fail when hash < threshold; 0: off */
    iocp_atomic_u64 calls;
    iocp_atomic_u64 injected;
};

static struct fault_rule rules[IOCP_FAULT_COUNT];
static iocp_atomic_u64 fault_seed;
static iocp_atomic_bool fault_active;
static iocp_atomic_bool env_read;

static const char *const point_names[IOCP_FAULT_COUNT] = {
    "post", "submit", "accept", "connect", "send", "recv", "bind", "socket", "open",
    "dgram_recv", "dgram_send", "send_short",
};

/* The error each point reports: what the OS would most plausibly say. */
static const int point_errors[IOCP_FAULT_COUNT] = {
    IOCP_EAGAIN,       /* post: the queue is full */
    IOCP_ENOMEM,       /* submit: no room for the request */
    IOCP_ECONNABORTED, /* accept */
    IOCP_ECONNREFUSED, /* connect */
    IOCP_EPIPE,        /* send */
    IOCP_ECONNRESET,   /* recv */
    IOCP_EINVAL,       /* bind */
    IOCP_EMFILE,       /* socket */
    IOCP_EPERM,        /* open: what a container's seccomp filter says to io_uring */
    IOCP_ECONNREFUSED, /* dgram_recv: an ICMP port unreachable */
    IOCP_ENOBUFS,      /* dgram_send: the interface queue is full */
    1,                 /* send_short: a hit, not an error (a short count) */
};

const char *iocp__fault_name(enum iocp_fault_point point)
{
    return (unsigned)point < IOCP_FAULT_COUNT ? point_names[point] : "?";
}

static void clear_rules(void)
{
    atomic_store(&fault_active, false);
    for (int i = 0; i < IOCP_FAULT_COUNT; i++) {
        atomic_store(&rules[i].every, 0);
        atomic_store(&rules[i].threshold, 0);
        atomic_store(&rules[i].calls, 0);
        atomic_store(&rules[i].injected, 0);
    }
}

static int parse_rule(const char *item, size_t len)
{
    char buf[64];
    if (len == 0 || len >= sizeof buf)
        return IOCP_EINVAL;
    memcpy(buf, item, len);
    buf[len] = '\0';
    char *eq = strchr(buf, '=');
    if (!eq || eq[1] == '\0')
        return IOCP_EINVAL;
    *eq = '\0';
    const char *value = eq + 1;
    char *end;

    if (strcmp(buf, "seed") == 0) {
        unsigned long long seed = strtoull(value, &end, 10);
        if (*end)
            return IOCP_EINVAL;
        atomic_store(&fault_seed, (uint64_t)seed);
        return 0;
    }
    int point = -1;
    for (int i = 0; i < IOCP_FAULT_COUNT; i++)
        if (strcmp(buf, point_names[i]) == 0)
            point = i;
    if (point < 0)
        return IOCP_EINVAL;
    if (value[0] == 'p') {
        double p = strtod(value + 1, &end);
        if (*end || !(p > 0.0) || p > 1.0)
            return IOCP_EINVAL;
        /* Compare against the top 53 bits of the hash, so p = 1 always fails. */
        uint64_t threshold = (uint64_t)(p * 9007199254740992.0);
        atomic_store(&rules[point].threshold, threshold ? threshold : 1);
    } else {
        unsigned long long n = strtoull(value, &end, 10);
        if (*end || n == 0)
            return IOCP_EINVAL;
        atomic_store(&rules[point].every, (uint64_t)n);
    }
    return 0;
}

int iocp__fault_configure(const char *spec)
{
    clear_rules();
    atomic_store(&fault_seed, 1);
    if (!spec || !*spec)
        return 0;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (parse_rule(p, len) < 0) {
            clear_rules();
            return IOCP_EINVAL;
        }
        p += len;
        if (*p == ',')
            p++;
    }
    atomic_store(&fault_active, true);
    return 0;
}

void iocp__fault_from_env(void)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&env_read, &expected, true))
        return;
    const char *spec = getenv("IOCP_FAULT");
    if (spec && *spec)
        iocp__fault_configure(spec);
}

/* splitmix64: a good 64-bit mix of the call's identity. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool iocp__fault_armed(void)
{
    return atomic_load_explicit(&fault_active, memory_order_relaxed);
}

int iocp__fault_check(enum iocp_fault_point point)
{
    if (!atomic_load_explicit(&fault_active, memory_order_relaxed))
        return 0;
    struct fault_rule *r = &rules[point];
    uint64_t every = atomic_load_explicit(&r->every, memory_order_relaxed);
    uint64_t threshold = atomic_load_explicit(&r->threshold, memory_order_relaxed);
    if (!every && !threshold)
        return 0;
    uint64_t call = atomic_fetch_add_explicit(&r->calls, 1, memory_order_relaxed) + 1;
    bool fail = false;
    if (every && call % every == 0)
        fail = true;
    if (threshold) {
        uint64_t seed = atomic_load_explicit(&fault_seed, memory_order_relaxed);
        uint64_t h = mix(seed ^ mix(((uint64_t)point << 56) ^ call)) >> 11;
        if (h < threshold)
            fail = true;
    }
    if (!fail)
        return 0;
    atomic_fetch_add_explicit(&r->injected, 1, memory_order_relaxed);
    return point_errors[point];
}

uint64_t iocp__fault_injected(enum iocp_fault_point point)
{
    return atomic_load(&rules[point].injected);
}
