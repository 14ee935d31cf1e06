/* SPDX-License-Identifier: MIT */
/*
 * A file written by a thread of its own, fed records by the workers: what
 * the access log, the hex dump and the capture use, so that no worker ever
 * touches a file.
 *
 * Workers append records (a length and bytes) to the current buffer under
 * a mutex, a copy and nothing else; the writer thread swaps the buffer for
 * its empty one and hands each record to the sink's emit() outside the
 * lock.  A record that does not fit in what is left of the buffer is
 * dropped and counted: a slow disk or a stuck pipe costs records, never
 * the connections' pace.  Memory is bounded by two buffers.
 */
#ifndef IOCPTOOL_RECORD_SINK_H
#define IOCPTOOL_RECORD_SINK_H

#include <stdbool.h>
#include <stddef.h>

#include "stats_sections.h"

struct record_sink;

/* What emit() writes to: bytes collected for one write() of the batch. */
struct record_out {
    unsigned char *buf;
    size_t len, cap;
    bool failed; /* out of memory: the batch is cut short */
};
void record_out_put(struct record_out *o, const void *data, size_t len);

/* Turns one record into file bytes, on the writer thread. */
typedef void (*record_emit_fn)(void *ctx, const unsigned char *rec, size_t len,
                               struct record_out *out);

/*
 * record_sink_open(path, capacity, emit, ctx, dropped):
 * Open path for writing ("-": standard output), truncating it, and start
 * the writer.  capacity: bytes of records buffered (each of two buffers).
 * dropped counts the records dropped.  NULL when the file cannot be opened
 * or the thread not started (errno says why).
 */
struct record_sink *record_sink_open(const char *path, size_t capacity, record_emit_fn emit,
                                     void *ctx, stats_counter_t *dropped);

/* Write the header of the file now, before any record (pcapng's blocks). */
void record_sink_header(struct record_sink *k, const void *data, size_t len);

/*
 * record_sink_put(k, a, alen, b, blen):
 * Append one record made of two parts (a header and a payload; b may be
 * NULL).  false when it was dropped (no room).  Any thread.
 */
bool record_sink_put(struct record_sink *k, const void *a, size_t alen, const void *b, size_t blen);

/*
 * record_sink_close(k, wait_ms):
 * Write what is buffered and close the file, waiting at most wait_ms for
 * the writer (a pipe nobody reads must not hold the exit): past that, what
 * is left is counted as dropped and the thread is left to the exit.
 */
void record_sink_close(struct record_sink *k, unsigned wait_ms);

#endif /* IOCPTOOL_RECORD_SINK_H */
