/* SPDX-License-Identifier: MIT */
/*
 * TCP servers and their acceptors.
 *
 * One listening socket (two when a name gives both an IPv4 and an IPv6
 * address and the system cannot serve both through one dual-stack socket)
 * is shared by every worker: each worker has an acceptor that binds the
 * socket to its own port and keeps a pool of pending accepts between the
 * watermarks of seed 4.
 *
 * Which worker owns a connection: on a shared port (IOCP) the one whose
 * AcceptEx completed, and the port already spreads those.  On per-worker
 * ports the kernel does not spread them: io_uring gives every connection to
 * the one multishot accept it woke first, and epoll wakes workers unevenly.
 * So the worker that accepted a connection hands it to the worker that holds
 * the fewest of this server's connections (itself on a tie, so that a
 * lightly loaded server hands nothing off), counting the hand-offs still on
 * their way, and ties rotate.  64 connections to 4 workers end up 16 each,
 * however the kernel delivered them.  SO_REUSEPORT listeners per worker
 * were the other way; the kernel hashes the address pair there, so
 * connections spread only statistically (one in twenty runs of 64 over 4
 * leaves a worker below half its share), a listener closed on one worker
 * resets the connections queued on it, and one busy worker stalls its
 * share of the backlog while others idle.
 *
 * The listener must never die of one error (libuv, cpython and nginx all
 * shipped that bug): every failed accept completion is recycled, and the
 * errors that mean "out of descriptors or memory" (EMFILE, ENFILE, ENOBUFS,
 * ENOMEM) pause this acceptor on a timer, after which it refills and goes on.
 */
#include "core.h"
#include "unixsock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ACCEPT_LOW_DEFAULT 4u
#define ACCEPT_HIGH_DEFAULT 16u
#define ACCEPT_HIGH_MAX 128u
#define ACCEPT_BACKOFF_MS 50u
#define MAX_LISTENERS 2

struct iocp_acceptor {
    struct iocp_server *s;
    struct iocp_worker *w;
    struct iocp_handle h;
    /* The handle accepts go through: h itself where each worker has its own
     * port; on a shared port the first acceptor's h for this listener, bound
     * once for all of them (a socket binds to an IOCP port only once). */
    struct iocp_handle *hp;
    struct iocp_accept_pool pool;
    struct iocp_heap_timer backoff;
    struct iocp_list wlink;  /* in w->acceptors */
    struct iocp_task start_task; /* run on the worker: start accepting */
    struct iocp_task stop_task;  /* run on the worker: stop accepting */
    unsigned outstanding;    /* accept requests in flight */
    bool multishot;
    bool started, stopping, done, backing_off;
};

struct accept_request {
    struct iocp_accept_req base;
    struct iocp_req req;
    struct iocp_acceptor *a;
    struct sockaddr_storage addr;
    unsigned char scratch[IOCP_ACCEPT_SCRATCH];
};

enum server_state { SERVER_NEW, SERVER_RUNNING, SERVER_STOPPING, SERVER_STOPPED };

struct iocp_server {
    struct iocp_engine *e;
    struct iocp_server_config cfg;
    char *host;
    iocp_socket_t lsock[MAX_LISTENERS];
    int nlisteners;
    uint16_t port;
    union iocp_sockaddr bound;
    struct iocp_acceptor *acceptors; /* nlisteners x workers */
    unsigned nacceptors;
    iocp_atomic_u32 active;          /* acceptors not yet done */
    iocp_atomic_u32 conns;
    /* The owner's reference plus one per connection it accepted: a server
     * freed while its connections live on goes when the last one closes. */
    iocp_atomic_u32 refs;
    /* Per-worker ports with more than one worker: this server's connections
     * on each worker, those handed to it and not yet adopted included; and
     * where the search for the least loaded starts, so that ties rotate. */
    iocp_atomic_u32 *load;
    iocp_atomic_u32 rotor;
    iocp_atomic_int state;
    struct iocp_list elink;          /* in e->servers */
    bool is_unix;                    /* host is "unix:..." (unixsock.h) */
    struct iocp_unix_file unix_file; /* the socket file to remove at stop */
};

