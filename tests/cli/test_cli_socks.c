/* SPDX-License-Identifier: MIT */
/*
 * relay --socks5: the relay as a SOCKS5 server, used by curl (--socks5 and
 * --socks5-hostname) and by iocptool's own proxy client; a tunnel carries
 * 64 MiB byte-exact both ways with half-close; username/password from a
 * private file (right, wrong, missing, and of the maximum length);
 * --to-deny on an address and on a name; a client that sends nothing is
 * reset; a request for a 255-byte name and broken requests get answers,
 * never a crash or a hang.
 */
#include <criterion/criterion.h>

#include "proxy_support.h"

TestSuite(cli_socks, .fini = proc_cleanup_all, .timeout = 120);

#define BIG ((size_t)64 << 20)

/* Start relay --socks5 127.0.0.1:0 with extra options; its port. */
static uint16_t socks_relay(struct proc *r, const char *const *extra)
{
    const char *argv[24];
    int n = 0;
    argv[n++] = "relay";
    argv[n++] = "-v";
    argv[n++] = "--no-stats";
    for (int i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n++] = "--socks5";
    argv[n++] = "127.0.0.1:0";
    argv[n] = NULL;
    cr_assert(nc_start(r, -1, argv));
    uint16_t port = proc_listening(r, 10000);
    cr_assert_neq(port, 0, "relay: %s", r->errbuf);
    return port;
}

static bool have(const char *prog)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
    return system(cmd) == 0;
}

/* curl through the relay to an HTTP answer given here. */
static void curl_through(const char *flag, const char *host)
{
    if (!have("curl")) {
        cr_assert(!getenv("IOCP_TEST_REQUIRE_ALL"), "curl is not installed");
        cr_skip_test("curl is not installed");
    }
    struct proc r, c;
    uint16_t sport = socks_relay(&r, NULL);
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    char proxy[64], url[128];
    snprintf(proxy, sizeof proxy, "127.0.0.1:%u", sport);
    snprintf(url, sizeof url, "http://%s:%u/hello", host, tport);
    char *argv[] = {"curl", "-sS", "--max-time", "20", (char *)flag, proxy, url, NULL};
    cr_assert(nc_spawn(&c, open("/dev/null", O_RDONLY | O_CLOEXEC), argv));
    int fd = nc_accept(lfd, 20000);
    cr_assert(fd >= 0, "curl did not come through; relay: %s", r.errbuf);
    char req[2048];
    size_t got = 0;
    while (got < sizeof req - 1 && !memmem(req, got, "\r\n\r\n", 4)) {
        size_t n = tn_read_full(fd, req + got, 1, 10000);
        if (n == 0)
            break;
        got += n;
    }
    cr_assert(memmem(req, got, "GET /hello", 10), "the request came through");
    static const char answer[] = "HTTP/1.0 200 OK\r\nContent-Length: 14\r\n\r\nthrough socks\n";
    cr_assert(tn_write_all(fd, answer, sizeof answer - 1));
    close(fd);
    cr_expect(nc_read_is(c.out, "through socks\n", 20000), "curl: %s", c.errbuf);
    cr_expect_eq(proc_wait(&c, 20000), 0, "curl: %s", c.errbuf);
    close(lfd);
}

Test(cli_socks, curl_socks5_resolves_the_name_itself)
{
    curl_through("--socks5", "localhost");
}

Test(cli_socks, curl_socks5_hostname_leaves_the_name_to_the_relay)
{
    curl_through("--socks5-hostname", "localhost");
}

/* connect --proxy URL to a target here: `bytes` each way with half-close. */
static void tool_through(const char *proxy_url, size_t bytes)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    char p[8];
    snprintf(p, sizeof p, "%u", tport);
    struct proc t;
    cr_assert(proc_start(&t, -1, "connect", "-w", "20", "--proxy", proxy_url, "localhost", p,
                         NULL));
    int peer = nc_accept(lfd, 20000);
    if (peer < 0)
        proc_wait(&t, 2000);
    cr_assert(peer >= 0, "no tunnel; iocptool: %s", t.errbuf);
    struct nc_flow f[2];
    nc_flow_init(&f[0], t.in, peer, bytes, 41);
    nc_flow_init(&f[1], peer, t.out, bytes, 42);
    proc_forget_fd(&t, t.in);
    t.in = -1;
    cr_expect(nc_pump(f, 2, 60000), "byte-exact both ways; iocptool: %s", t.errbuf);
    cr_expect_eq(proc_wait(&t, 10000), 0, "iocptool: %s", t.errbuf);
    close(peer);
    close(lfd);
}

