/* SPDX-License-Identifier: MIT */
/*
 * The engine: backend choice, worker threads, the dispatch loop, and the
 * safe stop of seed 2b.
 *
 * Stopping follows DIOCP's safeStop with the lessons of its history built
 * in.  stop() flips the state, then posts one exit packet per worker; a post
 * that fails is retried until it lands (seed 2a), and every exit packet
 * carries the engine's generation, so a packet left over from an earlier run
 * can never stop a restarted engine.  A worker that takes its exit closes
 * its listeners and connections, keeps dispatching until every request it
 * submitted has completed, then leaves.  stop() returns only after joining
 * every worker thread; called from a callback it cannot join its own
 * thread, so it only requests the stop and iocp_engine_wait() joins.
 */
#include "core.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

#define EVENT_BATCH 128
#define DEFAULT_MAX_CONNS 65536u

static IOCP_THREAD_LOCAL struct iocp_worker *current_worker;

struct iocp_worker *iocp__worker_current(void)
{
    return current_worker;
}

void iocp__log(struct iocp_engine *e, int level, const char *fmt, ...)
{
    if (!e->cfg.log)
        return;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    e->cfg.log(e->cfg.log_arg, level, msg);
}

const char *const *iocp_backends(void)
{
    static const char *names[8];
    if (!names[0]) {
        size_t i = 0;
        for (; iocp__port_backends[i] && i < 7; i++)
            names[i] = iocp__port_backends[i]->name;
        names[i] = NULL;
    }
    return names;
}

/* ---- registry hooks: a walker's reference pins the connection ---- */

static void conn_hold(struct iocp_reg_entry *entry)
{
    if (entry->kind == IOCP_REG_DGRAM) {
        iocp__dgram_hold(entry);
        return;
    }
    struct iocp_conn *c = iocp_container_of(entry, struct iocp_conn, reg);
    atomic_fetch_add_explicit(&c->pins, 1, memory_order_relaxed);
}

static void conn_release(struct iocp_reg_entry *entry)
{
    if (entry->kind == IOCP_REG_DGRAM) {
        iocp__dgram_release(entry);
        return;
    }
    struct iocp_conn *c = iocp_container_of(entry, struct iocp_conn, reg);
    atomic_fetch_sub_explicit(&c->pins, 1, memory_order_release);
}

static const struct iocp_registry_ops registry_ops = {conn_hold, conn_release};

/*
 * The number of workers: cfg->workers when set; else IOCP_WORKERS from the
 * environment; else one per CPU this process may run on (affinity mask and
 * CPU quota, cpus_*.c).  why says how a default was reached, for the log.
 */
static int choose_workers(const struct iocp_engine_config *cfg, unsigned *out, char *why,
                          size_t len)
{
    if (cfg->workers) {
        if (cfg->workers > IOCP_MAX_WORKERS) {
            iocp__set_error_detail("at most %u workers", (unsigned)IOCP_MAX_WORKERS);
            return IOCP_EINVAL;
        }
        *out = cfg->workers;
        return 0;
    }
    const char *env = getenv("IOCP_WORKERS");
    if (env && *env) {
        char *end;
        unsigned long n = strtoul(env, &end, 10);
        if (*end || n == 0 || n > IOCP_MAX_WORKERS || env[0] == '-') {
            iocp__set_error_detail("IOCP_WORKERS=%s is not a worker count (1 to %u)", env,
                                   (unsigned)IOCP_MAX_WORKERS);
            return IOCP_EINVAL;
        }
        snprintf(why, len, "IOCP_WORKERS=%lu", n);
        *out = (unsigned)n;
        return 0;
    }
    unsigned n = iocp__cpus_usable(why, len);
    *out = n > IOCP_MAX_WORKERS ? IOCP_MAX_WORKERS : n;
    return 0;
}