static void acceptor_stop(struct iocp_acceptor *a);

/* ---- the pool's operations ---- */

static void on_accept_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data);

static struct iocp_accept_req *request_alloc(void *ctx)
{
    struct iocp_acceptor *a = ctx;
    struct accept_request *ar = calloc(1, sizeof *ar);
    if (!ar)
        return NULL;
    ar->a = a;
    return &ar->base;
}

static void request_free(void *ctx, struct iocp_accept_req *base)
{
    (void)ctx;
    free(iocp_container_of(base, struct accept_request, base));
}

static int request_post(void *ctx, struct iocp_accept_req *base)
{
    struct iocp_acceptor *a = ctx;
    struct accept_request *ar = iocp_container_of(base, struct accept_request, base);
    ar->req.done = on_accept_done;
    ar->req.handle = a->hp;
    ar->req.buf = ar->scratch;
    ar->req.len = sizeof ar->scratch;
    ar->req.op = IOCP_OP_ACCEPT;
    ar->req.flags = a->multishot ? IOCP_REQ_MULTI : 0;
    ar->req.accepted = IOCP_INVALID_SOCKET;
    ar->req.addr = &ar->addr;
    ar->req.addrlen = sizeof ar->addr;
    int rc = iocp__submit(a->w, &ar->req);
    if (rc == 0)
        a->outstanding++;
    return rc;
}

static const struct iocp_accept_pool_ops pool_ops = {request_alloc, request_free, request_post};

/* ---- accepting ---- */

static bool is_resource_error(int err)
{
    return err == IOCP_EMFILE || err == IOCP_ENFILE || err == IOCP_ENOBUFS || err == IOCP_ENOMEM;
}

static void refill(struct iocp_acceptor *a)
{
    if (a->stopping || a->backing_off)
        return;
    int rc = iocp__accept_pool_refill(&a->pool);
    if (rc < 0 && !a->outstanding) {
        /* Not one accept could be posted: try again after a pause rather
         * than leave the listener without a pending accept. */
        a->backing_off = true;
        IOCP_COUNT(a->w, accept_backoffs, 1);
        iocp__timer_start(a->w, &a->backoff, a->w->now_ms + ACCEPT_BACKOFF_MS);
    }
}

static void on_backoff_timer(struct iocp_heap_timer *t)
{
    struct iocp_acceptor *a = iocp_container_of(t, struct iocp_acceptor, backoff);
    a->backing_off = false;
    refill(a);
}

static void refuse(struct iocp_worker *w, iocp_socket_t sock)
{
    IOCP_COUNT(w, refused, 1);
    iocp__socket_close(sock);
}

/* This server's connections on worker i: one more, one less. */
static void load_add(struct iocp_server *s, unsigned i)
{
    if (s->load)
        atomic_fetch_add_explicit(&s->load[i], 1, memory_order_relaxed);
}

static void load_sub(struct iocp_server *s, unsigned i)
{
    if (s->load)
        atomic_fetch_sub_explicit(&s->load[i], 1, memory_order_relaxed);
}

/* Turn an accepted socket into a connection of the server; the worker's
 * load was counted for it before, and is taken back if it is refused. */
