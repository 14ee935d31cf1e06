/* SPDX-License-Identifier: MIT */
/*
 * The engine's private structures: workers, timers, connections, servers,
 * and the counters behind stats.  Shared by engine.c, timer.c, conn.c,
 * server.c, client.c, pool.c and stats.c; never installed.
 */
#ifndef IOCP_CORE_H
#define IOCP_CORE_H

#include "iocp.h"

#include "accept_pool.h"
#include "list.h"
#include "port.h"
#include "registry.h"
#include "sockutil.h"
#include "thread.h"

#ifndef _WIN32
#include <netdb.h> /* getaddrinfo; Windows has it in <ws2tcpip.h>, through port.h */
#endif

/* ---- packets: internal commands carry no pointer that must be freed ---- */

enum iocp_packet_code {
    IOCP_PKT_EXIT = 1,   /* arg: engine generation; stale ones are ignored */
    IOCP_PKT_TASK = 2,   /* arg: struct iocp_task *, owned by the poster */
    IOCP_PKT_WAKE = 3,   /* nothing: just wake the worker */
    IOCP_PKT_TIMER = 4,  /* arg: struct iocp_timer_req *, a start or stop from another thread */
    IOCP_PKT_CONN_TASK = 5, /* arg: struct iocp_conn_task *, a task by connection ID */
};

/* ---- timers: a binary min-heap per worker ---- */

/* A node of a worker's heap: the library's own time-outs embed one, and so
 * does every public struct iocp_timer (timer.c). */
struct iocp_heap_timer {
    uint64_t due_ms;
    uint64_t order;      /* arming order: ties on due_ms fire first-armed first */
    uint32_t heap_index; /* IOCP_TIMER_IDLE when not scheduled */
    void (*fn)(struct iocp_heap_timer *t);
};
#define IOCP_TIMER_IDLE UINT32_MAX

struct iocp_timer_heap {
    struct iocp_heap_timer **items;
    uint32_t count, cap;
};

/* ---- counters: one writer (the worker), read by stats from any thread ---- */

struct iocp_counters {
    iocp_atomic_u64 submitted[IOCP_STAT_OPS];
    iocp_atomic_u64 completed[IOCP_STAT_OPS];
    iocp_atomic_u64 failed_submits;
    iocp_atomic_u64 pool_created, pool_lent, pool_returned, pool_destroyed;
    iocp_atomic_u64 bytes_in, bytes_out;
    iocp_atomic_u64 accepted, connected, closed, refused;
    iocp_atomic_u64 accept_errors, accept_backoffs;
    iocp_atomic_u64 completions;
    iocp_atomic_u64 conns;
    /* Datagram sockets (dgram.c). */
    iocp_atomic_u64 dgram_open, dgram_opened, dgram_closed;
    iocp_atomic_u64 dgrams_in, dgrams_out, dgram_bytes_in, dgram_bytes_out;
    iocp_atomic_u64 dgram_truncated, dgram_dropped, dgram_errors;
};

/* Add n to a counter that only the calling worker writes (other threads
 * only read it): a relaxed load and store, no locked read-modify-write. */
static inline void iocp__count_add(iocp_atomic_u64 *counter, uint64_t n)
{
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + n,
                          memory_order_relaxed);
}
#define IOCP_COUNT(w, field, n) iocp__count_add(&(w)->cnt.field, (uint64_t)(n))

/* ---- workers and the engine ---- */

struct iocp_send_chunk;

