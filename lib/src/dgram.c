/* SPDX-License-Identifier: MIT */
/*
 * Datagram sockets (dgram.h): opening and binding, the multishot receive,
 * the send queue drained in batches, back-pressure and drops, reports of
 * network errors that leave the socket open, and closing.
 *
 * Lifetime.  Like a connection, a socket holds one reference (refs) per
 * request in flight and per callback running; it is closed and on_close
 * runs when teardown has begun and refs is zero.  Its memory is its own
 * allocation, freed by whoever drops the last pin: the owner drops its own
 * after on_close, a stats walker or an ID lookup on another thread holds
 * one while it reads.  Entries leave the registry before the socket is
 * closed, so no new pin can be taken after the owner's goes.
 *
 * Threads.  iocp_dgram_open() may run on any thread: it creates, binds and
 * registers the socket (so its ID works at once), then hands it to its
 * worker with a task, which binds it to the port and starts receiving.
 * Everything else runs on the worker.
 */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#include "fault.h"

#ifndef _WIN32
#include <arpa/inet.h>
#include <unistd.h>
#endif

enum dgram_flag {
    DG_STARTED = 1u << 0,   /* bound to the worker's port */
    DG_READING = 1u << 1,   /* the user wants datagrams */
    DG_CLOSING = 1u << 2,   /* close asked for: sending what is queued */
    DG_TEARDOWN = 1u << 3,  /* offline; waiting for requests to finish */
    DG_FINISHED = 1u << 4,  /* on_close ran */
    DG_PRESSURE = 1u << 5,  /* above the high watermark */
    DG_RECV_CANCELLED = 1u << 6,
    DG_CONNECTED = 1u << 7, /* one peer */
    DG_ABORT = 1u << 8,     /* drop the queue (engine stop, errors) */
};

/* Consecutive receive errors with no datagram in between after which the
 * socket gives up: every report is consumed by the call that returns it, so
 * only a socket that is broken for good gets there. */
#define SOFT_ERROR_LIMIT 1024u
/* What a queued datagram costs beyond its payload, for the watermarks: a
 * flood of empty datagrams must be bounded too. */
#define DGRAM_OVERHEAD 64u
/* The hard cap is this many times the high watermark. */
#define CAP_FACTOR 4u
/* Socket buffers asked for (the system may give less): a burst at a paced
 * rate should wait in the kernel, not be dropped there. */
#define SOCKET_BUFFER (4u << 20)

struct dgram_out {
    struct dgram_out *next;
    uint32_t len;
    uint32_t tolen; /* 0: the connected peer */
    union iocp_sockaddr to;
    unsigned char data[];
};

struct iocp_dgram {
    struct iocp_reg_entry reg;
    struct iocp_handle h;
    struct iocp_worker *w;
    const struct iocp_dgram_handler *handler;
    void *data;
    struct iocp_list wlink;  /* in w->dgrams once started */
    iocp_atomic_u32 pins;    /* the owner's one, plus holders on other threads */
    uint32_t refs;           /* requests in flight and callbacks running */
    uint32_t flags;          /* enum dgram_flag */
    int status;              /* what on_close will report */
    uint32_t max_datagram;
    uint32_t soft_errors;
    int family;              /* of the socket */
    bool v6only;
    struct iocp_req rreq, sreq;
    struct iocp_msg_out batch[IOCP_MSG_BATCH];
    struct dgram_out *q_head, *q_tail;
    size_t qcost;            /* payload plus overhead of what is queued */
    iocp_atomic_size queued; /* payload bytes queued (read by walkers) */
    size_t send_low, send_high, send_cap;
    union iocp_sockaddr local, peer;
    int peerlen;
    uint64_t created_ms;
    iocp_atomic_u64 last_io_ms;
    iocp_atomic_u64 dgrams_in, dgrams_out, bytes_in, bytes_out, truncated, dropped, errors;
    struct iocp_task start_task;
};

static void begin_teardown(struct iocp_dgram *d, int status);
static void maybe_finish(struct iocp_dgram *d);
static void update_reading(struct iocp_dgram *d);
static void kick_send(struct iocp_dgram *d);

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* ---- pins: the memory ---- */

static void unpin(struct iocp_dgram *d)
{
    if (atomic_fetch_sub_explicit(&d->pins, 1, memory_order_acq_rel) == 1)
        free(d);
}

void iocp__dgram_hold(struct iocp_reg_entry *entry)
{
    struct iocp_dgram *d = iocp_container_of(entry, struct iocp_dgram, reg);
    atomic_fetch_add_explicit(&d->pins, 1, memory_order_relaxed);
}