static void adopt(struct iocp_acceptor *a, iocp_socket_t sock, const struct sockaddr_storage *peer)
{
    struct iocp_server *s = a->s;
    struct iocp_worker *w = a->w;
    if (a->stopping || w->stopping) {
        load_sub(s, w->index);
        refuse(w, sock);
        return;
    }
    if (s->cfg.filter && !s->cfg.filter((const struct sockaddr *)peer, s->cfg.data)) {
        load_sub(s, w->index);
        refuse(w, sock);
        return;
    }
    /* Reserve a place first: workers accept in parallel. */
    uint32_t before = atomic_fetch_add(&s->conns, 1);
    if (s->cfg.max_conns && before >= s->cfg.max_conns) {
        atomic_fetch_sub(&s->conns, 1);
        load_sub(s, w->index);
        refuse(w, sock);
        return;
    }
    /* The owner cannot free the server under us (free stops the acceptors
     * first), so these references never reach zero here. */
    atomic_fetch_add(&s->refs, 1);
    struct iocp_conn *c =
        iocp__conn_new(w, s->cfg.handler, s->cfg.data, s->cfg.send_low, s->cfg.send_high);
    if (!c) {
        atomic_fetch_sub(&s->conns, 1);
        atomic_fetch_sub(&s->refs, 1);
        load_sub(s, w->index);
        refuse(w, sock);
        return;
    }
    c->server = s;
    c->idle_ms = s->cfg.idle_timeout_ms;
    memcpy(&c->peer, peer,
           peer->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
    if (s->is_unix)
        c->peer.sa.sa_family = AF_UNIX; /* its name is asked for when wanted */
    int rc = iocp__conn_bind(c, sock);
    if (rc == 0)
        rc = iocp__conn_establish(c);
    if (rc < 0) {
        atomic_fetch_sub(&s->conns, 1);
        atomic_fetch_sub(&s->refs, 1);
        load_sub(s, w->index);
        IOCP_COUNT(w, refused, 1);
        iocp__conn_discard(c);
        return;
    }
    IOCP_COUNT(w, accepted, 1);
}

static void server_unref(struct iocp_server *s);

/* ---- spreading connections over the workers ---- */

/* A connection on its way from the worker that accepted it to its owner. */
struct handoff {
    struct iocp_task task;
    struct iocp_acceptor *to; /* the owner's acceptor for the same listener */
    iocp_socket_t sock;
    struct sockaddr_storage peer;
};

/* The worker with the fewest of this server's connections: self on a tie
 * with the least, otherwise the first least found from a rotating start. */
static unsigned least_loaded(struct iocp_server *s, unsigned self)
{
    unsigned n = s->e->nworkers;
    unsigned start = atomic_fetch_add_explicit(&s->rotor, 1, memory_order_relaxed) % n;
    unsigned best = self;
    uint32_t least = atomic_load_explicit(&s->load[self], memory_order_relaxed);
    for (unsigned k = 0; k < n && least > 0; k++) {
        unsigned i = (start + k) % n;
        uint32_t l = atomic_load_explicit(&s->load[i], memory_order_relaxed);
        if (l < least) {
            least = l;
            best = i;
        }
    }
    return best;
}

static void handoff_task(struct iocp_task *task)
{
    struct handoff *h = iocp_container_of(task, struct handoff, task);
    struct iocp_server *s = h->to->s;
    adopt(h->to, h->sock, &h->peer);
    free(h);
    server_unref(s); /* the hand-off's own reference */
}

/* A connection accepted by a's worker: adopt it here, or send it on to the
 * least loaded worker. */
static void place(struct iocp_acceptor *a, iocp_socket_t sock, const struct sockaddr_storage *peer)
{
    struct iocp_server *s = a->s;
    struct iocp_worker *w = a->w;
    if (!s->load || a->stopping || w->stopping) {
        load_add(s, w->index);
        adopt(a, sock, peer);
        return;
    }
    unsigned to = least_loaded(s, w->index);
    load_add(s, to);
    if (to == w->index) {
        adopt(a, sock, peer);
        return;
    }
    struct handoff *h = malloc(sizeof *h);
    if (h) {
        h->task.fn = handoff_task;
        /* Acceptors are laid out listener by listener, a worker's each. */
        h->to = &s->acceptors[(unsigned)(a - s->acceptors) / s->e->nworkers * s->e->nworkers + to];
        h->sock = sock;
        memcpy(&h->peer, peer, sizeof h->peer);
        atomic_fetch_add(&s->refs, 1);
        /* Posted while the engine runs, the task runs even if a stop
         * overtakes it (its worker drains its tasks before it leaves); the
         * owner refuses the connection then. */
        if (iocp__post_running(s->e, to, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&h->task) == 0)
            return;
        atomic_fetch_sub(&s->refs, 1); /* not the last: the owner holds one */
        free(h);
    }
    load_sub(s, to);
    refuse(w, sock);
}

static void acceptor_maybe_done(struct iocp_acceptor *a);

static void on_accept_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct accept_request *ar = iocp_container_of(req, struct accept_request, req);
    struct iocp_acceptor *a = ar->a;
    struct iocp_worker *w = a->w;
    (void)data;

    /* A request that is over leaves the pool's pending list before the
     * owner sees the connection: the owner's callback may stop the server
     * (listen without -k takes one connection), and the pool's shutdown
     * would otherwise take this request, no longer in flight, for one it
     * must free, under our feet (IOCP, whose accepts are single-shot). */
    bool over = !(flags & IOCP_EV_MORE);
    bool mine = over && iocp__accept_pool_complete(&a->pool, &ar->base);

    if (result == 0 && req->accepted != IOCP_INVALID_SOCKET) {
        iocp_socket_t sock = req->accepted;
        req->accepted = IOCP_INVALID_SOCKET;
        place(a, sock, &ar->addr);
    } else if (result < 0 && result != IOCP_ECANCELED) {
        IOCP_COUNT(w, accept_errors, 1);
        if (is_resource_error(result) && !a->backing_off && !a->stopping) {
            a->backing_off = true;
            IOCP_COUNT(w, accept_backoffs, 1);
            iocp__timer_start(w, &a->backoff, w->now_ms + ACCEPT_BACKOFF_MS);
            /* A multishot accept may stay armed after an error: stop it too,
             * or it would spin on the same shortage. */
            if (flags & IOCP_EV_MORE)
                iocp__cancel(w, req);
        }
    }
    if (!over)
        return;

    /* The request is over: recycle it (seed 4), unless we are stopping or
     * pausing, in which case it goes back to the allocator. */
    a->outstanding--;
    if (!mine) {
        iocp__accept_pool_release(&a->pool, &ar->base); /* detached at stop */
        acceptor_maybe_done(a);
        return;
    }
    if (a->stopping || a->backing_off) {
        iocp__accept_pool_release(&a->pool, &ar->base);
        acceptor_maybe_done(a);
        return;
    }
    struct iocp_accept_pool_stats st;
    iocp__accept_pool_stats(&a->pool, &st);
    if (!a->multishot && st.pending == 0 && a->pool.high < ACCEPT_HIGH_MAX) {
        /* Every pending accept was used before we got here: a burst.  Keep
         * more accepts posted from now on. */
        iocp__mutex_lock(&a->pool.lock);
        a->pool.high *= 2;
        if (a->pool.high > ACCEPT_HIGH_MAX)
            a->pool.high = ACCEPT_HIGH_MAX;
        iocp__mutex_unlock(&a->pool.lock);
    }
    iocp__accept_pool_repost(&a->pool, &ar->base);
    refill(a);
}

