/* SPDX-License-Identifier: MIT */
/*
 * Unix-domain servers and clients ("unix:PATH", "unix:@NAME") on the
 * backend named by IOCP_BACKEND: 64 MiB each way, byte-exact, through the
 * library's own client and server with half-closes; the socket file (a
 * stale one replaced, a live one and a non-socket refused and left alone,
 * the mode asked for, removal at stop only of our own file); abstract
 * names; the peer's credentials; the peer's name; connect errors.  Every
 * test ends with the stop audit.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <poll.h>
#include <sys/un.h>

#include <criterion/criterion.h>

#include "core.h"
#include "engine_fixture.h"
#include "testnet.h"

#define BULK (64u << 20)
#define CHUNK 65536u

static struct iocp_engine *engine;
static struct iocp_server *server;
static char dir[64], path[128], host[160];

static struct {
    iocp_atomic_int opened, closed, close_status, client_closed, client_status;
    iocp_atomic_int cred_rc, tcp_cred_rc;
    iocp_atomic_u64 pid, uid, gid;
    iocp_atomic_u64 sent, received;
    iocp_atomic_int pattern_bad, eof, done;
    iocp_atomic_int named; /* the first connection claims peer and local */
    char peer[160], local[160];
} seen;

static bool wait_until(iocp_atomic_int *flag, int value, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    while (atomic_load(flag) < value) {
        if (tn_now_ms() > end)
            return false;
        usleep(1000);
    }
    return true;
}

static void setup(void)
{
    memset(&seen, 0, sizeof seen);
    snprintf(dir, sizeof dir, "/tmp/iocp-unix-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/s.sock", dir);
    snprintf(host, sizeof host, "unix:%s", path);
    struct iocp_engine_config cfg = {.workers = 2};
    ef_start(&engine, &cfg);
}

static void teardown(void)
{
    if (server)
        iocp_server_stop(server);
    iocp_engine_stop(engine);
    char report[512];
    int bad = iocp_engine_audit(engine, report, sizeof report);
    iocp_server_free(server);
    server = NULL;
    iocp_engine_free(engine);
    engine = NULL;
    unlink(path);
    rmdir(dir);
    cr_assert_eq(bad, 0, "audit: %s", report);
}

TestSuite(unix, .init = setup, .fini = teardown, .timeout = 240);

/* ---- the server side: echo ---- */

static void echo_open(struct iocp_conn *c)
{
    struct iocp_peer_cred cred;
    atomic_store(&seen.cred_rc, iocp_conn_peer_cred(c, &cred));
    atomic_store(&seen.pid, (uint64_t)cred.pid);
    atomic_store(&seen.uid, (uint64_t)cred.uid);
    atomic_store(&seen.gid, (uint64_t)cred.gid);
    /* Only the first connection writes the names: a later one would write
     * them while the test reads them, with nothing ordering the two. The
     * count below publishes them (the test waits on it). */
    int unclaimed = 0;
    if (atomic_compare_exchange_strong(&seen.named, &unclaimed, 1)) {
        iocp_conn_peer(c, seen.peer, sizeof seen.peer);
        iocp_conn_local(c, seen.local, sizeof seen.local);
    }
    atomic_fetch_add(&seen.opened, 1);
}

static void echo_data(struct iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
}

static void echo_close(struct iocp_conn *c, int status)
{
    (void)c;
    atomic_store(&seen.close_status, status);
    atomic_fetch_add(&seen.closed, 1);
}

/* No on_eof: after the client's half-close the library flushes the echo
 * still queued, then closes (the client reads it all, then EOF). */
static const struct iocp_conn_handler echo_handler = {
    .on_open = echo_open, .on_data = echo_data, .on_close = echo_close};

static int serve(const char *at, unsigned mode)
{
    struct iocp_server_config sc = {.host = at, .handler = &echo_handler, .unix_mode = mode};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    return iocp_server_start(server);
}

/* ---- the client side: stream the pattern, check what comes back ---- */

static void pump(struct iocp_conn *c)
{
    static unsigned char chunk[CHUNK];
    uint64_t sent = atomic_load(&seen.sent);
    while (sent < BULK && iocp_conn_queued(c) < 256 * 1024) {
        tn_pattern(chunk, CHUNK, 7, sent);
        if (iocp_conn_send(c, chunk, CHUNK) < 0)
            return;
        sent += CHUNK;
        atomic_store(&seen.sent, sent);
    }
    if (sent == BULK && !atomic_load(&seen.done)) {
        atomic_store(&seen.done, 1);
        iocp_conn_shutdown(c); /* half-close: the echo keeps coming */
    }
}

