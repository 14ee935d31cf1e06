/* SPDX-License-Identifier: MIT */
/*
 * iocptool relay, driven as a user drives it: bytes through it exactly and
 * in flat memory, half-closes each way, several targets, the connect
 * time-out, what it says about a dead target without -v, and ncat and
 * socat on either side of it.
 */
#include <criterion/criterion.h>

#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>

#include "nc_support.h"

static char tmpdir[64];

/* Other programs (ncat, socat) started by a test, for the cleanup. */
static pid_t others[16];

static void relay_init(void)
{
    nc_dir_init(tmpdir, sizeof tmpdir, "relay");
}

static void relay_fini(void)
{
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] > 0) {
            kill(others[i], SIGKILL);
            waitpid(others[i], NULL, 0);
            others[i] = 0;
        }
    nc_dir_fini(tmpdir);
}

TestSuite(cli_relay, .init = relay_init, .fini = relay_fini, .timeout = 110);

/* ---- helpers ---- */

#ifdef IOCP_TEST_SANITIZED
#define BIG_TRANSFER (64ull << 20)
#else
#define BIG_TRANSFER (1ull << 30)
#endif

/* The byte at offset o of every stream: a random block whose length is
 * prime, so that a chunk lost, repeated or swapped anywhere shows. */
#define PAT_LEN ((1u << 20) + 7u)
static unsigned char *pat_block(void)
{
    static unsigned char *block;
    if (!block) {
        block = malloc(PAT_LEN);
        tn_pattern(block, PAT_LEN, 777, 0);
    }
    return block;
}

static void pat_fill(unsigned char *buf, size_t len, uint64_t off)
{
    const unsigned char *b = pat_block();
    while (len) {
        size_t pos = (size_t)(off % PAT_LEN);
        size_t n = PAT_LEN - pos < len ? PAT_LEN - pos : len;
        memcpy(buf, b + pos, n);
        buf += n;
        off += n;
        len -= n;
    }
}

static bool pat_check(const unsigned char *buf, size_t len, uint64_t off)
{
    const unsigned char *b = pat_block();
    while (len) {
        size_t pos = (size_t)(off % PAT_LEN);
        size_t n = PAT_LEN - pos < len ? PAT_LEN - pos : len;
        if (memcmp(buf, b + pos, n) != 0)
            return false;
        buf += n;
        off += n;
        len -= n;
    }
    return true;
}

/* Stop a server the way a user does and check that it leaves cleanly: status
 * 0, books balanced (it runs with -v, which audits them at stop), and no
 * sanitizer report. */
