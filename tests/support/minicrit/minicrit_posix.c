/* SPDX-License-Identifier: MIT */
/*
 * The POSIX runner: each test runs in a child process of its own, as under
 * Criterion, so a crash, a hang or a leaked thread ends that test only.
 *
 * The parent never creates a thread and runs no test code, so every fork()
 * happens in a single-threaded process, which ThreadSanitizer requires (it
 * kills a child that starts threads after a multi-threaded fork).  It waits
 * by polling waitpid() rather than with a timer thread or SIGALRM for the
 * same reason.
 *
 * The child writes its verdict to a page shared with the parent before it
 * exits, so the parent can tell a test that finished from one that called
 * exit() early, and a finished test whose process then exited with a status
 * of its own: that is how sanitizer reports at exit (ThreadSanitizer's 66,
 * LeakSanitizer's 23) turn into failures.
 */
#if !defined(_GNU_SOURCE) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS and strsignal() with -std=c11 */
#endif

#include "minicrit_private.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if !defined(MAP_ANONYMOUS) && defined(MAP_ANON)
#define MAP_ANONYMOUS MAP_ANON
#endif

struct shared {
    atomic_int verdict; /* enum minicrit_verdict, written by the child */
};

static struct shared *shared;
static _Thread_local bool test_thread;

void minicrit__mark_test_thread(void)
{
    test_thread = true;
}

bool minicrit__on_test_thread(void)
{
    return test_thread;
}

void minicrit__platform_init(void)
{
    void *p = mmap(NULL, sizeof *shared, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("minicrit: mmap");
        exit(1);
    }
    shared = p;
}

/* Another thread of the child failed a fatal check: the test is over. */
_Noreturn void minicrit__stop_from_other_thread(void)
{
    atomic_store(&shared->verdict, MINICRIT_FAIL);
    fflush(NULL);
    _exit(1);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGFPE:
        return "SIGFPE";
    case SIGILL:
        return "SIGILL";
    case SIGKILL:
        return "SIGKILL";
    case SIGPIPE:
        return "SIGPIPE";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGTERM:
        return "SIGTERM";
    case SIGTRAP:
        return "SIGTRAP";
    case SIGALRM:
        return "SIGALRM";
    case SIGINT:
        return "SIGINT";
    case SIGQUIT:
        return "SIGQUIT";
    case SIGUSR1:
        return "SIGUSR1";
    case SIGUSR2:
        return "SIGUSR2";
    default:
        return "signal";
    }
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Wait for pid; kill it once timeout seconds have passed (0: never).  True if it timed out. */
static bool wait_child(pid_t pid, double timeout, int *status)
{
    struct timespec start, nap = {0, 100000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        pid_t r = waitpid(pid, status, timeout > 0 ? WNOHANG : 0);
        if (r == pid)
            return false;
        if (r < 0 && errno != EINTR) {
            perror("minicrit: waitpid");
            exit(1);
        }
        if (r == 0 && seconds_since(&start) >= timeout) {
            kill(pid, SIGKILL);
            while (waitpid(pid, status, 0) < 0 && errno == EINTR)
                ;
            return true;
        }
        if (r == 0) {
            /* Short naps first: most tests take a few milliseconds. */
            nanosleep(&nap, NULL);
            if (nap.tv_nsec < 10000000)
                nap.tv_nsec *= 2;
        }
    }
}

enum minicrit_verdict minicrit__run_isolated(const struct minicrit_test *t,
                                             const struct minicrit_suite *suite, double timeout)
{
    const struct minicrit_opts *o = &t->opts;
    enum minicrit_verdict v;
    int status = 0;
    pid_t pid;

    atomic_store(&shared->verdict, MINICRIT_NONE);
    /* Whatever is buffered now would otherwise be printed by both processes. */
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        minicrit__line("FAIL", t, t->file, t->line, "fork: %s", strerror(errno));
        return MINICRIT_FAIL;
    }
    if (pid == 0) {
        v = minicrit__run_body(t, suite);
        atomic_store(&shared->verdict, v);
        fflush(NULL);
        /* exit(), not _exit(): sanitizers check for leaks and races at exit. */
        exit(v == MINICRIT_FAIL ? 1 : 0);
    }

    if (wait_child(pid, timeout, &status)) {
        minicrit__line("FAIL", t, t->file, t->line, "timed out after %g s", timeout);
        return MINICRIT_FAIL;
    }
    v = (enum minicrit_verdict)atomic_load(&shared->verdict);

    if (WIFSIGNALED(status)) {
        int sig = WTERMSIG(status);
        if (o->signal != 0 && sig == o->signal && v != MINICRIT_FAIL)
            return MINICRIT_PASS;
        if (v == MINICRIT_NONE)
            minicrit__line("FAIL", t, t->file, t->line, "crashed: %s (%s)", signal_name(sig),
                           strsignal(sig));
        else
            minicrit__line("FAIL", t, t->file, t->line,
                           "killed by %s (%s) after the test ended (a sanitizer report?)",
                           signal_name(sig), strsignal(sig));
        return MINICRIT_FAIL;
    }
    if (!WIFEXITED(status)) {
        minicrit__line("FAIL", t, t->file, t->line, "ended with wait status %#x", status);
        return MINICRIT_FAIL;
    }
    if (o->signal != 0) {
        minicrit__line("FAIL", t, t->file, t->line, "expected %s, exited with status %d",
                       signal_name(o->signal), WEXITSTATUS(status));
        return MINICRIT_FAIL;
    }
    if (v == MINICRIT_NONE) {
        if (o->exit_code != 0 && WEXITSTATUS(status) == o->exit_code)
            return MINICRIT_PASS;
        minicrit__line("FAIL", t, t->file, t->line,
                       "exited with status %d before the test ended (exit(), or a "
                       "crash that a sanitizer caught)",
                       WEXITSTATUS(status));
        return MINICRIT_FAIL;
    }
    if (v == MINICRIT_FAIL)
        return MINICRIT_FAIL;
    if (o->exit_code != 0) {
        minicrit__line("FAIL", t, t->file, t->line, "expected exit status %d, the test returned",
                       o->exit_code);
        return MINICRIT_FAIL;
    }
    if (WEXITSTATUS(status) != 0) {
        /* The test ended well, then something at exit did not. */
        minicrit__line("FAIL", t, t->file, t->line,
                       "exited with status %d after the test ended (a sanitizer report?)",
                       WEXITSTATUS(status));
        return MINICRIT_FAIL;
    }
    return v;
}
