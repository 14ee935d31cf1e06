/* SPDX-License-Identifier: MIT */
/*
 * The one place where libiocp names platform types.
 *
 * Every other header includes this one and none defines a platform type of
 * its own: the socket handle, its invalid value, the export macro and the
 * atomic types all live here, so a port to a new platform touches one file.
 */
#ifndef IOCP_TYPES_H
#define IOCP_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * iocp_socket_t: the operating system's socket handle.  On Windows a SOCKET
 * is an unsigned pointer-sized integer; elsewhere it is a file descriptor.
 * Both are reused by the system as soon as they are closed, so anything kept
 * beyond a callback refers to a connection by its iocp_conn_id_t instead.
 */
#ifdef _WIN32
typedef uintptr_t iocp_socket_t;
#define IOCP_INVALID_SOCKET (~(iocp_socket_t)0)
#else
typedef int iocp_socket_t;
#define IOCP_INVALID_SOCKET (-1)
#endif

/*
 * iocp_conn_id_t: a 64-bit connection identifier that stays unique while the
 * process runs.  The low 32 bits are a slot index, the high 32 bits the
 * slot's generation, so a stale identifier never resolves to a newer
 * connection.  0 is never a valid identifier.
 */
typedef uint64_t iocp_conn_id_t;
#define IOCP_CONN_ID_NONE ((iocp_conn_id_t)0)

/*
 * IOCP_EXTERN marks the public API.  A Windows DLL build defines
 * IOCP_BUILDING_SHARED while compiling the library and users of the DLL define
 * IOCP_USING_SHARED (the CMake package does this for them); a static build
 * needs neither.  Elsewhere the library is compiled with hidden visibility
 * and only these symbols are exported.
 */
#if defined(_WIN32)
#if defined(IOCP_BUILDING_SHARED)
#define IOCP_EXTERN __declspec(dllexport)
#elif defined(IOCP_USING_SHARED)
#define IOCP_EXTERN __declspec(dllimport)
#else
#define IOCP_EXTERN
#endif
#elif defined(__GNUC__) && __GNUC__ >= 4
#define IOCP_EXTERN __attribute__((visibility("default")))
#else
#define IOCP_EXTERN
#endif

/*
 * Atomics.  The library uses C11 <stdatomic.h> on every platform (GCC,
 * Clang and mingw-w64's GCC all provide it).  C++ users of the public
 * headers never see these types: no public struct contains one.
 */
#if !defined(__cplusplus)
#include <stdatomic.h>
typedef _Atomic(bool) iocp_atomic_bool;
typedef _Atomic(int) iocp_atomic_int;
typedef _Atomic(uint32_t) iocp_atomic_u32;
typedef _Atomic(uint64_t) iocp_atomic_u64;
typedef _Atomic(size_t) iocp_atomic_size;
#endif

#endif /* IOCP_TYPES_H */
