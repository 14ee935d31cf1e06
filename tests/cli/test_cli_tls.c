/* SPDX-License-Identifier: MIT */
/*
 * connect --tls and listen --tls through the binaries, against OpenSSL's
 * own s_server and s_client and against each other: verification by
 * default (an unknown CA, an expired certificate, a certificate for
 * another host and a missing client certificate each end with their
 * reason and exit 1; --tls-insecure connects anyway and says so), mutual
 * TLS, ALPN, a bulk transfer each way with a half-close, and handshakes
 * that stall: they time out without holding up a real client.
 *
 * The certificates are made once per run with the openssl command
 * (tls_support.h): a CA, a server certificate for localhost and
 * 127.0.0.1, an expired one, one for another host, a client certificate.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "nc_support.h"

#if IOCP_HAVE_TLS

#include "tls_support.h"

TestSuite(cli_tls, .init = make_certs, .fini = tls_test_done, .timeout = 180);

#define WAIT_MS 15000

static char port_buf[4][8];

static const char *port_str(int slot, uint16_t port)
{
    snprintf(port_buf[slot], sizeof port_buf[slot], "%u", port);
    return port_buf[slot];
}

/* openssl s_server on a free port, for one client, with extra arguments.
 * A port another test's server took first ends that start: another port. */
static uint16_t s_server(struct proc *p, const char *cert, const char *const *extra)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        uint16_t port = tn_server_port();
        char *argv[32];
        int n = 0;
        static char portarg[24];
        snprintf(portarg, sizeof portarg, "127.0.0.1:%u", port);
        const char *base[] = {"openssl", "s_server", "-accept", portarg, "-naccept", "1",
                              "-quiet",  "-cert",    at(cert), "-key",   NULL};
        for (int i = 0; base[i]; i++)
            argv[n++] = (char *)base[i];
        static char keyarg[128];
        snprintf(keyarg, sizeof keyarg, "%s", at(cert));
        strcpy(strrchr(keyarg, '.'), ".key");
        argv[n++] = keyarg;
        for (int i = 0; extra && extra[i]; i++)
            argv[n++] = (char *)extra[i];
        argv[n] = NULL;
        cr_assert(nc_spawn(p, -1, argv), "cannot start openssl s_server");
        if (nc_wait_own_listener(p, port, WAIT_MS))
            return port;
        proc_signal(p, SIGKILL, WAIT_MS);
        cr_log_warn("s_server on %u did not listen: %s", port, p->errbuf);
    }
    cr_assert_fail("s_server does not listen: %s", p->errbuf);
    return 0;
}

/* Write msg to fd and close it (the writer's end of input). */
static void send_and_end(struct proc *p, const char *msg)
{
    cr_assert(tn_write_all(p->in, msg, strlen(msg)));
    proc_close_in(p);
}

/* Run connect with stdin /dev/null; its status. */
static int connect_fails(struct proc *c, const char *const *args)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_start(c, devnull, args));
    close(devnull);
    return proc_wait(c, WAIT_MS);
}

/* ---- against OpenSSL's own tools ---- */

Test(cli_tls, connect_verifies_s_server_and_moves_data_both_ways)
{
    struct proc s, c;
    uint16_t port = s_server(&s, "server.pem", NULL);
    const char *args[] = {"connect", "--tls",   "--tls-ca",        at("ca.pem"),
                          "-v",      "localhost", port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, args));
    cr_assert(tn_write_all(c.in, "to the server\n", 14));
    cr_expect(nc_read_is(s.out, "to the server\n", WAIT_MS), "connect: %s", c.errbuf);
    cr_assert(tn_write_all(s.in, "to the client\n", 14));
    cr_expect(nc_read_is(c.out, "to the client\n", WAIT_MS));
    proc_close_in(&c); /* close_notify: s_server ends its one session */
    cr_expect_eq(proc_wait(&c, WAIT_MS), 0, "connect: %s", c.errbuf);
    proc_wait(&s, WAIT_MS);
    /* -v says what was agreed. */
    cr_expect(strstr(c.errbuf, "TLS: TLSv1.3") && strstr(c.errbuf, "CN=localhost"), "%s",
              c.errbuf);
}

