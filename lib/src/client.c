/* SPDX-License-Identifier: MIT */
/*
 * Outgoing connections: resolve, try each address, time out.
 *
 * Name resolution (getaddrinfo) can block for seconds, so it never runs on
 * a worker: a numeric address is parsed in place, and a name is looked up
 * on a short-lived thread of its own, which posts the result back to the
 * worker as a task.  The connect job is shared by the two sides through a
 * reference count; engine stop cancels lookups under the resolver lock, and
 * a cancelled lookup never touches the engine again.
 */
#include "core.h"
#include "unixsock.h"
#include "proxy_step.h"

#include <stdlib.h>
#include <string.h>

struct iocp_connect_job {
    struct iocp_engine *e;
    struct iocp_worker *w;
    struct iocp_task task; /* hops onto the worker: start, then "resolved" */
    struct iocp_connect_config cfg;
    char *host, *source_host;
    struct iocp_conn *c;   /* NULL once the connection has finished */
    struct addrinfo *res, *next;
    int lookup_error;
    int last_error;
    iocp_atomic_int refs;
    /* The lookup thread. */
    struct iocp_thread thread;
    struct iocp_list rlink; /* in e->resolvers while the lookup runs */
    bool cancelled;
    union iocp_sockaddr target;
    socklen_t target_len;
    struct sockaddr_un unix_target; /* a "unix:" host's address */
    /* A Unix-domain listener with a full backlog: the next attempt. */
    struct iocp_heap_timer unix_retry;
    unsigned unix_retry_ms;
    uint64_t unix_give_up_ms;
    /* Through a proxy that is told an address: the target's name, looked
     * up on the lookup thread too, and what that found (proxy.c). */
    char *proxy_target;
    int proxy_target_family;
    int proxy_target_error;
    struct addrinfo *proxy_target_res;
};

static void try_next(struct iocp_connect_job *job);
static void unix_retry_later(struct iocp_connect_job *job);

static void job_unref(struct iocp_connect_job *job)
{
    if (atomic_fetch_sub(&job->refs, 1) != 1)
        return;
    if (job->res)
        freeaddrinfo(job->res);
    if (job->proxy_target_res)
        freeaddrinfo(job->proxy_target_res);
    free(job->proxy_target);
    free(job->host);
    free(job->source_host);
    free(job);
}

void iocp__connect_job_release(struct iocp_conn *c)
{
    struct iocp_connect_job *job = c->job;
    iocp__timer_stop(c->w, &job->unix_retry);
    c->job = NULL;
    job->c = NULL;
    job_unref(job);
}

static void on_connect_timeout(struct iocp_heap_timer *t)
{
    struct iocp_conn *c = iocp_container_of(t, struct iocp_conn, timer);
    iocp__conn_enter(c);
    iocp__conn_fail(c, IOCP_ETIMEDOUT);
    iocp__conn_leave(c);
}

static int resolve_flags_family(const struct iocp_connect_config *cfg)
{
    return cfg->family == IOCP_FAMILY_IPV4 ? AF_INET
           : cfg->family == IOCP_FAMILY_IPV6 ? AF_INET6
                                             : AF_UNSPEC;
}

/*
 * The hints of every lookup: no AI_ADDRCONFIG, for numeric hosts and names
 * alike.  AI_ADDRCONFIG keeps only the families of the addresses configured
 * here, and loopback addresses do not count, so on a host whose only
 * interface is loopback (a container without network) 127.0.0.1, ::1 and
 * localhost all fail with a family given (-4, -6, a source address).
 * Without it nothing is lost: the addresses come sorted with unreachable
 * ones last (RFC 6724), and try_next() moves on from a family the host does
 * not have at once (EAFNOSUPPORT, ENETUNREACH).
 */
void iocp__connect_hints(struct addrinfo *hints, int family, bool numeric_only)
{
    memset(hints, 0, sizeof *hints);
    hints->ai_family = family;
    hints->ai_socktype = SOCK_STREAM;
    hints->ai_flags = numeric_only ? AI_NUMERICHOST : 0;
}