int iocp_engine_new_sized(struct iocp_engine **out, const struct iocp_engine_config *user,
                          size_t user_size)
{
    struct iocp_engine_config copy;
    const struct iocp_engine_config *cfg = iocp__config_copy(&copy, sizeof copy, user, user_size);
    static const struct iocp_engine_config defaults;
    if (!out)
        return IOCP_EINVAL;
    if (!cfg)
        cfg = &defaults;
    const char *backend = cfg->backend;
    if (!backend || !*backend)
        backend = getenv("IOCP_BACKEND");
    if (backend && *backend && !iocp__port_find(backend)) {
        iocp__set_error_detail("backend '%s' is not in this build", backend);
        return IOCP_ENOSYS;
    }
    char why[160] = "";
    unsigned workers = 0;
    int rc = choose_workers(cfg, &workers, why, sizeof why);
    if (rc < 0)
        return rc;

    struct iocp_engine *e = calloc(1, sizeof *e);
    if (!e)
        return IOCP_ENOMEM;
    e->cfg = *cfg;
    e->cfg.backend = backend && *backend ? backend : NULL;
    e->nworkers = workers;
    if (!e->cfg.max_conns)
        e->cfg.max_conns = DEFAULT_MAX_CONNS;
    e->workers = calloc(workers, sizeof *e->workers);
    rc = e->workers ? 0 : IOCP_ENOMEM;
    if (rc == 0)
        rc = iocp__registry_init(&e->registry, e->cfg.max_conns, &registry_ops);
    if (rc < 0) {
        free(e->workers);
        free(e);
        return rc;
    }
    iocp__mutex_init(&e->lock);
    iocp__mutex_init(&e->join_lock);
    iocp__mutex_init(&e->resolver_lock);
    iocp_list_init(&e->servers);
    iocp_list_init(&e->resolvers);
    for (unsigned i = 0; i < workers; i++) {
        struct iocp_worker *w = &e->workers[i];
        w->engine = e;
        w->index = i;
        iocp__mutex_init(&w->lock);
        iocp__mutex_init(&w->timer_lock);
        atomic_init(&w->next_due, UINT64_MAX);
        iocp_list_init(&w->conns);
        iocp_list_init(&w->zombies);
        iocp_list_init(&w->acceptors);
        iocp_list_init(&w->dgrams);
    }
    e->ops = e->cfg.backend ? iocp__port_find(e->cfg.backend) : iocp__port_backends[0];
    if (why[0])
        iocp__log(e, IOCP_LOG_INFO, "%u worker%s: %s", workers, workers == 1 ? "" : "s", why);
    *out = e;
    return 0;
}

const char *iocp_engine_backend(const struct iocp_engine *e)
{
    return e->ops ? e->ops->name : "none";
}

unsigned iocp_engine_workers(const struct iocp_engine *e)
{
    return e->nworkers;
}

bool iocp_engine_running(const struct iocp_engine *e)
{
    return atomic_load((iocp_atomic_int *)&e->state) != IOCP_ENGINE_STOPPED;
}

/* ---- submitting and posting ---- */

/* The counter a request is counted under: a splice moves bytes in (like a
 * receive) or out (like a send). */
static int stat_op(const struct iocp_req *req)
{
    switch (req->op) {
    case IOCP_OP_SPLICE:
        return (req->flags & IOCP_REQ_SPLICE_OUT) ? IOCP_STAT_SEND : IOCP_STAT_RECV;
    case IOCP_OP_ACCEPT:
        return IOCP_STAT_ACCEPT;
    case IOCP_OP_CONNECT:
        return IOCP_STAT_CONNECT;
    case IOCP_OP_RECV:
        return IOCP_STAT_RECV;
    case IOCP_OP_SEND:
        return IOCP_STAT_SEND;
    case IOCP_OP_READ:
        return IOCP_STAT_READ;
    case IOCP_OP_RECVMSG:
        return IOCP_STAT_RECV;
    case IOCP_OP_SENDMSG:
        return IOCP_STAT_SEND;
    default:
        return IOCP_STAT_WRITE;
    }
}

