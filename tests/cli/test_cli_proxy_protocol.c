/* SPDX-License-Identifier: MIT */
/*
 * The PROXY protocol through iocptool relay, against a real haproxy both
 * ways: haproxy in front sending v1 or v2 to relay --accept-proxy (the
 * relay then speaks of the real client: -v and the target's own PROXY
 * header show the client's address, not haproxy's), and relay
 * --send-proxy / --send-proxy-v2 in front of haproxy's accept-proxy
 * (haproxy's log shows the client's address).  A malformed, too long,
 * cut or late header closes that connection and no other.
 *
 * haproxy is started with a configuration written here, on free loopback
 * ports, in the foreground, logging to its stdout; the suite stops it.
 */
#include <criterion/criterion.h>

#include <stdio.h>

#include "nc_support.h"
#include "statsclient.h"

static char tmpdir[64];

static void pp_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "pp");
}

static void pp_fini(void)
{
    nc_dir_fini(tmpdir);
}

TestSuite(cli_proxy_protocol, .init = pp_init, .fini = pp_fini, .timeout = 60);

/* ---- helpers ---- */

/* haproxy in the foreground with this configuration (a file in tmpdir);
 * its frontend binds "fd@3", the listener hfd the test made. */
static void start_haproxy(struct proc *p, const char *cfg, int hfd)
{
    char path[128];
    snprintf(path, sizeof path, "%s/haproxy-%d.cfg", tmpdir, (int)getpid());
    nc_spawn_haproxy(p, path, cfg, hfd);
}

static const char haproxy_common[] = "global\n"
                                     "  log stdout format raw local0\n"
                                     "defaults\n"
                                     "  mode tcp\n"
                                     "  log global\n"
                                     "  timeout connect 5s\n"
                                     "  timeout client 30s\n"
                                     "  timeout server 30s\n";

/* Read p's stdout until it holds needle; whether it did within ms. */
static bool stdout_has(struct proc *p, char *buf, size_t cap, size_t *len, const char *needle,
                       unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    for (;;) {
        buf[*len] = '\0';
        if (strstr(buf, needle))
            return true;
        uint64_t now = tn_now_ms();
        if (now >= end || *len + 1 >= cap)
            return false;
        struct pollfd pfd = {.fd = p->out, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t n = read(p->out, buf + *len, cap - 1 - *len);
        if (n <= 0)
            return false;
        *len += (size_t)n;
    }
}

static bool stderr_has(struct proc *p, const char *needle, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    for (;;) {
        if (strstr(p->errbuf, needle))
            return true;
        if (tn_now_ms() >= end || p->err < 0)
            return false;
        proc_pump_err(p, 20);
    }
}

/* "127.0.0.1:PORT" of a connected socket's own end. */
static void local_name(int fd, char *buf, size_t len)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    snprintf(buf, len, "127.0.0.1:%u", ntohs(sa.sin_port));
}

/* One echoed exchange through port, then an orderly end both ways. */
static void echo_once(int fd, const char *msg)
{
    cr_assert(tn_write_all(fd, msg, strlen(msg)));
    cr_assert(nc_read_is(fd, msg, 5000), "the echo of %s", msg);
    shutdown(fd, SHUT_WR);
    cr_expect(nc_eof_within(fd, 5000), "EOF after the echo");
}

