/* SPDX-License-Identifier: MIT */
/*
 * stop.h on POSIX: a self-pipe.  The stop signals are blocked in every
 * thread (the engine's threads inherit the mask from stop_prepare()), and
 * only the main thread, while it waits in ppoll(), lets them in; their
 * handler writes the signal's number to the pipe, and stop_wake() writes a
 * zero.  So no handler runs in a worker at an awkward moment, and the
 * wake-up is not a signal: `kill -USR1` from outside is not mistaken for
 * the end of the work (SIGUSR1 keeps its default action, which ends the
 * process like any unhandled signal).  SIGPIPE is ignored: a closed pipe
 * on stdout is an error to report, not a reason to die silently.
 */
#include "stop.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP};
#define NSIGNALS (sizeof stop_signals / sizeof stop_signals[0])

static int wake_pipe[2] = {-1, -1};
static sigset_t handled; /* the stop signals with our handler */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    /* The pipe is non-blocking: when it is full, enough is said already. */
    ssize_t n = write(wake_pipe[1], &b, 1);
    (void)n;
    errno = saved;
}

int stop_prepare(void)
{
    if (wake_pipe[0] >= 0)
        return 0;
    if (pipe(wake_pipe) < 0) {
        wake_pipe[0] = wake_pipe[1] = -1;
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(wake_pipe[i], F_SETFD, FD_CLOEXEC);
        fcntl(wake_pipe[i], F_SETFL, O_NONBLOCK);
    }
    sigemptyset(&handled);
    for (unsigned i = 0; i < NSIGNALS; i++) {
        struct sigaction old, sa = {.sa_handler = on_signal};
        sigfillset(&sa.sa_mask);
        /* Ignored by whoever started us (nohup, `&` in a script): keep it so. */
        if (sigaction(stop_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(stop_signals[i], &sa, NULL);
        sigaddset(&handled, stop_signals[i]);
    }
    pthread_sigmask(SIG_BLOCK, &handled, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

int stop_wait(int timeout_ms)
{
    struct timespec end;
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (timeout_ms >= 0) {
        end.tv_sec += timeout_ms / 1000;
        end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (end.tv_nsec >= 1000000000L) {
            end.tv_sec++;
            end.tv_nsec -= 1000000000L;
        }
    }
    /* The mask this thread waits with: everything it has, minus ours. */
    sigset_t open;
    pthread_sigmask(SIG_BLOCK, NULL, &open);
    for (unsigned i = 0; i < NSIGNALS; i++)
        if (sigismember(&handled, stop_signals[i]))
            sigdelset(&open, stop_signals[i]);
    for (;;) {
        unsigned char b;
        ssize_t n = read(wake_pipe[0], &b, 1);
        if (n == 1)
            return b;
        struct timespec left, *limit = NULL;
        if (timeout_ms >= 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            left.tv_sec = end.tv_sec - now.tv_sec;
            left.tv_nsec = end.tv_nsec - now.tv_nsec;
            if (left.tv_nsec < 0) {
                left.tv_sec--;
                left.tv_nsec += 1000000000L;
            }
            if (left.tv_sec < 0)
                return STOP_TIMEOUT;
            limit = &left;
        }
        struct pollfd pfd = {.fd = wake_pipe[0], .events = POLLIN};
        int r = ppoll(&pfd, 1, limit, &open);
        if (r < 0 && errno != EINTR)
            return STOP_TIMEOUT; /* cannot wait: do not spin */
    }
}

void stop_wake(void)
{
    unsigned char b = STOP_WOKEN;
    ssize_t n = write(wake_pipe[1], &b, 1);
    (void)n;
}
