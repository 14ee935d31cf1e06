/* SPDX-License-Identifier: MIT */
/*
 * Datagram (UDP) sockets: a handle next to connections, owned by one worker.
 *
 * A datagram socket is bound to a local address (IPv4, IPv6, or both through
 * one dual-stack socket) and receives for as long as it is open: every
 * datagram arrives whole in on_datagram, with its source address, in a
 * buffer valid during the call only.  Datagrams are never split or merged;
 * an empty one is delivered with len 0.  One larger than max_datagram is
 * delivered cut to max_datagram with IOCP_DGRAM_TRUNCATED in flags, and
 * counted: never cut silently, never an error that ends the socket.
 *
 * Sending copies the datagram into the socket's send queue, which the
 * backend drains in batches (sendmmsg on epoll, several requests per submit
 * on io_uring, overlapped WSASendTo on IOCP).  A full socket buffer is
 * back-pressure: the queue grows, on_pressure(true) says it passed
 * send_high and on_pressure(false) that it drained to send_low.  Past a hard
 * cap (four times send_high) further datagrams are dropped and counted, as
 * the network itself would drop them: memory stays bounded whatever the
 * producer does.
 *
 * A "connected" socket (peer_host set) talks to one peer: iocp_dgram_send()
 * needs no address, datagrams from anyone else are not delivered, and an
 * ICMP port-unreachable for that peer comes back as on_error with
 * IOCP_ECONNREFUSED.  The socket stays open and usable after any on_error.
 *
 * Ownership is that of a connection: every iocp_dgram_* function taking a
 * struct iocp_dgram * must be called on its worker (from a callback or a
 * task posted with iocp_dgram_post()).  The pointer is valid until on_close
 * returns; anything kept longer keeps the iocp_conn_id_t, which shares the
 * connections' ID space and registry (so the engine's max_conns, and the
 * registry figures of struct iocp_stats: online, walked, hashed, count
 * datagram sockets too; iocp_engine_foreach_conn() lists connections only,
 * iocp_engine_foreach_dgram() these).  Engine stop closes every datagram socket with
 * IOCP_ECANCELED, and iocp_engine_audit() checks that none is left.
 */
#ifndef IOCP_DGRAM_H
#define IOCP_DGRAM_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_dgram;
struct iocp_engine;
struct sockaddr;

/* on_datagram's flags: the datagram was larger than max_datagram and was
 * cut to it (counted in iocp_dgram_stats.truncated). */
#define IOCP_DGRAM_TRUNCATED 1u

/* The largest datagram payload there is (IPv6 without jumbograms): the
 * default receive size. */
#define IOCP_DGRAM_MAX 65535u

/*
 * The callbacks of a datagram socket.  Required: on_datagram and on_close;
 * iocp_dgram_open() without one fails with IOCP_EINVAL and
 * iocp_error_detail() names it.
 */
struct iocp_dgram_handler {
    /* One datagram of len bytes (0 allowed) from `from` (fromlen bytes);
     * data and from are valid during the call only.  flags:
     * IOCP_DGRAM_TRUNCATED. */
    void (*on_datagram)(struct iocp_dgram *d, const void *data, size_t len,
                        const struct sockaddr *from, int fromlen, unsigned flags);
    /* The send queue passed send_high (full true) or drained to send_low
     * (full false).  Optional: without it nothing pauses, and datagrams past
     * the hard cap are dropped and counted. */
    void (*on_pressure)(struct iocp_dgram *d, bool full);
    /* An error the network reported for a datagram, not for the socket:
     * IOCP_ECONNREFUSED (ICMP port unreachable), IOCP_EHOSTUNREACH,
     * IOCP_ENETUNREACH, IOCP_EMSGSIZE (a send larger than the path allows)...
     * peer is the address it concerns when known (a connected socket's
     * peer), else NULL.  The socket stays open.  Optional: without it such
     * errors are only counted (iocp_dgram_stats.errors). */
    void (*on_error)(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen);
    /* The socket is closed: status 0 after iocp_dgram_close(), IOCP_ECANCELED
     * at engine stop, or the error that ended it.  Exactly once; the pointer
     * is invalid afterwards. */
    void (*on_close)(struct iocp_dgram *d, int status);
};