static int lookup(const char *host, int family, bool numeric_only, struct addrinfo **out)
{
    struct addrinfo hints;
    iocp__connect_hints(&hints, family, numeric_only);
    int gai = getaddrinfo(host, NULL, &hints, out);
    if (gai == 0)
        return 0;
    if (numeric_only && gai == EAI_NONAME)
        return 1; /* not numeric: needs a real lookup */
    if (gai == EAI_AGAIN)
        return IOCP_EAITEMP;
#ifdef EAI_ADDRFAMILY
    if (gai == EAI_ADDRFAMILY)
        return IOCP_EAINOADDR;
#endif
    if (gai == EAI_NODATA)
        return IOCP_EAINOADDR;
    return IOCP_ENONAME;
}

/* ---- the lookup thread ---- */

static void on_resolved_task(struct iocp_task *task)
{
    struct iocp_connect_job *job = iocp_container_of(task, struct iocp_connect_job, task);
    struct iocp_conn *c = job->c;
    if (c && !(c->flags & IOCP_CONN_TEARDOWN)) {
        iocp__conn_enter(c);
        if (job->lookup_error < 0) {
            iocp__set_error_detail("%s: %s", job->host, iocp_strerror(job->lookup_error));
            iocp__conn_fail(c, job->lookup_error);
        } else if (!job->proxy_target ||
                   iocp__proxy_resolved(c, job->proxy_target_error, job->proxy_target_res) == 0) {
            job->next = job->res;
            try_next(job);
        }
        iocp__conn_leave(c);
    }
    job_unref(job); /* the lookup thread's reference */
}

static void lookup_thread(void *arg)
{
    struct iocp_connect_job *job = arg;
    struct addrinfo *res = NULL;
    int rc = lookup(job->host, resolve_flags_family(&job->cfg), false, &res);
    struct addrinfo *target_res = NULL;
    int target_rc = 0;
    if (rc == 0 && job->proxy_target)
        target_rc = lookup(job->proxy_target, job->proxy_target_family, false, &target_res);

    struct iocp_engine *e = job->e;
    iocp__mutex_lock(&e->resolver_lock);
    iocp_list_remove(&job->rlink);
    bool deliver = !job->cancelled;
    if (deliver) {
        job->lookup_error = rc < 0 ? rc : 0;
        job->res = res;
        job->proxy_target_error = target_rc < 0 ? target_rc : 0;
        job->proxy_target_res = target_res;
        job->task.fn = on_resolved_task;
        /* Posted under the lock, so that a stop cannot close the port
         * between our check and the post. */
        deliver = iocp__post(e, job->w->index, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&job->task) == 0;
        if (!deliver) {
            job->res = NULL;
            job->proxy_target_res = NULL;
        }
    }
    iocp__mutex_unlock(&e->resolver_lock);
    if (!deliver) {
        if (res)
            freeaddrinfo(res);
        if (target_res)
            freeaddrinfo(target_res);
        job_unref(job);
    }
}

void iocp__resolvers_cancel(struct iocp_engine *e)
{
    iocp__mutex_lock(&e->resolver_lock);
    struct iocp_list *pos, *tmp;
    iocp_list_foreach_safe(pos, tmp, &e->resolvers)
    {
        struct iocp_connect_job *job = iocp_container_of(pos, struct iocp_connect_job, rlink);
        job->cancelled = true;
        iocp_list_remove(&job->rlink);
    }
    iocp__mutex_unlock(&e->resolver_lock);
}

/* ---- connecting, one address after another ---- */

static void on_connect_done(struct iocp_req *req, int32_t result, uint32_t flags, void *data)
{
    struct iocp_conn *c = iocp_container_of(req, struct iocp_conn, sreq);
    struct iocp_connect_job *job = c->job;
    (void)flags;
    (void)data;

    if (!(c->flags & IOCP_CONN_TEARDOWN)) {
        if (result == 0) {
            memcpy(&c->peer, &job->target, job->target_len);
            IOCP_COUNT(c->w, connected, 1);
            iocp__connect_job_release(c);
            int rc = iocp__conn_establish(c);
            if (rc < 0)
                iocp__conn_fail(c, rc);
        } else {
            job->last_error = result;
            iocp__port_unbind(&c->h);
            iocp__socket_close(c->h.sock);
            c->h.sock = IOCP_INVALID_SOCKET;
            if (result == IOCP_EAGAIN && job->target.sa.sa_family == AF_UNIX)
                unix_retry_later(job);
            else
                try_next(job);
        }
    }
    iocp__conn_leave(c); /* the request's reference */
}