int iocp__submit(struct iocp_worker *w, struct iocp_req *req)
{
    int rc = iocp__fault_check(IOCP_FAULT_SUBMIT);
    req->owner = w;
    if (rc == 0)
        rc = w->port->ops->submit(w->port, req);
    if (rc < 0) {
        atomic_fetch_add_explicit(&w->cnt.failed_submits, 1, memory_order_relaxed);
        return rc;
    }
    /* Only the owning worker submits: a plain relaxed store, no locked add. */
    IOCP_COUNT(w, submitted[stat_op(req)], 1);
    return 0;
}

void iocp__cancel(struct iocp_worker *w, struct iocp_req *req)
{
    if (req->in_flight)
        w->port->ops->cancel(w->port, req);
}

static struct iocp_port *worker_port(struct iocp_engine *e, unsigned i)
{
    return e->shared_port ? e->shared_port : e->workers[i].port;
}

/* On a shared port a packet names its worker in the high bits of its code:
 * whichever thread dequeues it runs it under that worker's lock. */
#define PKT_TARGET_SHIFT 16
#define PKT_CODE_MASK    0xffffu

int iocp__post(struct iocp_engine *e, unsigned i, uint32_t code, uint64_t arg)
{
    struct iocp_port *port = worker_port(e, i);
    struct iocp_counters *cnt = &e->workers[i].cnt;
    if (e->shared_port)
        code |= (uint32_t)i << PKT_TARGET_SHIFT;
    /* A full queue drains in microseconds; retry for up to about a second so
     * that a burst never turns into a lost command, then give the error back
     * (the caller still owns whatever the packet named).  Posts may come from
     * any thread, so these counters take atomic adds. */
    for (int tries = 0;; tries++) {
        int rc = port->ops->post(port, code, arg);
        if (rc == 0) {
            atomic_fetch_add_explicit(&cnt->submitted[IOCP_STAT_POST], 1, memory_order_relaxed);
            return 0;
        }
        atomic_fetch_add_explicit(&cnt->failed_submits, 1, memory_order_relaxed);
        if (rc != IOCP_EAGAIN || tries >= 1000)
            return rc;
        iocp__sleep_ms(1);
    }
}

/*
 * A post whose poster is told 0 must run, even when a stop is racing it: the
 * packet has to land ahead of the exit packets, since a worker drains its
 * queue once before it leaves and never again.  So a poster announces
 * itself (posters) before it checks the state, and stop, having changed the
 * state, waits for the announced posters to finish before posting the exits.
 * Both sides use sequentially consistent operations: one of them always
 * sees the other.
 */
int iocp__post_running(struct iocp_engine *e, unsigned i, uint32_t code, uint64_t arg)
{
    atomic_fetch_add(&e->posters, 1);
    int rc = IOCP_ESTATE;
    if (atomic_load(&e->state) == IOCP_ENGINE_RUNNING)
        rc = iocp__post(e, i, code, arg);
    atomic_fetch_sub(&e->posters, 1);
    return rc;
}

int iocp_engine_post(struct iocp_engine *e, unsigned worker, struct iocp_task *task)
{
    if (!task || !task->fn)
        return IOCP_EINVAL;
    return iocp__post_running(e, worker % e->nworkers, IOCP_PKT_TASK, (uint64_t)(uintptr_t)task);
}

/* ---- the worker loop ---- */

static void begin_worker_stop(struct iocp_worker *w)
{
    if (w->stopping)
        return;
    w->stopping = true;
    iocp__timers_cancel_public(w);
    iocp__acceptors_stop_worker(w);
    /* Connections leave the list as they finish; walk with the safe form. */
    struct iocp_list *pos, *tmp;
    iocp_list_foreach_safe(pos, tmp, &w->conns)
    {
        struct iocp_conn *c = iocp_container_of(pos, struct iocp_conn, wlink);
        iocp__conn_fail(c, IOCP_ECANCELED);
    }
    iocp__dgrams_stop_worker(w);
}