Test(cli_tls, s_client_verifies_listen_and_moves_data_both_ways)
{
    struct proc l, s;
    const char *largs[] = {"listen",         "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("server.key"), "-v",    "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    char *argv[] = {"openssl", "s_client", "-connect", target, "-servername", "localhost",
                    "-CAfile", (char *)at("ca.pem"), "-verify_return_error", "-quiet", "-no_ign_eof", NULL};
    cr_assert(nc_spawn(&s, -1, argv));
    cr_assert(tn_write_all(s.in, "from s_client\n", 14));
    cr_expect(nc_read_is(l.out, "from s_client\n", WAIT_MS), "listen: %s", l.errbuf);
    cr_assert(tn_write_all(l.in, "from listen\n", 12));
    cr_expect(nc_read_is(s.out, "from listen\n", WAIT_MS));
    /* Both ends of input: s_client's is a close_notify (docs/EOF.md). */
    proc_close_in(&s);
    proc_close_in(&l);
    cr_expect_eq(proc_wait(&l, WAIT_MS), 0, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&s, WAIT_MS), 0);
}

Test(cli_tls, s_client_gets_its_alpn_and_listen_checks_its_certificate)
{
    struct proc l, s;
    const char *largs[] = {"listen",       "--tls",         "--tls-cert",
                           at("server.pem"), "--tls-key",   at("server.key"),
                           "--tls-verify-client", at("ca.pem"), "--alpn",
                           "h2,http/1.1",  "-v",            "127.0.0.1:0",
                           NULL};
    uint16_t port = nc_listen(&l, largs);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", port);
    char *argv[] = {"openssl", "s_client", "-connect", target, "-CAfile", (char *)at("ca.pem"),
                    "-cert", (char *)at("client.pem"), "-key", (char *)at("client.key"),
                    "-alpn", "http/1.1", "-quiet", "-no_ign_eof", NULL};
    cr_assert(nc_spawn(&s, -1, argv));
    cr_assert(tn_write_all(s.in, "mutual\n", 7));
    cr_expect(nc_read_is(l.out, "mutual\n", WAIT_MS), "listen: %s", l.errbuf);
    proc_close_in(&s);
    proc_close_in(&l);
    cr_expect_eq(proc_wait(&l, WAIT_MS), 0, "listen: %s", l.errbuf);
    proc_wait(&s, WAIT_MS);
    cr_expect(strstr(l.errbuf, "ALPN http/1.1"), "%s", l.errbuf);
    cr_expect(strstr(l.errbuf, "CN=iocptool-test-client"), "%s", l.errbuf);
}

/* ---- each certificate failure: its reason, exit 1 ---- */

static void refused(const char *cert, const char *const *cextra, const char *host,
                    const char *reason)
{
    struct proc s, c;
    uint16_t port = s_server(&s, cert, NULL);
    const char *args[16] = {"connect", "--tls"};
    int n = 2;
    for (int i = 0; cextra && cextra[i]; i++)
        args[n++] = cextra[i];
    args[n++] = host;
    args[n++] = port_str(0, port);
    args[n] = NULL;
    cr_expect_eq(connect_fails(&c, args), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, reason), "wanted \"%s\" in: %s", reason, c.errbuf);
    proc_signal(&s, SIGTERM, WAIT_MS);
}

Test(cli_tls, an_unknown_ca_is_refused_with_exit_1)
{
    /* The system's store does not know the test CA. */
    refused("server.pem", NULL, "localhost",
            "certificate verify failed: unable to get local issuer certificate");
}

Test(cli_tls, an_expired_certificate_is_refused_with_exit_1)
{
    const char *extra[] = {"--tls-ca", at("ca.pem"), NULL};
    refused("expired.pem", extra, "localhost", "certificate verify failed: certificate has expired");
}

Test(cli_tls, a_certificate_for_another_host_is_refused_with_exit_1)
{
    const char *extra[] = {"--tls-ca", at("ca.pem"), NULL};
    refused("other.pem", extra, "localhost", "the certificate is not for localhost");
    refused("other.pem", extra, "127.0.0.1", "the certificate is not for 127.0.0.1");
}

Test(cli_tls, tls_insecure_connects_anyway_and_says_so)
{
    struct proc s, c;
    uint16_t port = s_server(&s, "expired.pem", NULL);
    const char *args[] = {"connect", "--tls", "--tls-insecure", "localhost", port_str(0, port),
                          NULL};
    cr_assert(nc_start(&c, -1, args));
    send_and_end(&c, "anyway\n");
    cr_expect(nc_read_is(s.out, "anyway\n", WAIT_MS), "connect: %s", c.errbuf);
    cr_expect_eq(proc_wait(&c, WAIT_MS), 0, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "NOT verified"), "%s", c.errbuf);
    proc_wait(&s, WAIT_MS);
}