static int bind_source(struct iocp_connect_job *job, iocp_socket_t sock, int family)
{
    if (!job->source_host && !job->cfg.source_port)
        return 0;
    union iocp_sockaddr src;
    memset(&src, 0, sizeof src);
    if (job->source_host) {
        struct addrinfo *res = NULL;
        int rc = lookup(job->source_host, family, true, &res);
        if (rc != 0) {
            iocp__set_error_detail("source address %s: must be a numeric %s address",
                                   job->source_host, family == AF_INET ? "IPv4" : "IPv6");
            return rc < 0 ? rc : IOCP_EINVAL;
        }
        memcpy(&src, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    } else {
        src.sa.sa_family = (sa_family_t)family;
    }
    if (family == AF_INET)
        src.in4.sin_port = htons(job->cfg.source_port);
    else
        src.in6.sin6_port = htons(job->cfg.source_port);
    if (job->cfg.source_port) {
        int one = 1;
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, (const char *)&one, sizeof one);
    }
    socklen_t len = family == AF_INET ? sizeof src.in4 : sizeof src.in6;
    return bind(sock, &src.sa, len) == 0 ? 0 : iocp__socket_error();
}

static void try_next(struct iocp_connect_job *job)
{
    struct iocp_conn *c = job->c;
    while (job->next) {
        struct addrinfo *ai = job->next;
        job->next = ai->ai_next;
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        iocp_socket_t sock;
        bool reused = false;
        /* A chosen source address needs a new socket; otherwise the port
         * may hand over a reused one, bound already (Windows). */
        int rc = job->source_host || job->cfg.source_port
                     ? iocp__socket_stream(ai->ai_family, &sock)
                     : iocp__port_connect_socket(c->w->port, ai->ai_family, &sock, &reused);
        if (rc == 0 && !reused) {
            rc = bind_source(job, sock, ai->ai_family);
            if (rc < 0)
                iocp__socket_close(sock);
        }
        if (rc == 0) {
            rc = iocp__conn_bind(c, sock);
            if (rc < 0) {
                iocp__socket_close(sock);
                c->h.sock = IOCP_INVALID_SOCKET;
            }
        }
        if (rc == 0) {
            memset(&job->target, 0, sizeof job->target);
            memcpy(&job->target, ai->ai_addr, ai->ai_addrlen);
            if (ai->ai_family == AF_INET)
                job->target.in4.sin_port = htons(job->cfg.port);
            else
                job->target.in6.sin6_port = htons(job->cfg.port);
            job->target_len = (socklen_t)ai->ai_addrlen;
            c->sreq.done = on_connect_done;
            c->sreq.handle = &c->h;
            c->sreq.op = IOCP_OP_CONNECT;
            c->sreq.flags = 0;
            c->sreq.addr = (struct sockaddr_storage *)(void *)&job->target;
            c->sreq.addrlen = (uint32_t)job->target_len;
            rc = iocp__submit(c->w, &c->sreq);
            if (rc == 0) {
                iocp__conn_enter(c);
                return;
            }
            iocp__port_unbind(&c->h);
            iocp__socket_close(sock);
            c->h.sock = IOCP_INVALID_SOCKET;
        }
        job->last_error = rc;
    }
    iocp__conn_fail(c, job->last_error ? job->last_error : IOCP_EAINOADDR);
}

/* ---- a Unix-domain target: one address, no lookup ---- */

