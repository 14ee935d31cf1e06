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
 * Each connection is a leg (leg.h), with the channel of secure.h under
 * --key.  A peer is "ready" once data may go to it: at once when plain,
 * when the channel opens otherwise.  Until then nothing is sent to it but
 * the handshake: stdin is read for ready peers only, what stdin gave while
 * no peer was ready waits for the first one, and a half-close waits for
 * the channel too.  So a client that stalls its handshake gets nothing and
 * holds nobody up (-k); its leg fails it at the handshake deadline.  A
 * direction ends with the channel's FINAL frame before the TCP shutdown,
 * and a clean end of the tool sends the FINAL frames it still owes, so
 * that only a real end looks like one to the peer; an error ends without
 * them, and the peer reports the cut.
 *
 * -q and --progress are library timers on worker 0.
 */
#include "bridge.h"

#include "capture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "acl.h"
#include "diag.h"
#include "leg.h"
#include "netcompat.h"
#include "opts.h"
#include "stdfd.h"
#include "stop.h"

/* A connection's user data is the bridge until it opens, then its peer. */
enum { TAG_BRIDGE = 0x62726467, TAG_PEER = 0x70656572 };

/* How often the --progress line is redrawn. */
#define PROGRESS_MS 1000u

struct peer {
    uint32_t tag;
    struct bridge *b;
    struct leg leg;
    struct peer *prev, *next;
    char name[64];
    bool full;  /* its send queue is above the high watermark */
    bool ready; /* counted in the bridge's nready: stdin goes to it */
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
    unsigned nready;  /* peers that data may be sent to */
    bool opened_once; /* single mode: the connection came */
    bool in_eof;      /* stdin ended (or is not read) */
    bool net_eof;     /* single mode: the peer ended its side (or it is not read) */
    bool in_tty;      /* stdin is a terminal */
    bool out_full;
    bool out_live; /* the stdout stream was opened and has not closed yet */
    bool ending, woken;
    /* A stop signal asked for an orderly end (bridge_interrupt()): nothing
     * more is accepted or read, what was received is written, the
     * connections are reset. */
    bool interrupted;
    int interrupt_status;
    struct iocp_task interrupt_task, cut_task;
    int status;    /* exit status so far */
    unsigned live; /* streams and connections not yet closed */
    /* stdin read while no client was there (-k): given to the next one. */
    unsigned char *held;
    size_t nheld;
    uint64_t start_ms;
    uint64_t closed_in, closed_out;    /* bytes of connections that closed */
    struct iocp_timer *quit_timer;     /* -q: armed at stdin EOF */
    struct iocp_timer *progress_timer; /* --progress on a terminal */
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
    /* After a stop signal only stdout is waited for: the connections are
     * reset, and a connect still under way has nothing to give. */
    bool done = b->live == 0 || (b->interrupted && !b->out_live);
    if (b->ending && done && !b->woken) {
        b->woken = true;
        stop_wake();
    }
}

/* Read stdin only while someone can take what it gives. */
static void update_stdin(struct bridge *b)
{
    if (!b->in || b->ending || b->interrupted)
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
    if (b->interrupted)
        want = false; /* a stop signal: nothing more is read */
    else if (b->cfg.mode == BRIDGE_BROKER)
        want = b->full_peers == 0;
    else if (uses_stdout(b))
        want = !b->out_full;
    if (want)
        iocp_conn_resume(p->leg.c);
    else
        iocp_conn_pause(p->leg.c);
}

static void update_peers(struct bridge *b)
{
    for (struct peer *p = b->peers, *next; p; p = next) {
        next = p->next;
        update_peer(b, p);
    }
}

/* ---- sending to a peer ---- */

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
            leg_finish(&p->leg);
        /* A transfer cut by a signal is cut for the peer too. */
        iocp_conn_close(p->leg.c, b->interrupted ? IOCP_CLOSE_ABORT : IOCP_CLOSE_GRACEFUL);
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
        /* Each peer seals with keys of its own: frames of its own.  A
         * closing peer refuses: fine. */
        if (p != except && p->ready)
            leg_send(&p->leg, data, len);
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
                leg_shutdown(&p->leg);
        }
    }
    if (b->cfg.quit_ms > 0 && b->quit_timer)
        iocp_timer_start(b->quit_timer, (unsigned)b->cfg.quit_ms, 0);
}