static void expect_clean_exit(struct proc *p)
{
    cr_expect_eq(proc_signal(p, SIGTERM, 10000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "mismatch"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

static uint16_t start_relay_argv(struct proc *p, char **args)
{
    char *argv[40];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    argv[n++] = "relay";
    argv[n++] = "-W";
    argv[n++] = "2";
    argv[n++] = "-v";
    while (*args && n < 39)
        argv[n++] = *args++;
    argv[n] = NULL;
    cr_assert(proc_startv(p, -1, argv));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* relay -W 2 [extra...] 127.0.0.1:0 TARGET_PORT... (0 ends the list) */
static uint16_t start_relay(struct proc *p, const char *extra, ...)
{
    static char targets[16][32];
    char *args[16];
    int n = 0;
    if (extra)
        args[n++] = (char *)extra;
    args[n++] = "127.0.0.1:0";
    va_list ap;
    va_start(ap, extra);
    int port;
    while (n < 14 && (port = va_arg(ap, int)) != 0) {
        snprintf(targets[n], sizeof targets[n], "127.0.0.1:%d", port);
        args[n] = targets[n];
        n++;
    }
    va_end(ap);
    args[n] = NULL;
    return start_relay_argv(p, args);
}

static uint16_t start_echo(struct proc *p, const char *stats_path)
{
    if (stats_path)
        cr_assert(proc_start(p, -1, "echo", "-W", "1", "--stats", stats_path, "127.0.0.1:0", NULL));
    else
        cr_assert(proc_start(p, -1, "echo", "-W", "1", "127.0.0.1:0", NULL));
    uint16_t port = proc_listening(p, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

static int accept_within(int lfd, unsigned ms)
{
    struct pollfd pfd = {.fd = lfd, .events = POLLIN};
    if (poll(&pfd, 1, (int)ms) <= 0)
        return -1;
    return accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
}

/* Everything fd sends until EOF (or the deadline), NUL-terminated. */
static char *read_all(int fd, size_t *len_out, unsigned timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        uint64_t now = tn_now_ms();
        if (now >= end)
            break;
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, (int)(end - now)) <= 0)
            continue;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

/* Run `iocptool stats ARGS...` and return its stdout (status in *status). */
static char *run_stats(int *status, ...)
{
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    argv[n++] = "stats";
    va_list ap;
    va_start(ap, status);
    char *a;
    while (n < 15 && (a = va_arg(ap, char *)) != NULL)
        argv[n++] = a;
    va_end(ap);
    argv[n] = NULL;
    struct proc p;
    cr_assert(proc_startv(&p, -1, argv));
    char *out = read_all(p.out, NULL, 10000);
    *status = proc_wait(&p, 10000);
    return out;
}

static long long json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = json ? strstr(json, pat) : NULL;
    return at ? strtoll(at + strlen(pat), NULL, 10) : -1;
}

static long rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

/* Start a program that is not iocptool (ncat, socat) with the given
 * stdin and stdout; stderr goes to /dev/null. */
static pid_t spawn_other(char *const argv[], int in_fd, int out_fd)
{
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        dup2(in_fd >= 0 ? in_fd : null, 0);
        dup2(out_fd >= 0 ? out_fd : null, 1);
        dup2(null, 2);
        execvp(argv[0], argv);
        _exit(127);
    }
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
        if (others[i] == 0) {
            others[i] = pid;
            break;
        }
    return pid;
}

/* The exit status of an other program, or -1 if it is still running at the
 * deadline (or was waited for already). */
static int wait_other(pid_t pid, unsigned timeout_ms)
{
    uint64_t end = tn_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t got = waitpid(pid, &st, WNOHANG);
        if (got < 0)
            return -1;
        if (got == pid) {
            for (size_t i = 0; i < sizeof others / sizeof others[0]; i++)
                if (others[i] == pid)
                    others[i] = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (tn_now_ms() >= end)
            return -1;
        usleep(10000);
    }
}

static bool have_program(const char *name)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static bool other_exited(void *arg)
{
    return wait_other(*(pid_t *)arg, 0) >= 0;
}

/* True once the other program pid listens on 127.0.0.1:port; false when
 * it exits first, or another process holds the port. */
static bool wait_own_listener(pid_t pid, uint16_t port, unsigned timeout_ms)
{
    return tn_wait_listener_of(pid, port, timeout_ms, other_exited, &pid);
}

/* A file of len pattern bytes starting at offset off; returns its path. */
static const char *make_file(const char *name, size_t len, uint64_t off)
{
    static char paths[4][256];
    static int next;
    char *path = paths[next++ % 4];
    snprintf(path, sizeof paths[0], "%s/%s", tmpdir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    cr_assert_geq(fd, 0);
    unsigned char *buf = malloc(len);
    pat_fill(buf, len, off);
    cr_assert(tn_write_all(fd, buf, len));
    free(buf);
    close(fd);
    return path;
}

static bool file_has_pattern(const char *path, size_t len, uint64_t off)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    unsigned char *buf = malloc(len + 1);
    size_t got = 0;
    ssize_t n;
    while (got <= len && (n = read(fd, buf + got, len + 1 - got)) > 0)
        got += (size_t)n;
    close(fd);
    bool ok = got == len && pat_check(buf, len, off);
    free(buf);
    return ok;
}

/* ---- a gigabyte, a slow consumer, flat memory ---- */

struct sender {
    int fd;
    uint64_t total;
    bool ok;
    bool eof_after; /* the relay closed the client once everything was through */
};

static void *send_all(void *arg)
{
    struct sender *s = arg;
    size_t chunk = 256 * 1024;
    unsigned char *buf = malloc(chunk);
    uint64_t off = 0;
    s->ok = true;
    while (off < s->total) {
        size_t n = s->total - off < chunk ? (size_t)(s->total - off) : chunk;
        pat_fill(buf, n, off);
        if (!tn_write_all(s->fd, buf, n)) {
            s->ok = false;
            break;
        }
        off += n;
    }
    shutdown(s->fd, SHUT_WR);
    s->eof_after = tn_wait_eof(s->fd, 60000);
    free(buf);
    return NULL;
}

Test(cli_relay, a_gigabyte_passes_byte_exact_to_a_slow_consumer_in_flat_memory)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    cr_assert_geq(lfd, 0);
    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tport, 0);
    long rss_before = rss_kib(relay.pid);

    struct sender s = {.fd = tn_connect(port), .total = BIG_TRANSFER};
    cr_assert_geq(s.fd, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, send_all, &s), 0);
    int t = accept_within(lfd, 10000);
    cr_assert_geq(t, 0);

    /* Slow at first: 16 KiB every 20 ms for 1.5 s, while the sender pushes
     * as fast as it can.  Without back-pressure the relay would queue what
     * the sender pushes meanwhile (hundreds of MiB); with it, each
     * direction holds about one send-queue watermark (256 KiB) plus what
     * was already received when the pause came (at most the receive
     * buffers: 256 x 16 KiB per worker).  With the engine's own buffers
     * and the code that is well under 64 MiB; unbounded queueing of 1 GiB
     * is far above it. */
    size_t bufsize = 1 << 20;
    unsigned char *buf = malloc(bufsize);
    uint64_t got = 0, slow_end = tn_now_ms() + 1500, next_sample = 0;
    long rss_max = 0;
    bool exact = true;
    for (;;) {
        uint64_t now = tn_now_ms();
        bool slow = now < slow_end;
        size_t want = slow ? 16384 : bufsize;
        size_t n = tn_read_full(t, buf, want, 60000);
        if (n == 0)
            break;
        if (exact && !pat_check(buf, n, got))
            exact = false;
        got += n;
        if (now >= next_sample) {
            long rss = rss_kib(relay.pid);
            if (rss > rss_max)
                rss_max = rss;
            next_sample = now + 20;
        }
        if (slow)
            usleep(20000);
        if (n < want)
            break; /* EOF */
    }
    cr_expect(tn_wait_eof(t, 1000), "the target sees EOF after the last byte");
    close(t);
    pthread_join(th, NULL);
    close(s.fd);
    close(lfd);
    free(buf);

    cr_expect(s.ok, "the sender wrote everything");
    cr_expect_eq(got, BIG_TRANSFER, "%llu of %llu bytes arrived", (unsigned long long)got,
                 (unsigned long long)BIG_TRANSFER);
    cr_expect(exact, "the bytes arrived exactly as sent");
    cr_expect(s.eof_after, "the client sees EOF once the target closed");
#ifdef IOCP_TEST_SANITIZED
    /* ASan keeps freed memory in quarantine (up to 256 MiB), so RSS
     * measures the sanitizer more than the relay: allow for it (the
     * unsanitized run is the one that holds the relay to 64 MiB). */
    long bound = 128 * 1024;
#else
    long bound = 64 * 1024;
#endif
    cr_expect_lt(rss_max, bound, "relay RSS peaked at %ld KiB (started at %ld KiB)", rss_max,
                 rss_before);
    cr_log_info("relay RSS: %ld KiB at start, %ld KiB at most", rss_before, rss_max);
    expect_clean_exit(&relay);
}

