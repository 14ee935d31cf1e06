/* SPDX-License-Identifier: MIT */
/*
 * The IOCP backend: Windows' I/O completion ports, the model port.h is
 * shaped after, served by every worker of the engine at once (ops.shared).
 *
 * Sockets are bound with CreateIoCompletionPort and put in skip-on-success
 * mode (FILE_SKIP_COMPLETION_PORT_ON_SUCCESS | FILE_SKIP_SET_EVENT_ON_HANDLE):
 * an operation that succeeds at once then queues no packet, which saves a
 * trip through the port under load.  Its completion still has to come out of
 * wait(), never out of submit() (port.h), so such requests go to a per-port
 * queue of finished requests that wait() hands out before it blocks.  The
 * mode is only set for sockets whose provider is an IFS one (no layered
 * provider that would break it: libuv makes the same check).
 *
 * Provided-buffer receives (IOCP_REQ_PROVIDED | IOCP_REQ_MULTI) use the
 * zero-byte receive: a WSARecv of zero bytes waits for data without pinning
 * a buffer, then a non-blocking WSARecv reads into one of the port's buffers
 * and the data goes up as an IOCP_EV_BUFFER completion.  The receive re-arms
 * only when that buffer comes back (release_buffer), after its completion
 * was dispatched, so data can never overtake itself on a port that several
 * threads serve.  An idle connection therefore holds no receive buffer.
 *
 * Handles that cannot do overlapped I/O (a console, an anonymous pipe, a
 * file opened without FILE_FLAG_OVERLAPPED: what stdin and stdout usually
 * are) get a reader or writer thread that performs the blocking call and
 * posts the request back to the port.  Reads go through the thread's own
 * buffer, so a cancelled read completes at once and loses nothing.
 *
 * Datagram sockets (IOCP_OP_RECVMSG) keep MSG_INFLIGHT WSARecvFrom in
 * flight (MSG_INFLIGHT_CONNECTED for a connected one), each with its own buffer, source address and OVERLAPPED (a
 * struct msg_slot): a datagram's completion goes up as an IOCP_EV_BUFFER
 * completion of the multishot request, and its slot receives again when
 * the buffer comes back.  WSAEMSGSIZE is a datagram cut to the buffer,
 * delivered flagged (the datagram is consumed: no loop); WSAECONNRESET and
 * WSAENETRESET are reports about a datagram sent earlier (SIO_UDP_CONNRESET
 * is off, so only a connected socket sees them) and go up as errors of a
 * request that stays armed.  Sends (IOCP_OP_SENDMSG) go out with
 * non-blocking WSASendTo calls, the batch in one go; a full buffer turns
 * the first datagram into an overlapped WSASendTo.  Datagram sockets are
 * not in skip-on-success mode: every overlapped call completes through the
 * port.
 *
 * Every post is checked (seed 2a): a packet that cannot be posted is an
 * error for the caller; a finished request that a helper thread cannot post
 * goes to the finished queue instead, followed by a wake-up that is retried
 * until it lands, so a request is never lost.
 */
#include "port.h"

#include "sockutil.h"
#include "sockutil_win.h"

#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "sockpool.h"

/* Completion keys.  A packet posted by the engine has no OVERLAPPED, which is
 * how wait() tells it apart; its key carries the packet's argument. */
#define KEY_IO     1 /* a handle bound to the port */
#define KEY_STREAM 2 /* a helper thread finished a request; result in the request */
#define KEY_WAKE   3 /* nothing to hand out: look at the finished queue */

enum io_mode { IO_OVERLAPPED = 0, IO_THREAD = 1 };

/* The phases of a provided-buffer receive (handle.rstate). */
enum rstate {
    R_NONE = 0,
    R_ZERO,    /* a zero-byte WSARecv is in the kernel */
    R_READING, /* a thread is reading into a port buffer */
    R_DATA,    /* a buffer completion is out; re-arm when it comes back */
    R_PARKED,  /* waiting for a free buffer */
};

#define GQCS_BATCH 64

/* Datagram receives in flight per socket (a connected one, which hears from
 * one peer, keeps half as many: a relay holds one per session), and the bit
 * that marks a datagram buffer's id (an index in the port's slot table) in
 * release_buffer. */
#define MSG_INFLIGHT 4u
#define MSG_INFLIGHT_CONNECTED 2u
#define MSG_ID_BIT   0x80000000u

enum slot_state { S_IDLE = 0, S_KERNEL, S_OUT };

struct iocp_msg_group;

/* One WSARecvFrom of a datagram socket. */
struct msg_slot {
    struct iocp_req sub; /* first: what the port dequeues; op RECVMSG, flags 0 */
    struct iocp_msg_group *g;
    uint32_t id;         /* buf_id of its completions */
    uint8_t state;       /* enum slot_state, under the port lock */
    int32_t posted;      /* an immediate failure handed to the port as a packet */
    DWORD rflags;
    INT fromlen;
    struct sockaddr_storage from;
    struct iocp_msg msg;
    uint32_t cap;        /* bytes delivered at most; the buffer has one more */
    unsigned char data[];
};

/* The slots of one multishot datagram receive. */
struct iocp_msg_group {
    struct iocp_req *req;
    bool cancel, ended;
    int32_t end_result;
    struct msg_slot *slots[MSG_INFLIGHT];
};

extern const struct iocp_port_ops iocp__port_iocp_ops;

struct win_port {
    struct iocp_port base;
    HANDLE iocp;
    struct iocp_mutex lock; /* everything below but iocp and inflight */
    /* Finished requests to hand out: a ring that always has room for every
     * request in flight, so pushing never fails. */
    struct iocp_event *dq;
    uint32_t dq_cap, dq_head, dq_len;
    iocp_atomic_u32 dq_room;  /* dq_cap, readable without the lock */
    iocp_atomic_u32 inflight; /* requests whose last completion is not handed out */
    /* Provided receive buffers. */
    unsigned char *buf_mem;
    uint32_t buf_size, buf_count, buf_nfree;
    uint32_t *buf_free;
    struct iocp_req **buf_req; /* the receive each lent buffer belongs to */
    struct iocp_list parked;   /* handles whose receive waits for a buffer */
    OVERLAPPED wake_ov;
    /* Socket reuse (seed 2c): gracefully closed sockets are disconnected with
     * TF_REUSE_SOCKET into `sockets`, which AcceptEx and ConnectEx draw from
     * (each only what it connected before, sockpool.h). */
    bool reuse;
    struct iocp_sockpool sockets;
    struct iocp_list recycling; /* DisconnectEx requests in the kernel */
    uint32_t nrecycling;
    /* Datagram slots by buffer id (MSG_ID_BIT clear); NULL entries free. */
    struct msg_slot **mslots;
    uint32_t mslot_cap;
};

/* A DisconnectEx for reuse: an internal request (op NONE), never handed out. */
struct recycle_req {
    struct iocp_req req;
    struct iocp_list link;
    iocp_socket_t s;
    uint16_t family;
    bool skip;
    bool outgoing; /* a ConnectEx socket: back to the connects' stack */
};

#define REUSE_POOL_CAP 256

static int associate(struct win_port *p, HANDLE f);
static void msg_release(struct win_port *p, uint32_t id);

static struct win_port *to_port(struct iocp_port *port)
{
    return (struct win_port *)port;
}

static int win_error(DWORD e)
{
    return iocp__err_from_win32(e);
}

/* ---- the finished queue ---- */

/* Grow the ring to hold need entries; under the lock. */
static int grow(struct win_port *p, uint32_t need)
{
    if (need <= p->dq_cap)
        return 0;
    uint32_t cap = p->dq_cap ? p->dq_cap * 2 : 64;
    while (cap < need)
        cap *= 2;
    struct iocp_event *dq = malloc(cap * sizeof *dq);
    if (!dq)
        return IOCP_ENOMEM;
    for (uint32_t i = 0; i < p->dq_len; i++)
        dq[i] = p->dq[(p->dq_head + i) % p->dq_cap];
    free(p->dq);
    p->dq = dq;
    p->dq_cap = cap;
    p->dq_head = 0;
    atomic_store_explicit(&p->dq_room, cap, memory_order_release);
    return 0;
}

/*
 * Room for one more request in flight, so that its completion can always be
 * queued.  The ring only grows, so the lock is needed only when the count
 * passes the capacity last published: every request is issued after the
 * ring held its own count, and the requests issued never outnumber the
 * count of the last one.
 */