static void on_packet(struct iocp_worker *w, const struct iocp_event *ev)
{
    struct iocp_engine *e = w->engine;
    atomic_fetch_add_explicit(&w->cnt.completed[IOCP_STAT_POST], 1, memory_order_relaxed);
    switch (ev->code) {
    case IOCP_PKT_EXIT:
        if ((uint32_t)ev->arg != atomic_load(&e->generation))
            break; /* left over from an earlier run */
        if (e->shared_port && w->exit_generation == (uint32_t)ev->arg) {
            /* On a shared port one worker can dequeue two exit packets in one
             * batch: hand the extra one on to a worker that has not had its. */
            iocp__post(e, w->index, IOCP_PKT_EXIT, ev->arg);
            break;
        }
        w->exit_generation = (uint32_t)ev->arg;
        begin_worker_stop(w);
        break;
    case IOCP_PKT_TASK: {
        struct iocp_task *task = (struct iocp_task *)(uintptr_t)ev->arg;
        task->fn(task);
        break;
    }
    case IOCP_PKT_TIMER:
        iocp__timer_packet(w, ev->arg);
        break;
    case IOCP_PKT_CONN_TASK:
        iocp__conn_task_run(w, ev->arg);
        break;
    default:
        break;
    }
}

static void dispatch(struct iocp_worker *w, struct iocp_event *ev)
{
    struct iocp_req *req = ev->req;
    if (!(ev->flags & IOCP_EV_MORE)) {
        IOCP_COUNT(w, completed[stat_op(req)], 1);
        req->in_flight = false;
    }
    IOCP_COUNT(w, completions, 1);

    /* Injected failures arrive the way real ones do: as a failed completion. */
    if (ev->result >= 0) {
        int injected = 0;
        switch (req->op) {
        case IOCP_OP_ACCEPT:
            injected = iocp__fault_check(IOCP_FAULT_ACCEPT);
            if (injected && req->accepted != IOCP_INVALID_SOCKET) {
                iocp__socket_close(req->accepted);
                req->accepted = IOCP_INVALID_SOCKET;
            }
            break;
        case IOCP_OP_CONNECT:
            injected = iocp__fault_check(IOCP_FAULT_CONNECT);
            break;
        case IOCP_OP_SEND:
            injected = iocp__fault_check(IOCP_FAULT_SEND);
            break;
        case IOCP_OP_RECV:
            injected = iocp__fault_check(IOCP_FAULT_RECV);
            break;
        case IOCP_OP_RECVMSG:
            injected = iocp__fault_check(IOCP_FAULT_DGRAM_RECV);
            break;
        case IOCP_OP_SENDMSG:
            injected = iocp__fault_check(IOCP_FAULT_DGRAM_SEND);
            break;
        default:
            break;
        }
        if (injected)
            ev->result = injected;
    }
    if (ev->flags & IOCP_EV_BUFFER) {
        w->lend.data = ev->data;
        w->lend.len = ev->result > 0 ? (uint32_t)ev->result : 0;
        w->lend.id = ev->buf_id;
        w->lend.kept = false;
    }
    req->done(req, ev->result, ev->flags, ev->data);
    if (ev->flags & IOCP_EV_BUFFER) {
        w->lend.data = NULL;
        if (!w->lend.kept)
            w->port->ops->release_buffer(w->port, ev->buf_id);
    }
}

/*
 * wait() failed.  An error the next wait may not have (no memory for now)
 * costs a short pause, so that it cannot turn the loop into a spin.  A
 * lasting one (the port's descriptor was closed or replaced behind its
 * back) ends the worker: it is recorded for iocp_engine_wait() to return,
 * logged, and the engine is asked to stop.  True when the worker must end.
 */