static void bulk_open(struct iocp_conn *c)
{
    pump(c);
}

static void bulk_pressure(struct iocp_conn *c, bool full)
{
    if (!full)
        pump(c);
}

static void bulk_data(struct iocp_conn *c, const void *data, size_t len)
{
    static unsigned char want[CHUNK];
    uint64_t at = atomic_load(&seen.received);
    for (size_t off = 0; off < len;) {
        size_t n = len - off < CHUNK ? len - off : CHUNK;
        tn_pattern(want, n, 7, at + off);
        if (memcmp(want, (const unsigned char *)data + off, n) != 0)
            atomic_store(&seen.pattern_bad, 1);
        off += n;
    }
    atomic_store(&seen.received, at + len);
    /* Sending is paced by on_pressure; a send queue with room left after
     * a burst of echo keeps going here too. */
    pump(c);
}

static void bulk_eof(struct iocp_conn *c)
{
    atomic_store(&seen.eof, 1);
    iocp_conn_close(c, IOCP_CLOSE_GRACEFUL);
}

static void client_close(struct iocp_conn *c, int status)
{
    (void)c;
    atomic_store(&seen.client_status, status);
    atomic_fetch_add(&seen.client_closed, 1);
}

static const struct iocp_conn_handler bulk_handler = {.on_open = bulk_open,
                                                      .on_data = bulk_data,
                                                      .on_eof = bulk_eof,
                                                      .on_pressure = bulk_pressure,
                                                      .on_close = client_close};

static void connect_to(const char *at, const struct iocp_conn_handler *h)
{
    struct iocp_connect_config cc = {.host = at, .timeout_ms = 10000, .worker = -1, .handler = h};
    int rc = iocp_connect(engine, &cc);
    cr_assert_eq(rc, 0, "connect %s: %s (%s)", at, iocp_strerror(rc), iocp_error_detail());
}

Test(unix, sixty_four_mebibytes_each_way_byte_exact_with_half_close)
{
    cr_assert_eq(serve(host, 0), 0, "%s", iocp_error_detail());
    connect_to(host, &bulk_handler);
    cr_assert(wait_until(&seen.client_closed, 1, 180000), "the transfer did not finish: %llu of "
              "%u bytes back", (unsigned long long)atomic_load(&seen.received), BULK);
    cr_assert_eq(atomic_load(&seen.client_status), 0, "%s",
                 iocp_strerror(atomic_load(&seen.client_status)));
    cr_assert_eq(atomic_load(&seen.sent), BULK);
    cr_assert_eq(atomic_load(&seen.received), BULK, "the echo was cut short");
    cr_assert_eq(atomic_load(&seen.pattern_bad), 0, "bytes changed on the way");
    cr_assert_eq(atomic_load(&seen.eof), 1, "no EOF after the echo: the half-close was lost");
    cr_assert(wait_until(&seen.closed, 1, 10000));
}

/* ---- the socket file ---- */

/* A socket bound at path (and listening if asked): another server, live
 * or dead. */
static int raw_bind(bool listening)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    if (listening)
        cr_assert_eq(listen(fd, 8), 0);
    return fd;
}

static int raw_connect(const char *to)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    socklen_t len = sizeof sa;
    if (to[0] == '@') {
        memcpy(sa.sun_path + 1, to + 1, strlen(to) - 1);
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(to));
    } else {
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", to);
    }
    if (connect(fd, (struct sockaddr *)&sa, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool echoes(int fd)
{
    char b[4];
    return fd >= 0 && tn_write_all(fd, "ping", 4) && tn_read_full(fd, b, 4, 10000) == 4 &&
           memcmp(b, "ping", 4) == 0;
}

Test(unix, a_stale_socket_file_from_a_dead_server_is_replaced)
{
    close(raw_bind(false)); /* bound, never listening, closed: what a crash leaves */
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISSOCK(st.st_mode));
    cr_assert_eq(serve(host, 0), 0, "%s", iocp_error_detail());
    int fd = raw_connect(path);
    cr_assert(echoes(fd), "the new server does not answer at the old path");
    close(fd);
}

Test(unix, a_live_server_keeps_its_socket_and_the_new_one_gets_eaddrinuse)
{
    int live = raw_bind(true);
    int rc = serve(host, 0);
    cr_assert_eq(rc, IOCP_EADDRINUSE, "%s", iocp_strerror(rc));
    cr_assert(strstr(iocp_error_detail(), "listening"), "detail: %s", iocp_error_detail());
    int fd = raw_connect(path);
    cr_assert_geq(fd, 0, "the live server's socket was taken away");
    int got = accept(live, NULL, NULL);
    cr_assert_geq(got, 0, "the connection did not reach the live server");
    close(got);
    close(fd);
    close(live);
}

Test(unix, a_file_that_is_not_a_socket_is_refused_and_kept)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("keep me", f);
    fclose(f);
    int rc = serve(host, 0);
    cr_assert_eq(rc, IOCP_EADDRINUSE, "%s", iocp_strerror(rc));
    cr_assert(strstr(iocp_error_detail(), "not a socket"), "detail: %s", iocp_error_detail());
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert(S_ISREG(st.st_mode) && st.st_size == 7, "the file was touched");
}

