/* SPDX-License-Identifier: MIT */
/*
 * udp_bridge.h: standard input and output bridged to a datagram socket.
 *
 * One periodic timer on worker 0 (TICK_MS) carries every deadline: -q
 * after stdin EOF, -i, the quiet time of connect -u after EOF, the expiry
 * of silent peers, the --progress line, and the drain of the socket's send
 * queue at the end.  Deadlines are therefore met within TICK_MS, which is
 * far below what any of them means to a person.
 */
#include "udp_bridge.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diag.h"
#include "run.h"
#include "stats_dgram.h"
#include "stats_endpoint.h"
#include "stdfd.h"
#include "stop.h"
#include "udp.h"
#include "udp_peers.h"

#define TICK_MS     100u
#define PROGRESS_MS 1000u
/* At the end, how long datagrams still queued may take to leave. */
#define DRAIN_MS    2000u

struct ub_peer {
    struct udp_peer link; /* first: the table hands back this address */
};

struct udp_bridge {
    struct udp_bridge_config cfg;
    struct iocp_engine *e;
    struct iocp_dgram *d;
    struct iocp_conn *in, *out;
    struct udp_peers peers;
    /* first peer mode: the peer, once it has sent */
    bool have_first;
    struct sockaddr_storage first;
    int firstlen;
    bool in_eof, in_paused_by_send, out_full, out_live;
    bool ending, woken, interrupted, dgram_live;
    int status;
    unsigned live; /* streams and the socket not yet closed */
    uint64_t start_ms, eof_ms, last_in_ms, last_any_ms, drain_until_ms, progress_ms;
    bool progress_tty, progress_shown;
    struct iocp_timer *tick;
    struct iocp_task start_task, interrupt_task;
    iocp_socket_t in_fd, out_fd; /* taken from fds 0 and 1, until a stream owns them */
    struct stdfd sin, sout;
    /* What -v reports at the end. */
    uint64_t dgrams_in, bytes_in, dgrams_out, bytes_out;
    uint64_t out_dropped, out_dropped_bytes; /* stdout too slow */
    uint64_t send_refused;                   /* the socket's queue was at its cap */
    uint64_t truncated, strangers, denied, beyond_max, unreachable, expired;
    struct iocp_dgram_stats final_stats;
};

/* One bridge per process: the run's hooks and the callbacks find it here. */
static struct udp_bridge ub;

static bool uses_stdout(const struct udp_bridge *b)
{
    return b->cfg.mode != UDP_BRIDGE_BROKER && !b->cfg.send_only;
}

static bool uses_stdin(const struct udp_bridge *b)
{
    return b->cfg.mode != UDP_BRIDGE_BROKER && !b->cfg.recv_only;
}

static bool is_listen(const struct udp_bridge *b)
{
    return b->cfg.mode != UDP_BRIDGE_CONNECTED;
}

static void wake_if_done(struct udp_bridge *b)
{
    /* After a stop signal only stdout is waited for. */
    bool done = b->live == 0 || (b->interrupted && !b->out_live);
    if (b->ending && done && !b->woken) {
        b->woken = true;
        stop_wake();
    }
}

/* Whoever stdin would go to now. */
static bool has_destination(const struct udp_bridge *b)
{
    switch (b->cfg.mode) {
    case UDP_BRIDGE_CONNECTED:
        return true;
    case UDP_BRIDGE_FIRST_PEER:
        return b->have_first;
    default:
        return b->peers.count > 0;
    }
}

/* Read stdin only while there is someone to send to and room to queue. */
static void update_stdin(struct udp_bridge *b)
{
    if (!b->in || b->ending)
        return;
    if (has_destination(b) && !b->in_paused_by_send && b->d)
        iocp_conn_resume(b->in);
    else
        iocp_conn_pause(b->in);
}

static void close_socket_if_drained(struct udp_bridge *b, uint64_t now)
{
    if (!b->d || !b->dgram_live)
        return;
    if (b->interrupted || iocp_dgram_queued(b->d) == 0 || now >= b->drain_until_ms) {
        iocp_dgram_close(b->d);
        b->dgram_live = false; /* closing: on_close follows */
    }
}