struct iocp_dgram_config {
    /* Local address to bind: a numeric IPv4 or IPv6 address or a host name;
     * NULL binds every address of the stacks `family` allows (both by
     * default, through one dual-stack socket where the system has IPv6). */
    const char *host;
    uint16_t port;  /* 0: a free port, see iocp_dgram_local_port() */
    int family;     /* enum iocp_family (server.h): 0 any, 4, 6 */
    /* Set: a connected socket for this one peer (a host name is resolved
     * before the call returns).  With host NULL the local address follows
     * the peer's family. */
    const char *peer_host;
    uint16_t peer_port;
    int worker;     /* the owning worker; -1: round robin (0 is worker 0) */
    /* SO_REUSEPORT (Linux): several sockets on one port, the kernel spreading
     * peers over them, e.g. one per worker.  Ignored where the system has no
     * such option. */
    bool reuseport;
    const struct iocp_dgram_handler *handler;
    void *data;
    /* The largest datagram delivered whole; larger ones are cut and flagged.
     * 0: IOCP_DGRAM_MAX (at most IOCP_DGRAM_MAX). */
    size_t max_datagram;
    /* Send queue watermarks in bytes (low < high); 0: 64 KiB / 256 KiB.
     * Datagrams that would take the queue past 4 * send_high are dropped. */
    size_t send_low, send_high;
};

/*
 * iocp_dgram_open(out, e, cfg):
 * Create, bind (and connect) a datagram socket on a running engine and start
 * receiving on its worker.  May be called from any thread; the callbacks
 * run on the worker, and may start before this returns.  0 with *out set
 * (touch it only on its worker), or IOCP_EINVAL (a missing callback or a
 * bad field: iocp_error_detail() says which), IOCP_ESTATE (engine not
 * running), IOCP_EADDRINUSE, IOCP_ENONAME, IOCP_ENFILE (max_conns reached)
 * or another socket error.  The config is copied; only `data` is kept.
 *
 * A macro, as iocp_engine_new() is: the size of the caller's struct lets it
 * grow at its end without an ABI break.
 */
#define iocp_dgram_open(out, e, cfg) \
    iocp_dgram_open_sized((out), (e), (cfg), sizeof(struct iocp_dgram_config))
IOCP_EXTERN int iocp_dgram_open_sized(struct iocp_dgram **out, struct iocp_engine *e,
                                      const struct iocp_dgram_config *cfg, size_t cfg_size);

/*
 * iocp_dgram_sendto(d, data, len, to, tolen):
 * Queue one datagram of len bytes (copied; 0 allowed) for `to`.  0 when
 * queued (or sent), IOCP_EMSGSIZE above IOCP_DGRAM_MAX, IOCP_EAGAIN when the
 * queue is at its hard cap (the datagram is dropped and counted),
 * IOCP_EAFNOSUPPORT for an address the socket cannot reach (IPv6 on an IPv4
 * socket), IOCP_EINVAL, IOCP_ENOTCONN (closing), IOCP_ENOMEM.  On a connected
 * socket `to` may be NULL.  Errors the network reports later come through
 * on_error.
 */
IOCP_EXTERN int iocp_dgram_sendto(struct iocp_dgram *d, const void *data, size_t len,
                                  const struct sockaddr *to, int tolen);

/* iocp_dgram_sendto() to the connected peer; IOCP_ENOTCONN on a socket that
 * has none. */
IOCP_EXTERN int iocp_dgram_send(struct iocp_dgram *d, const void *data, size_t len);

/*
 * iocp_dgram_pause(d) / iocp_dgram_resume(d):
 * Stop and restart receiving.  Datagrams already received may still be
 * delivered after pause; while paused the system's receive buffer fills
 * and then drops (as UDP does).  0 or IOCP_ENOTCONN.
 */
IOCP_EXTERN int iocp_dgram_pause(struct iocp_dgram *d);
IOCP_EXTERN int iocp_dgram_resume(struct iocp_dgram *d);

/*
 * iocp_dgram_close(d):
 * Close the socket.  Datagrams still queued are dropped (counted); requests
 * in flight complete; then on_close(d, 0) runs, on the worker, once.
 * Idempotent.
 */
IOCP_EXTERN void iocp_dgram_close(struct iocp_dgram *d);

/* The socket's process-unique ID (the connections' ID space). */
IOCP_EXTERN iocp_conn_id_t iocp_dgram_id(const struct iocp_dgram *d);

/* User data. */
IOCP_EXTERN void iocp_dgram_set_data(struct iocp_dgram *d, void *data);
IOCP_EXTERN void *iocp_dgram_data(const struct iocp_dgram *d);