static void connect_unix(struct iocp_connect_job *job)
{
    struct iocp_conn *c = job->c;
    socklen_t len;
    iocp_socket_t sock = IOCP_INVALID_SOCKET;
    int rc = iocp__unix_address(job->host, &job->unix_target, &len);
    if (rc == 0) {
        rc = iocp__socket_stream(AF_UNIX, &sock);
        if (rc == IOCP_EAFNOSUPPORT || rc == IOCP_EPROTONOSUPPORT) {
            iocp__set_error_detail("%s: this system has no Unix-domain sockets (Windows needs "
                                   "version 10 1803 or later)",
                                   job->host);
            rc = IOCP_EAFNOSUPPORT;
        }
    }
    if (rc == 0 && (rc = iocp__conn_bind(c, sock)) < 0)
        iocp__socket_close(sock);
    if (rc == 0) {
        /* The peer's name is read from the socket when asked for: only
         * the family is kept (see iocp_conn_peer()). */
        memset(&job->target, 0, sizeof job->target);
        job->target.sa.sa_family = AF_UNIX;
        job->target_len = sizeof job->target.sa;
        c->sreq.done = on_connect_done;
        c->sreq.handle = &c->h;
        c->sreq.op = IOCP_OP_CONNECT;
        c->sreq.flags = 0;
        c->sreq.addr = (struct sockaddr_storage *)(void *)&job->unix_target;
        c->sreq.addrlen = (uint32_t)len;
        rc = iocp__submit(c->w, &c->sreq);
        if (rc == 0) {
            iocp__conn_enter(c);
            return;
        }
        iocp__port_unbind(&c->h);
        iocp__socket_close(sock);
        c->h.sock = IOCP_INVALID_SOCKET;
    }
    iocp__conn_fail(c, rc);
}

/*
 * A Unix-domain listener whose backlog is full refuses a nonblocking
 * connect with EAGAIN at once, where a blocking one would wait and a TCP
 * client would send its SYN again; and there is no readiness to wait for.
 * So the attempt is made again with a new socket: 1 ms later, then twice
 * as long each time up to 64 ms, until it connects or fails otherwise, for
 * as long as the attempt's time-out lets it or, with none, for
 * UNIX_BACKLOG_WAIT_MS (then IOCP_ETIMEDOUT, as a TCP connect ends).
 */
#define UNIX_RETRY_FIRST_MS 1u
#define UNIX_RETRY_MAX_MS 64u
#define UNIX_BACKLOG_WAIT_MS 60000u

static void on_unix_retry(struct iocp_heap_timer *t)
{
    struct iocp_connect_job *job = iocp_container_of(t, struct iocp_connect_job, unix_retry);
    struct iocp_conn *c = job->c;
    iocp__conn_enter(c);
    if (!(c->flags & IOCP_CONN_TEARDOWN))
        connect_unix(job);
    iocp__conn_leave(c);
}

static void unix_retry_later(struct iocp_connect_job *job)
{
    struct iocp_conn *c = job->c;
    struct iocp_worker *w = c->w;
    if (!job->unix_retry_ms) {
        job->unix_retry_ms = UNIX_RETRY_FIRST_MS;
        job->unix_give_up_ms = w->now_ms + UNIX_BACKLOG_WAIT_MS;
    } else if (job->unix_retry_ms < UNIX_RETRY_MAX_MS) {
        job->unix_retry_ms *= 2;
    }
    if (!job->cfg.timeout_ms && w->now_ms >= job->unix_give_up_ms) {
        iocp__set_error_detail("%s: the server's backlog stayed full", job->host);
        iocp__conn_fail(c, IOCP_ETIMEDOUT);
        return;
    }
    int rc = iocp__timer_start(w, &job->unix_retry, w->now_ms + job->unix_retry_ms);
    if (rc < 0)
        iocp__conn_fail(c, rc);
}

/* ---- the first hop: on the worker ---- */

