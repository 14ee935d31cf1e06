/* SPDX-License-Identifier: MIT */
/*
 * heartbeat [BEATS [INTERVAL_MS]]: two connections that watch each other.
 *
 * The process listens on a free loopback port and connects to itself.  Each
 * side sends "beat N" every INTERVAL_MS (100) from a repeating timer and
 * arms a deadline timer of three intervals, re-armed by every beat that
 * arrives: a peer that misses three beats is closed.  After BEATS (5) beats
 * the client goes silent, so the server's deadline closes it.  Exit 0 when
 * each side heard the other's beats in order and the silent client was
 * closed by the server's deadline.
 *
 * The timers all run on worker 0, while the connections live elsewhere (the
 * client on worker 1, the server's side on whichever worker accepted it),
 * so a timer never touches a connection pointer: it keeps the connection's
 * ID and reaches it with iocp_conn_post() (to send a beat on the owning
 * worker) or iocp_conn_close_id().  A connection that has gone simply
 * answers IOCP_ENOENT.
 */
#define _POSIX_C_SOURCE 200809L
#include <iocp.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#define MISSED_BEATS 3 /* a peer this many beats late is closed */
#define TIMER_WORKER 0

struct side {
    const char *name, *peer;
    struct iocp_timer *beat, *deadline; /* created and freed by main() */
    _Atomic iocp_conn_id_t id; /* set in on_open; read by the timers */
    /* Worker 0 only (the timers): */
    unsigned asked;            /* beats asked of the connection */
    bool timed_out;            /* the deadline closed the connection */
    /* The connection's worker only: */
    unsigned sent, received, digits;
};

static struct iocp_engine *engine;
static unsigned beats = 5, interval_ms = 100;
static struct side server = {.name = "server", .peer = "client"};
static struct side client = {.name = "client", .peer = "server"};
static atomic_int ends; /* connections ended; the second stops the engine */

static void fail(struct iocp_conn *c, const char *what, int rc)
{
    struct side *s = iocp_conn_data(c);
    printf("heartbeat: %s: %s: %s\n", s->name, what, iocp_strerror(rc));
    iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

/* ---- on the connection's worker ---- */

static void send_beat(struct iocp_conn *c, void *arg, int status)
{
    struct side *s = arg;
    if (status < 0) /* closed after the task was posted */
        return;
    char line[32];
    int n = snprintf(line, sizeof line, "beat %u\n", ++s->sent);
    int rc = iocp_conn_send(c, line, (size_t)n);
    if (rc < 0)
        fail(c, "send", rc);
}

static void on_open(struct iocp_conn *c)
{
    struct side *s = iocp_conn_data(c);
    s->id = iocp_conn_id(c);
    char peer[64];
    printf("heartbeat: %s: connected to %s on worker %u\n", s->name,
           iocp_conn_peer(c, peer, sizeof peer), iocp_conn_worker(c));
    /* Any thread may start a timer; from another worker it is a post. */
    int rc = iocp_timer_start(s->beat, interval_ms, interval_ms);
    if (rc == 0)
        rc = iocp_timer_start(s->deadline, (uint64_t)MISSED_BEATS * interval_ms, 0);
    if (rc < 0)
        fail(c, "start timers", rc);
}

static void on_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct side *s = iocp_conn_data(c);
    /* "beat N\n" lines, parsed as they come: TCP may split or join them. */
    for (const char *p = data, *end = p + len; p < end; p++) {
        if (*p >= '0' && *p <= '9') {
            s->digits = s->digits * 10 + (unsigned)(*p - '0');
        } else if (*p == '\n') {
            if (s->digits != s->received + 1) {
                fail(c, "beat out of order", IOCP_EPROTO);
                return;
            }
            s->received = s->digits;
            s->digits = 0;
            printf("heartbeat: %s <- %s beat %u\n", s->name, s->peer, s->received);
            /* Alive: push the deadline out again (re-arming replaces it). */
            int rc = iocp_timer_start(s->deadline, (uint64_t)MISSED_BEATS * interval_ms, 0);
            if (rc < 0)
                fail(c, "re-arm the deadline", rc);
        }
    }
}

static void on_close(struct iocp_conn *c, int status)
{
    struct side *s = iocp_conn_data(c);
    /* Once stop returns, neither timer callback starts again. */
    iocp_timer_stop(s->beat);
    iocp_timer_stop(s->deadline);
    printf("heartbeat: %s: closed (%s)\n", s->name, status ? iocp_strerror(status) : "done");
    /* A client that never reached the server ends the story alone. */
    int weight = s == &client && server.id == IOCP_CONN_ID_NONE ? 2 : 1;
    if (atomic_fetch_add(&ends, weight) + weight >= 2)
        iocp_engine_stop(engine); /* from a callback: asks; main() waits */
}

