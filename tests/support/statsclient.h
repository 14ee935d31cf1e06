/* SPDX-License-Identifier: MIT */
/*
 * Clients of a server's stats endpoint for tests: a storm of queries at
 * once, counted by what each got, and what a process holds of its
 * descriptors.  Linux (Unix-domain sockets, /proc).
 */
#ifndef IOCP_STATSCLIENT_H
#define IOCP_STATSCLIENT_H

#include <dirent.h>
#include <stdlib.h>
#include <sys/time.h>
#include <sys/un.h>

#include "testnet.h"

/* A blocking connection to the endpoint at path, or -1 with errno set. */
static inline int stats_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path) {
        close(fd);
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* One request to the endpoint at path and its whole answer (malloc'd; ""
 * when there was none within timeout_ms). */
static inline char *stats_ask(const char *path, const char *request, unsigned timeout_ms)
{
    size_t len = 0;
    char *out = calloc(1, 1);
    int fd = stats_connect(path);
    if (fd < 0 || !tn_write_all(fd, request, strlen(request))) {
        if (fd >= 0)
            close(fd);
        return out;
    }
    uint64_t end = tn_now_ms() + timeout_ms;
    while (tn_now_ms() < end) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        char buf[65536];
        ssize_t k = read(fd, buf, sizeof buf);
        if (k <= 0)
            break;
        out = realloc(out, len + (size_t)k + 1);
        memcpy(out + len, buf, (size_t)k);
        len += (size_t)k;
        out[len] = '\0';
    }
    close(fd);
    return out;
}

/* A number from a JSON answer ("key":N), or -1. */
static inline long long stats_json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = json ? strstr(json, pat) : NULL;
    return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

/* Wait until the server's JSON report has key == want; whether it did. */
static inline bool stats_wait_for(const char *path, const char *key, long long want,
                                  unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (tn_now_ms() < end) {
        char *json = stats_ask(path, "json\n", 5000);
        bool ok = stats_json_number(json, key) == want;
        free(json);
        if (ok)
            return true;
        usleep(50000);
    }
    return false;
}

/* Ask request until its answer holds want, within timeout_ms; the answer
 * last read (malloc'd), which holds want unless the time ran out. */
static inline char *stats_ask_until(const char *path, const char *request, const char *want,
                                    unsigned timeout_ms)
{
    char *answer = NULL;
    for (uint64_t end = tn_now_ms() + timeout_ms;;) {
        free(answer);
        answer = stats_ask(path, request, 5000);
        if (strstr(answer, want) || tn_now_ms() >= end)
            return answer;
        usleep(20000);
    }
}

/* What a storm of queries got, one connection each. */
struct storm {
    int answered; /* a whole report */
    int refused;  /* an "error: " line */
    int failed;   /* no connection, or nothing before the close */
};

/* n clients that connect to the endpoint at once, each sending its request
 * right away (as `iocptool stats` does), then read their answers. */
static inline struct storm stats_storm(const char *ep, int n)
{
    struct storm r = {0, 0, 0};
    int *fds = calloc((size_t)n, sizeof *fds);
    char **got = calloc((size_t)n, sizeof *got);
    size_t *len = calloc((size_t)n, sizeof *len);
    for (int i = 0; i < n; i++) {
        /* Bounded: a connect waits while the endpoint's backlog is full. */
        fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = {.tv_sec = 10};
        setsockopt(fds[i], SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        memcpy(sa.sun_path, ep, strlen(ep) + 1);
        if (connect(fds[i], (struct sockaddr *)&sa, sizeof sa) < 0 ||
            !tn_write_all(fds[i], i % 2 ? "stats\n" : "json\n", i % 2 ? 6 : 5)) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    /* Every answer up to its close. */
    uint64_t end = tn_now_ms() + 30000;
    int open = 0;
    for (int i = 0; i < n; i++)
        open += fds[i] >= 0;
    while (open > 0 && tn_now_ms() < end) {
        for (int i = 0; i < n; i++) {
            if (fds[i] < 0)
                continue;
            char buf[65536];
            ssize_t k = recv(fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (k < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (k > 0) {
                got[i] = realloc(got[i], len[i] + (size_t)k + 1);
                memcpy(got[i] + len[i], buf, (size_t)k);
                len[i] += (size_t)k;
                got[i][len[i]] = '\0';
                continue;
            }
            close(fds[i]); /* the endpoint's close, or a reset */
            fds[i] = -1;
            open--;
        }
        struct pollfd none = {.fd = -1};
        poll(&none, 0, 10);
    }
    for (int i = 0; i < n; i++) {
        const char *a = got[i] ? got[i] : "";
        bool whole = len[i] > 0 && a[len[i] - 1] == '\n';
        if (whole && (a[0] == '{' || !strncmp(a, "iocptool ", 9)))
            r.answered++;
        else if (!strncmp(a, "error: ", 7))
            r.refused++;
        else
            r.failed++;
        if (fds[i] >= 0)
            close(fds[i]);
        free(got[i]);
    }
    free(fds);
    free(got);
    free(len);
    return r;
}

/* How many of the descriptors below limit process pid has open (it may
 * have inherited some above). */
static inline int proc_fds_below(pid_t pid, int limit)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL)
        n += ent->d_name[0] != '.' && atoi(ent->d_name) < limit;
    closedir(d);
    return n;
}

#endif /* IOCP_STATSCLIENT_H */
