/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain sockets in iocptool, driven as a user drives them: listen and
 * connect move 64 MiB each way byte-exact with half-closes (unix:PATH and
 * -U), a second server on a live socket is refused and a dead one's file is
 * replaced, --unix-mode sets the file's mode, abstract names, -v names the
 * peer's pid and uid, a relay from TCP to a Unix socket and back (spliced),
 * echo and its stats endpoint over unix:, and OpenBSD nc -U and socat on
 * the other end.
 */
#include <criterion/criterion.h>

#include <signal.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "nc_support.h"
#include "statsclient.h"

#define BULK ((size_t)64 << 20)
#define INTEROP ((size_t)1 << 20)

static char dir[64];
static char paths[4][128];

static void unix_init(void)
{
    nc_dir_init(dir, sizeof dir, "unix");
    for (int i = 0; i < 4; i++)
        snprintf(paths[i], sizeof paths[i], "%s/s%d.sock", dir, i);
}

static void unix_fini(void)
{
    nc_dir_fini(dir);
}

TestSuite(cli_unix, .init = unix_init, .fini = unix_fini, .timeout = 120);

/* Wait until stderr says what (or the deadline). */
static bool said(struct proc *p, const char *what, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    while (tn_now_ms() < end) {
        if (strstr(p->errbuf, what))
            return true;
        if (p->err < 0)
            return false;
        proc_pump_err(p, 50);
    }
    return false;
}

/* Start iocptool with args (NULL-ended) and wait for "listening on unix:". */
static void start_server(struct proc *p, const char *const *args)
{
    cr_assert(nc_start(p, -1, args), "cannot start iocptool");
    cr_assert(said(p, "listening on unix:", 10000), "no listening line; stderr: %s", p->errbuf);
}

