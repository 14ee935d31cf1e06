/* SPDX-License-Identifier: MIT */
/*
 * Counters that a subcommand adds to its stats reports (the relay's
 * drained connections, the access log's dropped lines, the capture's
 * dropped packets): registered once before the run, bumped from any
 * thread, shown in the JSON report under "counters" and in the Prometheus
 * report as iocptool_NAME_total.
 */
#ifndef IOCPTOOL_STATS_COUNTERS_H
#define IOCPTOOL_STATS_COUNTERS_H

#include <stdatomic.h>
#include <stdint.h>

#include "json.h"

typedef _Atomic uint64_t stats_counter_t;

#define STATS_COUNTERS_MAX 16

/* Show *c as NAME (letters, digits, '_') with this help text.  Before the
 * engine starts; the counter lives as long as the process.  Registering a
 * counter twice shows it once. */
void stats_counter_register(const char *name, const char *help, stats_counter_t *c);

static inline void stats_counter_add(stats_counter_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t stats_counter_get(stats_counter_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* ,"counters":{...} (nothing when none is registered). */
void stats_counters_json(struct json_buf *b);

/* HELP, TYPE and the sample of each, as iocptool_NAME_total. */
void stats_counters_prometheus(struct json_buf *b);

#endif /* IOCPTOOL_STATS_COUNTERS_H */
