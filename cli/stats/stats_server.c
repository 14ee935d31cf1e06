/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h, the serving side, written once over stats_transport.h:
 * the thread that waits on the listening socket, the wake-up and at most
 * STATS_MAX_CLIENTS clients (all non-blocking), and what each client goes
 * through.  The answers come from stats_report.c.
 *
 * A client goes through three states: reading its request line (bounded in
 * length and time; on a token endpoint its token line comes first), writing
 * the answer (as fast as it reads; bounded in time), then draining what it
 * still sends for a moment after our shutdown, so that a client which sent
 * more than one line (or garbage) still reads our answer instead of a
 * reset.  Nothing a client does reaches the engine: the reports are built
 * from iocp_engine_stats() and iocp_engine_foreach_conn() snapshots.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "diag.h"
#include "json.h"
#include "stats_endpoint.h"
#include "stats_report.h"
#include "stats_transport.h"

/* The longest token line: the token and "\r\n". */
#define TOKEN_LINE (STATS_TOKEN_HEX + 2)
/* A token line and a request line may arrive in one read. */
#define IN_MAX     (TOKEN_LINE + STATS_REQ_MAX)

enum client_state { READING, WRITING, DRAINING };

struct client {
    iocp_socket_t fd; /* IOCP_INVALID_SOCKET: a free slot */
    enum client_state state;
    bool authed; /* its token line is in (or it needs none) */
    uint64_t since, deadline;
    char in[IN_MAX];
    size_t inlen;
    struct json_buf out;
    size_t outoff;
};

static struct {
    bool running;
    iocp_socket_t lfd;
    iocp_socket_t wake;
    atomic_bool stopping;
    const char *token;      /* what a client sends first, or NULL */
    uint64_t accept_resume; /* no accepting before this (a pause) */
    struct client clients[STATS_MAX_CLIENTS];
    struct stats_source src;
} ep = {.lfd = IOCP_INVALID_SOCKET, .wake = IOCP_INVALID_SOCKET};

/* ---- one client ---- */

static void client_close(struct client *c)
{
    stats_sock_close(c->fd);
    c->fd = IOCP_INVALID_SOCKET;
    json_buf_free(&c->out);
}

static void client_answer(struct client *c, size_t linelen)
{
    stats_answer(&ep.src, c->in, linelen, &c->out);
    c->state = WRITING;
    c->deadline = stats_now_ms() + STATS_WRITE_MS;
}

static void client_error(struct client *c, const char *why)
{
    json_buf_free(&c->out);
    json_printf(&c->out, "error: %s\n", why);
    c->state = WRITING;
    c->deadline = stats_now_ms() + STATS_WRITE_MS;
}

/* The token line (its end included or not) against ours, in a time that
 * does not depend on where they differ. */
static bool token_matches(const char *line, size_t len)
{
    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len != STATS_TOKEN_HEX) /* the length is no secret */
        return false;
    volatile unsigned char diff = 0;
    for (size_t i = 0; i < STATS_TOKEN_HEX; i++)
        diff |= (unsigned char)(line[i] ^ ep.token[i]);
    return diff == 0;
}

/* What the client has sent so far: its token line first where one is
 * needed, then its request line.  eof: it will send no more. */
static void client_input(struct client *c, bool eof)
{
    if (!c->authed) {
        char *nl = memchr(c->in, '\n', c->inlen);
        if (!nl) {
            if (c->inlen == 0 && eof)
                client_close(c); /* connected and left: `stats` looking */
            else if (eof || c->inlen >= TOKEN_LINE)
                client_error(c, "unauthorized (a wrong or missing token)");
            return;
        }
        size_t linelen = (size_t)(nl - c->in) + 1;
        if (!token_matches(c->in, linelen)) {
            client_error(c, "unauthorized (a wrong or missing token)");
            return;
        }
        c->authed = true;
        memmove(c->in, c->in + linelen, c->inlen - linelen);
        c->inlen -= linelen;
    }
    char *nl = memchr(c->in, '\n', c->inlen);
    if (nl && (size_t)(nl - c->in) + 1 > STATS_REQ_MAX)
        client_error(c, "request too long");
    else if (nl)
        client_answer(c, (size_t)(nl - c->in) + 1);
    else if (c->inlen >= STATS_REQ_MAX)
        client_error(c, "request too long");
    else if (eof && c->inlen) /* a request without its newline still counts */
        client_answer(c, c->inlen);
    else if (eof)
        client_close(c);
}

