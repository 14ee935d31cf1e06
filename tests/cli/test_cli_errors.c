/* SPDX-License-Identifier: MIT */
/*
 * Errors a user can act on: option mistakes are one line and a pointer to
 * --help, ports and addresses are parsed alike everywhere (negative ports,
 * service names, IPv6 in brackets, relay targets checked at start), "address
 * already in use" names the address, a directory on stdin says so, connects
 * work on a host whose only interface is loopback, and a port probe that
 * connects to itself reports the port closed.
 *
 * The loopback-only host and the self-connect are made in a network
 * namespace of the test's own (as root, or as an unprivileged user's root);
 * where the system allows neither, the same functions are checked directly.
 * The parsers are also checked directly (cli/addr.c, cli/opts.c are
 * compiled into this suite).
 */
#include <criterion/criterion.h>

#include <net/if.h>
#include <sched.h>
#include <sys/ioctl.h>

#include "nc_support.h"

#include "addr.h"
#include "core.h"
#include "diag.h"
#include "opts.h"

TestSuite(cli_errors, .fini = proc_cleanup_all, .timeout = 60);

static void portarg(char *buf, size_t len, uint16_t port)
{
    snprintf(buf, len, "%u", port);
}

/* Run iocptool to its end with stdin from stdin_fd (-1: a pipe, closed at
 * once); its status, stderr in p->errbuf, stdout into out (may be NULL). */
static int run(struct proc *p, int stdin_fd, char *out, size_t outlen, const char *const *args)
{
    cr_assert(nc_start(p, stdin_fd, args), "cannot start iocptool");
    proc_close_in(p);
    size_t n = 0;
    if (out) {
        n = tn_read_full(p->out, out, outlen - 1, 10000);
        out[n] = '\0';
    }
    int status = proc_wait(p, 10000);
    cr_assert_neq(status, -1, "%s did not end; stderr: %s", args[0], p->errbuf);
    return status;
}

/* The lines of stderr, at most max, in lines; how many there were. */
static int split_lines(char *text, char **lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
        if (n < max)
            lines[n++] = l;
        else
            n++;
    return n;
}

/* Exit 2, nothing on stdout, and stderr exactly: want, then (when hint)
 * the pointer to the subcommand's --help. */
static void expect_usage(const char *const *args, const char *want, bool hint)
{
    struct proc p;
    char out[256];
    int status = run(&p, -1, out, sizeof out, args);
    cr_expect_eq(status, 2, "%s %s: status %d; stderr: %s", args[0], args[1], status, p.errbuf);
    cr_expect_str_eq(out, "", "nothing on stdout");
    char copy[sizeof p.errbuf], *lines[4];
    snprintf(copy, sizeof copy, "%s", p.errbuf);
    int n = split_lines(copy, lines, 4);
    cr_expect_eq(n, hint ? 2 : 1, "%s %s: wanted %d line(s), stderr: %s", args[0], args[1],
                 hint ? 2 : 1, p.errbuf);
    if (n < 1)
        return;
    cr_expect_str_eq(lines[0], want);
    if (hint && n >= 2) {
        char pointer[64];
        snprintf(pointer, sizeof pointer, "Try 'iocptool %s --help'.", args[0]);
        cr_expect_str_eq(lines[1], pointer);
    }
}

/* ---- option mistakes ---- */

