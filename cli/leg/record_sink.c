/* SPDX-License-Identifier: MIT */
/*
 * record_sink.h: two buffers, a mutex, a condition and a writer thread.
 * The file is written with write() on a descriptor, not through stdio: a
 * writer stuck on a pipe nobody reads must leave nothing for exit() to
 * flush (the flush would block the exit on that same pipe).
 */
#include "record_sink.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _WIN32
#include <io.h>
#endif
#ifndef O_BINARY
#define O_BINARY 0
#endif

struct record_sink {
    pthread_mutex_t lock;
    pthread_cond_t more; /* the writer: records came, or the end */
    pthread_cond_t done; /* the closer: the writer has finished */
    unsigned char *fill, *spare; /* workers append to fill; the writer owns spare */
    size_t used, cap;
    unsigned pending;     /* records in fill */
    bool closing, finished;
    int fd;
    bool is_stdout;
    struct record_out out; /* the writer's */
    record_emit_fn emit;
    void *ctx;
    stats_counter_t *dropped;
    pthread_t thread;
};

/* Records are stored as a native size_t length, then the bytes, padded to
 * the length's alignment so that the next length is aligned. */
#define REC_ALIGN sizeof(size_t)
static size_t rec_room(size_t len)
{
    return sizeof(size_t) + (len + REC_ALIGN - 1) / REC_ALIGN * REC_ALIGN;
}

void record_out_put(struct record_out *o, const void *data, size_t len)
{
    if (o->failed)
        return;
    if (o->cap - o->len < len) {
        size_t cap = o->cap ? o->cap : 1u << 16;
        while (cap - o->len < len)
            cap *= 2;
        unsigned char *n = realloc(o->buf, cap);
        if (!n) {
            o->failed = true;
            return;
        }
        o->buf = n;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, data, len);
    o->len += len;
}

/* All of it, or until the file refuses (then the rest is lost). */
static void write_all(int fd, const unsigned char *p, size_t len)
{
    while (len) {
        ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : (unsigned)len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static void *writer(void *arg)
{
    struct record_sink *k = arg;
    pthread_mutex_lock(&k->lock);
    for (;;) {
        while (!k->used && !k->closing)
            pthread_cond_wait(&k->more, &k->lock);
        if (!k->used && k->closing)
            break;
        unsigned char *batch = k->fill;
        size_t len = k->used;
        k->fill = k->spare;
        k->spare = batch;
        k->used = 0;
        k->pending = 0;
        pthread_mutex_unlock(&k->lock);
        k->out.len = 0;
        k->out.failed = false;
        for (size_t off = 0; off < len;) {
            size_t n;
            memcpy(&n, batch + off, sizeof n);
            k->emit(k->ctx, batch + off + sizeof n, n, &k->out);
            off += rec_room(n);
        }
        write_all(k->fd, k->out.buf, k->out.len);
        pthread_mutex_lock(&k->lock);
    }
    k->finished = true;
    pthread_cond_signal(&k->done);
    pthread_mutex_unlock(&k->lock);
    return NULL;
}

struct record_sink *record_sink_open(const char *path, size_t capacity, record_emit_fn emit,
                                     void *ctx, stats_counter_t *dropped)
{
    struct record_sink *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->cap = capacity;
    k->fill = malloc(capacity);
    k->spare = malloc(capacity);
    k->emit = emit;
    k->ctx = ctx;
    k->dropped = dropped;
    k->is_stdout = strcmp(path, "-") == 0;
    errno = 0;
    k->fd = k->is_stdout ? 1 : open(path, O_WRONLY | O_CREAT | O_TRUNC | O_BINARY, 0644);
#ifdef _WIN32
    if (k->is_stdout)
        _setmode(1, _O_BINARY);
#endif
    if (!k->fill || !k->spare || k->fd < 0) {
        int saved = errno ? errno : ENOMEM;
        if (k->fd >= 0 && !k->is_stdout)
            close(k->fd);
        free(k->fill);
        free(k->spare);
        free(k);
        errno = saved;
        return NULL;
    }
    pthread_mutex_init(&k->lock, NULL);
    pthread_cond_init(&k->more, NULL);
    pthread_cond_init(&k->done, NULL);
    int rc = pthread_create(&k->thread, NULL, writer, k);
    if (rc != 0) {
        if (!k->is_stdout)
            close(k->fd);
        free(k->fill);
        free(k->spare);
        free(k);
        errno = rc;
        return NULL;
    }
    return k;
}

void record_sink_header(struct record_sink *k, const void *data, size_t len)
{
    /* Before any record: the writer has nothing yet, so the file is ours. */
    pthread_mutex_lock(&k->lock);
    write_all(k->fd, data, len);
    pthread_mutex_unlock(&k->lock);
}

bool record_sink_put(struct record_sink *k, const void *a, size_t alen, const void *b, size_t blen)
{
    size_t n = alen + blen, room = rec_room(n);
    pthread_mutex_lock(&k->lock);
    if (k->closing || room > k->cap - k->used) {
        pthread_mutex_unlock(&k->lock);
        stats_counter_add(k->dropped, 1);
        return false;
    }
    unsigned char *at = k->fill + k->used;
    memcpy(at, &n, sizeof n);
    memcpy(at + sizeof n, a, alen);
    if (blen)
        memcpy(at + sizeof n + alen, b, blen);
    bool wake = k->used == 0;
    k->used += room;
    k->pending++;
    pthread_mutex_unlock(&k->lock);
    /* The writer sleeps only on an empty buffer: one wake-up per batch. */
    if (wake)
        pthread_cond_signal(&k->more);
    return true;
}

/* Sinks whose writer is stuck: kept here, so that they count as in use
 * until the exit (a leak checker would report them otherwise). */
static struct record_sink *stuck[4];

void record_sink_close(struct record_sink *k, unsigned wait_ms)
{
    if (!k)
        return;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&k->lock);
    k->closing = true;
    pthread_cond_signal(&k->more);
    while (!k->finished)
        if (pthread_cond_timedwait(&k->done, &k->lock, &until) == ETIMEDOUT)
            break;
    if (!k->finished) {
        /* The file takes nothing (a pipe nobody reads): what is still
         * buffered is lost; the thread and its buffers go with the exit. */
        stats_counter_add(k->dropped, k->pending);
        pthread_mutex_unlock(&k->lock);
        for (unsigned i = 0; i < sizeof stuck / sizeof stuck[0]; i++)
            if (!stuck[i]) {
                stuck[i] = k;
                break;
            }
        return;
    }
    pthread_mutex_unlock(&k->lock);
    pthread_join(k->thread, NULL);
    if (!k->is_stdout)
        close(k->fd);
    free(k->out.buf);
    pthread_mutex_destroy(&k->lock);
    pthread_cond_destroy(&k->more);
    pthread_cond_destroy(&k->done);
    free(k->fill);
    free(k->spare);
    free(k);
}