Test(unix, the_mode_asked_for_is_the_files_mode)
{
    cr_assert_eq(serve(host, 0640), 0, "%s", iocp_error_detail());
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640, "mode %o", st.st_mode & 07777);
    iocp_server_stop(server);
    cr_assert_neq(lstat(path, &st), 0, "a file whose mode was set outlived the server");
}

Test(unix, without_a_mode_the_umask_decides)
{
    mode_t old = umask(027);
    int rc = serve(host, 0);
    umask(old);
    cr_assert_eq(rc, 0, "%s", iocp_error_detail());
    struct stat st;
    cr_assert_eq(lstat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0750, "mode %o", st.st_mode & 0777);
}

Test(unix, the_file_goes_at_stop_and_a_replaced_one_stays)
{
    cr_assert_eq(serve(host, 0), 0, "%s", iocp_error_detail());
    char buf[160];
    cr_assert_str_eq(iocp_server_address(server, buf, sizeof buf), host);
    cr_assert_eq(iocp_server_port(server), 0);
    iocp_server_stop(server);
    struct stat st;
    cr_assert_neq(lstat(path, &st), 0, "the socket file outlived the server");

    /* Another process took the path while ours ran: its file stays. */
    iocp_server_free(server);
    server = NULL;
    cr_assert_eq(serve(host, 0), 0, "%s", iocp_error_detail());
    unlink(path);
    int other = raw_bind(true);
    iocp_server_stop(server);
    cr_assert_eq(lstat(path, &st), 0, "another server's socket file was removed");
    close(other);
}

/* ---- splice between a Unix and a TCP leg ---- */

/* The Unix connection, paused until its TCP partner is open; then each
 * leg's input is spliced into the other (a relay's pair). */
static struct iocp_conn *unix_leg;
static iocp_atomic_int splice_rc_in, splice_rc_out, spliced;
static uint16_t sink_port;

static void leg_data(struct iocp_conn *c, const void *data, size_t len)
{
    /* Bytes a receive in flight delivered as the splice started: they go
     * first, by hand. */
    iocp_conn_send(iocp_conn_data(c), data, len);
}

static void leg_eof(struct iocp_conn *c)
{
    (void)c; /* the splice forwards the half-close */
}

static void tcp_leg_open(struct iocp_conn *t)
{
    iocp_conn_set_data(t, unix_leg);
    iocp_conn_set_data(unix_leg, t);
    atomic_store(&splice_rc_in, iocp_conn_splice(unix_leg, t));
    atomic_store(&splice_rc_out, iocp_conn_splice(t, unix_leg));
    iocp_conn_resume(unix_leg);
    atomic_store(&spliced, 1);
}

static void leg_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
}

static const struct iocp_conn_handler tcp_leg_handler = {
    .on_open = tcp_leg_open, .on_data = leg_data, .on_eof = leg_eof, .on_close = leg_close};