static int reserve(struct win_port *p)
{
    uint32_t need = atomic_fetch_add(&p->inflight, 1) + 1;
    if (need <= atomic_load_explicit(&p->dq_room, memory_order_acquire))
        return 0;
    iocp__mutex_lock(&p->lock);
    int rc = grow(p, need);
    iocp__mutex_unlock(&p->lock);
    if (rc < 0)
        atomic_fetch_sub(&p->inflight, 1);
    return rc;
}

/* Queue a completion; under the lock. */
static void push_done(struct win_port *p, struct iocp_req *req, int32_t result, uint32_t flags,
                      void *data, uint32_t buf_id)
{
    struct iocp_event *ev = &p->dq[(p->dq_head + p->dq_len) % p->dq_cap];
    memset(ev, 0, sizeof *ev);
    ev->req = req;
    ev->result = result;
    ev->flags = flags;
    ev->data = data;
    ev->buf_id = buf_id;
    p->dq_len++;
}

static void push_done_locked(struct win_port *p, struct iocp_req *req, int32_t result)
{
    iocp__mutex_lock(&p->lock);
    push_done(p, req, result, 0, req->buf, 0);
    iocp__mutex_unlock(&p->lock);
}

/* A request's last completion leaves the port. */
static void handed_out(struct win_port *p, const struct iocp_event *ev)
{
    if (ev->req && !(ev->flags & IOCP_EV_MORE))
        atomic_fetch_sub(&p->inflight, 1);
}

static int take_done(struct win_port *p, struct iocp_event *events, int max)
{
    int n = 0;
    iocp__mutex_lock(&p->lock);
    while (n < max && p->dq_len) {
        events[n] = p->dq[p->dq_head];
        p->dq_head = (p->dq_head + 1) % p->dq_cap;
        p->dq_len--;
        handed_out(p, &events[n]);
        n++;
    }
    iocp__mutex_unlock(&p->lock);
    return n;
}

/* Wake a thread blocked in wait(), retrying until the post lands: what it
 * is to find is already queued, and must not be stranded. */
static void wake(struct win_port *p)
{
    while (!PostQueuedCompletionStatus(p->iocp, 0, KEY_WAKE, &p->wake_ov))
        Sleep(1);
}

/* ---- provided buffers ---- */

static unsigned char *buffer_at(struct win_port *p, uint32_t id)
{
    return p->buf_mem + (size_t)id * p->buf_size;
}

/* End a provided-buffer receive with its last completion; under the lock. */
static void end_mrecv(struct win_port *p, struct iocp_req *req, int32_t result)
{
    struct iocp_handle *h = req->handle;
    h->wait_in = NULL;
    h->rstate = R_NONE;
    push_done(p, req, result, 0, NULL, 0);
}

/*
 * Read what the socket has into a port buffer, or arm a zero-byte receive
 * that completes when data arrives.  Runs on whichever thread got the
 * socket ready (submit, a zero-byte completion, a returned buffer); the
 * request's state is guarded by the port lock, the syscalls run outside it.
 */
static void mrecv_run(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    for (int round = 0;; round++) {
        iocp__mutex_lock(&p->lock);
        if (h->rcancel) {
            end_mrecv(p, req, IOCP_ECANCELED);
            iocp__mutex_unlock(&p->lock);
            return;
        }
        if (p->buf_nfree == 0) {
            h->rstate = R_PARKED;
            iocp_list_insert_tail(&p->parked, &h->ready_link);
            h->listed = 1;
            iocp__mutex_unlock(&p->lock);
            return;
        }
        uint32_t id = p->buf_free[--p->buf_nfree];
        h->rstate = R_READING;
        iocp__mutex_unlock(&p->lock);

        /* The request's budget, if it has one, caps the read (port.h); the
         * request's own fields are only touched by the thread that holds
         * it in R_READING. */
        ULONG want = req->len && req->len < p->buf_size ? req->len : p->buf_size;
        WSABUF wb = {.len = want, .buf = (char *)buffer_at(p, id)};
        DWORD got = 0, fl = 0;
        int rc = WSARecv((SOCKET)h->sock, &wb, 1, &got, &fl, NULL, NULL);
        int e = rc == 0 ? 0 : WSAGetLastError();

        iocp__mutex_lock(&p->lock);
        if (rc == 0 && got > 0) {
            p->buf_req[id] = req;
            if (req->len && (req->len -= got) == 0) {
                /* The budget is spent: this buffer is the last completion. */
                h->wait_in = NULL;
                h->rstate = R_NONE;
                push_done(p, req, (int32_t)got, IOCP_EV_BUFFER, buffer_at(p, id), id);
            } else {
                h->rstate = R_DATA;
                h->rbuf = id;
                push_done(p, req, (int32_t)got, IOCP_EV_BUFFER | IOCP_EV_MORE, buffer_at(p, id),
                          id);
            }
            iocp__mutex_unlock(&p->lock);
            return;
        }
        p->buf_free[p->buf_nfree++] = id;
        if (rc == 0 || e != WSAEWOULDBLOCK || h->rcancel || round > 16) {
            /* EOF (0), an error, or a cancel that came in meanwhile. */
            end_mrecv(p, req, rc == 0 ? 0 : h->rcancel ? IOCP_ECANCELED : win_error((DWORD)e));
            iocp__mutex_unlock(&p->lock);
            return;
        }
        h->rstate = R_ZERO;
        iocp__mutex_unlock(&p->lock);

        /* Nothing to read: wait for data without holding a buffer. */
        WSABUF zero = {.len = 0, .buf = NULL};
        fl = 0;
        memset(&req->ov, 0, sizeof req->ov);
        rc = WSARecv((SOCKET)h->sock, &zero, 1, &got, &fl, &req->ov, NULL);
        if (rc == 0 && h->skip)
            continue; /* data came meanwhile, and no packet will say so */
        if (rc == 0)
            return;
        e = WSAGetLastError();
        if (e == WSA_IO_PENDING) {
            /* A cancel that came while the receive was being issued found
             * nothing to cancel: cancel it now. */
            iocp__mutex_lock(&p->lock);
            bool cancel = h->rcancel;
            iocp__mutex_unlock(&p->lock);
            if (cancel)
                CancelIoEx((HANDLE)h->sock, &req->ov);
            return;
        }
        iocp__mutex_lock(&p->lock);
        end_mrecv(p, req, win_error((DWORD)e));
        iocp__mutex_unlock(&p->lock);
        return;
    }
}

/* The zero-byte receive completed (result < 0: it failed or was cancelled). */
static void mrecv_ready(struct win_port *p, struct iocp_req *req, int32_t result)
{
    struct iocp_handle *h = req->handle;
    iocp__mutex_lock(&p->lock);
    if (h->rcancel || result < 0) {
        end_mrecv(p, req, h->rcancel ? IOCP_ECANCELED : result);
        iocp__mutex_unlock(&p->lock);
        return;
    }
    iocp__mutex_unlock(&p->lock);
    mrecv_run(p, req);
}

static void port_release_buffer(struct iocp_port *port, uint32_t id)
{
    struct win_port *p = to_port(port);
    struct iocp_req *rerun = NULL, *unparked = NULL;
    if (id & MSG_ID_BIT) {
        msg_release(p, id & ~MSG_ID_BIT);
        return;
    }
    iocp__mutex_lock(&p->lock);
    if (id >= p->buf_count || !p->buf_req[id]) {
        iocp__mutex_unlock(&p->lock);
        return;
    }
    struct iocp_req *req = p->buf_req[id];
    p->buf_req[id] = NULL;
    p->buf_free[p->buf_nfree++] = id;
    struct iocp_handle *h = req->handle;
    if (h->wait_in == req && h->rstate == R_DATA && h->rbuf == id) {
        /* The buffer's completion has been dispatched: the receive goes on,
         * unless the callback cancelled it.  Only the buffer this arming
         * waits for counts: the last buffer of an arming whose budget ran
         * out comes back after the next arming has started, and running
         * that one again from here would put two readers on the socket. */
        if (h->rcancel)
            end_mrecv(p, req, IOCP_ECANCELED);
        else
            rerun = req;
    }
    if (!iocp_list_empty(&p->parked)) {
        struct iocp_handle *ph = iocp_list_entry(p->parked.next, struct iocp_handle, ready_link);
        iocp_list_remove(&ph->ready_link);
        ph->listed = 0;
        ph->rstate = R_NONE;
        unparked = ph->wait_in;
    }
    iocp__mutex_unlock(&p->lock);
    if (unparked)
        mrecv_run(p, unparked);
    if (rerun)
        mrecv_run(p, rerun);
}

/* ---- datagrams ---- */