Test(cli_tls, a_missing_client_certificate_is_refused_at_both_ends)
{
    struct proc l, c;
    const char *largs[] = {"listen",         "--tls",     "--tls-cert",          at("server.pem"),
                           "--tls-key",      at("server.key"), "--tls-verify-client", at("ca.pem"),
                           "-k",             "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *cargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "localhost",
                           port_str(0, port), NULL};
    cr_expect_eq(connect_fails(&c, cargs), 1, "connect: %s", c.errbuf);
    cr_expect(strstr(c.errbuf, "certificate required"), "%s", c.errbuf);
    /* With a certificate the same server takes the client (-k). */
    struct proc ok;
    const char *okargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "--tls-cert",
                            at("client.pem"), "--tls-key", at("client.key"), "localhost",
                            port_str(1, port), NULL};
    cr_assert(nc_start(&ok, -1, okargs));
    send_and_end(&ok, "with a certificate\n");
    cr_expect(nc_read_is(l.out, "with a certificate\n", WAIT_MS), "listen: %s", l.errbuf);
    proc_pump_err(&l, 200);
    cr_expect(strstr(l.errbuf, "the client sent no certificate"), "%s", l.errbuf);
    proc_signal(&l, SIGTERM, WAIT_MS);
    proc_signal(&ok, SIGTERM, WAIT_MS);
}

