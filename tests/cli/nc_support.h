/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the listen/connect suites: start iocptool (or a peer program
 * such as ncat) with an argument list, read exact bytes or EOF with
 * deadlines, tell "nothing happened" from "EOF", accept with a deadline,
 * and move large patterned streams both ways at once.
 */
#ifndef IOCP_NC_SUPPORT_H
#define IOCP_NC_SUPPORT_H

#include <criterion/criterion.h>

#include <dirent.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "proc.h"

/* Start any program with pipes on stdin/stdout/stderr, and fd3 (when not
 * -1) as its descriptor 3; reaped by proc_cleanup_all like iocptool. */
static inline bool nc_spawn_fd3(struct proc *p, int stdin_fd, int fd3, char *const argv[])
{
    int in[2] = {-1, -1}, out[2], err[2];
    memset(p, 0, sizeof *p);
    p->status = -1;
    if ((stdin_fd < 0 && pipe2(in, O_CLOEXEC) < 0) || pipe2(out, O_CLOEXEC) < 0 ||
        pipe2(err, O_CLOEXEC) < 0)
        return false;
    p->pid = fork();
    if (p->pid == 0) {
        dup2(stdin_fd >= 0 ? stdin_fd : in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        /* A descriptor dup2 makes is not close-on-exec; one already at 3
         * loses the flag by hand. */
        if (fd3 == 3)
            fcntl(3, F_SETFD, 0);
        else if (fd3 >= 0)
            dup2(fd3, 3);
        execvp(argv[0], argv);
        _exit(127);
    }
    if (stdin_fd < 0)
        close(in[0]);
    close(out[1]);
    close(err[1]);
    p->in = stdin_fd < 0 ? in[1] : -1;
    p->out = out[0];
    p->err = err[0];
    p->slot = -1;
    for (int i = 0; i < PROC_MAX; i++)
        if (!proc_table[i].pid) {
            proc_table[i] = (struct proc_record){p->pid, false, {p->in, p->out, p->err}};
            p->slot = i;
            break;
        }
    return p->pid > 0;
}

static inline bool nc_spawn(struct proc *p, int stdin_fd, char *const argv[])
{
    return nc_spawn_fd3(p, stdin_fd, -1, argv);
}

static inline bool nc_proc_exited(void *arg)
{
    return proc_wait(arg, 0) >= 0;
}

/*
 * Wait until process p (or a child of it) listens on 127.0.0.1:port, for a
 * program started on a port the test chose (tn_server_port()).  False when
 * p exits, when the time runs out, or when another process has held the
 * port for a second: then p lost the port to a server of another test, and
 * the caller starts it again on another.
 */
static inline bool nc_wait_own_listener(struct proc *p, uint16_t port, unsigned ms)
{
    return tn_wait_listener_of(p->pid, port, ms, nc_proc_exited, p);
}

/* iocptool with a NULL-terminated list of arguments (no argv[0]). */
static inline bool nc_start(struct proc *p, int stdin_fd, const char *const *args)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    return proc_startv(p, stdin_fd, argv);
}

/* haproxy in the foreground (-db) with the configuration cfg, written to
 * the file path first, and the listening socket lfd as its descriptor 3: a
 * frontend that binds "fd@3" accepts there.  The test made the listener on
 * a port the kernel chose, so no other test can hold that port, and
 * clients may connect at once (they wait in the backlog until haproxy
 * accepts).  lfd is closed here. */
static inline void nc_spawn_haproxy(struct proc *p, const char *path, const char *cfg, int lfd)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    fputs(cfg, f);
    fclose(f);
    char *argv[] = {"haproxy", "-db", "-f", (char *)path, NULL};
    cr_assert(nc_spawn_fd3(p, -1, lfd, argv), "cannot start haproxy");
    close(lfd);
}

/* In a build without OpenSSL, iocptool with these arguments (a TLS option)
 * exits 2 and says why. */
