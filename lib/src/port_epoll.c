/* SPDX-License-Identifier: MIT */
/*
 * The epoll backend: readiness turned into completions, so that the layers
 * above see the same model as io_uring and IOCP.
 *
 * A submitted request waits in its handle (one input and one output slot)
 * until epoll says the descriptor is ready; the port then performs the
 * syscall itself and queues a completion, which wait() hands out.  Every
 * descriptor is registered once, edge-triggered, for both directions: no
 * epoll_ctl per operation, and the handle remembers what it last saw
 * (ready_in, ready_out) until a syscall says EAGAIN.  Handles with work to
 * do sit on a ready list that wait() serves once per round, one read per
 * handle, so a connection that always has data cannot starve the others.
 * Provided receive buffers are a fixed pool allocated at open; a recv that
 * finds none free waits on a second list until one is released.
 */
#include "port.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "list.h"
#include "postq.h"
#include "thread.h"

#define DEFAULT_BUFFER_COUNT 64u
#define DEFAULT_BUFFER_SIZE  (16u * 1024u)
#define MAX_BUFFER_COUNT     (1u << 20)
#define MAX_BUFFER_SIZE      (1u << 30)
#define POSTQ_CAPACITY       4096u
#define POST_CHUNK           64  /* packets taken from the queue per drain call */
#define POST_BATCH           256 /* packets moved to the completion queue per round */
#define DEFAULT_EVENTS       256u
#define CQ_INITIAL           256u /* completion queue slots, a power of two */
/* Datagrams: the pool's size (allocated at the first datagram receive), the
 * most one recvmmsg takes per readiness, and the bit that tells a datagram
 * buffer's id from a stream buffer's in release_buffer. */
#define MSG_BUFFER_COUNT     64u
#define MSG_RECV_BATCH       32u
#define MSG_ID_BIT           0x80000000u

/* An internal completion flag, never seen by callers: this event is a
 * multishot accept's, and its handle accepts nothing more until the event
 * has been handed out (see do_accept and deliver). */
#define EV_HELD 0x80000000u

/* Which port list a handle's ready_link is in. */
enum { LIST_NONE = 0, LIST_READY, LIST_BUFWAIT };

extern const struct iocp_port_ops iocp__port_epoll_ops;

struct epoll_port {
    struct iocp_port base;
    int epfd;
    struct iocp_postq postq;
    bool post_more; /* the last drain stopped at its limit */
    bool nomem;     /* the completion queue could not grow this round */
    struct epoll_event *evs;
    int nevs;
    /* Finished completions, oldest first: a ring that doubles when full. */
    struct iocp_event *cq;
    uint32_t cq_cap, cq_head, cq_len;
    /* Provided receive buffers: one allocation, a stack of free ids. */
    unsigned char *buf_mem;
    uint32_t buf_size, buf_count;
    uint32_t *buf_free;
    uint32_t buf_nfree;
    bool *buf_lent;
    /* Datagram buffers (IOCP_OP_RECVMSG): each holds a struct iocp_msg, the
     * source address and the largest datagram; allocated on first use, so a
     * port that never sees a datagram socket costs nothing. */
    unsigned char *msg_mem;
    uint32_t msg_size;
    uint32_t *msg_free;
    uint32_t msg_nfree;
    bool *msg_lent;
    struct iocp_list ready;    /* handles to serve in the next round */
    struct iocp_list buf_wait; /* handles whose provided recv waits for a buffer */
};

static struct epoll_port *to_port(struct iocp_port *port)
{
    return iocp_container_of(port, struct epoll_port, base);
}

/* ---- the completion queue ---- */

/*
 * Make room for n more completions.  Everything that may queue one reserves
 * first, before its syscall, so that a completion is never produced and then
 * dropped: when memory is short the work simply waits for a later round.
 */
static bool cq_reserve(struct epoll_port *p, uint32_t n)
{
    if (p->cq_cap - p->cq_len >= n)
        return true;
    uint32_t cap = p->cq_cap;
    while (cap - p->cq_len < n) {
        if (cap > UINT32_MAX / 2)
            goto nomem;
        cap *= 2;
    }
    struct iocp_event *q = malloc((size_t)cap * sizeof *q);
    if (!q)
        goto nomem;
    for (uint32_t i = 0; i < p->cq_len; i++)
        q[i] = p->cq[(p->cq_head + i) & (p->cq_cap - 1)];
    free(p->cq);
    p->cq = q;
    p->cq_cap = cap;
    p->cq_head = 0;
    return true;
nomem:
    p->nomem = true;
    return false;
}

static void cq_push(struct epoll_port *p, struct iocp_req *req, int32_t result, uint32_t flags,
                    void *data, uint32_t buf_id)
{
    struct iocp_event *ev = &p->cq[(p->cq_head + p->cq_len) & (p->cq_cap - 1)];
    *ev = (struct iocp_event){
        .req = req, .result = result, .flags = flags, .data = data, .buf_id = buf_id};
    p->cq_len++;
}

/* ---- ready lists ---- */

static void list_splice_tail(struct iocp_list *dst, struct iocp_list *src)
{
    if (iocp_list_empty(src))
        return;
    src->next->prev = dst->prev;
    dst->prev->next = src->next;
    src->prev->next = dst;
    dst->prev = src->prev;
    iocp_list_init(src);
}

/* Whether an input request could take a buffer now (true when it needs
 * none). */
static bool has_buffer(const struct epoll_port *p, const struct iocp_req *req)
{
    if (req->op == IOCP_OP_RECVMSG)
        return p->msg_nfree > 0;
    return !(req->flags & IOCP_REQ_PROVIDED) || p->buf_nfree > 0;
}