static int raw_connect(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Both ways at once: a's stdin to b's stdout and back, `bytes` each. */
static bool exchange(struct proc *a, struct proc *b, size_t bytes, bool b_first)
{
    struct nc_flow f[2];
    nc_flow_init(&f[0], a->in, b->out, bytes, 21);
    nc_flow_init(&f[1], b->in, a->out, bytes, 22);
    if (b_first)
        f[0].after = 1;
    proc_forget_fd(a, a->in);
    proc_forget_fd(b, b->in);
    a->in = b->in = -1;
    return nc_pump(f, 2, 90000);
}

Test(cli_unix, listen_and_connect_move_64_mib_each_way_with_half_close)
{
    struct proc srv, cli;
    char host[160];
    snprintf(host, sizeof host, "unix:%s", paths[0]);
    start_server(&srv, (const char *const[]){"listen", "-U", paths[0], NULL});
    cr_assert(nc_start(&cli, -1, (const char *const[]){"connect", host, NULL}));
    cr_assert(exchange(&cli, &srv, BULK, false), "not byte-exact; listen: %s; connect: %s",
              srv.errbuf, cli.errbuf);
    cr_expect_eq(proc_wait(&cli, 20000), 0, "connect: %s", cli.errbuf);
    cr_expect_eq(proc_wait(&srv, 20000), 0, "listen: %s", srv.errbuf);
    struct stat st;
    cr_expect_neq(lstat(paths[0], &st), 0, "the socket file outlived listen");
}

Test(cli_unix, a_live_socket_is_refused_and_a_dead_ones_file_replaced)
{
    struct proc first, second, third;
    start_server(&first, (const char *const[]){"listen", "-k", "-U", paths[0], NULL});
    cr_assert(nc_start(&second, -1, (const char *const[]){"listen", "-U", paths[0], NULL}));
    cr_assert_neq(proc_wait(&second, 10000), 0);
    cr_assert(strstr(second.errbuf, "a server is listening there"), "%s", second.errbuf);
    int fd = raw_connect(paths[0]);
    cr_assert_geq(fd, 0, "the live server lost its socket");
    close(fd);

    /* Killed: its file stays behind, and the next server takes the path.
     * The socket itself may outlive the process by a moment: on io_uring
     * the kernel tears a dead process's ring down after the process is
     * reaped, and until the accepts pending in it are cancelled they hold
     * the listening socket open.  The path is dead once a connect to it is
     * refused; only then must the next server take it. */
    cr_assert_eq(proc_signal(&first, SIGKILL, 10000), 128 + SIGKILL);
    struct stat st;
    cr_assert_eq(lstat(paths[0], &st), 0);
    uint64_t end = tn_now_ms() + 10000;
    while ((fd = raw_connect(paths[0])) >= 0 && tn_now_ms() < end) {
        close(fd);
        usleep(10000);
    }
    cr_assert_lt(fd, 0, "the killed server's socket still accepts after 10 s");
    cr_assert_eq(lstat(paths[0], &st), 0, "the dead server's file is gone");
    char host[160];
    snprintf(host, sizeof host, "unix:%s", paths[0]);
    start_server(&third, (const char *const[]){"echo", "-W", "1", host, NULL});
    fd = raw_connect(paths[0]);
    cr_assert_geq(fd, 0, "the stale file was not replaced");
    cr_assert(tn_write_all(fd, "ping", 4));
    cr_assert(nc_read_is(fd, "ping", 10000));
    close(fd);
    cr_expect_eq(proc_signal(&third, SIGTERM, 10000), 0, "%s", third.errbuf);
    cr_expect_neq(lstat(paths[0], &st), 0, "echo left its socket file");
}

Test(cli_unix, unix_mode_sets_the_files_mode_and_v_names_the_peer)
{
    struct proc srv, cli;
    start_server(&srv, (const char *const[]){"listen", "-v", "--unix-mode", "0660", "-U", paths[1],
                                             NULL});
    struct stat st;
    cr_assert_eq(lstat(paths[1], &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0660, "mode %o", st.st_mode & 07777);
    cr_assert(nc_start(&cli, -1, (const char *const[]){"connect", "-U", paths[1], NULL}));
    char want[256];
    snprintf(want, sizeof want, "connection from unix:%s (pid %d, uid %d)", paths[1],
             (int)cli.pid, (int)getuid());
    cr_assert(said(&srv, want, 10000), "wanted \"%s\"; stderr: %s", want, srv.errbuf);
    proc_close_in(&cli);
    proc_close_in(&srv);
    cr_expect_eq(proc_wait(&cli, 10000), 0, "%s", cli.errbuf);
    cr_expect_eq(proc_wait(&srv, 10000), 0, "%s", srv.errbuf);
}

Test(cli_unix, an_abstract_name_serves_without_a_file)
{
    struct proc srv, cli;
    char host[80];
    snprintf(host, sizeof host, "unix:@iocptool-test-%d", (int)getpid());
    start_server(&srv, (const char *const[]){"echo", "-W", "1", host, NULL});
    cr_assert(nc_start(&cli, -1, (const char *const[]){"connect", host, NULL}));
    cr_assert(tn_write_all(cli.in, "abstract\n", 9));
    cr_assert(nc_read_is(cli.out, "abstract\n", 10000), "%s", cli.errbuf);
    proc_close_in(&cli);
    cr_expect_eq(proc_wait(&cli, 10000), 0, "%s", cli.errbuf);
    cr_expect_eq(proc_signal(&srv, SIGTERM, 10000), 0, "%s", srv.errbuf);
}

/* Bytes through a relay, both ways, with the half-close, from fd. */
static void through(int fd, size_t bytes)
{
    struct nc_flow f;
    nc_flow_init(&f, fd, fd, bytes, 31);
    cr_assert(nc_pump(&f, 1, 60000), "not byte-exact through the relay");
}

Test(cli_unix, relay_from_tcp_to_unix_and_from_unix_to_tcp)
{
    struct proc echo_unix, echo_tcp, r1, r2;
    char e_host[160], r_host[160];
    snprintf(e_host, sizeof e_host, "unix:%s", paths[0]);
    snprintf(r_host, sizeof r_host, "unix:%s", paths[1]);
    start_server(&echo_unix, (const char *const[]){"echo", "-W", "1", e_host, NULL});
    uint16_t tcp_echo_port;
    cr_assert(nc_start(&echo_tcp, -1, (const char *const[]){"echo", "-W", "1", "127.0.0.1:0", NULL}));
    tcp_echo_port = proc_listening(&echo_tcp, 10000);
    cr_assert_neq(tcp_echo_port, 0, "%s", echo_tcp.errbuf);

    /* TCP in, Unix out. */
    cr_assert(nc_start(&r1, -1, (const char *const[]){"relay", "-W", "1", "-vv", "127.0.0.1:0",
                                                      e_host, NULL}));
    uint16_t r1_port = proc_listening(&r1, 10000);
    cr_assert_neq(r1_port, 0, "%s", r1.errbuf);
    int fd = tn_connect(r1_port);
    cr_assert_geq(fd, 0);
    through(fd, 8u << 20);
    close(fd);

    /* Unix in, TCP out. */
    char tcp_target[32];
    snprintf(tcp_target, sizeof tcp_target, "127.0.0.1:%u", tcp_echo_port);
    start_server(&r2, (const char *const[]){"relay", "-W", "1", "-vv", "--unix-mode", "0600",
                                            r_host, tcp_target, NULL});
    fd = raw_connect(paths[1]);
    cr_assert_geq(fd, 0);
    through(fd, 8u << 20);
    close(fd);

    /* Each pair spliced in the kernel: no fall-back to copying was said. */
    cr_assert(said(&r1, "closed", 10000) && said(&r2, "closed", 10000));
    cr_expect_null(strstr(r1.errbuf, "copying (splice"), "%s", r1.errbuf);
    cr_expect_null(strstr(r2.errbuf, "copying (splice"), "%s", r2.errbuf);
    char from[200];
    snprintf(from, sizeof from, "relay: unix:%s (pid %d, uid %d) -> ", paths[1], (int)getpid(),
             (int)getuid());
    cr_expect(strstr(r2.errbuf, from), "the peer is not named by the path: %s", r2.errbuf);
    cr_expect_eq(proc_signal(&r1, SIGTERM, 10000), 0, "%s", r1.errbuf);
    cr_expect_eq(proc_signal(&r2, SIGTERM, 10000), 0, "%s", r2.errbuf);
    cr_expect_eq(proc_signal(&echo_unix, SIGTERM, 10000), 0, "%s", echo_unix.errbuf);
    cr_expect_eq(proc_signal(&echo_tcp, SIGTERM, 10000), 0, "%s", echo_tcp.errbuf);
}

/* A comma in a Unix path is part of the path: only the ",weight=N" at the
 * end of a relay target is an option. */
Test(cli_unix, a_relay_target_path_may_hold_a_comma)
{
    char sock[128], plain[160], weighted[176], stats[160];
    snprintf(sock, sizeof sock, "%s/a,b.sock", dir);
    snprintf(plain, sizeof plain, "unix:%s", sock);
    snprintf(weighted, sizeof weighted, "%s,weight=2", plain);
    snprintf(stats, sizeof stats, "%s/relay.stats", dir);
    struct proc echo, relay;
    start_server(&echo, (const char *const[]){"echo", "-W", "1", plain, NULL});
    const char *targets[] = {plain, weighted};
    for (int i = 0; i < 2; i++) {
        cr_assert(nc_start(&relay, -1, (const char *const[]){"relay", "-W", "1", "--stats", stats,
                                                             "127.0.0.1:0", targets[i], NULL}));
        uint16_t port = proc_listening(&relay, 10000);
        cr_assert_neq(port, 0, "%s: %s", targets[i], relay.errbuf);
        int fd = tn_connect(port);
        cr_assert_geq(fd, 0);
        cr_assert(tn_write_all(fd, "comma\n", 6));
        cr_assert(nc_read_is(fd, "comma\n", 10000), "%s: no echo; relay: %s", targets[i],
                  relay.errbuf);
        close(fd);
        char want[200];
        snprintf(want, sizeof want, "\"target\":\"%s\",\"state\":\"up\",\"weight\":%d", plain,
                 i + 1);
        char *json = stats_ask(stats, "json\n", 5000);
        cr_expect(json && strstr(json, want), "%s: want %s in %s", targets[i], want, json);
        free(json);
        cr_expect_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    }
    cr_expect_eq(proc_signal(&echo, SIGTERM, 10000), 0, "%s", echo.errbuf);
}

/* `iocptool stats ARGS...`: its stdout, and its status in *status. */
static char *stats_out(int *status, const char *const *args)
{
    struct proc p;
    cr_assert(nc_start(&p, -1, args));
    proc_close_in(&p);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    uint64_t end = tn_now_ms() + 10000;
    while (tn_now_ms() < end && len < cap) {
        struct pollfd pfd = {.fd = p.out, .events = POLLIN};
        if (poll(&pfd, 1, 100) <= 0)
            continue;
        ssize_t n = read(p.out, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *status = proc_wait(&p, 10000);
    return buf;
}

Test(cli_unix, echo_and_its_stats_endpoint_over_unix)
{
    struct proc srv;
    char host[160], stats[160];
    snprintf(host, sizeof host, "unix:%s", paths[0]);
    snprintf(stats, sizeof stats, "unix:%s", paths[2]);
    start_server(&srv, (const char *const[]){"echo", "-W", "1", "--stats", stats, host, NULL});
    int fd = raw_connect(paths[0]);
    cr_assert_geq(fd, 0);
    cr_assert(tn_write_all(fd, "x", 1));
    cr_assert(nc_read_is(fd, "x", 10000));
    int status;
    char *out = stats_out(&status, (const char *const[]){"stats", stats, "--clients", NULL});
    cr_expect_eq(status, 0, "stats: %s", out);
    cr_expect(strstr(out, host), "the client is not shown by its path: %s", out);
    free(out);
    close(fd);
    cr_expect_eq(proc_signal(&srv, SIGTERM, 10000), 0, "%s", srv.errbuf);
}

Test(cli_unix, openbsd_nc_and_socat_on_the_other_end)
{
    struct proc srv, nc, sl, cli, srv2, sc;
    char host[160], listen_spec[160], connect_spec[160];

    /* iocptool listen -U, nc.openbsd -N -U. */
    start_server(&srv, (const char *const[]){"listen", "-U", paths[0], NULL});
    cr_assert(nc_spawn(&nc, -1, (char *const[]){"nc.openbsd", "-N", "-U", paths[0], NULL}));
    cr_expect(exchange(&nc, &srv, INTEROP, false), "nc.openbsd: %s; listen: %s", nc.errbuf,
              srv.errbuf);
    cr_expect_eq(proc_wait(&srv, 20000), 0, "listen: %s", srv.errbuf);
    proc_wait(&nc, 20000);

    /* socat UNIX-LISTEN, iocptool connect unix:. */
    snprintf(listen_spec, sizeof listen_spec, "UNIX-LISTEN:%s", paths[1]);
    cr_assert(nc_spawn(&sl, -1, (char *const[]){"socat", "-t", "30", listen_spec, "STDIO", NULL}));
    uint64_t end = tn_now_ms() + 10000;
    struct stat st;
    while (lstat(paths[1], &st) != 0 && tn_now_ms() < end)
        usleep(10000);
    snprintf(host, sizeof host, "unix:%s", paths[1]);
    cr_assert(nc_start(&cli, -1, (const char *const[]){"connect", host, NULL}));
    cr_expect(exchange(&cli, &sl, INTEROP, false), "connect: %s; socat: %s", cli.errbuf,
              sl.errbuf);
    cr_expect_eq(proc_wait(&cli, 20000), 0, "connect: %s", cli.errbuf);
    proc_wait(&sl, 20000);

    /* iocptool listen -U, socat UNIX-CONNECT. */
    start_server(&srv2, (const char *const[]){"listen", "-U", paths[2], NULL});
    snprintf(connect_spec, sizeof connect_spec, "UNIX-CONNECT:%s", paths[2]);
    cr_assert(nc_spawn(&sc, -1, (char *const[]){"socat", "-t", "30", "STDIO", connect_spec, NULL}));
    cr_expect(exchange(&sc, &srv2, INTEROP, false), "socat: %s; listen: %s", sc.errbuf,
              srv2.errbuf);
    cr_expect_eq(proc_wait(&srv2, 20000), 0, "listen: %s", srv2.errbuf);
    proc_wait(&sc, 20000);
}

Test(cli_unix, mistakes_are_said_plainly)
{
    struct proc p;
    cr_assert(nc_start(&p, -1, (const char *const[]){"connect", "unix:", NULL}));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect(strstr(p.errbuf, "the path is missing"), "%s", p.errbuf);

    cr_assert(nc_start(&p, -1, (const char *const[]){"listen", "--unix-mode", "0660", "0", NULL}));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect(strstr(p.errbuf, "only for a Unix-domain socket"), "%s", p.errbuf);

    cr_assert(nc_start(&p, -1, (const char *const[]){"listen", "--unix-mode", "999", "-U",
                                                     paths[0], NULL}));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect(strstr(p.errbuf, "octal"), "%s", p.errbuf);

    cr_assert(nc_start(&p, -1, (const char *const[]){"connect", "-U", paths[3], NULL}));
    cr_expect_neq(proc_wait(&p, 10000), 0);
    cr_expect(strstr(p.errbuf, "no such file"), "%s", p.errbuf);
}