struct iocp_worker {
    struct iocp_engine *engine;
    unsigned index;
    struct iocp_port *port;
    struct iocp_thread thread;
    struct iocp_timer_heap timers;
    uint64_t timer_order;         /* next heap_timer.order */
    /* Guards the cross-thread state of this worker's public timers (timer.c);
     * taken last, after any other lock. */
    struct iocp_mutex timer_lock;
    struct iocp_list conns;       /* every connection this worker owns */
    struct iocp_list zombies;     /* finished connections still pinned by a walker */
    struct iocp_list acceptors;   /* the acceptors on this worker */
    struct iocp_list dgrams;      /* every datagram socket this worker owns */
    struct iocp_conn *free_conns; /* the connection pool (singly linked) */
    uint32_t nfree_conns;
    struct iocp_send_chunk *free_chunks; /* send-queue chunk cache */
    uint32_t nfree_chunks;
    uint64_t now_ms;              /* refreshed once per loop turn */
    uint32_t exit_generation;     /* the exit packet this worker acted on */
    bool stopping;                /* closing everything, then leaving */
    bool leave;
    bool started;                 /* the thread was started */
    iocp_atomic_int failed;       /* the lasting wait() error that ended it, or 0 */
    struct iocp_counters cnt;
    /* The provided buffer of the receive completion being dispatched: a send
     * of bytes inside it, on a connection with nothing queued, may keep the
     * buffer and send from it instead of copying (conn.c); `kept` then tells
     * the dispatcher not to release it.  data is NULL outside a dispatch. */
    struct {
        const unsigned char *data;
        uint32_t len;
        uint32_t id;
        bool kept;
    } lend;
    /* Shared ports only (IOCP: one port, N threads).  Any thread may dequeue
     * a completion for this worker; it dispatches it holding `lock`, so the
     * worker's state still sees one thread at a time.  next_due mirrors the
     * earliest timer (UINT64_MAX: none) for the threads deciding how long to
     * wait, since any of them may have to run it. */
    struct iocp_mutex lock;
    iocp_atomic_u64 next_due;
};

enum iocp_engine_state { IOCP_ENGINE_STOPPED = 0, IOCP_ENGINE_RUNNING, IOCP_ENGINE_STOPPING };

struct iocp_engine {
    struct iocp_engine_config cfg;
    const struct iocp_port_ops *ops;
    unsigned nworkers;
    struct iocp_worker *workers;
    struct iocp_port *shared_port;
    struct iocp_registry registry;
    struct iocp_mutex lock;   /* start/stop/wait transitions, servers list */
    iocp_atomic_int state;    /* enum iocp_engine_state */
    iocp_atomic_u32 generation;
    iocp_atomic_u32 round_robin;
    iocp_atomic_u32 workers_alive;
    bool joined;              /* the current run's threads were joined */
    uint64_t started_ms;
    struct iocp_mutex join_lock;  /* one joiner at a time */
    struct iocp_list servers;
    struct iocp_mutex resolver_lock;
    struct iocp_list resolvers; /* name lookups in flight (client.c) */
    iocp_atomic_u32 threads_out; /* shared ports: threads that left their loop */
    /* Threads between their "is the engine running?" check and the end of
     * their post: stop waits for none to be left before posting the exit
     * packets, so a packet whose poster was told 0 always lands ahead of
     * them and runs (engine.c). */
    iocp_atomic_u32 posters;
    /* Public timers created and not freed, and freed ones whose memory a
     * worker still holds (timer.c): the audit reports both. */
    iocp_atomic_u64 timers_unfreed, timers_held;
};

/* The worker running on this thread, or NULL.  On a shared port this is the
 * worker whose completion is being dispatched, not the thread's own. */
struct iocp_worker *iocp__worker_current(void);

/* Submit req on w's port, counting it; 0 or the error (req still the caller's). */
int iocp__submit(struct iocp_worker *w, struct iocp_req *req);
/* Ask for req to complete early (no-op if it is not in flight). */
void iocp__cancel(struct iocp_worker *w, struct iocp_req *req);
/* Post a packet to worker index i, retrying a full queue up to a bound. */
int iocp__post(struct iocp_engine *e, unsigned i, uint32_t code, uint64_t arg);
/* Post a packet that must run if the call succeeds: IOCP_ESTATE when the
 * engine is not running, else iocp__post's result.  An engine stop cannot
 * overtake it (see `posters`). */