void iocp__dgram_release(struct iocp_reg_entry *entry)
{
    unpin(iocp_container_of(entry, struct iocp_dgram, reg));
}

/* ---- errors the network reports ---- */

/* Errors that say the socket itself is unusable; every other one is a
 * report about a datagram (ICMP, a full queue) and the socket goes on. */
static bool fatal_error(int status)
{
    return status == IOCP_EBADF || status == IOCP_ENOTSOCK || status == IOCP_EINVAL ||
           status == IOCP_ENOTSUP || status == IOCP_ENOSYS;
}

/* Windows says WSAECONNRESET where Linux says ECONNREFUSED: an ICMP port
 * unreachable.  One name for one event. */
static int normalise(int status)
{
    return status == IOCP_ECONNRESET ? IOCP_ECONNREFUSED : status;
}

static void report(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen)
{
    iocp__count_add(&d->errors, 1);
    IOCP_COUNT(d->w, dgram_errors, 1);
    if (d->handler->on_error && !(d->flags & DG_TEARDOWN))
        d->handler->on_error(d, normalise(status), peer, peerlen);
}

/* ---- receiving ---- */

static void on_recv(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_dgram *d = iocp_container_of(req, struct iocp_dgram, rreq);
    struct iocp_worker *w = d->w;
    bool ended = !(flags & IOCP_EV_MORE);

    if (result >= 0 && (flags & IOCP_EV_BUFFER)) {
        const struct iocp_msg *m = data;
        size_t len = m->len;
        unsigned fl = 0;
        if ((m->flags & IOCP_MSG_TRUNC) || len > d->max_datagram) {
            fl |= IOCP_DGRAM_TRUNCATED;
            if (len > d->max_datagram)
                len = d->max_datagram;
            iocp__count_add(&d->truncated, 1);
            IOCP_COUNT(w, dgram_truncated, 1);
        }
        d->soft_errors = 0;
        iocp__count_add(&d->dgrams_in, 1);
        iocp__count_add(&d->bytes_in, len);
        IOCP_COUNT(w, dgrams_in, 1);
        IOCP_COUNT(w, dgram_bytes_in, len);
        atomic_store_explicit(&d->last_io_ms, w->now_ms, memory_order_relaxed);
        if (!(d->flags & (DG_TEARDOWN | DG_CLOSING)))
            d->handler->on_datagram(d, m->payload, len, m->from, (int)m->fromlen, fl);
    } else if (result < 0 && result != IOCP_ECANCELED) {
        if (fatal_error(result) || ++d->soft_errors > SOFT_ERROR_LIMIT)
            begin_teardown(d, result);
        else if (d->flags & DG_CONNECTED)
            report(d, result, &d->peer.sa, d->peerlen);
        else
            report(d, result, NULL, 0);
    }

    if (ended) {
        d->flags &= ~DG_RECV_CANCELLED;
        d->refs--;
        update_reading(d);
        maybe_finish(d);
    }
}

static bool wants_to_read(const struct iocp_dgram *d)
{
    return (d->flags & (DG_STARTED | DG_READING)) == (DG_STARTED | DG_READING) &&
           !(d->flags & (DG_TEARDOWN | DG_CLOSING));
}

static void update_reading(struct iocp_dgram *d)
{
    if (wants_to_read(d)) {
        if (d->rreq.in_flight)
            return;
        d->rreq.done = on_recv;
        d->rreq.handle = &d->h;
        d->rreq.op = IOCP_OP_RECVMSG;
        d->rreq.flags = IOCP_REQ_MULTI | IOCP_REQ_PROVIDED;
        d->rreq.buf = NULL;
        d->rreq.len = d->max_datagram;
        int rc = iocp__submit(d->w, &d->rreq);
        if (rc < 0) {
            begin_teardown(d, rc);
            return;
        }
        d->refs++;
    } else if (d->rreq.in_flight && !(d->flags & DG_RECV_CANCELLED)) {
        d->flags |= DG_RECV_CANCELLED;
        iocp__cancel(d->w, &d->rreq);
    }
}

int iocp_dgram_pause(struct iocp_dgram *d)
{
    if (d->flags & (DG_TEARDOWN | DG_FINISHED))
        return IOCP_ENOTCONN;
    d->flags &= ~DG_READING;
    update_reading(d);
    return 0;
}

int iocp_dgram_resume(struct iocp_dgram *d)
{
    if (d->flags & (DG_TEARDOWN | DG_FINISHED | DG_CLOSING))
        return IOCP_ENOTCONN;
    d->flags |= DG_READING;
    update_reading(d);
    return 0;
}

/* ---- sending ---- */

static size_t cost(uint32_t len)
{
    return (size_t)len + DGRAM_OVERHEAD;
}