static inline void nc_expect_refused_without_tls(const char *const *args)
{
    struct proc p;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_start(&p, devnull, args));
    close(devnull);
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect(strstr(p.errbuf, "built without TLS"), "%s", p.errbuf);
    proc_cleanup_all();
}

/* Read exactly strlen(want) bytes and compare. */
static inline bool nc_read_is(int fd, const char *want, unsigned timeout_ms)
{
    char buf[512];
    size_t len = strlen(want);
    if (len >= sizeof buf)
        return false;
    size_t got = tn_read_full(fd, buf, len, timeout_ms);
    buf[got] = '\0';
    if (got != len || memcmp(buf, want, len) != 0) {
        cr_log_error("read \"%s\", wanted \"%s\"", buf, want);
        return false;
    }
    return true;
}

/* 1: EOF came; 2: the connection was reset; 0: nothing at all within
 * timeout_ms; -1: data came, or another error. */
static inline int nc_eof_state(int fd, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            return 0;
        int r = poll(&pfd, 1, (int)(end - now));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return 0;
        char c;
        ssize_t n = read(fd, &c, 1);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n == 0)
            return 1;
        if (n < 0 && errno == ECONNRESET)
            return 2;
        if (n > 0)
            cr_log_error("unexpected byte 0x%02x", (unsigned char)c);
        return -1;
    }
}

static inline bool nc_eof_within(int fd, unsigned timeout_ms)
{
    return nc_eof_state(fd, timeout_ms) == 1;
}

static inline bool nc_quiet_for(int fd, unsigned ms)
{
    return nc_eof_state(fd, ms) == 0;
}