int iocp__post_running(struct iocp_engine *e, unsigned i, uint32_t code, uint64_t arg);
/* Log through the engine's hook. */
void iocp__log(struct iocp_engine *e, int level, const char *fmt, ...);

/* timer.c */
int iocp__timers_init(struct iocp_timer_heap *h);
void iocp__timers_fini(struct iocp_timer_heap *h);
void iocp__timer_init(struct iocp_heap_timer *t, void (*fn)(struct iocp_heap_timer *t));
int iocp__timer_start(struct iocp_worker *w, struct iocp_heap_timer *t, uint64_t due_ms);
void iocp__timer_stop(struct iocp_worker *w, struct iocp_heap_timer *t);
/* Take every timer for which drop() is true out of w's heap.  drop must not
 * touch the heap; it may free a node it returns true for. */
void iocp__timers_remove_if(struct iocp_worker *w, bool (*drop)(struct iocp_heap_timer *t));
/* Run due timers; return ms until the next one, or -1. */
int iocp__timers_run(struct iocp_worker *w);
/* Public timers: a start or stop posted from another thread (the packet's
 * arg), and the engine stop cancelling every armed one of worker w. */
void iocp__timer_packet(struct iocp_worker *w, uint64_t arg);
void iocp__timers_cancel_public(struct iocp_worker *w);

/* ---- connections ---- */

enum iocp_conn_flag {
    IOCP_CONN_OPEN = 1u << 0,       /* established and registered */
    IOCP_CONN_READING = 1u << 1,    /* the user wants data */
    IOCP_CONN_EOF_IN = 1u << 2,     /* the peer shut down its side */
    IOCP_CONN_SHUT_WANTED = 1u << 3, /* shut down our side once drained */
    IOCP_CONN_SHUT_DONE = 1u << 4,
    IOCP_CONN_CLOSING = 1u << 5,    /* graceful close: draining */
    IOCP_CONN_TEARDOWN = 1u << 6,   /* offline; waiting for requests to finish */
    IOCP_CONN_ABORT = 1u << 7,
    IOCP_CONN_PRESSURE = 1u << 8,   /* above the high watermark */
    IOCP_CONN_AUTOPAUSED = 1u << 9, /* paused by the default pressure rule */
    IOCP_CONN_CONNECTING = 1u << 10,
    IOCP_CONN_FINISHED = 1u << 11,  /* on_close ran */
    IOCP_CONN_RECV_CANCELLED = 1u << 12, /* a cancel of rreq is on its way */
    IOCP_CONN_STREAM = 1u << 13,    /* a pipe, terminal or file, not a socket */
    IOCP_CONN_WRITE_ONLY = 1u << 14, /* never read (a terminal on stdout is readable!) */
    IOCP_CONN_SEND_KEPT = 1u << 15, /* sreq sends from a kept receive buffer (kept_buf) */
};

struct iocp_connect_job;
struct iocp_server;

struct iocp_conn {
    struct iocp_reg_entry reg;
    struct iocp_handle h;
    struct iocp_worker *w;
    const struct iocp_conn_handler *handler;
    void *data;
    struct iocp_server *server; /* NULL for outgoing connections */
    struct iocp_list wlink;     /* in w->conns or w->zombies */
    iocp_atomic_u32 pins;       /* registry references held by walkers */
    uint32_t refs;              /* requests in flight (owner thread only) */
    uint32_t flags;             /* enum iocp_conn_flag */
    int status;                 /* what on_close will report */
    struct iocp_req rreq;
    struct iocp_req sreq;
    struct iocp_send_chunk *sq_head, *sq_tail;
    size_t queued;
    uint32_t send_low, send_high;
    uint32_t idle_ms;
    uint32_t direct_mark;            /* the worker's completion count at the last direct send */
    struct iocp_heap_timer timer;    /* idle or connect time-out */
    iocp_atomic_u64 bytes_in, bytes_out, last_io_ms;
    uint64_t created_ms;
    union iocp_sockaddr peer;
    /* Never needed at the same time, so they share the space: idle
     * connections are what a server holds most of. */
    union {
        struct iocp_connect_job *job; /* a client while connecting */
        unsigned char *rbuf;          /* a stream: its read buffer */
        struct iocp_conn *next_free;  /* in the pool */
        struct iocp_splices *sp;      /* an established socket that splices */
    };
};

