/* SPDX-License-Identifier: MIT */
/*
 * How many CPUs this process may use, for "workers = 0: one per CPU".
 *
 * The CPUs online are not the answer: a process started under taskset, in a
 * cpuset, or in a container with a CPU quota may use fewer, and a worker per
 * online CPU would then leave threads fighting over the CPUs it has.  So
 * the count is the affinity mask's (sched_getaffinity, sized for any number
 * of CPUs), lowered to the cgroup v2 quota (cpu.max of the process's cgroup
 * and of every cgroup above it), rounded up: 1.5 CPUs' worth of quota gives
 * 2 workers.
 */
#include <errno.h>
#include <stdbool.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

int iocp__parse_cpu_max(const char *text, uint64_t *quota, uint64_t *period)
{
    char q[32];
    unsigned long long p = 100000;
    int n = sscanf(text, "%31s %llu", q, &p);
    if (n < 1)
        return IOCP_EINVAL;
    if (strcmp(q, "max") == 0)
        return 0;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(q, &end, 10);
    if (*end || errno || v == 0 || p == 0)
        return IOCP_EINVAL;
    *quota = v;
    *period = p;
    return 1;
}

/* The CPUs in this thread's affinity mask; 0 when it cannot be read.  The
 * mask is grown until the kernel's fits (it fails with EINVAL when the set
 * is too small, on machines with more than 1,024 possible CPUs). */
static unsigned affinity_cpus(void)
{
    for (size_t ncpus = 1024; ncpus <= (1u << 20); ncpus *= 2) {
        cpu_set_t *set = CPU_ALLOC(ncpus);
        if (!set)
            return 0;
        size_t size = CPU_ALLOC_SIZE(ncpus);
        CPU_ZERO_S(size, set);
        if (sched_getaffinity(0, size, set) == 0) {
            unsigned n = (unsigned)CPU_COUNT_S(size, set);
            CPU_FREE(set);
            return n;
        }
        CPU_FREE(set);
        if (errno != EINVAL)
            return 0;
    }
    return 0;
}

/* The tightest cpu.max quota from the process's cgroup up to the root, as
 * a CPU count (quota / period), or 0 with no quota (or no cgroup v2). */
static double cgroup_cpus(void)
{
    char line[512], path[600];
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f)
        return 0;
    bool found = false;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            found = true;
            break;
        }
    }
    fclose(f);
    if (!found)
        return 0;

    double best = 0;
    char *rel = line + 3; /* "/a/b", shortened one level at a time */
    for (;;) {
        snprintf(path, sizeof path, "/sys/fs/cgroup%s/cpu.max", strcmp(rel, "/") ? rel : "");
        f = fopen(path, "r");
        if (f) {
            char text[64];
            uint64_t quota, period;
            if (fgets(text, sizeof text, f) && iocp__parse_cpu_max(text, &quota, &period) == 1) {
                double cpus = (double)quota / (double)period;
                if (best == 0 || cpus < best)
                    best = cpus;
            }
            fclose(f);
        }
        if (*rel == '\0' || strcmp(rel, "/") == 0)
            break;
        char *slash = strrchr(rel, '/');
        if (!slash)
            break;
        if (slash == rel)
            rel[1] = '\0'; /* one more round, for the root ("/") */
        else
            *slash = '\0';
    }
    return best;
}

unsigned iocp__cpus_usable(char *why, size_t len)
{
    unsigned cpus = affinity_cpus();
    const char *source = "the affinity mask allows";
    if (cpus == 0) {
        long online = sysconf(_SC_NPROCESSORS_ONLN);
        cpus = online > 0 ? (unsigned)online : 1;
        source = "the affinity mask is unreadable; CPUs online:";
    }
    double quota = cgroup_cpus();
    if (quota > 0 && quota < (double)cpus) {
        unsigned limited = (unsigned)quota;
        if ((double)limited < quota)
            limited++;
        if (limited == 0)
            limited = 1;
        snprintf(why, len, "the cgroup's cpu.max allows %.2f CPUs (%s %u)", quota, source, cpus);
        return limited;
    }
    snprintf(why, len, "%s %u CPU%s", source, cpus, cpus == 1 ? "" : "s");
    return cpus;
}