/* Accept one connection on a listening socket within timeout_ms, or -1. */
static inline int nc_accept(int lfd, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    if (poll(&pfd, 1, (int)timeout_ms) <= 0)
        return -1;
    int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Start iocptool ARGS (a server: listen, echo, relay, ...) and return the
 * port of its "listening on" line (asserts). */
static inline uint16_t nc_listen(struct proc *p, const char *const *args)
{
    cr_assert(nc_start(p, -1, args), "cannot start iocptool");
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* ---- streams: a patterned byte stream, checked as it arrives ---- */

#define NC_PERIOD ((size_t)1048573) /* prime: a shifted stream never matches */

static inline const unsigned char *nc_pattern(uint64_t seed)
{
    /* Two periods back to back, so any offset has NC_PERIOD bytes after it. */
    unsigned char *p = malloc(2 * NC_PERIOD);
    tn_pattern(p, NC_PERIOD, seed, 0);
    memcpy(p + NC_PERIOD, p, NC_PERIOD);
    return p;
}

/* One direction: written to wfd, read back from rfd. */
struct nc_flow {
    int wfd, rfd;
    const unsigned char *pat;
    size_t total, written, got;
    bool bad, eof, closed_w;
    int after; /* >= 0: end the writer only once that flow has ended */
};

static inline void nc_flow_init(struct nc_flow *f, int wfd, int rfd, size_t total, uint64_t seed)
{
    memset(f, 0, sizeof *f);
    f->wfd = wfd;
    f->rfd = rfd;
    f->total = total;
    f->pat = nc_pattern(seed);
    f->after = -1;
    tn_set_nonblock(wfd, true);
}

/*
 * nc_pump(flows, n, half_close, timeout_ms):
 * Move every flow until each has delivered `total` bytes and hit EOF.
 * When half_close is set, a writer that is done is shut down (a socket) or
 * closed (a pipe); the caller owns what it closes otherwise.  Returns true
 * when every flow arrived byte-exact and ended in EOF.
 */
static inline bool nc_pump(struct nc_flow *flows, int n, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    unsigned char *buf = malloc(1 << 16);
    /* A reader that went away is a failed flow, not a dead test. */
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        struct pollfd pfd[8];
        int map[8], k = 0;
        bool done = true;
        for (int i = 0; i < n; i++) {
            struct nc_flow *f = &flows[i];
            if (!f->closed_w && f->written == f->total && (f->after < 0 || flows[f->after].eof)) {
                struct stat st;
                if (fstat(f->wfd, &st) == 0 && S_ISSOCK(st.st_mode))
                    shutdown(f->wfd, SHUT_WR);
                else
                    close(f->wfd);
                f->closed_w = true;
            }
            if (!f->closed_w && f->written < f->total) {
                pfd[k] = (struct pollfd){.fd = f->wfd, .events = POLLOUT};
                map[k++] = i;
            }
            if (!f->eof) {
                pfd[k] = (struct pollfd){.fd = f->rfd, .events = POLLIN};
                map[k++] = 100 + i;
            }
            if (!f->eof || !f->closed_w)
                done = false;
        }
        if (done)
            break;
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        int r = poll(pfd, (nfds_t)k, (int)(end - now));
        if (r < 0 && errno != EINTR)
            break;
        for (int j = 0; j < k && r > 0; j++) {
            if (!pfd[j].revents)
                continue;
            struct nc_flow *f = &flows[map[j] % 100];
            if (map[j] < 100) {
                size_t off = f->written % NC_PERIOD;
                size_t len = f->total - f->written;
                if (len > 65536)
                    len = 65536;
                ssize_t w = write(f->wfd, f->pat + off, len);
                if (w > 0)
                    f->written += (size_t)w;
                else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                    f->bad = true;
                    f->written = f->total;
                }
            } else {
                ssize_t got = read(f->rfd, buf, 1 << 16);
                if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                    f->eof = true;
                } else if (got > 0) {
                    size_t off = f->got % NC_PERIOD;
                    if (f->got + (size_t)got > f->total || memcmp(buf, f->pat + off, (size_t)got))
                        f->bad = true;
                    f->got += (size_t)got;
                }
            }
        }
    }
    free(buf);
    bool ok = true;
    for (int i = 0; i < n; i++) {
        struct nc_flow *f = &flows[i];
        if (f->bad || !f->eof || f->got != f->total) {
            cr_log_error("flow %d: %zu of %zu bytes written, %zu read, %s%s", i, f->written,
                         f->total, f->got, f->bad ? "wrong bytes, " : "",
                         f->eof ? "EOF" : "no EOF");
            ok = false;
        }
        free((void *)f->pat);
    }
    return ok;
}

/* ---- a directory of the suite's own ---- */

/* Make /tmp/iocptool-NAME-XXXXXX into dir (at least 64 bytes) and make it
 * XDG_RUNTIME_DIR, so that the stats endpoints and files of the suite's
 * servers land where no suite running beside it looks; ignore SIGPIPE (a
 * peer that goes away must fail a test, not kill it).  For a suite's
 * .init. */
static inline void nc_dir_init(char *dir, size_t size, const char *name)
{
    snprintf(dir, size, "/tmp/iocptool-%s-XXXXXX", name);
    cr_assert_not_null(mkdtemp(dir), "mkdtemp %s", dir);
    setenv("XDG_RUNTIME_DIR", dir, 1);
    signal(SIGPIPE, SIG_IGN);
}

/* Remove path and everything under it. */
static inline void nc_remove_tree(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
            continue;
        char sub[512];
        if (snprintf(sub, sizeof sub, "%s/%s", path, ent->d_name) < (int)sizeof sub)
            nc_remove_tree(sub);
    }
    closedir(d);
    rmdir(path);
}

/* Stop what the test started, then remove the directory of nc_dir_init
 * (nothing if it was never made).  For a suite's .fini. */
static inline void nc_dir_fini(char *dir)
{
    proc_cleanup_all();
    if (dir[0])
        nc_remove_tree(dir);
    dir[0] = '\0';
}

#endif /* IOCP_NC_SUPPORT_H */