Test(cli_socks, iocptool_through_its_own_socks_relay_carries_64_mib_both_ways)
{
    struct proc r;
    char u[64];
    snprintf(u, sizeof u, "socks5h://127.0.0.1:%u", socks_relay(&r, NULL));
    tool_through(u, BIG);
}

Test(cli_socks, username_and_password_of_the_maximum_length)
{
    char file[256], user[256], pass[256], line[600], u[700];
    memset(user, 'u', 255);
    memset(pass, 'p', 255);
    user[255] = pass[255] = '\0';
    snprintf(file, sizeof file, "%s/socks-auth", proxy_tmpdir());
    snprintf(line, sizeof line, "alice:s3cret\n%s:%s\n", user, pass);
    proxy_write_file(file, line, 0600);
    struct proc r;
    const char *extra[] = {"--socks5-auth", file, NULL};
    uint16_t port = socks_relay(&r, extra);
    snprintf(u, sizeof u, "socks5://%s:%s@127.0.0.1:%u", user, pass, port);
    tool_through(u, (size_t)1 << 20);
    snprintf(u, sizeof u, "socks5h://alice:s3cret@127.0.0.1:%u", port);
    tool_through(u, (size_t)1 << 20);

    struct proc t;
    snprintf(u, sizeof u, "socks5://alice:wrong@127.0.0.1:%u", port);
    cr_assert(proc_start(&t, -1, "connect", "--proxy", u, "127.0.0.1", "1", NULL));
    cr_expect_eq(proc_wait(&t, 20000), 1, "%s", t.errbuf);
    cr_expect(strstr(t.errbuf, "SOCKS5: the proxy refused the user name or password"), "%s",
              t.errbuf);
    struct proc t2;
    snprintf(u, sizeof u, "socks5://127.0.0.1:%u", port);
    cr_assert(proc_start(&t2, -1, "connect", "--proxy", u, "127.0.0.1", "1", NULL));
    cr_expect_eq(proc_wait(&t2, 20000), 1, "%s", t2.errbuf);
    cr_expect(strstr(t2.errbuf, "SOCKS5: the proxy accepts none of the offered methods") ||
                  strstr(t2.errbuf, "SOCKS5: the proxy requires authentication"),
              "%s", t2.errbuf);

    /* An auth file others may read is refused, like a key file. */
    chmod(file, 0644);
    struct proc r2;
    cr_assert(proc_start(&r2, -1, "relay", "--socks5-auth", file, "--socks5", "127.0.0.1:0",
                         NULL));
    cr_expect_eq(proc_wait(&r2, 10000), 2, "%s", r2.errbuf);
}

Test(cli_socks, destinations_denied_by_address_and_by_name_get_no_byte)
{
    struct proc r;
    const char *extra[] = {"--to-deny", "127.0.0.0/8", NULL};
    uint16_t port = socks_relay(&r, extra);
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    char p[8], u[64];
    snprintf(p, sizeof p, "%u", tport);
    snprintf(u, sizeof u, "socks5h://127.0.0.1:%u", port);
    struct proc t;
    cr_assert(proc_start(&t, -1, "connect", "--proxy", u, "127.0.0.1", p, NULL));
    cr_expect_eq(proc_wait(&t, 20000), 1, "%s", t.errbuf);
    cr_expect(strstr(t.errbuf, "SOCKS5: connection not allowed by the proxy's rules"), "%s",
              t.errbuf);
    /* A name is judged by the address it leads to: the target may see a
     * connection, never a byte. */
    struct proc t2;
    cr_assert(proc_start(&t2, -1, "connect", "--proxy", u, "localhost", p, NULL));
    cr_expect_eq(proc_wait(&t2, 20000), 1, "%s", t2.errbuf);
    cr_expect(strstr(t2.errbuf, "SOCKS5: connection not allowed by the proxy's rules"), "%s",
              t2.errbuf);
    int fd = nc_accept(lfd, 2000);
    if (fd >= 0) {
        cr_expect_neq(nc_eof_state(fd, 10000), -1, "no byte reaches a denied destination");
        close(fd);
    }
    close(lfd);
}

