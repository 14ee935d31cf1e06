/* SPDX-License-Identifier: MIT */
/*
 * stop.h on POSIX.  The stop signals are blocked in every thread and taken
 * synchronously with sigwait() in the main thread, so no handler runs in a
 * worker at an awkward moment.  A callback wakes the main thread by sending
 * SIGUSR1 to the process: process-directed, it reaches the one thread that
 * waits for it.  SIGPIPE is ignored: a closed pipe on stdout is an error to
 * report, not a reason to die silently.
 */
#include "stop.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

static sigset_t stop_set;

void stop_prepare(void)
{
    sigemptyset(&stop_set);
    sigaddset(&stop_set, SIGINT);
    sigaddset(&stop_set, SIGTERM);
    sigaddset(&stop_set, SIGHUP);
    sigaddset(&stop_set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &stop_set, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int stop_wait(void)
{
    int sig = 0;
    while (sigwait(&stop_set, &sig) != 0)
        ;
    return sig == SIGUSR1 ? 0 : sig;
}

void stop_wake(void)
{
    kill(getpid(), SIGUSR1);
}