static bool wait_failed(struct iocp_worker *w, int rc)
{
    struct iocp_engine *e = w->engine;
    if (!iocp__port_wait_lasting(rc)) {
        iocp__sleep_ms(1);
        return false;
    }
    atomic_store(&w->failed, rc);
    iocp__log(e, IOCP_LOG_ERROR, "worker %u: waiting on its %s port failed for good: %s",
              w->index, e->ops->name, iocp_strerror(rc));
    iocp_engine_stop(e);
    return true;
}

static bool worker_idle(struct iocp_worker *w)
{
    return iocp_list_empty(&w->conns) && iocp_list_empty(&w->acceptors) &&
           iocp_list_empty(&w->dgrams);
}

/* ---- shared ports: one port, every thread, a lock per worker ---- */

/*
 * With one IOCP port served by N threads, any thread may dequeue any
 * completion.  The layers above were written for "a connection's callbacks
 * run on its worker, one at a time", so every completion is dispatched under
 * the lock of the worker that submitted the request (req->owner) with
 * current_worker set to it: callbacks get the same guarantees as on Linux.
 * The lock is held across a run of events for the same worker.
 *
 * Timers: a thread blocked in GetQueuedCompletionStatusEx cannot be woken on
 * its own (a post wakes whichever thread the port picks), and a timer is
 * often armed on a worker by another thread (a connection accepted for
 * worker 1 dispatched by thread 2).  So every thread runs any worker's due
 * timers, under that worker's lock, and waits no longer than the earliest
 * timer of all (next_due, published by timer.c).
 *
 * Stop: a thread that dequeues an exit packet stops its own worker; one that
 * already had its exit hands the extra packet on (on_packet).  A stopping
 * thread waits in short slices, since the completions that finish its
 * connections may be dispatched by other threads, and it leaves once its
 * worker is idle.  The last thread out drains what is left on the port.
 */

static void hold_worker(struct iocp_worker **held, struct iocp_worker *w)
{
    if (*held == w)
        return;
    if (*held)
        iocp__mutex_unlock(&(*held)->lock);
    iocp__mutex_lock(&w->lock);
    *held = w;
    current_worker = w;
    w->now_ms = iocp__now_ms();
}

static void release_worker(struct iocp_worker **held, struct iocp_worker *self)
{
    if (*held)
        iocp__mutex_unlock(&(*held)->lock);
    *held = NULL;
    current_worker = self;
}

static int cap_timeout(int timeout, int cap)
{
    return timeout < 0 || timeout > cap ? cap : timeout;
}

/* Run every worker's due timers; return the wait until the next one, or -1. */
static int run_shared_timers(struct iocp_worker *self)
{
    struct iocp_engine *e = self->engine;
    uint64_t now = iocp__now_ms();
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct iocp_worker *w = &e->workers[i];
        if (atomic_load_explicit(&w->next_due, memory_order_relaxed) <= now) {
            struct iocp_worker *held = NULL;
            hold_worker(&held, w);
            iocp__timers_run(w);
            release_worker(&held, self);
        }
        uint64_t due = atomic_load_explicit(&w->next_due, memory_order_relaxed);
        if (due < next)
            next = due;
    }
    if (next == UINT64_MAX)
        return -1;
    now = iocp__now_ms();
    if (next <= now)
        return 0;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static void shared_event(struct iocp_worker *self, struct iocp_worker **held, struct iocp_event *ev)
{
    struct iocp_engine *e = self->engine;
    if (ev->req) {
        hold_worker(held, ev->req->owner);
        dispatch(*held, ev);
        return;
    }
    uint32_t target = ev->code >> PKT_TARGET_SHIFT;
    ev->code &= PKT_CODE_MASK;
    /* An exit packet stops whichever thread takes it (see on_packet). */
    bool own = ev->code == IOCP_PKT_EXIT || target >= e->nworkers;
    hold_worker(held, own ? self : &e->workers[target]);
    on_packet(*held, ev);
}