/* A raw SOCKS client: send, then read the answer (up to len bytes). */
static size_t raw(uint16_t port, const void *msg, size_t mlen, uint8_t *ans, size_t len, int *fdp)
{
    int fd = tn_connect(port);
    cr_assert(fd >= 0);
    if (mlen)
        cr_assert(tn_write_all(fd, msg, mlen));
    size_t got = tn_read_full(fd, ans, len, 20000);
    *fdp = fd;
    return got;
}

Test(cli_socks, a_client_that_sends_nothing_is_reset)
{
    struct proc r;
    const char *extra[] = {"-w", "1", NULL};
    uint16_t port = socks_relay(&r, extra);
    int fd = tn_connect(port);
    cr_assert(fd >= 0);
    int state = nc_eof_state(fd, 20000);
    cr_expect(state == 1 || state == 2, "closed or reset, not left hanging (%d)", state);
    close(fd);
    /* And the relay still serves. */
    uint8_t ans[2];
    static const uint8_t hello[] = {5, 1, 0};
    int fd2;
    cr_expect_eq(raw(port, hello, sizeof hello, ans, 2, &fd2), 2);
    cr_expect(ans[0] == 5 && ans[1] == 0);
    close(fd2);
}

Test(cli_socks, a_request_for_a_255_byte_name_is_answered)
{
    struct proc r;
    uint16_t port = socks_relay(&r, NULL);
    uint8_t msg[3 + 4 + 1 + 255 + 2] = {5, 1, 0, 5, 1, 0, 3, 255};
    memset(msg + 8, 'a', 255);
    memcpy(msg + 8 + 255 - 8, ".invalid", 8);
    msg[8 + 255] = 0;
    msg[8 + 255 + 1] = 80;
    uint8_t ans[12];
    int fd;
    size_t got = raw(port, msg, sizeof msg, ans, 12, &fd);
    cr_assert_geq(got, 4, "the method and a reply came");
    cr_expect_eq(ans[0], 5);
    cr_expect_eq(ans[1], 0);
    cr_expect_eq(ans[2], 5);
    cr_expect_eq(ans[3], 4, "host unreachable (got %u)", ans[3]);
    close(fd);
}

Test(cli_socks, broken_requests_are_answered_or_closed_never_hung)
{
    struct proc r;
    uint16_t port = socks_relay(&r, NULL);
    uint8_t ans[16];
    int fd;
    /* Not SOCKS5 at all: closed at once. */
    static const uint8_t socks4[] = {4, 1, 0, 80, 127, 0, 0, 1, 0};
    cr_expect_eq(raw(port, socks4, sizeof socks4, ans, 1, &fd), 0);
    close(fd);
    /* BIND: "command not supported". */
    static const uint8_t bind[] = {5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80};
    cr_expect_eq(raw(port, bind, sizeof bind, ans, 12, &fd), 12);
    cr_expect_eq(ans[3], 7);
    close(fd);
    /* An unknown address type: "address type not supported". */
    static const uint8_t atyp[] = {5, 1, 0, 5, 1, 0, 9, 1, 2, 3};
    cr_expect_eq(raw(port, atyp, sizeof atyp, ans, 12, &fd), 12);
    cr_expect_eq(ans[3], 8);
    close(fd);
    /* A truncated request and a hang-up: the relay lives on. */
    static const uint8_t cut[] = {5, 1, 0, 5, 1, 0, 3, 200, 'x'};
    cr_expect_eq(raw(port, cut, sizeof cut, ans, 2, &fd), 2);
    close(fd);
    static const uint8_t hello[] = {5, 1, 0};
    cr_expect_eq(raw(port, hello, sizeof hello, ans, 2, &fd), 2);
    close(fd);
    cr_expect_eq(proc_wait(&r, 0), -1, "the relay still runs: %s", r.errbuf);
}
