/* SPDX-License-Identifier: MIT */
/*
 * Connections: reading, the send queue with its watermarks, half-close,
 * graceful and abortive close, idle time-outs, and the reference count that
 * decides when a connection may go back to the pool.
 *
 * Lifetime.  A connection holds one reference per request in flight (its
 * multishot receive, its send) plus one for each user callback that is
 * running.  Closing takes it offline at once (out of the registry, so its
 * socket value can be reused safely) and cancels its requests; only when
 * the count reaches zero is the socket closed, on_close called and the
 * object recycled.  A stats walker on another thread may still hold a pin
 * then: the object waits among the worker's zombies until the pin drops.
 *
 * Threads.  Everything here runs on the connection's worker.
 */
#include "core.h"
#include "unixsock.h"

#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "sendq.h"

/* Streams (pipes, terminals, files) read into a buffer of their own: the
 * port's provided buffers are for sockets. */
#define STREAM_READ_SIZE (64u * 1024u)

static void on_recv(struct iocp_req *req, int32_t result, uint32_t flags, void *data);
static void on_send(struct iocp_req *req, int32_t result, uint32_t flags, void *data);
static void on_idle_timer(struct iocp_heap_timer *t);
static void begin_teardown(struct iocp_conn *c, int status);
static void maybe_finish(struct iocp_conn *c);

/* Changes with every completion the worker dispatches (send_direct). */
static uint32_t completion_count(struct iocp_worker *w)
{
    return (uint32_t)atomic_load_explicit(&w->cnt.completions, memory_order_relaxed);
}

struct iocp_conn *iocp__conn_new(struct iocp_worker *w, const struct iocp_conn_handler *handler,
                                 void *data, size_t send_low, size_t send_high)
{
    struct iocp_conn *c = iocp__conn_get(w);
    if (!c)
        return NULL;
    c->w = w;
    c->handler = handler;
    c->data = data;
    c->send_low = (uint32_t)(send_low ? send_low : IOCP_SEND_LOW_DEFAULT);
    c->send_high = (uint32_t)(send_high ? send_high : IOCP_SEND_HIGH_DEFAULT);
    if (c->send_low >= c->send_high)
        c->send_low = c->send_high / 2;
    c->h.sock = IOCP_INVALID_SOCKET;
    iocp__reg_entry_init(&c->reg);
    iocp__timer_init(&c->timer, on_idle_timer);
    c->created_ms = w->now_ms;
    c->direct_mark = completion_count(w) - 1;
    atomic_init(&c->last_io_ms, w->now_ms);
    iocp_list_insert_tail(&w->conns, &c->wlink);
    IOCP_COUNT(w, conns, 1);
    return c;
}

int iocp__conn_bind(struct iocp_conn *c, iocp_socket_t sock)
{
    enum iocp_handle_kind kind =
        (c->flags & IOCP_CONN_STREAM) ? iocp__handle_kind(sock) : IOCP_HANDLE_SOCKET;
    iocp__handle_init(&c->h, sock, kind);
    /* Accepted (accept4 or io_uring's accept, SOCK_NONBLOCK) or made by
     * iocp__socket_stream (SOCK_NONBLOCK); only pipes come from users. */
    c->h.own_stream = !(c->flags & IOCP_CONN_STREAM);
    return iocp__port_bind(c->w->port, &c->h);
}

void iocp__conn_enter(struct iocp_conn *c)
{
    c->refs++;
}

void iocp__conn_leave(struct iocp_conn *c)
{
    c->refs--;
    maybe_finish(c);
}

static bool wants_to_read(const struct iocp_conn *c)
{
    if (iocp__splice_source(c))
        return false;
    return (c->flags & IOCP_CONN_READING) &&
           !(c->flags & (IOCP_CONN_EOF_IN | IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING |
                         IOCP_CONN_AUTOPAUSED));
}

