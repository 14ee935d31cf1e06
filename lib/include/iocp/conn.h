/* SPDX-License-Identifier: MIT */
/*
 * Connections: a TCP stream owned by one worker.
 *
 * The library reads for you: while a connection is reading, data arrives in
 * on_data as soon as it is received, in a buffer that is valid only during
 * the call.  Sending copies the bytes into the connection's send queue; the
 * queue has byte watermarks so a fast producer can be paused (back-pressure)
 * instead of growing memory without bound.
 *
 * Every iocp_conn_* function must be called on the connection's worker:
 * from one of its callbacks, or from a task posted to that worker.  A
 * connection pointer is valid until on_close returns; anything kept longer
 * (a listing, a pairing in another thread) keeps the iocp_conn_id_t instead.
 */
#ifndef IOCP_CONN_H
#define IOCP_CONN_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_conn;
struct iocp_engine;
struct sockaddr;

/*
 * The callbacks of a connection.  Required: on_data and on_close.  A server
 * or client started without one fails with IOCP_EINVAL and
 * iocp_error_detail() names the missing callback.
 */
struct iocp_conn_handler {
    /* The connection is established (accepted or connected).  Optional:
     * without it reading starts at once. */
    void (*on_open)(struct iocp_conn *c);
    /* len bytes arrived; data is valid during the call only. */
    void (*on_data)(struct iocp_conn *c, const void *data, size_t len);
    /* The peer shut down its sending side.  Optional: without it the
     * connection flushes what it queued and closes. */
    void (*on_eof)(struct iocp_conn *c);
    /* The send queue crossed a watermark: full is true above the high mark
     * and false when it has drained to the low mark.  Optional: without it
     * the connection pauses its own reading while full (echo semantics). */
    void (*on_pressure)(struct iocp_conn *c, bool full);
    /* The connection is gone: status 0 after a close asked for, or the error
     * that ended it (IOCP_ECONNRESET, IOCP_ETIMEDOUT, IOCP_ECANCELED at engine
     * stop...).  Called exactly once; the pointer is invalid afterwards. */
    void (*on_close)(struct iocp_conn *c, int status);
};

/*
 * iocp_conn_send(c, data, len):
 * Queue len bytes (copied) for sending.  0, or IOCP_ENOTCONN (closing or
 * closed), IOCP_ESHUTDOWN (after iocp_conn_shutdown), IOCP_ENOMEM.  Crossing
 * the high watermark is not an error: on_pressure tells the producer.
 */
IOCP_EXTERN int iocp_conn_send(struct iocp_conn *c, const void *data, size_t len);

/* Bytes queued and not yet handed to the network. */
IOCP_EXTERN size_t iocp_conn_queued(const struct iocp_conn *c);

/*
 * iocp_conn_pause(c) / iocp_conn_resume(c):
 * Stop and restart reading.  A few bytes already received may still be
 * delivered after pause; nothing is ever dropped.  0 or IOCP_ENOTCONN.
 */
IOCP_EXTERN int iocp_conn_pause(struct iocp_conn *c);
IOCP_EXTERN int iocp_conn_resume(struct iocp_conn *c);

/*
 * iocp_conn_shutdown(c):
 * Half-close: once the queue has drained, shut down the sending side (the
 * peer reads EOF).  Reading goes on.  0 or IOCP_ENOTCONN.
 */
IOCP_EXTERN int iocp_conn_shutdown(struct iocp_conn *c);

enum iocp_close_mode {
    IOCP_CLOSE_GRACEFUL = 0, /* send what is queued, then close */
    IOCP_CLOSE_ABORT = 1,    /* drop the queue and reset the connection */
};

/*
 * iocp_conn_close(c, mode):
 * Close the connection.  Pending requests complete with IOCP_ECANCELED and
 * on_close runs once they all have.  Idempotent: a second call may upgrade a
 * graceful close to an abort and otherwise does nothing.
 */
IOCP_EXTERN void iocp_conn_close(struct iocp_conn *c, enum iocp_close_mode mode);

/*
 * iocp_conn_splice(from, to):
 * From now on, bytes arriving on `from` go to `to` inside the kernel
 * (splice(2) through a pipe on Linux), never through user space: on_data is
 * no longer called for `from` once the receive in flight has ended (bytes it
 * still delivers are the caller's to queue on `to`, and go out before any
 * spliced byte).  Bytes sent on `to` later go out between two spliced
 * chunks, so a caller that wants one stream sends nothing else.  The flow
 * follows the target's pace: nothing more is read while it cannot take
 * more.  When `from` reaches EOF and everything has been forwarded, `to` is
 * shut down (half-close) and from's on_eof runs as usual.  Both must be open
 * sockets of the same worker.  Returns 0; IOCP_ENOTSUP where the backend or
 * platform cannot (copy instead); IOCP_EINVAL, IOCP_ENOTCONN, IOCP_ESHUTDOWN
 * or IOCP_EBUSY (already spliced) otherwise.  Call it on the worker.
 */
