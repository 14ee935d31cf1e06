/* SPDX-License-Identifier: MIT */
/*
 * stats_sys.h on POSIX: kill(pid, 0), /proc/<pid>/cmdline (Linux; empty
 * elsewhere), sigaction and isatty.
 */
#include "stats_sys.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    (void)sig;
    interrupted = 1;
}

bool stats_sys_process_gone(long pid)
{
    return kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

void stats_sys_command_of(long pid, char *buf, size_t len)
{
    char path[64];
    buf[0] = '\0';
    snprintf(path, sizeof path, "/proc/%ld/cmdline", pid);
    FILE *f = fopen(path, "rb");
    if (!f)
        return;
    size_t n = fread(buf, 1, len - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i + 1 < n; i++)
        if (buf[i] == '\0')
            buf[i] = ' ';
}

void stats_sys_catch_interrupts(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_interrupt;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool stats_sys_interrupted(void)
{
    return interrupted != 0;
}

void stats_sys_sleep(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

bool stats_sys_stdout_terminal(void)
{
    return isatty(1);
}

bool stats_sys_stdout_ansi(void)
{
    return isatty(1);
}