static void set_queued(struct iocp_dgram *d, size_t bytes)
{
    atomic_store_explicit(&d->queued, bytes, memory_order_relaxed);
}

/* Take the first datagram off the queue. */
static void pop(struct iocp_dgram *d)
{
    struct dgram_out *o = d->q_head;
    d->q_head = o->next;
    if (!d->q_head)
        d->q_tail = NULL;
    d->qcost -= cost(o->len);
    set_queued(d, LOAD(d->queued) - o->len);
    free(o);
}

static void drop_queue(struct iocp_dgram *d)
{
    uint64_t n = 0;
    while (d->q_head) {
        pop(d);
        n++;
    }
    if (n) {
        iocp__count_add(&d->dropped, n);
        IOCP_COUNT(d->w, dgram_dropped, n);
    }
}

static void check_pressure_off(struct iocp_dgram *d)
{
    if ((d->flags & DG_PRESSURE) && d->qcost <= d->send_low) {
        d->flags &= ~DG_PRESSURE;
        if (d->handler->on_pressure && !(d->flags & DG_TEARDOWN))
            d->handler->on_pressure(d, false);
    }
}

static void on_send(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_dgram *d = iocp_container_of(req, struct iocp_dgram, sreq);
    struct iocp_worker *w = d->w;
    (void)flags;
    (void)data;

    if (result > 0) {
        for (int32_t i = 0; i < result && d->q_head; i++) {
            iocp__count_add(&d->dgrams_out, 1);
            iocp__count_add(&d->bytes_out, d->q_head->len);
            IOCP_COUNT(w, dgrams_out, 1);
            IOCP_COUNT(w, dgram_bytes_out, d->q_head->len);
            pop(d);
        }
        atomic_store_explicit(&d->last_io_ms, w->now_ms, memory_order_relaxed);
    } else if (result < 0 && result != IOCP_ECANCELED && d->q_head) {
        /* The batch's first datagram failed: it is not sent again. */
        struct dgram_out *o = d->q_head;
        union iocp_sockaddr to = o->to;
        int tolen = (int)o->tolen;
        pop(d);
        if (fatal_error(result)) {
            begin_teardown(d, result);
        } else if (result == IOCP_ENOBUFS || result == IOCP_ENOMEM || result == IOCP_EAGAIN) {
            /* A full interface queue: dropped, as the network drops. */
            iocp__count_add(&d->dropped, 1);
            IOCP_COUNT(w, dgram_dropped, 1);
        } else if (tolen) {
            report(d, result, &to.sa, tolen);
        } else {
            report(d, result, (d->flags & DG_CONNECTED) ? &d->peer.sa : NULL, d->peerlen);
        }
    }
    check_pressure_off(d);
    d->refs--;
    if (!(d->flags & DG_TEARDOWN)) {
        if (d->q_head)
            kick_send(d);
        else if (d->flags & DG_CLOSING)
            begin_teardown(d, 0);
    }
    maybe_finish(d);
}

static void kick_send(struct iocp_dgram *d)
{
    if (!(d->flags & DG_STARTED) || (d->flags & DG_TEARDOWN) || d->sreq.in_flight || !d->q_head)
        return;
    uint32_t n = 0;
    for (struct dgram_out *o = d->q_head; o && n < IOCP_MSG_BATCH; o = o->next, n++)
        d->batch[n] = (struct iocp_msg_out){
            .data = o->data,
            .to = o->tolen ? &o->to.sa : NULL,
            .len = o->len,
            .tolen = o->tolen,
        };
    d->sreq.done = on_send;
    d->sreq.handle = &d->h;
    d->sreq.op = IOCP_OP_SENDMSG;
    d->sreq.flags = 0;
    d->sreq.buf = d->batch;
    d->sreq.len = n;
    int rc = iocp__submit(d->w, &d->sreq);
    if (rc < 0) {
        d->flags |= DG_ABORT;
        begin_teardown(d, rc);
        return;
    }
    d->refs++;
}

/* The address to send to, in the socket's family: an IPv4 address on a
 * dual-stack IPv6 socket becomes its v4-mapped form. */
