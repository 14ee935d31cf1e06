/* SPDX-License-Identifier: MIT */
/*
 * iocptool's servers with many TLS clients at once: echo --tls on every
 * worker (byte-exact streams from several clients, mutual TLS and ALPN,
 * s_client as a client), listen --tls -k (clients' data fanned in to
 * stdout, stdin to each of them) and listen --tls --broker (each client's
 * data to the others only), and the relay's access log saying how each
 * handshake went, with its clients (--tls-listen) and its targets
 * (--tls-target).  The clients are connect --tls and
 * openssl s_client; the certificates come from tls_support.h.
 */
#include <criterion/criterion.h>

#include "nc_support.h"
#include "statsclient.h"

#if IOCP_HAVE_TLS

#include "tls_support.h"

TestSuite(cli_tls_servers, .init = make_certs, .fini = tls_test_done, .timeout = 90);

#define WAIT_MS 15000

#ifdef IOCP_TEST_SANITIZED
#define STREAM_BYTES ((size_t)1 << 20)
#else
#define STREAM_BYTES ((size_t)4 << 20)
#endif

/* Wait until p's stderr has said needle n times; how many it said. */
static int said(struct proc *p, const char *needle, int n, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    for (;;) {
        int k = 0;
        for (const char *s = p->errbuf; (s = strstr(s, needle)) != NULL; s += strlen(needle))
            k++;
        if (k >= n || tn_now_ms() >= end || p->err < 0)
            return k;
        proc_pump_err(p, 20);
    }
}

static const char *port_arg(uint16_t port)
{
    static char bufs[4][8];
    static unsigned next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%u", port);
    return b;
}

/* connect --tls to localhost:port, verified against the test CA, with
 * extra options (NULL-terminated, may be NULL) before the operands. */
static void tls_client(struct proc *c, uint16_t port, const char *const *extra)
{
    const char *args[24] = {"connect", "--tls", "--tls-ca", at("ca.pem")};
    int n = 4;
    for (int i = 0; extra && extra[i]; i++)
        args[n++] = extra[i];
    args[n++] = "localhost";
    args[n++] = port_arg(port);
    args[n] = NULL;
    cr_assert(nc_start(c, -1, args), "cannot start connect");
}

static void expect_no_sanitizer_report(const struct proc *p)
{
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* ---- echo --tls ---- */

#define ECHO_CLIENTS 4

Test(cli_tls_servers, echo_tls_echoes_several_clients_byte_exact_on_every_worker)
{
    struct proc e, c[ECHO_CLIENTS];
    const char *eargs[] = {"echo",           "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("server.key"), "-W",    "2",          "-v",             "127.0.0.1:0",
                           NULL};
    uint16_t port = nc_listen(&e, eargs);
    /* Each client's stream comes back whole; its end of input (a
     * close_notify and a half-close) is answered by the rest of its echo
     * and echo's own close_notify, so connect ends with status 0. */
    struct nc_flow flows[ECHO_CLIENTS];
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        tls_client(&c[i], port, NULL);
        nc_flow_init(&flows[i], c[i].in, c[i].out, STREAM_BYTES, 20 + (uint64_t)i);
        proc_forget_fd(&c[i], c[i].in);
        c[i].in = -1;
    }
    cr_expect(nc_pump(flows, ECHO_CLIENTS, 60000), "echo: %s", e.errbuf);
    for (int i = 0; i < ECHO_CLIENTS; i++) {
        cr_expect_eq(proc_wait(&c[i], WAIT_MS), 0, "connect %d: %s", i, c[i].errbuf);
        expect_no_sanitizer_report(&c[i]);
    }
    cr_expect_eq(said(&e, "echo: TLS: TLSv1.3", ECHO_CLIENTS, WAIT_MS), ECHO_CLIENTS, "%s",
                 e.errbuf);
    cr_expect_eq(proc_signal(&e, SIGTERM, WAIT_MS), 0, "echo: %s", e.errbuf);
    expect_no_sanitizer_report(&e);
}

