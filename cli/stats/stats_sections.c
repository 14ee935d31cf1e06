/* SPDX-License-Identifier: MIT */
/*
 * stats_sections.h: the list of sections, filled before the endpoint's
 * thread starts and only read after.
 */
#include "stats_sections.h"

static struct stats_section sections[STATS_SECTIONS_MAX];
static unsigned nsections;

void stats_section_add(const struct stats_section *s)
{
    if (nsections < STATS_SECTIONS_MAX)
        sections[nsections++] = *s;
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
}

void stats_sections_prometheus(struct json_buf *b)
{
    for (unsigned i = 0; i < nsections; i++)
        if (sections[i].prometheus)
            sections[i].prometheus(sections[i].arg, b);
}