static void worker_main_shared(struct iocp_worker *self)
{
    struct iocp_engine *e = self->engine;
    struct iocp_port *port = e->shared_port;
    struct iocp_event events[EVENT_BATCH];
    struct iocp_worker *held = NULL;

    for (;;) {
        int timeout = run_shared_timers(self);
        hold_worker(&held, self);
        if (!iocp_list_empty(&self->zombies))
            iocp__conn_reap_zombies(self);
        bool zombies = !iocp_list_empty(&self->zombies);
        bool stopping = self->stopping;
        bool leave = stopping && worker_idle(self) && !zombies;
        release_worker(&held, self);
        if (leave)
            break;
        if (zombies)
            timeout = cap_timeout(timeout, 1);
        if (stopping)
            timeout = cap_timeout(timeout, 10);
        int n = port->ops->wait(port, events, EVENT_BATCH, timeout);
        if (n < 0 && wait_failed(self, n))
            break;
        for (int i = 0; i < n; i++)
            shared_event(self, &held, &events[i]);
        release_worker(&held, self);
    }

    /* The last thread out runs what is still queued: tasks posted before the
     * stop (their posters were told 0) and any late completion. */
    unsigned started = 0;
    for (unsigned i = 0; i < e->nworkers; i++)
        started += e->workers[i].started;
    if (atomic_fetch_add(&e->threads_out, 1) + 1 >= started) {
        for (;;) {
            int n = port->ops->wait(port, events, EVENT_BATCH, 0);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++) {
                /* No thread is left to take an exit packet: re-posting one
                 * would loop here. */
                if (!events[i].req && (events[i].code & PKT_CODE_MASK) == IOCP_PKT_EXIT) {
                    atomic_fetch_add_explicit(&self->cnt.completed[IOCP_STAT_POST], 1,
                                              memory_order_relaxed);
                    continue;
                }
                shared_event(self, &held, &events[i]);
            }
            release_worker(&held, self);
        }
    }
    hold_worker(&held, self);
    iocp__timers_cancel_public(self);
    iocp__pool_drain(self);
    release_worker(&held, NULL);
    atomic_fetch_sub(&e->workers_alive, 1);
}

static void worker_main(void *arg)
{
    struct iocp_worker *w = arg;
    struct iocp_event events[EVENT_BATCH];
    if (w->engine->shared_port) {
        worker_main_shared(w);
        return;
    }
    current_worker = w;
    w->now_ms = iocp__now_ms();

    while (!w->leave) {
        int timeout = iocp__timers_run(w);
        if (!iocp_list_empty(&w->zombies))
            timeout = timeout < 0 || timeout > 1 ? 1 : timeout;
        int n = w->port->ops->wait(w->port, events, EVENT_BATCH, timeout);
        if (n < 0 && wait_failed(w, n))
            break;
        w->now_ms = iocp__now_ms();
        /* A request is in flight until its last completion is dispatched, not
         * merely dequeued: a callback early in the batch must not resubmit a
         * request whose completion is still waiting later in the same batch. */
        for (int i = 0; i < n; i++)
            if (events[i].req && !(events[i].flags & IOCP_EV_MORE))
                events[i].req->in_flight = true;
        for (int i = 0; i < n; i++) {
            if (events[i].req)
                dispatch(w, &events[i]);
            else
                on_packet(w, &events[i]);
        }
        if (!iocp_list_empty(&w->zombies))
            iocp__conn_reap_zombies(w);
        if (w->stopping && worker_idle(w) && iocp_list_empty(&w->zombies))
            w->leave = true;
    }
    /* Tasks posted before the stop still run: their posters were told 0. */
    for (;;) {
        int n = w->port->ops->wait(w->port, events, EVENT_BATCH, 0);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++)
            if (!events[i].req)
                on_packet(w, &events[i]);
    }
    /* A worker that ended without its exit packet (its port failed) still
     * lets go of its public timers: the heap goes with the port. */
    iocp__timers_cancel_public(w);
    iocp__pool_drain(w);
    current_worker = NULL;
    atomic_fetch_sub(&w->engine->workers_alive, 1);
}