/* ---- half-close, each way ---- */

Test(cli_relay, client_shutdown_reaches_the_target_which_can_still_answer)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tport, 0);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    int t = accept_within(lfd, 10000);
    cr_assert_geq(t, 0);

    cr_assert(tn_write_all(c, "question", 8));
    shutdown(c, SHUT_WR);
    char buf[64];
    cr_expect_eq(tn_read_full(t, buf, 8, 5000), 8);
    cr_expect_eq(memcmp(buf, "question", 8), 0);
    cr_expect_eq(tn_read_full(t, buf, 1, 5000), 0, "the target reads EOF");

    /* The other direction is still open. */
    cr_assert(tn_write_all(t, "answer", 6));
    cr_expect_eq(tn_read_full(c, buf, 6, 5000), 6, "the client still receives");
    cr_expect_eq(memcmp(buf, "answer", 6), 0);
    shutdown(t, SHUT_WR);
    cr_expect(tn_wait_eof(c, 5000), "then the client reads EOF");
    close(c);
    close(t);
    close(lfd);
    expect_clean_exit(&relay);
}

Test(cli_relay, target_shutdown_reaches_the_client_which_can_still_send)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tport, 0);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    int t = accept_within(lfd, 10000);
    cr_assert_geq(t, 0);

    cr_assert(tn_write_all(t, "banner", 6));
    shutdown(t, SHUT_WR);
    char buf[64];
    cr_expect_eq(tn_read_full(c, buf, 6, 5000), 6);
    cr_expect_eq(memcmp(buf, "banner", 6), 0);
    cr_expect_eq(tn_read_full(c, buf, 1, 5000), 0, "the client reads EOF");

    cr_assert(tn_write_all(c, "upload", 6));
    cr_expect_eq(tn_read_full(t, buf, 6, 5000), 6, "the target still receives");
    cr_expect_eq(memcmp(buf, "upload", 6), 0);
    shutdown(c, SHUT_WR);
    cr_expect(tn_wait_eof(t, 5000), "then the target reads EOF");
    close(c);
    close(t);
    close(lfd);
    expect_clean_exit(&relay);
}