static void on_start_task(struct iocp_task *task)
{
    struct iocp_connect_job *job = iocp_container_of(task, struct iocp_connect_job, task);
    struct iocp_worker *w = job->w;
    struct iocp_conn *c =
        iocp__conn_new(w, job->cfg.handler, job->cfg.data, job->cfg.send_low, job->cfg.send_high);
    if (!c) {
        /* Out of memory before a connection exists: there is no object to
         * report on; the failure shows in the engine's pool counters. */
        iocp__proxy_abandon(&job->cfg);
        job_unref(job);
        return;
    }
    c->flags |= IOCP_CONN_CONNECTING;
    c->job = job;
    job->c = c;
    c->timer.fn = on_connect_timeout;
    if (job->cfg.timeout_ms)
        iocp__timer_start(w, &c->timer, w->now_ms + job->cfg.timeout_ms);

    iocp__conn_enter(c);
    int rc = w->stopping ? IOCP_ECANCELED : 1;
    if (rc > 0 && iocp__unix_host(job->host)) {
        connect_unix(job);
        iocp__conn_leave(c);
        return;
    }
    if (rc > 0)
        rc = lookup(job->host, resolve_flags_family(&job->cfg), true, &job->res);
    if (rc == 0 && job->proxy_target) {
        /* The proxy wants the target's address: both lookups go to the
         * lookup thread. */
        freeaddrinfo(job->res);
        job->res = NULL;
        rc = 1;
    }
    if (rc == 0) {
        job->next = job->res;
        try_next(job);
    } else if (rc < 0) {
        iocp__conn_fail(c, rc);
    } else {
        /* A name: look it up off the worker. */
        atomic_fetch_add(&job->refs, 1);
        iocp__mutex_lock(&w->engine->resolver_lock);
        iocp_list_insert_tail(&w->engine->resolvers, &job->rlink);
        iocp__mutex_unlock(&w->engine->resolver_lock);
        rc = iocp__thread_start(&job->thread, lookup_thread, job);
        if (rc == 0) {
            iocp__thread_detach(&job->thread);
        } else {
            iocp__mutex_lock(&w->engine->resolver_lock);
            iocp_list_remove(&job->rlink);
            iocp__mutex_unlock(&w->engine->resolver_lock);
            job_unref(job);
            iocp__conn_fail(c, rc);
        }
    }
    iocp__conn_leave(c);
}

int iocp_connect_sized(struct iocp_engine *e, const struct iocp_connect_config *user,
                       size_t user_size)
{
    struct iocp_connect_config copy;
    const struct iocp_connect_config *cfg = iocp__config_copy(&copy, sizeof copy, user, user_size);
    if (!e || !cfg)
        return IOCP_EINVAL;
    if (!cfg->handler || !cfg->handler->on_data || !cfg->handler->on_close) {
        iocp__set_error_detail("the %s callback is required",
                               !cfg->handler || !cfg->handler->on_data ? "on_data" : "on_close");
        return IOCP_EINVAL;
    }
    if (!cfg->host || !*cfg->host || (cfg->port == 0 && !iocp__unix_host(cfg->host))) {
        iocp__set_error_detail("a host and a port other than 0 are required");
        return IOCP_EINVAL;
    }
    if (atomic_load(&e->state) != IOCP_ENGINE_RUNNING)
        return IOCP_ESTATE;

    /* Through a proxy: connect to the proxy, with the negotiation's
     * handler in front of the caller's (proxy.c). */
    const char *proxy_target = NULL;
    int proxy_target_family = AF_UNSPEC;
    if (cfg->proxy) {
        int rc = iocp__proxy_wrap(&copy, &proxy_target, &proxy_target_family);
        if (rc < 0)
            return rc;
    }

    struct iocp_connect_job *job = calloc(1, sizeof *job);
    if (!job) {
        iocp__proxy_abandon(cfg);
        return IOCP_ENOMEM;
    }
    job->e = e;
    job->cfg = *cfg;
    job->host = strdup(cfg->host);
    job->source_host = cfg->source_host ? strdup(cfg->source_host) : NULL;
    job->proxy_target = proxy_target ? strdup(proxy_target) : NULL;
    job->proxy_target_family = proxy_target_family;
    if (!job->host || (cfg->source_host && !job->source_host) ||
        (proxy_target && !job->proxy_target)) {
        iocp__proxy_abandon(cfg);
        free(job->host);
        free(job->source_host);
        free(job->proxy_target);
        free(job);
        return IOCP_ENOMEM;
    }
    iocp_list_init(&job->rlink);
    iocp__timer_init(&job->unix_retry, on_unix_retry);
    atomic_init(&job->refs, 1);
    unsigned worker = cfg->worker >= 0 ? (unsigned)cfg->worker % e->nworkers
                                       : atomic_fetch_add(&e->round_robin, 1) % e->nworkers;
    job->w = &e->workers[worker];
    job->task.fn = on_start_task;
    int rc = iocp__post(e, worker, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&job->task);
    if (rc < 0) {
        iocp__proxy_abandon(cfg);
        job_unref(job);
        return rc;
    }
    return 0;
}