/* Errors a datagram socket hears about datagrams, not about itself. */
static bool msg_report(int32_t result)
{
    return result == IOCP_ECONNRESET || result == IOCP_ECONNREFUSED ||
           result == IOCP_EHOSTUNREACH || result == IOCP_ENETUNREACH ||
           result == IOCP_ENETDOWN || result == IOCP_ETIMEDOUT || result == IOCP_ENOBUFS;
}

/* End the group once no slot is in the kernel or lent out: its last
 * completion, and the room it reserved in the finished queue goes back.
 * Under the lock. */
static void msg_group_maybe_end(struct win_port *p, struct iocp_msg_group *g)
{
    if (!g->cancel && !g->ended)
        return;
    for (unsigned i = 0; i < MSG_INFLIGHT; i++)
        if (g->slots[i] && g->slots[i]->state != S_IDLE)
            return;
    struct iocp_req *req = g->req;
    struct iocp_handle *h = req->handle;
    for (unsigned i = 0; i < MSG_INFLIGHT; i++) {
        if (!g->slots[i])
            continue;
        p->mslots[g->slots[i]->id & ~MSG_ID_BIT] = NULL;
        free(g->slots[i]);
    }
    h->mgroup = NULL;
    h->wait_in = NULL;
    atomic_fetch_sub(&p->inflight, MSG_INFLIGHT);
    push_done(p, req, g->cancel ? IOCP_ECANCELED : g->end_result, 0, NULL, 0);
    free(g);
}

/* Fill a slot's message from a finished receive of `got` bytes.  The
 * receive asked for one byte more than the most it delivers: a datagram
 * that filled it is longer, whether or not the system said so (Windows
 * says WSAEMSGSIZE, Wine may only fill the buffer). */
static void msg_fill(struct msg_slot *s, DWORD got, bool truncated)
{
    if (got > s->cap) {
        got = s->cap;
        truncated = true;
    }
    s->msg.payload = s->data;
    s->msg.from = (const struct sockaddr *)&s->from;
    s->msg.fromlen = s->fromlen > 0 ? (uint32_t)s->fromlen : 0;
    s->msg.len = truncated ? s->cap : (uint32_t)got;
    s->msg.flags = truncated ? IOCP_MSG_TRUNC : 0;
}

/*
 * Start a slot's WSARecvFrom (its state is S_KERNEL).  The socket is not in
 * skip-on-success mode, so a receive that finishes at once still queues a
 * packet, and so does a datagram cut to the buffer (WSAEMSGSIZE: a
 * warning).  One that fails at once with a report goes to the port as a
 * packet of its own, so that it comes out of wait() like any
 * completion, one per slot: a socket that kept failing could then cost a
 * report per round, never a loop here (and dgram.c gives up on a socket
 * whose receives only ever fail).  Anything else ends the group.
 */
static void msg_issue(struct win_port *p, struct msg_slot *s)
{
    struct iocp_handle *h = s->sub.handle;
    memset(&s->sub.ov, 0, sizeof s->sub.ov);
    s->rflags = 0;
    s->fromlen = sizeof s->from;
    WSABUF wb = {.len = s->cap + 1, .buf = (char *)s->data};
    int rc = WSARecvFrom((SOCKET)h->sock, &wb, 1, NULL, &s->rflags, (struct sockaddr *)&s->from,
                         &s->fromlen, &s->sub.ov, NULL);
    int e = rc == 0 ? 0 : WSAGetLastError();
    struct iocp_msg_group *g = s->g;
    if (rc == 0 || e == WSA_IO_PENDING) {
        /* A cancel that came while this was being issued found nothing to
         * cancel: cancel it now. */
        iocp__mutex_lock(&p->lock);
        if (g->cancel || g->ended)
            CancelIoEx((HANDLE)h->sock, &s->sub.ov);
        iocp__mutex_unlock(&p->lock);
        return;
    }
    /* A datagram cut to the buffer is a warning, not a failure, to the
     * system: its completion is queued as for a success. */
    if (e == WSAEMSGSIZE)
        return;
    int32_t result = win_error((DWORD)e);
    if (msg_report(result)) {
        s->posted = result;
        if (PostQueuedCompletionStatus(p->iocp, 0, KEY_IO, &s->sub.ov))
            return;
        s->posted = 0;
    }
    iocp__mutex_lock(&p->lock);
    s->state = S_IDLE;
    if (!g->cancel && !g->ended) {
        g->ended = true;
        g->end_result = result;
    }
    for (unsigned i = 0; i < MSG_INFLIGHT; i++)
        if (g->slots[i] && g->slots[i]->state == S_KERNEL)
            CancelIoEx((HANDLE)h->sock, &g->slots[i]->sub.ov);
    msg_group_maybe_end(p, g);
    iocp__mutex_unlock(&p->lock);
}

/* A slot's receive came out of the port: an event for the caller, or
 * nothing (false) when the group is ending or the slot went again. */
static bool msg_done(struct win_port *p, struct msg_slot *s, int32_t result,
                     struct iocp_event *ev)
{
    struct iocp_msg_group *g = s->g;
    DWORD got = result > 0 ? (DWORD)result : 0;
    iocp__mutex_lock(&p->lock);
    if (result >= 0 || result == IOCP_EMSGSIZE) {
        /* A datagram is delivered even when the receive is ending: it was
         * taken from the socket, and nothing received is dropped unsaid. */
        msg_fill(s, got, result < 0);
        s->state = S_OUT;
        iocp__mutex_unlock(&p->lock);
        *ev = (struct iocp_event){.req = g->req,
                                  .result = (int32_t)s->msg.len,
                                  .flags = IOCP_EV_BUFFER | IOCP_EV_MORE,
                                  .data = &s->msg,
                                  .buf_id = s->id};
        return true;
    }
    if (msg_report(result) && !g->cancel && !g->ended) {
        /* A report about an earlier send (an ICMP error): the receive
         * stays armed and the slot goes again. */
        iocp__mutex_unlock(&p->lock);
        *ev = (struct iocp_event){.req = g->req, .result = result, .flags = IOCP_EV_MORE};
        msg_issue(p, s);
        return true;
    }
    /* Closed under it, cancelled, or a real error: the receive ends. */
    s->state = S_IDLE;
    if (!g->cancel && !g->ended) {
        g->ended = true;
        g->end_result = result;
        for (unsigned i = 0; i < MSG_INFLIGHT; i++)
            if (g->slots[i] && g->slots[i]->state == S_KERNEL)
                CancelIoEx((HANDLE)s->sub.handle->sock, &g->slots[i]->sub.ov);
    }
    msg_group_maybe_end(p, g);
    iocp__mutex_unlock(&p->lock);
    return false;
}

/* A datagram buffer's completion was dispatched: its slot receives again. */
static void msg_release(struct win_port *p, uint32_t id)
{
    iocp__mutex_lock(&p->lock);
    struct msg_slot *s = id < p->mslot_cap ? p->mslots[id] : NULL;
    if (!s || s->state != S_OUT) {
        iocp__mutex_unlock(&p->lock);
        return;
    }
    struct iocp_msg_group *g = s->g;
    if (g->cancel || g->ended) {
        s->state = S_IDLE;
        msg_group_maybe_end(p, g);
        iocp__mutex_unlock(&p->lock);
        return;
    }
    s->state = S_KERNEL;
    iocp__mutex_unlock(&p->lock);
    msg_issue(p, s);
}

/* A free id in the slot table; under the lock. */
static int msg_take_id(struct win_port *p, uint32_t *out)
{
    for (uint32_t i = 0; i < p->mslot_cap; i++)
        if (!p->mslots[i]) {
            *out = i;
            return 0;
        }
    uint32_t cap = p->mslot_cap ? p->mslot_cap * 2 : 64;
    struct msg_slot **v = realloc(p->mslots, cap * sizeof *v);
    if (!v)
        return IOCP_ENOMEM;
    for (uint32_t i = p->mslot_cap; i < cap; i++)
        v[i] = NULL;
    *out = p->mslot_cap;
    p->mslots = v;
    p->mslot_cap = cap;
    return 0;
}

