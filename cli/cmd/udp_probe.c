/* SPDX-License-Identifier: MIT */
/*
 * udp_probe.h: connect -z -u.
 *
 * The name is looked up once, on the main thread; every probe is then a
 * socket connected to that numeric address and one port, on the engine's
 * one worker, so that an ICMP port-unreachable comes back to the probe of
 * that port (on_error) and a reply reaches only it.  Each probe sends an
 * empty datagram (nothing a service could take for a command) and, if the
 * port is still silent half-way through the wait, sends it once more: a
 * datagram or an ICMP answer may be lost, and the system rate-limits the
 * ICMP answers it sends.  Up to UDP_PROBE_WINDOW probes are in flight;
 * results are printed in the order the ports were given, as soon as every
 * port before them is decided.
 */
#include "udp_probe.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iocp.h"

#include "addr.h"
#include "diag.h"
#include "probe_ports.h"
#include "netcompat.h"
#include "run.h"
#include "stop.h"
#include "udp.h"
#include "udp_peers.h"

#define UDP_PROBE_WINDOW 64
#define TICK_MS          20u

enum { SLOT_WAITING = 0, SLOT_RUNNING, SLOT_OPEN, SLOT_SILENT, SLOT_CLOSED, SLOT_FAILED };

struct slot {
    uint16_t port;
    uint8_t state;
    bool resent;
    int error;
    uint64_t started_ms;
    struct iocp_dgram *d;
};

struct udp_probe {
    const struct udp_probe_config *cfg;
    struct iocp_engine *e;
    char addr[INET6_ADDRSTRLEN];
    struct slot *slots;
    size_t n, next, cursor, running;
    unsigned answered;
    struct iocp_timer *tick;
    struct iocp_task start;
};

/* One probe run per process; its callbacks find it here. */
static struct udp_probe up;

static void report(void)
{
    bool printed = false;
    while (up.cursor < up.n && up.slots[up.cursor].state >= SLOT_OPEN) {
        struct slot *s = &up.slots[up.cursor++];
        if (s->state == SLOT_OPEN || s->state == SLOT_SILENT) {
            printf("%s %u %s\n", up.cfg->host, s->port,
                   s->state == SLOT_OPEN ? "open" : "open|filtered");
            printed = true;
        } else if (s->state == SLOT_CLOSED) {
            diag_info(1, "connect: %s port %u: closed (port unreachable)", up.cfg->host, s->port);
        } else {
            diag_info(1, "connect: %s port %u: %s", up.cfg->host, s->port, iocp_strerror(s->error));
        }
    }
    if (printed)
        fflush(stdout);
    if (up.cursor == up.n)
        stop_wake();
}

static void launch(void);

/* The port's answer is known: close its socket (on_close frees the slot's
 * place in the window). */
static void decide(struct slot *s, int state, int error)
{
    if (s->state != SLOT_RUNNING)
        return;
    s->state = (uint8_t)state;
    s->error = error;
    if (state == SLOT_OPEN || state == SLOT_SILENT)
        up.answered++;
    if (s->d)
        iocp_dgram_close(s->d);
    report();
}

static void on_datagram(struct iocp_dgram *d, const void *data, size_t len,
                        const struct sockaddr *from, int fromlen, unsigned flags)
{
    (void)data;
    (void)len;
    (void)from;
    (void)fromlen;
    (void)flags;
    decide(iocp_dgram_data(d), SLOT_OPEN, 0);
}

static void on_error(struct iocp_dgram *d, int status, const struct sockaddr *peer, int peerlen)
{
    (void)peer;
    (void)peerlen;
    decide(iocp_dgram_data(d), status == IOCP_ECONNREFUSED ? SLOT_CLOSED : SLOT_FAILED, status);
}

static void on_close(struct iocp_dgram *d, int status)
{
    struct slot *s = iocp_dgram_data(d);
    s->d = NULL;
    up.running--;
    if (s->state == SLOT_RUNNING) /* closed under it: the engine stops */
        decide(s, SLOT_FAILED, status ? status : IOCP_ECANCELED);
    launch();
}