Test(cli_errors, an_option_mistake_is_one_line_and_a_pointer_to_help)
{
    static const struct {
        const char *args[5];
        const char *want;
    } cases[] = {
        {{"listen", "--bogus", "0"}, "iocptool: listen: unrecognized option '--bogus'"},
        {{"listen", "--bogus=1", "0"}, "iocptool: listen: unrecognized option '--bogus'"},
        {{"connect", "-j", "127.0.0.1", "80"}, "iocptool: connect: unrecognized option '-j'"},
        {{"echo", "-4x", "0"}, "iocptool: echo: unrecognized option '-x'"},
        {{"relay", "--nope", "0", "h:1"}, "iocptool: relay: unrecognized option '--nope'"},
        {{"stats", "--bogus"}, "iocptool: stats: unrecognized option '--bogus'"},
        {{"keygen", "--bogus"}, "iocptool: keygen: unrecognized option '--bogus'"},
        {{"listen", "0", "-p"}, "iocptool: listen: option '-p' (--port) needs a value"},
        {{"connect", "127.0.0.1", "80", "--wait"}, "iocptool: connect: option '--wait' needs a value"},
        {{"echo", "--help=yes", "0"}, "iocptool: echo: option '--help' takes no value"},
        {{"relay", "--no-s", "0", "h:1"},
         "iocptool: relay: option '--no-s' is ambiguous: --no-stats, --no-splice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_usage(cases[i].args, cases[i].want, true);
}

Test(cli_errors, contradictions_and_missing_operands_point_to_help_instead_of_printing_it)
{
    const char *a1[] = {"connect", "-k", "127.0.0.1", "80", NULL};
    expect_usage(a1, "iocptool: connect: -k: keeping a listener open is for 'iocptool listen'",
                 true);
    const char *a2[] = {"relay", "127.0.0.1:0", NULL};
    expect_usage(a2, "iocptool: relay: expected [ADDR:]PORT and at least one HOST:PORT target",
                 true);
    const char *a3[] = {"echo", NULL};
    expect_usage(a3, "iocptool: echo: expected one [ADDR:]PORT argument", true);
    const char *a5[] = {"connect", "localhost:80", NULL};
    expect_usage(a5, "iocptool: connect: localhost:80: expected HOST PORT, two arguments: "
                     "'localhost 80'",
                 true);
    const char *a4[] = {"nosuchcommand", NULL};
    struct proc p;
    cr_expect_eq(run(&p, -1, NULL, 0, a4), 2);
    cr_expect_str_eq(p.errbuf, "iocptool: nosuchcommand: unknown command\nTry 'iocptool --help'.\n");
}

Test(cli_errors, a_negative_port_is_too_small_not_an_option)
{
    const char *a1[] = {"listen", "-1", NULL};
    expect_usage(a1, "iocptool: listen: port -1: too small (1-65535, or 0 for any)", false);
    const char *a2[] = {"listen", "-p", "-1", NULL};
    expect_usage(a2, "iocptool: listen: port -1: too small (1-65535, or 0 for any)", false);
    const char *a3[] = {"echo", "-20", NULL};
    expect_usage(a3, "iocptool: echo: port -20: too small (1-65535, or 0 for any)", false);
    const char *a4[] = {"connect", "127.0.0.1", "-1", NULL};
    expect_usage(a4, "iocptool: connect: port -1: too small (1-65535)", false);
    const char *a5[] = {"connect", "-z", "127.0.0.1", "-5-10", NULL};
    expect_usage(a5, "iocptool: connect: port range -5-10: port -5: too small (1-65535)", false);
    const char *a6[] = {"relay", "-1", "127.0.0.1:80", NULL};
    expect_usage(a6, "iocptool: relay: port -1: too small (1-65535, or 0 for any)", false);
    /* Option letters that are digits stay options. */
    const char *a7[] = {"listen", "-4", "-6", "0", NULL};
    expect_usage(a7, "iocptool: listen: -4 and -6 exclude each other", true);
}

/* ---- addresses and ports ---- */

Test(cli_errors, a_target_is_host_colon_port_and_is_checked_at_start)
{
    const char *a1[] = {"relay", "9100", "localhost", NULL};
    expect_usage(a1, "iocptool: relay: target localhost: expected HOST:PORT, such as localhost:80",
                 false);
    /* A target that could never be reached is refused before the relay
     * listens, not once per client. */
    const char *a2[] = {"relay", "127.0.0.1:0", "::1", NULL};
    expect_usage(a2,
                 "iocptool: relay: target ::1: an IPv6 address goes in brackets, with the port "
                 "after them: [::1]:PORT",
                 false);
    const char *a3[] = {"relay", "127.0.0.1:0", "127.0.0.1:1", "[::1]", NULL};
    expect_usage(a3, "iocptool: relay: target [::1]: expected [IPV6]:PORT, such as [::1]:8080",
                 false);
    const char *a4[] = {"relay", "127.0.0.1:0", ":80", NULL};
    expect_usage(a4, "iocptool: relay: target :80: expected HOST:PORT, the host is missing", false);
    const char *a6[] = {"relay", "127.0.0.1:0", "[::1]:", NULL};
    expect_usage(a6, "iocptool: relay: target '[::1]:': the port is missing after the colon, "
                     "such as [::1]:80",
                 false);
    const char *a5[] = {"relay", "127.0.0.1:0", "127.0.0.1:0", NULL};
    expect_usage(a5, "iocptool: relay: target 127.0.0.1:0: port 0: too small (1-65535)", false);
}

Test(cli_errors, an_ipv6_address_without_brackets_is_a_usage_error_that_shows_how)
{
    const char *a1[] = {"listen", "::1", NULL};
    expect_usage(a1,
                 "iocptool: listen: ::1: an IPv6 address goes in brackets, with the port after "
                 "them: [::1]:PORT",
                 false);
    const char *a2[] = {"echo", "::1:8080", NULL};
    expect_usage(a2,
                 "iocptool: echo: ::1:8080: an IPv6 address goes in brackets, with the port after "
                 "them: [::1]:8080",
                 false);
}

/* A listening socket on 127.0.0.1:port (even with connections of a
 * moment ago in TIME_WAIT there). */
static int listen_on(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = tn_loopback(port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0, "port %u: %s", port,
                 strerror(errno));
    cr_assert_eq(listen(fd, 16), 0);
    return fd;
}

/* A TCP service of the services database on a port from 1024 to 32767
 * (below the usual ephemeral range) that is free on 127.0.0.1 now. */
static bool free_service(char *name, size_t len, uint16_t *port)
{
    bool found = false;
    setservent(0);
    for (struct servent *se; !found && (se = getservent()) != NULL;) {
        uint16_t p = ntohs((uint16_t)se->s_port);
        if (strcmp(se->s_proto, "tcp") != 0 || p < 1024 || p > 32767 || strchr(se->s_name, '-'))
            continue;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = tn_loopback(p);
        if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            snprintf(name, len, "%s", se->s_name);
            *port = p;
            found = true;
        }
        if (fd >= 0)
            close(fd);
    }
    endservent();
    return found;
}

Test(cli_errors, service_names_are_accepted_wherever_a_port_is)
{
    char name[64];
    uint16_t port = 0;
    cr_assert(free_service(name, sizeof name, &port),
              "no free TCP service port in the services database (/etc/services, netbase)");
    cr_log_info("service %s, port %u", name, port);
    char laddr[96], want[96];
    snprintf(laddr, sizeof laddr, "127.0.0.1:%s", name);

    /* listen ADDR:SERVICE, then connect HOST SERVICE carries data. */
    struct proc l, c;
    const char *largs[] = {"listen", laddr, NULL};
    cr_expect_eq(nc_listen(&l, largs), port, "stderr: %s", l.errbuf);
    const char *cargs[] = {"connect", "127.0.0.1", name, NULL};
    cr_assert(nc_start(&c, -1, cargs));
    cr_expect(tn_write_all(c.in, "hello\n", 6));
    cr_expect(nc_read_is(l.out, "hello\n", 10000), "listen: %s connect: %s", l.errbuf, c.errbuf);
    proc_close_in(&c);
    proc_close_in(&l);
    cr_expect_eq(proc_wait(&c, 10000), 0, "connect: %s", c.errbuf);
    cr_expect_eq(proc_wait(&l, 10000), 0, "listen: %s", l.errbuf);

    /* The same port probed by name, and as a range of names. */
    int lfd = listen_on(port);
    char range[140], out[256];
    snprintf(range, sizeof range, "%s-%s", name, name);
    snprintf(want, sizeof want, "127.0.0.1 %u open\n", port);
    const char *z1[] = {"connect", "-z", "127.0.0.1", name, NULL};
    cr_expect_eq(run(&c, -1, out, sizeof out, z1), 0, "stderr: %s", c.errbuf);
    cr_expect_str_eq(out, want);
    const char *z2[] = {"connect", "-z", "127.0.0.1", range, NULL};
    cr_expect_eq(run(&c, -1, out, sizeof out, z2), 0, "stderr: %s", c.errbuf);
    cr_expect_str_eq(out, want);

    /* A relay target by service name (a new listener: the probes'
     * connections wait in the old one's queue). */
    close(lfd);
    lfd = listen_on(port);
    struct proc r;
    char target[96];
    snprintf(target, sizeof target, "127.0.0.1:%s", name);
    cr_assert(proc_start(&r, -1, "relay", "--no-stats", "127.0.0.1:0", target, NULL));
    uint16_t rport = proc_listening(&r, 10000);
    cr_assert_neq(rport, 0, "relay: %s", r.errbuf);
    int client = tn_connect(rport);
    cr_assert_geq(client, 0);
    int fd = nc_accept(lfd, 10000);
    cr_expect_geq(fd, 0, "the relay reached the service port; relay: %s", r.errbuf);
    if (fd >= 0) {
        cr_expect(tn_write_all(client, "ping", 4));
        cr_expect(nc_read_is(fd, "ping", 10000));
        close(fd);
    }
    close(client);
    close(lfd);

    const char *bad[] = {"listen", "no-such-service-name", NULL};
    expect_usage(bad,
                 "iocptool: listen: port no-such-service-name: not a number or a known service "
                 "name (such as http); a server takes [ADDR:]PORT, such as "
                 "no-such-service-name:8080",
                 false);
}

Test(cli_errors, address_already_in_use_names_the_address)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char addr[32], want[96];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    const char *cmds[] = {"listen", "echo", NULL};
    for (int i = 0; cmds[i]; i++) {
        struct proc p;
        const char *args[] = {cmds[i], addr, NULL};
        cr_expect_eq(run(&p, -1, NULL, 0, args), 1, "%s: %s", cmds[i], p.errbuf);
        snprintf(want, sizeof want, "iocptool: %s: 127.0.0.1:%u: address already in use\n",
                 cmds[i], port);
        cr_expect_str_eq(p.errbuf, want);
    }
    struct proc p;
    const char *args[] = {"relay", "--no-stats", addr, "127.0.0.1:9", NULL};
    cr_expect_eq(run(&p, -1, NULL, 0, args), 1, "relay: %s", p.errbuf);
    snprintf(want, sizeof want, "iocptool: relay: 127.0.0.1:%u: address already in use\n", port);
    cr_expect_str_eq(p.errbuf, want);
    close(lfd);
}