/*
 * Put h on the list its state calls for: ready when a waiting request can
 * make progress, buffer-wait when only a provided recv could and no buffer
 * is free, none otherwise.  A handle already on the right list keeps its
 * place, so the order of service stays first come, first served.
 */
static void update(struct epoll_port *p, struct iocp_handle *h)
{
    uint8_t want = LIST_NONE;
    if (h->wait_out && h->ready_out)
        want = LIST_READY;
    else if (h->wait_in && h->ready_in && !h->held)
        want = !has_buffer(p, h->wait_in) ? LIST_BUFWAIT : LIST_READY;
    if (want == h->listed)
        return;
    iocp_list_remove(&h->ready_link);
    h->listed = want;
    if (want == LIST_READY)
        iocp_list_insert_tail(&p->ready, &h->ready_link);
    else if (want == LIST_BUFWAIT)
        iocp_list_insert_tail(&p->buf_wait, &h->ready_link);
}

/* ---- provided buffers ---- */

static uint32_t take_buffer(struct epoll_port *p)
{
    uint32_t id = p->buf_free[--p->buf_nfree];
    p->buf_lent[id] = true;
    return id;
}

/* Handles parked on buf_wait are not woken here: the next round moves as
 * many of them as there are free buffers to the front of its batch. */
static void give_buffer(struct epoll_port *p, uint32_t id)
{
    p->buf_lent[id] = false;
    p->buf_free[p->buf_nfree++] = id;
}

/* Datagram buffers: a struct iocp_msg, the source address, the payload. */
#define MSG_NAME_OFF    ((sizeof(struct iocp_msg) + 15u) & ~(size_t)15u)
#define MSG_PAYLOAD_OFF (MSG_NAME_OFF + sizeof(struct sockaddr_storage))

static int msg_pool_init(struct epoll_port *p)
{
    if (p->msg_mem)
        return 0;
    p->msg_size = (uint32_t)((MSG_PAYLOAD_OFF + IOCP_MSG_MAX + 63u) & ~(size_t)63u);
    p->msg_mem = malloc((size_t)MSG_BUFFER_COUNT * p->msg_size);
    p->msg_free = calloc(MSG_BUFFER_COUNT, sizeof *p->msg_free);
    p->msg_lent = calloc(MSG_BUFFER_COUNT, sizeof *p->msg_lent);
    if (!p->msg_mem || !p->msg_free || !p->msg_lent) {
        free(p->msg_mem);
        free(p->msg_free);
        free(p->msg_lent);
        p->msg_mem = NULL;
        p->msg_free = NULL;
        p->msg_lent = NULL;
        return IOCP_ENOMEM;
    }
    for (uint32_t i = 0; i < MSG_BUFFER_COUNT; i++)
        p->msg_free[i] = MSG_BUFFER_COUNT - 1 - i;
    p->msg_nfree = MSG_BUFFER_COUNT;
    return 0;
}

static uint32_t take_msg(struct epoll_port *p)
{
    uint32_t id = p->msg_free[--p->msg_nfree];
    p->msg_lent[id] = true;
    return id;
}

static void give_msg(struct epoll_port *p, uint32_t id)
{
    p->msg_lent[id] = false;
    p->msg_free[p->msg_nfree++] = id;
}

/* ---- syscalls ---- */

/*
 * write() to a pipe whose reader has gone raises SIGPIPE, and MSG_NOSIGNAL
 * exists only for sockets.  With IOCP_REQ_NOSIGNAL the signal is blocked on
 * this thread for the call and a SIGPIPE it raised is consumed before the
 * mask is restored, so the caller sees EPIPE and the process lives; a
 * SIGPIPE that was already pending is left alone.
 */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
    sigset_t pipe_set, pending, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigpending(&pending);
    bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = write(fd, buf, len);
    int e = errno;
    if (n < 0 && e == EPIPE && !was_pending) {
        const struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    errno = e;
    return n;
}

static bool would_block(int e)
{
    return e == EAGAIN || e == EWOULDBLOCK;
}

/* ---- serving input: accept, recv, read ---- */

/*
 * One accept.  A multishot request then holds its handle until this
 * completion has been handed out: the accepted socket and the peer address
 * live in the request itself, and a second accept before the caller saw the
 * first would overwrite them.
 */
