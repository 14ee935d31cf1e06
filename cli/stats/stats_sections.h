/* SPDX-License-Identifier: MIT */
/*
 * Sections that a subcommand adds to its stats reports (the relay's ports
 * and targets): each has a writer for the table, one for the JSON report
 * (it appends ,"key":value members to the top object) and one for the
 * Prometheus exposition.  They run on the stats endpoint's thread, so they
 * read only what may be read from any thread (atomics, what does not
 * change once the run started).
 */
#ifndef IOCPTOOL_STATS_SECTIONS_H
#define IOCPTOOL_STATS_SECTIONS_H

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

/* Each report's place for the sections. */
void stats_sections_text(struct json_buf *b);
void stats_sections_json(struct json_buf *b);
void stats_sections_prometheus(struct json_buf *b);

#endif /* IOCPTOOL_STATS_SECTIONS_H */