Test(cli_errors, a_directory_on_stdin_is_named_at_start)
{
    int dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    cr_assert_geq(dir, 0);
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    char p[8];
    portarg(p, sizeof p, port);
    struct proc c;
    const char *cargs[] = {"connect", "127.0.0.1", p, NULL};
    cr_expect_eq(run(&c, dir, NULL, 0, cargs), 1);
    cr_expect_str_eq(c.errbuf, "iocptool: connect: stdin: is a directory\n");
    /* listen says so before any client comes, and ends. */
    struct proc l;
    const char *largs[] = {"listen", "127.0.0.1:0", NULL};
    cr_expect_eq(run(&l, dir, NULL, 0, largs), 1);
    cr_expect(strstr(l.errbuf, "iocptool: listen: stdin: is a directory\n"), "stderr: %s",
              l.errbuf);
    close(lfd);
    close(dir);
}

/* ---- a host whose only interface is loopback ---- */

static bool write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok;
}

/*
 * Move this test's process into a network namespace of its own, where only
 * the loopback interface exists, and bring it up: as root (unshare -n),
 * else as the root of a user namespace of our own (unshare -rn).  The
 * iocptool processes started afterwards are in it too.  false when this
 * system allows neither.
 */
static bool private_loopback_net(void)
{
    if (unshare(CLONE_NEWNET) != 0) {
        uid_t uid = getuid();
        gid_t gid = getgid();
        char map[64];
        if (unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0)
            return false;
        snprintf(map, sizeof map, "0 %u 1", (unsigned)uid);
        write_file("/proc/self/setgroups", "deny");
        cr_assert(write_file("/proc/self/uid_map", map), "uid_map: %s", strerror(errno));
        snprintf(map, sizeof map, "0 %u 1", (unsigned)gid);
        write_file("/proc/self/gid_map", map);
    }
    /* In the namespace now: without loopback nothing below can work. */
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0, "lo: %s", strerror(errno));
    ifr.ifr_flags |= IFF_UP;
    cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "lo up: %s", strerror(errno));
    /* And nothing else: the host the AI_ADDRCONFIG lookups failed on. */
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_ifindex = 2;
    cr_assert_neq(ioctl(fd, SIOCGIFNAME, &ifr), 0, "an interface besides lo: %s", ifr.ifr_name);
    close(fd);
    return true;
}

