/* SPDX-License-Identifier: MIT */
/*
 * What the relay operations suites share: a short echo exchange through a
 * relay as a client makes it (its size derived from the client's port, so
 * that the access log's byte counts can be checked line by line), clients
 * hammering a port from threads, and a strict JSON checker for log lines.
 */
#ifndef IOCP_RELAY_OPS_SUPPORT_H
#define IOCP_RELAY_OPS_SUPPORT_H

#include <ctype.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "proc.h"

/* Bytes a client on local port lport sends (and gets back from an echo). */
static inline size_t ro_size_of(uint16_t lport)
{
    return 1 + lport % 1499u;
}

/* How one exchange went. */
enum ro_result { RO_OK, RO_REFUSED, RO_RESET, RO_SHORT, RO_WRONG, RO_OTHER };

/*
 * ro_exchange(port, timeout_ms):
 * Connect to 127.0.0.1:port, send ro_size_of(our port) patterned bytes,
 * half-close, and read them back until EOF.
 */
static inline enum ro_result ro_exchange(uint16_t port, unsigned timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return RO_OTHER;
    struct sockaddr_in sa = tn_loopback(port);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int e = errno;
        close(fd);
        return e == ECONNREFUSED ? RO_REFUSED : RO_OTHER;
    }
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    getsockname(fd, (struct sockaddr *)&me, &ml);
    size_t n = ro_size_of(ntohs(me.sin_port));
    unsigned char out[1500], in[1501];
    tn_pattern(out, n, ntohs(me.sin_port), 0);
    enum ro_result r = RO_OK;
    if (!tn_write_all(fd, out, n) || shutdown(fd, SHUT_WR) != 0) {
        r = errno == ECONNRESET || errno == EPIPE ? RO_RESET : RO_OTHER;
    } else {
        size_t got = 0;
        uint64_t end = tn_now_ms() + timeout_ms;
        for (;;) {
            uint64_t now = tn_now_ms();
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0) {
                r = RO_SHORT;
                break;
            }
            ssize_t k = read(fd, in + got, sizeof in - got);
            if (k == 0)
                break;
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                r = errno == ECONNRESET ? RO_RESET : RO_OTHER;
                break;
            }
            got += (size_t)k;
            if (got > n)
                break;
        }
        if (r == RO_OK && (got != n || memcmp(in, out, n) != 0))
            r = got == n ? RO_WRONG : RO_SHORT;
    }
    close(fd);
    return r;
}

/* How a connection ends: 1 EOF, 2 reset, 0 nothing within timeout_ms,
 * -1 data came instead. */
static inline int ro_end_state(int fd, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
            return 0;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return n == 0 ? 1 : n < 0 && errno == ECONNRESET ? 2 : -1;
    }
}

/* Clients in threads, each making exchanges one after the other until
 * told to stop or until `limit` exchanges were made in all. */
struct ro_hammer {
    uint16_t port;
    long limit; /* 0: until stop */
    atomic_bool stop;
    atomic_long started, done, failed[RO_OTHER + 1];
    pthread_t threads[8];
    int nthreads;
};

static inline void *ro_hammer_thread(void *arg)
{
    struct ro_hammer *h = arg;
    while (!atomic_load(&h->stop)) {
        long k = atomic_fetch_add(&h->started, 1);
        if (h->limit && k >= h->limit)
            break;
        enum ro_result r = ro_exchange(h->port, 10000);
        atomic_fetch_add(&h->failed[r], 1);
        atomic_fetch_add(&h->done, 1);
    }
    return NULL;
}

static inline void ro_hammer_start(struct ro_hammer *h, uint16_t port, int threads, long limit)
{
    memset(h, 0, sizeof *h);
    h->port = port;
    h->limit = limit;
    h->nthreads = threads;
    for (int i = 0; i < threads; i++)
        pthread_create(&h->threads[i], NULL, ro_hammer_thread, h);
}