/*
 * How much one arming of the receive may bring in: the room left under the
 * high watermark plus one buffer.  A port that had already received data
 * when a pause cancelled the receive still delivers it, so the budget is
 * what keeps a paused connection (an echo whose client never reads) at the
 * high watermark plus one receive buffer, on every backend: without it an
 * io_uring multishot receive drains the whole socket into buffers first.
 * While the queue is well below the mark the budget is large and the
 * receive re-arms rarely; near the mark it shrinks to a buffer at a time.
 */
static uint32_t recv_budget(const struct iocp_conn *c)
{
    size_t room = c->queued < c->send_high ? c->send_high - c->queued : 0;
    size_t budget = room + c->w->port->buffer_size;
    return budget > UINT32_MAX ? UINT32_MAX : (uint32_t)budget;
}

/*
 * Make the receive request match what the connection wants: armed while it
 * reads, cancelled otherwise.  Cancelling is asynchronous; data that was
 * already received still arrives and is delivered.
 */
static void update_reading(struct iocp_conn *c)
{
    if (wants_to_read(c)) {
        if (c->rreq.in_flight)
            return;
        c->rreq.done = on_recv;
        c->rreq.handle = &c->h;
        if (c->flags & IOCP_CONN_STREAM) {
            c->rreq.op = IOCP_OP_READ;
            c->rreq.flags = 0;
            c->rreq.buf = c->rbuf;
            c->rreq.len = STREAM_READ_SIZE;
        } else {
            c->rreq.op = IOCP_OP_RECV;
            c->rreq.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
            c->rreq.buf = NULL;
            c->rreq.len = recv_budget(c);
        }
        int rc = iocp__submit(c->w, &c->rreq);
        if (rc < 0) {
            begin_teardown(c, rc);
            return;
        }
        c->refs++;
    } else if (c->rreq.in_flight && !(c->flags & IOCP_CONN_RECV_CANCELLED)) {
        c->flags |= IOCP_CONN_RECV_CANCELLED;
        iocp__cancel(c->w, &c->rreq);
    } else if (!c->rreq.in_flight && iocp__splice_source(c)) {
        iocp__splice_kick(c);
    }
}

int iocp__conn_establish(struct iocp_conn *c)
{
    struct iocp_worker *w = c->w;
    if (c->flags & IOCP_CONN_STREAM) {
        /* Streams are not network connections: not in the registry. */
        c->rbuf = malloc(STREAM_READ_SIZE);
        if (!c->rbuf)
            return IOCP_ENOMEM;
    } else {
        int rc = iocp__registry_add(&w->engine->registry, &c->reg, c->h.sock);
        if (rc <= 0)
            return rc < 0 ? rc : IOCP_EEXIST;
        if (c->peer.sa.sa_family != AF_UNIX && !(IOCP_ACCEPTED_HAS_NODELAY && c->server))
            iocp__socket_nodelay(c->h.sock);
    }
    c->flags |= IOCP_CONN_OPEN;
    if (!(c->flags & IOCP_CONN_WRITE_ONLY))
        c->flags |= IOCP_CONN_READING;
    c->flags &= ~IOCP_CONN_CONNECTING;
    atomic_store_explicit(&c->last_io_ms, w->now_ms, memory_order_relaxed);
    iocp__timer_stop(w, &c->timer); /* the connect time-out, for a client */
    c->timer.fn = on_idle_timer;
    if (c->idle_ms)
        iocp__timer_start(w, &c->timer, w->now_ms + c->idle_ms);

    iocp__conn_enter(c);
    if (c->handler->on_open)
        c->handler->on_open(c);
    update_reading(c);
    iocp__conn_leave(c);
    return 0;
}

void iocp__conn_discard(struct iocp_conn *c)
{
    struct iocp_worker *w = c->w;
    if (c->h.sock != IOCP_INVALID_SOCKET) {
        iocp__port_unbind(&c->h);
        iocp__socket_close(c->h.sock);
    }
    iocp_list_remove(&c->wlink);
    IOCP_COUNT(w, conns, (uint64_t)-1);
    iocp__conn_put(w, c);
}

/* ---- receiving ---- */