/* No on_eof: at the peer's EOF a connection flushes its queue and closes. */
static const struct iocp_conn_handler handler = {
    .on_open = on_open, .on_data = on_data, .on_close = on_close};

/* ---- on worker 0: the timers ---- */

static void on_beat(struct iocp_timer *t, void *arg)
{
    struct side *s = arg;
    if (s == &client && s->asked == beats) {
        printf("heartbeat: client goes silent after %u beats\n", beats);
        iocp_timer_stop(t);
        return;
    }
    s->asked++;
    int rc = iocp_conn_post(engine, s->id, send_beat, s);
    if (rc == IOCP_ENOENT) /* the connection has gone; on_close stops us */
        return;
    if (rc < 0) {
        printf("heartbeat: %s: post a beat: %s\n", s->name, iocp_strerror(rc));
        iocp_conn_close_id(engine, s->id, IOCP_CLOSE_ABORT);
    }
}

static void on_deadline(struct iocp_timer *t, void *arg)
{
    struct side *s = arg;
    (void)t;
    printf("heartbeat: %s: %s missed %d beats, closing it\n", s->name, s->peer, MISSED_BEATS);
    s->timed_out = true;
    iocp_conn_close_id(engine, s->id, IOCP_CLOSE_GRACEFUL);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        beats = (unsigned)strtoul(argv[1], NULL, 10);
    if (argc > 2)
        interval_ms = (unsigned)strtoul(argv[2], NULL, 10);
    if (argc > 3 || beats == 0 || interval_ms == 0) {
        fprintf(stderr, "usage: heartbeat [BEATS [INTERVAL_MS]]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    struct side *sides[] = {&server, &client};
    struct iocp_engine_config ecfg = {.workers = 2};
    struct iocp_server_config scfg = {.host = "127.0.0.1", .port = 0, .handler = &handler,
                                      .data = &server, .max_conns = 1};
    struct iocp_connect_config ccfg = {.host = "127.0.0.1", .timeout_ms = 10000, .worker = 1,
                                       .handler = &handler, .data = &client};
    struct iocp_server *srv = NULL;
    char report[512] = "";
    int unbalanced = 0, rc = iocp_engine_new(&engine, &ecfg);
    if (rc < 0)
        goto out0;
    /* main() owns the timers: made before the engine starts, freed after it
     * stopped (a stop cancels them; it does not free them). */
    for (int i = 0; i < 2; i++)
        if ((rc = iocp_timer_new(engine, TIMER_WORKER, on_beat, sides[i], &sides[i]->beat)) < 0 ||
            (rc = iocp_timer_new(engine, TIMER_WORKER, on_deadline, sides[i],
                                 &sides[i]->deadline)) < 0)
            goto out1;
    if ((rc = iocp_engine_start(engine)) < 0 || (rc = iocp_server_new(&srv, engine, &scfg)) < 0 ||
        (rc = iocp_server_start(srv)) < 0)
        goto out1;
    ccfg.port = iocp_server_port(srv);
    printf("heartbeat: server on 127.0.0.1:%u (%s); %u beats, every %u ms\n", ccfg.port,
           iocp_engine_backend(engine), beats, interval_ms);
    if ((rc = iocp_connect(engine, &ccfg)) == 0)
        rc = iocp_engine_wait(engine); /* until both connections have ended */
out1:
    iocp_engine_stop(engine);
    for (int i = 0; i < 2; i++) {
        iocp_timer_free(sides[i]->beat);
        iocp_timer_free(sides[i]->deadline);
    }
    iocp_server_free(srv);
    /* After a stop the books must balance: every request completed, every
     * pooled object back, every timer freed. */
    unbalanced = iocp_engine_audit(engine, report, sizeof report);
    iocp_engine_free(engine);
out0:
    if (rc < 0) {
        fprintf(stderr, "heartbeat: %s\n", iocp_strerror(rc));
        return 1;
    }
    if (unbalanced) {
        fprintf(stderr, "heartbeat: audit: %s\n", report);
        return 1;
    }
    /* What the run must show: every beat of the client heard in order, the
     * server's heard for as long as the client listened, and the silent
     * client closed by the server's deadline, not the other way round. */
    bool ok = server.received == beats && client.received >= beats && server.timed_out &&
              !client.timed_out;
    printf("heartbeat: %s: server heard %u of the client's beats, client heard %u; the server's "
           "deadline %s the silent client\n",
           ok ? "ok" : "FAILED", server.received, client.received,
           server.timed_out ? "closed" : "did not close");
    return ok ? 0 : 1;
}
