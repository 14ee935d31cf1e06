/* SPDX-License-Identifier: MIT */
/*
 * iocptool's TLS against haproxy, a TLS terminator and originator people
 * put in front of and behind services every day:
 *
 *   - haproxy as a client: a plain client -> haproxy (`server ... ssl
 *     verify required ca-file ... crt ...`) -> listen --tls
 *     --tls-verify-client: haproxy verifies listen's certificate, listen
 *     verifies haproxy's;
 *   - haproxy as a server: connect --tls -> haproxy (`bind ... ssl crt`)
 *     -> a plain server of the test's, verified against the test CA;
 *   - the same through relay --tls-target, for a plain client.
 *
 * Each moves a patterned stream both ways at once, byte-exact, and ends
 * with a half-close that passes through haproxy as a close_notify; each
 * also shows that a certificate haproxy cannot verify (or one that is
 * for another host) gets no data through.
 */
#include <criterion/criterion.h>

#include "nc_support.h"

#if IOCP_HAVE_TLS

#include "tls_support.h"

TestSuite(cli_tls_peers, .init = make_certs, .fini = tls_test_done, .timeout = 90);

#define WAIT_MS 15000

#ifdef IOCP_TEST_SANITIZED
/* Every byte is checked on its way through OpenSSL under the sanitizers. */
#define STREAM_BYTES ((size_t)4 << 20)
#else
#define STREAM_BYTES ((size_t)16 << 20)
#endif

/* haproxy in the foreground on this configuration; its frontend binds
 * "fd@3", the listener hfd the test made, so clients may connect at once. */
static void start_haproxy(struct proc *p, const char *frontend_backend, int hfd)
{
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "global\n"
             "  maxconn 100\n"
             "defaults\n"
             "  mode tcp\n"
             "  timeout connect 5s\n"
             "  timeout client 30s\n"
             "  timeout server 30s\n"
             "  timeout client-fin 30s\n"
             "  timeout server-fin 30s\n"
             "%s",
             frontend_backend);
    char path[128];
    snprintf(path, sizeof path, "%s/haproxy-%d.cfg", dir, (int)getpid());
    nc_spawn_haproxy(p, path, cfg, hfd);
}

/* Both ways at once through fds: to_w is written and must come out of
 * to_r, from_w likewise out of from_r; each writer's end is a half-close. */
static bool both_ways(int to_w, int to_r, int from_w, int from_r)
{
    struct nc_flow flows[2];
    nc_flow_init(&flows[0], to_w, to_r, STREAM_BYTES, 11);
    nc_flow_init(&flows[1], from_w, from_r, STREAM_BYTES, 12);
    return nc_pump(flows, 2, 60000);
}