Test(cli_tls_servers, echo_tls_with_client_certificates_and_alpn)
{
    struct proc e, ok, s, bare;
    const char *eargs[] = {"echo",
                           "--tls",
                           "--tls-cert",
                           at("server.pem"),
                           "--tls-key",
                           at("server.key"),
                           "--tls-verify-client",
                           at("ca.pem"),
                           "--alpn",
                           "h2,http/1.1",
                           "-v",
                           "127.0.0.1:0",
                           NULL};
    uint16_t port = nc_listen(&e, eargs);
    /* connect with a certificate: its line comes back, ALPN agreed. */
    const char *with_cert[] = {"--tls-cert", at("client.pem"), "--tls-key", at("client.key"),
                               "--alpn",     "http/1.1",       "-v",        NULL};
    tls_client(&ok, port, with_cert);
    cr_assert(tn_write_all(ok.in, "with a certificate\n", 19));
    cr_expect(nc_read_is(ok.out, "with a certificate\n", WAIT_MS), "connect: %s", ok.errbuf);
    proc_close_in(&ok);
    cr_expect_eq(proc_wait(&ok, WAIT_MS), 0, "connect: %s", ok.errbuf);
    cr_expect(strstr(ok.errbuf, "ALPN http/1.1"), "%s", ok.errbuf);
    /* s_client, likewise. */
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    char *argv[] = {"openssl", "s_client", "-connect", target, "-servername", "localhost",
                    "-CAfile", (char *)at("ca.pem"), "-verify_return_error", "-cert",
                    (char *)at("client.pem"), "-key", (char *)at("client.key"), "-alpn", "h2",
                    "-quiet", "-no_ign_eof", NULL};
    cr_assert(nc_spawn(&s, -1, argv));
    cr_assert(tn_write_all(s.in, "from s_client\n", 14));
    cr_expect(nc_read_is(s.out, "from s_client\n", WAIT_MS), "echo: %s", e.errbuf);
    proc_close_in(&s);
    cr_expect_eq(proc_wait(&s, WAIT_MS), 0, "s_client: %s", s.errbuf);
    /* Without a certificate: refused, status 1, and echo says why. */
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *bargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "localhost",
                           port_arg(port), NULL};
    cr_assert(nc_start(&bare, devnull, bargs));
    close(devnull);
    cr_expect_eq(proc_wait(&bare, WAIT_MS), 1, "connect: %s", bare.errbuf);
    cr_expect(strstr(bare.errbuf, "certificate required"), "%s", bare.errbuf);
    cr_expect_eq(said(&e, "the client sent no certificate", 1, WAIT_MS), 1, "%s", e.errbuf);
    cr_expect(strstr(e.errbuf, "ALPN h2"), "%s", e.errbuf);
    cr_expect_eq(proc_signal(&e, SIGTERM, WAIT_MS), 0, "echo: %s", e.errbuf);
    expect_no_sanitizer_report(&e);
}

Test(cli_tls_servers, echo_tls_option_mistakes_are_usage_errors)
{
    struct proc e;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *args[] = {"echo", "--tls", "127.0.0.1:0", NULL};
    cr_assert(nc_start(&e, devnull, args));
    close(devnull);
    cr_expect_eq(proc_wait(&e, WAIT_MS), 2, "%s", e.errbuf);
    cr_expect(strstr(e.errbuf, "a server needs --tls-cert FILE --tls-key FILE"), "%s", e.errbuf);
}

/* ---- listen --tls -k and --broker ---- */

#define MANY 3

/* listen --tls -v with mode (-k or --broker) and MANY TLS clients
 * connected to it. */