static void finish(struct udp_bridge *b, int status)
{
    if (status && !b->status)
        b->status = status;
    if (b->ending)
        return;
    b->ending = true;
    if (b->in)
        iocp_conn_close(b->in, IOCP_CLOSE_GRACEFUL);
    /* Datagrams still queued leave first (bounded by DRAIN_MS). */
    uint64_t now = udp_now_ms();
    b->drain_until_ms = now + DRAIN_MS;
    close_socket_if_drained(b, now);
    /* Closing stdout is how the program reading it sees the end. */
    if (b->out && iocp_conn_shutdown(b->out) < 0)
        iocp_conn_close(b->out, IOCP_CLOSE_GRACEFUL);
    wake_if_done(b);
}

/* ---- sending ---- */

static void send_one(struct udp_bridge *b, const void *data, size_t len, const struct sockaddr *to,
                     int tolen)
{
    int rc = iocp_dgram_sendto(b->d, data, len, to, tolen);
    if (rc == 0) {
        b->dgrams_out++;
        b->bytes_out += len;
    } else if (rc == IOCP_EAGAIN) {
        b->send_refused++;
    } else if (rc != IOCP_ENOTCONN) {
        char name[80] = "";
        if (to)
            udp_addr_name(to, name, sizeof name);
        diag_info(1, "%s: send%s%s: %s", b->cfg.cmd, to ? " to " : "", name, iocp_strerror(rc));
    }
}

/* ---- stdin: one read, one datagram ---- */

static void in_open(struct iocp_conn *c)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->in = c;
    if (b->ending) {
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
        return;
    }
    update_stdin(b);
}

static void in_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct udp_bridge *b = iocp_conn_data(c);
    if (b->ending || !b->d)
        return;
    b->last_any_ms = udp_now_ms();
    switch (b->cfg.mode) {
    case UDP_BRIDGE_CONNECTED:
        send_one(b, data, len, NULL, 0);
        break;
    case UDP_BRIDGE_FIRST_PEER:
        if (b->have_first)
            send_one(b, data, len, (const struct sockaddr *)&b->first, b->firstlen);
        break;
    default:
        for (struct udp_peer *p = b->peers.oldest; p; p = p->newer)
            send_one(b, data, len, (const struct sockaddr *)&p->addr, p->addrlen);
        break;
    }
}

static void in_eof(struct iocp_conn *c)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->in_eof = true;
    b->eof_ms = udp_now_ms();
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    if (b->ending)
        return;
    diag_info(2, "%s: stdin: end of input", b->cfg.cmd);
    /* Nothing comes back to a tool that does not write stdout, and -q 0
     * asks for the end at once. */
    if (b->cfg.send_only || b->cfg.quit_ms == 0)
        finish(b, 0);
}

static void in_close(struct iocp_conn *c, int status)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->in = NULL;
    b->live--;
    stdfd_restore(0, &b->sin);
    if (status < 0 && status != IOCP_ECANCELED && !b->ending) {
        diag_error("%s: stdin: %s", b->cfg.cmd, diag_strerror(status));
        finish(b, EXIT_RUNTIME);
    }
    wake_if_done(b);
}

static const struct iocp_conn_handler in_handler = {
    .on_open = in_open,
    .on_data = in_data,
    .on_eof = in_eof,
    .on_close = in_close,
};

/* ---- stdout ---- */

static void out_open(struct iocp_conn *c)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->out = c;
    if (b->ending && iocp_conn_shutdown(c) < 0)
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static void out_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static void out_pressure(struct iocp_conn *c, bool full)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->out_full = full;
}

static void out_close(struct iocp_conn *c, int status)
{
    struct udp_bridge *b = iocp_conn_data(c);
    b->out = NULL;
    b->out_full = false;
    b->out_live = false;
    b->live--;
    stdfd_release_stdout(&b->sout);
    if (status < 0 && status != IOCP_ECANCELED) {
        if (!b->status)
            diag_error("%s: stdout: %s", b->cfg.cmd, iocp_strerror(status));
        finish(b, EXIT_RUNTIME);
    }
    wake_if_done(b);
}

static const struct iocp_conn_handler out_handler = {
    .on_open = out_open,
    .on_data = out_data,
    .on_pressure = out_pressure,
    .on_close = out_close,
};

/* A datagram for stdout: written, or dropped and counted while stdout is
 * behind (UDP may drop; memory may not grow). */
static void to_stdout(struct udp_bridge *b, const void *data, size_t len)
{
    if (!uses_stdout(b) || len == 0)
        return;
    if (!b->out || b->out_full) {
        b->out_dropped++;
        b->out_dropped_bytes += len;
        return;
    }
    if (iocp_conn_send(b->out, data, len) < 0) {
        b->out_dropped++;
        b->out_dropped_bytes += len;
    }
}

/* ---- the socket ---- */

