/* SPDX-License-Identifier: MIT */
/*
 * --allow and --deny: the rule parser and matcher (cli/acl.c) on their own,
 * then listen with access lists, IPv4 and IPv6 clients.
 */
#include <criterion/criterion.h>

#include "../../cli/leg/acl.h"
#include "nc_support.h"

TestSuite(cli_acl, .fini = proc_cleanup_all, .timeout = 60);

static struct sockaddr_in6 v6(const char *text)
{
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, text, &sa.sin6_addr), 1, "%s", text);
    return sa;
}

static struct sockaddr_in v4(const char *text)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, text, &sa.sin_addr), 1, "%s", text);
    return sa;
}

static bool admits4(const struct acl *a, const char *ip)
{
    struct sockaddr_in sa = v4(ip);
    return acl_admits(a, (struct sockaddr *)&sa);
}

static bool admits6(const struct acl *a, const char *ip)
{
    struct sockaddr_in6 sa = v6(ip);
    return acl_admits(a, (struct sockaddr *)&sa);
}

static void add(struct acl *a, bool deny, const char *text)
{
    char why[128];
    cr_assert(acl_add(a, deny, text, why, sizeof why), "%s: %s", text, why);
}

Test(cli_acl, an_empty_list_admits_everyone)
{
    struct acl a = {0};
    cr_expect(acl_empty(&a));
    cr_expect(admits4(&a, "192.0.2.1"));
    cr_expect(admits6(&a, "2001:db8::1"));
}

Test(cli_acl, allow_admits_only_its_ranges)
{
    struct acl a = {0};
    add(&a, false, "10.0.0.0/8,192.168.1.7");
    cr_expect(admits4(&a, "10.255.0.1"));
    cr_expect(admits4(&a, "192.168.1.7"));
    cr_expect_not(admits4(&a, "192.168.1.8"));
    cr_expect_not(admits4(&a, "11.0.0.1"));
    cr_expect_not(admits6(&a, "2001:db8::1"), "an IPv4 allow list shuts IPv6 out");
    acl_fini(&a);
}

Test(cli_acl, deny_wins_over_allow)
{
    struct acl a = {0};
    add(&a, false, "10.0.0.0/8");
    add(&a, true, "10.1.0.0/16");
    cr_expect(admits4(&a, "10.2.3.4"));
    cr_expect_not(admits4(&a, "10.1.3.4"));
    add(&a, false, "10.1.3.4");
    cr_expect_not(admits4(&a, "10.1.3.4"), "an exact allow does not beat a deny");
    acl_fini(&a);
}

Test(cli_acl, ipv6_prefixes_match_on_any_bit_boundary)
{
    struct acl a = {0};
    add(&a, false, "2001:db8:ab00::/40");
    cr_expect(admits6(&a, "2001:db8:abff::1"));
    cr_expect_not(admits6(&a, "2001:db8:ac00::1"));
    add(&a, false, "[::1]");
    cr_expect(admits6(&a, "::1"));
    cr_expect_not(admits6(&a, "::2"));
    acl_fini(&a);
}

Test(cli_acl, ipv4_mapped_clients_and_rules_are_ipv4)
{
    struct acl a = {0};
    add(&a, true, "::ffff:127.0.0.0/104");
    cr_expect_not(admits4(&a, "127.0.0.1"), "a mapped rule is the IPv4 range 127/8");
    cr_expect_not(admits6(&a, "::ffff:127.9.9.9"), "a mapped client matches it too");
    cr_expect(admits4(&a, "128.0.0.1"));
    acl_fini(&a);
    add(&a, false, "127.0.0.1");
    cr_expect(admits6(&a, "::ffff:127.0.0.1"), "a dual-stack socket's v4 client");
    acl_fini(&a);
}

Test(cli_acl, zero_prefixes_cover_a_whole_family)
{
    struct acl a = {0};
    add(&a, true, "0.0.0.0/0");
    cr_expect_not(admits4(&a, "8.8.8.8"));
    cr_expect(admits6(&a, "2001:db8::1"));
    acl_fini(&a);
}