static void listen_tls_with_clients(struct proc *l, struct proc c[MANY], const char *mode)
{
    const char *largs[] = {"listen",         "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("server.key"), mode,    "-v",         "127.0.0.1:0",    NULL};
    uint16_t port = nc_listen(l, largs);
    for (int i = 0; i < MANY; i++)
        tls_client(&c[i], port, NULL);
}

Test(cli_tls_servers, listen_tls_keep_open_fans_clients_in_and_stdin_out)
{
    struct proc l, c[MANY];
    listen_tls_with_clients(&l, c, "-k");
    /* Each one's line reaches stdout, whole. */
    for (int i = 0; i < MANY; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "client %d here\n", i);
        cr_assert(tn_write_all(c[i].in, msg, strlen(msg)));
        cr_expect(nc_read_is(l.out, msg, WAIT_MS), "listen: %s connect: %s", l.errbuf,
                  c[i].errbuf);
    }
    /* stdin goes to each of them. */
    cr_assert(tn_write_all(l.in, "to all\n", 7));
    for (int i = 0; i < MANY; i++)
        cr_expect(nc_read_is(c[i].out, "to all\n", WAIT_MS), "client %d: %s", i, c[i].errbuf);
    /* One that ends gets listen's close_notify and exits 0; the others
     * stay. */
    proc_close_in(&c[0]);
    cr_expect_eq(proc_wait(&c[0], WAIT_MS), 0, "connect: %s", c[0].errbuf);
    cr_assert(tn_write_all(c[1].in, "still here\n", 11));
    cr_expect(nc_read_is(l.out, "still here\n", WAIT_MS), "listen: %s", l.errbuf);
    cr_expect_eq(said(&l, "listen: TLS: TLSv1.3", MANY, WAIT_MS), MANY, "%s", l.errbuf);
    cr_expect_eq(proc_signal(&l, SIGTERM, WAIT_MS), 128 + SIGTERM, "listen: %s", l.errbuf);
    expect_no_sanitizer_report(&l);
}

Test(cli_tls_servers, listen_tls_broker_passes_each_clients_data_to_the_others)
{
    struct proc l, c[MANY];
    listen_tls_with_clients(&l, c, "--broker");
    /* Every client is in the broker once listen has finished its
     * handshake: only then may a message be for all of them. */
    cr_assert_eq(said(&l, "listen: TLS: TLSv1.3", MANY, WAIT_MS), MANY, "%s", l.errbuf);
    for (int i = 0; i < MANY; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "from %d\n", i);
        cr_assert(tn_write_all(c[i].in, msg, strlen(msg)));
        for (int j = 0; j < MANY; j++)
            if (j != i)
                cr_expect(nc_read_is(c[j].out, msg, WAIT_MS), "client %d gets client %d's data",
                          j, i);
    }
    for (int i = 0; i < MANY; i++)
        cr_expect(nc_quiet_for(c[i].out, 200), "client %d gets its own data back", i);
    cr_expect(nc_quiet_for(l.out, 200), "--broker writes nothing to stdout");
    /* One leaves with a close_notify; the other two go on. */
    proc_close_in(&c[2]);
    cr_expect_eq(proc_wait(&c[2], WAIT_MS), 0, "connect: %s", c[2].errbuf);
    cr_assert(tn_write_all(c[0].in, "two left\n", 9));
    cr_expect(nc_read_is(c[1].out, "two left\n", WAIT_MS));
    cr_expect_eq(proc_signal(&l, SIGTERM, WAIT_MS), 128 + SIGTERM, "listen: %s", l.errbuf);
    expect_no_sanitizer_report(&l);
}

/* ---- relay --tls-listen: each handshake in the access log ---- */

/* The whole of a file, NUL-terminated (asserts). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "no %s", path);
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static int count(const char *text, const char *needle)
{
    int k = 0;
    for (const char *s = text; (s = strstr(s, needle)) != NULL; s += strlen(needle))
        k++;
    return k;
}

/* relay --tls-listen in front of an echo server, its log at path. */
static uint16_t logging_relay(struct proc *r, uint16_t echo_port, const char *path,
                              const char *format)
{
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", echo_port);
    const char *rargs[] = {"relay",          "--tls-listen",   "--tls-cert",   at("server.pem"),
                           "--tls-key",      at("server.key"), "--log",        path,
                           "--log-format",   format,           "--drain-timeout", "0",
                           "--no-stats",     "127.0.0.1:0",    target,         NULL};
    return nc_listen(r, rargs);
}