static void expect_clean_exit(struct proc *p)
{
    cr_expect_eq(proc_signal(p, SIGTERM, 10000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

/* ---- haproxy in front: relay --accept-proxy ---- */

/*
 * haproxy (send-proxy or send-proxy-v2) -> relay --accept-proxy
 * --send-proxy-v2 -> a plain listener of the test's.  The relay must say
 * the client's own address at -vv, and pass it on in its own v2 header.
 */
static void haproxy_in_front(const char *send_proxy)
{
    uint16_t lport = 0;
    int lfd = tn_listen(&lport);
    cr_assert_geq(lfd, 0);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", lport);
    struct proc relay, ha;
    uint16_t rport = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "-vv", "--no-stats",
                                                        "--accept-proxy", "--send-proxy-v2",
                                                        "127.0.0.1:0", target, NULL});
    uint16_t hport = 0;
    int hfd = tn_listen(&hport);
    cr_assert_geq(hfd, 0);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "%sfrontend fe\n  bind fd@3\n  default_backend be\n"
             "backend be\n  server relay 127.0.0.1:%u %s\n",
             haproxy_common, rport, send_proxy);
    start_haproxy(&ha, cfg, hfd);

    int c = tn_connect(hport);
    cr_assert_geq(c, 0);
    char me[64];
    local_name(c, me, sizeof me);
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    getsockname(c, (struct sockaddr *)&sa, &sl);
    cr_assert(tn_write_all(c, "hello", 5));
    /* The target gets a v2 header with the client's address and port. */
    unsigned char hdr[28 + 5];
    int s = nc_accept(lfd, 10000);
    proc_wait(&ha, 0);
    cr_assert_geq(s, 0, "the relay reaches the target; relay: %s; haproxy: %s", relay.errbuf,
                  ha.errbuf);
    cr_assert_eq(tn_read_full(s, hdr, 28, 5000), 28);
    cr_expect_eq(hdr[24] << 8 | hdr[25], ntohs(sa.sin_port), "the client's port");
    cr_assert_eq(tn_read_full(s, hdr + 28, 5, 5000), 5);
    cr_expect_eq(memcmp(hdr, "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00\x00\x01", 20), 0);
    cr_expect_eq(hdr[26] << 8 | hdr[27], hport, "the port the client reached, haproxy's");
    cr_expect_eq(memcmp(hdr + 28, "hello", 5), 0);
    cr_assert(tn_write_all(s, "world", 5));
    cr_expect(nc_read_is(c, "world", 5000));
    close(c);
    close(s);

    char line[128];
    snprintf(line, sizeof line, "relay: %s -> %s", me, target);
    cr_expect(stderr_has(&relay, line, 5000), "-vv names the real client %s: %s", me,
              relay.errbuf);
    close(lfd);
    expect_clean_exit(&relay);
}

Test(cli_proxy_protocol, haproxy_send_proxy_v2_to_relay_accept_proxy)
{
    haproxy_in_front("send-proxy-v2");
}

Test(cli_proxy_protocol, haproxy_send_proxy_v1_to_relay_accept_proxy)
{
    haproxy_in_front("send-proxy");
}

/* ---- haproxy behind: relay --send-proxy(-v2) -> haproxy accept-proxy ---- */

