/* SPDX-License-Identifier: MIT */
/*
 * bridge.h: standard input and output bridged to network connections.
 *
 * stdin and stdout are streams of the engine (iocp_pipe_open) on worker 0,
 * like every connection, so no callback ever needs a lock.  Data moves with
 * flat memory: a send queue above its high watermark pauses whoever feeds
 * it (a stalled stdout pauses reading the sockets, a stalled socket pauses
 * reading stdin) and resumes it at the low watermark.
 *
 * The end of input rules are those of docs/EOF.md: stdin EOF half-closes
 * (unless --no-shutdown), socket EOF closes stdout and ends a single
 * connection, -q ends the tool a while after stdin EOF.  "Ending" means:
 * stop accepting, close every connection gracefully (queued data is sent
 * first), shut stdout once drained, and wake the main thread when the last
 * of them has closed; only then is the engine stopped, so nothing queued is
 * lost to its abortive stop.
 *
 * The streams get handles of their own on fds 0 and 1; what each
 * platform must put back at the end, and how stdout is let go of so that
 * the program reading it sees EOF when its stream closes, is in stdfd.h.
 *
 * With --key each connection carries the channel of secure.h.  A peer is
 * "ready" once data may go to it: at once when plain, when the channel
 * opens otherwise.  Until then nothing is sent to it but the handshake:
 * stdin is read for ready peers only, what stdin gave while no peer was
 * ready waits for the first one, and a half-close waits for the channel
 * too.  So a client that stalls its handshake gets nothing and holds
 * nobody up (-k); the ticker closes it after SECURE_HANDSHAKE_TIMEOUT_MS.
 * A direction ends with the channel's FINAL frame before the TCP
 * shutdown, and a clean end of the tool sends the FINAL frames it still
 * owes, so that only a real end looks like one to the peer; an error ends
 * without them, and the peer reports the cut.
 */
#include "bridge.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "diag.h"
#include "opts.h"
#include "secure.h"
#include "stdfd.h"
#include "stop.h"
#include "ticker.h"

/* A connection's user data is the bridge until it opens, then its peer. */
enum { TAG_BRIDGE = 0x62726467, TAG_PEER = 0x70656572 };

/* How often the ticker posts the timer task: the precision of -q. */
#define TICK_MS     50u
#define PROGRESS_MS 1000u
/* Plaintext sealed per call: its frames (at most SEAL_BOUND bytes) go to
 * one scratch buffer, so no read size needs a bigger one. */
#define SEAL_CHUNK  ((size_t)64 * 1024)
#define SEAL_BOUND  SECURE_SEAL_BOUND(SEAL_CHUNK)

struct peer {
    uint32_t tag;
    struct bridge *b;
    struct iocp_conn *c;
    struct peer *prev, *next;
    char name[64];
    bool full;      /* its send queue is above the high watermark */
    bool ready;     /* data may be sent to it: plain, or its channel is open */
    bool ended_out; /* our direction to it has ended (FINAL frame sent) */
    bool failed;    /* its channel failed or timed out: it is closing */
    /* --key: its channel, and its place in the bridge's queue of channels
     * not open yet (oldest first), entered when the connection opened. */
    struct secure *sec;
    struct peer *hs_prev, *hs_next;
    bool in_hs;
    uint64_t open_ms;
};

