/* SPDX-License-Identifier: MIT */
/*
 * stats_sections.h: fixed tables of sections and counters, filled before
 * the endpoint's thread starts and only read after, so the reports read
 * them without a lock.
 */
#include "stats_sections.h"

static struct stats_section sections[STATS_SECTIONS_MAX];
static unsigned nsections;

static struct {
    const char *name, *help;
    stats_counter_t *c;
} counters[STATS_COUNTERS_MAX];
static unsigned ncounters;

void stats_section_add(const struct stats_section *s)
{
    if (nsections < STATS_SECTIONS_MAX)
        sections[nsections++] = *s;
}

void stats_counter_register(const char *name, const char *help, stats_counter_t *c)
{
    for (unsigned i = 0; i < ncounters; i++)
        if (counters[i].c == c)
            return;
    if (ncounters < STATS_COUNTERS_MAX)
        counters[ncounters++] = (__typeof__(counters[0])){name, help, c};
}

void stats_sections_text(struct json_buf *b)
{
    for (unsigned i = 0; i < nsections; i++)
        if (sections[i].text)
            sections[i].text(sections[i].arg, b);
}

void stats_sections_json(struct json_buf *b)
{
    for (unsigned i = 0; i < nsections; i++)
        if (sections[i].json)
            sections[i].json(sections[i].arg, b);
    if (!ncounters)
        return;
    json_printf(b, ",\"counters\":{");
    for (unsigned i = 0; i < ncounters; i++)
        json_printf(b, "%s\"%s\":%llu", i ? "," : "", counters[i].name,
                    (unsigned long long)stats_counter_get(counters[i].c));
    json_printf(b, "}");
}

void stats_sections_prometheus(struct json_buf *b)
{
    for (unsigned i = 0; i < nsections; i++)
        if (sections[i].prometheus)
            sections[i].prometheus(sections[i].arg, b);
    for (unsigned i = 0; i < ncounters; i++) {
        json_printf(b, "# HELP iocptool_%s_total %s\n# TYPE iocptool_%s_total counter\n",
                    counters[i].name, counters[i].help, counters[i].name);
        json_printf(b, "iocptool_%s_total %llu\n", counters[i].name,
                    (unsigned long long)stats_counter_get(counters[i].c));
    }
}