/* ---- several targets ---- */

static bool echo_once(uint16_t port, const char *msg)
{
    int fd = tn_connect(port);
    if (fd < 0)
        return false;
    size_t len = strlen(msg);
    char buf[256];
    bool ok = tn_write_all(fd, msg, len);
    shutdown(fd, SHUT_WR);
    ok = ok && tn_read_full(fd, buf, len, 5000) == len && !memcmp(buf, msg, len) &&
         tn_wait_eof(fd, 5000);
    close(fd);
    return ok;
}

Test(cli_relay, targets_take_turns_round_robin)
{
    char s1[128], s2[128];
    snprintf(s1, sizeof s1, "%s/echo1.sock", tmpdir);
    snprintf(s2, sizeof s2, "%s/echo2.sock", tmpdir);
    struct proc e1, e2, relay;
    uint16_t p1 = start_echo(&e1, s1), p2 = start_echo(&e2, s2);
    uint16_t port = start_relay(&relay, "-vv", p1, p2, 0);
    for (int i = 0; i < 6; i++) {
        bool ok = echo_once(port, "round and round");
        proc_pump_err(&relay, 50);
        cr_expect(ok, "conversation %d; relay: %s", i, relay.errbuf);
    }
    int st;
    char *j1 = run_stats(&st, "--json", s1, NULL);
    cr_expect_eq(st, 0);
    char *j2 = run_stats(&st, "--json", s2, NULL);
    cr_expect_eq(st, 0);
    cr_expect_eq(json_number(j1, "accepted"), 3, "first echo: %s", j1);
    cr_expect_eq(json_number(j2, "accepted"), 3, "second echo: %s", j2);
    free(j1);
    free(j2);
    expect_clean_exit(&relay);
}

Test(cli_relay, a_dead_target_is_skipped_for_the_next)
{
    struct proc e1, relay;
    uint16_t p1 = start_echo(&e1, NULL);
    uint16_t dead = tn_closed_port();
    uint16_t port = start_relay(&relay, "-v", dead, p1, 0);
    for (int i = 0; i < 4; i++)
        cr_expect(echo_once(port, "still served"), "conversation %d", i);
    proc_pump_err(&relay, 100);
    cr_expect_not_null(strstr(relay.errbuf, "connection refused"), "said why at -v: %s",
                       relay.errbuf);
    expect_clean_exit(&relay);
}

Test(cli_relay, a_client_is_reset_when_every_target_fails)
{
    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tn_closed_port(), tn_closed_port(), 0);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    char buf[16];
    uint64_t t0 = tn_now_ms();
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    cr_assert_gt(poll(&pfd, 1, 5000), 0, "the client hears from the relay");
    ssize_t n = read(c, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET, "a reset, not an orderly EOF (read %zd, %s)", n,
              strerror(errno));
    cr_expect_lt(tn_now_ms() - t0, 5000);
    close(c);
    /* And the relay goes on. */
    cr_expect(proc_still_running(&relay, 200), "still running");
    expect_clean_exit(&relay);
}