static void on_recv(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_conn *c = iocp_container_of(req, struct iocp_conn, rreq);
    struct iocp_worker *w = c->w;
    bool ended = !(flags & IOCP_EV_MORE);

    /* The request's own reference is dropped last, so that a callback that
     * closes the connection cannot free it under our feet. */
    if (result > 0) {
        iocp__count_add(&c->bytes_in, (uint64_t)result);
        atomic_store_explicit(&c->last_io_ms, w->now_ms, memory_order_relaxed);
        IOCP_COUNT(w, bytes_in, (uint64_t)result);
        if (!(c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING)))
            c->handler->on_data(c, data, (size_t)result);
    } else if (result == 0) {
        c->flags |= IOCP_CONN_EOF_IN;
        if (!(c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING))) {
            if (c->handler->on_eof)
                c->handler->on_eof(c);
            else
                iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
        }
    } else if (result != IOCP_ECANCELED) {
        begin_teardown(c, result);
    }

    if (ended) {
        c->flags &= ~IOCP_CONN_RECV_CANCELLED;
        c->refs--;
        update_reading(c);
        maybe_finish(c);
    }
}

int iocp_conn_pause(struct iocp_conn *c)
{
    if (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_FINISHED))
        return IOCP_ENOTCONN;
    c->flags &= ~IOCP_CONN_READING;
    update_reading(c);
    return 0;
}

int iocp_conn_resume(struct iocp_conn *c)
{
    if (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_FINISHED | IOCP_CONN_WRITE_ONLY))
        return IOCP_ENOTCONN;
    c->flags |= IOCP_CONN_READING;
    if (c->flags & IOCP_CONN_OPEN)
        update_reading(c);
    return 0;
}

/* ---- sending ---- */

static void kick_send(struct iocp_conn *c)
{
    struct iocp_send_chunk *k = c->sq_head;
    if (!k || c->sreq.in_flight)
        return;
    c->sreq.done = on_send;
    c->sreq.handle = &c->h;
    c->sreq.op = (c->flags & IOCP_CONN_STREAM) ? IOCP_OP_WRITE : IOCP_OP_SEND;
    c->sreq.flags = 0;
    c->sreq.buf = k->data + k->start;
    c->sreq.len = k->end - k->start;
    int rc = iocp__submit(c->w, &c->sreq);
    if (rc < 0) {
        begin_teardown(c, rc);
        return;
    }
    c->refs++;
}

static void drop_queue(struct iocp_conn *c)
{
    while (c->sq_head) {
        struct iocp_send_chunk *k = c->sq_head;
        c->sq_head = k->next;
        iocp__chunk_put(c->w, k);
    }
    c->sq_tail = NULL;
    c->queued = 0;
}

/* The queue fell to the low watermark: lift the pressure. */
static void pressure_off(struct iocp_conn *c)
{
    c->flags &= ~IOCP_CONN_PRESSURE;
    if (c->flags & IOCP_CONN_AUTOPAUSED) {
        c->flags &= ~IOCP_CONN_AUTOPAUSED;
        update_reading(c);
    } else if (c->handler->on_pressure) {
        c->handler->on_pressure(c, false);
    }
}

/* The queue is empty: carry out a pending half-close or graceful close. */
static void queue_drained(struct iocp_conn *c)
{
    if ((c->flags & IOCP_CONN_SHUT_WANTED) && (c->flags & IOCP_CONN_STREAM)) {
        /* A stream has no half-close: closing it is how its reader sees
         * the end (a pipe's EOF). */
        c->flags |= IOCP_CONN_SHUT_DONE;
        begin_teardown(c, c->status);
        return;
    }
    if ((c->flags & IOCP_CONN_SHUT_WANTED) && !(c->flags & IOCP_CONN_SHUT_DONE)) {
        c->flags |= IOCP_CONN_SHUT_DONE;
        int rc = iocp__socket_shutdown_send(c->h.sock);
        if (rc < 0 && rc != IOCP_ENOTCONN) {
            begin_teardown(c, rc);
            return;
        }
    }
    if (c->flags & IOCP_CONN_CLOSING) {
        begin_teardown(c, c->status);
        return;
    }
    if (iocp__splice_target(c))
        iocp__splice_kick(c);
}