/* ---- start, stop, wait ---- */

static void close_ports(struct iocp_engine *e)
{
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct iocp_worker *w = &e->workers[i];
        if (w->port && w->port != e->shared_port)
            w->port->ops->close(w->port);
        w->port = NULL;
        iocp__timers_fini(&w->timers);
    }
    if (e->shared_port)
        e->shared_port->ops->close(e->shared_port);
    e->shared_port = NULL;
}

static int open_ports(struct iocp_engine *e, const struct iocp_port_ops *ops)
{
    struct iocp_port_config pc = {
        .entries = 512,
        .buffer_count = e->cfg.recv_buffers ? e->cfg.recv_buffers : 256,
        .buffer_size = e->cfg.recv_buffer_size ? e->cfg.recv_buffer_size : 16384,
        .workers = e->nworkers,
    };
    int rc = 0;
    if (ops == (e->cfg.backend ? iocp__port_find(e->cfg.backend) : iocp__port_backends[0])) {
        rc = iocp__fault_check(IOCP_FAULT_OPEN);
        if (rc < 0)
            return rc;
    }
    if (ops->shared) {
        rc = ops->open(&e->shared_port, &pc);
        if (rc < 0)
            return rc;
    }
    for (unsigned i = 0; i < e->nworkers && rc == 0; i++) {
        struct iocp_worker *w = &e->workers[i];
        rc = iocp__timers_init(&w->timers);
        if (rc == 0)
            rc = ops->shared ? (w->port = e->shared_port, 0) : ops->open(&w->port, &pc);
    }
    if (rc < 0)
        close_ports(e);
    return rc;
}

/* Try the named backend, or each backend best first, falling back with one
 * log line when one cannot open here (containers often forbid io_uring). */
static int choose_backend(struct iocp_engine *e)
{
    if (e->cfg.backend) {
        const struct iocp_port_ops *ops = iocp__port_find(e->cfg.backend);
        int rc = open_ports(e, ops);
        if (rc == 0) {
            e->ops = ops;
            return 0;
        }
        /* An explicit choice still falls back rather than leave the user
         * with nothing: say so. */
        iocp__log(e, IOCP_LOG_INFO, "backend %s unavailable (%s), trying the others", ops->name,
                  iocp_strerror(rc));
    }
    int rc = IOCP_ENOSYS;
    for (size_t i = 0; iocp__port_backends[i]; i++) {
        const struct iocp_port_ops *ops = iocp__port_backends[i];
        if (e->cfg.backend && strcmp(ops->name, e->cfg.backend) == 0)
            continue;
        rc = open_ports(e, ops);
        if (rc == 0) {
            e->ops = ops;
            return 0;
        }
        iocp__log(e, IOCP_LOG_INFO, "backend %s unavailable (%s), falling back", ops->name,
                  iocp_strerror(rc));
    }
    return rc;
}