/* The engine and the worker index the socket belongs to. */
IOCP_EXTERN struct iocp_engine *iocp_dgram_engine(const struct iocp_dgram *d);
IOCP_EXTERN unsigned iocp_dgram_worker(const struct iocp_dgram *d);

/* The socket (for socket options; never close it yourself). */
IOCP_EXTERN iocp_socket_t iocp_dgram_socket(const struct iocp_dgram *d);

/* The bound port, and the local address as text ("0.0.0.0:5353",
 * "[::]:5353"); the peer as text for a connected socket ("" otherwise).
 * Both return buf. */
IOCP_EXTERN uint16_t iocp_dgram_local_port(const struct iocp_dgram *d);
IOCP_EXTERN const char *iocp_dgram_local(const struct iocp_dgram *d, char *buf, size_t len);
IOCP_EXTERN const char *iocp_dgram_peer(const struct iocp_dgram *d, char *buf, size_t len);

/* Bytes queued and not yet handed to the network. */
IOCP_EXTERN size_t iocp_dgram_queued(const struct iocp_dgram *d);

/* A task for a datagram socket by ID: d is the live socket and status 0, or
 * d is NULL and status IOCP_ENOENT when it closed before the task ran. */
typedef void (*iocp_dgram_task_fn)(struct iocp_dgram *d, void *arg, int status);

/*
 * iocp_dgram_post(e, id, fn, arg):
 * Run fn on the worker that owns datagram socket `id`, from any thread (how
 * input read on another thread, stdin say, reaches a socket).  The contract
 * of iocp_conn_post(): IOCP_ENOENT at once when id names no open datagram
 * socket (a connection's ID is not one), else 0 and fn runs exactly once;
 * IOCP_ESTATE, IOCP_EAGAIN, IOCP_ENOMEM, IOCP_EINVAL with fn never run.
 */
IOCP_EXTERN int iocp_dgram_post(struct iocp_engine *e, iocp_conn_id_t id, iocp_dgram_task_fn fn,
                                void *arg);

/* iocp_dgram_close() by ID, from any thread: 0 when made or posted,
 * IOCP_ENOENT when id names no open datagram socket, else as
 * iocp_dgram_post(). */
IOCP_EXTERN int iocp_dgram_close_id(struct iocp_engine *e, iocp_conn_id_t id);

/* A socket's counters.  Readable from any thread while the socket is held
 * (its callbacks, or iocp_engine_foreach_dgram()). */
struct iocp_dgram_stats {
    uint64_t dgrams_in, dgrams_out;  /* datagrams received / handed to the network */
    uint64_t bytes_in, bytes_out;
    uint64_t truncated;              /* received cut to max_datagram */
    uint64_t dropped;                /* sends dropped: queue at its cap, or closed with it full */
    uint64_t errors;                 /* on_error reports (and send errors) */
};
IOCP_EXTERN void iocp_dgram_stats(const struct iocp_dgram *d, struct iocp_dgram_stats *out);

/* One datagram socket, as the listing sees it. */
struct iocp_dgram_info {
    iocp_conn_id_t id;
    unsigned worker;
    char local[64];
    char peer[64];      /* connected sockets; "" otherwise */
    uint64_t age_ms, idle_ms;
    struct iocp_dgram_stats stats;
    size_t queued;
};

/*
 * iocp_engine_foreach_dgram(e, cb, arg):
 * Call cb for each open datagram socket, from the calling thread, with no
 * lock held; cb returns false to stop.  Returns how many it visited.
 * (iocp_engine_foreach_conn() lists connections only.)
 */
IOCP_EXTERN size_t iocp_engine_foreach_dgram(struct iocp_engine *e,
                                             bool (*cb)(const struct iocp_dgram_info *info,
                                                        void *arg),
                                             void *arg);

/*
 * Engine-wide datagram counters (also in iocp_engine_audit(): a datagram
 * socket still open after a stop is reported).
 */
struct iocp_dgram_totals {
    uint64_t open;                   /* datagram sockets open now */
    uint64_t opened, closed;         /* since start */
    uint64_t dgrams_in, dgrams_out, bytes_in, bytes_out;
    uint64_t truncated, dropped, errors;
};
IOCP_EXTERN void iocp_engine_dgram_totals(struct iocp_engine *e, struct iocp_dgram_totals *out);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_DGRAM_H */