static int target(const struct iocp_dgram *d, const struct sockaddr *to, int tolen,
                  union iocp_sockaddr *out, uint32_t *outlen)
{
    memset(out, 0, sizeof *out);
    if (to->sa_family == AF_INET && tolen >= (int)sizeof(struct sockaddr_in)) {
        if (d->family == AF_INET) {
            memcpy(&out->in4, to, sizeof out->in4);
            *outlen = sizeof out->in4;
            return 0;
        }
        if (d->v6only)
            return IOCP_EAFNOSUPPORT;
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)to;
        out->in6.sin6_family = AF_INET6;
        out->in6.sin6_port = in4->sin_port;
        unsigned char *a = (unsigned char *)&out->in6.sin6_addr;
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &in4->sin_addr, 4);
        *outlen = sizeof out->in6;
        return 0;
    }
    if (to->sa_family == AF_INET6 && tolen >= (int)sizeof(struct sockaddr_in6)) {
        if (d->family != AF_INET6)
            return IOCP_EAFNOSUPPORT;
        memcpy(&out->in6, to, sizeof out->in6);
        *outlen = sizeof out->in6;
        return 0;
    }
    return to->sa_family == AF_INET || to->sa_family == AF_INET6 ? IOCP_EINVAL
                                                                 : IOCP_EAFNOSUPPORT;
}

int iocp_dgram_sendto(struct iocp_dgram *d, const void *data, size_t len,
                      const struct sockaddr *to, int tolen)
{
    if (!d || (!data && len))
        return IOCP_EINVAL;
    if (d->flags & (DG_TEARDOWN | DG_FINISHED | DG_CLOSING))
        return IOCP_ENOTCONN;
    if (len > IOCP_DGRAM_MAX)
        return IOCP_EMSGSIZE;
    union iocp_sockaddr addr;
    uint32_t addrlen = 0;
    if (!(d->flags & DG_CONNECTED)) {
        if (!to)
            return IOCP_ENOTCONN;
        int rc = target(d, to, tolen, &addr, &addrlen);
        if (rc < 0)
            return rc;
    }
    if (d->q_head && d->qcost + cost((uint32_t)len) > d->send_cap) {
        iocp__count_add(&d->dropped, 1);
        IOCP_COUNT(d->w, dgram_dropped, 1);
        return IOCP_EAGAIN;
    }
    struct dgram_out *o = malloc(sizeof *o + len);
    if (!o)
        return IOCP_ENOMEM;
    o->next = NULL;
    o->len = (uint32_t)len;
    o->tolen = addrlen;
    if (addrlen)
        o->to = addr;
    if (len)
        memcpy(o->data, data, len);
    if (d->q_tail)
        d->q_tail->next = o;
    else
        d->q_head = o;
    d->q_tail = o;
    d->qcost += cost(o->len);
    set_queued(d, LOAD(d->queued) + len);
    kick_send(d);
    if (d->qcost > d->send_high && !(d->flags & DG_PRESSURE)) {
        d->flags |= DG_PRESSURE;
        if (d->handler->on_pressure)
            d->handler->on_pressure(d, true);
    }
    return 0;
}

int iocp_dgram_send(struct iocp_dgram *d, const void *data, size_t len)
{
    if (d && !(d->flags & DG_CONNECTED))
        return IOCP_ENOTCONN;
    return iocp_dgram_sendto(d, data, len, NULL, 0);
}

size_t iocp_dgram_queued(const struct iocp_dgram *d)
{
    return atomic_load_explicit((iocp_atomic_size *)&d->queued, memory_order_relaxed);
}

/* ---- closing ---- */

static void begin_teardown(struct iocp_dgram *d, int status)
{
    if (status < 0 && !d->status)
        d->status = status;
    if (d->flags & DG_TEARDOWN)
        return;
    d->flags |= DG_TEARDOWN;
    iocp__registry_remove(&d->w->engine->registry, &d->reg);
    if (d->rreq.in_flight && !(d->flags & DG_RECV_CANCELLED)) {
        d->flags |= DG_RECV_CANCELLED;
        iocp__cancel(d->w, &d->rreq);
    }
    if (d->sreq.in_flight)
        iocp__cancel(d->w, &d->sreq);
    maybe_finish(d);
}

static void maybe_finish(struct iocp_dgram *d)
{
    if (!(d->flags & DG_TEARDOWN) || d->refs || (d->flags & DG_FINISHED))
        return;
    struct iocp_worker *w = d->w;
    d->flags |= DG_FINISHED;
    drop_queue(d);
    if (d->h.sock != IOCP_INVALID_SOCKET) {
        iocp__port_unbind(&d->h);
        iocp__socket_close(d->h.sock);
        d->h.sock = IOCP_INVALID_SOCKET;
    }
    if (d->flags & DG_STARTED) {
        iocp_list_remove(&d->wlink);
        IOCP_COUNT(w, dgram_open, (uint64_t)-1);
        IOCP_COUNT(w, dgram_closed, 1);
    }
    d->handler->on_close(d, d->status);
    unpin(d);
}