static const struct iocp_dgram_handler probe_handler = {
    .on_datagram = on_datagram,
    .on_error = on_error,
    .on_close = on_close,
};

static void launch(void)
{
    while (up.running < UDP_PROBE_WINDOW && up.next < up.n) {
        struct slot *s = &up.slots[up.next++];
        s->state = SLOT_RUNNING;
        s->started_ms = udp_now_ms();
        struct iocp_dgram_config dcfg = {
            .host = up.cfg->source_host,
            .family = up.cfg->family,
            .peer_host = up.addr,
            .peer_port = s->port,
            .worker = 0,
            .handler = &probe_handler,
            .data = s,
        };
        struct iocp_dgram *d;
        int rc = iocp_dgram_open(&d, up.e, &dcfg);
        if (rc < 0) {
            decide(s, SLOT_FAILED, rc);
            continue;
        }
        up.running++;
        s->d = d;
        rc = iocp_dgram_send(d, "", 0);
        if (rc < 0)
            decide(s, SLOT_FAILED, rc);
    }
}

/* Silence is an answer too, once the wait is over. */
static void tick(struct iocp_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    uint64_t now = udp_now_ms();
    for (size_t i = up.cursor; i < up.next; i++) {
        struct slot *s = &up.slots[i];
        if (s->state != SLOT_RUNNING || !s->d)
            continue;
        uint64_t waited = now - s->started_ms;
        if (waited >= up.cfg->wait_ms) {
            decide(s, SLOT_SILENT, 0);
        } else if (!s->resent && waited >= up.cfg->wait_ms / 2) {
            s->resent = true;
            iocp_dgram_send(s->d, "", 0);
        }
    }
}

static void start_task(struct iocp_task *task)
{
    (void)task;
    int rc = iocp_timer_start(up.tick, TICK_MS, TICK_MS);
    if (rc < 0) {
        diag_error("connect: timers: %s", iocp_strerror(rc));
        stop_wake();
        return;
    }
    launch();
}

/* The port arguments into up.slots, each port once. */
static bool parse_ports(const struct udp_probe_config *cfg)
{
    up.slots = probe_ports_slots(cfg->ports, cfg->nports, sizeof *up.slots,
                                 offsetof(struct slot, port), &up.n);
    return up.slots != NULL;
}

static int probe_begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    (void)arg;
    (void)s;
    up.e = e;
    int rc = iocp_timer_new(e, 0, tick, NULL, &up.tick);
    if (rc == 0) {
        up.start.fn = start_task;
        rc = iocp_engine_post(e, 0, &up.start);
    }
    if (rc < 0)
        diag_error("connect: %s", iocp_strerror(rc));
    return rc < 0 ? -1 : 0;
}

static int probe_end(void *arg)
{
    (void)arg;
    if (up.tick)
        iocp_timer_free(up.tick);
    up.tick = NULL;
    diag_info(1, "connect: %u of %lu ports open or open|filtered", up.answered,
              (unsigned long)up.n);
    return up.answered ? EXIT_OK : EXIT_RUNTIME;
}

int udp_probe_run(const struct udp_probe_config *cfg)
{
    memset(&up, 0, sizeof up);
    up.cfg = cfg;
    if (!parse_ports(cfg)) {
        free(up.slots);
        return EXIT_USAGE;
    }
    if (!udp_resolve("connect", cfg->host, cfg->family, cfg->numeric, up.addr, sizeof up.addr)) {
        free(up.slots);
        return EXIT_RUNTIME;
    }
    struct iocp_engine_config ecfg = {.workers = 1, .backend = cfg->backend, .log = diag_lib_log};
    struct run_spec spec = {
        .cmd = "connect",
        .engine = &ecfg,
        .begin = probe_begin,
        .end = probe_end,
    };
    int status = run_engine(&spec);
    if (up.tick)
        iocp_timer_free(up.tick);
    free(up.slots);
    return status;
}
