/* SPDX-License-Identifier: MIT */
/*
 * iocptool connect through proxies: real ones started here (Dante's sockd
 * for SOCKS4 and SOCKS5, tinyproxy for HTTP CONNECT, with and without
 * credentials; tests/cli/proxy_support.h) carry 64 MiB byte-exact both ways
 * with half-close, and turn away a wrong password and a refused target
 * with a clear message; small mock proxies in the test play the proxy that
 * never answers, the one that hangs up mid-negotiation, truncated replies
 * and a 64 KiB response header.
 */
#include <criterion/criterion.h>

#include "proxy_support.h"

TestSuite(cli_proxy, .fini = proc_cleanup_all, .timeout = 120);

#define BIG ((size_t)64 << 20)
#define SMALL ((size_t)4 << 20)

/*
 * Move each flow's bytes without ending any direction: the whole stream
 * both ways, checked, and nothing more.  For tinyproxy, which tears the
 * tunnel down at the first end of stream from either side (its relay loop
 * stops at one side's EOF, drops what the other side still had in
 * flight and closes both), so half-close cannot be asked of it.
 */
static bool pump_exact(struct nc_flow *f, int n, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    unsigned char *buf = malloc(1 << 16);
    bool ok = true;
    for (;;) {
        struct pollfd pfd[4];
        int map[4], k = 0;
        for (int i = 0; i < n; i++) {
            if (f[i].written < f[i].total) {
                pfd[k] = (struct pollfd){.fd = f[i].wfd, .events = POLLOUT};
                map[k++] = i;
            }
            if (f[i].got < f[i].total) {
                pfd[k] = (struct pollfd){.fd = f[i].rfd, .events = POLLIN};
                map[k++] = 100 + i;
            }
        }
        uint64_t now = tn_now_ms();
        if (k == 0 || now >= end || poll(pfd, (nfds_t)k, (int)(end - now)) < 0)
            break;
        for (int j = 0; j < k; j++) {
            struct nc_flow *fl = &f[map[j] % 100];
            if (!pfd[j].revents)
                continue;
            if (map[j] < 100) {
                size_t len = fl->total - fl->written;
                ssize_t w = write(fl->wfd, fl->pat + fl->written % NC_PERIOD,
                                  len > 65536 ? 65536 : len);
                if (w > 0)
                    fl->written += (size_t)w;
            } else {
                ssize_t got = read(fl->rfd, buf, 1 << 16);
                if (got <= 0 && !(got < 0 && (errno == EAGAIN || errno == EINTR))) {
                    fl->bad = true;
                    fl->got = fl->total;
                } else if (got > 0) {
                    if (fl->got + (size_t)got > fl->total ||
                        memcmp(buf, fl->pat + fl->got % NC_PERIOD, (size_t)got))
                        fl->bad = true;
                    fl->got += (size_t)got;
                }
            }
        }
    }
    for (int i = 0; i < n; i++) {
        if (f[i].bad || f[i].got != f[i].total) {
            cr_log_error("flow %d: %zu of %zu bytes written, %zu read%s", i, f[i].written,
                         f[i].total, f[i].got, f[i].bad ? ", wrong bytes or early end" : "");
            ok = false;
        }
        free((void *)f[i].pat);
    }
    free(buf);
    return ok;
}

/*
 * Start `connect ARGS... 127.0.0.1 PORT` to a target listening here, take
 * the connection the proxy makes, and move `bytes` each way at once.  With
 * half_close each direction then ends on its own and the tool ends with
 * status 0 once both have; without, the target and stdin close once every
 * byte has arrived both ways, and the tool ends with status 0.
 */