struct bridge {
    uint32_t tag;
    struct bridge_config cfg;
    struct iocp_engine *e;
    struct iocp_server *server;
    char target[300]; /* connect: what we connect to, for messages */
    bool connecting;
    struct iocp_conn *in, *out;
    struct peer *peers;
    unsigned npeers, full_peers;
    unsigned nready; /* peers that data may be sent to */
    /* --key: the peers whose handshake runs, oldest first (all have the
     * same time-out, so the head is always the first to expire), and the
     * scratch buffer that sealed frames are built in before they are
     * queued. */
    struct peer *hs_head, *hs_tail;
    unsigned char *sealed;
    bool opened_once; /* single mode: the connection came */
    bool in_eof;      /* stdin ended (or is not read) */
    bool net_eof;     /* single mode: the peer ended its side (or it is not read) */
    bool in_tty;      /* stdin is a terminal */
    bool out_full;
    bool ending, woken;
    int status;    /* exit status so far */
    unsigned live; /* streams and connections not yet closed */
    /* stdin read while no client was there (-k): given to the next one. */
    unsigned char *held;
    size_t nheld;
    uint64_t start_ms, quit_due_ms;
    uint64_t closed_in, closed_out; /* bytes of connections that closed */
    struct ticker *ticker;
    struct iocp_task tick_task;
    atomic_bool tick_posted;
    bool progress_tty, progress_shown;
    uint64_t progress_ms, progress_bytes;
    struct stdfd sin, sout;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static bool uses_stdout(const struct bridge *b)
{
    return b->cfg.mode != BRIDGE_BROKER && !b->cfg.send_only;
}

static bool uses_stdin(const struct bridge *b)
{
    return b->cfg.mode != BRIDGE_BROKER && !b->cfg.recv_only;
}

static void wake_if_done(struct bridge *b)
{
    if (b->ending && b->live == 0 && !b->woken) {
        b->woken = true;
        stop_wake();
    }
}

/* Read stdin only while someone can take what it gives. */
static void update_stdin(struct bridge *b)
{
    if (!b->in || b->ending)
        return;
    if (!b->in_eof && b->nready > 0 && b->full_peers == 0)
        iocp_conn_resume(b->in);
    else
        iocp_conn_pause(b->in);
}

/* Read a socket only while its data has somewhere to go. */
static void update_peer(struct bridge *b, struct peer *p)
{
    bool want = true;
    if (b->cfg.mode == BRIDGE_BROKER)
        want = b->full_peers == 0;
    else if (uses_stdout(b))
        want = !b->out_full;
    if (want)
        iocp_conn_resume(p->c);
    else
        iocp_conn_pause(p->c);
}

static void update_peers(struct bridge *b)
{
    for (struct peer *p = b->peers, *next; p; p = next) {
        next = p->next;
        update_peer(b, p);
    }
}

/* ---- sending to a peer ---- */

/* Queue data for p: as it is, or sealed into frames of p's channel (each
 * peer has keys of its own, so each gets frames of its own). */
static void peer_send(struct bridge *b, struct peer *p, const void *data, size_t len)
{
    if (!p->sec) {
        iocp_conn_send(p->c, data, len); /* a closing peer refuses: fine */
        return;
    }
    const unsigned char *in = data;
    while (len > 0) {
        size_t chunk = len < SEAL_CHUNK ? len : SEAL_CHUNK;
        int n = secure_seal(p->sec, in, chunk, b->sealed, SEAL_BOUND);
        /* A failed or finished channel takes nothing more: it is closing. */
        if (n <= 0)
            return;
        iocp_conn_send(p->c, b->sealed, (size_t)n);
        in += chunk;
        len -= chunk;
    }
}

/* End our direction to p for the channel: its FINAL frame, once.  Only a
 * ready peer has a direction to end; a plain one has nothing to seal. */
static void peer_seal_final(struct peer *p)
{
    if (!p->ready || p->ended_out)
        return;
    p->ended_out = true;
    if (!p->sec)
        return;
    unsigned char fin[SECURE_FRAME_OVERHEAD];
    int n = secure_finish(p->sec, fin, sizeof fin);
    if (n > 0)
        iocp_conn_send(p->c, fin, (size_t)n);
}

/* Half-close towards p: the FINAL frame, then the TCP shutdown once
 * everything queued has gone. */
static void peer_shutdown(struct peer *p)
{
    peer_seal_final(p);
    iocp_conn_shutdown(p->c);
}

/*
 * finish(b, status):
 * Begin the end of the tool with exit status `status` (the first non-zero
 * status sticks).  Everything closes gracefully; the main thread is woken
 * when the last stream or connection has closed.
 */
static void finish(struct bridge *b, int status)
{
    if (status && !b->status)
        b->status = status;
    if (b->ending)
        return;
    b->ending = true;
    if (b->server)
        iocp_server_stop(b->server);
    if (b->in)
        iocp_conn_close(b->in, IOCP_CLOSE_GRACEFUL);
    for (struct peer *p = b->peers, *next; p; p = next) {
        next = p->next;
        /* A clean end ends each channel's direction, as the FIN does for a
         * plain peer; after an error the peer must see a cut stream, so
         * that nothing short passes for complete. */
        if (!b->status)
            peer_seal_final(p);
        iocp_conn_close(p->c, IOCP_CLOSE_GRACEFUL);
    }
    /* Closing stdout is how the program reading it sees the end. */
    if (b->out && iocp_conn_shutdown(b->out) < 0)
        iocp_conn_close(b->out, IOCP_CLOSE_GRACEFUL);
    wake_if_done(b);
}

/* ---- stdin ---- */

static void send_to_peers(struct bridge *b, struct peer *except, const void *data, size_t len)
{
    for (struct peer *p = b->peers, *next; p; p = next) {
        next = p->next;
        if (p != except && p->ready)
            peer_send(b, p, data, len);
    }
}

static void in_open(struct iocp_conn *c)
{
    struct bridge *b = iocp_conn_data(c);
    b->in = c;
    if (b->ending) {
        iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
        return;
    }
    update_stdin(b);
}

static void in_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct bridge *b = iocp_conn_data(c);
    if (b->ending)
        return;
    if (b->nready == 0) {
        /* Read just before the last client left: keep it for the next
         * ready one. */
        unsigned char *grown = realloc(b->held, b->nheld + len);
        if (!grown) {
            diag_error("%s: stdin: %s", b->cfg.cmd, iocp_strerror(IOCP_ENOMEM));
            finish(b, EXIT_RUNTIME);
            return;
        }
        memcpy(grown + b->nheld, data, len);
        b->held = grown;
        b->nheld += len;
        return;
    }
    send_to_peers(b, NULL, data, len);
}

