/* SPDX-License-Identifier: MIT */
/*
 * How many CPUs this process may use, for "workers = 0: one per CPU": the
 * process affinity mask (a process started with `start /affinity`, or
 * limited by its job), or, when the process spans several processor groups
 * (more than 64 CPUs, where one mask cannot say) or the mask cannot be read,
 * every active processor.
 */
#include <stdio.h>

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>

#include "internal.h"

unsigned iocp__cpus_usable(char *why, size_t len)
{
    DWORD_PTR process_mask = 0, system_mask = 0;
    if (GetActiveProcessorGroupCount() <= 1 &&
        GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask) &&
        process_mask) {
        unsigned n = 0;
        for (DWORD_PTR m = process_mask; m; m &= m - 1)
            n++;
        snprintf(why, len, "the affinity mask allows %u CPU%s", n, n == 1 ? "" : "s");
        return n;
    }
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    if (n == 0)
        n = 1;
    snprintf(why, len, "%lu CPUs are active", (unsigned long)n);
    return (unsigned)n;
}