/* ---- what a relay says without -v ---- */

/* How many times needle is in the relay's stderr, once it has said all it
 * had to (within ms). */
static int said_count(struct proc *p, const char *needle, int want, unsigned ms)
{
    uint64_t end = tn_now_ms() + ms;
    for (;;) {
        int k = 0;
        for (const char *at = p->errbuf; (at = strstr(at, needle)) != NULL; at++)
            k++;
        if (k >= want || tn_now_ms() >= end || p->err < 0)
            return k;
        proc_pump_err(p, 20);
    }
}

/* A client the relay must reset (every target failed). */
static void expect_client_reset(uint16_t port, int i)
{
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    char buf[16];
    struct pollfd pfd = {.fd = c, .events = POLLIN};
    cr_assert_gt(poll(&pfd, 1, 5000), 0, "client %d hears from the relay", i);
    ssize_t n = read(c, buf, sizeof buf);
    cr_expect(n < 0 && errno == ECONNRESET, "client %d: reset (read %zd)", i, n);
    close(c);
}

Test(cli_relay, a_dead_target_is_said_once_per_change_at_the_default_level)
{
    uint16_t dead = tn_closed_port();
    char target[32], line[160];
    snprintf(target, sizeof target, "127.0.0.1:%u", dead);
    struct proc relay;
    cr_assert(
        proc_start(&relay, -1, "relay", "-W", "2", "--no-stats", "127.0.0.1:0", target, NULL));
    uint16_t port = proc_listening(&relay, 10000);
    cr_assert_neq(port, 0, "stderr: %s", relay.errbuf);

    /* Five clients reset: one line, not five. */
    for (int i = 0; i < 5; i++)
        expect_client_reset(port, i);
    snprintf(line, sizeof line, "iocptool: relay: target %s unreachable (connection refused)\n",
             target);
    cr_expect_eq(said_count(&relay, line, 2, 500), 1, "%s", relay.errbuf);

    /* The target comes up: said once, with what its absence cost. */
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = tn_loopback(dead);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0, "port %u taken meanwhile", dead);
    cr_assert_eq(listen(lfd, 16), 0);
    for (int i = 0; i < 2; i++) {
        int c = tn_connect(port);
        cr_assert_geq(c, 0);
        cr_assert(tn_write_all(c, "up", 2));
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        cr_assert_gt(poll(&pfd, 1, 5000), 0, "client %d reaches the target", i);
        int s = accept(lfd, NULL, NULL);
        char buf[2];
        cr_expect_eq(tn_read_full(s, buf, 2, 5000), 2);
        close(s);
        close(c);
    }
    snprintf(line, sizeof line,
             "iocptool: relay: target %s reachable again after 5 failures; 5 clients reset\n",
             target);
    cr_expect_eq(said_count(&relay, line, 2, 2000), 1, "%s", relay.errbuf);

    /* Down again, and still down at exit: said with its counts. */
    close(lfd);
    expect_client_reset(port, 5);
    expect_client_reset(port, 6);
    snprintf(line, sizeof line, "target %s unreachable (connection refused)", target);
    cr_expect_eq(said_count(&relay, line, 3, 500), 2, "%s", relay.errbuf);
    cr_expect_eq(proc_signal(&relay, SIGTERM, 10000), 0, "%s", relay.errbuf);
    snprintf(line, sizeof line,
             "iocptool: relay: target %s still unreachable at exit: 2 failures; 2 clients reset\n",
             target);
    cr_expect_not_null(strstr(relay.errbuf, line), "%s", relay.errbuf);
}

/* A listener whose accept queue is full: the kernel drops further SYNs,
 * so a connect to it neither succeeds nor fails until a time-out. */
static int blackhole(uint16_t *port, int *filler)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = tn_loopback(0);
    socklen_t len = sizeof sa;
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 0), 0);
    getsockname(fd, (struct sockaddr *)&sa, &len);
    *port = ntohs(sa.sin_port);
    *filler = tn_connect(*port);
    cr_assert_geq(*filler, 0);
    return fd;
}

