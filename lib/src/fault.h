/* SPDX-License-Identifier: MIT */
/*
 * Fault injection, for tests: make chosen operations fail on demand, on
 * every backend, so that the rare paths (a failed post, an accept that
 * completes with an error, a socket that cannot be created) run in CI and
 * prove that nothing leaks and the server keeps serving.
 *
 * Configured by the environment variable IOCP_FAULT, read once, or by
 * iocp__fault_configure() from a test.  The syntax is a comma-separated
 * list of POINT=RULE, where RULE is N (every Nth call fails) or pP (each call
 * fails with probability P, 0 < P <= 1), plus an optional seed=S:
 *
 *     IOCP_FAULT=post=5,accept=3,send=p0.01,seed=42
 *
 * Points: post, submit, accept, connect, send, recv, bind, socket, open,
 * dgram_recv, dgram_send, send_short.
 * post, submit, bind and socket fail the call itself; open makes the
 * preferred backend fail to open (so the fallback to the next one runs); accept, connect, send and
 * recv turn the operation's completion into an error (an accepted socket is
 * closed first), which is how such failures arrive from a real network;
 * dgram_recv and dgram_send do the same to a datagram receive (an ICMP
 * port unreachable, ECONNREFUSED) and a datagram send batch (ENOBUFS).
 * send_short fails nothing: on io_uring it hands the kernel only the first
 * half of a stream send, so the send completes short, as it does when the
 * socket buffer has room for part, and the rest must follow.
 * A probability rule is deterministic for a given seed and call number.
 * With nothing configured each check costs one relaxed atomic load.
 */
#ifndef IOCP_FAULT_H
#define IOCP_FAULT_H

#include <stdbool.h>
#include <stdint.h>

enum iocp_fault_point {
    IOCP_FAULT_POST = 0,
    IOCP_FAULT_SUBMIT,
    IOCP_FAULT_ACCEPT,
    IOCP_FAULT_CONNECT,
    IOCP_FAULT_SEND,
    IOCP_FAULT_RECV,
    IOCP_FAULT_BIND,
    IOCP_FAULT_SOCKET,
    IOCP_FAULT_OPEN,
    IOCP_FAULT_DGRAM_RECV,
    IOCP_FAULT_DGRAM_SEND,
    IOCP_FAULT_SEND_SHORT,
    IOCP_FAULT_COUNT
};

/*
 * iocp__fault_configure(spec):
 * Replace the rules with those in spec (NULL or "" clears them).  0, or
 * IOCP_EINVAL for a malformed spec (the rules are then cleared).
 */
int iocp__fault_configure(const char *spec);

/* Read IOCP_FAULT once per process (engine start calls it). */
void iocp__fault_from_env(void);

/*
 * iocp__fault_check(point):
 * 0 when the call may go on, or the negative code it should fail with.
 */
int iocp__fault_check(enum iocp_fault_point point);

/* Whether any failure may be injected (a rule is configured). */
bool iocp__fault_armed(void);

/* How many failures each point has injected since configuration. */
uint64_t iocp__fault_injected(enum iocp_fault_point point);

/* The point's name ("accept"). */
const char *iocp__fault_name(enum iocp_fault_point point);

#endif /* IOCP_FAULT_H */