/*
 * A send from a kept receive buffer completed with result.  Sends the rest
 * from the same buffer when the socket took only part (true: the request is
 * in flight again), otherwise gives the buffer back to the port and takes
 * what was not sent off the queued count.
 */
static bool kept_send_done(struct iocp_conn *c, int32_t result)
{
    struct iocp_worker *w = c->w;
    uint32_t left = c->sreq.len;
    if (result > 0) {
        iocp__count_add(&c->bytes_out, (uint64_t)result);
        atomic_store_explicit(&c->last_io_ms, w->now_ms, memory_order_relaxed);
        IOCP_COUNT(w, bytes_out, (uint64_t)result);
        left -= (uint32_t)result;
        c->queued -= (size_t)result;
        if (left && !(c->flags & IOCP_CONN_TEARDOWN)) {
            c->sreq.buf = (unsigned char *)c->sreq.buf + result;
            c->sreq.len = left;
            int rc = iocp__submit(w, &c->sreq);
            if (rc == 0)
                return true;
            begin_teardown(c, rc);
        }
    }
    c->queued -= left;
    c->flags &= ~IOCP_CONN_SEND_KEPT;
    w->port->ops->release_buffer(w->port, c->sreq.kept_buf);
    return false;
}

/* Bytes left the queue: lift the pressure, send what is next or finish
 * what waited for the queue to drain. */
static void sent_some(struct iocp_conn *c)
{
    if ((c->flags & IOCP_CONN_PRESSURE) && c->queued <= c->send_low)
        pressure_off(c);
    if (!(c->flags & IOCP_CONN_TEARDOWN)) {
        if (c->queued)
            kick_send(c);
        else
            queue_drained(c);
    }
}

static void on_send(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_conn *c = iocp_container_of(req, struct iocp_conn, sreq);
    struct iocp_worker *w = c->w;
    (void)flags;
    (void)data;

    if (c->flags & IOCP_CONN_SEND_KEPT) {
        if (kept_send_done(c, result))
            return; /* the rest is on its way; the request keeps its reference */
        if (result > 0)
            sent_some(c);
    } else if (result > 0 && c->sq_head) {
        iocp__count_add(&c->bytes_out, (uint64_t)result);
        atomic_store_explicit(&c->last_io_ms, w->now_ms, memory_order_relaxed);
        IOCP_COUNT(w, bytes_out, (uint64_t)result);
        struct iocp_send_chunk *k = c->sq_head;
        k->start += (uint32_t)result;
        c->queued -= (size_t)result;
        if (k->start == k->end) {
            c->sq_head = k->next;
            if (!c->sq_head)
                c->sq_tail = NULL;
            iocp__chunk_put(w, k);
        }
        sent_some(c);
    }
    if (result == 0)
        begin_teardown(c, IOCP_EPIPE);
    else if (result < 0 && !(result == IOCP_ECANCELED && (c->flags & IOCP_CONN_TEARDOWN)))
        begin_teardown(c, result);
    c->refs--;
    maybe_finish(c);
}

/*
 * Nothing queued and nothing in flight: send from the caller's buffer at
 * once where the port can (no copy into a chunk, no completion), and leave
 * in *data and *len what the socket did not take.  Once per completion the
 * worker dispatches: a reply to what was received goes straight out, while
 * a burst of sends from one callback is queued after its first and counts
 * against the watermarks, as it does where every send is a request.  Not
 * for streams or a splice target (the pipe may hold bytes that must go
 * first), nor while faults are injected (they arrive through completions).
 */
static void send_direct(struct iocp_conn *c, const void **data, size_t *len)
{
    struct iocp_port *port = c->w->port;
    uint32_t now = completion_count(c->w);
    if (!port->ops->send_now || c->direct_mark == now || (c->flags & IOCP_CONN_STREAM) ||
        iocp__splice_target(c) || iocp__fault_armed())
        return;
    c->direct_mark = now;
    uint32_t want = *len > UINT32_MAX ? UINT32_MAX : (uint32_t)*len;
    uint32_t sent = port->ops->send_now(port, &c->h, *data, want);
    if (!sent)
        return;
    struct iocp_worker *w = c->w;
    iocp__count_add(&c->bytes_out, sent);
    atomic_store_explicit(&c->last_io_ms, w->now_ms, memory_order_relaxed);
    IOCP_COUNT(w, bytes_out, sent);
    *data = (const unsigned char *)*data + sent;
    *len -= sent;
}