Test(cli_relay, connect_time_out_moves_on_and_early_bytes_wait_for_the_target)
{
    uint16_t hole;
    int filler;
    int hfd = blackhole(&hole, &filler);
    struct proc e1, relay;
    uint16_t p1 = start_echo(&e1, NULL);
    uint16_t port = start_relay(&relay, "-w0.5", hole, p1, 0);

    /* Send at once, more than the relay buffers before pausing the client
     * (256 KiB): it must all arrive, in order, once the second target is up. */
    size_t len = 1 << 20;
    unsigned char *out = malloc(len), *in = malloc(len);
    pat_fill(out, len, 99);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    uint64_t t0 = tn_now_ms();
    tn_set_nonblock(c, true);
    size_t sent = 0, got = 0;
    while ((sent < len || got < len) && tn_now_ms() - t0 < 20000) {
        struct pollfd pfd = {.fd = c, .events = POLLIN | (sent < len ? POLLOUT : 0)};
        poll(&pfd, 1, 100);
        if (sent < len) {
            ssize_t w = write(c, out + sent, len - sent);
            if (w > 0)
                sent += (size_t)w;
            if (sent == len)
                shutdown(c, SHUT_WR);
        }
        ssize_t r = read(c, in + got, len - got);
        if (r > 0)
            got += (size_t)r;
        else if (r == 0)
            break;
    }
    uint64_t took = tn_now_ms() - t0;
    cr_expect_eq(sent, len);
    cr_expect_eq(got, len, "%zu of %zu echoed", got, len);
    cr_expect_eq(memcmp(in, out, got), 0, "in order");
    cr_expect_geq(took, 400, "the first target was given its -w (took %llu ms)",
                  (unsigned long long)took);
    close(c);
    close(filler);
    close(hfd);
    free(in);
    free(out);
    expect_clean_exit(&relay);
}

Test(cli_relay, max_conns_closes_the_extra_client)
{
    uint16_t tport = 0;
    int lfd = tn_listen(&tport);
    struct proc relay;
    uint16_t port = start_relay(&relay, "--max-conns=1", tport, 0);
    int c1 = tn_connect(port);
    int t1 = accept_within(lfd, 5000);
    cr_assert_geq(t1, 0);
    int c2 = tn_connect(port);
    cr_assert_geq(c2, 0);
    cr_expect(tn_wait_eof(c2, 5000), "the second client is closed at once");
    cr_expect_lt(accept_within(lfd, 300), 0, "and never reaches the target");
    /* The first still works. */
    cr_assert(tn_write_all(c1, "x", 1));
    char b;
    cr_expect_eq(tn_read_full(t1, &b, 1, 5000), 1);
    close(c1);
    close(c2);
    close(t1);
    close(lfd);
    expect_clean_exit(&relay);
}

Test(cli_relay, the_stats_endpoint_counts_both_legs)
{
    struct proc e1, relay;
    uint16_t p1 = start_echo(&e1, NULL);
    char path[128];
    snprintf(path, sizeof path, "%s/relay.sock", tmpdir);
    char *args[] = {"--stats", path, "127.0.0.1:0", NULL, NULL};
    char target[32];
    snprintf(target, sizeof target, "127.0.0.1:%u", p1);
    args[3] = target;
    uint16_t port = start_relay_argv(&relay, args);
    int c = tn_connect(port);
    cr_assert(tn_write_all(c, "ping", 4));
    char buf[4];
    cr_assert_eq(tn_read_full(c, buf, 4, 5000), 4);
    int st;
    char *j = run_stats(&st, "--json", path, NULL);
    cr_expect_eq(st, 0);
    cr_expect_eq(json_number(j, "counted"), 2, "client and target leg: %s", j);
    cr_expect_eq(json_number(j, "walked"), 2);
    cr_expect_eq(json_number(j, "connected"), 1);
    cr_expect_eq(json_number(j, "server_connections"), 1);
    free(j);
    close(c);
    expect_clean_exit(&relay);
}

static bool have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

