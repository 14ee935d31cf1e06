/* SPDX-License-Identifier: MIT */
/*
 * relay_health.h: one line per change of state of a relay's ends, such as
 *
 *   iocptool: relay: target 127.0.0.1:9 unreachable (connection refused)
 *   iocptool: relay: target 127.0.0.1:9 reachable again after 12 failures; 12 clients reset
 *   iocptool: relay: clients: encrypted channels failing (127.0.0.1:40000: stream cut ...)
 */
#include "relay_health.h"

#include <stdio.h>

#include "diag.h"

/* "12 failures; 3 clients reset" (no reset part when none was). */
static void counts(char *buf, size_t len, unsigned failures, unsigned resets)
{
    int n = snprintf(buf, len, "%u failure%s", failures, failures == 1 ? "" : "s");
    if (resets && n > 0 && (size_t)n < len)
        snprintf(buf + n, len - (size_t)n, "; %u client%s reset", resets, resets == 1 ? "" : "s");
}

void health_failed(struct relay_health *h, enum health_state state, const char *why)
{
    /* Counted since the end last worked (health_ok starts from zero). */
    atomic_fetch_add_explicit(&h->failures, 1, memory_order_relaxed);
    int old = atomic_load_explicit(&h->state, memory_order_relaxed);
    if (old == (int)state || !atomic_compare_exchange_strong(&h->state, &old, (int)state))
        return; /* no change, or another worker made it first and said so */
    if (state == HEALTH_UNREACHABLE)
        diag_error("relay: %s unreachable (%s)", h->what, why);
    else
        diag_error("relay: %s: encrypted channels failing (%s)", h->what, why);
}

void health_ok(struct relay_health *h)
{
    int old = atomic_load_explicit(&h->state, memory_order_relaxed);
    if (old == HEALTH_OK || !atomic_compare_exchange_strong(&h->state, &old, HEALTH_OK))
        return;
    char said[96];
    counts(said, sizeof said, atomic_exchange(&h->failures, 0), atomic_exchange(&h->resets, 0));
    if (old == HEALTH_UNREACHABLE)
        diag_error("relay: %s reachable again after %s", h->what, said);
    else
        diag_error("relay: %s: encrypted channels open again after %s", h->what, said);
}

void health_client_reset(struct relay_health *h)
{
    atomic_fetch_add_explicit(&h->resets, 1, memory_order_relaxed);
}

void health_final(struct relay_health *h)
{
    int state = atomic_load(&h->state);
    if (state == HEALTH_OK)
        return;
    char said[96];
    counts(said, sizeof said, atomic_load(&h->failures), atomic_load(&h->resets));
    if (state == HEALTH_UNREACHABLE)
        diag_error("relay: %s still unreachable at exit: %s", h->what, said);
    else
        diag_error("relay: %s: encrypted channels still failing at exit: %s", h->what, said);
}