Test(cli_acl, bad_entries_are_refused_with_a_reason)
{
    static const char *const bad[][2] = {
        {"300.1.1.1", "not a numeric"},   {"10.0.0.0/33", "at most 32"},
        {"::/129", "at most 128"},        {"10.0.0.0/x", "not a number"},
        {"example.com", "not a numeric"}, {"10.0.0.1,,10.0.0.2", "empty"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct acl a = {0};
        char why[128] = "";
        cr_expect_not(acl_add(&a, false, bad[i][0], why, sizeof why), "%s", bad[i][0]);
        cr_expect(strstr(why, bad[i][1]), "%s: %s", bad[i][0], why);
        acl_fini(&a);
    }
}

/* ---- listen with access lists ---- */

static struct proc tool;

static uint16_t start(const char *const *rules)
{
    const char *args[16];
    int n = 0;
    args[n++] = "listen";
    args[n++] = "-k";
    args[n++] = "-v";
    for (int i = 0; rules[i]; i++)
        args[n++] = rules[i];
    args[n++] = "0"; /* every address, both stacks */
    args[n] = NULL;
    return nc_listen(&tool, args);
}

static int connect6(uint16_t port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {
        .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Admitted: its bytes come out on stdout.  Denied: closed at once, and
 * nothing it sent comes out. */
static bool admitted(int fd, const char *tag)
{
    char msg[32];
    snprintf(msg, sizeof msg, "%s\n", tag);
    cr_assert_geq(fd, 0);
    tn_write_all(fd, msg, strlen(msg));
    int st = nc_eof_state(fd, 500);
    if (st == 1 || st == 2) { /* a reset if it was closed with our bytes unread */
        cr_expect(nc_quiet_for(tool.out, 200), "a denied client's data never reaches stdout");
        close(fd);
        return false;
    }
    bool ok = nc_read_is(tool.out, msg, 5000);
    close(fd);
    return ok;
}

Test(cli_acl, deny_wins_when_allow_and_deny_name_the_client)
{
    const char *rules[] = {"--allow", "127.0.0.1", "--deny", "127.0.0.1", NULL};
    uint16_t port = start(rules);
    cr_expect_not(admitted(tn_connect(port), "a"), "stderr: %s", tool.errbuf);
    proc_pump_err(&tool, 200);
    cr_expect(strstr(tool.errbuf, "127.0.0.1: denied by --allow/--deny"), "stderr: %s",
              tool.errbuf);
}

Test(cli_acl, allow_ranges_admit_v4_and_v6_clients_they_cover)
{
    const char *rules[] = {"--allow", "127.0.0.0/8", "--allow", "::1", NULL};
    uint16_t port = start(rules);
    cr_expect(admitted(tn_connect(port), "v4"));
    int fd = connect6(port);
    if (fd < 0)
        cr_skip_test("no IPv6 loopback here");
    cr_expect(admitted(fd, "v6"));
}

Test(cli_acl, a_client_outside_the_allow_list_is_closed_at_once)
{
    const char *rules[] = {"--allow", "10.0.0.0/8,::2", NULL};
    uint16_t port = start(rules);
    cr_expect_not(admitted(tn_connect(port), "v4"));
    int fd = connect6(port);
    if (fd >= 0)
        cr_expect_not(admitted(fd, "v6"));
    /* The listener goes on serving after turning clients away. */
    cr_expect(proc_still_running(&tool, 100));
}

Test(cli_acl, deny_alone_shuts_out_only_its_range)
{
    const char *rules[] = {"--deny", "::1", NULL};
    uint16_t port = start(rules);
    cr_expect(admitted(tn_connect(port), "v4"));
    int fd = connect6(port);
    if (fd >= 0)
        cr_expect_not(admitted(fd, "v6"));
}

Test(cli_acl, a_bad_rule_is_a_usage_error)
{
    struct proc p;
    const char *args[] = {"listen", "--deny", "10.0.0.0/40", "0", NULL};
    cr_assert(nc_start(&p, -1, args));
    cr_expect_eq(proc_wait(&p, 5000), 2);
    cr_expect(strstr(p.errbuf, "iocptool: listen: --deny 10.0.0.0/40: prefix length too large"),
              "stderr: %s", p.errbuf);
}
