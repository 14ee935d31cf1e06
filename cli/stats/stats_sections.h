/* SPDX-License-Identifier: MIT */
/*
 * What a subcommand adds to its stats reports, in one place:
 *
 *  - sections (the relay's ports and targets, the datagram sockets): each
 *    has a writer for the table, one for the JSON report (it appends
 *    ,"key":value members to the top object) and one for the Prometheus
 *    exposition;
 *  - counters (the relay's drained and refused clients, the access log's
 *    lines, the capture's drops): a number bumped from any thread, shown
 *    in the JSON report under "counters" and in the Prometheus report as
 *    iocptool_NAME_total, after the sections.
 *
 * Both are added before the run starts and only read afterwards, on the
 * stats endpoint's thread, so the writers read only what may be read from
 * any thread (atomics, what does not change once the run started).
 */
#ifndef IOCPTOOL_STATS_SECTIONS_H
#define IOCPTOOL_STATS_SECTIONS_H

#include <stdatomic.h>
#include <stdint.h>

#include "json.h"

struct stats_section {
    void (*text)(void *arg, struct json_buf *b);
    void (*json)(void *arg, struct json_buf *b);
    void (*prometheus)(void *arg, struct json_buf *b);
    void *arg;
};

#define STATS_SECTIONS_MAX 4

/* Add a section (copied) before the stats endpoint starts. */
void stats_section_add(const struct stats_section *s);

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

/* Each report's place for what was added: the sections, then the
 * counters. */
void stats_sections_text(struct json_buf *b);
void stats_sections_json(struct json_buf *b);
void stats_sections_prometheus(struct json_buf *b);

#endif /* IOCPTOOL_STATS_SECTIONS_H */