int iocp_engine_start(struct iocp_engine *e)
{
    iocp__fault_from_env();
    iocp__mutex_lock(&e->lock);
    if (atomic_load(&e->state) != IOCP_ENGINE_STOPPED || (!e->joined && e->started_ms)) {
        iocp__mutex_unlock(&e->lock);
        return IOCP_EALREADY;
    }
    int rc = choose_backend(e);
    if (rc < 0) {
        iocp__mutex_unlock(&e->lock);
        return rc;
    }
    atomic_fetch_add(&e->generation, 1);
    e->started_ms = iocp__now_ms();
    e->joined = false;
    for (unsigned i = 0; i < e->nworkers; i++) {
        struct iocp_worker *w = &e->workers[i];
        w->stopping = w->leave = w->started = false;
        atomic_store(&w->failed, 0);
        w->exit_generation = 0;
        memset(&w->cnt, 0, sizeof w->cnt);
        atomic_store(&w->next_due, UINT64_MAX);
    }
    atomic_store(&e->threads_out, 0);
    atomic_store(&e->state, IOCP_ENGINE_RUNNING);
    atomic_store(&e->workers_alive, e->nworkers);
    for (unsigned i = 0; i < e->nworkers; i++) {
        rc = iocp__thread_start(&e->workers[i].thread, worker_main, &e->workers[i]);
        if (rc < 0) {
            /* Workers that did start leave through the normal stop path. */
            atomic_fetch_sub(&e->workers_alive, e->nworkers - i);
            break;
        }
        e->workers[i].started = true;
    }
    iocp__mutex_unlock(&e->lock);
    if (rc < 0) {
        iocp_engine_stop(e);
        return rc;
    }
    return 0;
}

static bool on_own_worker(struct iocp_engine *e)
{
    return current_worker && current_worker->engine == e;
}

int iocp_engine_stop(struct iocp_engine *e)
{
    int expected = IOCP_ENGINE_RUNNING;
    if (atomic_compare_exchange_strong(&e->state, &expected, IOCP_ENGINE_STOPPING)) {
        iocp__resolvers_cancel(e);
        /* Posters that saw the engine running finish first (see
         * iocp__post_running): their packets then run before the exits. */
        while (atomic_load(&e->posters) != 0)
            iocp__sleep_ms(0);
        uint32_t gen = atomic_load(&e->generation);
        for (unsigned i = 0; i < e->nworkers; i++) {
            /* A worker whose port failed has left: nothing reads its queue. */
            if (!e->workers[i].started || atomic_load(&e->workers[i].failed))
                continue;
            /* An exit packet must land: a worker that never hears it never
             * leaves.  Keep retrying; each failure is counted (seed 2b). */
            while (iocp__post(e, i, IOCP_PKT_EXIT, gen) < 0)
                iocp__sleep_ms(10);
        }
    }
    if (on_own_worker(e))
        return 0;
    return iocp_engine_wait(e);
}

int iocp_engine_wait(struct iocp_engine *e)
{
    if (on_own_worker(e))
        return IOCP_EBUSY;
    /* Only the join lock is held while joining: a worker on its way out may
     * still need e->lock (a server freed from a callback). */
    iocp__mutex_lock(&e->join_lock);
    if (!e->joined && e->started_ms) {
        for (unsigned i = 0; i < e->nworkers; i++)
            if (e->workers[i].started)
                iocp__thread_join(&e->workers[i].thread);
        iocp__mutex_lock(&e->lock);
        close_ports(e);
        e->joined = true;
        atomic_store(&e->state, IOCP_ENGINE_STOPPED);
        iocp__mutex_unlock(&e->lock);
    }
    iocp__mutex_unlock(&e->join_lock);
    /* The run ended with a worker whose port failed: say so. */
    for (unsigned i = 0; i < e->nworkers; i++) {
        int failed = atomic_load(&e->workers[i].failed);
        if (failed)
            return failed;
    }
    return 0;
}

void iocp_engine_free(struct iocp_engine *e)
{
    if (!e)
        return;
    iocp_engine_stop(e);
    iocp__registry_fini(&e->registry);
    iocp__mutex_fini(&e->lock);
    iocp__mutex_fini(&e->join_lock);
    iocp__mutex_fini(&e->resolver_lock);
    for (unsigned i = 0; i < e->nworkers; i++) {
        iocp__mutex_fini(&e->workers[i].lock);
        iocp__mutex_fini(&e->workers[i].timer_lock);
    }
    free(e->workers);
    free(e);
}