void iocp_dgram_close(struct iocp_dgram *d)
{
    if (!d || (d->flags & (DG_FINISHED | DG_TEARDOWN | DG_CLOSING)))
        return;
    d->flags |= DG_CLOSING;
    update_reading(d);
    if (!d->q_head && !d->sreq.in_flight)
        begin_teardown(d, 0);
}

void iocp__dgrams_stop_worker(struct iocp_worker *w)
{
    struct iocp_list *pos, *tmp;
    iocp_list_foreach_safe(pos, tmp, &w->dgrams)
    {
        struct iocp_dgram *d = iocp_container_of(pos, struct iocp_dgram, wlink);
        if (d->flags & DG_FINISHED)
            continue;
        d->refs++;
        d->flags |= DG_ABORT;
        if (!d->status)
            d->status = IOCP_ECANCELED;
        drop_queue(d);
        begin_teardown(d, IOCP_ECANCELED);
        d->refs--;
        maybe_finish(d);
    }
}

/* ---- opening ---- */

/* On the worker: bind to its port and start receiving and sending. */
static void start_on_worker(struct iocp_task *task)
{
    struct iocp_dgram *d = task->arg;
    struct iocp_worker *w = d->w;
    d->flags |= DG_STARTED;
    iocp_list_insert_tail(&w->dgrams, &d->wlink);
    IOCP_COUNT(w, dgram_open, 1);
    IOCP_COUNT(w, dgram_opened, 1);
    if (!(d->flags & DG_TEARDOWN)) {
        int rc = w->stopping ? IOCP_ECANCELED : iocp__port_bind(w->port, &d->h);
        if (rc < 0) {
            begin_teardown(d, rc);
        } else {
            update_reading(d);
            kick_send(d);
            if ((d->flags & DG_CLOSING) && !d->q_head && !d->sreq.in_flight)
                begin_teardown(d, 0);
        }
    }
    /* The reference open() took for this task. */
    d->refs--;
    maybe_finish(d);
}

static int family_of(int fam)
{
    return fam == IOCP_FAMILY_IPV4 ? AF_INET : fam == IOCP_FAMILY_IPV6 ? AF_INET6 : AF_UNSPEC;
}

/* Resolve host:port (numeric port) for family into out; 0 or an error. */
static int resolve(const char *host, uint16_t port, int family, bool passive,
                   union iocp_sockaddr *out, int *outlen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int gai = getaddrinfo(host, NULL, &hints, &res);
    if (gai != 0) {
        iocp__set_error_detail("%s: %s", host, gai_strerror(gai));
        return gai == EAI_AGAIN ? IOCP_EAITEMP : IOCP_ENONAME;
    }
    int rc = IOCP_EAINOADDR;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            ai->ai_addrlen > sizeof *out)
            continue;
        memset(out, 0, sizeof *out);
        memcpy(out, ai->ai_addr, ai->ai_addrlen);
        if (ai->ai_family == AF_INET)
            out->in4.sin_port = htons(port);
        else
            out->in6.sin6_port = htons(port);
        *outlen = (int)ai->ai_addrlen;
        rc = 0;
        break;
    }
    freeaddrinfo(res);
    if (rc < 0)
        iocp__set_error_detail("%s: no address of the family asked for", host);
    return rc;
}

/* Create and bind the socket (and connect it), filling d's addresses. */
static int open_socket(struct iocp_dgram *d, const struct iocp_dgram_config *cfg)
{
    union iocp_sockaddr local, peer;
    int locallen = 0, rc;
    int family = family_of(cfg->family);
    memset(&local, 0, sizeof local);
    if (cfg->peer_host) {
        int fam = family;
        if (cfg->host) {
            /* The peer must be reachable from the local address's family. */
            rc = resolve(cfg->host, cfg->port, family, true, &local, &locallen);
            if (rc < 0)
                return rc;
            fam = local.sa.sa_family;
        }
        rc = resolve(cfg->peer_host, cfg->peer_port, fam, false, &peer, &d->peerlen);
        if (rc < 0)
            return rc;
        d->peer = peer;
        if (!cfg->host) {
            local.sa.sa_family = peer.sa.sa_family;
            if (peer.sa.sa_family == AF_INET) {
                local.in4.sin_port = htons(cfg->port);
                locallen = sizeof local.in4;
            } else {
                local.in6.sin6_port = htons(cfg->port);
                locallen = sizeof local.in6;
            }
        }
    } else if (cfg->host) {
        rc = resolve(cfg->host, cfg->port, family, true, &local, &locallen);
        if (rc < 0)
            return rc;
    }

    bool dual = false;
    iocp_socket_t sock = IOCP_INVALID_SOCKET;
    if (!locallen) {
        /* No address: one dual-stack socket where IPv6 exists. */
        if (family != AF_INET) {
            local.in6.sin6_family = AF_INET6;
            local.in6.sin6_addr = in6addr_any;
            local.in6.sin6_port = htons(cfg->port);
            locallen = sizeof local.in6;
            rc = iocp__socket_dgram(AF_INET6, &sock);
            if (rc == 0)
                dual = family != AF_INET6;
            else if (rc != IOCP_EAFNOSUPPORT || family == AF_INET6)
                return rc;
        }
        if (sock == IOCP_INVALID_SOCKET) {
            memset(&local, 0, sizeof local);
            local.in4.sin_family = AF_INET;
            local.in4.sin_addr.s_addr = htonl(INADDR_ANY);
            local.in4.sin_port = htons(cfg->port);
            locallen = sizeof local.in4;
        }
    }
    if (sock == IOCP_INVALID_SOCKET) {
        rc = iocp__socket_dgram(local.sa.sa_family, &sock);
        if (rc < 0)
            return rc;
    }
    d->h.sock = sock;
    d->family = local.sa.sa_family;
    if (d->family == AF_INET6) {
        int v6only = dual ? 0 : 1;
        setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&v6only, sizeof v6only);
        d->v6only = !dual;
    }
    int size = (int)SOCKET_BUFFER;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUF, (const char *)&size, sizeof size);
    setsockopt(sock, SOL_SOCKET, SO_SNDBUF, (const char *)&size, sizeof size);