/* Wait until `count` exchanges are done (bounded); true when they are. */
static inline bool ro_hammer_wait(struct ro_hammer *h, long count, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (atomic_load(&h->done) < count) {
        if (tn_now_ms() >= end)
            return false;
        usleep(2000);
    }
    return true;
}

static inline void ro_hammer_stop(struct ro_hammer *h)
{
    atomic_store(&h->stop, true);
    for (int i = 0; i < h->nthreads; i++)
        pthread_join(h->threads[i], NULL);
}

/* ---- a strict JSON checker, enough to validate one log line ---- */

static inline void rj_ws(const char **p)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
}

static inline bool rj_value(const char **p, int depth);

static inline bool rj_string(const char **p)
{
    if (**p != '"')
        return false;
    for ((*p)++; **p != '"'; (*p)++) {
        unsigned char c = (unsigned char)**p;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            (*p)++;
            if (**p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)(*p)[i]))
                        return false;
                *p += 4;
            } else if (!strchr("\"\\/bfnrt", **p) || !**p) {
                return false;
            }
        }
    }
    (*p)++;
    return true;
}

static inline bool rj_number(const char **p)
{
    const char *s = *p;
    if (*s == '-')
        s++;
    if (*s == '0')
        s++;
    else if (*s >= '1' && *s <= '9')
        while (isdigit((unsigned char)*s))
            s++;
    else
        return false;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    if (*s == 'e' || *s == 'E') {
        s++;
        if (*s == '+' || *s == '-')
            s++;
        if (!isdigit((unsigned char)*s))
            return false;
        while (isdigit((unsigned char)*s))
            s++;
    }
    *p = s;
    return true;
}

static inline bool rj_value(const char **p, int depth)
{
    if (depth > 16)
        return false;
    rj_ws(p);
    char c = **p;
    if (c == '{' || c == '[') {
        char close = c == '{' ? '}' : ']';
        (*p)++;
        rj_ws(p);
        if (**p == close) {
            (*p)++;
            return true;
        }
        for (;;) {
            if (c == '{') {
                rj_ws(p);
                if (!rj_string(p))
                    return false;
                rj_ws(p);
                if (**p != ':')
                    return false;
                (*p)++;
            }
            if (!rj_value(p, depth + 1))
                return false;
            rj_ws(p);
            if (**p == ',') {
                (*p)++;
                continue;
            }
            if (**p != close)
                return false;
            (*p)++;
            return true;
        }
    }
    if (c == '"')
        return rj_string(p);
    if (!strncmp(*p, "true", 4) || !strncmp(*p, "null", 4)) {
        *p += 4;
        return true;
    }
    if (!strncmp(*p, "false", 5)) {
        *p += 5;
        return true;
    }
    return rj_number(p);
}

/* Whether line (NUL-terminated, no newline) is exactly one JSON object. */
static inline bool rj_valid_object(const char *line)
{
    const char *p = line;
    rj_ws(&p);
    if (*p != '{' || !rj_value(&p, 0))
        return false;
    rj_ws(&p);
    return *p == '\0';
}

/* The value of "key" in a flat object: a number, or -1. */
static inline long long rj_number_of(const char *line, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(line, pat);
    return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

/* The string value of "key" in a flat object into buf ("" if absent). */
static inline const char *rj_string_of(const char *line, const char *key, char *buf, size_t len)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *at = strstr(line, pat);
    buf[0] = '\0';
    if (!at)
        return buf;
    at += strlen(pat);
    size_t n = 0;
    while (at[n] && at[n] != '"' && n + 1 < len)
        n++;
    memcpy(buf, at, n);
    buf[n] = '\0';
    return buf;
}

/* The whole file as a NUL-terminated string (NULL when unreadable). */
static inline char *ro_slurp(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len, f)) > 0) {
        len += k;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }
    fclose(f);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

#endif /* IOCP_RELAY_OPS_SUPPORT_H */