/* A client through the relay: one line there and back, then the end. */
static void good_client(uint16_t port)
{
    struct proc c;
    tls_client(&c, port, NULL);
    cr_assert(tn_write_all(c.in, "logged\n", 7));
    cr_expect(nc_read_is(c.out, "logged\n", WAIT_MS), "connect: %s", c.errbuf);
    proc_close_in(&c);
    cr_expect_eq(proc_wait(&c, WAIT_MS), 0, "connect: %s", c.errbuf);
}

Test(cli_tls_servers, relay_access_log_says_how_each_tls_handshake_went)
{
    struct proc e, r, s;
    const char *eargs[] = {"echo", "--no-stats", "127.0.0.1:0", NULL};
    uint16_t eport = nc_listen(&e, eargs);
    char path[128];
    snprintf(path, sizeof path, "%s/access-%d.json", dir, (int)getpid());
    uint16_t rport = logging_relay(&r, eport, path, "json");
    good_client(rport);
    /* Plain HTTP where TLS is expected. */
    int h = tn_connect(rport);
    cr_assert_geq(h, 0);
    cr_assert(tn_write_all(h, "GET / HTTP/1.0\r\n\r\n", 18));
    cr_expect_geq(nc_eof_state(h, WAIT_MS), 1, "the relay closes a client that is not TLS");
    close(h);
    /* A client that does not know the CA refuses the relay's certificate. */
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", rport);
    char *argv[] = {"openssl", "s_client", "-connect", target, "-verify_return_error", "-quiet",
                    NULL};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_spawn(&s, devnull, argv));
    close(devnull);
    cr_expect_neq(proc_wait(&s, WAIT_MS), 0, "s_client accepted an unknown CA");
    cr_expect_eq(proc_signal(&r, SIGTERM, WAIT_MS), 0, "relay: %s", r.errbuf);
    expect_no_sanitizer_report(&r);

    const char *log = slurp(path);
    cr_expect_eq(count(log, "\n"), 3, "%s", log);
    cr_expect_eq(count(log, "\"end\":\"eof\",\"tls\":{\"protocol\":\"TLSv1.3\",\"cipher\":\"TLS_"),
                 1, "%s", log);
    cr_expect_eq(count(log, "\"tls\":{\"error\":\"TLS handshake failed: http request\"}"), 1,
                 "%s", log);
    cr_expect_eq(count(log, "\"tls\":{\"error\":\"TLS: the peer refused: tlsv1 alert unknown ca\"}"),
                 1, "%s", log);

    /* The text format says the same at the end of its line. */
    struct proc t;
    snprintf(path, sizeof path, "%s/access-%d.txt", dir, (int)getpid());
    rport = logging_relay(&t, eport, path, "text");
    good_client(rport);
    cr_expect_eq(proc_signal(&t, SIGTERM, WAIT_MS), 0, "relay: %s", t.errbuf);
    log = slurp(path);
    cr_expect_eq(count(log, ", TLSv1.3 TLS_"), 1, "%s", log);
    cr_expect_eq(count(log, "\n"), 1, "%s", log);
    proc_signal(&e, SIGTERM, WAIT_MS);
}

/* relay --tls-target to target, its log at path (ca: --tls-target-ca or
 * NULL for the system's store). */
static uint16_t originating_relay(struct proc *r, const char *target, const char *path,
                                  const char *ca)
{
    const char *rargs[16] = {"relay", "--tls-target", "--log", path, "--drain-timeout", "0",
                             "--no-stats"};
    int n = 7;
    if (ca) {
        rargs[n++] = "--tls-target-ca";
        rargs[n++] = ca;
    }
    rargs[n++] = "127.0.0.1:0";
    rargs[n++] = target;
    rargs[n] = NULL;
    return nc_listen(r, rargs);
}

