/* SPDX-License-Identifier: MIT */
/*
 * Kernel-side forwarding between two connections: iocp_conn_splice(), on
 * Linux (splice_none.c elsewhere).
 *
 * A relay that copies moves every byte through user space twice (receive
 * into a buffer, send from it).  splice(2) moves it from one socket into a
 * pipe and from the pipe into the other socket without a copy to user
 * space.  Each direction has its own pipe and two requests: "in" (socket to
 * pipe, hosted by the source connection) and "out" (pipe to socket, hosted
 * by the target).  They alternate: in runs only while the pipe is empty, so
 * an EAGAIN always speaks of the socket (a pipe can refuse bytes for lack of
 * slots long before it is full), and out runs until the pipe is empty
 * again.  Back-pressure comes for free: while the target cannot take more,
 * the pipe stays full and nothing more is read from the source.
 *
 * Order with data that went the ordinary way: the source's receive is
 * cancelled first, and in starts only after that receive has ended, so any
 * bytes it delivered (and the user queued on the target) came first; out
 * starts only once the target's send queue is empty.
 *
 * Lifetimes: each request in flight holds a reference on the connection
 * that hosts it.  A splice belongs to both connections and is freed with
 * the second of them to finish.
 */
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The pipe between the two sockets.  A larger pipe moves more per splice,
 * but in and out alternate, so the source is not read while a full pipe
 * drains: one iperf3 stream through a relay on its own CPU ran at 0.91x
 * haproxy with splice with a 64 KiB pipe, 1.07x with 1 MiB, and 1.24x to
 * 1.30x with 256 KiB, the best of 64 KiB to 1 MiB (docs/PERFORMANCE.md).
 */
#define SPLICE_PIPE_SIZE (256u << 10)

struct iocp_splice {
    struct iocp_conn *from, *to; /* NULL once that side has finished */
    int pipe_r, pipe_w;
    uint32_t pipe_size;
    size_t inpipe;               /* bytes moved in and not yet out */
    bool eof;                    /* the source reached EOF */
    bool eof_told;
    struct iocp_req in, out;
};

/* What a connection has: the splice it feeds and the splice that feeds it. */
struct iocp_splices {
    struct iocp_splice *out;
    struct iocp_splice *in;
};

static bool splicing(const struct iocp_conn *c)
{
    return (c->flags & IOCP_CONN_OPEN) && !(c->flags & IOCP_CONN_STREAM) && c->sp;
}

bool iocp__splice_source(const struct iocp_conn *c)
{
    return splicing(c) && c->sp->out;
}

bool iocp__splice_target(const struct iocp_conn *c)
{
    return splicing(c) && c->sp->in;
}

static bool alive(const struct iocp_conn *c)
{
    return c && !(c->flags & (IOCP_CONN_TEARDOWN | IOCP_CONN_FINISHED));
}

static void kick_in(struct iocp_splice *s);
static void kick_out(struct iocp_splice *s);

/* The source's EOF has been forwarded in full: shut the target down, then
 * tell the source's owner, as an ordinary receive of EOF would. */
static void forward_eof(struct iocp_splice *s)
{
    if (s->eof_told)
        return;
    s->eof_told = true;
    if (alive(s->to))
        iocp_conn_shutdown(s->to);
    struct iocp_conn *from = s->from;
    if (!alive(from) || (from->flags & IOCP_CONN_CLOSING))
        return;
    iocp__conn_enter(from);
    if (from->handler->on_eof)
        from->handler->on_eof(from);
    else
        iocp_conn_close(from, IOCP_CLOSE_GRACEFUL);
    iocp__conn_leave(from);
}

static void on_in_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_splice *s = iocp_container_of(req, struct iocp_splice, in);
    struct iocp_conn *from = s->from;
    (void)flags;
    (void)data;
    if (result > 0) {
        s->inpipe += (size_t)result;
        iocp__count_add(&from->bytes_in, (uint64_t)result);
        atomic_store_explicit(&from->last_io_ms, from->w->now_ms, memory_order_relaxed);
        IOCP_COUNT(from->w, bytes_in, (uint64_t)result);
        kick_out(s);
    } else if (result == 0) {
        s->eof = true;
        from->flags |= IOCP_CONN_EOF_IN;
        if (!s->inpipe)
            forward_eof(s);
    } else if (result != IOCP_ECANCELED) {
        iocp__conn_fail(from, result);
    }
    iocp__conn_leave(from); /* the request's reference */
}

static void on_out_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_splice *s = iocp_container_of(req, struct iocp_splice, out);
    struct iocp_conn *to = s->to;
    (void)flags;
    (void)data;
    if (result > 0) {
        s->inpipe -= (size_t)result;
        iocp__count_add(&to->bytes_out, (uint64_t)result);
        atomic_store_explicit(&to->last_io_ms, to->w->now_ms, memory_order_relaxed);
        IOCP_COUNT(to->w, bytes_out, (uint64_t)result);
        if (s->inpipe)
            kick_out(s);
        else if (s->eof)
            forward_eof(s);
        else
            kick_in(s);
    } else if (result == 0) {
        iocp__conn_fail(to, IOCP_EPIPE);
    } else if (result != IOCP_ECANCELED) {
        iocp__conn_fail(to, result);
    }
    iocp__conn_leave(to);
}