/* ---- starting and stopping an acceptor on its worker ---- */

static void acceptor_start_task(struct iocp_task *task)
{
    struct iocp_acceptor *a = iocp_container_of(task, struct iocp_acceptor, start_task);
    struct iocp_worker *w = a->w;
    if (w->stopping || a->stopping) {
        a->stopping = true;
        acceptor_maybe_done(a);
        return;
    }
    int rc = w->engine->ops->shared ? 0 : iocp__port_bind(w->port, &a->h);
    if (rc < 0) {
        iocp__log(w->engine, IOCP_LOG_ERROR, "worker %u cannot watch the listener: %s", w->index,
                  iocp_strerror(rc));
        a->stopping = true;
        acceptor_maybe_done(a);
        return;
    }
    a->started = true;
    iocp_list_insert_tail(&w->acceptors, &a->wlink);
    refill(a);
}

static void acceptor_stop_task(struct iocp_task *task)
{
    acceptor_stop(iocp_container_of(task, struct iocp_acceptor, stop_task));
}

/* Runs under the pool's lock: only start the cancel. */
static bool detach_request(struct iocp_accept_req *base, void *arg)
{
    struct iocp_acceptor *a = arg;
    struct accept_request *ar = iocp_container_of(base, struct accept_request, base);
    if (!ar->req.in_flight)
        return true;
    iocp__cancel(a->w, &ar->req);
    return false;
}

static void acceptor_stop(struct iocp_acceptor *a)
{
    if (a->stopping && a->done)
        return;
    a->stopping = true;
    iocp__timer_stop(a->w, &a->backoff);
    iocp__accept_pool_shutdown(&a->pool, detach_request, a);
    acceptor_maybe_done(a);
}