/* The queue rose above the high watermark: apply the pressure. */
static void check_pressure(struct iocp_conn *c)
{
    if (c->queued > c->send_high && !(c->flags & IOCP_CONN_PRESSURE)) {
        c->flags |= IOCP_CONN_PRESSURE;
        if (c->handler->on_pressure) {
            c->handler->on_pressure(c, true);
        } else {
            c->flags |= IOCP_CONN_AUTOPAUSED;
            update_reading(c);
        }
    }
}

/*
 * Nothing queued and nothing in flight, and the bytes lie in the receive
 * buffer whose completion is being dispatched (an echo, or a relay passing
 * on what it read): send straight from that buffer and keep it until the
 * send completes, instead of copying the bytes into a chunk.  Where the port
 * allows it (io_uring, while it has buffers to spare); the direct send has
 * had its chance first.  True when the send is on its way.
 */
static bool send_kept(struct iocp_conn *c, const void *data, size_t len)
{
    struct iocp_worker *w = c->w;
    struct iocp_port *port = w->port;
    const unsigned char *p = data;
    if (!w->lend.data || w->lend.kept || p < w->lend.data ||
        len > (size_t)(w->lend.data + w->lend.len - p) || !port->ops->keep_buffer ||
        (c->flags & IOCP_CONN_STREAM) || iocp__splice_target(c) ||
        !port->ops->keep_buffer(port, w->lend.id))
        return false;
    c->sreq.done = on_send;
    c->sreq.handle = &c->h;
    c->sreq.op = IOCP_OP_SEND;
    c->sreq.flags = 0;
    c->sreq.buf = (void *)(uintptr_t)data;
    c->sreq.len = (uint32_t)len;
    c->sreq.kept_buf = w->lend.id;
    if (iocp__submit(w, &c->sreq) < 0)
        return false; /* the copy's own submit will report it */
    w->lend.kept = true;
    c->flags |= IOCP_CONN_SEND_KEPT;
    c->queued += len;
    c->refs++;
    return true;
}

int iocp_conn_send(struct iocp_conn *c, const void *data, size_t len)
{
    if (!(c->flags & IOCP_CONN_OPEN) ||
        (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING | IOCP_CONN_FINISHED)))
        return IOCP_ENOTCONN;
    if (c->flags & IOCP_CONN_SHUT_WANTED)
        return IOCP_ESHUTDOWN;
    if (len == 0)
        return 0;
    if (!c->sq_head && !c->sreq.in_flight) {
        send_direct(c, &data, &len);
        if (len == 0)
            return 0;
        if (send_kept(c, data, len)) {
            check_pressure(c);
            return 0;
        }
    }

    /* Fill the tail chunk, then one new chunk for the rest: allocate first so
     * that a failure leaves the queue exactly as it was. */
    struct iocp_send_chunk *tail = c->sq_tail;
    size_t room = tail ? tail->cap - tail->end : 0;
    size_t first = len < room ? len : room;
    struct iocp_send_chunk *fresh = NULL;
    if (len > first) {
        fresh = iocp__chunk_get(c->w, len - first);
        if (!fresh)
            return IOCP_ENOMEM;
    }
    const unsigned char *p = data;
    if (first) {
        memcpy(tail->data + tail->end, p, first);
        tail->end += (uint32_t)first;
    }
    if (fresh) {
        memcpy(fresh->data, p + first, len - first);
        fresh->end = (uint32_t)(len - first);
        if (tail)
            tail->next = fresh;
        else
            c->sq_head = fresh;
        c->sq_tail = fresh;
    }
    c->queued += len;
    kick_send(c);
    check_pressure(c);
    return 0;
}

size_t iocp_conn_queued(const struct iocp_conn *c)
{
    return c->queued;
}