static bool same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    if (a->sa_family != b->ss_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)(const void *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)(const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)(const void *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)(const void *)b;
    return x->sin6_port == y->sin6_port && !memcmp(&x->sin6_addr, &y->sin6_addr, 16);
}

/* keep open, broker: the peer of this address, new or known; NULL when it
 * cannot be taken in (beyond --max-conns, or out of memory). */
static struct ub_peer *peer_for(struct udp_bridge *b, const struct sockaddr *from, int fromlen,
                                uint64_t now)
{
    struct udp_peer *known = udp_peers_find(&b->peers, from, fromlen);
    if (known) {
        udp_peers_touch(&b->peers, known, now);
        return (struct ub_peer *)known;
    }
    char name[80];
    if (b->peers.count >= b->cfg.max_peers) {
        if (b->beyond_max++ == 0 || diag_verbosity >= 2)
            diag_info(1, "%s: %s: %u peers already (--max-conns): datagram dropped", b->cfg.cmd,
                      udp_addr_name(from, name, sizeof name), b->cfg.max_peers);
        return NULL;
    }
    struct ub_peer *p = calloc(1, sizeof *p);
    if (!p) {
        b->beyond_max++;
        return NULL;
    }
    udp_peers_add(&b->peers, &p->link, from, fromlen, now);
    diag_info(2, "%s: new peer %s", b->cfg.cmd, udp_addr_name(from, name, sizeof name));
    if (b->peers.count == 1)
        update_stdin(b);
    return p;
}

static void on_datagram(struct iocp_dgram *d, const void *data, size_t len,
                        const struct sockaddr *from, int fromlen, unsigned flags)
{
    struct udp_bridge *b = iocp_dgram_data(d);
    b->d = d;
    if (b->ending || b->interrupted)
        return;
    char name[80];
    if (b->cfg.acl && !acl_admits(b->cfg.acl, from)) {
        if (b->denied++ == 0 || diag_verbosity >= 2)
            diag_info(1, "%s: %s: denied by --allow/--deny", b->cfg.cmd,
                      udp_addr_name(from, name, sizeof name));
        return;
    }
    uint64_t now = udp_now_ms();
    if (flags & IOCP_DGRAM_TRUNCATED) {
        /* Said at once, the first time: data was lost. */
        if (b->truncated++ == 0)
            diag_error("%s: a datagram from %s was longer than %lu bytes and was cut "
                       "(--max-datagram)",
                       b->cfg.cmd, udp_addr_name(from, name, sizeof name),
                       (unsigned long)(b->cfg.socket.max_datagram ? b->cfg.socket.max_datagram
                                                                  : IOCP_DGRAM_MAX));
    }
    switch (b->cfg.mode) {
    case UDP_BRIDGE_CONNECTED:
        break;
    case UDP_BRIDGE_FIRST_PEER:
        if (!b->have_first) {
            b->have_first = true;
            memset(&b->first, 0, sizeof b->first);
            memcpy(&b->first, from, (size_t)fromlen);
            b->firstlen = fromlen;
            diag_info(1, "%s: peer %s", b->cfg.cmd, udp_addr_name(from, name, sizeof name));
            update_stdin(b);
        } else if (!same_addr(from, &b->first)) {
            if (b->strangers++ == 0 || diag_verbosity >= 2)
                diag_info(1, "%s: %s is not the peer: datagram dropped (-k takes every peer)",
                          b->cfg.cmd, udp_addr_name(from, name, sizeof name));
            return;
        }
        break;
    case UDP_BRIDGE_KEEP_OPEN:
        if (!peer_for(b, from, fromlen, now))
            return;
        break;
    case UDP_BRIDGE_BROKER: {
        struct ub_peer *self = peer_for(b, from, fromlen, now);
        if (!self)
            return;
        b->dgrams_in++;
        b->bytes_in += len;
        b->last_in_ms = b->last_any_ms = now;
        for (struct udp_peer *p = b->peers.oldest; p; p = p->newer)
            if (p != &self->link)
                send_one(b, data, len, (const struct sockaddr *)&p->addr, p->addrlen);
        return;
    }
    }
    b->dgrams_in++;
    b->bytes_in += len;
    b->last_in_ms = b->last_any_ms = now;
    to_stdout(b, data, len);
}

static void on_pressure(struct iocp_dgram *d, bool full)
{
    struct udp_bridge *b = iocp_dgram_data(d);
    b->in_paused_by_send = full;
    update_stdin(b);
}