Test(cli_tls, a_group_readable_key_file_is_refused)
{
    sh("cp server.key loose.key && chmod 640 loose.key");
    struct proc l;
    const char *largs[] = {"listen", "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("loose.key"), "127.0.0.1:0", NULL};
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert(nc_start(&l, devnull, largs));
    close(devnull);
    cr_expect_eq(proc_wait(&l, WAIT_MS), 2, "%s", l.errbuf);
    cr_expect(strstr(l.errbuf, "accessible by group or others"), "%s", l.errbuf);
}

Test(cli_tls, self_signed_prints_the_fingerprint_the_client_sees)
{
    struct proc l, s;
    const char *largs[] = {"listen", "--tls", "--tls-self-signed", "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *fp = strstr(l.errbuf, "SHA-256 fingerprint ");
    cr_assert(fp, "%s", l.errbuf);
    char want[128];
    cr_assert_eq(sscanf(fp + 20, "%127s", want), 1);
    char cmd[256];
    snprintf(cmd, sizeof cmd,
             "openssl s_client -connect 127.0.0.1:%u </dev/null 2>/dev/null | "
             "openssl x509 -noout -fingerprint -sha256",
             port);
    FILE *f = popen(cmd, "r");
    char line[256] = "";
    cr_assert(f && fgets(line, sizeof line, f));
    pclose(f);
    cr_expect(strstr(line, want), "listen said %s, s_client saw %s", want, line);
    (void)s;
    proc_signal(&l, SIGTERM, WAIT_MS);
}

/* ---- iocptool at both ends ---- */

#ifdef IOCP_TEST_SANITIZED
/* Under ASan and UBSan every byte is checked on its way through OpenSSL
 * and the engine: a smaller stream keeps the suite within its time. */
#define BULK_BYTES ((size_t)32 << 20)
#else
#define BULK_BYTES ((size_t)256 << 20)
#endif

Test(cli_tls, bulk_each_way_byte_exact_with_a_half_close)
{
    struct proc l, c;
    const char *largs[] = {"listen", "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("server.key"), "127.0.0.1:0", NULL};
    uint16_t port = nc_listen(&l, largs);
    const char *cargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "localhost",
                           port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    /* Both ways at once; each writer's end of input is a close_notify and
     * a half-close, after which the other direction goes on to its end. */
    struct nc_flow flows[2];
    nc_flow_init(&flows[0], c.in, l.out, BULK_BYTES, 1);
    nc_flow_init(&flows[1], l.in, c.out, BULK_BYTES, 2);
    proc_forget_fd(&c, c.in);
    proc_forget_fd(&l, l.in);
    c.in = l.in = -1;
    cr_expect(nc_pump(flows, 2, 120000), "listen: %s connect: %s", l.errbuf, c.errbuf);
    cr_expect_eq(proc_wait(&l, WAIT_MS), 0, "listen: %s", l.errbuf);
    cr_expect_eq(proc_wait(&c, WAIT_MS), 0, "connect: %s", c.errbuf);
}

#define STALLERS 1000

Test(cli_tls, stalled_handshakes_time_out_without_holding_up_a_client, .timeout = 120)
{
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < STALLERS + 200) {
        rl.rlim_cur = rl.rlim_max < STALLERS + 200 ? rl.rlim_max : STALLERS + 200;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    cr_assert_geq(rl.rlim_cur, STALLERS + 100, "need %d descriptors", STALLERS + 100);
    struct proc l, c;
    const char *largs[] = {"listen",         "--tls", "--tls-cert", at("server.pem"), "--tls-key",
                           at("server.key"), "-k",    "-m",         "2000",           "127.0.0.1:0",
                           NULL};
    uint16_t port = nc_listen(&l, largs);
    /* Half a ClientHello each: a record header that promises 512 bytes,
     * then the start of the handshake message, and silence. */
    static const unsigned char half[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01,
                                         0xfc, 0x03, 0x03, 0x11, 0x22, 0x33, 0x44};
    int *fds = malloc(STALLERS * sizeof *fds);
    uint64_t first = tn_now_ms();
    for (int i = 0; i < STALLERS; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0, "staller %d cannot connect", i);
        cr_assert(tn_write_all(fds[i], half, sizeof half));
    }
    uint64_t start = tn_now_ms();
    /* A real client is served meanwhile. */
    const char *cargs[] = {"connect", "--tls", "--tls-ca", at("ca.pem"), "localhost",
                           port_str(0, port), NULL};
    cr_assert(nc_start(&c, -1, cargs));
    cr_assert(tn_write_all(c.in, "not held up\n", 12));
    cr_expect(nc_read_is(l.out, "not held up\n", WAIT_MS), "listen: %s", l.errbuf);
    cr_assert(tn_write_all(l.in, "served\n", 7));
    cr_expect(nc_read_is(c.out, "served\n", WAIT_MS), "connect: %s", c.errbuf);
    /* The client was not served by dropping the stallers: while their
     * handshake deadline (10 s from accept, later than `first`) has not
     * come, every one of them is still open.  On a machine too slow to
     * get here in time there is nothing to tell, and nothing is checked. */
    if (tn_now_ms() - first < 9000) {
        int open_now = 0;
        for (int i = 0; i < STALLERS; i++) {
            struct pollfd pfd = {.fd = fds[i], .events = POLLIN};
            if (poll(&pfd, 1, 0) == 0)
                open_now++;
        }
        cr_expect_eq(open_now, STALLERS, "only %d of %d stallers held while the client was served",
                     open_now, STALLERS);
    } else {
        cr_log_warn("the client took more than 9 s: the stallers' being held is not checked");
    }
    /* Every staller is closed at its handshake deadline (10 s), not left
     * to hold a descriptor. */
    int closed = 0;
    for (int i = 0; i < STALLERS; i++) {
        uint64_t spent = tn_now_ms() - start;
        unsigned left = spent < 40000 ? (unsigned)(40000 - spent) : 1;
        if (nc_eof_state(fds[i], left) >= 1)
            closed++;
        close(fds[i]);
    }
    free(fds);
    cr_expect_eq(closed, STALLERS, "%d of %d stalled handshakes were closed", closed, STALLERS);
    proc_pump_err(&l, 200);
    cr_expect(strstr(l.errbuf, "handshake timed out"), "%s", l.errbuf);
    proc_signal(&c, SIGTERM, WAIT_MS);
    proc_signal(&l, SIGTERM, WAIT_MS);
}

/* ---- relay: terminate, originate, both ---- */

/* A plaintext HTTP server (python3 -m http.server) serving dir.  A port
 * another test's server took first ends that start: another port. */
static uint16_t http_server(struct proc *p)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        uint16_t port = tn_server_port();
        static char portarg[8];
        snprintf(portarg, sizeof portarg, "%u", port);
        char *argv[] = {"python3", "-m", "http.server", "--bind", "127.0.0.1", "--directory",
                        dir, portarg, NULL};
        cr_assert(nc_spawn(p, -1, argv), "cannot start python3 -m http.server");
        if (nc_wait_own_listener(p, port, 3 * WAIT_MS))
            return port;
        proc_signal(p, SIGKILL, WAIT_MS);
        cr_log_warn("the HTTP server on %u did not listen: %s", port, p->errbuf);
    }
    cr_assert_fail("the HTTP server does not listen: %s", p->errbuf);
    return 0;
}