Test(cli_relay, ipv6_in_brackets_on_both_sides)
{
    if (!have_ipv6_loopback())
        cr_skip_test("no IPv6 loopback here");
    struct proc echo, relay;
    cr_assert(proc_start(&echo, -1, "echo", "-W", "1", "[::1]:0", NULL));
    uint16_t eport = proc_listening(&echo, 10000);
    cr_assert_neq(eport, 0, "%s", echo.errbuf);
    char target[64];
    snprintf(target, sizeof target, "[::1]:%u", eport);
    char *args[] = {"[::1]:0", target, NULL};
    uint16_t port = start_relay_argv(&relay, args);
    cr_expect_not_null(strstr(relay.errbuf, "listening on ::1 "), "%s", relay.errbuf);

    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in6 sa = {
        .sin6_family = AF_INET6, .sin6_port = htons(port), .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert(tn_write_all(fd, "over six", 8));
    shutdown(fd, SHUT_WR);
    char buf[8];
    cr_expect_eq(tn_read_full(fd, buf, 8, 5000), 8);
    cr_expect_eq(memcmp(buf, "over six", 8), 0);
    cr_expect(tn_wait_eof(fd, 5000));
    close(fd);
    expect_clean_exit(&relay);
}

/* ---- ncat and socat on either side ---- */

#define INTEROP_LEN (8u << 20)

/* argv_fmt with each "PORT" replaced by port. */
static void fill_args(char *argv[16], char args[16][128], char *const argv_fmt[], const char *port)
{
    int n = 0;
    for (; argv_fmt[n] && n < 15; n++) {
        const char *at = strstr(argv_fmt[n], "PORT");
        if (at)
            snprintf(args[n], sizeof args[n], "%.*s%s%s", (int)(at - argv_fmt[n]), argv_fmt[n],
                     port, at + 4);
        else
            snprintf(args[n], sizeof args[n], "%s", argv_fmt[n]);
        argv[n] = args[n];
    }
    argv[n] = NULL;
}

/* A client program sends file A through the relay to iocptool echo and
 * must get exactly A back. */
static void client_through_relay(char *const argv_fmt[], const char *name)
{
    if (!have_program(name))
        cr_skip_test("%s is not installed (.ci/deps installs it)", name);
    struct proc e1, relay;
    uint16_t p1 = start_echo(&e1, NULL);
    uint16_t port = start_relay(&relay, NULL, p1, 0);
    const char *in = make_file("client-in", INTEROP_LEN, 5);
    char outpath[256], portstr[8];
    snprintf(outpath, sizeof outpath, "%s/client-out", tmpdir);
    snprintf(portstr, sizeof portstr, "%u", port);
    char *argv[16];
    char args[16][128];
    fill_args(argv, args, argv_fmt, portstr);
    int ifd = open(in, O_RDONLY | O_CLOEXEC);
    int ofd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid_t pid = spawn_other(argv, ifd, ofd);
    close(ifd);
    close(ofd);
    cr_expect_eq(wait_other(pid, 30000), 0, "%s exits 0", name);
    cr_expect(file_has_pattern(outpath, INTEROP_LEN, 5), "%s got its bytes back exactly", name);
    expect_clean_exit(&relay);
}

Test(cli_relay, ncat_as_the_client)
{
    char *const argv[] = {"ncat", "127.0.0.1", "PORT", NULL};
    client_through_relay(argv, "ncat");
}

Test(cli_relay, socat_as_the_client)
{
    /* -t 30: socat's default is to give the other direction 0.5 s after
     * stdin ends, then tear down. */
    char *const argv[] = {"socat", "-t", "30", "-", "TCP:127.0.0.1:PORT", NULL};
    client_through_relay(argv, "socat");
}

/* A target program sends file A and saves what it receives; the test,
 * through the relay, sends B and must receive A; the program must save B. */
static void target_behind_relay(const char *name, char *const argv_fmt[])
{
    if (!have_program(name))
        cr_skip_test("%s is not installed (.ci/deps installs it)", name);
    const char *a = make_file("target-in", INTEROP_LEN, 11);
    char outpath[256];
    snprintf(outpath, sizeof outpath, "%s/target-out", tmpdir);
    /* On a port of its own; one another test's server took first ends that
     * start, and another port is tried. */
    uint16_t tport = 0;
    pid_t pid = -1;
    for (int attempt = 0; attempt < 5 && pid < 0; attempt++) {
        tport = tn_server_port();
        char portstr[8];
        snprintf(portstr, sizeof portstr, "%u", tport);
        char *argv[16];
        char args[16][128];
        fill_args(argv, args, argv_fmt, portstr);
        int ifd = open(a, O_RDONLY | O_CLOEXEC);
        int ofd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        pid = spawn_other(argv, ifd, ofd);
        close(ifd);
        close(ofd);
        if (!wait_own_listener(pid, tport, 10000)) {
            kill(pid, SIGKILL);
            wait_other(pid, 5000);
            pid = -1;
        }
    }
    cr_assert_gt(pid, 0, "%s listens", name);

    struct proc relay;
    uint16_t port = start_relay(&relay, NULL, tport, 0);
    int c = tn_connect(port);
    cr_assert_geq(c, 0);
    /* Send B while receiving A, both 8 MiB: neither side may wait for the
     * other to finish first. */
    unsigned char *b = malloc(INTEROP_LEN), *got = malloc(INTEROP_LEN + 1);
    pat_fill(b, INTEROP_LEN, 23);
    tn_set_nonblock(c, true);
    size_t sent = 0, recvd = 0;
    bool eof = false;
    uint64_t end = tn_now_ms() + 30000;
    while ((!eof || sent < INTEROP_LEN) && tn_now_ms() < end) {
        struct pollfd pfd = {.fd = c,
                             .events = (eof ? 0 : POLLIN) | (sent < INTEROP_LEN ? POLLOUT : 0)};
        poll(&pfd, 1, 100);
        if (sent < INTEROP_LEN) {
            ssize_t w = write(c, b + sent, INTEROP_LEN - sent);
            if (w > 0)
                sent += (size_t)w;
            if (sent == INTEROP_LEN)
                shutdown(c, SHUT_WR);
        }
        if (!eof) {
            ssize_t r = read(c, got + recvd, INTEROP_LEN + 1 - recvd);
            if (r > 0)
                recvd += (size_t)r;
            else if (r == 0)
                eof = true;
        }
    }
    cr_expect_eq(sent, INTEROP_LEN);
    cr_expect(eof, "the client reads EOF after the target's file");
    cr_expect_eq(recvd, INTEROP_LEN, "%zu of %u bytes from %s", recvd, INTEROP_LEN, name);
    cr_expect(pat_check(got, recvd < INTEROP_LEN ? recvd : INTEROP_LEN, 11), "exactly");
    cr_expect_eq(wait_other(pid, 30000), 0, "%s exits 0", name);
    cr_expect(file_has_pattern(outpath, INTEROP_LEN, 23), "%s received exactly what was sent",
              name);
    close(c);
    free(b);
    free(got);
    expect_clean_exit(&relay);
}

Test(cli_relay, ncat_as_the_target)
{
    char *const argv[] = {"ncat", "-l", "127.0.0.1", "PORT", NULL};
    target_behind_relay("ncat", argv);
}

Test(cli_relay, socat_as_the_target)
{
    char *const argv[] = {"socat", "-t", "30", "TCP-LISTEN:PORT,bind=127.0.0.1,reuseaddr",
                          "-",     NULL};
    target_behind_relay("socat", argv);
}

/* ---- the command line ---- */

Test(cli_relay, a_missing_target_is_a_usage_error)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "relay", "127.0.0.1:0", NULL));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect_not_null(strstr(p.errbuf, "iocptool: relay: "), "stderr: %s", p.errbuf);
}

Test(cli_relay, a_target_without_a_host_is_a_usage_error)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "relay", "0", "8080", NULL));
    cr_expect_eq(proc_wait(&p, 10000), 2);
    cr_expect_not_null(strstr(p.errbuf, "expected HOST:PORT"), "stderr: %s", p.errbuf);
}

Test(cli_relay, help_goes_to_stdout_and_exits_zero)
{
    struct proc p;
    cr_assert(proc_start(&p, -1, "relay", "--help", NULL));
    char *out = read_all(p.out, NULL, 5000);
    cr_expect_eq(proc_wait(&p, 5000), 0);
    cr_expect_not_null(strstr(out, "usage: iocptool relay"));
    cr_expect_eq(p.errlen, 0, "nothing on stderr: %s", p.errbuf);
    free(out);
}