static void on_error(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen)
{
    (void)peerlen;
    struct udp_bridge *b = iocp_dgram_data(d);
    if (b->ending)
        return;
    char name[80] = "";
    if (peer)
        udp_addr_name(peer, name, sizeof name);
    if (b->cfg.mode == UDP_BRIDGE_CONNECTED) {
        /* As nc does when told: nobody is there, so nothing will answer. */
        if (status == IOCP_ECONNREFUSED)
            diag_error("%s: %s: port unreachable (nothing listens there)", b->cfg.cmd,
                       b->cfg.target);
        else
            diag_error("%s: %s: %s", b->cfg.cmd, b->cfg.target, iocp_strerror(status));
        finish(b, EXIT_RUNTIME);
        return;
    }
    /* A listener outlives any one peer: a peer that went away is
     * forgotten (-k), and the listener goes on. */
    b->unreachable++;
    diag_info(1, "%s: %s%s%s", b->cfg.cmd, name, *name ? ": " : "",
              status == IOCP_ECONNREFUSED ? "port unreachable" : iocp_strerror(status));
    if (peer && (b->cfg.mode == UDP_BRIDGE_KEEP_OPEN || b->cfg.mode == UDP_BRIDGE_BROKER)) {
        struct udp_peer *p = udp_peers_find(&b->peers, peer, peerlen);
        if (p) {
            udp_peers_remove(&b->peers, p);
            free(p);
            update_stdin(b);
        }
    }
}

static void on_close(struct iocp_dgram *d, int status)
{
    struct udp_bridge *b = iocp_dgram_data(d);
    iocp_dgram_stats(d, &b->final_stats);
    b->d = NULL;
    b->dgram_live = false;
    b->live--;
    if (status < 0 && status != IOCP_ECANCELED && !b->ending) {
        diag_error("%s: socket: %s", b->cfg.cmd, iocp_strerror(status));
        finish(b, EXIT_RUNTIME);
    }
    if (!b->ending)
        finish(b, b->status);
    wake_if_done(b);
}

static const struct iocp_dgram_handler dgram_handler = {
    .on_datagram = on_datagram,
    .on_pressure = on_pressure,
    .on_error = on_error,
    .on_close = on_close,
};

/* ---- the tick: every deadline ---- */

static void show_progress(struct udp_bridge *b)
{
    fprintf(stderr,
            "\r%s: in %" PRIu64 " datagrams, %" PRIu64 " bytes; out %" PRIu64 " datagrams, %" PRIu64
            " bytes ",
            b->cfg.cmd, b->dgrams_in, b->bytes_in, b->dgrams_out, b->bytes_out);
    fflush(stderr);
    b->progress_shown = true;
}

static void tick(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct udp_bridge *b = arg;
    uint64_t now = udp_now_ms();
    if (b->ending) {
        close_socket_if_drained(b, now);
        return;
    }
    if (b->progress_tty && now - b->progress_ms >= PROGRESS_MS) {
        b->progress_ms = now;
        show_progress(b);
    }
    if (b->in_eof && b->cfg.quit_ms > 0 && now - b->eof_ms >= (uint64_t)b->cfg.quit_ms) {
        diag_info(2, "%s: -q: %d ms after the end of input", b->cfg.cmd, b->cfg.quit_ms);
        finish(b, 0);
        return;
    }
    if (b->cfg.idle_ms && now - b->last_any_ms >= b->cfg.idle_ms) {
        diag_info(1, "%s: idle for %u ms (-i)", b->cfg.cmd, b->cfg.idle_ms);
        finish(b, 0);
        return;
    }
    /* connect -u after EOF, by default: the replies have stopped coming. */
    if (b->in_eof && b->cfg.mode == UDP_BRIDGE_CONNECTED && b->cfg.quit_ms < 0 && !b->cfg.idle_ms) {
        uint64_t since = b->last_in_ms > b->eof_ms ? b->last_in_ms : b->eof_ms;
        if (now - since >= UDP_EOF_QUIET_MS) {
            diag_info(2, "%s: no reply for %u ms after the end of input", b->cfg.cmd,
                      UDP_EOF_QUIET_MS);
            finish(b, 0);
            return;
        }
    }
    if (b->cfg.ttl_ms) {
        struct udp_peer *p;
        bool dropped = false;
        while ((p = udp_peers_expired(&b->peers, now, b->cfg.ttl_ms)) != NULL) {
            char name[80];
            diag_info(2, "%s: %s silent for %u ms: forgotten", b->cfg.cmd,
                      udp_addr_name((const struct sockaddr *)&p->addr, name, sizeof name),
                      b->cfg.ttl_ms);
            udp_peers_remove(&b->peers, p);
            free(p);
            b->expired++;
            dropped = true;
        }
        if (dropped)
            update_stdin(b);
    }
}