int iocp_conn_set_watermarks(struct iocp_conn *c, size_t low, size_t high)
{
    if (low >= high || high > UINT32_MAX)
        return IOCP_EINVAL;
    c->send_low = (uint32_t)low;
    c->send_high = (uint32_t)high;
    return 0;
}

int iocp_conn_shutdown(struct iocp_conn *c)
{
    if (!(c->flags & IOCP_CONN_OPEN) || (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_FINISHED)))
        return IOCP_ENOTCONN;
    c->flags |= IOCP_CONN_SHUT_WANTED;
    if (!c->queued && !c->sreq.in_flight)
        queue_drained(c);
    return 0;
}

/* ---- closing ---- */

/*
 * Take the connection offline and cancel what it has in flight.  Leaving the
 * registry comes first: once the socket is closed its number is handed out
 * again, and the hash must never hold two entries for one socket.
 */
static void begin_teardown(struct iocp_conn *c, int status)
{
    if (c->flags & IOCP_CONN_TEARDOWN) {
        if (status < 0 && !c->status)
            c->status = status;
        return;
    }
    c->flags |= IOCP_CONN_TEARDOWN;
    if (status < 0 && !c->status)
        c->status = status;
    if (status < 0)
        c->flags |= IOCP_CONN_ABORT;
    if ((c->flags & IOCP_CONN_OPEN) && !(c->flags & IOCP_CONN_STREAM))
        iocp__registry_remove(&c->w->engine->registry, &c->reg);
    iocp__timer_stop(c->w, &c->timer);
    if (c->rreq.in_flight && !(c->flags & IOCP_CONN_RECV_CANCELLED)) {
        c->flags |= IOCP_CONN_RECV_CANCELLED;
        iocp__cancel(c->w, &c->rreq);
    }
    if (c->sreq.in_flight)
        iocp__cancel(c->w, &c->sreq);
    iocp__splice_teardown(c);
    maybe_finish(c);
}

static void maybe_finish(struct iocp_conn *c)
{
    if (!(c->flags & IOCP_CONN_TEARDOWN) || c->refs || (c->flags & IOCP_CONN_FINISHED))
        return;
    struct iocp_worker *w = c->w;
    c->flags |= IOCP_CONN_FINISHED;
    drop_queue(c);
    if (c->h.sock != IOCP_INVALID_SOCKET) {
        if (!(c->flags & (IOCP_CONN_STREAM | IOCP_CONN_ABORT)) && iocp__port_recycle(&c->h)) {
            /* The port keeps the socket for reuse (Windows: DisconnectEx). */
        } else {
            iocp__port_unbind(&c->h);
            if (c->flags & IOCP_CONN_STREAM)
                iocp__handle_close(c->h.sock);
            else if (c->flags & IOCP_CONN_ABORT)
                iocp__socket_abort(c->h.sock);
            else
                iocp__socket_close(c->h.sock);
        }
        c->h.sock = IOCP_INVALID_SOCKET;
    }
    if (c->flags & IOCP_CONN_STREAM) {
        free(c->rbuf);
        c->rbuf = NULL;
    }
    iocp_list_remove(&c->wlink);
    IOCP_COUNT(w, conns, (uint64_t)-1);
    if ((c->flags & IOCP_CONN_OPEN) && !(c->flags & IOCP_CONN_STREAM)) {
        IOCP_COUNT(w, closed, 1);
        if (c->server)
            iocp__server_account_close(c->server, w->index);
    }
    if (iocp__splice_source(c) || iocp__splice_target(c))
        iocp__splice_detach(c);
    else if (!(c->flags & (IOCP_CONN_STREAM | IOCP_CONN_OPEN)) && c->job)
        iocp__connect_job_release(c);
    c->handler->on_close(c, c->status);

    /* A stats walk on another thread may still hold the entry. */
    if (atomic_load_explicit(&c->pins, memory_order_acquire) == 0)
        iocp__conn_put(w, c);
    else
        iocp_list_insert_tail(&w->zombies, &c->wlink);
}

