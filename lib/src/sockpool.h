/* SPDX-License-Identifier: MIT */
/*
 * Reusable sockets and the bound-once rule of seed 2c, as pure logic.
 *
 * On Windows a connection's socket can be kept instead of closed:
 * DisconnectEx(TF_REUSE_SOCKET) resets it, and AcceptEx or ConnectEx can use
 * it again, saving the creation of a socket and its association with the
 * completion port.  The association survives: binding such a socket to the
 * port a second time fails (CreateIoCompletionPort returns
 * ERROR_INVALID_PARAMETER), which DIOCP could not tell from a real failure.
 *
 * This pool holds the disconnected sockets per address family and per use,
 * and remembers which sockets it has lent out: a bind of a lent socket is
 * already done and costs nothing, while a bind of any other socket goes to
 * the OS, whose error (a real second bind included) comes back unchanged.
 * The operating system is reached only through the ops, so that a test can
 * put a fake one underneath and count the associations.
 *
 * The use is how the socket was connected, and the only call that may take
 * it again: a socket that ConnectEx connected comes back "not connected,
 * but still bound" (to its local address) and may only be passed to
 * ConnectEx, never to AcceptEx, whose socket must be unbound; an accepted
 * socket likewise goes back to AcceptEx only, never to ConnectEx (the
 * ConnectEx documentation).  A reused ConnectEx socket keeps its local
 * address, so ConnectEx's need for a bound socket is met.
 *
 * Socket values are reused by the system as soon as a socket is closed, so
 * a lent socket that is closed without being bound (a refused connection)
 * must be forgotten first: iocp__sockpool_forget() (the library's socket
 * close does it for every live pool).
 */
#ifndef IOCP_SOCKPOOL_H
#define IOCP_SOCKPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "list.h"
#include "thread.h"

/* How a pooled socket was connected, and so which call may take it again. */
enum iocp_sockpool_use {
    IOCP_SOCKPOOL_ACCEPT = 0,  /* AcceptEx */
    IOCP_SOCKPOOL_CONNECT = 1, /* ConnectEx */
};

struct iocp_sockpool_ops {
    /* A new socket of family for an outgoing connection: 0 or the error. */
    int (*open)(void *ctx, int family, iocp_socket_t *out);
    /* Associate s with the completion port: 0 or the OS's error. */
    int (*associate)(void *ctx, iocp_socket_t s);
    /* Close s for good. */
    void (*close)(void *ctx, iocp_socket_t s);
};

struct iocp_sockpool_entry {
    iocp_socket_t s;
    bool skip; /* its completion mode (skip-on-success), set at association */
};

struct iocp_sockpool_stats {
    uint64_t associations; /* OS associations made */
    uint64_t reused;       /* binds that found the socket associated already */
    uint64_t pooled;       /* sockets put back for reuse */
    uint64_t closed;       /* sockets closed by the pool (full, or at fini) */
    size_t free;           /* sockets waiting for reuse */
    size_t lent;           /* taken and not yet bound or forgotten */
};

struct iocp_sockpool {
    struct iocp_mutex lock;
    struct iocp_sockpool_ops ops;
    void *ctx;
    size_t cap; /* sockets kept per family and use */
    /* LIFO stacks: [use * 2 + 0] IPv4, [use * 2 + 1] IPv6. */
    struct iocp_sockpool_entry *free[4];
    size_t nfree[4];
    struct iocp_sockpool_entry *lent; /* small, unordered */
    size_t nlent, lent_cap;
    struct iocp_sockpool_stats stats;
    struct iocp_list link; /* in the list of live pools */
};

/*
 * iocp__sockpool_init(pool, cap, ops, ctx):
 * An empty pool keeping up to cap sockets per family and use.  0 or
 * IOCP_ENOMEM.
 */
int iocp__sockpool_init(struct iocp_sockpool *pool, size_t cap, const struct iocp_sockpool_ops *ops,
                        void *ctx);

/* Close every pooled socket and free the pool's memory. */
void iocp__sockpool_fini(struct iocp_sockpool *pool);

/*
 * iocp__sockpool_take(pool, use, family, out, skip):
 * A reusable socket of family (AF_INET or AF_INET6) for use, already
 * associated, or false when there is none.  The socket is lent: its next
 * bind through this pool is free.
 */
bool iocp__sockpool_take(struct iocp_sockpool *pool, enum iocp_sockpool_use use, int family,
                         iocp_socket_t *out, bool *skip);

/*
 * iocp__sockpool_connect_socket(pool, family, out, reused):
 * A socket for an outgoing connection: a pooled one that ConnectEx used
 * before (*reused true: lent, its bind is free and its local address is
 * kept), or a new one from ops.open (*reused false).  0 or open's error.
 */
int iocp__sockpool_connect_socket(struct iocp_sockpool *pool, int family, iocp_socket_t *out,
                                  bool *reused);

/*
 * iocp__sockpool_bind(pool, s, skip):
 * Bind s once: 1 when s was lent by the pool (associated already; *skip is
 * its mode and the pool forgets it), 0 when ops.associate did it now, or
 * the OS's error.
 */
int iocp__sockpool_bind(struct iocp_sockpool *pool, iocp_socket_t s, bool *skip);

/*
 * iocp__sockpool_put(pool, use, family, s, skip):
 * A disconnected socket, ready for reuse by use.  Kept, or closed when that
 * stack is full.  The pool owns s from here.
 */
void iocp__sockpool_put(struct iocp_sockpool *pool, enum iocp_sockpool_use use, int family,
                        iocp_socket_t s, bool skip);

/* s is about to be closed by someone else: forget that it was lent. */
void iocp__sockpool_forget(struct iocp_sockpool *pool, iocp_socket_t s);

/* The same for every live pool; costs one atomic load when none lends. */
void iocp__sockpool_forget_everywhere(iocp_socket_t s);

void iocp__sockpool_stats(struct iocp_sockpool *pool, struct iocp_sockpool_stats *out);

#endif /* IOCP_SOCKPOOL_H */