/* connect with a source address and port, and with -4 and a name, to a
 * listener here; each carries a line. */
static void connect_from_loopback_only_host(void)
{
    uint16_t port = 0, sport = tn_server_port();
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char p[8], sp[8];
    portarg(p, sizeof p, port);
    portarg(sp, sizeof sp, sport);

    const char *with_source[] = {"connect", "-s", "127.0.0.1", "-p", sp, "127.0.0.1", p, NULL};
    const char *v4_name[] = {"connect", "-4", "localhost", p, NULL};
    const char *const *runs[] = {with_source, v4_name};
    for (int i = 0; i < 2; i++) {
        struct proc c;
        cr_assert(nc_start(&c, -1, runs[i]));
        int fd = nc_accept(lfd, 10000);
        cr_expect_geq(fd, 0, "%s %s connected; stderr: %s", runs[i][1], runs[i][2], c.errbuf);
        if (fd < 0) {
            proc_signal(&c, SIGTERM, 5000);
            continue;
        }
        if (i == 0) {
            struct sockaddr_in peer;
            socklen_t len = sizeof peer;
            cr_assert_eq(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
            cr_expect_eq(ntohs(peer.sin_port), sport, "from the source port asked for");
        }
        cr_expect(tn_write_all(c.in, "line\n", 5));
        cr_expect(nc_read_is(fd, "line\n", 10000));
        proc_close_in(&c);
        shutdown(fd, SHUT_WR);
        cr_expect_eq(proc_wait(&c, 10000), 0, "stderr: %s", c.errbuf);
        close(fd);
    }
    /* The probe looks names up itself. */
    struct proc z;
    char out[128], want[64];
    const char *zargs[] = {"connect", "-z", "-4", "localhost", p, NULL};
    cr_expect_eq(run(&z, -1, out, sizeof out, zargs), 0, "stderr: %s", z.errbuf);
    snprintf(want, sizeof want, "localhost %u open\n", port);
    cr_expect_str_eq(out, want);
    close(lfd);
}

Test(cli_errors, connect_works_on_a_host_whose_only_interface_is_loopback)
{
    /* The library's hints never carry AI_ADDRCONFIG, which would hide
     * loopback on such a host. */
    struct addrinfo hints;
    for (int numeric = 0; numeric < 2; numeric++) {
        iocp__connect_hints(&hints, AF_INET, numeric);
        cr_expect_eq(hints.ai_flags & AI_ADDRCONFIG, 0);
        cr_expect_eq(hints.ai_flags & AI_NUMERICHOST, numeric ? AI_NUMERICHOST : 0);
        cr_expect_eq(hints.ai_socktype, SOCK_STREAM);
    }
    if (!private_loopback_net())
        cr_log_warn("no network namespace here: the connects run on this host's network");
    connect_from_loopback_only_host();
}

/* ---- a probe that connects to itself ---- */

/* A TCP socket connected to itself: bound to a free port on 127.0.0.1 and
 * connected to that same address (a simultaneous open with itself). */
static int self_connected_socket(void)
{
    uint16_t port = tn_server_port();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = tn_loopback(port);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "self-connect: %s",
                 strerror(errno));
    return fd;
}