static void unix_leg_open(struct iocp_conn *c)
{
    unix_leg = c;
    iocp_conn_pause(c);
    struct iocp_connect_config cc = {.host = "127.0.0.1",
                                     .port = sink_port,
                                     .worker = (int)iocp_conn_worker(c),
                                     .handler = &tcp_leg_handler};
    if (iocp_connect(iocp_conn_engine(c), &cc) < 0)
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static const struct iocp_conn_handler unix_leg_handler = {
    .on_open = unix_leg_open, .on_data = leg_data, .on_eof = leg_eof, .on_close = leg_close};

/* Write len pattern bytes (seed) to wfd and half-close, while reading and
 * checking len bytes of the other pattern and EOF from rfd. */
static bool cross(int a, int b, size_t len)
{
    struct {
        int w, r;
        uint64_t sent, got, seed;
        bool eof, shut;
    } way[2] = {{a, b, 0, 0, 41, false, false}, {b, a, 0, 0, 42, false, false}};
    static unsigned char buf[CHUNK], want[CHUNK];
    tn_set_nonblock(a, true);
    tn_set_nonblock(b, true);
    uint64_t end = tn_now_ms() + 120000;
    while (tn_now_ms() < end) {
        bool done = true;
        for (int i = 0; i < 2; i++) {
            if (way[i].sent < len) {
                size_t n = len - way[i].sent < CHUNK ? len - way[i].sent : CHUNK;
                tn_pattern(buf, n, way[i].seed, way[i].sent);
                ssize_t w = write(way[i].w, buf, n);
                if (w > 0)
                    way[i].sent += (uint64_t)w;
            } else if (!way[i].shut) {
                shutdown(way[i].w, SHUT_WR);
                way[i].shut = true;
            }
            ssize_t r = read(way[i].r, buf, CHUNK);
            if (r > 0) {
                tn_pattern(want, (size_t)r, way[i].seed, way[i].got);
                if (memcmp(want, buf, (size_t)r) != 0)
                    return false;
                way[i].got += (uint64_t)r;
            } else if (r == 0) {
                way[i].eof = true;
            }
            if (!way[i].eof || !way[i].shut)
                done = false;
        }
        if (done)
            return way[0].got == len && way[1].got == len;
        struct pollfd pfd[2] = {{.fd = a, .events = POLLIN | POLLOUT},
                                {.fd = b, .events = POLLIN | POLLOUT}};
        poll(pfd, 2, 10);
    }
    return false;
}

Test(unix, splice_moves_bytes_between_a_unix_and_a_tcp_leg)
{
    int sink = tn_listen(&sink_port);
    cr_assert_geq(sink, 0);
    struct iocp_server_config sc = {.host = host, .handler = &unix_leg_handler};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), 0, "%s", iocp_error_detail());
    int u = raw_connect(path);
    cr_assert_geq(u, 0);
    struct pollfd pfd = {.fd = sink, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "the TCP leg never came");
    int t = accept(sink, NULL, NULL);
    cr_assert_geq(t, 0);
    cr_assert(wait_until(&spliced, 1, 10000));
    cr_assert_eq(atomic_load(&splice_rc_in), 0, "%s", iocp_strerror(atomic_load(&splice_rc_in)));
    cr_assert_eq(atomic_load(&splice_rc_out), 0, "%s", iocp_strerror(atomic_load(&splice_rc_out)));
    cr_assert(cross(u, t, 8u << 20), "not byte-exact both ways with the half-closes");
    close(u);
    close(t);
    close(sink);
}

/* ---- names, credentials, errors ---- */

Test(unix, the_peer_is_named_by_the_path_and_its_credentials_are_known)
{
    cr_assert_eq(serve(host, 0), 0, "%s", iocp_error_detail());
    int fd = raw_connect(path);
    cr_assert(echoes(fd));
    cr_assert(wait_until(&seen.opened, 1, 10000));
    cr_assert_eq(atomic_load(&seen.cred_rc), 0, "%s", iocp_strerror(atomic_load(&seen.cred_rc)));
    cr_assert_eq((pid_t)atomic_load(&seen.pid), getpid());
    cr_assert_eq((uid_t)atomic_load(&seen.uid), getuid());
    cr_assert_eq((gid_t)atomic_load(&seen.gid), getgid());
    cr_assert_str_eq(seen.peer, host);
    cr_assert_str_eq(seen.local, host);
    close(fd);
}

static void tcp_open(struct iocp_conn *c)
{
    struct iocp_peer_cred cred;
    atomic_store(&seen.tcp_cred_rc, iocp_conn_peer_cred(c, &cred));
    atomic_fetch_add(&seen.opened, 1);
}

static const struct iocp_conn_handler tcp_handler = {
    .on_open = tcp_open, .on_data = echo_data, .on_close = echo_close};

Test(unix, a_tcp_connection_has_no_peer_credentials)
{
    struct iocp_server_config sc = {.host = "127.0.0.1", .handler = &tcp_handler};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), 0);
    int fd = tn_connect(iocp_server_port(server));
    cr_assert_geq(fd, 0);
    cr_assert(wait_until(&seen.opened, 1, 10000));
    cr_assert_eq(atomic_load(&seen.tcp_cred_rc), IOCP_ENOTSUP);
    close(fd);
}

static const struct iocp_conn_handler fail_handler = {.on_data = echo_data,
                                                      .on_close = client_close};