Test(cli_tls_servers, relay_access_log_says_how_each_target_tls_handshake_went)
{
    /* plain client -> relay --tls-target -> relay --tls-listen -> echo */
    struct proc e, back, front, blind;
    const char *eargs[] = {"echo", "--no-stats", "127.0.0.1:0", NULL};
    uint16_t eport = nc_listen(&e, eargs);
    char path[3][128];
    for (int i = 0; i < 3; i++)
        snprintf(path[i], sizeof path[i], "%s/target-%d-%d.json", dir, (int)getpid(), i);
    uint16_t bport = logging_relay(&back, eport, path[0], "json");
    char target[32];
    snprintf(target, sizeof target, "localhost:%u", bport);
    uint16_t fport = originating_relay(&front, target, path[1], at("ca.pem"));
    int c = tn_connect(fport);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "through\n", 8));
    cr_expect(nc_read_is(c, "through\n", WAIT_MS), "front: %s back: %s", front.errbuf,
              back.errbuf);
    shutdown(c, SHUT_WR);
    cr_expect(nc_eof_within(c, WAIT_MS), "the end comes back through both relays");
    close(c);
    /* A relay that does not know the CA refuses the target's certificate
     * and resets its client. */
    uint16_t uport = originating_relay(&blind, target, path[2], NULL);
    c = tn_connect(uport);
    cr_assert_geq(c, 0);
    cr_expect_geq(nc_eof_state(c, WAIT_MS), 1, "blind: %s", blind.errbuf);
    close(c);
    cr_expect_eq(proc_signal(&blind, SIGTERM, WAIT_MS), 0, "relay: %s", blind.errbuf);
    cr_expect_eq(proc_signal(&front, SIGTERM, WAIT_MS), 0, "relay: %s", front.errbuf);
    cr_expect_eq(proc_signal(&back, SIGTERM, WAIT_MS), 0, "relay: %s", back.errbuf);
    expect_no_sanitizer_report(&front);
    expect_no_sanitizer_report(&blind);

    const char *log = slurp(path[1]);
    cr_expect_eq(count(log, "\n"), 1, "%s", log);
    cr_expect_eq(count(log, "\"end\":\"eof\",\"target_tls\":{\"protocol\":\"TLSv1.3\",\"cipher\":"
                            "\"TLS_"),
                 1, "%s", log);
    cr_expect_eq(count(log, "\"tls\":"), 0, "its clients are plain: %s", log);
    log = slurp(path[2]);
    cr_expect_eq(count(log, "\"target_tls\":{\"error\":\"TLS: certificate verify failed: "
                            "unable to get local issuer certificate"),
                 1, "%s", log);
    /* The terminating relay logged both of its clients' handshakes. */
    log = slurp(path[0]);
    cr_expect_eq(count(log, "\"tls\":{\"protocol\":\"TLSv1.3\""), 1, "%s", log);
    cr_expect_eq(count(log, "\"tls\":{\"error\":\"TLS: the peer refused: "), 1, "%s", log);
    proc_signal(&e, SIGTERM, WAIT_MS);
}

/* ---- the handshakes in the stats reports ---- */

/* A stats endpoint path of this test's own. */
static const char *stats_at(const char *name)
{
    static char paths[2][128];
    static unsigned next;
    char *b = paths[next++ % 2];
    snprintf(b, sizeof paths[0], "%s/%s-%d.sock", dir, name, (int)getpid());
    return b;
}

/* Plain HTTP where TLS is expected: the server closes it. */
static void not_tls_client(uint16_t port)
{
    int h = tn_connect(port);
    cr_assert_geq(h, 0);
    cr_assert(tn_write_all(h, "GET / HTTP/1.0\r\n\r\n", 18));
    cr_expect_geq(nc_eof_state(h, WAIT_MS), 1, "a client that is not TLS is closed");
    close(h);
}

