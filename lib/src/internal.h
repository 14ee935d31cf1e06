/* SPDX-License-Identifier: MIT */
/*
 * Declarations shared between the library's own files and never installed.
 * Platform conditionals that the common .c files would otherwise need live
 * here (and in types.h), not in those files.
 */
#ifndef IOCP_INTERNAL_H
#define IOCP_INTERNAL_H

#include "iocp/types.h"
#include "iocp/error.h"

/* Convert an errno value (positive) to an IOCP_E* code, once, at the lowest layer. */
int iocp__err_from_errno(int e);

#ifdef _WIN32
/* Convert a WSA or Win32 error code to an IOCP_E* code. */
int iocp__err_from_win32(unsigned long code);
/* A SOCKET is a kernel handle, and handles are multiples of 4: the two low
 * bits are always zero, so hashing them would leave three buckets in four
 * unused and make every chain four times longer (registry.c). */
#define IOCP_SOCKET_HASH_SHIFT 2
#else
/* File descriptors are small and dense: their low bits spread them. */
#define IOCP_SOCKET_HASH_SHIFT 0
#endif

/* Set the detail text that iocp_error_detail() returns on this thread
 * (error.c). */
void iocp__set_error_detail(const char *fmt, ...);

#define IOCP_UNUSED(x) ((void)(x))

/*
 * The config structs of the public API grow from release to release, and a
 * program passes the size of the one it was compiled with (the *_sized
 * functions behind the iocp_engine_new()... macros).  Copy into own
 * (own_size bytes, this library's struct) the bytes both know, and zeros
 * for the fields the program's older struct does not have; fields of a
 * newer program that this library does not know are not read.  Returns own,
 * or NULL when cfg is NULL.
 */
static inline const void *iocp__config_copy(void *own, size_t own_size, const void *cfg,
                                            size_t cfg_size)
{
    if (!cfg)
        return NULL;
    unsigned char *dst = own;
    const unsigned char *src = cfg;
    size_t n = cfg_size < own_size ? cfg_size : own_size;
    for (size_t i = 0; i < own_size; i++)
        dst[i] = i < n ? src[i] : 0;
    return own;
}

/* cpus_linux.c / cpus_win.c: the CPUs this process may run on (at least 1),
 * for the default worker count, and why, as a phrase for the log ("the
 * affinity mask allows 4 CPUs"). */
unsigned iocp__cpus_usable(char *why, size_t len);

#ifndef _WIN32
/* Parse a cgroup v2 cpu.max ("max 100000" or "150000 100000"): 1 with
 * *quota and *period set, 0 for no limit, IOCP_EINVAL if malformed. */
int iocp__parse_cpu_max(const char *text, uint64_t *quota, uint64_t *period);
#endif

/* Thread-local storage: C11's keyword where the compiler has it (GCC and
 * Clang everywhere, mingw-w64 included), MSVC's own spelling otherwise. */
#if defined(_MSC_VER) && !defined(__clang__)
#define IOCP_THREAD_LOCAL __declspec(thread)
#else
#define IOCP_THREAD_LOCAL _Thread_local
#endif

#endif /* IOCP_INTERNAL_H */