static void client_read(struct client *c)
{
    if (c->state == DRAINING) {
        char sink[4096];
        long n = stats_sock_recv(c->fd, sink, sizeof sink);
        if (n == 0 || n == STATS_IO_FAILED)
            client_close(c);
        return;
    }
    size_t cap = c->authed ? STATS_REQ_MAX : sizeof c->in;
    long n = stats_sock_recv(c->fd, c->in + c->inlen, cap - c->inlen);
    if (n == STATS_IO_FAILED)
        client_close(c);
    if (n < 0)
        return;
    c->inlen += (size_t)n;
    client_input(c, n == 0);
}

static void client_write(struct client *c)
{
    while (c->outoff < c->out.len) {
        long n = stats_sock_send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff);
        if (n == STATS_IO_FAILED)
            client_close(c);
        if (n < 0)
            return;
        c->outoff += (size_t)n;
    }
    /* All sent: our end of the stream, then a short drain so that unread
     * input does not turn the close into a reset that eats the answer. */
    json_buf_free(&c->out);
    stats_sock_shutdown_write(c->fd);
    c->state = DRAINING;
    c->deadline = stats_now_ms() + STATS_DRAIN_MS;
}

/* ---- slots and the loop ---- */

/*
 * A slot for the next client, or NULL while every slot is needed.  A free
 * one first; else the oldest client whose answer is out (it is only being
 * drained); else the oldest that has sent no whole request within
 * STATS_SLOT_HOLD_MS.  A client being answered keeps its slot (until its
 * write deadline), and so does a young one, which may be a real query whose
 * request is on its way: new clients then wait in the listening socket's
 * backlog instead of pushing out one that would have been answered.  So
 * idle or half-sent connections (the same user's: others never get in)
 * cannot keep a complete request out, and a storm of queries is served in
 * turn.  *when: with NULL, the time at which a client becomes one that may
 * be pushed out (UINT64_MAX: none will; the deadlines free slots then).
 */
static struct client *pick_slot(uint64_t now, uint64_t *when)
{
    struct client *drained = NULL, *stalled = NULL;
    *when = UINT64_MAX;
    for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
        struct client *c = &ep.clients[i];
        if (c->fd == IOCP_INVALID_SOCKET)
            return c;
        if (c->state == DRAINING && (!drained || c->since < drained->since))
            drained = c;
        if (c->state != READING)
            continue;
        if (now - c->since < STATS_SLOT_HOLD_MS) {
            if (c->since + STATS_SLOT_HOLD_MS < *when)
                *when = c->since + STATS_SLOT_HOLD_MS;
        } else if (!stalled || c->since < stalled->since) {
            stalled = c;
        }
    }
    return drained ? drained : stalled;
}

/* Make room in c's slot for a new client. */
static void evict(struct client *c)
{
    if (c->state == DRAINING) {
        /* Its answer is out: read what it sent since, so that the close is
         * not a reset that could eat the answer. */
        char sink[4096];
        while (stats_sock_recv(c->fd, sink, sizeof sink) > 0)
            ;
    } else {
        static const char busy[] = "error: busy (no whole request in time, and every slot taken)\n";
        stats_sock_send(c->fd, busy, sizeof busy - 1);
    }
    client_close(c);
}

/* Accept while there is a slot to put a client in.  Accepting that fails
 * for want of descriptors (or memory) pauses the listening socket: it stays
 * readable meanwhile, and polling it again at once would spin. */
static void accept_clients(void)
{
    for (;;) {
        uint64_t now = stats_now_ms(), when;
        struct client *slot = pick_slot(now, &when);
        if (!slot)
            return;
        iocp_socket_t fd;
        enum stats_accept got = stats_transport_accept(ep.lfd, &fd);
        if (got == STATS_ACCEPT_AGAIN)
            continue;
        if (got == STATS_ACCEPT_STUCK)
            ep.accept_resume = now + STATS_ACCEPT_PAUSE_MS;
        if (got != STATS_ACCEPTED)
            return;
        if (slot->fd != IOCP_INVALID_SOCKET)
            evict(slot);
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->state = READING;
        slot->authed = ep.token == NULL;
        slot->since = now;
        slot->deadline = now + STATS_READ_MS;
        /* A client usually sends its request with the connect: answer it
         * now, before the next one needs a slot. */
        client_read(slot);
        if (slot->fd != IOCP_INVALID_SOCKET && slot->state == WRITING)
            client_write(slot);
    }
}

/* Whether to wait on the listening socket this round; if not, *timeout is
 * bounded by when it is worth looking again. */