Test(cli_errors, the_self_connect_check_tells_a_socket_connected_to_itself)
{
    int self = self_connected_socket();
    cr_expect(addr_is_self_connected(self));
    close(self);
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    int c = tn_connect(port);
    int a = nc_accept(lfd, 5000);
    cr_assert(c >= 0 && a >= 0);
    cr_expect_not(addr_is_self_connected(c), "a connection to a listener");
    cr_expect_not(addr_is_self_connected(a));
    cr_expect_not(addr_is_self_connected(lfd), "not connected at all");
    close(a);
    close(c);
    close(lfd);
}

Test(cli_errors, a_probe_that_connects_to_itself_reports_the_port_closed)
{
    /* The ephemeral range cut down to one port, in a namespace of our own:
     * the probe of that port can only come from that port, and meets
     * itself. */
    if (!private_loopback_net() ||
        !write_file("/proc/sys/net/ipv4/ip_local_port_range", "40000 40000")) {
        cr_log_warn("no network namespace here: the check itself is tested instead");
        int self = self_connected_socket();
        cr_expect(addr_is_self_connected(self));
        close(self);
        return;
    }
    struct proc z;
    char out[128];
    const char *zargs[] = {"connect", "-z", "-v", "127.0.0.1", "40000", NULL};
    cr_expect_eq(run(&z, -1, out, sizeof out, zargs), 1, "no port open; stderr: %s", z.errbuf);
    cr_expect_str_eq(out, "", "nothing reported open");
    cr_expect(strstr(z.errbuf, "127.0.0.1 port 40000: closed (the probe connected to itself)"),
              "stderr: %s", z.errbuf);

    /* A real listener (on a port outside that range: the namespace is
     * ours, so it is free) is still found, from that one source port. */
    uint16_t port = 5000;
    int lfd = listen_on(port);
    char p[8], want[64];
    portarg(p, sizeof p, port);
    const char *zargs2[] = {"connect", "-z", "127.0.0.1", p, NULL};
    cr_expect_eq(run(&z, -1, out, sizeof out, zargs2), 0, "stderr: %s", z.errbuf);
    snprintf(want, sizeof want, "127.0.0.1 %u open\n", port);
    cr_expect_str_eq(out, want);
    close(lfd);
}