static void through_ex(const char *const *args, size_t bytes, bool half_close)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert(lfd >= 0);
    char pstr[8];
    snprintf(pstr, sizeof pstr, "%u", tport);
    const char *argv[24];
    int n = 0;
    argv[n++] = "connect";
    argv[n++] = "-w";
    argv[n++] = "20";
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = "127.0.0.1";
    argv[n++] = pstr;
    argv[n] = NULL;
    struct proc t;
    cr_assert(nc_start(&t, -1, argv));
    int peer = nc_accept(lfd, 20000);
    if (peer < 0)
        proc_wait(&t, 2000);
    cr_assert(peer >= 0, "the proxy made no connection to the target; iocptool: %s", t.errbuf);
    close(lfd);
    struct nc_flow f[2];
    nc_flow_init(&f[0], t.in, peer, bytes, 21);
    nc_flow_init(&f[1], peer, t.out, bytes, 22);
    if (half_close) {
        proc_forget_fd(&t, t.in);
        t.in = -1;
        cr_expect(nc_pump(f, 2, 60000), "byte-exact both ways through the proxy; iocptool: %s",
                  t.errbuf);
    } else {
        cr_expect(pump_exact(f, 2, 60000), "byte-exact both ways through the proxy; iocptool: %s",
                  t.errbuf);
        /* The target ends, and so does stdin: the tool's normal end. */
        close(peer);
        peer = -1;
        proc_close_in(&t);
    }
    cr_expect_eq(proc_wait(&t, 10000), 0, "iocptool: %s", t.errbuf);
    if (peer >= 0)
        close(peer);
}

static void through(const char *const *args, size_t bytes)
{
    through_ex(args, bytes, true);
}

/* Run `connect ARGS... HOST PORT` expecting exit 1 and `want` on stderr. */
static void refused(const char *const *args, const char *host, uint16_t port, const char *want)
{
    char pstr[8];
    snprintf(pstr, sizeof pstr, "%u", port);
    const char *argv[24];
    int n = 0;
    argv[n++] = "connect";
    for (int i = 0; args[i]; i++)
        argv[n++] = args[i];
    argv[n++] = host;
    argv[n++] = pstr;
    argv[n] = NULL;
    struct proc t;
    cr_assert(nc_start(&t, open("/dev/null", O_RDONLY | O_CLOEXEC), argv));
    cr_expect_eq(proc_wait(&t, 30000), 1, "status; stderr: %s", t.errbuf);
    cr_expect(strstr(t.errbuf, want), "stderr says \"%s\": %s", want, t.errbuf);
}

static const char *url(char *buf, size_t len, const char *scheme, const char *cred, uint16_t port)
{
    snprintf(buf, len, "%s://%s%s127.0.0.1:%u", scheme, cred ? cred : "", cred ? "@" : "", port);
    return buf;
}

/* ---- Dante: SOCKS5 and SOCKS4 ---- */

Test(cli_proxy, socks5_through_dante_carries_64_mib_both_ways)
{
    struct proc d;
    char u[128];
    uint16_t port = proxy_start_dante(&d, "none");
    const char *args[] = {"--proxy", url(u, sizeof u, "socks5", NULL, port), NULL};
    through(args, BIG);
}

Test(cli_proxy, socks5h_with_username_and_password_through_dante)
{
    struct proc d;
    char u[160];
    uint16_t port = proxy_start_dante(&d, "username");
    const char *args[] = {
        "--proxy", url(u, sizeof u, "socks5h", PROXY_TEST_USER ":" PROXY_TEST_PASS, port), NULL};
    through(args, SMALL);
}

Test(cli_proxy, proxy_auth_file_gives_the_credentials_and_must_be_private)
{
    struct proc d;
    char u[160], file[256];
    uint16_t port = proxy_start_dante(&d, "username");
    snprintf(file, sizeof file, "%s/auth-%u", proxy_tmpdir(), port);
    proxy_write_file(file, PROXY_TEST_USER ":" PROXY_TEST_PASS "\n", 0600);
    const char *args[] = {"--proxy", url(u, sizeof u, "socks5", NULL, port), "--proxy-auth", file,
                          NULL};
    through(args, SMALL);

    /* Readable by others: refused before any connection, like --key. */
    chmod(file, 0644);
    struct proc t;
    cr_assert(proc_start(&t, -1, "connect", "--proxy", u, "--proxy-auth", file, "127.0.0.1", "1",
                         NULL));
    cr_expect_eq(proc_wait(&t, 10000), 2, "status; stderr: %s", t.errbuf);
    cr_expect(strstr(t.errbuf, file), "names the file: %s", t.errbuf);
}