/* ---- start, on worker 0 ---- */

static int open_stdio(struct udp_bridge *b, int fd, iocp_socket_t *h)
{
    struct iocp_pipe_config pcfg = {
        .handle = *h,
        .worker = 0,
        .readable = fd == 0,
        .handler = fd == 0 ? &in_handler : &out_handler,
        .data = b,
    };
    int rc = iocp_pipe_open(b->e, &pcfg);
    if (rc < 0) {
        diag_error("%s: %s: %s", b->cfg.cmd, fd ? "stdout" : "stdin", iocp_strerror(rc));
        return rc;
    }
    *h = IOCP_INVALID_SOCKET; /* the stream owns it */
    b->live++;
    if (fd == 1)
        b->out_live = true;
    return 0;
}

static void start(struct iocp_task *task)
{
    struct udp_bridge *b = task->arg;
    struct iocp_dgram_config dcfg = b->cfg.socket;
    dcfg.worker = 0;
    dcfg.handler = &dgram_handler;
    dcfg.data = b;
    struct iocp_dgram *d;
    int rc = iocp_dgram_open(&d, b->e, &dcfg);
    if (rc < 0) {
        if (is_listen(b))
            diag_listen_error(b->cfg.cmd, dcfg.host, dcfg.port, rc);
        else
            diag_error("%s: %s: %s", b->cfg.cmd, b->cfg.target,
                       *iocp_error_detail() ? iocp_error_detail() : iocp_strerror(rc));
        finish(b, EXIT_RUNTIME);
        return;
    }
    b->d = d;
    b->dgram_live = true;
    b->live++;
    if (is_listen(b)) {
        udp_print_listening(d);
    } else {
        char local[80];
        diag_info(1, "%s: datagrams to %s from %s", b->cfg.cmd, b->cfg.target,
                  iocp_dgram_local(d, local, sizeof local));
    }
    if (b->out_fd != IOCP_INVALID_SOCKET && open_stdio(b, 1, &b->out_fd) < 0) {
        finish(b, EXIT_RUNTIME);
        return;
    }
    if (b->in_fd != IOCP_INVALID_SOCKET && open_stdio(b, 0, &b->in_fd) < 0) {
        finish(b, EXIT_RUNTIME);
        return;
    }
    rc = iocp_timer_start(b->tick, TICK_MS, TICK_MS);
    if (rc < 0) {
        diag_error("%s: timers: %s", b->cfg.cmd, iocp_strerror(rc));
        finish(b, EXIT_RUNTIME);
    }
}

/* A stop signal: nothing more is read or sent; what was received is
 * written to stdout, which then closes. */
static void interrupt_task(struct iocp_task *task)
{
    struct udp_bridge *b = task->arg;
    if (b->ending)
        return;
    b->interrupted = true;
    finish(b, b->status);
}

/* ---- the run's hooks (main thread) ---- */

static int take_stdio(struct udp_bridge *b, int fd, struct stdfd *s, iocp_socket_t *h)
{
    int rc = stdfd_take(fd, s, h);
    if (rc < 0) {
        diag_error("%s: %s: %s", b->cfg.cmd, fd ? "stdout" : "stdin", diag_strerror(rc));
        return -1;
    }
    if (rc > 0)
        *h = IOCP_INVALID_SOCKET;
    return rc;
}

static int hook_begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    (void)s;
    struct udp_bridge *b = arg;
    b->e = e;
    if (uses_stdout(b) && take_stdio(b, 1, &b->sout, &b->out_fd) < 0)
        return -1;
    if (uses_stdin(b)) {
        int rc = take_stdio(b, 0, &b->sin, &b->in_fd);
        if (rc < 0)
            return -1;
        if (rc > 0) { /* no stdin at all: it has ended */
            b->in_eof = true;
            b->eof_ms = udp_now_ms();
        }
    }
    b->progress_tty = b->cfg.progress && stdfd_isatty(2);
    int rc = iocp_timer_new(e, 0, tick, b, &b->tick);
    if (rc < 0) {
        diag_error("%s: timers: %s", b->cfg.cmd, iocp_strerror(rc));
        return -1;
    }
    /* The endpoint is up before the listening line, as for TCP. */
    if (b->cfg.stats) {
        stats_dgram_add(e);
        if (stats_endpoint_start(e, NULL, b->cfg.stats_spec) < 0)
            return -1;
    }
    rc = iocp_engine_post(e, 0, &b->start_task);
    if (rc < 0) {
        diag_error("%s: %s", b->cfg.cmd, iocp_strerror(rc));
        return -1;
    }
    return 0;
}