static void in_eof(struct iocp_conn *c)
{
    struct bridge *b = iocp_conn_data(c);
    b->in_eof = true;
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
    if (b->ending)
        return;
    diag_info(2, "%s: stdin: end of input", b->cfg.cmd);
    /* Both directions are over: the end (closing the connection sends what
     * is queued, then the FIN).  --send-only never waits for the peer. */
    if (b->cfg.mode == BRIDGE_SINGLE && (b->net_eof || b->cfg.send_only)) {
        finish(b, 0);
        return;
    }
    if (b->cfg.quit_ms == 0) {
        finish(b, 0);
        return;
    }
    if (!b->cfg.no_shutdown) {
        /* A peer not ready yet is shut down when it becomes ready. */
        for (struct peer *p = b->peers, *next; p; p = next) {
            next = p->next;
            if (p->ready)
                peer_shutdown(p);
        }
    }
    if (b->cfg.quit_ms > 0)
        b->quit_due_ms = now_ms() + (uint64_t)b->cfg.quit_ms;
}

static void in_close(struct iocp_conn *c, int status)
{
    struct bridge *b = iocp_conn_data(c);
    b->in = NULL;
    b->live--;
    stdfd_restore(0, &b->sin);
    if (status < 0 && status != IOCP_ECANCELED && !b->ending) {
        diag_error("%s: stdin: %s", b->cfg.cmd, iocp_strerror(status));
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
    struct bridge *b = iocp_conn_data(c);
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
    struct bridge *b = iocp_conn_data(c);
    b->out_full = full;
    update_peers(b);
}

static void out_close(struct iocp_conn *c, int status)
{
    struct bridge *b = iocp_conn_data(c);
    b->out = NULL;
    b->out_full = false;
    b->live--;
    stdfd_release_stdout(&b->sout);
    if (status < 0 && status != IOCP_ECANCELED) {
        if (!b->status)
            diag_error("%s: stdout: %s", b->cfg.cmd, iocp_strerror(status));
        finish(b, EXIT_RUNTIME);
    }
    if (!b->ending)
        update_peers(b);
    wake_if_done(b);
}

static const struct iocp_conn_handler out_handler = {
    .on_open = out_open,
    .on_data = out_data,
    .on_pressure = out_pressure,
    .on_close = out_close,
};

/* ---- the network side ---- */

static struct peer *peer_of(struct iocp_conn *c)
{
    struct peer *p = iocp_conn_data(c);
    return p && p->tag == TAG_PEER ? p : NULL;
}

static void hs_add(struct bridge *b, struct peer *p)
{
    p->in_hs = true;
    p->hs_prev = b->hs_tail;
    p->hs_next = NULL;
    if (b->hs_tail)
        b->hs_tail->hs_next = p;
    else
        b->hs_head = p;
    b->hs_tail = p;
}

static void hs_remove(struct bridge *b, struct peer *p)
{
    if (!p->in_hs)
        return;
    if (p->hs_prev)
        p->hs_prev->hs_next = p->hs_next;
    else
        b->hs_head = p->hs_next;
    if (p->hs_next)
        p->hs_next->hs_prev = p->hs_prev;
    else
        b->hs_tail = p->hs_prev;
    p->in_hs = false;
}

/*
 * Data may go to p from now on: give it what stdin read while nobody could
 * take it, end its direction at once if stdin has ended already, and let
 * stdin flow.
 */
static void peer_ready(struct bridge *b, struct peer *p)
{
    p->ready = true;
    b->nready++;
    if (b->nheld) {
        peer_send(b, p, b->held, b->nheld);
        free(b->held);
        b->held = NULL;
        b->nheld = 0;
    }
    /* Input already ended: tell a late client at once. */
    if (b->in_eof && uses_stdin(b) && !b->cfg.no_shutdown)
        peer_shutdown(p);
    update_stdin(b);
}

/*
 * peer_fail(p, why):
 * p's channel failed or timed out: say why (always: it may be an attack),
 * send our Confirm if it has not left yet, so that a peer with another key
 * reports the wrong key rather than a closed connection, and close.  With
 * one connection that ends the tool with status 1; with many, only p goes.
 * Nothing p sends after this is looked at.
 */
static void peer_fail(struct peer *p, const char *why)
{
    struct bridge *b = p->b;
    diag_error("%s: %s: %s", b->cfg.cmd, p->name, why);
    p->failed = true;
    hs_remove(b, p);
    if (p->sec) {
        size_t n;
        const void *hs = secure_handshake_out(p->sec, &n);
        if (hs)
            iocp_conn_send(p->c, hs, n);
    }
    if (p->ready) {
        /* What stdin gives now waits for another peer instead. */
        p->ready = false;
        b->nready--;
    }
    if (b->cfg.mode == BRIDGE_SINGLE) {
        finish(b, EXIT_RUNTIME);
        return;
    }
    iocp_conn_close(p->c, IOCP_CLOSE_GRACEFUL);
    update_stdin(b);
}

static void peer_open(struct iocp_conn *c, bool accepted)
{
    struct bridge *b = iocp_conn_data(c);
    if (accepted)
        b->live++;
    else
        b->connecting = false;
    if (b->ending || (b->cfg.mode == BRIDGE_SINGLE && b->opened_once)) {
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    struct peer *p = calloc(1, sizeof *p);
    if (!p) {
        diag_error("%s: %s", b->cfg.cmd, iocp_strerror(IOCP_ENOMEM));
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    p->tag = TAG_PEER;
    p->b = b;
    p->c = c;
    iocp_conn_peer(c, p->name, sizeof p->name);
    p->next = b->peers;
    if (b->peers)
        b->peers->prev = p;
    b->peers = p;
    b->npeers++;
    iocp_conn_set_data(c, p);
    diag_info(1, "%s: %s %s", b->cfg.cmd, accepted ? "connection from" : "connected to", p->name);

    if (b->cfg.mode == BRIDGE_SINGLE) {
        b->opened_once = true;
        if (b->server)
            iocp_server_stop(b->server);
    }
    if (b->cfg.idle_ms)
        iocp_conn_set_idle_timeout(c, b->cfg.idle_ms);
    if (b->cfg.key) {
        /* Our Hello goes at once; the peer is ready when its Confirm
         * checks (peer_data), or closed by the ticker if it never does. */
        p->open_ms = now_ms();
        int rc = secure_new(&p->sec, accepted ? SECURE_SERVER : SECURE_CLIENT, b->cfg.key);
        if (rc < 0) {
            peer_fail(p, secure_strerror(rc));
            return;
        }
        size_t n;
        const void *hello = secure_handshake_out(p->sec, &n);
        iocp_conn_send(c, hello, n);
        hs_add(b, p);
    } else {
        peer_ready(b, p);
    }
    update_peer(b, p);
    update_stdin(b);
}

static void server_open(struct iocp_conn *c)
{
    peer_open(c, true);
}

static void client_open(struct iocp_conn *c)
{
    peer_open(c, false);
}

/* What p sent, in plaintext (a secure_plain_cb when p is encrypted). */
static void peer_plain(void *arg, const void *data, size_t len)
{
    struct peer *p = arg;
    struct bridge *b = p->b;
    if (b->cfg.mode == BRIDGE_BROKER)
        send_to_peers(b, p, data, len);
    else if (uses_stdout(b) && b->out)
        iocp_conn_send(b->out, data, len);
}

/* p's direction towards us ended: its TCP EOF, or its FINAL frame. */
static void peer_input_ended(struct peer *p)
{
    struct bridge *b = p->b;
    diag_info(2, "%s: %s: end of input", b->cfg.cmd, p->name);
    if (b->cfg.mode != BRIDGE_SINGLE) {
        /* A client of many is done: send it what is queued and the end
         * of our direction, then close it.  stdout stays open for the
         * others. */
        peer_seal_final(p);
        iocp_conn_close(p->c, IOCP_CLOSE_GRACEFUL);
        return;
    }
    if (b->cfg.send_only)
        return; /* what the peer sends does not matter: go on sending */
    b->net_eof = true;
    /* The program reading our stdout gets its EOF now. */
    if (b->out && iocp_conn_shutdown(b->out) < 0)
        iocp_conn_close(b->out, IOCP_CLOSE_GRACEFUL);
    /*
     * The peer's EOF says it has nothing more to send, not that it stopped
     * reading: what stdin still has to give is sent, and the tool ends at
     * stdin EOF.  Ending here would cut short an upload to a peer whose own
     * stdin was empty (a receiver started with </dev/null, as background
     * jobs are).  A terminal is the exception: nobody waits for the rest of
     * what a person may type, so the tool ends at once.
     */
    if (b->in_eof || b->in_tty)
        finish(b, 0);
}

static void peer_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct peer *p = peer_of(c);
    if (!p || p->failed)
        return;
    struct bridge *b = p->b;
    if (b->ending)
        return;
    if (!p->sec) {
        peer_plain(p, data, len);
        return;
    }
    /* Only authenticated plaintext reaches peer_plain: a frame is checked
     * whole before any byte of it is delivered. */
    int ev = secure_feed(p->sec, data, len, peer_plain, p);
    if (ev < 0) {
        peer_fail(p, secure_strerror(ev));
        return;
    }
    if (ev & SECURE_EV_SEND) {
        size_t n;
        const void *confirm = secure_handshake_out(p->sec, &n);
        if (confirm)
            iocp_conn_send(c, confirm, n);
    }
    if (ev & SECURE_EV_OPEN) {
        hs_remove(b, p);
        diag_info(2, "%s: %s: encrypted channel open", b->cfg.cmd, p->name);
        peer_ready(b, p);
    }
    if (ev & SECURE_EV_END)
        peer_input_ended(p);
}

static void peer_eof(struct iocp_conn *c)
{
    struct peer *p = peer_of(c);
    if (!p || p->failed)
        return;
    struct bridge *b = p->b;
    if (b->ending)
        return;
    if (p->sec) {
        /* The real end was the FINAL frame (SECURE_EV_END, handled when it
         * came); a TCP EOF without it is a cut, never an end. */
        int r = secure_eof(p->sec);
        if (r < 0)
            peer_fail(p, secure_strerror(r));
        return;
    }
    peer_input_ended(p);
}

static void peer_pressure(struct iocp_conn *c, bool full)
{
    struct peer *p = peer_of(c);
    if (!p || p->full == full)
        return;
    struct bridge *b = p->b;
    p->full = full;
    if (full)
        b->full_peers++;
    else
        b->full_peers--;
    update_stdin(b);
    if (b->cfg.mode == BRIDGE_BROKER)
        update_peers(b);
}

static void peer_close(struct iocp_conn *c, int status, bool accepted)
{
    struct peer *p = peer_of(c);
    if (!p) {
        /* Never opened: a failed connect, or a connection turned away. */
        struct bridge *b = iocp_conn_data(c);
        b->live--;
        if (!accepted) {
            b->connecting = false;
            if (!b->ending) {
                diag_error("%s: %s: %s", b->cfg.cmd, b->target,
                           status < 0 ? iocp_strerror(status) : "connection closed");
                finish(b, EXIT_RUNTIME);
            }
        }
        wake_if_done(b);
        return;
    }
    struct bridge *b = p->b;
    if (p->prev)
        p->prev->next = p->next;
    else
        b->peers = p->next;
    if (p->next)
        p->next->prev = p->prev;
    b->npeers--;
    if (p->ready)
        b->nready--;
    hs_remove(b, p);
    secure_free(p->sec);
    if (p->full)
        b->full_peers--;
    b->live--;
    b->closed_in += iocp_conn_bytes_in(c);
    b->closed_out += iocp_conn_bytes_out(c);

    char why[128];
    if (status == IOCP_ETIMEDOUT && b->cfg.idle_ms)
        snprintf(why, sizeof why, "idle timeout expired (%u ms)", b->cfg.idle_ms);
    else
        snprintf(why, sizeof why, "%s", iocp_strerror(status));
    bool failed = status < 0 && status != IOCP_ECANCELED;
    if (b->cfg.mode == BRIDGE_SINGLE) {
        if (failed && !b->status)
            diag_error("%s: %s: %s", b->cfg.cmd, p->name, why);
        finish(b, failed ? EXIT_RUNTIME : 0);
    } else if (failed) {
        diag_info(1, "%s: %s: %s", b->cfg.cmd, p->name, why);
    } else {
        diag_info(2, "%s: %s: closed", b->cfg.cmd, p->name);
    }
    free(p);
    if (!b->ending) {
        update_stdin(b);
        if (b->cfg.mode == BRIDGE_BROKER)
            update_peers(b);
    }
    wake_if_done(b);
}

static void server_close(struct iocp_conn *c, int status)
{
    peer_close(c, status, true);
}

static void client_close(struct iocp_conn *c, int status)
{
    peer_close(c, status, false);
}

const struct iocp_conn_handler bridge_server_handler = {
    .on_open = server_open,
    .on_data = peer_data,
    .on_eof = peer_eof,
    .on_pressure = peer_pressure,
    .on_close = server_close,
};

const struct iocp_conn_handler bridge_client_handler = {
    .on_open = client_open,
    .on_data = peer_data,
    .on_eof = peer_eof,
    .on_pressure = peer_pressure,
    .on_close = client_close,
};

/* ---- timers: -q and --progress ---- */

static void totals(const struct bridge *b, uint64_t *in, uint64_t *out)
{
    *in = b->closed_in;
    *out = b->closed_out;
    for (const struct peer *p = b->peers; p; p = p->next) {
        *in += iocp_conn_bytes_in(p->c);
        *out += iocp_conn_bytes_out(p->c);
    }
}

static const char *human(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)n;
    unsigned u = 0;
    while (v >= 1024.0 && u < 4) {
        v /= 1024.0;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
    return buf;
}

static void show_progress(struct bridge *b, uint64_t now)
{
    uint64_t in, out;
    totals(b, &in, &out);
    uint64_t dt = now - b->progress_ms;
    uint64_t moved = in + out - b->progress_bytes;
    char sent[32], recvd[32], rate[32];
    human(out, sent, sizeof sent);
    human(in, recvd, sizeof recvd);
    human(dt ? moved * 1000u / dt : 0, rate, sizeof rate);
    uint64_t secs = (now - b->start_ms) / 1000u;
    /* One write per line; \r and the erase-to-end keep it on one row. */
    fprintf(stderr, "\riocptool: %s sent, %s received, %s/s, %" PRIu64 ":%02u\033[K", sent, recvd,
            rate, secs / 60u, (unsigned)(secs % 60u));
    fflush(stderr);
    b->progress_shown = true;
    b->progress_ms = now;
    b->progress_bytes = in + out;
}

static void on_tick(struct iocp_task *task)
{
    struct bridge *b = task->arg;
    atomic_store(&b->tick_posted, false);
    uint64_t now = now_ms();
    if (b->quit_due_ms && !b->ending && now >= b->quit_due_ms) {
        diag_info(2, "%s: %d ms after end of input: quitting", b->cfg.cmd, b->cfg.quit_ms);
        finish(b, 0);
    }
    if (b->progress_tty && now - b->progress_ms >= PROGRESS_MS)
        show_progress(b, now);
    /* The queue is oldest first, so only expired handshakes are visited:
     * however many clients are in their handshake, a tick costs one
     * comparison for them. */
    while (b->hs_head && !b->ending && now - b->hs_head->open_ms >= SECURE_HANDSHAKE_TIMEOUT_MS)
        peer_fail(b->hs_head, "handshake timed out");
}

/* On the ticker's thread: hand the tick to the worker, once at a time. */
static void tick(void *arg)
{
    struct bridge *b = arg;
    if (atomic_exchange(&b->tick_posted, true))
        return;
    if (iocp_engine_post(b->e, 0, &b->tick_task) < 0)
        atomic_store(&b->tick_posted, false);
}

/* ---- life ---- */

int bridge_new(struct bridge **out, struct iocp_engine *e, const struct bridge_config *cfg)
{
    struct bridge *b = calloc(1, sizeof *b);
    if (!b)
        return IOCP_ENOMEM;
    b->tag = TAG_BRIDGE;
    b->cfg = *cfg;
    b->e = e;
    b->tick_task.fn = on_tick;
    b->tick_task.arg = b;
    atomic_init(&b->tick_posted, false);
    b->sin.flags = b->sout.flags = -1;
    b->start_ms = b->progress_ms = now_ms();
    if (cfg->key && !(b->sealed = malloc(SEAL_BOUND))) {
        free(b);
        return IOCP_ENOMEM;
    }
    *out = b;
    return 0;
}

void bridge_set_server(struct bridge *b, struct iocp_server *s)
{
    b->server = s;
}

void bridge_connecting(struct bridge *b, const char *target)
{
    snprintf(b->target, sizeof b->target, "%s", target);
    b->connecting = true;
    b->live++;
}

/* A handle on fd (0 or 1) for a stream: 1 if fd is not open (nothing to
 * bridge), -1 on error. */
static int dup_stdio(struct bridge *b, int fd, struct stdfd *s, iocp_socket_t *dup)
{
    int rc = stdfd_take(fd, s, dup);
    if (rc < 0) {
        diag_error("%s: %s: %s", b->cfg.cmd, fd ? "stdout" : "stdin", iocp_strerror(rc));
        return -1;
    }
    return rc;
}

static int open_stdio(struct bridge *b, int fd, iocp_socket_t dup)
{
    struct iocp_pipe_config pcfg = {
        .handle = dup,
        .worker = 0,
        .readable = fd == 0,
        .handler = fd == 0 ? &in_handler : &out_handler,
        .data = b,
    };
    int rc = iocp_pipe_open(b->e, &pcfg);
    if (rc < 0) {
        stdfd_close(dup);
        diag_error("%s: %s: %s", b->cfg.cmd, fd ? "stdout" : "stdin", iocp_strerror(rc));
    }
    return rc;
}

int bridge_start(struct bridge *b)
{
    /* Everything the worker reads is set before the first stream is
     * handed to it: from then on only the worker touches the bridge. */
    iocp_socket_t in_fd = IOCP_INVALID_SOCKET, out_fd = IOCP_INVALID_SOCKET;
    if (uses_stdout(b) && dup_stdio(b, 1, &b->sout, &out_fd) < 0)
        return -1;
    if (uses_stdin(b)) {
        int rc = dup_stdio(b, 0, &b->sin, &in_fd);
        if (rc < 0) {
            if (out_fd != IOCP_INVALID_SOCKET)
                stdfd_close(out_fd);
            return -1;
        }
        if (rc > 0)
            b->in_eof = true;
        b->in_tty = rc == 0 && stdfd_isatty(0);
    } else {
        b->in_eof = true;
    }
    if (b->cfg.send_only)
        b->net_eof = true;
    b->progress_tty = b->cfg.progress && stdfd_isatty(2);
    b->live += (out_fd != IOCP_INVALID_SOCKET) + (in_fd != IOCP_INVALID_SOCKET);
    if (out_fd != IOCP_INVALID_SOCKET && open_stdio(b, 1, out_fd) < 0) {
        if (in_fd != IOCP_INVALID_SOCKET)
            stdfd_close(in_fd);
        return -1;
    }
    if (in_fd != IOCP_INVALID_SOCKET && open_stdio(b, 0, in_fd) < 0)
        return -1;
    /* The ticker also bounds the handshakes of the encrypted channel. */
    bool timers = b->cfg.quit_ms > 0 || b->progress_tty || b->cfg.key;
    if (timers && ticker_start(&b->ticker, TICK_MS, tick, b) < 0) {
        diag_error("%s: cannot start the timer thread", b->cfg.cmd);
        return -1;
    }
    return 0;
}

void bridge_stop_ticker(struct bridge *b)
{
    ticker_stop(b->ticker);
    b->ticker = NULL;
}

int bridge_end(struct bridge *b, int sig)
{
    bridge_stop_ticker(b);
    if (b->progress_shown) {
        show_progress(b, now_ms());
        fputc('\n', stderr);
    }
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    int status = b->status;
    if (sig && !b->woken) {
        diag_info(1, "%s: stopped by a signal", b->cfg.cmd);
        /* -k and --broker end this way; a single transfer was cut short. */
        if (b->cfg.mode == BRIDGE_SINGLE)
            status = EXIT_RUNTIME;
    }
    if (diag_verbosity >= 1) {
        uint64_t in, out;
        totals(b, &in, &out);
        double secs = (double)(now_ms() - b->start_ms) / 1000.0;
        diag_info(1, "%s: %" PRIu64 " bytes sent, %" PRIu64 " bytes received in %.2f seconds",
                  b->cfg.cmd, out, in, secs);
    }
    return status;
}

void bridge_free(struct bridge *b)
{
    if (!b)
        return;
    bridge_stop_ticker(b);
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    free(b->held);
    free(b->sealed);
    free(b);
}

/* ---- the shared options ---- */

const char bridge_options_help[] =
    "  -q, --quit-after S     end S seconds after end of input on stdin\n"
    "  -i, --idle-timeout S   close a connection idle (no byte either way) for S seconds\n"
    "      --send-only        only send stdin; discard what the peer sends\n"
    "      --recv-only        only receive to stdout; never read stdin\n"
    "      --no-shutdown      do not half-close the connection at end of stdin\n"
    "      --progress         show bytes, rate and time on stderr (if it is a terminal)\n"
    "      --key FILE         encrypt and authenticate the connection with the\n"
    "                         pre-shared key in FILE (made by iocptool keygen)\n"
    "  -v, --verbose          say more on stderr (-vv: more still)\n";

int bridge_option(struct bridge_config *cfg, int opt, const char *arg)
{
    unsigned ms;
    switch (opt) {
    case 'q':
        if (!opt_seconds(cfg->cmd, "-q", arg, &ms))
            return -1;
        cfg->quit_ms = (int)ms;
        return 1;
    case 'i':
        if (!opt_seconds(cfg->cmd, "-i", arg, &ms))
            return -1;
        if (ms == 0) {
            diag_error("%s: -i %s: too small (the idle time-out must be positive)", cfg->cmd, arg);
            return -1;
        }
        cfg->idle_ms = ms;
        return 1;
    case BRIDGE_OPT_SEND_ONLY:
        cfg->send_only = true;
        return 1;
    case BRIDGE_OPT_RECV_ONLY:
        cfg->recv_only = true;
        return 1;
    case BRIDGE_OPT_NO_SHUTDOWN:
        cfg->no_shutdown = true;
        return 1;
    case BRIDGE_OPT_PROGRESS:
        cfg->progress = true;
        return 1;
    case BRIDGE_OPT_KEY:
        /* Loaded by the subcommand once every option is known, so that a
         * usage error is reported before the key file is even read. */
        cfg->key_file = arg;
        return 1;
    case 'v':
        diag_verbosity++;
        return 1;
    default:
        return 0;
    }
}

int bridge_conflicts(const struct bridge_config *cfg)
{
    const char *cmd = cfg->cmd;
    int n = 0;
    if (cfg->send_only && cfg->recv_only) {
        diag_error("%s: --send-only and --recv-only exclude each other", cmd);
        n++;
    }
    if (cfg->send_only && cfg->no_shutdown && cfg->mode == BRIDGE_SINGLE) {
        diag_error("%s: --no-shutdown: --send-only closes the connection at end of input", cmd);
        n++;
    }
    if (cfg->recv_only && cfg->quit_ms >= 0) {
        diag_error("%s: -q: --recv-only never reads stdin, so it never ends", cmd);
        n++;
    }
    if (cfg->mode == BRIDGE_BROKER) {
        static const char *const what[] = {"--send-only", "--recv-only", "--no-shutdown", "-q"};
        bool set[] = {cfg->send_only, cfg->recv_only, cfg->no_shutdown, cfg->quit_ms >= 0};
        for (unsigned i = 0; i < 4; i++) {
            if (set[i]) {
                diag_error("%s: %s: --broker does not use stdin or stdout", cmd, what[i]);
                n++;
            }
        }
    }
    return n;
}