void iocp__conn_reap_zombies(struct iocp_worker *w)
{
    struct iocp_list *pos, *tmp;
    iocp_list_foreach_safe(pos, tmp, &w->zombies)
    {
        struct iocp_conn *c = iocp_container_of(pos, struct iocp_conn, wlink);
        if (atomic_load_explicit(&c->pins, memory_order_acquire) == 0) {
            iocp_list_remove(&c->wlink);
            iocp__conn_put(w, c);
        }
    }
}

void iocp_conn_close(struct iocp_conn *c, enum iocp_close_mode mode)
{
    if (c->flags & IOCP_CONN_FINISHED)
        return;
    if (mode == IOCP_CLOSE_ABORT) {
        c->flags |= IOCP_CONN_ABORT;
        if (!c->sreq.in_flight)
            drop_queue(c);
        if (c->flags & IOCP_CONN_TEARDOWN) {
            if (c->sreq.in_flight)
                iocp__cancel(c->w, &c->sreq);
            return;
        }
        begin_teardown(c, 0);
        return;
    }
    if (c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING))
        return;
    c->flags |= IOCP_CONN_CLOSING;
    update_reading(c);
    if (!c->queued && !c->sreq.in_flight)
        begin_teardown(c, 0);
}

void iocp__conn_fail(struct iocp_conn *c, int status)
{
    if (c->flags & IOCP_CONN_FINISHED)
        return;
    if (!c->status)
        c->status = status;
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

/* ---- idle time-out ---- */

static void on_idle_timer(struct iocp_heap_timer *t)
{
    struct iocp_conn *c = iocp_container_of(t, struct iocp_conn, timer);
    struct iocp_worker *w = c->w;
    uint64_t last = atomic_load_explicit(&c->last_io_ms, memory_order_relaxed);
    if (w->now_ms - last >= c->idle_ms) {
        iocp__conn_enter(c);
        c->status = IOCP_ETIMEDOUT;
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
        iocp__conn_leave(c);
        return;
    }
    iocp__timer_start(w, t, last + c->idle_ms);
}

void iocp_conn_set_idle_timeout(struct iocp_conn *c, unsigned ms)
{
    c->idle_ms = ms;
    if (!(c->flags & IOCP_CONN_OPEN) || (c->flags & IOCP_CONN_TEARDOWN))
        return;
    if (ms)
        iocp__timer_start(c->w, &c->timer, c->w->now_ms + ms);
    else
        iocp__timer_stop(c->w, &c->timer);
}

/* ---- accessors ---- */

iocp_conn_id_t iocp_conn_id(const struct iocp_conn *c)
{
    return c->reg.id;
}

void iocp_conn_set_data(struct iocp_conn *c, void *data)
{
    c->data = data;
}

void *iocp_conn_data(const struct iocp_conn *c)
{
    return c->data;
}

struct iocp_engine *iocp_conn_engine(const struct iocp_conn *c)
{
    return c->w->engine;
}

unsigned iocp_conn_worker(const struct iocp_conn *c)
{
    return c->w->index;
}

iocp_socket_t iocp_conn_socket(const struct iocp_conn *c)
{
    return c->h.sock;
}

const char *iocp_conn_peer(const struct iocp_conn *c, char *buf, size_t len)
{
    if (c->peer.sa.sa_family == AF_UNIX)
        return iocp__unix_peer_name(c->h.sock, buf, len);
    return iocp__addr_format(&c->peer.sa, buf, len);
}

const char *iocp_conn_local(const struct iocp_conn *c, char *buf, size_t len)
{
    union iocp_sockaddr local;
    socklen_t alen = sizeof local;
    memset(&local, 0, sizeof local);
    if (c->peer.sa.sa_family == AF_UNIX) {
        struct sockaddr_un un;
        socklen_t ulen = sizeof un;
        memset(&un, 0, sizeof un);
        if (getsockname(c->h.sock, (struct sockaddr *)&un, &ulen) != 0)
            ulen = 0;
        return iocp__unix_format(&un, ulen, buf, len);
    }
    if (getsockname(c->h.sock, &local.sa, &alen) != 0)
        local.sa.sa_family = AF_UNSPEC;
    return iocp__addr_format(&local.sa, buf, len);
}

uint64_t iocp_conn_bytes_in(const struct iocp_conn *c)
{
    return atomic_load_explicit((iocp_atomic_u64 *)&c->bytes_in, memory_order_relaxed);
}

uint64_t iocp_conn_bytes_out(const struct iocp_conn *c)
{
    return atomic_load_explicit((iocp_atomic_u64 *)&c->bytes_out, memory_order_relaxed);
}

uint64_t iocp_conn_age_ms(const struct iocp_conn *c)
{
    return iocp__now_ms() - c->created_ms;
}

uint64_t iocp_conn_idle_ms(const struct iocp_conn *c)
{
    uint64_t now = iocp__now_ms();
    uint64_t last = atomic_load_explicit((iocp_atomic_u64 *)&c->last_io_ms, memory_order_relaxed);
    return now > last ? now - last : 0;
}

/* ---- tasks by connection ID (any thread) ---- */

struct iocp_conn_task {
    iocp_conn_id_t id;
    iocp_conn_task_fn fn;
    void *arg;
};

/* The open connection with this ID, or NULL.  The registry's slot table
 * checks the generation; the pin it takes is dropped at once: the caller
 * only needs the object to stay put while it reads the worker (a pinned
 * object is never recycled) or, on the owning worker, for as long as it
 * runs synchronously. */
static struct iocp_conn *conn_by_id(struct iocp_engine *e, iocp_conn_id_t id, unsigned *worker)
{
    struct iocp_reg_entry *entry = iocp__registry_lookup(&e->registry, id);
    if (!entry)
        return NULL;
    if (entry->kind != IOCP_REG_CONN) { /* a datagram socket's ID */
        e->registry.ops.release(entry);
        return NULL;
    }
    struct iocp_conn *c = iocp_container_of(entry, struct iocp_conn, reg);
    *worker = c->w->index;
    e->registry.ops.release(entry);
    return c;
}

void iocp__conn_task_run(struct iocp_worker *w, uint64_t arg)
{
    struct iocp_conn_task *task = (struct iocp_conn_task *)(uintptr_t)arg;
    unsigned owner = 0;
    /* Looked up again here, on the owner: the connection may have closed
     * (and its slot been reused) since the post. */
    struct iocp_conn *c = conn_by_id(w->engine, task->id, &owner);
    if (c && owner == w->index) {
        iocp__conn_enter(c);
        task->fn(c, task->arg, 0);
        iocp__conn_leave(c);
    } else {
        task->fn(NULL, task->arg, IOCP_ENOENT);
    }
    free(task);
}

int iocp_conn_post(struct iocp_engine *e, iocp_conn_id_t id, iocp_conn_task_fn fn, void *arg)
{
    if (!e || !fn)
        return IOCP_EINVAL;
    unsigned owner = 0;
    if (!conn_by_id(e, id, &owner))
        return IOCP_ENOENT;
    struct iocp_conn_task *task = malloc(sizeof *task);
    if (!task)
        return IOCP_ENOMEM;
    *task = (struct iocp_conn_task){id, fn, arg};
    int rc = iocp__post_running(e, owner, IOCP_PKT_CONN_TASK, (uint64_t)(uintptr_t)task);
    if (rc < 0)
        free(task);
    return rc;
}

static void close_task(struct iocp_conn *c, void *arg, int status)
{
    if (status == 0)
        iocp_conn_close(c, (enum iocp_close_mode)(uintptr_t)arg);
}

int iocp_conn_close_id(struct iocp_engine *e, iocp_conn_id_t id, enum iocp_close_mode mode)
{
    if (!e)
        return IOCP_EINVAL;
    unsigned owner = 0;
    struct iocp_conn *c = conn_by_id(e, id, &owner);
    if (!c)
        return IOCP_ENOENT;
    struct iocp_worker *self = iocp__worker_current();
    if (self && self->engine == e && self->index == owner) {
        iocp_conn_close(c, mode);
        return 0;
    }
    return iocp_conn_post(e, id, close_task, (void *)(uintptr_t)mode);
}