static void do_accept(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    struct sockaddr *sa = (struct sockaddr *)req->addr;
    socklen_t salen = sizeof(struct sockaddr_storage);
    int fd = accept4(h->sock, sa, sa ? &salen : NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    int32_t result;
    if (fd < 0) {
        int e = errno;
        if (would_block(e))
            h->ready_in = false;
        if (would_block(e) || e == EINTR)
            return;
        result = iocp__err_from_errno(e);
    } else {
        result = 0;
        if (sa)
            req->addrlen = salen;
    }
    req->accepted = fd;
    /* An error ends a multishot accept, as it does on io_uring: the caller
     * decides whether to back off (EMFILE) or re-arm at once. */
    bool more = (req->flags & IOCP_REQ_MULTI) && result == 0;
    if (more)
        h->held = true;
    else
        h->wait_in = NULL;
    cq_push(p, req, result, more ? IOCP_EV_MORE | EV_HELD : 0, req->buf, 0);
}

/*
 * One recv or read, into the request's buffer or a provided one.
 *
 * The short-read rule: with edge-triggered epoll a new edge comes with every
 * arrival after the last epoll_wait, so a read that returns less than asked
 * on a stream (or a FIFO) has emptied it and ready_in can drop without an
 * extra syscall to see EAGAIN.  A full read leaves ready_in set, and the
 * handle is served again next round.  The rule fails for datagrams and ttys
 * (one message or line per read), and once the peer has shut down: the FIN
 * raised its edge already and will not raise another, so after a hang-up
 * only EAGAIN may clear ready_in, and it never comes.
 */
static void do_read(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    bool provided = req->flags & IOCP_REQ_PROVIDED;
    void *buf = req->buf;
    size_t len = req->len;
    uint32_t id = 0;
    /* A second provided buffer behind the first (see below), or none. */
    unsigned char *buf2 = NULL;
    size_t len2 = 0;
    uint32_t id2 = 0;
    if (provided) {
        if (p->buf_nfree == 0)
            return; /* update() parks the handle on buf_wait */
        id = take_buffer(p);
        buf = p->buf_mem + (size_t)id * p->buf_size;
        /* The request's budget, if it has one, caps the read (port.h). */
        if (!req->len || req->len > p->buf_size)
            len = p->buf_size;
        /*
         * A socket read that fills its buffer cannot tell whether more is
         * waiting, so the short-read rule would cost one more recv, to see
         * EAGAIN, after every message of exactly a buffer's size (a 16 KiB
         * echo, a relay's 16 KiB writes).  Once a read has filled its
         * buffer, a multishot recv with budget for more reads into a second
         * buffer as well, in the same call: then only a read that fills
         * both leaves the socket marked ready.  Reads that never fill a
         * buffer (small messages) keep the cheaper recv.
         */
        if ((req->flags & IOCP_REQ_MULTI) && h->filled && h->kind == IOCP_HANDLE_SOCKET &&
            h->drains &&
            (!req->len || req->len > len) && p->buf_nfree > 0 && cq_reserve(p, 2)) {
            id2 = take_buffer(p);
            buf2 = p->buf_mem + (size_t)id2 * p->buf_size;
            len2 = !req->len || req->len - len > p->buf_size ? p->buf_size : req->len - len;
        }
    }
    if (len > INT32_MAX)
        len = INT32_MAX;
    ssize_t n;
    if (buf2) {
        struct iovec iov[2] = {{.iov_base = buf, .iov_len = len},
                               {.iov_base = buf2, .iov_len = len2}};
        struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
        n = recvmsg(h->sock, &mh, MSG_DONTWAIT);
    } else {
        n = h->kind == IOCP_HANDLE_SOCKET ? recv(h->sock, buf, len, MSG_DONTWAIT)
                                          : read(h->sock, buf, len);
    }
    int32_t result;
    if (n < 0) {
        int e = errno;
        if (would_block(e) || e == EINTR) {
            if (buf2)
                give_buffer(p, id2);
            if (provided)
                give_buffer(p, id);
            if (would_block(e))
                h->ready_in = false;
            return;
        }
        result = iocp__err_from_errno(e);
    } else {
        result = (int32_t)n;
        if (n > 0 && (size_t)n < len + len2 && h->drains && !h->hup)
            h->ready_in = false;
        if (provided)
            h->filled = (size_t)n >= len;
    }
    /* What landed in the second buffer is a completion of its own, after
     * the first's; an empty second buffer goes back. */
    int32_t result2 = 0;
    if (buf2) {
        if (result > (int32_t)len) {
            result2 = result - (int32_t)len;
            result = (int32_t)len;
        } else {
            give_buffer(p, id2);
        }
    }
    /* A multishot recv stays armed while data flows and its budget lasts;
     * EOF, an error or the budget's last byte is its last completion. */
    bool more = (req->flags & IOCP_REQ_MULTI) && result > 0;
    if (more && provided && req->len) {
        req->len -= (uint32_t)result + (uint32_t)result2;
        more = req->len > 0;
    }
    if (!more)
        h->wait_in = NULL;
    if (result2 > 0) {
        cq_push(p, req, result, IOCP_EV_BUFFER | IOCP_EV_MORE, buf, id);
        cq_push(p, req, result2, IOCP_EV_BUFFER | (more ? IOCP_EV_MORE : 0), buf2, id2);
    } else if (provided && result > 0) {
        cq_push(p, req, result, IOCP_EV_BUFFER | (more ? IOCP_EV_MORE : 0), buf, id);
    } else {
        if (provided)
            give_buffer(p, id);
        cq_push(p, req, result, 0, provided ? NULL : req->buf, 0);
    }
}

/*
 * Datagrams in: one bounded recvmmsg per readiness, each datagram its own
 * buffer and its own completion, so boundaries are kept and a batch costs
 * one syscall.  Fewer than asked does not prove the queue empty (recvmmsg
 * also stops at a pending error, an ICMP report), so only EAGAIN clears
 * ready_in.  An error ends the request: the caller re-arms, and a reported
 * ICMP error is consumed by the call that returned it, so this never spins.
 */
static void do_recvmsg(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    uint32_t n = p->msg_nfree < MSG_RECV_BATCH ? p->msg_nfree : MSG_RECV_BATCH;
    if (n == 0 || !cq_reserve(p, n))
        return;
    struct mmsghdr mm[MSG_RECV_BATCH];
    struct iovec iov[MSG_RECV_BATCH];
    uint32_t ids[MSG_RECV_BATCH];
    size_t want = req->len && req->len < IOCP_MSG_MAX ? req->len : IOCP_MSG_MAX;
    for (uint32_t i = 0; i < n; i++) {
        ids[i] = take_msg(p);
        unsigned char *b = p->msg_mem + (size_t)ids[i] * p->msg_size;
        iov[i] = (struct iovec){.iov_base = b + MSG_PAYLOAD_OFF, .iov_len = want};
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_name = b + MSG_NAME_OFF;
        mm[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int got = recvmmsg(h->sock, mm, n, MSG_DONTWAIT, NULL);
    if (got < 0) {
        int e = errno;
        for (uint32_t i = n; i > 0; i--)
            give_msg(p, ids[i - 1]);
        if (would_block(e))
            h->ready_in = false;
        if (would_block(e) || e == EINTR)
            return;
        h->wait_in = NULL;
        cq_push(p, req, iocp__err_from_errno(e), 0, NULL, 0);
        return;
    }
    for (uint32_t i = 0; i < (uint32_t)got; i++) {
        unsigned char *b = p->msg_mem + (size_t)ids[i] * p->msg_size;
        struct iocp_msg *m = (struct iocp_msg *)b;
        m->payload = b + MSG_PAYLOAD_OFF;
        m->from = (const struct sockaddr *)(b + MSG_NAME_OFF);
        m->fromlen = mm[i].msg_hdr.msg_namelen;
        m->len = mm[i].msg_len;
        m->flags = (mm[i].msg_hdr.msg_flags & MSG_TRUNC) ? IOCP_MSG_TRUNC : 0;
        cq_push(p, req, (int32_t)m->len, IOCP_EV_BUFFER | IOCP_EV_MORE, m, ids[i] | MSG_ID_BIT);
    }
    for (uint32_t i = n; i > (uint32_t)got; i--)
        give_msg(p, ids[i - 1]);
}

/*
 * Datagrams out: the whole batch in one sendmmsg.  A full socket buffer
 * (EAGAIN before the first) waits for the next EPOLLOUT edge; a partial
 * batch completes with its count, and the caller sends the rest, which
 * finds EAGAIN or the error that stopped this one.
 */
static void do_sendmsg(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    const struct iocp_msg_out *out = req->buf;
    struct mmsghdr mm[IOCP_MSG_BATCH];
    struct iovec iov[IOCP_MSG_BATCH];
    uint32_t n = req->len;
    for (uint32_t i = 0; i < n; i++) {
        iov[i] = (struct iovec){.iov_base = (void *)out[i].data, .iov_len = out[i].len};
        memset(&mm[i], 0, sizeof mm[i]);
        mm[i].msg_hdr.msg_name = (void *)out[i].to;
        mm[i].msg_hdr.msg_namelen = out[i].to ? out[i].tolen : 0;
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    int got = sendmmsg(h->sock, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    int32_t result = got;
    if (got < 0) {
        int e = errno;
        if (would_block(e))
            h->ready_out = false;
        if (would_block(e) || e == EINTR)
            return;
        result = iocp__err_from_errno(e);
    }
    h->wait_out = NULL;
    cq_push(p, req, result, 0, req->buf, 0);
}

/*
 * One splice between a socket and a pipe, either way, on readiness.  The
 * pipe is non-blocking and the caller moves data into it only while it is
 * empty, so EAGAIN speaks of the socket.  No short-read rule here: a pipe
 * may take fewer bytes than the socket holds (it has a limited number of
 * slots), so readiness is cleared only by EAGAIN.
 */
static void do_splice(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    bool out = req->flags & IOCP_REQ_SPLICE_OUT;
    size_t len = req->len > INT32_MAX ? INT32_MAX : req->len;
    ssize_t n = out ? splice(req->accepted, NULL, h->sock, NULL, len,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
                    : splice(h->sock, NULL, req->accepted, NULL, len,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n < 0) {
        int e = errno;
        if (would_block(e) || e == EINTR) {
            if (would_block(e)) {
                if (out)
                    h->ready_out = false;
                else
                    h->ready_in = false;
            }
            return;
        }
        n = iocp__err_from_errno(e);
    }
    if (out)
        h->wait_out = NULL;
    else
        h->wait_in = NULL;
    cq_push(p, req, (int32_t)n, 0, NULL, 0);
}

static void serve_in(struct epoll_port *p, struct iocp_handle *h)
{
    if (!cq_reserve(p, 1))
        return;
    if (h->wait_in->op == IOCP_OP_ACCEPT)
        do_accept(p, h, h->wait_in);
    else if (h->wait_in->op == IOCP_OP_SPLICE)
        do_splice(p, h, h->wait_in);
    else if (h->wait_in->op == IOCP_OP_RECVMSG)
        do_recvmsg(p, h, h->wait_in);
    else
        do_read(p, h, h->wait_in);
}

/* ---- serving output: connect, send, write ---- */

/*
 * EPOLLOUT after a nonblocking connect: SO_ERROR says whether it failed.  A
 * zero there is not proof of success, because the edge may be a stale one
 * from before connect() (a fresh socket polls as writable and hung up), so
 * getpeername() confirms; ENOTCONN means the handshake is still running.
 */
static void finish_connect(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(h->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == 0) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        if (getpeername(h->sock, (struct sockaddr *)&peer, &plen) < 0) {
            if (errno == ENOTCONN) {
                h->ready_out = false;
                return;
            }
            err = errno;
        }
    }
    h->wait_out = NULL;
    cq_push(p, req, err ? iocp__err_from_errno(err) : 0, 0, req->buf, 0);
}

/*
 * One send or write.  A partial one completes with its count (the caller
 * sends the rest) and, on anything but a regular file, means the buffer is
 * full: ready_out drops and the next EPOLLOUT edge raises it again.
 */
static void do_write(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    size_t len = req->len > INT32_MAX ? INT32_MAX : req->len;
    ssize_t n;
    if (h->kind == IOCP_HANDLE_SOCKET)
        n = send(h->sock, req->buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    else if (req->flags & IOCP_REQ_NOSIGNAL)
        n = write_nosigpipe(h->sock, req->buf, len);
    else
        n = write(h->sock, req->buf, len);
    int32_t result;
    if (n < 0) {
        int e = errno;
        if (would_block(e))
            h->ready_out = false;
        if (would_block(e) || e == EINTR)
            return;
        result = iocp__err_from_errno(e);
    } else {
        result = (int32_t)n;
        if ((size_t)n < len && h->kind != IOCP_HANDLE_FILE)
            h->ready_out = false;
    }
    h->wait_out = NULL;
    cq_push(p, req, result, 0, req->buf, 0);
}

static void serve_out(struct epoll_port *p, struct iocp_handle *h)
{
    if (!cq_reserve(p, 1))
        return;
    if (h->wait_out->op == IOCP_OP_CONNECT)
        finish_connect(p, h, h->wait_out);
    else if (h->wait_out->op == IOCP_OP_SPLICE)
        do_splice(p, h, h->wait_out);
    else if (h->wait_out->op == IOCP_OP_SENDMSG)
        do_sendmsg(p, h, h->wait_out);
    else
        do_write(p, h, h->wait_out);
}

/* ---- rounds ---- */

static void serve(struct epoll_port *p, struct iocp_handle *h)
{
    if (h->wait_out && h->ready_out)
        serve_out(p, h);
    if (h->wait_in && h->ready_in && !h->held)
        serve_in(p, h);
    update(p, h);
}

/*
 * Serve every handle that was ready when the round began, once.  A handle
 * that is still ready afterwards goes to the tail of the list for the next
 * round, never back into this one: that is what bounds a round and keeps
 * service fair.  Handles that waited for a buffer go first, one per free
 * buffer, so that a busy connection cannot take every released buffer
 * while a parked one waits forever.
 */
static void serve_ready(struct epoll_port *p)
{
    struct iocp_list batch;
    iocp_list_init(&batch);
    uint32_t nbuf = p->buf_nfree, nmsg = p->msg_nfree;
    struct iocp_list *node, *next;
    for (node = p->buf_wait.next; node != &p->buf_wait && (nbuf || nmsg); node = next) {
        next = node->next;
        struct iocp_handle *h = iocp_list_entry(node, struct iocp_handle, ready_link);
        uint32_t *left = h->wait_in && h->wait_in->op == IOCP_OP_RECVMSG ? &nmsg : &nbuf;
        if (*left == 0)
            continue;
        (*left)--;
        iocp_list_remove(node);
        iocp_list_insert_tail(&batch, node);
    }
    list_splice_tail(&batch, &p->ready);
    while (!iocp_list_empty(&batch)) {
        struct iocp_handle *h = iocp_list_entry(batch.next, struct iocp_handle, ready_link);
        iocp_list_remove(&h->ready_link);
        h->listed = LIST_NONE;
        serve(p, h);
    }
}

/* Move posted packets to the completion queue, a bounded number per round
 * so that a flood of posts cannot starve I/O; post_more brings the rest in
 * the following rounds even though the eventfd has been read. */
static void drain_posts(struct epoll_port *p)
{
    struct iocp_packet pk[POST_CHUNK];
    for (int total = 0; total < POST_BATCH; total += POST_CHUNK) {
        if (!cq_reserve(p, POST_CHUNK)) {
            p->post_more = true;
            return;
        }
        int got = iocp__postq_drain(&p->postq, pk, POST_CHUNK);
        for (int i = 0; i < got; i++) {
            struct iocp_event *ev = &p->cq[(p->cq_head + p->cq_len++) & (p->cq_cap - 1)];
            *ev = (struct iocp_event){.code = pk[i].code, .arg = pk[i].arg};
        }
        if (got < POST_CHUNK) {
            p->post_more = false;
            return;
        }
    }
    p->post_more = true;
}

static bool has_work(const struct epoll_port *p)
{
    return !iocp_list_empty(&p->ready) || p->post_more ||
           ((p->buf_nfree > 0 || p->msg_nfree > 0) && !iocp_list_empty(&p->buf_wait));
}

/*
 * One round: collect readiness, then serve.  Hang-ups and errors count as
 * readiness in both directions, so that a waiting request performs its
 * syscall and reports the EOF or the error itself: the completion then
 * carries the same result io_uring would give.
 */
static int run_round(struct epoll_port *p, int timeout_ms)
{
    int n = epoll_wait(p->epfd, p->evs, p->nevs, timeout_ms);
    int rc = 0;
    if (n < 0) {
        rc = iocp__err_from_errno(errno);
        n = 0;
    }
    bool posts = p->post_more;
    for (int i = 0; i < n; i++) {
        if (p->evs[i].data.ptr == &p->postq) {
            posts = true;
            continue;
        }
        struct iocp_handle *h = p->evs[i].data.ptr;
        uint32_t e = p->evs[i].events;
        if (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP))
            h->hup = true;
        if (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
            h->ready_in = true;
        if (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))
            h->ready_out = true;
        update(p, h);
    }
    if (posts)
        drain_posts(p);
    serve_ready(p);
    return rc;
}

/*
 * Hand out up to max completions, oldest first.  This is where a request
 * stops being in flight, and where a multishot accept's handle is released
 * to accept again: the caller dispatches this batch before it waits again.
 */
static int deliver(struct epoll_port *p, struct iocp_event *events, int max)
{
    int n = 0;
    while (n < max && p->cq_len > 0) {
        struct iocp_event ev = p->cq[p->cq_head];
        p->cq_head = (p->cq_head + 1) & (p->cq_cap - 1);
        p->cq_len--;
        if (ev.req && !(ev.flags & IOCP_EV_MORE))
            ev.req->in_flight = false;
        if (ev.flags & EV_HELD) {
            ev.flags &= ~EV_HELD;
            ev.req->handle->held = false;
            update(p, ev.req->handle);
        }
        events[n++] = ev;
    }
    return n;
}

/* Forget the hold of a multishot accept that stops waiting (cancel,
 * unbind): its queued completion must then not touch the handle, which the
 * caller may free once the request's last completion has arrived. */
static void drop_hold(struct epoll_port *p, struct iocp_handle *h)
{
    if (!h->held)
        return;
    for (uint32_t i = 0; i < p->cq_len; i++) {
        struct iocp_event *ev = &p->cq[(p->cq_head + i) & (p->cq_cap - 1)];
        if (ev->req == h->wait_in)
            ev->flags &= ~EV_HELD;
    }
    h->held = false;
}

/* ---- the ops ---- */

static int port_open(struct iocp_port **out, const struct iocp_port_config *cfg)
{
    struct epoll_port *p = calloc(1, sizeof *p);
    int rc;
    if (!p)
        return IOCP_ENOMEM;
    p->base.ops = &iocp__port_epoll_ops;
    iocp_list_init(&p->ready);
    iocp_list_init(&p->buf_wait);
    p->buf_count = cfg && cfg->buffer_count ? cfg->buffer_count : DEFAULT_BUFFER_COUNT;
    p->buf_size = cfg && cfg->buffer_size ? cfg->buffer_size : DEFAULT_BUFFER_SIZE;
    p->base.buffer_size = p->buf_size;
    unsigned entries = cfg && cfg->entries ? cfg->entries : DEFAULT_EVENTS;
    p->nevs = entries < 16 ? 16 : entries > 4096 ? 4096 : (int)entries;
    if (p->buf_count > MAX_BUFFER_COUNT || p->buf_size > MAX_BUFFER_SIZE) {
        rc = IOCP_EINVAL;
        goto err0;
    }

    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        rc = iocp__err_from_errno(errno);
        goto err0;
    }
    rc = iocp__postq_init(&p->postq, POSTQ_CAPACITY);
    if (rc < 0)
        goto err1;
    /* Level-triggered: drain_posts reads the eventfd every time, and a
     * drain that stops at its limit is picked up through post_more. */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &p->postq};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, p->postq.efd, &ev) < 0) {
        rc = iocp__err_from_errno(errno);
        goto err2;
    }

    p->evs = calloc((size_t)p->nevs, sizeof *p->evs);
    p->cq = calloc(CQ_INITIAL, sizeof *p->cq);
    p->cq_cap = CQ_INITIAL;
    p->buf_mem = malloc((size_t)p->buf_count * p->buf_size);
    p->buf_free = calloc(p->buf_count, sizeof *p->buf_free);
    p->buf_lent = calloc(p->buf_count, sizeof *p->buf_lent);
    if (!p->evs || !p->cq || !p->buf_mem || !p->buf_free || !p->buf_lent) {
        rc = IOCP_ENOMEM;
        goto err3;
    }
    /* Stacked so that buffer 0 is lent first: low ids, warm cache lines. */
    for (uint32_t i = 0; i < p->buf_count; i++)
        p->buf_free[i] = p->buf_count - 1 - i;
    p->buf_nfree = p->buf_count;
    *out = &p->base;
    return 0;

err3:
    free(p->buf_lent);
    free(p->buf_free);
    free(p->buf_mem);
    free(p->cq);
    free(p->evs);
err2:
    iocp__postq_fini(&p->postq);
err1:
    close(p->epfd);
err0:
    free(p);
    return rc;
}

/*
 * Whether a short read proves the descriptor empty (see do_read): true for
 * stream sockets and FIFOs, false for datagram sockets and character
 * devices, which return one message or one line per read.
 */
static bool short_read_drains(const struct iocp_handle *h)
{
    if (h->kind == IOCP_HANDLE_SOCKET) {
        int type = 0;
        socklen_t len = sizeof type;
        return getsockopt(h->sock, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
    }
    struct stat st;
    return fstat(h->sock, &st) == 0 && S_ISFIFO(st.st_mode);
}

/*
 * Edge-triggered readiness means reading until EAGAIN (or a short read),
 * and on a blocking descriptor that last read would stall the worker, as
 * would a large write to a pipe with little room.  So the descriptor is
 * made nonblocking here, whatever the caller did.
 */
static int set_nonblocking(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return iocp__err_from_errno(errno);
    if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return iocp__err_from_errno(errno);
    return 0;
}

static int port_bind(struct iocp_port *port, struct iocp_handle *h)
{
    struct epoll_port *p = to_port(port);
    iocp_list_init(&h->ready_link);
    h->listed = LIST_NONE;
    h->wait_in = h->wait_out = NULL;
    h->ready_in = h->ready_out = false;
    h->hup = h->held = h->drains = h->polled = h->filled = false;
    if (h->kind == IOCP_HANDLE_FILE)
        goto always_ready;

    if (h->own_stream) {
        h->drains = true;
    } else {
        int rc = set_nonblocking(h->sock);
        if (rc < 0)
            return rc;
        h->drains = short_read_drains(h);
    }
    /* Registered once for both directions, edge-triggered: the handle keeps
     * the readiness epoll reported, so no epoll_ctl is needed per request,
     * and a descriptor nobody is reading does not wake every round as it
     * would level-triggered.  EPOLLRDHUP reports a half-close at once. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = h};
    if (epoll_ctl(p->epfd, EPOLL_CTL_ADD, h->sock, &ev) < 0) {
        int e = errno;
        /* epoll refuses what cannot block (a regular file or /dev/null
         * given as a pipe): it is served like a file, always ready. */
        if (e == EPERM && h->kind == IOCP_HANDLE_PIPE)
            goto always_ready;
        return iocp__err_from_errno(e);
    }
    h->polled = true;
    /* Assume writable until a send says otherwise: the first send after
     * bind then goes out at once instead of waiting for the initial edge. */
    h->ready_out = true;
    return 0;

always_ready:
    h->ready_in = h->ready_out = true;
    h->drains = false;
    return 0;
}

static int port_cancel(struct iocp_port *port, struct iocp_req *req)
{
    struct epoll_port *p = to_port(port);
    struct iocp_handle *h = req->handle;
    if (!req->in_flight || !h)
        return 0;
    bool in = h->wait_in == req;
    /* Not waiting: it finished and its completion is queued.  Cancelling
     * now would give the request two last completions. */
    if (!in && h->wait_out != req)
        return 0;
    if (!cq_reserve(p, 1))
        return IOCP_ENOMEM;
    if (in) {
        drop_hold(p, h);
        h->wait_in = NULL;
    } else {
        h->wait_out = NULL;
    }
    cq_push(p, req, IOCP_ECANCELED, 0, (req->flags & IOCP_REQ_PROVIDED) ? NULL : req->buf, 0);
    update(p, h);
    return 0;
}

static void port_unbind(struct iocp_port *port, struct iocp_handle *h)
{
    struct epoll_port *p = to_port(port);
    /* The caller guarantees that no request is waiting.  Should one be,
     * it completes with IOCP_ECANCELED rather than vanish. */
    if (h->wait_in)
        port_cancel(port, h->wait_in);
    if (h->wait_out)
        port_cancel(port, h->wait_out);
    drop_hold(p, h);
    h->wait_in = h->wait_out = NULL;
    iocp_list_remove(&h->ready_link);
    h->listed = LIST_NONE;
    if (h->polled) {
        /* ENOENT or EBADF would mean the descriptor is gone already, which
         * leaves nothing to undo. */
        epoll_ctl(p->epfd, EPOLL_CTL_DEL, h->sock, NULL);
        h->polled = false;
    }
}

static bool is_input(const struct iocp_req *req)
{
    uint8_t op = req->op;
    return op == IOCP_OP_ACCEPT || op == IOCP_OP_RECV || op == IOCP_OP_READ ||
           op == IOCP_OP_RECVMSG ||
           (op == IOCP_OP_SPLICE && !(req->flags & IOCP_REQ_SPLICE_OUT));
}

/* The checks a caller's mistake would otherwise turn into a hang or a
 * crash inside a later round. */
static int check_req(struct iocp_port *port, const struct iocp_req *req)
{
    const struct iocp_handle *h = req->handle;
    if (!h || !h->bound || h->port != port)
        return IOCP_EINVAL;
    bool provided = req->flags & IOCP_REQ_PROVIDED;
    bool multi = req->flags & IOCP_REQ_MULTI;
    switch (req->op) {
    case IOCP_OP_ACCEPT:
    case IOCP_OP_CONNECT:
        if (h->kind != IOCP_HANDLE_SOCKET || provided || (multi && req->op == IOCP_OP_CONNECT))
            return IOCP_EINVAL;
        if (req->op == IOCP_OP_CONNECT && !req->addr)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_RECV:
    case IOCP_OP_READ:
        if (multi && !provided)
            return IOCP_EINVAL;
        if (!provided && !req->buf && req->len)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_SEND:
    case IOCP_OP_WRITE:
        if (multi || provided || (!req->buf && req->len))
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_SPLICE:
        if (h->kind != IOCP_HANDLE_SOCKET || multi || provided || req->accepted < 0 || !req->len)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_RECVMSG:
        if (h->kind != IOCP_HANDLE_SOCKET || !multi || !provided)
            return IOCP_EINVAL;
        return 0;
    case IOCP_OP_SENDMSG:
        if (h->kind != IOCP_HANDLE_SOCKET || multi || provided || !req->buf || !req->len ||
            req->len > IOCP_MSG_BATCH)
            return IOCP_EINVAL;
        return 0;
    default:
        return IOCP_EINVAL;
    }
}

/* A nonblocking connect started here; its completion is queued even when
 * it finishes (or fails) at once. */
static void start_connect(struct epoll_port *p, struct iocp_handle *h, struct iocp_req *req)
{
    if (connect(h->sock, (struct sockaddr *)req->addr, req->addrlen) == 0) {
        cq_push(p, req, 0, 0, req->buf, 0);
        return;
    }
    int e = errno;
    if (e != EINPROGRESS && e != EINTR) {
        cq_push(p, req, iocp__err_from_errno(e), 0, req->buf, 0);
        return;
    }
    /* Whatever was seen before connect() (an unconnected socket polls as
     * hung up and writable) says nothing about the connection. */
    h->ready_in = h->ready_out = h->hup = false;
    h->wait_out = req;
}

/*
 * Requests wait in the handle.  Completions never come from here, only from
 * wait(): the caller may hold locks or be in the middle of setting up the
 * object that owns req, and io_uring and IOCP never call back from submit
 * either, so the layers above are written for one order of events.
 */
static int port_submit(struct iocp_port *port, struct iocp_req *req)
{
    struct epoll_port *p = to_port(port);
    int rc = check_req(port, req);
    if (rc < 0)
        return rc;
    struct iocp_handle *h = req->handle;
    if (req->in_flight || (is_input(req) ? h->wait_in : h->wait_out))
        return IOCP_EBUSY;
    /* Room for the completion first: an inline send or connect must be able
     * to queue it, and a failure here leaves nothing started. */
    if (!cq_reserve(p, 1))
        return IOCP_ENOMEM;

    req->in_flight = true;
    switch (req->op) {
    case IOCP_OP_ACCEPT:
        req->accepted = IOCP_INVALID_SOCKET;
        h->wait_in = req;
        break;
    case IOCP_OP_RECV:
    case IOCP_OP_READ:
        h->wait_in = req;
        break;
    case IOCP_OP_RECVMSG:
        rc = msg_pool_init(p);
        if (rc < 0) {
            req->in_flight = false;
            return rc;
        }
        h->wait_in = req;
        break;
    case IOCP_OP_SPLICE:
        if (is_input(req)) {
            h->wait_in = req;
            break;
        }
        h->wait_out = req;
        if (h->ready_out)
            serve_out(p, h);
        break;
    case IOCP_OP_CONNECT:
        start_connect(p, h, req);
        break;
    default:
        /* A send on a writable socket goes out now, saving a round trip
         * through epoll; only its completion waits for wait(). */
        h->wait_out = req;
        if (h->ready_out && h->kind != IOCP_HANDLE_FILE)
            serve_out(p, h);
        break;
    }
    update(p, h);
    return 0;
}

/*
 * A send the caller makes straight from its own buffer (port.h): the
 * socket is known writable and nothing waits to go out before it, so the
 * bytes go now, with no copy into a send queue and no completion to hand
 * out later.  With a thousand busy connections that is what keeps a
 * 64-byte echo from holding a queued buffer per connection across a round.
 */
static uint32_t port_send_now(struct iocp_port *port, struct iocp_handle *h, const void *buf,
                              uint32_t len)
{
    (void)port;
    if (h->wait_out || !h->ready_out || h->kind != IOCP_HANDLE_SOCKET || len > INT32_MAX)
        return 0;
    ssize_t n = send(h->sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (would_block(errno))
            h->ready_out = false;
        return 0;
    }
    if ((size_t)n < len)
        h->ready_out = false;
    return (uint32_t)n;
}

static int port_post(struct iocp_port *port, uint32_t code, uint64_t arg)
{
    return iocp__postq_push(&to_port(port)->postq, code, arg);
}

/*
 * Completions already queued are handed out first; a round runs only while
 * fewer than max are queued, and blocks only when nothing at all is pending.
 * A round may produce nothing (a stale edge, EAGAIN), so rounds repeat until
 * a completion arrives or the time-out has passed.
 */
static int port_wait(struct iocp_port *port, struct iocp_event *events, int max, int timeout_ms)
{
    struct epoll_port *p = to_port(port);
    if (!events || max <= 0)
        return IOCP_EINVAL;
    uint64_t deadline = timeout_ms > 0 ? iocp__now_ms() + (uint64_t)timeout_ms : 0;
    int tmo = timeout_ms;
    while (p->cq_len < (uint32_t)max) {
        p->nomem = false;
        int rc = run_round(p, p->cq_len > 0 || has_work(p) ? 0 : tmo);
        if (p->cq_len > 0 || rc == IOCP_EINTR || timeout_ms == 0)
            break;
        if (rc < 0)
            return rc;
        if (p->nomem)
            return IOCP_ENOMEM;
        if (timeout_ms > 0) {
            uint64_t now = iocp__now_ms();
            if (now >= deadline)
                break;
            tmo = (int)(deadline - now);
        }
    }
    return deliver(p, events, max);
}

static void port_release_buffer(struct iocp_port *port, uint32_t buf_id)
{
    struct epoll_port *p = to_port(port);
    if (buf_id & MSG_ID_BIT) {
        buf_id &= ~MSG_ID_BIT;
        if (buf_id < MSG_BUFFER_COUNT && p->msg_lent && p->msg_lent[buf_id])
            give_msg(p, buf_id);
        return;
    }
    /* A second release of the same id would put it on the free stack twice
     * and lend it to two receives at once; it is ignored instead. */
    if (buf_id >= p->buf_count || !p->buf_lent[buf_id])
        return;
    give_buffer(p, buf_id);
}

static void port_close(struct iocp_port *port)
{
    struct epoll_port *p = to_port(port);
    close(p->epfd);
    iocp__postq_fini(&p->postq);
    free(p->buf_lent);
    free(p->buf_free);
    free(p->buf_mem);
    free(p->msg_lent);
    free(p->msg_free);
    free(p->msg_mem);
    free(p->cq);
    free(p->evs);
    free(p);
}

const struct iocp_port_ops iocp__port_epoll_ops = {
    .name = "epoll",
    .shared = false,
    .splice = true,
    .open = port_open,
    .bind = port_bind,
    .unbind = port_unbind,
    .submit = port_submit,
    .cancel = port_cancel,
    .post = port_post,
    .wait = port_wait,
    .release_buffer = port_release_buffer,
    .close = port_close,
    .send_now = port_send_now,
};