Test(cli_proxy, socks5_wrong_password_and_missing_credentials_are_told_apart)
{
    struct proc d;
    char u[160];
    uint16_t port = proxy_start_dante(&d, "username");
    const char *bad[] = {"--proxy", url(u, sizeof u, "socks5", PROXY_TEST_USER ":wrong", port),
                         NULL};
    refused(bad, "127.0.0.1", 1, "SOCKS5: the proxy refused the user name or password");
    char u2[128];
    const char *none[] = {"--proxy", url(u2, sizeof u2, "socks5", NULL, port), NULL};
    refused(none, "127.0.0.1", 1, "SOCKS5: the proxy requires authentication");
}

Test(cli_proxy, socks4_and_socks4a_through_dante)
{
    struct proc d;
    char u[128];
    uint16_t port = proxy_start_dante(&d, "none");
    const char *v4[] = {"--proxy", url(u, sizeof u, "socks4", NULL, port), NULL};
    through(v4, SMALL);
    /* nc's spelling: -X 4 -x HOST:PORT. */
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%u", port);
    const char *nc4[] = {"-X", "4", "-x", hp, NULL};
    through(nc4, SMALL);
}

Test(cli_proxy, nc_spelling_defaults_to_socks5)
{
    struct proc d;
    char hp[64];
    uint16_t port = proxy_start_dante(&d, "none");
    snprintf(hp, sizeof hp, "127.0.0.1:%u", port);
    const char *args[] = {"-x", hp, NULL};
    through(args, SMALL);
}

Test(cli_proxy, dante_refusing_the_target_is_a_clear_error)
{
    struct proc d;
    char u[128];
    uint16_t port = proxy_start_dante(&d, "none");
    const char *v5[] = {"--proxy", url(u, sizeof u, "socks5", NULL, port), NULL};
    refused(v5, "127.0.0.1", PROXY_BLOCKED_PORT,
            "SOCKS5: connection not allowed by the proxy's rules");
    refused(v5, "127.0.0.1", tn_closed_port(), "SOCKS5: connection refused by the proxy's target");
    char u4[128];
    const char *v4[] = {"--proxy", url(u4, sizeof u4, "socks4", NULL, port), NULL};
    refused(v4, "127.0.0.1", PROXY_BLOCKED_PORT, "SOCKS4: request rejected or failed");
}

/* ---- tinyproxy: HTTP CONNECT ---- */

Test(cli_proxy, http_connect_through_tinyproxy_carries_64_mib_both_ways)
{
    struct proc tp;
    char u[128];
    uint16_t port = proxy_start_tinyproxy(&tp, NULL, NULL);
    const char *args[] = {"--proxy", url(u, sizeof u, "http", NULL, port), NULL};
    through_ex(args, BIG, false);
}

Test(cli_proxy, http_connect_with_basic_auth_through_tinyproxy)
{
    struct proc tp;
    char u[128], hp[64];
    uint16_t port = proxy_start_tinyproxy(&tp, "alice", "s3cret");
    const char *good[] = {"--proxy", url(u, sizeof u, "http", "alice:s3cret", port), NULL};
    through_ex(good, SMALL, false);
    char u2[128];
    const char *bad[] = {"--proxy", url(u2, sizeof u2, "http", "alice:wrong", port), NULL};
    refused(bad, "127.0.0.1", 1, "HTTP 401");
    snprintf(hp, sizeof hp, "127.0.0.1:%u", port);
    const char *none[] = {"-X", "connect", "-x", hp, NULL};
    refused(none, "127.0.0.1", 1, "HTTP 407 Proxy Authentication Required");
}