static void haproxy_behind(const char *option)
{
    struct proc echo, relay, ha;
    uint16_t eport =
        nc_listen(&echo, (const char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
    uint16_t hport = 0;
    int hfd = tn_listen(&hport);
    cr_assert_geq(hfd, 0);
    char cfg[2048];
    snprintf(cfg, sizeof cfg,
             "%s  log-format \"proxied-client %%ci:%%cp\"\n"
             "frontend fe\n  bind fd@3 accept-proxy\n  default_backend be\n"
             "backend be\n  server echo 127.0.0.1:%u\n",
             haproxy_common, eport);
    start_haproxy(&ha, cfg, hfd);
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", hport);
    uint16_t rport = nc_listen(&relay, (const char *[]){"relay", "-W", "2", "--no-stats", option,
                                                        "127.0.0.1:0", target, NULL});
    int c = tn_connect(rport);
    cr_assert_geq(c, 0);
    char me[64], want[96];
    local_name(c, me, sizeof me);
    echo_once(c, "through haproxy");
    close(c);
    snprintf(want, sizeof want, "proxied-client %s\n", me);
    static char out[65536];
    size_t len = 0;
    cr_expect(stdout_has(&ha, out, sizeof out, &len, want, 10000),
              "haproxy logs the client %s; its log: %s", me, out);
    expect_clean_exit(&relay);
    expect_clean_exit(&echo);
}

Test(cli_proxy_protocol, relay_send_proxy_v2_to_haproxy_accept_proxy)
{
    haproxy_behind("--send-proxy-v2");
}

Test(cli_proxy_protocol, relay_send_proxy_v1_to_haproxy_accept_proxy)
{
    haproxy_behind("--send-proxy");
}

/* ---- bad headers close their connection only ---- */

/* An echo server and, in front of it, a relay that takes PROXY headers
 * (--accept-proxy), with its stats endpoint at ep and -v when verbose; the
 * relay's port. */
static uint16_t start_proxied_relay(struct proc *echo, struct proc *relay, const char *ep,
                                    bool verbose)
{
    uint16_t eport =
        nc_listen(echo, (const char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", eport);
    const char *args[12];
    int n = 0;
    args[n++] = "relay";
    args[n++] = "-W";
    args[n++] = "2";
    if (verbose)
        args[n++] = "-v";
    args[n++] = "--stats";
    args[n++] = ep;
    args[n++] = "--accept-proxy";
    args[n++] = "127.0.0.1:0";
    args[n++] = target;
    args[n] = NULL;
    return nc_listen(relay, args);
}

/* 1: EOF or reset came (the relay closed it); 0: nothing. */
static bool closed_by_relay(int fd, unsigned ms)
{
    int st = nc_eof_state(fd, ms);
    return st == 1 || st == 2;
}

Test(cli_proxy_protocol, a_bad_cut_or_late_header_closes_that_connection_only)
{
    struct proc echo, relay;
    char stats[128];
    snprintf(stats, sizeof stats, "%s/relay.sock", tmpdir);
    uint16_t rport = start_proxied_relay(&echo, &relay, stats, true);
    /* A good client first, kept open through everything else. */
    int good = tn_connect(rport);
    cr_assert_geq(good, 0);
    const char hdr[] = "PROXY TCP4 192.0.2.7 192.0.2.1 4242 80\r\n";
    cr_assert(tn_write_all(good, hdr, sizeof hdr - 1));
    cr_assert(tn_write_all(good, "one", 3));
    cr_assert(nc_read_is(good, "one", 5000));

    /* The late one connects first, so that its deadline runs while the
     * others are judged. */
    int late = tn_connect(rport);
    cr_assert_geq(late, 0);
    cr_assert(tn_write_all(late, "PROXY TCP4 ", 11));
    uint64_t late_start = tn_now_ms();

    /* Malformed: closed on its first bytes, not at the deadline. */
    int bad = tn_connect(rport);
    cr_assert(tn_write_all(bad, "GET / HTTP/1.0\r\n\r\n", 18));
    cr_expect(closed_by_relay(bad, 3000), "a malformed header closes the connection");
    close(bad);
    int bad2 = tn_connect(rport);
    cr_assert(tn_write_all(bad2, "PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n", 37));
    cr_expect(closed_by_relay(bad2, 3000), "a port out of range closes the connection");
    close(bad2);
    /* Too long: a v1 line that has no end within 107 bytes. */
    int lng = tn_connect(rport);
    char longline[200];
    memset(longline, 'A', sizeof longline);
    memcpy(longline, "PROXY UNKNOWN ", 14);
    cr_assert(tn_write_all(lng, longline, sizeof longline));
    cr_expect(closed_by_relay(lng, 3000), "a too long header closes the connection");
    close(lng);
    /* A v2 header that says it is longer than the relay takes. */
    int lng2 = tn_connect(rport);
    cr_assert(tn_write_all(lng2, "\r\n\r\n\0\r\nQUIT\n\x21\x11\x40\x00", 16));
    cr_expect(closed_by_relay(lng2, 3000), "a too long v2 header closes the connection");
    close(lng2);
    /* Cut: the client ends before its header does. */
    int cut = tn_connect(rport);
    cr_assert(tn_write_all(cut, "PROXY TCP4 1.2", 14));
    shutdown(cut, SHUT_WR);
    cr_expect(closed_by_relay(cut, 3000), "a cut header closes the connection");
    close(cut);

    /* The late one is closed at its deadline (5 s), not before it. */
    cr_expect(closed_by_relay(late, 15000), "a late header closes the connection");
    cr_expect_geq(tn_now_ms() - late_start, 4000, "closed at the deadline, not before");
    close(late);

    /* The good client never noticed. */
    cr_assert(tn_write_all(good, "two", 3));
    cr_expect(nc_read_is(good, "two", 5000));
    cr_expect(stats_wait_for(stats, "proxy_errors", 6, 5000), "six bad headers in stats");
    shutdown(good, SHUT_WR);
    cr_expect(nc_eof_within(good, 5000));
    close(good);
    cr_expect(stderr_has(&relay, ": malformed PROXY header", 1000), "%s", relay.errbuf);
    cr_expect(stderr_has(&relay, ": PROXY header too long", 1000), "%s", relay.errbuf);
    cr_expect(stderr_has(&relay, ": no PROXY header in time", 1000), "%s", relay.errbuf);
    expect_clean_exit(&relay);
    expect_clean_exit(&echo);
}

/* Without --accept-proxy a header is data like any other. */
Test(cli_proxy_protocol, without_accept_proxy_a_header_is_just_data)
{
    struct proc echo, relay;
    uint16_t eport =
        nc_listen(&echo, (const char *[]){"echo", "-W", "1", "--no-stats", "127.0.0.1:0", NULL});
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", eport);
    uint16_t rport = nc_listen(
        &relay, (const char *[]){"relay", "-W", "1", "--no-stats", "127.0.0.1:0", target, NULL});
    int c = tn_connect(rport);
    echo_once(c, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    close(c);
    expect_clean_exit(&relay);
    expect_clean_exit(&echo);
}

/* ---- listen and echo ---- */

Test(cli_proxy_protocol, listen_judges_allow_and_deny_by_the_header_address)
{
    struct proc ls;
    uint16_t port = nc_listen(
        &ls, (const char *[]){"listen", "-k", "-v", "--no-stats", "--accept-proxy", "--allow",
                              "198.51.100.0/24", "--deny", "198.51.100.66", "127.0.0.1:0", NULL});
    /* Denied by the address its header carries (the connection itself
     * comes from 127.0.0.1, which no rule admits). */
    int denied = tn_connect(port);
    const char h1[] = "PROXY TCP4 198.51.100.66 192.0.2.1 1111 80\r\nnot this\n";
    cr_assert(tn_write_all(denied, h1, sizeof h1 - 1));
    cr_expect(closed_by_relay(denied, 5000), "a denied client is closed");
    close(denied);
    /* LOCAL: the balancer's own address, 127.0.0.1, which is not allowed. */
    int local = tn_connect(port);
    cr_assert(tn_write_all(local, "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00nor this\n", 25));
    cr_expect(closed_by_relay(local, 5000), "a LOCAL header leaves 127.0.0.1, not allowed");
    close(local);
    /* Admitted: what it sends after its header reaches stdout, and only
     * that. */
    int ok = tn_connect(port);
    const char h2[] = "PROXY TCP4 198.51.100.7 192.0.2.1 2222 80\r\nfrom behind\n";
    cr_assert(tn_write_all(ok, h2, sizeof h2 - 1));
    char buf[16];
    cr_expect_eq(tn_read_full(ls.out, buf, 12, 5000), 12);
    cr_expect_eq(memcmp(buf, "from behind\n", 12), 0, "%.12s", buf);
    cr_expect(stderr_has(&ls, "listen: 198.51.100.7:2222: through 127.0.0.1:", 5000), "%s",
              ls.errbuf);
    cr_expect(stderr_has(&ls, "listen: 198.51.100.66:1111: denied by --allow/--deny", 5000),
              "%s", ls.errbuf);
    close(ok);
    cr_expect_eq(proc_signal(&ls, SIGTERM, 10000), 128 + SIGTERM, "%s", ls.errbuf);
}

Test(cli_proxy_protocol, echo_answers_after_the_header_and_closes_a_bad_one)
{
    struct proc echo;
    uint16_t port = nc_listen(&echo, (const char *[]){"echo", "-W", "2", "-vv", "--no-stats",
                                                      "--accept-proxy", "127.0.0.1:0", NULL});
    int c = tn_connect(port);
    const char hdr[] = "PROXY TCP6 2001:db8::7 2001:db8::1 3333 7\r\n";
    cr_assert(tn_write_all(c, hdr, sizeof hdr - 1));
    echo_once(c, "echoed without the header");
    close(c);
    cr_expect(stderr_has(&echo, "echo: [2001:db8::7]:3333: through 127.0.0.1:", 5000), "%s",
              echo.errbuf);
    int bad = tn_connect(port);
    cr_assert(tn_write_all(bad, "PROXY TCP6 2001:db8::7 1.2.3.4 1 2\r\n", 36));
    cr_expect(closed_by_relay(bad, 5000));
    close(bad);
    cr_expect(stderr_has(&echo, ": malformed PROXY header", 5000), "%s", echo.errbuf);
    expect_clean_exit(&echo);
}

/* ---- stats --clients names the client, not the balancer ---- */

Test(cli_proxy_protocol, stats_clients_lists_the_client_the_header_named)
{
    struct proc echo, relay;
    char ep[128];
    snprintf(ep, sizeof ep, "%s/clients-%d.sock", tmpdir, (int)getpid());
    uint16_t rport = start_proxied_relay(&echo, &relay, ep, false);
    /* One client through a balancer, one straight. */
    int proxied = tn_connect(rport), direct = tn_connect(rport);
    cr_assert(proxied >= 0 && direct >= 0);
    char lb[64], me[64];
    local_name(proxied, lb, sizeof lb);
    local_name(direct, me, sizeof me);
    /* Each sends its header and a line, and gets the line back: the
     * connections stay open. */
    const char hdr[] = "PROXY TCP4 192.0.2.7 192.0.2.1 4242 80\r\nthrough the balancer";
    cr_assert(tn_write_all(proxied, hdr, sizeof hdr - 1));
    cr_assert(nc_read_is(proxied, "through the balancer", 5000));
    cr_assert(tn_write_all(direct, "PROXY UNKNOWN\r\nstraight", 23));
    cr_assert(nc_read_is(direct, "straight", 5000));

    char want[160];
    snprintf(want, sizeof want, "\"peer\":\"192.0.2.7:4242\",\"via\":\"%s\"", lb);
    char *json = stats_ask_until(ep, "clients-json\n", want, 10000);
    cr_expect(json && strstr(json, want), "the proxied client, via the balancer: %s", json);
    snprintf(want, sizeof want, "\"peer\":\"%s\",\"worker\"", me);
    cr_expect(json && strstr(json, want), "a header without an address: the peer: %s", json);
    free(json);
    char *text = stats_ask(ep, "clients\n", 5000);
    cr_expect(strstr(text, " 192.0.2.7:4242 "), "the table too: %s", text);
    cr_expect_null(strstr(text, lb), "the balancer is not listed as a client: %s", text);
    free(text);

    /* Gone with its connection. */
    close(proxied);
    snprintf(want, sizeof want, "\"peer\":\"%s\"", me);
    json = NULL;
    for (uint64_t end = tn_now_ms() + 10000;;) {
        free(json);
        json = stats_ask(ep, "clients-json\n", 5000);
        if ((!strstr(json, "192.0.2.7") && strstr(json, want)) || tn_now_ms() >= end)
            break;
        usleep(20000);
    }
    cr_expect(!strstr(json, "192.0.2.7"), "the closed client is not listed: %s", json);
    free(json);
    close(direct);
    expect_clean_exit(&relay);
    expect_clean_exit(&echo);
}