static void acceptor_maybe_done(struct iocp_acceptor *a)
{
    if (!a->stopping || a->outstanding || a->done)
        return;
    a->done = true;
    if (a->started) {
        if (!a->w->engine->ops->shared)
            iocp__port_unbind(&a->h);
        iocp_list_remove(&a->wlink);
    }
    struct iocp_server *s = a->s;
    if (atomic_fetch_sub(&s->active, 1) == 1) {
        /* The last acceptor out closes the listening sockets. */
        for (unsigned i = 0; s->e->ops->shared && i < s->nacceptors; i += s->e->nworkers)
            iocp__port_unbind(&s->acceptors[i].h);
        for (int i = 0; i < s->nlisteners; i++) {
            iocp__socket_close(s->lsock[i]);
            s->lsock[i] = IOCP_INVALID_SOCKET;
        }
        iocp__unix_unlink(&s->unix_file);
        atomic_store(&s->state, SERVER_STOPPED);
    }
}

void iocp__acceptors_stop_worker(struct iocp_worker *w)
{
    struct iocp_list *pos, *tmp;
    iocp_list_foreach_safe(pos, tmp, &w->acceptors)
    {
        acceptor_stop(iocp_container_of(pos, struct iocp_acceptor, wlink));
    }
}

/* Drop one reference; the last one frees what the server still holds. */
static void server_unref(struct iocp_server *s)
{
    if (atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->acceptors);
    free(s->load);
    free(s->host);
    free(s);
}

void iocp__server_account_close(struct iocp_server *s, unsigned worker)
{
    atomic_fetch_sub(&s->conns, 1);
    load_sub(s, worker);
    server_unref(s);
}

/* ---- the public API ---- */

int iocp_server_new_sized(struct iocp_server **out, struct iocp_engine *e,
                          const struct iocp_server_config *user, size_t user_size)
{
    struct iocp_server_config copy;
    const struct iocp_server_config *cfg = iocp__config_copy(&copy, sizeof copy, user, user_size);
    if (!out || !e || !cfg)
        return IOCP_EINVAL;
    if (!cfg->handler) {
        iocp__set_error_detail("a connection handler is required");
        return IOCP_EINVAL;
    }
    if (!cfg->handler->on_data) {
        iocp__set_error_detail("the on_data callback is required");
        return IOCP_EINVAL;
    }
    if (!cfg->handler->on_close) {
        iocp__set_error_detail("the on_close callback is required");
        return IOCP_EINVAL;
    }
    if (cfg->family != IOCP_FAMILY_ANY && cfg->family != IOCP_FAMILY_IPV4 &&
        cfg->family != IOCP_FAMILY_IPV6) {
        iocp__set_error_detail("family must be 0, 4 or 6");
        return IOCP_EINVAL;
    }
    struct iocp_server *s = calloc(1, sizeof *s);
    if (!s)
        return IOCP_ENOMEM;
    s->e = e;
    atomic_store(&s->refs, 1);
    s->cfg = *cfg;
    if (cfg->host) {
        s->host = strdup(cfg->host);
        if (!s->host) {
            free(s);
            return IOCP_ENOMEM;
        }
        s->cfg.host = s->host;
    }
    if (!s->cfg.accept_low && !s->cfg.accept_high) {
        s->cfg.accept_low = ACCEPT_LOW_DEFAULT;
        s->cfg.accept_high = ACCEPT_HIGH_DEFAULT;
    }
    if (s->cfg.accept_low >= s->cfg.accept_high) {
        free(s->host);
        free(s);
        iocp__set_error_detail("accept_low must be below accept_high");
        return IOCP_EINVAL;
    }
    for (int i = 0; i < MAX_LISTENERS; i++)
        s->lsock[i] = IOCP_INVALID_SOCKET;
    s->is_unix = iocp__unix_host(s->host);
    iocp_list_init(&s->elink);
    *out = s;
    return 0;
}