Test(cli_proxy, tinyproxy_failing_to_reach_the_target_is_a_clear_error)
{
    struct proc tp;
    char u[128];
    uint16_t port = proxy_start_tinyproxy(&tp, NULL, NULL);
    const char *args[] = {"--proxy", url(u, sizeof u, "http", NULL, port), NULL};
    refused(args, "127.0.0.1", tn_closed_port(), "HTTP 500");
}

/* ---- mock proxies: silence, hang-ups, truncated and oversized replies ---- */

/*
 * A proxy that accepts, reads the client's first message, answers with
 * `reply` (len bytes, may be 0) and then closes, or (hold) stays silent.
 */
static void mock(const char *scheme, const void *reply, size_t len, bool hold, const char *want)
{
    uint16_t port;
    int lfd = tn_listen(&port);
    cr_assert(lfd >= 0);
    char u[128];
    const char *w = hold ? "1" : "10";
    struct proc t;
    cr_assert(proc_start(&t, open("/dev/null", O_RDONLY | O_CLOEXEC), "connect", "-w", w,
                         "--proxy", url(u, sizeof u, scheme, NULL, port), "example.org", "80",
                         NULL));
    int fd = nc_accept(lfd, 10000);
    cr_assert(fd >= 0, "iocptool did not reach the mock proxy: %s", t.errbuf);
    char first[512];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "no request from iocptool");
    cr_assert_gt(read(fd, first, sizeof first), 0);
    if (len)
        tn_write_all(fd, reply, len);
    if (!hold)
        shutdown(fd, SHUT_WR);
    cr_expect_eq(proc_wait(&t, 20000), 1, "status; stderr: %s", t.errbuf);
    cr_expect(strstr(t.errbuf, want), "stderr says \"%s\": %s", want, t.errbuf);
    close(fd);
    close(lfd);
}

Test(cli_proxy, a_proxy_that_never_answers_times_out)
{
    mock("socks5h", NULL, 0, true, "SOCKS5: no answer from the proxy within 1000 ms");
    mock("http", NULL, 0, true, "HTTP: no answer from the proxy within 1000 ms");
}

Test(cli_proxy, a_proxy_that_closes_mid_negotiation_is_a_clear_error)
{
    mock("socks5h", NULL, 0, false,
         "SOCKS5: the proxy closed the connection during the negotiation");
    mock("socks4a", NULL, 0, false,
         "SOCKS4a: the proxy closed the connection during the negotiation");
    mock("http", NULL, 0, false, "HTTP: the proxy closed the connection during the negotiation");
}

Test(cli_proxy, truncated_and_malformed_socks_replies_fail_cleanly)
{
    static const uint8_t half_choice[] = {5};
    mock("socks5h", half_choice, sizeof half_choice, false,
         "SOCKS5: the proxy closed the connection during the negotiation");
    static const uint8_t not_socks[] = {'H', 'T', 'T', 'P'};
    mock("socks5h", not_socks, sizeof not_socks, false, "SOCKS5: the proxy does not speak SOCKS5");
    static const uint8_t half_reply4[] = {0, 90, 0};
    mock("socks4a", half_reply4, sizeof half_reply4, false,
         "SOCKS4a: the proxy closed the connection during the negotiation");
    static const uint8_t bad4[] = {0, 17, 0, 0, 0, 0, 0, 0};
    mock("socks4a", bad4, sizeof bad4, false, "SOCKS4: unknown reply code 17");
}

Test(cli_proxy, a_64_kib_http_response_header_is_refused_not_buffered)
{
    size_t len = 64 * 1024;
    char *reply = malloc(len);
    memcpy(reply, "HTTP/1.1 200 Connection established\r\n", 38);
    for (size_t i = 38; i < len; i++)
        reply[i] = (i % 64 == 63) ? '\n' : 'x';
    mock("http", reply, len, false, "HTTP: the proxy's response header is longer than");
    free(reply);
    static const char not_http[] = "SSH-2.0-OpenSSH\r\n";
    mock("http", not_http, sizeof not_http - 1, false, "HTTP: the proxy's answer is not HTTP");
}