Test(cli_tls_servers, echo_and_listen_count_their_handshakes_in_stats)
{
    const char *kinds[2] = {"echo", "listen"};
    for (int k = 0; k < 2; k++) {
        struct proc srv;
        const char *ep = stats_at(kinds[k]);
        const char *args[] = {kinds[k],      "--tls",          "--tls-cert", at("server.pem"),
                              "--tls-key",   at("server.key"), "--stats",    ep,
                              k ? "-k" : "-v", "127.0.0.1:0",  NULL};
        uint16_t port = nc_listen(&srv, args);
        if (k == 0) {
            good_client(port);
        } else {
            /* listen passes the client's line to its stdout. */
            struct proc c;
            tls_client(&c, port, NULL);
            cr_assert(tn_write_all(c.in, "logged\n", 7));
            cr_expect(nc_read_is(srv.out, "logged\n", WAIT_MS), "listen: %s", srv.errbuf);
            proc_signal(&c, SIGTERM, WAIT_MS);
        }
        not_tls_client(port);
        char *json = stats_ask_until(ep, "json\n", "\"failed_other\":1}", WAIT_MS);
        cr_expect(json && strstr(json, "\"tls\":{\"clients\":{\"handshakes\":1,\"resumed\":0,"
                                       "\"failed\":1,\"failed_certificate\":0,"
                                       "\"failed_alert\":0,\"failed_timeout\":0,"
                                       "\"failed_other\":1}}"),
                  "%s: %s", kinds[k], json);
        free(json);
        char *prom = stats_ask(ep, "prometheus\n", 5000);
        cr_expect(strstr(prom, "iocptool_tls_handshakes_total{side=\"clients\"} 1\n"), "%s: %s",
                  kinds[k], prom);
        cr_expect(strstr(prom, "iocptool_tls_failures_total{side=\"clients\",reason=\"other\"} 1\n"),
                  "%s: %s", kinds[k], prom);
        free(prom);
        char *text = stats_ask(ep, "stats\n", 5000);
        cr_expect(strstr(text, "tls clients  1 handshakes (0 resumed), 1 failed: 0 certificate, "
                               "0 alert, 0 timeout, 1 other\n"),
                  "%s: %s", kinds[k], text);
        free(text);
        proc_signal(&srv, SIGTERM, WAIT_MS);
        expect_no_sanitizer_report(&srv);
    }
}

Test(cli_tls_servers, relay_counts_both_sides_handshakes_in_stats)
{
    /* client --tls -> relay --tls-listen --tls-target -> echo --tls */
    struct proc e, r;
    const char *eargs[] = {"echo",    "--tls",          "--tls-cert", at("server.pem"),
                           "--tls-key", at("server.key"), "--no-stats", "127.0.0.1:0", NULL};
    uint16_t eport = nc_listen(&e, eargs);
    char target[32];
    snprintf(target, sizeof target, "localhost:%u", eport);
    const char *ep = stats_at("relay");
    const char *rargs[] = {"relay",          "--tls-listen",    "--tls-cert", at("server.pem"),
                           "--tls-key",      at("server.key"),  "--tls-target",
                           "--tls-target-ca", at("ca.pem"),     "--stats",    ep,
                           "127.0.0.1:0",    target,            NULL};
    uint16_t rport = nc_listen(&r, rargs);
    good_client(rport);
    good_client(rport);
    not_tls_client(rport);
    char *json = stats_ask_until(ep, "json\n", "\"failed_other\":1}", WAIT_MS);
    cr_expect(json && strstr(json, "\"clients\":{\"handshakes\":2,"), "%s", json);
    cr_expect(json && strstr(json, "\"failed_other\":1}"), "%s", json);
    /* The second connection to the target resumed the first one's session. */
    cr_expect(json && strstr(json, "\"targets\":{\"handshakes\":2,\"resumed\":1,\"failed\":0,"),
              "%s", json);
    free(json);
    char *prom = stats_ask(ep, "prometheus\n", 5000);
    cr_expect(strstr(prom, "iocptool_relay_tls_handshakes_total{side=\"clients\"} 2\n"), "%s",
              prom);
    cr_expect(strstr(prom, "iocptool_relay_tls_handshakes_total{side=\"targets\"} 2\n"), "%s",
              prom);
    free(prom);
    cr_expect_eq(proc_signal(&r, SIGTERM, WAIT_MS), 0, "relay: %s", r.errbuf);
    proc_signal(&e, SIGTERM, WAIT_MS);
    expect_no_sanitizer_report(&r);
}

#else /* !IOCP_HAVE_TLS */

TestSuite(cli_tls_servers);

Test(cli_tls_servers, without_openssl_echo_tls_is_refused_with_a_message)
{
    const char *args[] = {"echo", "--tls", "--tls-self-signed", "127.0.0.1:0", NULL};
    nc_expect_refused_without_tls(args);
}

#endif
