/* SPDX-License-Identifier: MIT */
/*
 * Running the real iocptool from tests: spawn it with pipes on stdin,
 * stdout and stderr, read its "listening on ADDR PORT" line, feed and drain
 * it with deadlines, and reap it.  Every child started here is killed and
 * reaped by proc_cleanup_all(), which a suite's .fini calls, so a failing
 * test never leaves a process behind.  The cleanup keeps its own record of
 * each child (pid and descriptors), so a struct proc may live on a test's
 * stack.
 */
#ifndef IOCP_PROC_H
#define IOCP_PROC_H

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

#include "testnet.h"

#ifndef IOCPTOOL_PATH
#error "IOCPTOOL_PATH must name the iocptool binary under test"
#endif

#define PROC_MAX 64

struct proc {
    pid_t pid;
    int in;   /* write end of the child's stdin, -1 once closed */
    int out;  /* read end of the child's stdout */
    int err;  /* read end of the child's stderr */
    int status; /* exit status once reaped (-1 before; 128+N for signal N) */
    char errbuf[8192]; /* stderr collected so far */
    size_t errlen;
    int slot;   /* its record in proc_table */
};

/* What the cleanup needs, kept apart from the (possibly stack) struct proc. */
static struct proc_record {
    pid_t pid; /* 0: free */
    bool reaped;
    int fds[3];
} proc_table[PROC_MAX];

static inline void proc_forget_fd(struct proc *p, int fd)
{
    if (p->slot < 0)
        return;
    for (int i = 0; i < 3; i++)
        if (proc_table[p->slot].fds[i] == fd)
            proc_table[p->slot].fds[i] = -1;
}

/*
 * proc_start(p, stdin_fd, argv...):
 * Start IOCPTOOL_PATH with the NULL-terminated arguments.  stdin_fd >= 0
 * gives the child that descriptor as stdin (a file, /dev/null); -1 gives it a
 * pipe whose write end is p->in.  stdout and stderr are always pipes.
 */
static inline bool proc_startv(struct proc *p, int stdin_fd, char *const argv[])
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
        execv(IOCPTOOL_PATH, argv);
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

/* proc_start(p, stdin_fd, "listen", "0", NULL): argv[0] is added. */
static inline bool proc_start(struct proc *p, int stdin_fd, ...)
{
    char *argv[64];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    va_list ap;
    va_start(ap, stdin_fd);
    char *a;
    while (n < 63 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    return proc_startv(p, stdin_fd, argv);
}

/* Read what stderr has (without blocking past timeout_ms) into errbuf. */
static inline void proc_pump_err(struct proc *p, unsigned timeout_ms)
{
    struct pollfd pfd = {.fd = p->err, .events = POLLIN};
    if (p->err < 0 || poll(&pfd, 1, (int)timeout_ms) <= 0)
        return;
    ssize_t n = read(p->err, p->errbuf + p->errlen, sizeof p->errbuf - 1 - p->errlen);
    if (n > 0) {
        p->errlen += (size_t)n;
        p->errbuf[p->errlen] = '\0';
    } else if (n == 0) {
        proc_forget_fd(p, p->err);
        close(p->err);
        p->err = -1;
    }
}

/*
 * proc_listening(p, timeout_ms):
 * Wait for "listening on ADDR PORT" on stderr; the port, or 0 on time-out.
 */
static inline uint16_t proc_listening(struct proc *p, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (tn_now_ms() < end) {
        char *line = strstr(p->errbuf, "listening on ");
        if (line && strchr(line, '\n')) {
            char addr[128];
            unsigned port;
            if (sscanf(line, "listening on %127s %u", addr, &port) == 2)
                return (uint16_t)port;
        }
        if (p->err < 0)
            return 0;
        proc_pump_err(p, 50);
    }
    return 0;
}

/* Close the child's stdin (EOF on its input). */
static inline void proc_close_in(struct proc *p)
{
    if (p->in >= 0) {
        proc_forget_fd(p, p->in);
        close(p->in);
    }
    p->in = -1;
}

/*
 * A sanitizer build runs the tool several times slower, and on a loaded
 * machine starting it may take seconds: a deadline that is there to catch a
 * hang stretches by MINICRIT_TIMEOUT_SCALE, as the tests' own time-outs do.
 */
static inline uint64_t proc_scaled_ms(unsigned ms)
{
    const char *v = getenv("MINICRIT_TIMEOUT_SCALE");
    double scale = v ? atof(v) : 0;
    return scale > 1 ? (uint64_t)(ms * scale) : ms;
}

/* proc_wait() with its deadline on tn_now_ms()'s clock. */
static inline int proc_wait_until(struct proc *p, uint64_t end)
{
    for (;;) {
        if (p->status >= 0)
            return p->status;
        int st;
        pid_t r = waitpid(p->pid, &st, WNOHANG);
        if (r == p->pid) {
            p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            if (p->slot >= 0)
                proc_table[p->slot].reaped = true;
            while (p->err >= 0)
                proc_pump_err(p, 100);
            return p->status;
        }
        if (tn_now_ms() >= end)
            return -1;
        proc_pump_err(p, 10);
    }
}

/*
 * proc_wait(p, timeout_ms):
 * Wait for the child to exit, collecting stderr meanwhile.  Returns its exit
 * status (128+N after signal N), or -1 if it is still running at the
 * deadline (it keeps running).  The deadline is a bound on a hang and is
 * stretched in sanitizer runs (proc_scaled_ms).
 */
static inline int proc_wait(struct proc *p, unsigned timeout_ms)
{
    return proc_wait_until(p, tn_now_ms() + proc_scaled_ms(timeout_ms));
}

/* Whether the child is still running after ms, exactly: a test that says a
 * tool goes on has its own deadlines after this one (-q, -i), so this wait
 * is not stretched. */
static inline bool proc_still_running(struct proc *p, unsigned ms)
{
    return proc_wait_until(p, tn_now_ms() + ms) == -1;
}

/* Send sig and wait for the exit; -1 if it did not exit in time. */
static inline int proc_signal(struct proc *p, int sig, unsigned timeout_ms)
{
    if (p->status < 0)
        kill(p->pid, sig);
    return proc_wait(p, timeout_ms);
}

/* Kill (if needed), reap and close everything of every child started. */
static inline void proc_cleanup_all(void)
{
    for (int i = 0; i < PROC_MAX; i++) {
        struct proc_record *r = &proc_table[i];
        if (!r->pid)
            continue;
        if (!r->reaped) {
            kill(r->pid, SIGTERM);
            uint64_t end = tn_now_ms() + 2000;
            int st;
            while (waitpid(r->pid, &st, WNOHANG) == 0) {
                if (tn_now_ms() > end) {
                    kill(r->pid, SIGKILL);
                    waitpid(r->pid, &st, 0);
                    break;
                }
                usleep(5000);
            }
        }
        for (int k = 0; k < 3; k++)
            if (r->fds[k] >= 0)
                close(r->fds[k]);
        *r = (struct proc_record){0, false, {-1, -1, -1}};
    }
}

/* CPU time (user + system, in ms) that process pid has used, from
 * /proc/PID/stat; 0 when it cannot be read. */
static inline uint64_t proc_cpu_ms(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')');
    unsigned long long utime = 0, stime = 0;
    /* after ") ": state(3) ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime(14) stime(15) */
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime) != 2)
        return 0;
    return (utime + stime) * 1000ull / (unsigned long long)sysconf(_SC_CLK_TCK);
}

#endif /* IOCP_PROC_H */