/* curl's body for url (extra: one more curl option or NULL), or "". */
static void curl_get(const char *url, const char *cacert, char *out, size_t cap)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "curl -sS --max-time 10 %s%s%s '%s'", cacert ? "--cacert '" : "",
             cacert ? cacert : "", cacert ? "'" : "", url);
    FILE *f = popen(cmd, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = '\0';
    if (f)
        pclose(f);
}

static uint16_t relay_start(struct proc *r, const char *const *args)
{
    cr_assert(nc_start(r, -1, args), "cannot start relay");
    uint16_t port = proc_listening(r, WAIT_MS);
    cr_assert_neq(port, 0, "relay: %s", r->errbuf);
    return port;
}

Test(cli_tls, curl_over_https_through_a_terminating_relay_in_front_of_plain_http)
{
    sh("printf 'plain HTTP behind TLS\\n' >page.txt");
    struct proc h, r;
    uint16_t hport = http_server(&h);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", hport);
    const char *rargs[] = {"relay",    "--tls-listen",   "--tls-cert", at("server.pem"),
                           "--tls-key", at("server.key"), "127.0.0.1:0", target, NULL};
    uint16_t rport = relay_start(&r, rargs);
    char url[64], body[256];
    snprintf(url, sizeof url, "https://localhost:%u/page.txt", rport);
    curl_get(url, at("ca.pem"), body, sizeof body);
    cr_expect_str_eq(body, "plain HTTP behind TLS\n", "relay: %s", r.errbuf);
    proc_signal(&r, SIGTERM, WAIT_MS);
    proc_signal(&h, SIGTERM, WAIT_MS);
}

Test(cli_tls, a_relay_originating_tls_verifies_its_target_and_resumes_sessions)
{
    /* plain client -> relay --tls-target -> relay --tls-listen -> HTTP */
    sh("printf 'through two relays\\n' >two.txt");
    struct proc h, front, back;
    uint16_t hport = http_server(&h);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", hport);
    const char *bargs[] = {"relay",    "--tls-listen",   "--tls-cert", at("server.pem"),
                           "--tls-key", at("server.key"), "127.0.0.1:0", target, NULL};
    uint16_t bport = relay_start(&back, bargs);
    char tls_target[32];
    snprintf(tls_target, sizeof tls_target, "localhost:%u", bport);
    const char *fargs[] = {"relay", "--tls-target", "--tls-target-ca", at("ca.pem"), "-v",
                           "127.0.0.1:0", tls_target, NULL};
    uint16_t fport = relay_start(&front, fargs);
    char url[64], body[256];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/two.txt", fport);
    for (int i = 0; i < 3; i++) {
        curl_get(url, NULL, body, sizeof body);
        cr_expect_str_eq(body, "through two relays\n", "front: %s back: %s", front.errbuf,
                         back.errbuf);
    }
    proc_pump_err(&front, 200);
    cr_expect(strstr(front.errbuf, "peer /CN=localhost"), "%s", front.errbuf);
    cr_expect(strstr(front.errbuf, ", resumed"), "no session resumed: %s", front.errbuf);
    /* A target whose certificate the relay cannot verify gets no client. */
    const char *uargs[] = {"relay", "--tls-target", "127.0.0.1:0", tls_target, NULL};
    struct proc unverified;
    uint16_t uport = relay_start(&unverified, uargs);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/two.txt", uport);
    curl_get(url, NULL, body, sizeof body);
    cr_expect_str_eq(body, "");
    proc_pump_err(&unverified, 500);
    cr_expect(strstr(unverified.errbuf, "unable to get local issuer certificate"), "%s",
              unverified.errbuf);
    proc_signal(&unverified, SIGTERM, WAIT_MS);
    proc_signal(&front, SIGTERM, WAIT_MS);
    proc_signal(&back, SIGTERM, WAIT_MS);
    proc_signal(&h, SIGTERM, WAIT_MS);
}

#else /* !IOCP_HAVE_TLS */

TestSuite(cli_tls);

Test(cli_tls, without_openssl_tls_is_refused_with_a_message)
{
    const char *args[] = {"connect", "--tls", "localhost", "443", NULL};
    nc_expect_refused_without_tls(args);
}

#endif