IOCP_EXTERN int iocp_conn_splice(struct iocp_conn *from, struct iocp_conn *to);

/*
 * Tasks by connection ID, from any thread.  A connection's pointer may only
 * be used on its worker while it is open; its iocp_conn_id_t may be kept
 * anywhere, for as long as wanted, and these calls turn it back into the
 * connection on the right worker, or report that it is gone.  An ID never
 * names a later connection (its slot's generation is checked).
 */

/* A task for a connection: c is the live connection and status 0, or c is
 * NULL and status IOCP_ENOENT when it closed before the task could run. */
typedef void (*iocp_conn_task_fn)(struct iocp_conn *c, void *arg, int status);

/*
 * iocp_conn_post(e, id, fn, arg):
 * Run fn on the worker that owns connection `id`.  Returns IOCP_ENOENT at
 * once if id names no open connection (a stale, closed or zero ID): fn never
 * runs.  Otherwise returns 0 and fn runs exactly once, on the owning worker:
 * with the connection and status 0 if it is still open then, or with c NULL
 * and IOCP_ENOENT if it closed in between (so that arg can be released).
 * Other errors, with fn never run: IOCP_ESTATE (engine not running),
 * IOCP_EAGAIN (the worker's post queue stayed full), IOCP_ENOMEM,
 * IOCP_EINVAL (NULL e or fn).  From the owning worker itself the task is
 * still queued, never run inside the call.
 */
IOCP_EXTERN int iocp_conn_post(struct iocp_engine *e, iocp_conn_id_t id, iocp_conn_task_fn fn,
                               void *arg);

/*
 * iocp_conn_close_id(e, id, mode):
 * iocp_conn_close() by ID, from any thread.  On the owning worker the close
 * happens in the call; elsewhere it is posted there.  0 when the close was
 * made or posted (if the connection ends on its own meanwhile, the posted
 * close does nothing), IOCP_ENOENT when id names no open connection, or
 * IOCP_ESTATE / IOCP_EAGAIN / IOCP_ENOMEM / IOCP_EINVAL as for
 * iocp_conn_post().  on_close reports the end as usual.
 */
IOCP_EXTERN int iocp_conn_close_id(struct iocp_engine *e, iocp_conn_id_t id,
                                   enum iocp_close_mode mode);

/* Watermarks of the send queue, in bytes (low < high). */
IOCP_EXTERN int iocp_conn_set_watermarks(struct iocp_conn *c, size_t low, size_t high);

/* Close the connection if nothing is received or sent for ms (0: never). */
IOCP_EXTERN void iocp_conn_set_idle_timeout(struct iocp_conn *c, unsigned ms);

/* The connection's process-unique ID (see types.h). */
IOCP_EXTERN iocp_conn_id_t iocp_conn_id(const struct iocp_conn *c);

/* User data. */
IOCP_EXTERN void iocp_conn_set_data(struct iocp_conn *c, void *data);
IOCP_EXTERN void *iocp_conn_data(const struct iocp_conn *c);

/* The engine and the worker index the connection belongs to. */
IOCP_EXTERN struct iocp_engine *iocp_conn_engine(const struct iocp_conn *c);
IOCP_EXTERN unsigned iocp_conn_worker(const struct iocp_conn *c);

/* The socket (for socket options; never close it yourself). */
IOCP_EXTERN iocp_socket_t iocp_conn_socket(const struct iocp_conn *c);

/*
 * iocp_conn_peer(c, buf, len) / iocp_conn_local(c, buf, len):
 * The remote or local address as text ("127.0.0.1:5000", "[::1]:5000").
 * A Unix-domain connection's peer is the socket path both ends share
 * ("unix:/run/app.sock", "unix:@name"): its clients have no name of their
 * own; iocp_conn_peer_cred() tells who they are.  Returns buf.
 */
IOCP_EXTERN const char *iocp_conn_peer(const struct iocp_conn *c, char *buf, size_t len);
IOCP_EXTERN const char *iocp_conn_local(const struct iocp_conn *c, char *buf, size_t len);

/*
 * iocp_conn_peer_cred(c, out):
 * Who is at the other end of a Unix-domain connection, as the kernel
 * recorded it when the peer connected (or listened): its process, user and
 * group IDs; -1 for what the system does not tell (Windows gives the
 * process only).  0; IOCP_ENOTSUP for a TCP connection; IOCP_EINVAL.
 */
struct iocp_peer_cred {
    int64_t pid, uid, gid;
};
IOCP_EXTERN int iocp_conn_peer_cred(const struct iocp_conn *c, struct iocp_peer_cred *out);

/* Bytes received and sent so far, and milliseconds since creation / last I/O. */
IOCP_EXTERN uint64_t iocp_conn_bytes_in(const struct iocp_conn *c);
IOCP_EXTERN uint64_t iocp_conn_bytes_out(const struct iocp_conn *c);
IOCP_EXTERN uint64_t iocp_conn_age_ms(const struct iocp_conn *c);
IOCP_EXTERN uint64_t iocp_conn_idle_ms(const struct iocp_conn *c);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_CONN_H */