/* splice_linux.c: kernel-side forwarding between two connections (Linux;
 * splice_none.c elsewhere: nothing ever splices there). */
struct iocp_splices;
/* True when c's input is spliced away (it must not arm its receive). */
bool iocp__splice_source(const struct iocp_conn *c);
/* True when c is written by a splice (user sends would interleave). */
bool iocp__splice_target(const struct iocp_conn *c);
/* Start whatever c's splices can do now: after its receive ended, after
 * its send queue drained, after a resume. */
void iocp__splice_kick(struct iocp_conn *c);
/* c is going down: cancel the splice requests it hosts. */
void iocp__splice_teardown(struct iocp_conn *c);
/* c has finished: let go of its splices (they are freed with their last
 * connection). */
void iocp__splice_detach(struct iocp_conn *c);

#define IOCP_SEND_LOW_DEFAULT (64u * 1024u)
#define IOCP_SEND_HIGH_DEFAULT (256u * 1024u)

/* pool.c: connections and send chunks, per worker */
struct iocp_conn *iocp__conn_get(struct iocp_worker *w);
void iocp__conn_put(struct iocp_worker *w, struct iocp_conn *c);
void iocp__pool_drain(struct iocp_worker *w);

/* conn.c */
/* Take a connection from the pool for worker w, ready to be set up. */
struct iocp_conn *iocp__conn_new(struct iocp_worker *w, const struct iocp_conn_handler *handler,
                                 void *data, size_t send_low, size_t send_high);
/* Give the connection its socket and bind it to the worker's port. */
int iocp__conn_bind(struct iocp_conn *c, iocp_socket_t sock);
/* The socket is connected: register the connection, call on_open, start
 * reading.  On error nothing was registered and no callback ran. */
int iocp__conn_establish(struct iocp_conn *c);
/* Drop a connection the user never saw: close its socket, back to the pool. */
void iocp__conn_discard(struct iocp_conn *c);
/* Run a user callback's caller with a reference held, then finish if due. */
void iocp__conn_enter(struct iocp_conn *c);
void iocp__conn_leave(struct iocp_conn *c);
/* Tear down whatever the connection is doing, with status. */
void iocp__conn_fail(struct iocp_conn *c, int status);
/* Run a task posted by iocp_conn_post() (the packet's arg) on worker w. */
void iocp__conn_task_run(struct iocp_worker *w, uint64_t arg);
/* Zombies whose pins have dropped go back to the pool. */
void iocp__conn_reap_zombies(struct iocp_worker *w);

/* server.c: stop accepting on this worker (engine stop). */
void iocp__acceptors_stop_worker(struct iocp_worker *w);
void iocp__server_account_close(struct iocp_server *s, unsigned worker);
uint64_t iocp__servers_pending_accepts(struct iocp_engine *e, unsigned *low, unsigned *high);

/* dgram.c: engine stop closes a worker's datagram sockets; the registry's
 * hold and release of a datagram socket's entry. */
void iocp__dgrams_stop_worker(struct iocp_worker *w);
void iocp__dgram_hold(struct iocp_reg_entry *entry);
void iocp__dgram_release(struct iocp_reg_entry *entry);

/* client.c: cancel name lookups at engine stop; let go of a finished
 * connection's connect state. */
void iocp__resolvers_cancel(struct iocp_engine *e);
void iocp__connect_job_release(struct iocp_conn *c);
/* The getaddrinfo hints of outgoing connections (no AI_ADDRCONFIG: see
 * client.c). */
void iocp__connect_hints(struct addrinfo *hints, int family, bool numeric_only);

/* sockutil_*.c: the socket helpers (sockutil.h, included above). */

#endif /* IOCP_CORE_H */