Test(cli_proxy, proxy_usage_errors_exit_2)
{
    static const char *const cases[][3] = {
        {"--proxy", "ftp://127.0.0.1:21", "unknown scheme 'ftp'"},
        {"--proxy", "127.0.0.1:1080", "expected SCHEME://"},
        {"--proxy", "socks4://user:pw@127.0.0.1", "SOCKS4 takes a user ID but no password"},
        {"-X", "7", "-x"},
        {"--proxy-auth", "/nonexistent", "no proxy given"},
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct proc t;
        if (strcmp(cases[i][0], "-X") == 0)
            cr_assert(proc_start(&t, -1, "connect", "-X", "7", "-x", "127.0.0.1", "h", "1", NULL));
        else
            cr_assert(proc_start(&t, -1, "connect", cases[i][0], cases[i][1], "h", "1", NULL));
        cr_expect_eq(proc_wait(&t, 10000), 2, "%s %s: %s", cases[i][0], cases[i][1], t.errbuf);
        const char *want = strcmp(cases[i][0], "-X") == 0 ? "-X 7: expected 4, 5 or connect"
                                                          : cases[i][2];
        cr_expect(strstr(t.errbuf, want), "%s %s: %s", cases[i][0], cases[i][1], t.errbuf);
    }
}

/* ---- relay --proxy: the targets behind a proxy ---- */

Test(cli_proxy, relay_reaches_its_target_through_a_proxy)
{
    struct proc d, r;
    char u[128], target[64];
    uint16_t dport = proxy_start_dante(&d, "none");
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert(lfd >= 0);
    snprintf(target, sizeof target, "127.0.0.1:%u", tport);
    cr_assert(proc_start(&r, -1, "relay", "--no-stats", "--proxy",
                         url(u, sizeof u, "socks5h", NULL, dport), "127.0.0.1:0", target, NULL));
    uint16_t rport = proc_listening(&r, 10000);
    cr_assert_neq(rport, 0, "relay: %s", r.errbuf);
    int client = tn_connect(rport);
    cr_assert(client >= 0);
    int peer = nc_accept(lfd, 10000);
    cr_assert(peer >= 0, "the relay did not reach the target through the proxy: %s", r.errbuf);
    struct nc_flow f[2];
    nc_flow_init(&f[0], client, peer, SMALL, 31);
    nc_flow_init(&f[1], peer, client, SMALL, 32);
    cr_expect(nc_pump(f, 2, 60000), "byte-exact both ways; relay: %s", r.errbuf);
    close(client);
    close(peer);
    close(lfd);

    /* A target the proxy refuses: the client is reset, and -v says why. */
    struct proc r2;
    char blocked[32];
    snprintf(blocked, sizeof blocked, "127.0.0.1:%d", PROXY_BLOCKED_PORT);
    cr_assert(proc_start(&r2, -1, "relay", "-v", "--no-stats", "--proxy",
                         url(u, sizeof u, "socks5", NULL, dport), "127.0.0.1:0", blocked, NULL));
    rport = proc_listening(&r2, 10000);
    cr_assert_neq(rport, 0, "relay: %s", r2.errbuf);
    client = tn_connect(rport);
    cr_assert(client >= 0);
    cr_expect_eq(nc_eof_state(client, 10000), 2, "the client is reset");
    close(client);
    uint64_t end = tn_now_ms() + 5000;
    while (!strstr(r2.errbuf, "SOCKS5: connection not allowed by the proxy's rules") &&
           tn_now_ms() < end)
        proc_pump_err(&r2, 50);
    cr_expect(strstr(r2.errbuf, "SOCKS5: connection not allowed by the proxy's rules"), "%s",
              r2.errbuf);
}