/* Open, bind and listen one socket on addr (port taken from addr). */
static int listen_on(struct iocp_server *s, const struct sockaddr *addr, socklen_t len)
{
    iocp_socket_t sock;
    int rc = iocp__socket_stream(addr->sa_family, &sock);
    if (rc < 0)
        return rc;
    iocp__socket_listen_opts(sock);
    if (s->cfg.reuse_port) {
#ifdef SO_REUSEPORT
        int one = 1;
        if (setsockopt(sock, SOL_SOCKET, SO_REUSEPORT, (const char *)&one, sizeof one) != 0) {
            rc = iocp__socket_error();
            iocp__socket_close(sock);
            return rc;
        }
#else
        iocp__set_error_detail("SO_REUSEPORT is not available on this system");
        iocp__socket_close(sock);
        return IOCP_ENOSYS;
#endif
    }
    if (addr->sa_family == AF_INET6) {
        /* With no address, one IPv6 socket serves both stacks (IPV6_V6ONLY
         * off, which Windows does not default to); -6 asks for IPv6 only. */
        int v6only = s->cfg.family == IOCP_FAMILY_IPV6 || s->cfg.host ? 1 : 0;
        setsockopt(sock, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&v6only, sizeof v6only);
    }
    int backlog = s->cfg.backlog > 0 ? s->cfg.backlog : SOMAXCONN;
    if (bind(sock, addr, len) != 0 || listen(sock, backlog) != 0) {
        rc = iocp__socket_error();
        iocp__socket_close(sock);
        return rc;
    }
    s->lsock[s->nlisteners++] = sock;
    return 0;
}

static int open_listeners(struct iocp_server *s)
{
    union iocp_sockaddr any;
    memset(&any, 0, sizeof any);
    if (!s->cfg.host) {
        int rc = IOCP_EAFNOSUPPORT;
        if (s->cfg.family != IOCP_FAMILY_IPV4) {
            any.in6.sin6_family = AF_INET6;
            any.in6.sin6_addr = in6addr_any;
            any.in6.sin6_port = htons(s->cfg.port);
            rc = listen_on(s, &any.sa, sizeof any.in6);
            if (rc == 0 || s->cfg.family == IOCP_FAMILY_IPV6 || rc != IOCP_EAFNOSUPPORT)
                return rc;
        }
        /* IPv4 asked for, or no IPv6 on this system. */
        memset(&any, 0, sizeof any);
        any.in4.sin_family = AF_INET;
        any.in4.sin_addr.s_addr = htonl(INADDR_ANY);
        any.in4.sin_port = htons(s->cfg.port);
        return listen_on(s, &any.sa, sizeof any.in4);
    }

    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = s->cfg.family == IOCP_FAMILY_IPV4   ? AF_INET
                      : s->cfg.family == IOCP_FAMILY_IPV6 ? AF_INET6
                                                          : AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(s->cfg.host, NULL, &hints, &res);
    if (gai != 0) {
        iocp__set_error_detail("%s: %s", s->cfg.host, gai_strerror(gai));
        return gai == EAI_AGAIN ? IOCP_EAITEMP : IOCP_ENONAME;
    }
    int rc = IOCP_ENONAME;
    int families_done = 0;
    uint16_t port = s->cfg.port;
    for (struct addrinfo *ai = res; ai && s->nlisteners < MAX_LISTENERS; ai = ai->ai_next) {
        int bit = ai->ai_family == AF_INET ? 1 : ai->ai_family == AF_INET6 ? 2 : 0;
        if (!bit || (families_done & bit))
            continue;
        union iocp_sockaddr a;
        memset(&a, 0, sizeof a);
        memcpy(&a, ai->ai_addr, ai->ai_addrlen);
        /* A second socket takes the port the first one got, so that "port 0"
         * means one port on both stacks. */
        if (ai->ai_family == AF_INET)
            a.in4.sin_port = htons(port);
        else
            a.in6.sin6_port = htons(port);
        int r = listen_on(s, &a.sa, (socklen_t)ai->ai_addrlen);
        if (r < 0) {
            if (s->nlisteners == 0)
                rc = r;
            continue;
        }
        families_done |= bit;
        rc = 0;
        if (port == 0) {
            union iocp_sockaddr got;
            socklen_t glen = sizeof got;
            getsockname(s->lsock[s->nlisteners - 1], &got.sa, &glen);
            port = ntohs(got.sa.sa_family == AF_INET ? got.in4.sin_port : got.in6.sin6_port);
        }
    }
    freeaddrinfo(res);
    return rc;
}