static int hook_interrupt(void *arg, int sig)
{
    (void)sig;
    struct udp_bridge *b = arg;
    return iocp_engine_post(b->e, 0, &b->interrupt_task) < 0 ? -1 : 0;
}

static int hook_end(void *arg)
{
    struct udp_bridge *b = arg;
    if (b->tick) {
        iocp_timer_free(b->tick);
        b->tick = NULL;
    }
    if (b->progress_shown) {
        show_progress(b);
        fputc('\n', stderr);
    }
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    if (diag_verbosity >= 1) {
        const char *cmd = b->cfg.cmd;
        double secs = (double)(udp_now_ms() - b->start_ms) / 1000.0;
        diag_info(1,
                  "%s: %" PRIu64 " datagrams (%" PRIu64 " bytes) received, %" PRIu64
                  " datagrams (%" PRIu64 " bytes) sent in %.2f seconds",
                  cmd, b->dgrams_in, b->bytes_in, b->dgrams_out, b->bytes_out, secs);
        if (b->out_dropped)
            diag_info(
                1, "%s: %" PRIu64 " datagrams (%" PRIu64 " bytes) dropped: stdout did not keep up",
                cmd, b->out_dropped, b->out_dropped_bytes);
        uint64_t send_dropped =
            b->final_stats.dropped > b->send_refused ? b->final_stats.dropped : b->send_refused;
        if (send_dropped)
            diag_info(1, "%s: %" PRIu64 " datagrams dropped: the network did not keep up", cmd,
                      send_dropped);
        if (b->truncated)
            diag_info(1, "%s: %" PRIu64 " datagrams cut to --max-datagram", cmd, b->truncated);
        if (b->strangers)
            diag_info(1, "%s: %" PRIu64 " datagrams from others than the peer dropped", cmd,
                      b->strangers);
        if (b->beyond_max)
            diag_info(1, "%s: %" PRIu64 " datagrams from peers beyond --max-conns dropped", cmd,
                      b->beyond_max);
        if (b->denied)
            diag_info(1, "%s: %" PRIu64 " datagrams denied by --allow/--deny", cmd, b->denied);
        if (b->unreachable)
            diag_info(1, "%s: %" PRIu64 " port-unreachable reports", cmd, b->unreachable);
        if (b->expired)
            diag_info(1, "%s: %" PRIu64 " peers forgotten after --udp-ttl", cmd, b->expired);
    }
    return b->status;
}

static void hook_release(void *arg)
{
    struct udp_bridge *b = arg;
    if (b->tick)
        iocp_timer_free(b->tick);
    b->tick = NULL;
    if (b->in_fd != IOCP_INVALID_SOCKET)
        stdfd_close(b->in_fd);
    if (b->out_fd != IOCP_INVALID_SOCKET)
        stdfd_close(b->out_fd);
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    for (struct udp_peer *p = b->peers.oldest, *next; p; p = next) {
        next = p->newer;
        free(p);
    }
    udp_peers_fini(&b->peers);
}

int udp_bridge_run(const struct udp_bridge_config *cfg, const struct iocp_engine_config *ecfg)
{
    struct udp_bridge *b = &ub;
    memset(b, 0, sizeof *b);
    b->cfg = *cfg;
    b->in_fd = b->out_fd = IOCP_INVALID_SOCKET;
    b->sin.flags = b->sout.flags = -1;
    b->start_ms = b->last_any_ms = b->progress_ms = udp_now_ms();
    b->start_task = (struct iocp_task){.fn = start, .arg = b};
    b->interrupt_task = (struct iocp_task){.fn = interrupt_task, .arg = b};
    if (!udp_peers_init(&b->peers, cfg->max_peers ? cfg->max_peers : 1)) {
        diag_error("%s: %s", cfg->cmd, iocp_strerror(IOCP_ENOMEM));
        return EXIT_RUNTIME;
    }
    struct run_spec spec = {
        .cmd = cfg->cmd,
        .engine = ecfg,
        .arg = b,
        .begin = hook_begin,
        .interrupt = hook_interrupt,
        .end = hook_end,
        .release = hook_release,
    };
    return run_engine(&spec);
}