/* Start a multishot datagram receive: its slots, then their receives. */
static int start_recvmsg(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    uint32_t cap = req->len && req->len < IOCP_MSG_MAX ? req->len : IOCP_MSG_MAX;
    /* Room in the finished queue for what the slots may queue at once. */
    uint32_t need = atomic_fetch_add(&p->inflight, MSG_INFLIGHT) + MSG_INFLIGHT;
    iocp__mutex_lock(&p->lock);
    int rc = grow(p, need);
    iocp__mutex_unlock(&p->lock);
    struct iocp_msg_group *g = rc == 0 ? calloc(1, sizeof *g) : NULL;
    if (!g) {
        atomic_fetch_sub(&p->inflight, MSG_INFLIGHT);
        return IOCP_ENOMEM;
    }
    g->req = req;
    struct sockaddr_storage peer;
    int plen = sizeof peer;
    unsigned nslots = getpeername((SOCKET)h->sock, (struct sockaddr *)&peer, &plen) == 0
                          ? MSG_INFLIGHT_CONNECTED
                          : MSG_INFLIGHT;
    for (unsigned i = 0; i < nslots; i++) {
        struct msg_slot *s = calloc(1, sizeof *s + cap + 1);
        if (!s)
            break;
        s->g = g;
        s->cap = cap;
        s->sub.op = IOCP_OP_RECVMSG;
        s->sub.handle = h;
        s->sub.owner = req->owner;
        g->slots[i] = s;
    }
    iocp__mutex_lock(&p->lock);
    rc = g->slots[0] ? 0 : IOCP_ENOMEM;
    for (unsigned i = 0; rc == 0 && i < MSG_INFLIGHT && g->slots[i]; i++) {
        uint32_t id = 0;
        rc = msg_take_id(p, &id);
        if (rc == 0) {
            p->mslots[id] = g->slots[i];
            g->slots[i]->id = id | MSG_ID_BIT;
            g->slots[i]->state = S_KERNEL;
        }
    }
    if (rc < 0) {
        for (unsigned i = 0; i < MSG_INFLIGHT; i++)
            if (g->slots[i]) {
                if (g->slots[i]->state == S_KERNEL)
                    p->mslots[g->slots[i]->id & ~MSG_ID_BIT] = NULL;
                free(g->slots[i]);
            }
        iocp__mutex_unlock(&p->lock);
        free(g);
        atomic_fetch_sub(&p->inflight, MSG_INFLIGHT);
        return rc;
    }
    h->mgroup = g;
    h->wait_in = req;
    iocp__mutex_unlock(&p->lock);
    for (unsigned i = 0; i < MSG_INFLIGHT && g->slots[i]; i++) {
        /* An early slot may end the group (a closed socket) before the
         * later ones start: they are then left idle. */
        iocp__mutex_lock(&p->lock);
        bool go = !g->ended && !g->cancel;
        if (!go) {
            for (unsigned j = i; j < MSG_INFLIGHT && g->slots[j]; j++)
                g->slots[j]->state = S_IDLE;
            msg_group_maybe_end(p, g);
            iocp__mutex_unlock(&p->lock);
            break;
        }
        iocp__mutex_unlock(&p->lock);
        msg_issue(p, g->slots[i]);
    }
    return 0;
}

static void cancel_recvmsg(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    iocp__mutex_lock(&p->lock);
    struct iocp_msg_group *g = h->mgroup;
    if (g && g->req == req && !g->cancel) {
        g->cancel = true;
        for (unsigned i = 0; i < MSG_INFLIGHT; i++)
            if (g->slots[i] && g->slots[i]->state == S_KERNEL)
                CancelIoEx((HANDLE)h->sock, &g->slots[i]->sub.ov);
        msg_group_maybe_end(p, g);
    }
    iocp__mutex_unlock(&p->lock);
}

/*
 * A batch of datagrams: non-blocking WSASendTo calls, in order, until one
 * fails.  What went is the completion; a full buffer before the first
 * sends that one overlapped, and its completion comes from the port.
 */
static int start_sendmsg(struct win_port *p, struct iocp_req *req)
{
    const struct iocp_msg_out *out = req->buf;
    SOCKET sock = (SOCKET)req->handle->sock;
    uint32_t sent = 0;
    int e = 0;
    for (; sent < req->len; sent++) {
        WSABUF wb = {.len = out[sent].len, .buf = (char *)out[sent].data};
        DWORD n = 0;
        if (WSASendTo(sock, &wb, 1, &n, 0, out[sent].to, out[sent].to ? (int)out[sent].tolen : 0,
                      NULL, NULL) != 0) {
            e = WSAGetLastError();
            break;
        }
    }
    if (sent > 0) {
        push_done_locked(p, req, (int32_t)sent);
        return 0;
    }
    if (e == WSAEWOULDBLOCK) {
        WSABUF wb = {.len = out[0].len, .buf = (char *)out[0].data};
        DWORD n = 0;
        if (WSASendTo(sock, &wb, 1, &n, 0, out[0].to, out[0].to ? (int)out[0].tolen : 0, &req->ov,
                      NULL) == 0)
            return 0; /* the packet comes anyway: no skip mode here */
        e = WSAGetLastError();
        if (e == WSA_IO_PENDING)
            return 0;
    }
    push_done_locked(p, req, win_error((DWORD)e));
    return 0;
}

/* ---- helper threads for handles without overlapped I/O ---- */

struct iocp_stream_io {
    struct win_port *p;
    HANDLE file; /* a duplicate, owned by the thread: the stream's own
                  * handle may be closed while a blocking call runs */
    HANDLE thread;
    SRWLOCK lock;
    CONDITION_VARIABLE cv;
    LONG refs; /* the thread and the handle */
    bool input;
    bool stop;
    bool busy; /* writer: WriteFile runs for req */
    struct iocp_req *req;
    /* reader: what was read and not yet handed out */
    unsigned char *buf;
    uint32_t cap, start, end;
    bool ended;
    int32_t status; /* after ended: 0 (EOF) or the error */
};

#define STREAM_BUF_SIZE (64u * 1024u)

static void stream_unref(struct iocp_stream_io *s)
{
    if (InterlockedDecrement(&s->refs) != 0)
        return;
    if (s->file)
        CloseHandle(s->file);
    if (s->thread)
        CloseHandle(s->thread);
    free(s->buf);
    free(s);
}

/* Hand a finished request to the port from a helper thread. */
static void stream_complete(struct win_port *p, struct iocp_req *req, int32_t result)
{
    req->ov.Offset = (DWORD)(uint32_t)result;
    if (PostQueuedCompletionStatus(p->iocp, 0, KEY_STREAM, &req->ov))
        return;
    /* The post failed (seed 2a): queue the request instead and make sure a
     * thread looks. */
    push_done_locked(p, req, result);
    wake(p);
}

/* Give the attached read what there is; under s->lock. */
static int32_t stream_take(struct iocp_stream_io *s, struct iocp_req *req)
{
    if (s->end > s->start) {
        uint32_t n = s->end - s->start;
        if (n > req->len)
            n = req->len;
        memcpy(req->buf, s->buf + s->start, n);
        s->start += n;
        if (s->start == s->end)
            WakeConditionVariable(&s->cv); /* room: the reader goes on */
        return (int32_t)n;
    }
    return s->status;
}

static DWORD WINAPI reader_main(void *arg)
{
    struct iocp_stream_io *s = arg;
    AcquireSRWLockExclusive(&s->lock);
    for (;;) {
        while (!s->stop && (s->end > s->start || s->ended))
            SleepConditionVariableSRW(&s->cv, &s->lock, INFINITE, 0);
        if (s->stop)
            break;
        s->start = s->end = 0;
        ReleaseSRWLockExclusive(&s->lock);
        DWORD got = 0;
        BOOL ok = ReadFile(s->file, s->buf, s->cap, &got, NULL);
        DWORD e = ok ? 0 : GetLastError();
        AcquireSRWLockExclusive(&s->lock);
        if (ok && got > 0) {
            s->end = got;
        } else {
            /* A pipe's writer went away, a file ended, a console read ^Z. */
            s->ended = true;
            s->status = ok || e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF ? 0
                        : e == ERROR_OPERATION_ABORTED                        ? IOCP_ECANCELED
                                                                              : win_error(e);
        }
        if (s->req) {
            struct iocp_req *req = s->req;
            s->req = NULL;
            stream_complete(s->p, req, stream_take(s, req));
        }
    }
    ReleaseSRWLockExclusive(&s->lock);
    stream_unref(s);
    return 0;
}

static DWORD WINAPI writer_main(void *arg)
{
    struct iocp_stream_io *s = arg;
    AcquireSRWLockExclusive(&s->lock);
    for (;;) {
        while (!s->stop && !s->req)
            SleepConditionVariableSRW(&s->cv, &s->lock, INFINITE, 0);
        if (!s->req)
            break;
        struct iocp_req *req = s->req;
        s->busy = true;
        ReleaseSRWLockExclusive(&s->lock);
        DWORD put = 0;
        BOOL ok = WriteFile(s->file, req->buf, req->len, &put, NULL);
        DWORD e = ok ? 0 : GetLastError();
        AcquireSRWLockExclusive(&s->lock);
        s->busy = false;
        s->req = NULL;
        int32_t result = ok                             ? (int32_t)put
                         : e == ERROR_OPERATION_ABORTED ? IOCP_ECANCELED
                         : e == ERROR_NO_DATA           ? IOCP_EPIPE
                                                        : win_error(e);
        stream_complete(s->p, req, result);
    }
    ReleaseSRWLockExclusive(&s->lock);
    stream_unref(s);
    return 0;
}