int iocp_server_start(struct iocp_server *s)
{
    struct iocp_engine *e = s->e;
    int expected = SERVER_NEW;
    if (!atomic_compare_exchange_strong(&s->state, &expected, SERVER_RUNNING))
        return IOCP_ESTATE;
    if (atomic_load(&e->state) != IOCP_ENGINE_RUNNING) {
        atomic_store(&s->state, SERVER_NEW);
        iocp__set_error_detail("the engine is not running");
        return IOCP_ESTATE;
    }
    int rc;
    if (s->is_unix) {
        rc = iocp__unix_listen(s->host, s->cfg.unix_mode, s->cfg.backlog, &s->lsock[0],
                               &s->unix_file);
        if (rc < 0)
            goto fail;
        s->nlisteners = 1;
        s->bound.sa.sa_family = AF_UNIX;
    } else {
        rc = open_listeners(s);
        if (rc < 0)
            goto fail;
        socklen_t blen = sizeof s->bound;
        getsockname(s->lsock[0], &s->bound.sa, &blen);
        s->port = ntohs(s->bound.sa.sa_family == AF_INET ? s->bound.in4.sin_port
                                                         : s->bound.in6.sin6_port);
    }

    s->nacceptors = (unsigned)s->nlisteners * e->nworkers;
    s->acceptors = calloc(s->nacceptors, sizeof *s->acceptors);
    if (!s->acceptors) {
        rc = IOCP_ENOMEM;
        goto fail;
    }
    /* epoll takes one armed multishot accept per worker; a shared port
     * (IOCP, AcceptEx) and io_uring (whose single accepts each carry their
     * peer's address: see single_accepts) keep a pool of single accepts. */
    bool multishot = !e->ops->shared && !e->ops->single_accepts;
    if (!e->ops->shared && e->nworkers > 1 && !s->load) {
        s->load = calloc(e->nworkers, sizeof *s->load);
        if (!s->load) {
            rc = IOCP_ENOMEM;
            goto fail;
        }
    }
    for (unsigned i = 0; i < s->nacceptors; i++) {
        struct iocp_acceptor *a = &s->acceptors[i];
        a->s = s;
        a->w = &e->workers[i % e->nworkers];
        a->multishot = multishot;
        iocp__handle_init(&a->h, s->lsock[i / e->nworkers], IOCP_HANDLE_SOCKET);
        a->hp = e->ops->shared ? &s->acceptors[i / e->nworkers * e->nworkers].h : &a->h;
        iocp__timer_init(&a->backoff, on_backoff_timer);
        iocp_list_init(&a->wlink);
        a->start_task.fn = acceptor_start_task;
        a->stop_task.fn = acceptor_stop_task;
        /* One armed multishot accept yields every connection; a spare is
         * pointless.  Single-shot accepts keep a pool between the marks. */
        size_t low = multishot ? 0 : s->cfg.accept_low;
        size_t high = multishot ? 1 : s->cfg.accept_high;
        iocp__accept_pool_init(&a->pool, low, high, &pool_ops, a);
    }
    for (unsigned i = 0; e->ops->shared && i < s->nacceptors; i += e->nworkers) {
        rc = iocp__port_bind(e->shared_port, &s->acceptors[i].h);
        if (rc < 0) {
            iocp__set_error_detail("cannot bind the listener to the port");
            for (unsigned j = 0; j < s->nacceptors; j++) {
                iocp__port_unbind(&s->acceptors[j].h);
                iocp__accept_pool_fini(&s->acceptors[j].pool);
            }
            free(s->acceptors);
            s->acceptors = NULL;
            s->nacceptors = 0;
            goto fail;
        }
    }
    atomic_store(&s->active, s->nacceptors);
    iocp__mutex_lock(&e->lock);
    iocp_list_insert_tail(&e->servers, &s->elink);
    iocp__mutex_unlock(&e->lock);
    for (unsigned i = 0; i < s->nacceptors; i++) {
        struct iocp_acceptor *a = &s->acceptors[i];
        if (iocp__post(e, a->w->index, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&a->start_task) < 0) {
            /* The worker cannot hear us: this acceptor never starts. */
            a->stopping = true;
            acceptor_maybe_done(a);
        }
    }
    return 0;

fail:
    for (int i = 0; i < s->nlisteners; i++) {
        iocp__socket_close(s->lsock[i]);
        s->lsock[i] = IOCP_INVALID_SOCKET;
    }
    iocp__unix_unlink(&s->unix_file);
    s->nlisteners = 0;
    atomic_store(&s->state, SERVER_NEW);
    return rc;
}