Test(unix, an_abstract_name_makes_no_file_and_serves)
{
    char name[64], at[80];
    snprintf(name, sizeof name, "@iocp-test-%d-%llu", (int)getpid(),
             (unsigned long long)tn_now_ms());
    snprintf(at, sizeof at, "unix:%s", name);
    cr_assert_eq(serve(at, 0), 0, "%s", iocp_error_detail());
    int fd = raw_connect(name);
    cr_assert(echoes(fd), "nobody answers at %s", at);
    cr_assert(wait_until(&seen.opened, 1, 10000));
    cr_assert_str_eq(seen.peer, at);
    close(fd);
    /* The library's client reaches it too. */
    connect_to(at, &fail_handler);
    cr_assert(wait_until(&seen.opened, 2, 10000));
    struct stat st;
    cr_assert_neq(lstat(name + 1, &st), 0, "an abstract name made a file");
}

Test(unix, connecting_to_nothing_fails_with_the_reason)
{
    connect_to(host, &fail_handler);
    cr_assert(wait_until(&seen.client_closed, 1, 10000));
    cr_assert_eq(atomic_load(&seen.client_status), IOCP_ENOENT, "%s",
                 iocp_strerror(atomic_load(&seen.client_status)));

    close(raw_bind(false)); /* a file nobody serves */
    connect_to(host, &fail_handler);
    cr_assert(wait_until(&seen.client_closed, 2, 10000));
    cr_assert_eq(atomic_load(&seen.client_status), IOCP_ECONNREFUSED, "%s",
                 iocp_strerror(atomic_load(&seen.client_status)));
}

/* ---- a server whose backlog is full ---- */

static void ping_open(struct iocp_conn *c)
{
    atomic_fetch_add(&seen.opened, 1);
    iocp_conn_send(c, "ping", 4);
}

static void ignore_data(struct iocp_conn *c, const void *data, size_t len)
{
    (void)c;
    (void)data;
    (void)len;
}

static const struct iocp_conn_handler ping_handler = {
    .on_open = ping_open, .on_data = ignore_data, .on_close = client_close};

/* Nonblocking connects to path until the backlog refuses one (EAGAIN):
 * the connections it holds, in fds; how many. */
static int fill_backlog(int *fds, int max)
{
    for (int n = 0; n < max; n++) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        cr_assert_geq(fd, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof sa.sun_path, "%.100s", path);
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            fds[n] = fd;
            continue;
        }
        int e = errno;
        close(fd);
        cr_assert_eq(e, EAGAIN, "connect: %s", strerror(e));
        return n;
    }
    cr_assert_fail("%d connections did not fill a backlog of 1", max);
    return max;
}

/* A client told EAGAIN by a full backlog waits, as a TCP client does, and
 * connects once the server takes the connections ahead of it. */
Test(unix, a_full_backlog_makes_the_client_wait_not_fail)
{
    int lfd = raw_bind(false);
    cr_assert_eq(listen(lfd, 1), 0);
    int queued[16];
    int n = fill_backlog(queued, 16);

    connect_to(host, &ping_handler);
    cr_expect_not(wait_until(&seen.client_closed, 1, 300), "the client gave up: %s",
                  iocp_strerror(atomic_load(&seen.client_status)));

    /* Room: the connections ahead of it are taken, then the client's. */
    for (int i = 0; i < n; i++) {
        int fd = accept(lfd, NULL, NULL);
        cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
        close(fd);
        close(queued[i]);
    }
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    cr_assert_eq(poll(&pfd, 1, 10000), 1, "the client never connected");
    int fd = accept(lfd, NULL, NULL);
    cr_assert_geq(fd, 0, "accept: %s", strerror(errno));
    char b[4];
    cr_assert_eq(tn_read_full(fd, b, 4, 10000), 4, "the client said nothing");
    cr_assert_eq(memcmp(b, "ping", 4), 0);
    cr_assert_eq(atomic_load(&seen.opened), 1);
    close(fd);
    close(lfd);
    cr_assert(wait_until(&seen.client_closed, 1, 10000), "the client did not see the close");
}

Test(unix, bad_addresses_are_refused_with_a_detail)
{
    struct iocp_server_config sc = {.host = "unix:", .handler = &echo_handler};
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), IOCP_EINVAL);
    cr_assert(strstr(iocp_error_detail(), "path"), "detail: %s", iocp_error_detail());
    iocp_server_free(server);
    server = NULL;

    char longer[200];
    memset(longer, 'x', sizeof longer);
    memcpy(longer, "unix:/", 6);
    longer[sizeof longer - 1] = '\0';
    sc.host = longer;
    cr_assert_eq(iocp_server_new(&server, engine, &sc), 0);
    cr_assert_eq(iocp_server_start(server), IOCP_ENAMETOOLONG);
    cr_assert(strstr(iocp_error_detail(), "too long"), "detail: %s", iocp_error_detail());
}