static int stream_start(struct win_port *p, struct iocp_handle *h, bool input,
                        struct iocp_stream_io **out)
{
    struct iocp_stream_io *s = calloc(1, sizeof *s);
    if (!s)
        return IOCP_ENOMEM;
    s->p = p;
    s->input = input;
    InitializeSRWLock(&s->lock);
    InitializeConditionVariable(&s->cv);
    if (input) {
        s->cap = STREAM_BUF_SIZE;
        s->buf = malloc(s->cap);
        if (!s->buf) {
            free(s);
            return IOCP_ENOMEM;
        }
    }
    HANDLE self = GetCurrentProcess();
    if (!DuplicateHandle(self, (HANDLE)h->sock, self, &s->file, 0, FALSE, DUPLICATE_SAME_ACCESS)) {
        int rc = win_error(GetLastError());
        free(s->buf);
        free(s);
        return rc;
    }
    s->refs = 2;
    s->thread = CreateThread(NULL, 64 * 1024, input ? reader_main : writer_main, s,
                             STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
    if (!s->thread) {
        int rc = win_error(GetLastError());
        s->refs = 1;
        stream_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void stream_stop(struct iocp_stream_io *s)
{
    if (!s)
        return;
    AcquireSRWLockExclusive(&s->lock);
    s->stop = true;
    WakeConditionVariable(&s->cv);
    /* A reader blocked in ReadFile would hold the duplicate open until input
     * comes: ask the system to abandon the call (harmless if it is not in
     * one; a console read may not be cancellable, and then the thread ends
     * with the process). */
    if (s->input)
        CancelSynchronousIo(s->thread);
    ReleaseSRWLockExclusive(&s->lock);
    stream_unref(s);
}

static int stream_submit(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    bool input = req->op == IOCP_OP_READ || req->op == IOCP_OP_RECV;
    struct iocp_stream_io **slot = input ? &h->reader : &h->writer;
    if (!*slot) {
        int rc = stream_start(p, h, input, slot);
        if (rc < 0)
            return rc;
    }
    struct iocp_stream_io *s = *slot;
    AcquireSRWLockExclusive(&s->lock);
    if (s->req) {
        ReleaseSRWLockExclusive(&s->lock);
        return IOCP_EBUSY;
    }
    if (input && (s->end > s->start || s->ended)) {
        /* Read ahead already: complete now (from wait(), as always). */
        int32_t result = stream_take(s, req);
        ReleaseSRWLockExclusive(&s->lock);
        push_done_locked(p, req, result);
        return 0;
    }
    s->req = req;
    WakeConditionVariable(&s->cv);
    ReleaseSRWLockExclusive(&s->lock);
    return 0;
}

static void stream_cancel(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    bool input = req->op == IOCP_OP_READ || req->op == IOCP_OP_RECV;
    struct iocp_stream_io *s = input ? h->reader : h->writer;
    if (!s)
        return;
    AcquireSRWLockExclusive(&s->lock);
    if (s->req == req) {
        if (!s->busy) {
            /* Not started (a read waits for the thread's buffer): done. */
            s->req = NULL;
            ReleaseSRWLockExclusive(&s->lock);
            push_done_locked(p, req, IOCP_ECANCELED);
            return;
        }
        CancelSynchronousIo(s->thread);
    }
    ReleaseSRWLockExclusive(&s->lock);
}

/* ---- starting operations ---- */

/* An operation that returned at once: with skip-on-success on the handle its
 * completion is ours to queue; without it a packet comes anyway. */
static void inline_done(struct win_port *p, struct iocp_req *req, int32_t result)
{
    if (req->handle->skip)
        push_done_locked(p, req, result);
}

/* The accepted socket is set up once AcceptEx has finished: it inherits the
 * listener's properties, and the peer address is read from the scratch. */
static int32_t finish_accept(struct iocp_req *req, int32_t result)
{
    struct iocp_handle *h = req->handle;
    SOCKET as = (SOCKET)req->accepted;
    if (result >= 0) {
        SOCKET ls = (SOCKET)h->sock;
        if (setsockopt(as, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (const char *)&ls, sizeof ls) != 0)
            result = iocp__socket_error();
    }
    if (result >= 0) {
        const struct iocp_wsx *x;
        result = iocp__wsx_get(h->sock, h->family, &x);
        if (result == 0) {
            DWORD alen = sizeof(struct sockaddr_storage) + 16;
            struct sockaddr *local = NULL, *remote = NULL;
            int llen = 0, rlen = 0;
            x->get_accept_ex_sockaddrs(req->buf, 0, alen, alen, &local, &llen, &remote, &rlen);
            if (req->addr && remote && rlen > 0) {
                if ((size_t)rlen > sizeof *req->addr)
                    rlen = (int)sizeof *req->addr;
                memcpy(req->addr, remote, (size_t)rlen);
                req->addrlen = (uint32_t)rlen;
            }
        }
    }
    if (result < 0) {
        /* Nothing to hand over: the pre-created socket must not leak. */
        iocp__socket_close((iocp_socket_t)as);
        req->accepted = IOCP_INVALID_SOCKET;
        return result;
    }
    return 0;
}

static int start_accept(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    const struct iocp_wsx *x;
    int rc = iocp__wsx_get(h->sock, h->family, &x);
    if (rc < 0)
        return rc;
    /* AcceptEx needs the socket the connection will land on beforehand: a
     * reused one if the pool has one (bound to the port already), or new. */
    iocp_socket_t as;
    if (!p->reuse || h->family == AF_UNIX ||
        !iocp__sockpool_take(&p->sockets, IOCP_SOCKPOOL_ACCEPT, h->family, &as, NULL)) {
        rc = iocp__socket_stream(h->family, &as);
        if (rc < 0)
            return rc;
    }
    req->accepted = as;
    DWORD alen = sizeof(struct sockaddr_storage) + 16, got = 0;
    if (x->accept_ex((SOCKET)h->sock, (SOCKET)as, req->buf, 0, alen, alen, &got, &req->ov)) {
        if (h->skip)
            push_done_locked(p, req, finish_accept(req, 0));
        return 0;
    }
    int e = WSAGetLastError();
    if (e == ERROR_IO_PENDING)
        return 0;
    /* Failed at once: no packet will come, and the socket is ours to close. */
    iocp__socket_close(as);
    req->accepted = IOCP_INVALID_SOCKET;
    return win_error((DWORD)e);
}

static int32_t finish_connect(struct iocp_req *req, int32_t result)
{
    if (result < 0)
        return result;
    /* Without this the socket does not know it is connected: getpeername,
     * shutdown and SO_* options would fail. */
    if (setsockopt((SOCKET)req->handle->sock, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0) != 0)
        return iocp__socket_error();
    return 0;
}

static int start_connect(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    SOCKET s = (SOCKET)h->sock;
    const struct iocp_wsx *x;
    int rc = iocp__wsx_get(h->sock, h->family, &x);
    if (rc < 0)
        return rc;
    /* ConnectEx wants a bound socket; WSAEINVAL means it is bound already
     * (the caller chose a source address). */
    struct sockaddr_storage any;
    memset(&any, 0, sizeof any);
    any.ss_family = ((struct sockaddr *)req->addr)->sa_family;
    /* AF_UNIX: an unnamed address (the family alone) is the bind ConnectEx
     * asks for; the connection is still named by the server's path. */
    int alen = any.ss_family == AF_INET6  ? (int)sizeof(struct sockaddr_in6)
               : any.ss_family == AF_UNIX ? (int)sizeof any.ss_family
                                          : (int)sizeof(struct sockaddr_in);
    if (bind(s, (struct sockaddr *)&any, alen) != 0 && WSAGetLastError() != WSAEINVAL)
        return iocp__socket_error();
    /* Bound to a local address now: reusable by ConnectEx alone. */
    h->outgoing = true;
    if (x->connect_ex(s, (const struct sockaddr *)req->addr, (int)req->addrlen, NULL, 0, NULL,
                      &req->ov)) {
        if (h->skip)
            push_done_locked(p, req, finish_connect(req, 0));
        return 0;
    }
    int e = WSAGetLastError();
    if (e == ERROR_IO_PENDING)
        return 0;
    /* Refused at once and the like: a completion like any other. */
    push_done_locked(p, req, win_error((DWORD)e));
    return 0;
}

static int start_sockio(struct win_port *p, struct iocp_req *req, bool input)
{
    struct iocp_handle *h = req->handle;
    WSABUF wb = {.len = req->len, .buf = req->buf};
    DWORD n = 0, fl = 0;
    int rc = input ? WSARecv((SOCKET)h->sock, &wb, 1, &n, &fl, &req->ov, NULL)
                   : WSASend((SOCKET)h->sock, &wb, 1, &n, 0, &req->ov, NULL);
    if (rc == 0) {
        inline_done(p, req, (int32_t)n);
        return 0;
    }
    int e = WSAGetLastError();
    if (e == WSA_IO_PENDING)
        return 0;
    push_done_locked(p, req, win_error((DWORD)e));
    return 0;
}

static int32_t file_result(struct iocp_req *req, BOOL ok, DWORD n, DWORD e)
{
    if (ok)
        return (int32_t)n;
    if (req->op == IOCP_OP_READ && (e == ERROR_HANDLE_EOF || e == ERROR_BROKEN_PIPE))
        return 0;
    if (e == ERROR_NO_DATA)
        return IOCP_EPIPE;
    return win_error(e);
}

static int start_fileio(struct win_port *p, struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    HANDLE f = (HANDLE)h->sock;
    DWORD n = 0;
    BOOL ok;
    if (req->op == IOCP_OP_READ) {
        req->ov.Offset = (DWORD)h->offset;
        req->ov.OffsetHigh = (DWORD)(h->offset >> 32);
        ok = ReadFile(f, req->buf, req->len, &n, &req->ov);
    } else {
        /* Both halves all ones: write at the end of the file. */
        req->ov.Offset = req->ov.OffsetHigh = 0xffffffffu;
        ok = WriteFile(f, req->buf, req->len, &n, &req->ov);
    }
    DWORD e = ok ? 0 : GetLastError();
    if (!ok && e == ERROR_IO_PENDING)
        return 0;
    int32_t result = file_result(req, ok, n, e);
    if (req->op == IOCP_OP_READ && result > 0 && h->kind == IOCP_HANDLE_FILE)
        h->offset += (uint64_t)result;
    if (ok)
        inline_done(p, req, result);
    else
        push_done_locked(p, req, result);
    return 0;
}

static int check_req(struct iocp_port *port, const struct iocp_req *req)
{
    const struct iocp_handle *h = req->handle;
    if (!h || !h->bound || h->port != port)
        return IOCP_EINVAL;
    bool provided = req->flags & IOCP_REQ_PROVIDED;
    bool multi = req->flags & IOCP_REQ_MULTI;
    bool sock = h->kind == IOCP_HANDLE_SOCKET && h->io == IO_OVERLAPPED;
    switch (req->op) {
    case IOCP_OP_ACCEPT:
        /* Each AcceptEx takes one connection: the engine keeps a pool of
         * them (server.c) instead of one multishot accept. */
        if (!sock || provided || multi || !req->buf || req->len < IOCP_ACCEPT_SCRATCH)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_CONNECT:
        if (!sock || provided || multi || !req->addr)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_RECV:
    case IOCP_OP_READ:
        if (multi != provided || (provided && !sock))
            return IOCP_EINVAL;
        if (!provided && !req->buf && req->len)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_SEND:
    case IOCP_OP_WRITE:
        if (multi || provided || (!req->buf && req->len))
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_RECVMSG:
        if (!sock || !multi || !provided)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_SENDMSG:
        if (!sock || multi || provided || !req->buf || !req->len || req->len > IOCP_MSG_BATCH)
            return IOCP_EINVAL;
        return 0;
    default:
        return IOCP_EINVAL;
    }
}

static int port_submit(struct iocp_port *port, struct iocp_req *req)
{
    struct win_port *p = to_port(port);
    int rc = check_req(port, req);
    if (rc < 0)
        return rc;
    struct iocp_handle *h = req->handle;
    if (req->in_flight || (req->flags & IOCP_REQ_MULTI && h->wait_in))
        return IOCP_EBUSY;
    rc = reserve(p);
    if (rc < 0)
        return rc;

    req->in_flight = true;
    memset(&req->ov, 0, sizeof req->ov);
    if (h->io == IO_THREAD) {
        rc = stream_submit(p, req);
    } else {
        switch (req->op) {
        case IOCP_OP_ACCEPT:
            rc = start_accept(p, req);
            break;
        case IOCP_OP_CONNECT:
            rc = start_connect(p, req);
            break;
        case IOCP_OP_RECVMSG:
            rc = start_recvmsg(p, req);
            break;
        case IOCP_OP_SENDMSG:
            rc = start_sendmsg(p, req);
            break;
        case IOCP_OP_RECV:
        case IOCP_OP_READ:
            if (req->flags & IOCP_REQ_PROVIDED) {
                iocp__mutex_lock(&p->lock);
                h->wait_in = req;
                h->rcancel = false;
                h->rstate = R_NONE;
                iocp__mutex_unlock(&p->lock);
                mrecv_run(p, req);
                rc = 0;
            } else if (h->kind == IOCP_HANDLE_SOCKET) {
                rc = start_sockio(p, req, true);
            } else {
                rc = start_fileio(p, req);
            }
            break;
        default:
            rc = h->kind == IOCP_HANDLE_SOCKET ? start_sockio(p, req, false) : start_fileio(p, req);
            break;
        }
    }
    if (rc < 0) {
        req->in_flight = false;
        atomic_fetch_sub(&p->inflight, 1);
    }
    return rc;
}

static int port_cancel(struct iocp_port *port, struct iocp_req *req)
{
    struct win_port *p = to_port(port);
    struct iocp_handle *h = req->handle;
    if (!req->in_flight || !h)
        return 0;
    if (h->io == IO_THREAD) {
        stream_cancel(p, req);
        return 0;
    }
    if (req->op == IOCP_OP_RECVMSG) {
        cancel_recvmsg(p, req);
        return 0;
    }
    if (req->flags & IOCP_REQ_PROVIDED) {
        iocp__mutex_lock(&p->lock);
        if (h->wait_in != req) {
            iocp__mutex_unlock(&p->lock);
            return 0;
        }
        h->rcancel = true;
        uint8_t st = h->rstate;
        if (st == R_PARKED) {
            iocp_list_remove(&h->ready_link);
            h->listed = 0;
            end_mrecv(p, req, IOCP_ECANCELED);
        }
        iocp__mutex_unlock(&p->lock);
        if (st == R_ZERO)
            CancelIoEx((HANDLE)h->sock, &req->ov);
        return 0;
    }
    /* Per overlapped, never CancelIo: that would cancel the calling
     * thread's other requests, and the thread that issued this one may be
     * another.  ERROR_NOT_FOUND: it finished already, its completion is on
     * its way. */
    CancelIoEx((HANDLE)h->sock, &req->ov);
    return 0;
}

/* ---- socket reuse ---- */

/*
 * Socket reuse is on by default on Windows.  Wine does not implement
 * TF_REUSE_SOCKET (a "reused" socket keeps its shut-down state and the first
 * send fails with WSAESHUTDOWN) and never completes a DisconnectEx on a
 * socket in skip-on-success mode, so it is off there; IOCP_SOCKET_REUSE=0
 * turns it off anywhere.  Without it a closed socket is closed, and AcceptEx
 * gets a new one.
 */
static bool reuse_wanted(void)
{
    const char *env = getenv("IOCP_SOCKET_REUSE");
    if (env && env[0] == '0')
        return false;
    return !iocp__running_on_wine();
}

bool iocp__port_iocp_reuses(const struct iocp_port *port)
{
    return ((const struct win_port *)port)->reuse;
}

static void recycle_finish(struct win_port *p, struct recycle_req *rr, bool ok)
{
    iocp__mutex_lock(&p->lock);
    iocp_list_remove(&rr->link);
    p->nrecycling--;
    iocp__mutex_unlock(&p->lock);
    if (ok)
        iocp__sockpool_put(&p->sockets, rr->outgoing ? IOCP_SOCKPOOL_CONNECT : IOCP_SOCKPOOL_ACCEPT,
                           rr->family, rr->s, rr->skip);
    else
        iocp__socket_close(rr->s);
    free(rr);
}

static void recycle_done(struct win_port *p, struct recycle_req *rr)
{
    DWORD n = 0, fl = 0;
    recycle_finish(p, rr, WSAGetOverlappedResult((SOCKET)rr->s, &rr->req.ov, &n, FALSE, &fl));
}

static bool port_recycle(struct iocp_port *port, struct iocp_handle *h)
{
    struct win_port *p = to_port(port);
    /* AF_UNIX sockets are closed, not recycled: TF_REUSE_SOCKET is a TCP
     * matter (and their provider need not have DisconnectEx). */
    if (!p->reuse || h->kind != IOCP_HANDLE_SOCKET || h->io != IO_OVERLAPPED ||
        h->family == AF_UNIX)
        return false;
    const struct iocp_wsx *x;
    if (iocp__wsx_get(h->sock, h->family, &x) < 0)
        return false;
    struct recycle_req *rr = calloc(1, sizeof *rr);
    if (!rr)
        return false;
    rr->req.op = IOCP_OP_NONE;
    rr->s = h->sock;
    rr->family = h->family;
    rr->skip = h->skip;
    rr->outgoing = h->outgoing;
    iocp__mutex_lock(&p->lock);
    iocp_list_insert_tail(&p->recycling, &rr->link);
    p->nrecycling++;
    iocp__mutex_unlock(&p->lock);
    /* The socket stays associated with the port: its next user binds it
     * through the pool, which knows (iocp__sockpool_bind). */
    if (x->disconnect_ex((SOCKET)h->sock, &rr->req.ov, TF_REUSE_SOCKET, 0)) {
        if (h->skip)
            recycle_finish(p, rr, true);
        return true;
    }
    if (WSAGetLastError() == ERROR_IO_PENDING)
        return true;
    /* Not started: the caller closes the socket as it would have. */
    iocp__mutex_lock(&p->lock);
    iocp_list_remove(&rr->link);
    p->nrecycling--;
    iocp__mutex_unlock(&p->lock);
    free(rr);
    return false;
}

/* Port close: a DisconnectEx still in the kernel owns its OVERLAPPED until
 * it completes; closing the socket ends it, and its completion is awaited
 * (briefly) before the memory goes. */
static void recycle_drain(struct win_port *p)
{
    iocp__mutex_lock(&p->lock);
    struct iocp_list *pos;
    iocp_list_foreach(pos, &p->recycling)
    {
        closesocket((SOCKET)iocp_list_entry(pos, struct recycle_req, link)->s);
    }
    iocp__mutex_unlock(&p->lock);
    for (int tries = 0; p->nrecycling && tries < 200; tries++) {
        OVERLAPPED_ENTRY oe[16];
        ULONG got = 0;
        if (!GetQueuedCompletionStatusEx(p->iocp, oe, 16, &got, 10, FALSE))
            continue;
        for (ULONG i = 0; i < got; i++) {
            struct iocp_req *req = oe[i].lpOverlapped && oe[i].lpCompletionKey == KEY_IO
                                       ? iocp_container_of(oe[i].lpOverlapped, struct iocp_req, ov)
                                       : NULL;
            if (req && req->op == IOCP_OP_NONE)
                recycle_finish(p, iocp_container_of(req, struct recycle_req, req), false);
        }
    }
}

/* A socket for an outgoing connection: with reuse on, a pooled one that
 * ConnectEx used before, still associated with the port and bound to a
 * local address (*reused true; bind knows it and does not associate it
 * again), else a new one. */
static int port_connect_socket(struct iocp_port *port, int family, iocp_socket_t *out,
                               bool *reused)
{
    struct win_port *p = to_port(port);
    *reused = false;
    /* Reuse off: a new socket, as without a pool. */
    if (!p->reuse || family == AF_UNIX)
        return iocp__socket_stream(family, out);
    return iocp__sockpool_connect_socket(&p->sockets, family, out, reused);
}

static int pool_open(void *ctx, int family, iocp_socket_t *out)
{
    (void)ctx;
    return iocp__socket_stream(family, out);
}

static int pool_associate(void *ctx, iocp_socket_t s)
{
    return associate(ctx, (HANDLE)s);
}

static void pool_close(void *ctx, iocp_socket_t s)
{
    (void)ctx;
    closesocket((SOCKET)s);
}

static const struct iocp_sockpool_ops sockpool_ops = {pool_open, pool_associate, pool_close};

/* ---- completions ---- */

/* The result of a request the kernel completed. */
static int32_t io_result(struct iocp_req *req)
{
    struct iocp_handle *h = req->handle;
    DWORD n = 0, fl = 0;
    if (h->kind == IOCP_HANDLE_SOCKET) {
        if (WSAGetOverlappedResult((SOCKET)h->sock, &req->ov, &n, FALSE, &fl))
            return (int32_t)n;
        int e = WSAGetLastError();
        return e == WSA_OPERATION_ABORTED ? IOCP_ECANCELED : win_error((DWORD)e);
    }
    BOOL ok = GetOverlappedResult((HANDLE)h->sock, &req->ov, &n, FALSE);
    DWORD e = ok ? 0 : GetLastError();
    return file_result(req, ok, n, e);
}

/* Turn one dequeued entry into an event; false if it gave none. */
static bool translate(struct win_port *p, const OVERLAPPED_ENTRY *oe, struct iocp_event *ev)
{
    memset(ev, 0, sizeof *ev);
    if (!oe->lpOverlapped) {
        ev->code = oe->dwNumberOfBytesTransferred;
        ev->arg = (uint64_t)oe->lpCompletionKey;
        return true;
    }
    if (oe->lpCompletionKey == KEY_WAKE)
        return false;
    struct iocp_req *req = iocp_container_of(oe->lpOverlapped, struct iocp_req, ov);
    int32_t result;
    if (oe->lpCompletionKey == KEY_STREAM) {
        result = (int32_t)req->ov.Offset;
    } else if (req->op == IOCP_OP_NONE) {
        recycle_done(p, iocp_container_of(req, struct recycle_req, req));
        return false;
    } else {
        result = io_result(req);
        switch (req->op) {
        case IOCP_OP_ACCEPT:
            result = finish_accept(req, result);
            break;
        case IOCP_OP_CONNECT:
            result = finish_connect(req, result);
            break;
        case IOCP_OP_RECVMSG: {
            /* Only the slots' receives are in the kernel. */
            struct msg_slot *s = (struct msg_slot *)req;
            if (s->posted) {
                result = s->posted;
                s->posted = 0;
            }
            return msg_done(p, s, result, ev);
        }
        case IOCP_OP_SENDMSG:
            if (result >= 0)
                result = 1; /* the one datagram of an overlapped send */
            break;
        case IOCP_OP_RECV:
        case IOCP_OP_READ:
            if (req->flags & IOCP_REQ_PROVIDED) {
                mrecv_ready(p, req, result);
                return false; /* its completion, if any, is queued */
            }
            if (req->op == IOCP_OP_READ && result > 0 && req->handle->kind == IOCP_HANDLE_FILE)
                req->handle->offset += (uint64_t)result;
            break;
        default:
            break;
        }
    }
    ev->req = req;
    ev->result = result;
    ev->data = req->buf;
    handed_out(p, ev);
    return true;
}

static int port_wait(struct iocp_port *port, struct iocp_event *events, int max, int timeout_ms)
{
    struct win_port *p = to_port(port);
    if (!events || max <= 0)
        return IOCP_EINVAL;
    int n = take_done(p, events, max);
    uint64_t deadline = timeout_ms > 0 ? iocp__now_ms() + (uint64_t)timeout_ms : 0;
    DWORD ms = n > 0 || timeout_ms == 0 ? 0 : timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    while (n < max) {
        OVERLAPPED_ENTRY oe[GQCS_BATCH];
        ULONG want = (ULONG)(max - n < GQCS_BATCH ? max - n : GQCS_BATCH), got = 0;
        if (!GetQueuedCompletionStatusEx(p->iocp, oe, want, &got, ms, FALSE)) {
            DWORD e = GetLastError();
            if (e != WAIT_TIMEOUT)
                return n ? n : win_error(e);
            got = 0;
        }
        for (ULONG i = 0; i < got; i++)
            if (translate(p, &oe[i], &events[n]))
                n++;
        n += take_done(p, events + n, max - n);
        if (n > 0 || got == 0 || ms == 0)
            break;
        /* Only internal entries came (a wake-up, a receive that found its
         * buffer pool empty): wait again for what is left of the time. */
        if (ms != INFINITE) {
            uint64_t now = iocp__now_ms();
            if (now >= deadline)
                break;
            ms = (DWORD)(deadline - now);
        }
    }
    return n;
}

/* ---- binding ---- */

typedef LONG(NTAPI *nt_query_file_fn)(HANDLE, void *iosb, void *info, ULONG len, int cls);

/* Whether a file or pipe handle was opened for overlapped I/O: a handle
 * opened without FILE_FLAG_OVERLAPPED is in synchronous mode, which
 * NtQueryInformationFile(FileModeInformation) reports. */
static INIT_ONCE nt_query_once = INIT_ONCE_STATIC_INIT;
static nt_query_file_fn nt_query;

static BOOL CALLBACK find_nt_query(PINIT_ONCE once, PVOID param, PVOID *ctx)
{
    (void)once;
    (void)param;
    (void)ctx;
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    if (ntdll)
        nt_query =
            (nt_query_file_fn)(void (*)(void))GetProcAddress(ntdll, "NtQueryInformationFile");
    return TRUE;
}

static bool handle_is_overlapped(HANDLE f)
{
    if (GetFileType(f) == FILE_TYPE_CHAR)
        return false; /* a console */
    InitOnceExecuteOnce(&nt_query_once, find_nt_query, NULL, NULL);
    nt_query_file_fn query = nt_query;
    if (!query)
        return false;
    struct {
        union {
            LONG status;
            void *pointer;
        } u;
        ULONG_PTR information;
    } iosb;
    ULONG mode = 0;
    const int file_mode_information = 16;
    const ULONG synchronous = 0x10 | 0x20; /* FILE_SYNCHRONOUS_IO_ALERT | _NONALERT */
    if (query(f, &iosb, &mode, sizeof mode, file_mode_information) < 0)
        return false;
    return !(mode & synchronous);
}

static int associate(struct win_port *p, HANDLE f)
{
    if (CreateIoCompletionPort(f, p->iocp, KEY_IO, 0))
        return 0;
    /* ERROR_INVALID_PARAMETER (87) for a handle bound to a port already:
     * with the per-handle tracking in port.c this is a real error. */
    DWORD e = GetLastError();
    iocp__set_error_detail("CreateIoCompletionPort: error %lu", (unsigned long)e);
    return win_error(e);
}

static bool set_skip_mode(HANDLE f)
{
    return SetFileCompletionNotificationModes(f, FILE_SKIP_COMPLETION_PORT_ON_SUCCESS |
                                                     FILE_SKIP_SET_EVENT_ON_HANDLE) != 0;
}

static int port_bind(struct iocp_port *port, struct iocp_handle *h)
{
    struct win_port *p = to_port(port);
    h->wait_in = NULL;
    h->rstate = R_NONE;
    h->rcancel = false;
    h->listed = 0;
    h->reader = h->writer = NULL;
    h->mgroup = NULL;
    iocp_list_init(&h->ready_link);
    if (h->kind == IOCP_HANDLE_SOCKET) {
        SOCKET s = (SOCKET)h->sock;
        WSAPROTOCOL_INFOW info;
        int len = sizeof info;
        if (getsockopt(s, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&info, &len) != 0)
            return iocp__socket_error();
        h->family = (uint16_t)info.iAddressFamily;
        /* Non-blocking, for the reads that follow a zero-byte receive;
         * overlapped operations are not affected by the mode. */
        u_long one = 1;
        if (ioctlsocket(s, FIONBIO, &one) != 0)
            return iocp__socket_error();
        /* Once per socket (seed 2c): a reused socket is associated already
         * and keeps its mode; any other goes to CreateIoCompletionPort, whose
         * error, a real second bind included, comes back as it is. */
        bool skip = false;
        int rc = iocp__sockpool_bind(&p->sockets, h->sock, &skip);
        if (rc < 0)
            return rc;
        /* A layered (non-IFS) provider may complete without the port
         * knowing; skip-on-success is only safe with IFS handles. */
        /* Datagram sockets stay out of it (see the top of this file). */
        if (rc == 0 && info.iSocketType != SOCK_DGRAM)
            skip = (info.dwServiceFlags1 & XP1_IFS_HANDLES) && set_skip_mode((HANDLE)s);
        h->skip = skip;
        h->io = IO_OVERLAPPED;
        return 0;
    }
    HANDLE f = (HANDLE)h->sock;
    if (handle_is_overlapped(f)) {
        int rc = associate(p, f);
        if (rc < 0)
            return rc;
        h->skip = set_skip_mode(f);
        h->io = IO_OVERLAPPED;
        h->offset = 0;
        LARGE_INTEGER zero = {0}, pos;
        if (h->kind == IOCP_HANDLE_FILE && SetFilePointerEx(f, zero, &pos, FILE_CURRENT))
            h->offset = (uint64_t)pos.QuadPart;
        return 0;
    }
    h->io = IO_THREAD;
    h->skip = false;
    return 0;
}

static void port_unbind(struct iocp_port *port, struct iocp_handle *h)
{
    struct win_port *p = to_port(port);
    iocp__mutex_lock(&p->lock);
    if (h->listed) {
        iocp_list_remove(&h->ready_link);
        h->listed = 0;
    }
    iocp__mutex_unlock(&p->lock);
    stream_stop(h->reader);
    stream_stop(h->writer);
    h->reader = h->writer = NULL;
    /* A socket stays associated with the port until it is closed: there is
     * no call that undoes CreateIoCompletionPort. */
}

/* ---- packets ---- */

static int port_post(struct iocp_port *port, uint32_t code, uint64_t arg)
{
    int rc = iocp__fault_check(IOCP_FAULT_POST);
    if (rc < 0)
        return rc;
    if (PostQueuedCompletionStatus(to_port(port)->iocp, code, (ULONG_PTR)arg, NULL))
        return 0;
    DWORD e = GetLastError();
    /* Out of quota or pool memory: the caller may retry. */
    if (e == ERROR_NO_SYSTEM_RESOURCES || e == ERROR_NOT_ENOUGH_QUOTA ||
        e == ERROR_NOT_ENOUGH_MEMORY || e == ERROR_OUTOFMEMORY)
        return IOCP_EAGAIN;
    return win_error(e);
}

/* ---- open and close ---- */

static void port_close(struct iocp_port *port)
{
    struct win_port *p = to_port(port);
    if (!p)
        return;
    if (p->iocp) {
        recycle_drain(p);
        CloseHandle(p->iocp);
    }
    if (p->sockets.ops.close)
        iocp__sockpool_fini(&p->sockets);
    free(p->dq);
    free(p->buf_mem);
    free(p->buf_free);
    free(p->buf_req);
    free(p->mslots);
    iocp__mutex_fini(&p->lock);
    free(p);
}

static int port_open(struct iocp_port **out, const struct iocp_port_config *cfg)
{
    int rc = iocp__winsock_init();
    if (rc < 0)
        return rc;
    struct win_port *p = calloc(1, sizeof *p);
    if (!p)
        return IOCP_ENOMEM;
    p->base.ops = &iocp__port_iocp_ops;
    iocp__mutex_init(&p->lock);
    iocp_list_init(&p->parked);
    iocp_list_init(&p->recycling);
    p->reuse = reuse_wanted();
    atomic_init(&p->inflight, 0);
    unsigned workers = cfg->workers ? cfg->workers : 1;
    /* One port serves every worker: the engine's figure is per worker. */
    p->buf_size = cfg->buffer_size ? cfg->buffer_size : 16384;
    p->base.buffer_size = p->buf_size;
    p->buf_count = (cfg->buffer_count ? cfg->buffer_count : 256) * workers;
    p->buf_mem = malloc((size_t)p->buf_count * p->buf_size);
    p->buf_free = malloc(p->buf_count * sizeof *p->buf_free);
    p->buf_req = calloc(p->buf_count, sizeof *p->buf_req);
    if (!p->buf_mem || !p->buf_free || !p->buf_req) {
        port_close(&p->base);
        return IOCP_ENOMEM;
    }
    for (uint32_t i = 0; i < p->buf_count; i++)
        p->buf_free[i] = p->buf_count - 1 - i;
    p->buf_nfree = p->buf_count;
    iocp__mutex_lock(&p->lock);
    rc = grow(p, 64); /* the finished queue */
    iocp__mutex_unlock(&p->lock);
    if (rc < 0) {
        port_close(&p->base);
        return rc;
    }
    p->iocp = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, workers);
    if (!p->iocp) {
        rc = win_error(GetLastError());
        port_close(&p->base);
        return rc;
    }
    rc = iocp__sockpool_init(&p->sockets, p->reuse ? REUSE_POOL_CAP : 0, &sockpool_ops, p);
    if (rc < 0) {
        port_close(&p->base);
        return rc;
    }
    *out = &p->base;
    return 0;
}

const struct iocp_port_ops iocp__port_iocp_ops = {
    .name = "iocp",
    .shared = true,
    .open = port_open,
    .bind = port_bind,
    .unbind = port_unbind,
    .submit = port_submit,
    .cancel = port_cancel,
    .post = port_post,
    .wait = port_wait,
    .release_buffer = port_release_buffer,
    .recycle = port_recycle,
    .connect_socket = port_connect_socket,
    .close = port_close,
};
