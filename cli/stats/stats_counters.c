/* SPDX-License-Identifier: MIT */
/* stats_counters.h: a fixed table, filled before the engine starts and only
 * read afterwards, so the reports read it without a lock. */
#include "stats_counters.h"

static struct {
    const char *name, *help;
    stats_counter_t *c;
} table[STATS_COUNTERS_MAX];
static unsigned ncounters;

void stats_counter_register(const char *name, const char *help, stats_counter_t *c)
{
    for (unsigned i = 0; i < ncounters; i++)
        if (table[i].c == c)
            return;
    if (ncounters < STATS_COUNTERS_MAX)
        table[ncounters++] = (__typeof__(table[0])){name, help, c};
}

void stats_counters_json(struct json_buf *b)
{
    if (!ncounters)
        return;
    json_printf(b, ",\"counters\":{");
    for (unsigned i = 0; i < ncounters; i++)
        json_printf(b, "%s\"%s\":%llu", i ? "," : "", table[i].name,
                    (unsigned long long)stats_counter_get(table[i].c));
    json_printf(b, "}");
}

void stats_counters_prometheus(struct json_buf *b)
{
    for (unsigned i = 0; i < ncounters; i++) {
        json_printf(b, "# HELP iocptool_%s_total %s\n# TYPE iocptool_%s_total counter\n",
                    table[i].name, table[i].help, table[i].name);
        json_printf(b, "iocptool_%s_total %llu\n", table[i].name,
                    (unsigned long long)stats_counter_get(table[i].c));
    }
}