static bool listening(uint64_t now, int *timeout)
{
    uint64_t when = ep.accept_resume;
    if (now >= ep.accept_resume && pick_slot(now, &when))
        return true;
    if (when != UINT64_MAX) {
        int left = when > now ? (int)(when - now) : 0;
        if (*timeout < 0 || left < *timeout)
            *timeout = left;
    }
    return false;
}

/* What a client is waited for, or 0 once its time is up (then it is closed). */
static short client_events(struct client *c, uint64_t now, int *timeout)
{
    if (c->deadline <= now) {
        client_close(c);
        return 0;
    }
    int left = (int)(c->deadline - now);
    if (*timeout < 0 || left < *timeout)
        *timeout = left;
    return c->state == WRITING ? STATS_POLL_OUT : STATS_POLL_IN;
}

static void serve(void)
{
    stats_pollfd pfd[STATS_MAX_CLIENTS + 2];
    int idx[STATS_MAX_CLIENTS + 2];
    while (!atomic_load(&ep.stopping)) {
        uint64_t now = stats_now_ms();
        unsigned n = 0;
        int timeout = -1;
        pfd[n] = (stats_pollfd){.fd = ep.wake, .events = STATS_POLL_IN};
        idx[n++] = -1;
        for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
            struct client *c = &ep.clients[i];
            short events = c->fd == IOCP_INVALID_SOCKET ? 0 : client_events(c, now, &timeout);
            if (!events)
                continue;
            pfd[n] = (stats_pollfd){.fd = c->fd, .events = events};
            idx[n++] = i;
        }
        /* Last, so that a slot reused for a new client is not looked at
         * again in this round. */
        if (listening(now, &timeout)) {
            pfd[n] = (stats_pollfd){.fd = ep.lfd, .events = STATS_POLL_IN};
            idx[n++] = -2;
        }
        int r = stats_sock_poll(pfd, n, timeout);
        if (r < 0) {
            /* A signal, or not expected: do not spin if it persists. */
            stats_pause_ms(10);
            continue;
        }
        if (r == 0)
            continue;
        if (pfd[0].revents) {
            stats_wake_drain();
            continue; /* the loop condition says whether to stop */
        }
        for (unsigned k = 1; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] == -2) {
                accept_clients();
                continue;
            }
            struct client *c = &ep.clients[idx[k]];
            if (c->state == WRITING) {
                client_write(c);
                continue;
            }
            client_read(c);
            /* An answer can often go out at once. */
            if (c->fd != IOCP_INVALID_SOCKET && c->state == WRITING)
                client_write(c);
        }
    }
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        if (ep.clients[i].fd != IOCP_INVALID_SOCKET)
            client_close(&ep.clients[i]);
}

/* ---- start and stop ---- */

int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec)
{
    char err[512];
    if (ep.running) {
        diag_error("stats endpoint: already running");
        return -1;
    }
    /* --stats unix:PATH is --stats PATH, as everywhere an address is taken. */
    if (spec && strncmp(spec, "unix:", 5) == 0)
        spec += 5;
    ep.lfd = stats_transport_open(spec, &ep.token, err, sizeof err);
    if (ep.lfd == IOCP_INVALID_SOCKET) {
        diag_error("stats endpoint: %s", err);
        return -1;
    }
    ep.wake = stats_wake_open(err, sizeof err);
    if (ep.wake == IOCP_INVALID_SOCKET) {
        diag_error("stats endpoint: no wake-up: %s", err);
        goto err1;
    }
    stats_source_init(&ep.src, e, s, stats_transport_pid());
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        ep.clients[i].fd = IOCP_INVALID_SOCKET;
    atomic_store(&ep.stopping, false);
    ep.accept_resume = 0;
    if (stats_thread_start(serve, err, sizeof err) < 0) {
        diag_error("stats endpoint: cannot start its thread: %s", err);
        goto err2;
    }
    ep.running = true;
    return 0;

err2:
    stats_wake_close();
    ep.wake = IOCP_INVALID_SOCKET;
err1:
    stats_transport_close(ep.lfd);
    ep.lfd = IOCP_INVALID_SOCKET;
    ep.token = NULL;
    return -1;
}

void stats_endpoint_stop(void)
{
    if (!ep.running)
        return;
    ep.running = false;
    atomic_store(&ep.stopping, true);
    stats_wake_fire();
    stats_thread_join();
    stats_wake_close();
    ep.wake = IOCP_INVALID_SOCKET;
    stats_transport_close(ep.lfd);
    ep.lfd = IOCP_INVALID_SOCKET;
    ep.token = NULL;
    stats_source_fini(&ep.src);
}
