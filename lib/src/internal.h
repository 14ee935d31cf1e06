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
#endif

#define IOCP_UNUSED(x) ((void)(x))

/* Thread-local storage: C11's keyword where the compiler has it (GCC and
 * Clang everywhere, mingw-w64 included), MSVC's own spelling otherwise. */
#if defined(_MSC_VER) && !defined(__clang__)
#define IOCP_THREAD_LOCAL __declspec(thread)
#else
#define IOCP_THREAD_LOCAL _Thread_local
#endif

#endif /* IOCP_INTERNAL_H */