#ifdef SO_REUSEPORT
    if (cfg->reuseport) {
        int one = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, (const char *)&one, sizeof one);
    }
#endif
    rc = iocp__fault_check(IOCP_FAULT_BIND);
    if (rc == 0 && bind(sock, &local.sa, (socklen_t)locallen) != 0)
        rc = iocp__socket_error();
    if (rc == 0 && cfg->peer_host) {
        if (connect(sock, &d->peer.sa, (socklen_t)d->peerlen) != 0) {
            rc = iocp__socket_error();
        } else {
            d->flags |= DG_CONNECTED;
            iocp__socket_dgram_connected(sock);
        }
    }
    if (rc < 0) {
        iocp__socket_close(sock);
        d->h.sock = IOCP_INVALID_SOCKET;
        return rc;
    }
    socklen_t blen = sizeof d->local;
    if (getsockname(sock, &d->local.sa, &blen) != 0)
        d->local = local;
    return 0;
}

int iocp_dgram_open_sized(struct iocp_dgram **out, struct iocp_engine *e,
                          const struct iocp_dgram_config *user, size_t user_size)
{
    struct iocp_dgram_config copy;
    const struct iocp_dgram_config *cfg = iocp__config_copy(&copy, sizeof copy, user, user_size);
    if (!out || !e || !cfg) {
        iocp__set_error_detail("engine, config and result are required");
        return IOCP_EINVAL;
    }
    if (!cfg->handler || !cfg->handler->on_datagram || !cfg->handler->on_close) {
        iocp__set_error_detail(!cfg->handler               ? "a handler is required"
                               : !cfg->handler->on_datagram ? "on_datagram callback is required"
                                                            : "on_close callback is required");
        return IOCP_EINVAL;
    }
    if (cfg->max_datagram > IOCP_DGRAM_MAX) {
        iocp__set_error_detail("max_datagram is at most %u", (unsigned)IOCP_DGRAM_MAX);
        return IOCP_EINVAL;
    }
    if ((cfg->send_low || cfg->send_high) && cfg->send_high && cfg->send_low >= cfg->send_high) {
        iocp__set_error_detail("send_low must be below send_high");
        return IOCP_EINVAL;
    }
    if (cfg->family != IOCP_FAMILY_ANY && cfg->family != IOCP_FAMILY_IPV4 &&
        cfg->family != IOCP_FAMILY_IPV6) {
        iocp__set_error_detail("family must be 0, 4 or 6");
        return IOCP_EINVAL;
    }
    if (atomic_load(&e->state) != IOCP_ENGINE_RUNNING) {
        iocp__set_error_detail("the engine is not running");
        return IOCP_ESTATE;
    }

    struct iocp_dgram *d = calloc(1, sizeof *d);
    if (!d)
        return IOCP_ENOMEM;
    unsigned widx = cfg->worker >= 0
                        ? (unsigned)cfg->worker % e->nworkers
                        : atomic_fetch_add_explicit(&e->round_robin, 1, memory_order_relaxed) %
                              e->nworkers;
    d->w = &e->workers[widx];
    d->handler = cfg->handler;
    d->data = cfg->data;
    d->flags = DG_READING;
    d->max_datagram = cfg->max_datagram ? (uint32_t)cfg->max_datagram : IOCP_DGRAM_MAX;
    d->send_high = cfg->send_high ? cfg->send_high : IOCP_SEND_HIGH_DEFAULT;
    d->send_low = cfg->send_low ? cfg->send_low : IOCP_SEND_LOW_DEFAULT;
    if (d->send_low >= d->send_high)
        d->send_low = d->send_high / 2;
    d->send_cap = d->send_high * CAP_FACTOR;
    atomic_init(&d->pins, 1);
    /* Held for the start task: nothing may finish the socket before it ran. */
    d->refs = 1;
    iocp_list_init(&d->wlink);
    iocp__reg_entry_init(&d->reg);
    d->reg.kind = IOCP_REG_DGRAM;
    d->h.sock = IOCP_INVALID_SOCKET;
    d->created_ms = iocp__now_ms();
    atomic_init(&d->last_io_ms, d->created_ms);

    int rc = open_socket(d, cfg);
    if (rc == 0) {
        iocp__handle_init(&d->h, d->h.sock, IOCP_HANDLE_SOCKET);
        rc = iocp__registry_add(&e->registry, &d->reg, d->h.sock);
        if (rc == 0)
            rc = IOCP_EEXIST;
        else if (rc > 0)
            rc = 0;
    }
    if (rc == 0) {
        d->start_task.fn = start_on_worker;
        d->start_task.arg = d;
        rc = iocp__post_running(e, widx, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&d->start_task);
        if (rc < 0)
            iocp__registry_remove(&e->registry, &d->reg);
    }
    if (rc < 0) {
        if (d->h.sock != IOCP_INVALID_SOCKET)
            iocp__socket_close(d->h.sock);
        unpin(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* ---- accessors ---- */

iocp_conn_id_t iocp_dgram_id(const struct iocp_dgram *d)
{
    return atomic_load_explicit((iocp_atomic_u64 *)&d->reg.id, memory_order_relaxed);
}

void iocp_dgram_set_data(struct iocp_dgram *d, void *data)
{
    d->data = data;
}

void *iocp_dgram_data(const struct iocp_dgram *d)
{
    return d->data;
}

struct iocp_engine *iocp_dgram_engine(const struct iocp_dgram *d)
{
    return d->w->engine;
}

unsigned iocp_dgram_worker(const struct iocp_dgram *d)
{
    return d->w->index;
}

iocp_socket_t iocp_dgram_socket(const struct iocp_dgram *d)
{
    return d->h.sock;
}

uint16_t iocp_dgram_local_port(const struct iocp_dgram *d)
{
    return ntohs(d->local.sa.sa_family == AF_INET6 ? d->local.in6.sin6_port
                                                   : d->local.in4.sin_port);
}

const char *iocp_dgram_local(const struct iocp_dgram *d, char *buf, size_t len)
{
    return iocp__addr_format(&d->local.sa, buf, len);
}

const char *iocp_dgram_peer(const struct iocp_dgram *d, char *buf, size_t len)
{
    if (!(d->flags & DG_CONNECTED)) {
        if (buf && len)
            buf[0] = '\0';
        return buf;
    }
    return iocp__addr_format(&d->peer.sa, buf, len);
}

void iocp_dgram_stats(const struct iocp_dgram *d, struct iocp_dgram_stats *out)
{
    struct iocp_dgram *m = (struct iocp_dgram *)d;
    memset(out, 0, sizeof *out);
    out->dgrams_in = LOAD(m->dgrams_in);
    out->dgrams_out = LOAD(m->dgrams_out);
    out->bytes_in = LOAD(m->bytes_in);
    out->bytes_out = LOAD(m->bytes_out);
    out->truncated = LOAD(m->truncated);
    out->dropped = LOAD(m->dropped);
    out->errors = LOAD(m->errors);
}

/* ---- by ID, from any thread ---- */

struct dgram_task {
    iocp_conn_id_t id;
    iocp_dgram_task_fn fn;
    void *arg;
    struct iocp_task task;
};

/* The open datagram socket with this ID and its worker, or NULL.  The pin
 * is dropped at once: the caller only reads the worker index, or runs on
 * the owner, where the socket cannot go away under it. */
static struct iocp_dgram *dgram_by_id(struct iocp_engine *e, iocp_conn_id_t id, unsigned *worker)
{
    struct iocp_reg_entry *entry = iocp__registry_lookup(&e->registry, id);
    if (!entry)
        return NULL;
    struct iocp_dgram *d = NULL;
    if (entry->kind == IOCP_REG_DGRAM) {
        d = iocp_container_of(entry, struct iocp_dgram, reg);
        *worker = d->w->index;
    }
    e->registry.ops.release(entry);
    return d;
}

static void run_task(struct iocp_task *task)
{
    struct dgram_task *t = iocp_container_of(task, struct dgram_task, task);
    unsigned owner = 0;
    struct iocp_dgram *d = dgram_by_id(t->task.arg, t->id, &owner);
    struct iocp_worker *self = iocp__worker_current();
    if (d && self && owner == self->index && !(d->flags & (DG_TEARDOWN | DG_FINISHED))) {
        d->refs++;
        t->fn(d, t->arg, 0);
        d->refs--;
        maybe_finish(d);
    } else {
        t->fn(NULL, t->arg, IOCP_ENOENT);
    }
    free(t);
}

int iocp_dgram_post(struct iocp_engine *e, iocp_conn_id_t id, iocp_dgram_task_fn fn, void *arg)
{
    if (!e || !fn)
        return IOCP_EINVAL;
    unsigned owner = 0;
    if (!dgram_by_id(e, id, &owner))
        return IOCP_ENOENT;
    struct dgram_task *t = malloc(sizeof *t);
    if (!t)
        return IOCP_ENOMEM;
    *t = (struct dgram_task){.id = id, .fn = fn, .arg = arg};
    t->task.fn = run_task;
    t->task.arg = e;
    int rc = iocp__post_running(e, owner, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&t->task);
    if (rc < 0)
        free(t);
    return rc;
}

static void close_task(struct iocp_dgram *d, void *arg, int status)
{
    (void)arg;
    if (status == 0)
        iocp_dgram_close(d);
}

int iocp_dgram_close_id(struct iocp_engine *e, iocp_conn_id_t id)
{
    if (!e)
        return IOCP_EINVAL;
    unsigned owner = 0;
    struct iocp_dgram *d = dgram_by_id(e, id, &owner);
    if (!d)
        return IOCP_ENOENT;
    struct iocp_worker *self = iocp__worker_current();
    if (self && self->engine == e && self->index == owner) {
        iocp_dgram_close(d);
        return 0;
    }
    return iocp_dgram_post(e, id, close_task, NULL);
}

/* ---- listing and totals ---- */

struct walk_ctx {
    bool (*cb)(const struct iocp_dgram_info *info, void *arg);
    void *arg;
    size_t visited;
};

static bool visit(struct iocp_reg_entry *entry, void *arg)
{
    struct walk_ctx *ctx = arg;
    if (entry->kind != IOCP_REG_DGRAM)
        return true;
    /* The walker's pin keeps the memory; what is read is fixed since open
     * or atomic. */
    struct iocp_dgram *d = iocp_container_of(entry, struct iocp_dgram, reg);
    struct iocp_dgram_info info;
    memset(&info, 0, sizeof info);
    info.id = atomic_load_explicit(&entry->id, memory_order_relaxed);
    info.worker = d->w->index;
    iocp__addr_format(&d->local.sa, info.local, sizeof info.local);
    if (d->peerlen)
        iocp__addr_format(&d->peer.sa, info.peer, sizeof info.peer);
    uint64_t now = iocp__now_ms();
    uint64_t last = LOAD(d->last_io_ms);
    info.age_ms = now > d->created_ms ? now - d->created_ms : 0;
    info.idle_ms = now > last ? now - last : 0;
    iocp_dgram_stats(d, &info.stats);
    info.queued = iocp_dgram_queued(d);
    ctx->visited++;
    return ctx->cb(&info, ctx->arg);
}

size_t iocp_engine_foreach_dgram(struct iocp_engine *e,
                                 bool (*cb)(const struct iocp_dgram_info *info, void *arg),
                                 void *arg)
{
    if (!e || !cb)
        return 0;
    struct walk_ctx ctx = {cb, arg, 0};
    iocp__registry_foreach(&e->registry, visit, &ctx);
    return ctx.visited;
}

void iocp_engine_dgram_totals(struct iocp_engine *e, struct iocp_dgram_totals *out)
{
    memset(out, 0, sizeof *out);
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct iocp_counters *k = &e->workers[i].cnt;
        out->open += LOAD(k->dgram_open);
        out->opened += LOAD(k->dgram_opened);
        out->closed += LOAD(k->dgram_closed);
        out->dgrams_in += LOAD(k->dgrams_in);
        out->dgrams_out += LOAD(k->dgrams_out);
        out->bytes_in += LOAD(k->dgram_bytes_in);
        out->bytes_out += LOAD(k->dgram_bytes_out);
        out->truncated += LOAD(k->dgram_truncated);
        out->dropped += LOAD(k->dgram_dropped);
        out->errors += LOAD(k->dgram_errors);
    }
}
