/* SPDX-License-Identifier: MIT */
/*
 * Which target a relayed client goes to, and which targets are out.
 *
 * A pool is the targets of one listening port.  balance_pick() chooses
 * among the targets that are in and that this client has not tried yet:
 *
 *   rr         weighted round robin (smooth: weights 3,1 give a a b a ...)
 *   leastconn  the fewest live connections per unit of weight; ties go
 *              round robin
 *   first      the first target in the order given (the primary), the
 *              next one when it is out or failed for this client
 *   hash       by the client's address (without its port), over the
 *              weighted targets: a client keeps its target while that
 *              target is in; when it is out, the next one in order
 *
 * Passive health (--max-fails N, N > 0): a target whose connects fail N
 * times within --fail-window is out for --fail-timeout; after that one
 * client's connection tries it again (the probe; no other client goes
 * there meanwhile): success brings it in, failure keeps it out for
 * another --fail-timeout.  The active check (relay_check.c) and a client
 * that reached it bring a target in as well.  With N = 0 (the default)
 * no target is ever out: each client tries every target in turn.
 *
 * Every worker picks and reports, so the pool's state is under a small
 * spin lock (held for a few comparisons, never across a call that may
 * block); the counters shown by stats are atomics read without it.
 */
#ifndef IOCPTOOL_RELAY_BALANCE_H
#define IOCPTOOL_RELAY_BALANCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "addr.h"
#include "json.h"
#include "relay_health.h"

/* The most targets of one listening port: a client's tried set is a
 * 64-bit mask. */
#define BALANCE_MAX_TARGETS 64

enum balance_mode { BALANCE_RR, BALANCE_LEASTCONN, BALANCE_FIRST, BALANCE_HASH };

enum target_state { TARGET_UP, TARGET_DOWN, TARGET_PROBING };

struct balance_target {
    char host[ADDR_HOST_MAX];
    uint16_t port;
    unsigned weight;
    char name[270]; /* "host:port" / "[v6]:port" */
    char what[280]; /* "target host:port" for relay_health */
    struct relay_health health;
    /* Read by stats from another thread. */
    atomic_int state;                    /* enum target_state */
    atomic_uint live;                    /* clients connected or connecting to it */
    atomic_ullong connects, failures;    /* connections made, connects that failed */
    atomic_ullong bytes_up, bytes_down;  /* to it, from it (closed connections) */
    /* Under the pool's lock. */
    unsigned epoch; /* one more each time the target is taken out */
    unsigned window_fails;
    uint64_t window_start_ms, down_until_ms;
    long long rr_weight; /* smooth weighted round robin */
};

struct balance {
    enum balance_mode mode;
    struct balance_target *t;
    unsigned n;
    unsigned max_fails;       /* 0: no target is ever out */
    unsigned fail_window_ms;  /* failures counted within this */
    unsigned fail_timeout_ms; /* out this long */
    atomic_flag lock;
    unsigned rr_next; /* leastconn's tie breaker */
};

/* "rr", "leastconn", "first" or "hash". */
bool balance_parse_mode(const char *text, enum balance_mode *mode);
const char *balance_mode_name(enum balance_mode mode);

/*
 * balance_target_options(text):
 * Where the options of a target begin (the comma before them), or NULL.
 * The options are the ",KEY=VALUE" pieces at the end whose KEY is one a
 * target knows (weight); any other comma belongs to the address, so that
 * "unix:/run/a,b.sock,weight=2" is the path /run/a,b.sock with weight 2.
 */
const char *balance_target_options(const char *text);

/*
 * balance_parse_target(cmd, text, t):
 * "HOST:PORT" or "HOST:PORT,weight=N" (1-1000, default 1), or a
 * "unix:PATH" the same way (see balance_target_options), into t, its
 * names and its health made ready.  false after saying why.
 */
bool balance_parse_target(const char *cmd, const char *text, struct balance_target *t);

/* The pool over t[0..n-1] (n <= BALANCE_MAX_TARGETS), all in. */
void balance_init(struct balance *b, struct balance_target *t, unsigned n, enum balance_mode mode);

/*
 * balance_pick(b, client, tried, epoch):
 * The target for a client whose address is client ("host:port"; only its
 * host is hashed) and which has tried the targets in the mask tried
 * already.  Counts a live connection on it (balance_done() takes it back).
 * -1 when no target is left: every one is out or tried.  *epoch is the
 * target's epoch now, for balance_connected() and balance_failed().
 */
int balance_pick(struct balance *b, const char *client, uint64_t tried, unsigned *epoch);

/*
 * The connect to target i, picked in epoch, worked: it is in.  A connect
 * picked before the target was last taken out says nothing of it now (it
 * was made before whatever failed since), so it leaves the target out:
 * only the probe, or the active check, brings it back.  Whether the
 * success was of the target as it is now.
 */
bool balance_connected(struct balance *b, unsigned i, unsigned epoch);

/* The connect to target i, picked in epoch, failed (passive health).  It
 * is counted; one picked before the target was last taken out changes
 * nothing else (the probe's own answer decides). */
void balance_failed(struct balance *b, unsigned i, unsigned epoch);

/* Target i's epoch now, for an active check about to begin. */
unsigned balance_epoch(struct balance *b, unsigned i);

/*
 * An active check of target i, begun in epoch, answered (ok) or not.  As
 * with a client's connect, a check begun before the target was last taken
 * out changes nothing (the next one decides).  Whether it was current.
 */
bool balance_checked(struct balance *b, unsigned i, bool ok, unsigned epoch);

/* A client's connection to target i ended (or its connect failed), having
 * moved up bytes to it and down bytes from it. */
void balance_done(struct balance *b, unsigned i, uint64_t up, uint64_t down);

/* "up", "down" or "probing". */
const char *balance_state_name(int state);

#endif /* IOCPTOOL_RELAY_BALANCE_H */