int iocp_server_stop(struct iocp_server *s)
{
    int expected = SERVER_RUNNING;
    if (atomic_compare_exchange_strong(&s->state, &expected, SERVER_STOPPING)) {
        for (unsigned i = 0; i < s->nacceptors; i++) {
            struct iocp_acceptor *a = &s->acceptors[i];
            struct iocp_worker *cur = iocp__worker_current();
            if (cur == a->w) {
                acceptor_stop(a);
                continue;
            }
            /* If the worker is gone (engine stopped), it stopped the acceptor. */
            iocp__post(s->e, a->w->index, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&a->stop_task);
        }
    }
    if (iocp__worker_current())
        return 0;
    /* Wait for the acceptors to let go of the listener; bounded, since a
     * worker that has left stopped its acceptors on the way out. */
    for (int i = 0; i < 10000 && atomic_load(&s->state) == SERVER_STOPPING; i++) {
        if (!iocp_engine_running(s->e))
            break;
        iocp__sleep_ms(1);
    }
    return 0;
}

void iocp_server_free(struct iocp_server *s)
{
    if (!s)
        return;
    if (atomic_load(&s->state) == SERVER_RUNNING)
        iocp_server_stop(s);
    iocp__mutex_lock(&s->e->lock);
    iocp_list_remove(&s->elink);
    iocp__mutex_unlock(&s->e->lock);
    for (unsigned i = 0; i < s->nacceptors; i++)
        iocp__accept_pool_fini(&s->acceptors[i].pool);
    for (int i = 0; i < s->nlisteners; i++)
        if (s->lsock[i] != IOCP_INVALID_SOCKET)
            iocp__socket_close(s->lsock[i]);
    iocp__unix_unlink(&s->unix_file);
    /* Connections it accepted may still be open: they hold the rest. */
    server_unref(s);
}

uint16_t iocp_server_port(const struct iocp_server *s)
{
    return s->port;
}

iocp_socket_t iocp_server_socket(const struct iocp_server *s, unsigned i)
{
    if (atomic_load(&s->state) != SERVER_RUNNING || i >= (unsigned)s->nlisteners)
        return IOCP_INVALID_SOCKET;
    return s->lsock[i];
}

const char *iocp_server_address(const struct iocp_server *s, char *buf, size_t len)
{
    if (s->is_unix) {
        snprintf(buf, len, "%s", s->host);
        return buf;
    }
    return iocp__addr_format(&s->bound.sa, buf, len);
}

uint32_t iocp_server_conns(const struct iocp_server *s)
{
    return atomic_load((iocp_atomic_u32 *)&s->conns);
}

uint64_t iocp__servers_pending_accepts(struct iocp_engine *e, unsigned *low, unsigned *high)
{
    uint64_t pending = 0;
    *low = *high = 0;
    iocp__mutex_lock(&e->lock);
    struct iocp_list *pos;
    iocp_list_foreach(pos, &e->servers)
    {
        struct iocp_server *s = iocp_container_of(pos, struct iocp_server, elink);
        for (unsigned i = 0; i < s->nacceptors; i++) {
            struct iocp_accept_pool_stats st;
            iocp__accept_pool_stats(&s->acceptors[i].pool, &st);
            pending += st.pending;
            *low = (unsigned)st.low;
            if (st.high > *high)
                *high = (unsigned)st.high;
        }
    }
    iocp__mutex_unlock(&e->lock);
    return pending;
}