static void expect_clean_exit(struct proc *p, int status)
{
    cr_expect_eq(proc_wait(p, WAIT_MS), status, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* ---- haproxy as a client of listen --tls ---- */

Test(cli_tls_peers, haproxy_verifies_listen_and_listen_verifies_haproxy)
{
    struct proc l, ha;
    const char *largs[] = {"listen",       "--tls",     "--tls-cert",          at("server.pem"),
                           "--tls-key",    at("server.key"), "--tls-verify-client", at("ca.pem"),
                           "-v",           "127.0.0.1:0", NULL};
    uint16_t lport = nc_listen(&l, largs);
    uint16_t hport = 0;
    int hfd = tn_listen(&hport);
    cr_assert_geq(hfd, 0);
    char fb[1024];
    snprintf(fb, sizeof fb,
             "frontend fe\n  bind fd@3\n  default_backend be\n"
             "backend be\n  server tool 127.0.0.1:%u ssl verify required ca-file %s "
             "sni str(localhost) verifyhost localhost crt %s\n",
             lport, at("ca.pem"), at("client.full.pem"));
    start_haproxy(&ha, fb, hfd);

    int c = tn_connect(hport);
    cr_assert_geq(c, 0);
    /* The plain client's bytes reach listen's stdout, listen's stdin
     * reaches the client; listen's end of input is a close_notify that
     * haproxy turns into the client's EOF. */
    cr_expect(both_ways(c, l.out, l.in, c), "listen: %s haproxy: %s", l.errbuf, ha.errbuf);
    proc_forget_fd(&l, l.in);
    l.in = -1;
    close(c);
    expect_clean_exit(&l, 0);
    /* listen saw haproxy's client certificate. */
    cr_expect(strstr(l.errbuf, "CN=iocptool-test-client"), "%s", l.errbuf);
    proc_signal(&ha, SIGTERM, WAIT_MS);
}

Test(cli_tls_peers, haproxy_refuses_a_listen_certificate_for_another_host)
{
    struct proc l, ha;
    const char *largs[] = {"listen", "--tls", "--tls-cert", at("other.pem"), "--tls-key",
                           at("other.key"), "127.0.0.1:0", NULL};
    uint16_t lport = nc_listen(&l, largs);
    uint16_t hport = 0;
    int hfd = tn_listen(&hport);
    cr_assert_geq(hfd, 0);
    char fb[1024];
    snprintf(fb, sizeof fb,
             "frontend fe\n  bind fd@3\n  default_backend be\n"
             "backend be\n  server tool 127.0.0.1:%u ssl verify required ca-file %s "
             "sni str(localhost) verifyhost localhost\n",
             lport, at("ca.pem"));
    start_haproxy(&ha, fb, hfd);
    int c = tn_connect(hport);
    cr_assert_geq(c, 0);
    cr_assert(tn_write_all(c, "secret\n", 7));
    /* haproxy closes the client without passing anything on, and listen
     * hears of the refusal (haproxy's alert) and ends with status 1. */
    cr_expect_geq(nc_eof_state(c, WAIT_MS), 1, "haproxy: %s", ha.errbuf);
    close(c);
    cr_expect_eq(proc_wait(&l, WAIT_MS), 1, "listen: %s", l.errbuf);
    cr_expect_null(strstr(l.errbuf, "Sanitizer"), "%s", l.errbuf);
    char got[8];
    cr_expect_eq(tn_read_full(l.out, got, sizeof got, 200), 0, "listen passed data on");
    proc_signal(&ha, SIGTERM, WAIT_MS);
}

/* ---- haproxy as a server: connect --tls, relay --tls-target ---- */

/* haproxy (ha) terminating TLS in front of a plain listener of the test's
 * (lfd), on port (as text for an argument list). */
struct terminator {
    struct proc ha;
    int lfd;
    char port[8];
};

/* cert: a NAME.full.pem. */
static void haproxy_terminating(struct terminator *t, const char *cert)
{
    uint16_t bport = 0;
    t->lfd = tn_listen(&bport);
    cr_assert_geq(t->lfd, 0);
    uint16_t hport = 0;
    int hfd = tn_listen(&hport);
    cr_assert_geq(hfd, 0);
    snprintf(t->port, sizeof t->port, "%u", hport);
    char fb[1024];
    snprintf(fb, sizeof fb,
             "frontend fe\n  bind fd@3 ssl crt %s\n  default_backend be\n"
             "backend be\n  server plain 127.0.0.1:%u\n",
             at(cert), bport);
    start_haproxy(&t->ha, fb, hfd);
}

static void terminator_stop(struct terminator *t)
{
    close(t->lfd);
    proc_signal(&t->ha, SIGTERM, WAIT_MS);
}

Test(cli_tls_peers, connect_verifies_haproxy_and_moves_data_both_ways)
{
    struct terminator t;
    struct proc c;
    haproxy_terminating(&t, "server.full.pem");
    const char *cargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "-v", "localhost", t.port,
                           NULL};
    cr_assert(nc_start(&c, -1, cargs));
    int s = nc_accept(t.lfd, WAIT_MS);
    cr_assert_geq(s, 0, "haproxy does not reach the backend; connect: %s", c.errbuf);
    cr_expect(both_ways(c.in, s, s, c.out), "connect: %s haproxy: %s", c.errbuf, t.ha.errbuf);
    proc_forget_fd(&c, c.in);
    c.in = -1;
    close(s);
    expect_clean_exit(&c, 0);
    cr_expect(strstr(c.errbuf, "CN=localhost"), "%s", c.errbuf);
    terminator_stop(&t);
}

Test(cli_tls_peers, connect_refuses_haproxy_with_a_certificate_for_another_host)
{
    struct terminator t;
    struct proc c;
    haproxy_terminating(&t, "other.full.pem");
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    const char *cargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "localhost", t.port, NULL};
    cr_assert(nc_start(&c, devnull, cargs));
    close(devnull);
    cr_expect_eq(proc_wait(&c, WAIT_MS), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "the certificate is not for localhost"), "%s", c.errbuf);
    terminator_stop(&t);
}

Test(cli_tls_peers, relay_tls_target_verifies_haproxy_for_a_plain_client)
{
    struct terminator t;
    struct proc r;
    haproxy_terminating(&t, "server.full.pem");
    char target[32];
    snprintf(target, sizeof target, "localhost:%s", t.port);
    const char *rargs[] = {"relay", "--tls-target", "--tls-target-ca", at("ca.pem"), "-v",
                           "127.0.0.1:0", target, NULL};
    cr_assert(nc_start(&r, -1, rargs));
    uint16_t rport = proc_listening(&r, WAIT_MS);
    cr_assert_neq(rport, 0, "relay: %s", r.errbuf);
    int c = tn_connect(rport);
    cr_assert_geq(c, 0);
    int s = nc_accept(t.lfd, WAIT_MS);
    cr_assert_geq(s, 0, "haproxy does not reach the backend; relay: %s", r.errbuf);
    cr_expect(both_ways(c, s, s, c), "relay: %s haproxy: %s", r.errbuf, t.ha.errbuf);
    close(c);
    close(s);
    proc_pump_err(&r, 200);
    cr_expect(strstr(r.errbuf, "peer /CN=localhost"), "%s", r.errbuf);
    cr_expect_eq(proc_signal(&r, SIGTERM, WAIT_MS), 0, "relay: %s", r.errbuf);
    cr_expect_null(strstr(r.errbuf, "Sanitizer"), "%s", r.errbuf);
    terminator_stop(&t);
}

#else /* !IOCP_HAVE_TLS */

TestSuite(cli_tls_peers);

Test(cli_tls_peers, without_openssl_relay_tls_target_is_refused_with_a_message)
{
    const char *args[] = {"relay", "--tls-target", "127.0.0.1:0", "localhost:443", NULL};
    nc_expect_refused_without_tls(args);
}

#endif