static void kick_in(struct iocp_splice *s)
{
    struct iocp_conn *from = s->from;
    if (!alive(from) || s->in.in_flight || s->inpipe || s->eof || from->rreq.in_flight)
        return;
    if (!(from->flags & IOCP_CONN_READING) ||
        (from->flags & (IOCP_CONN_CLOSING | IOCP_CONN_AUTOPAUSED)) || !alive(s->to))
        return;
    s->in.done = on_in_done;
    s->in.handle = &from->h;
    s->in.op = IOCP_OP_SPLICE;
    s->in.flags = 0;
    s->in.accepted = s->pipe_w;
    s->in.len = s->pipe_size;
    int rc = iocp__submit(from->w, &s->in);
    if (rc < 0) {
        iocp__conn_fail(from, rc);
        return;
    }
    iocp__conn_enter(from);
}

static void kick_out(struct iocp_splice *s)
{
    struct iocp_conn *to = s->to;
    if (!alive(to) || s->out.in_flight || !s->inpipe || to->queued || to->sreq.in_flight)
        return;
    s->out.done = on_out_done;
    s->out.handle = &to->h;
    s->out.op = IOCP_OP_SPLICE;
    s->out.flags = IOCP_REQ_SPLICE_OUT;
    s->out.accepted = s->pipe_r;
    s->out.len = (uint32_t)(s->inpipe < UINT32_MAX ? s->inpipe : UINT32_MAX);
    int rc = iocp__submit(to->w, &s->out);
    if (rc < 0) {
        iocp__conn_fail(to, rc);
        return;
    }
    iocp__conn_enter(to);
}

void iocp__splice_kick(struct iocp_conn *c)
{
    if (!splicing(c))
        return;
    if (c->sp->out)
        kick_in(c->sp->out);
    if (c->sp->in)
        kick_out(c->sp->in);
}

void iocp__splice_teardown(struct iocp_conn *c)
{
    if (!splicing(c))
        return;
    struct iocp_splice *s = c->sp->out;
    if (s && s->in.in_flight)
        iocp__cancel(c->w, &s->in);
    s = c->sp->in;
    if (s && s->out.in_flight)
        iocp__cancel(c->w, &s->out);
}

static void splice_free(struct iocp_splice *s)
{
    close(s->pipe_r);
    close(s->pipe_w);
    free(s);
}

void iocp__splice_detach(struct iocp_conn *c)
{
    struct iocp_splices *sp = c->sp;
    c->sp = NULL;
    if (!sp)
        return;
    struct iocp_splice *s = sp->out;
    if (s) {
        s->from = NULL;
        if (!s->to)
            splice_free(s);
    }
    s = sp->in;
    if (s) {
        s->to = NULL;
        if (!s->from)
            splice_free(s);
    }
    free(sp);
}

static struct iocp_splices *splices_of(struct iocp_conn *c)
{
    if (!c->sp)
        c->sp = calloc(1, sizeof *c->sp);
    return c->sp;
}

int iocp_conn_splice(struct iocp_conn *from, struct iocp_conn *to)
{
    if (!from || !to || from == to || from->w != to->w)
        return IOCP_EINVAL;
    if (!from->w->port->ops->splice)
        return IOCP_ENOTSUP;
    if (!(from->flags & IOCP_CONN_OPEN) || !(to->flags & IOCP_CONN_OPEN) ||
        (from->flags | to->flags) & (IOCP_CONN_STREAM | IOCP_CONN_TEARDOWN | IOCP_CONN_CLOSING))
        return (from->flags | to->flags) & IOCP_CONN_STREAM ? IOCP_ENOTSUP : IOCP_ENOTCONN;
    if ((from->flags & IOCP_CONN_EOF_IN) || (to->flags & IOCP_CONN_SHUT_WANTED))
        return IOCP_ESHUTDOWN;
    if (iocp__splice_source(from) || iocp__splice_target(to))
        return IOCP_EBUSY;

    struct iocp_splice *s = calloc(1, sizeof *s);
    if (!s)
        return IOCP_ENOMEM;
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        int rc = iocp__err_from_errno(errno);
        free(s);
        return rc;
    }
    /* A bigger pipe means fewer splices per megabyte; the system may cap
     * it (pipe-max-size), and then the default size works too. */
    int size = fcntl(fds[1], F_SETPIPE_SZ, (int)SPLICE_PIPE_SIZE);
    if (size <= 0)
        size = fcntl(fds[1], F_GETPIPE_SZ);
    s->pipe_r = fds[0];
    s->pipe_w = fds[1];
    s->pipe_size = size > 0 ? (uint32_t)size : 65536u;
    s->from = from;
    s->to = to;
    struct iocp_splices *fsp = splices_of(from), *tsp = fsp ? splices_of(to) : NULL;
    if (!tsp) {
        splice_free(s);
        return IOCP_ENOMEM;
    }
    fsp->out = s;
    tsp->in = s;
    /* The source stops receiving; in starts once its receive has ended. */
    iocp_conn_resume(from);
    return 0;
}