/* ---- the parsers themselves ---- */

Test(cli_errors, the_address_parser_accepts_every_documented_form)
{
    char host[ADDR_HOST_MAX];
    uint16_t port = 1, lo = 0, hi = 0;
    cr_expect(addr_listen("t", "8080", host, sizeof host, &port));
    cr_expect_str_eq(host, "");
    cr_expect_eq(port, 8080);
    cr_expect(addr_listen("t", "0", host, sizeof host, &port));
    cr_expect_eq(port, 0);
    cr_expect(addr_listen("t", "127.0.0.1:80", host, sizeof host, &port));
    cr_expect_str_eq(host, "127.0.0.1");
    cr_expect(addr_listen("t", ":80", host, sizeof host, &port));
    cr_expect_str_eq(host, "");
    cr_expect(addr_listen("t", "[::1]:ssh", host, sizeof host, &port));
    cr_expect_str_eq(host, "::1");
    cr_expect_eq(port, 22);
    cr_expect(addr_target("t", "example.org:http", host, sizeof host, &port));
    cr_expect_str_eq(host, "example.org");
    cr_expect_eq(port, 80);
    cr_expect(addr_target("t", "[fe80::1%lo]:65535", host, sizeof host, &port));
    cr_expect_str_eq(host, "fe80::1%lo");
    cr_expect_eq(port, 65535);
    cr_expect(addr_port_range("t", "20-25", &lo, &hi));
    cr_expect(lo == 20 && hi == 25);
    cr_expect(addr_port_range("t", "ftp-ssh", &lo, &hi));
    cr_expect(lo == 21 && hi == 22);
    cr_expect(addr_port_range("t", "443", &lo, &hi));
    cr_expect(lo == 443 && hi == 443);
    char buf[64];
    cr_expect_str_eq(addr_format("::1", 80, buf, sizeof buf), "[::1]:80");
    cr_expect_str_eq(addr_format("h", 80, buf, sizeof buf), "h:80");

    /* And refuses the rest. */
    cr_expect_not(addr_port("t", "65536", false, &port));
    cr_expect_not(addr_port("t", "99999999999999999999999", false, &port));
    cr_expect_not(addr_port("t", "0", false, &port));
    cr_expect_not(addr_port("t", "", true, &port));
    cr_expect_not(addr_port("t", "8o", true, &port));
    cr_expect_not(addr_listen("t", "[::1]", host, sizeof host, &port));
    cr_expect_not(addr_listen("t", "[]:80", host, sizeof host, &port));
    cr_expect_not(addr_listen("t", "1:2:3", host, sizeof host, &port));
    cr_expect_not(addr_target("t", "host", host, sizeof host, &port));
    cr_expect_not(addr_target("t", "host:", host, sizeof host, &port));
    cr_expect_not(addr_port_range("t", "25-20", &lo, &hi));
    cr_expect_not(addr_port_range("t", "20-", &lo, &hi));
    cr_expect_not(addr_port_range("t", "0-5", &lo, &hi));
}

Test(cli_errors, the_option_reader_keeps_negative_numbers_and_what_follows_dashes_as_operands)
{
    static const struct option longopts[] = {
        {"keep-open", no_argument, NULL, 'k'},
        {"port", required_argument, NULL, 'p'},
        {"ipv4", no_argument, NULL, '4'},
        {NULL, 0, NULL, 0},
    };
    char *argv[] = {"listen", "-1", "-k", "x", "--port", "-5", "-4", "--", "-v", NULL};
    int argc = 9, opt;
    char seen[16] = "", *port = NULL;
    struct opt_parser op;
    opt_init(&op, "listen", argc, argv, "kp:4", longopts);
    while ((opt = opt_next(&op)) != -1) {
        cr_assert_neq(opt, OPT_ERROR);
        seen[strlen(seen)] = (char)opt;
        if (opt == 'p')
            port = optarg;
    }
    cr_expect_str_eq(seen, "kp4");
    cr_expect_str_eq(port, "-5");
    cr_assert_eq(argc - optind, 3, "operands: %d", argc - optind);
    cr_expect_str_eq(argv[optind], "-1");
    cr_expect_str_eq(argv[optind + 1], "x");
    cr_expect_str_eq(argv[optind + 2], "-v");
}