static void in_close(struct iocp_conn *c, int status)
{
    struct bridge *b = iocp_conn_data(c);
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
    b->out_live = false;
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

/*
 * Data may go to p from now on (its leg is ready): give it what stdin read
 * while nobody could take it, end its direction at once if stdin has ended
 * already, and let stdin flow.
 */
/* With --accept-proxy: the client is who its header says, and the access
 * list judges that address.  false when p is turned away. */
static bool peer_admitted(struct bridge *b, struct peer *p)
{
    if (leg_proxied(&p->leg)) {
        char via[sizeof p->name];
        snprintf(via, sizeof via, "%s", p->name);
        leg_client(&p->leg, p->name, sizeof p->name);
        diag_info(1, "%s: %s: through %s (PROXY header)", b->cfg.cmd, p->name, via);
    }
    if (!b->cfg.acl)
        return true;
    struct sockaddr_storage ss;
    if (leg_client_sockaddr(&p->leg, &ss, sizeof ss) &&
        acl_admits(b->cfg.acl, (const struct sockaddr *)&ss))
        return true;
    diag_info(1, "%s: %s: denied by --allow/--deny", b->cfg.cmd, p->name);
    leg_refuse(&p->leg);
    iocp_conn_close(p->leg.c, IOCP_CLOSE_ABORT);
    return false;
}

static void peer_ready(void *arg)
{
    struct peer *p = arg;
    struct bridge *b = p->b;
    if (b->cfg.accept_proxy && !peer_admitted(b, p))
        return;
    if (p->leg.ch.ops) {
        char note[32];
        diag_info(2, "%s: %s: encrypted channel open%s", b->cfg.cmd, p->name,
                  channel_cipher_note(&p->leg.ch, note, sizeof note));
    }
    p->ready = true;
    b->nready++;
    if (b->nheld) {
        leg_send(&p->leg, b->held, b->nheld);
        free(b->held);
        b->held = NULL;
        b->nheld = 0;
    }
    /* Input already ended: tell a late client at once. */
    if (b->in_eof && uses_stdin(b) && !b->cfg.no_shutdown)
        leg_shutdown(&p->leg);
    update_stdin(b);
}

/*
 * p's leg failed (its channel, or the handshake deadline): say why
 * (always: it may be an attack) and close; the leg has queued our Confirm
 * if it had not left yet, so that a peer with another key reports the
 * wrong key rather than a closed connection.  With one connection that
 * ends the tool with status 1; with many, only p goes.  An end already
 * under way is left alone.
 */
static void peer_failed(void *arg, const char *why)
{
    struct peer *p = arg;
    struct bridge *b = p->b;
    if (b->ending)
        return;
    diag_error("%s: %s: %s", b->cfg.cmd, p->name, why);
    if (p->ready) {
        /* What stdin gives now waits for another peer instead. */
        p->ready = false;
        b->nready--;
    }
    if (b->cfg.mode == BRIDGE_SINGLE) {
        finish(b, EXIT_RUNTIME);
        return;
    }
    iocp_conn_close(p->leg.c, IOCP_CLOSE_GRACEFUL);
    update_stdin(b);
}

/* What p sent, in plaintext (authenticated when p is encrypted). */
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
static void peer_input_ended(void *arg)
{
    struct peer *p = arg;
    struct bridge *b = p->b;
    diag_info(2, "%s: %s: end of input", b->cfg.cmd, p->name);
    if (b->cfg.mode != BRIDGE_SINGLE) {
        /* A client of many is done: send it what is queued and the end
         * of our direction, then close it.  stdout stays open for the
         * others. */
        leg_finish(&p->leg);
        iocp_conn_close(p->leg.c, IOCP_CLOSE_GRACEFUL);
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

static const struct leg_events peer_events = {
    .plain = peer_plain,
    .ready = peer_ready,
    .ended = peer_input_ended,
    .failed = peer_failed,
};

static void peer_open(struct iocp_conn *c, bool accepted)
{
    struct bridge *b = iocp_conn_data(c);
    if (accepted)
        b->live++;
    else
        b->connecting = false;
    if (b->ending || b->interrupted || (b->cfg.mode == BRIDGE_SINGLE && b->opened_once)) {
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
    p->leg.c = c;
    iocp_conn_peer(c, p->name, sizeof p->name);
    p->next = b->peers;
    if (b->peers)
        b->peers->prev = p;
    b->peers = p;
    b->npeers++;
    iocp_conn_set_data(c, p);
    char cred[64];
    diag_info(1, "%s: %s %s%s", b->cfg.cmd, accepted ? "connection from" : "connected to", p->name,
              leg_peer_cred(c, cred, sizeof cred));

    if (b->cfg.mode == BRIDGE_SINGLE) {
        b->opened_once = true;
        if (b->server)
            iocp_server_stop(b->server);
    }
    if (b->cfg.idle_ms)
        iocp_conn_set_idle_timeout(c, b->cfg.idle_ms);
    /* Ready at once when plain; with --key our Hello goes now and the peer
     * is ready when its Confirm checks, or failed at the deadline. */
    struct leg_layer layer = {.key = b->cfg.key,
                              .role = accepted ? CHANNEL_SERVER : CHANNEL_CLIENT,
                              .tls = b->cfg.tls_ctx,
                              .server_name = b->cfg.tls_host,
                              .accept_proxy = accepted && b->cfg.accept_proxy};
    if (leg_start(&p->leg, c, &layer, &peer_events, p) < 0)
        return;
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

static void peer_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct peer *p = peer_of(c);
    if (p && !p->b->ending)
        leg_data(&p->leg, data, len);
}

static void peer_eof(struct iocp_conn *c)
{
    struct peer *p = peer_of(c);
    if (p && !p->b->ending)
        leg_eof(&p->leg);
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
                bool no_unix = status == IOCP_EAFNOSUPPORT && !strncmp(b->target, "unix:", 5);
                /* Through a proxy, the library's detail says which step
                 * failed and why ("SOCKS5: connection refused by the
                 * proxy's target"). */
                const char *detail = b->cfg.via_proxy ? iocp_error_detail() : "";
                diag_error("%s: %s: %s%s", b->cfg.cmd, b->target,
                           no_unix ? "this system has no Unix-domain sockets (Windows needs "
                                     "version 10 1803 or later): "
                                   : "",
                           *detail       ? detail
                           : status < 0 ? iocp_strerror(status)
                                        : "connection closed");
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
    leg_closed(&p->leg);
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
        *in += iocp_conn_bytes_in(p->leg.c);
        *out += iocp_conn_bytes_out(p->leg.c);
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

/* -q: the time after stdin EOF is up. */
static void quit_due(struct iocp_timer *t, void *arg)
{
    (void)t;
    struct bridge *b = arg;
    if (b->ending)
        return;
    diag_info(2, "%s: %d ms after end of input: quitting", b->cfg.cmd, b->cfg.quit_ms);
    finish(b, 0);
}

static void progress_due(struct iocp_timer *t, void *arg)
{
    (void)t;
    show_progress(arg, now_ms());
}

/* The timers the options ask for, on worker 0, not armed yet. */
static int new_timers(struct bridge *b)
{
    int rc = 0;
    if (b->cfg.quit_ms > 0)
        rc = iocp_timer_new(b->e, 0, quit_due, b, &b->quit_timer);
    if (rc == 0 && b->progress_tty)
        rc = iocp_timer_new(b->e, 0, progress_due, b, &b->progress_timer);
    if (rc < 0) {
        diag_error("%s: timers: %s", b->cfg.cmd, iocp_strerror(rc));
        bridge_stop_timers(b);
    }
    return rc;
}

void bridge_stop_timers(struct bridge *b)
{
    /* Freed timers never fire, whatever the thread that frees them. */
    if (b->quit_timer)
        iocp_timer_free(b->quit_timer);
    if (b->progress_timer)
        iocp_timer_free(b->progress_timer);
    b->quit_timer = b->progress_timer = NULL;
}

/* ---- a stop signal ---- */

/* A stop signal, first step: stop accepting and reading.  The reads each
 * connection had already made may still be delivered after its pause; they
 * go to stdout like the rest, and the cut waits for them. */
static void on_interrupt(struct iocp_task *task)
{
    struct bridge *b = task->arg;
    if (b->ending)
        return; /* ending already: its own wake-up comes */
    b->interrupted = true;
    if (!b->status)
        b->status = b->interrupt_status;
    if (b->server)
        iocp_server_stop(b->server);
    if (b->in)
        iocp_conn_close(b->in, IOCP_CLOSE_GRACEFUL);
    for (struct peer *p = b->peers; p; p = p->next)
        iocp_conn_pause(p->leg.c);
    /* Posted now, the task runs after the completions of those reads. */
    if (iocp_engine_post(b->e, 0, &b->cut_task) < 0)
        finish(b, b->status);
}

/* The second step: reset the connections, write out and close stdout. */
static void on_cut(struct iocp_task *task)
{
    struct bridge *b = task->arg;
    finish(b, b->status);
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
    b->sin.flags = b->sout.flags = -1;
    b->start_ms = b->progress_ms = now_ms();
    b->interrupt_task = (struct iocp_task){.fn = on_interrupt, .arg = b};
    b->cut_task = (struct iocp_task){.fn = on_cut, .arg = b};
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
        diag_error("%s: %s: %s", b->cfg.cmd, fd ? "stdout" : "stdin", diag_strerror(rc));
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
    /* The timers exist before the worker sees the bridge (in_eof arms -q). */
    if (new_timers(b) < 0) {
        if (out_fd != IOCP_INVALID_SOCKET)
            stdfd_close(out_fd);
        if (in_fd != IOCP_INVALID_SOCKET)
            stdfd_close(in_fd);
        return -1;
    }
    b->live += (out_fd != IOCP_INVALID_SOCKET) + (in_fd != IOCP_INVALID_SOCKET);
    if (out_fd != IOCP_INVALID_SOCKET && open_stdio(b, 1, out_fd) < 0) {
        if (in_fd != IOCP_INVALID_SOCKET)
            stdfd_close(in_fd);
        return -1;
    }
    b->out_live = out_fd != IOCP_INVALID_SOCKET;
    if (in_fd != IOCP_INVALID_SOCKET && open_stdio(b, 0, in_fd) < 0)
        return -1;
    if (b->progress_timer) {
        int rc = iocp_timer_start(b->progress_timer, PROGRESS_MS, PROGRESS_MS);
        if (rc < 0) {
            diag_error("%s: timers: %s", b->cfg.cmd, iocp_strerror(rc));
            return -1;
        }
    }
    return 0;
}

int bridge_interrupt(struct bridge *b, int sig)
{
    b->interrupt_status = 128 + sig;
    return iocp_engine_post(b->e, 0, &b->interrupt_task) < 0 ? -1 : 0;
}

int bridge_end(struct bridge *b)
{
    /* The engine has stopped: its timers are cancelled, freeing them is safe. */
    bridge_stop_timers(b);
    if (b->progress_shown) {
        show_progress(b, now_ms());
        fputc('\n', stderr);
    }
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    int status = b->status;
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
    bridge_stop_timers(b);
    stdfd_restore(0, &b->sin);
    stdfd_restore(1, &b->sout);
    free(b->held);
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
    "                         pre-shared key in FILE (made by iocptool keygen)\n" CAPTURE_BRIDGE_HELP
    "  -v, --verbose          say more on stderr (-vv: more still)\n";

int bridge_option(struct bridge_config *cfg, int opt, const char *arg)
{
    unsigned ms;
    switch (opt) {
    case CAPTURE_OPT_HEX:
    case CAPTURE_OPT_PCAP:
        return capture_option(cfg->cmd, opt, arg) ? 1 : -1;
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
        return tls_option(&cfg->tls, cfg->cmd, opt, arg);
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
    enum channel_role role = strcmp(cmd, "connect") ? CHANNEL_SERVER : CHANNEL_CLIENT;
    n += tls_conflicts(&cfg->tls, cmd, role, "--tls");
    if (cfg->tls.on && cfg->key_file) {
        diag_error("%s: --tls and --key exclude each other", cmd);
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
