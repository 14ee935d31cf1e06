/* SPDX-License-Identifier: MIT */
/*
 * The end of input matrix of docs/EOF.md: {listen, connect} x {stdin EOF
 * first, socket EOF first} x {plain, -k (listen only), --send-only,
 * --recv-only, --no-shutdown, -q}.  Each case checks what a user sees:
 * whether the peer reads EOF (the tool half-closed or closed its socket),
 * whether the program reading the tool's stdout reads EOF, whether the tool
 * keeps running and copying, and its exit status.
 */
#include <criterion/criterion.h>

#include <sys/resource.h>
#include <sys/time.h>

#include "nc_support.h"

TestSuite(cli_eof, .fini = proc_cleanup_all, .timeout = 60);

enum mode { PLAIN, KEEP, SEND_ONLY, RECV_ONLY, NO_SHUTDOWN, QUIT };

static const char *const mode_opt[] = {NULL, "-k", "--send-only", "--recv-only", "--no-shutdown",
                                       "-q"};

/* What happens after stdin EOF (the peer still sending). */
struct after_stdin_eof {
    bool peer_eof;          /* the peer reads EOF: the tool half-closed (or closed) */
    bool exits;             /* the tool exits at once, status 0 */
    bool quits_later;       /* -q: it exits by itself a while later, status 0 */
    bool stdout_closes;     /* then, at the peer's EOF, the tool's stdout closes */
    bool exits_at_peer_eof; /* ... and the tool exits, status 0 */
};

/* What happens after the peer's EOF (stdin still open). */
struct after_socket_eof {
    bool stdout_closes;      /* the tool's stdout closes */
    bool client_closed;      /* the tool closes that connection (-k) */
    bool exits;              /* the tool exits at once, status 0 */
    bool sends_on;           /* what stdin gives still reaches the peer */
    bool exits_at_stdin_eof; /* then stdin EOF ends the tool, status 0 */
};

/* The two tables of docs/EOF.md. */
static const struct after_stdin_eof stdin_first[] = {
    [PLAIN] = {.peer_eof = true, .stdout_closes = true, .exits_at_peer_eof = true},
    [KEEP] = {.peer_eof = true},
    [SEND_ONLY] = {.peer_eof = true, .exits = true},
    [RECV_ONLY] = {.stdout_closes = true, .exits_at_peer_eof = true},
    [NO_SHUTDOWN] = {.stdout_closes = true, .exits_at_peer_eof = true},
    [QUIT] = {.peer_eof = true, .quits_later = true},
};

static const struct after_socket_eof socket_first[] = {
    [PLAIN] = {.stdout_closes = true, .sends_on = true, .exits_at_stdin_eof = true},
    [KEEP] = {.client_closed = true},
    [SEND_ONLY] = {.sends_on = true, .exits_at_stdin_eof = true},
    [RECV_ONLY] = {.stdout_closes = true, .exits = true},
    [NO_SHUTDOWN] = {.stdout_closes = true, .sends_on = true, .exits_at_stdin_eof = true},
    [QUIT] = {.stdout_closes = true, .sends_on = true, .exits_at_stdin_eof = true},
};

#define QUIET_MS  300
#define SOON_MS   3000
#define QUIT_SECS "1.5"

static struct proc tool;
static int peer = -1;

/* Start the tool in mode m and connect it to a peer socket of ours. */
static void setup_pair(bool listen, enum mode m)
{
    const char *args[8];
    int n = 0;
    args[n++] = listen ? "listen" : "connect";
    if (mode_opt[m])
        args[n++] = mode_opt[m];
    if (m == QUIT)
        args[n++] = QUIT_SECS;
    if (listen) {
        args[n++] = "127.0.0.1:0";
        args[n] = NULL;
        uint16_t port = nc_listen(&tool, args);
        peer = tn_connect(port);
        cr_assert_geq(peer, 0);
    } else {
        uint16_t port = 0;
        int lfd = tn_listen(&port);
        cr_assert_geq(lfd, 0);
        char portbuf[8];
        snprintf(portbuf, sizeof portbuf, "%u", port);
        args[n++] = "127.0.0.1";
        args[n++] = portbuf;
        args[n] = NULL;
        cr_assert(nc_start(&tool, -1, args));
        peer = nc_accept(lfd, 10000);
        close(lfd);
        cr_assert_geq(peer, 0, "no connection; stderr: %s", tool.errbuf);
    }
    /* The bridge works both ways (where the mode lets it). */
    if (m != RECV_ONLY) {
        cr_assert(tn_write_all(tool.in, "ping\n", 5));
        cr_assert(nc_read_is(peer, "ping\n", SOON_MS), "stderr: %s", tool.errbuf);
    }
    if (m != SEND_ONLY) {
        cr_assert(tn_write_all(peer, "pong\n", 5));
        cr_assert(nc_read_is(tool.out, "pong\n", SOON_MS), "stderr: %s", tool.errbuf);
    }
}

static bool running(unsigned ms)
{
    return proc_still_running(&tool, ms);
}

static void expect_exit_zero(const char *when)
{
    cr_expect_eq(proc_wait(&tool, SOON_MS), 0, "%s: the tool exits with status 0; stderr: %s", when,
                 tool.errbuf);
    cr_expect(nc_eof_within(peer, SOON_MS), "%s: the peer reads EOF once the tool is gone", when);
}

/* The tool's stdout never carries anything but the peer's bytes: a tool
 * stopped by a signal still wrote nothing else. */
static void stop_with_sigterm(void)
{
    cr_expect(running(QUIET_MS), "-k keeps running");
    cr_expect_eq(proc_signal(&tool, SIGTERM, SOON_MS), 128 + SIGTERM,
                 "-k stopped by SIGTERM exits 128 + SIGTERM");
}

static void run_stdin_first(bool listen, enum mode m)
{
    const struct after_stdin_eof *x = &stdin_first[m];
    setup_pair(listen, m);
    proc_close_in(&tool);
    uint64_t eof_at = tn_now_ms();

    if (x->peer_eof)
        cr_expect(nc_eof_within(peer, SOON_MS), "stdin EOF: the peer reads EOF");
    else
        cr_expect(nc_quiet_for(peer, QUIET_MS), "stdin EOF: the connection stays open both ways");
    if (x->exits) {
        expect_exit_zero("stdin EOF");
        return;
    }
    cr_expect(running(QUIET_MS), "stdin EOF: the tool keeps running; stderr: %s", tool.errbuf);

    /* Half-closed, not closed: what the peer sends still comes out. */
    cr_expect(tn_write_all(peer, "late\n", 5));
    cr_expect(nc_read_is(tool.out, "late\n", SOON_MS), "the tool still copies socket to stdout");

    if (x->quits_later) {
        int st = proc_wait(&tool, 5000);
        uint64_t took = tn_now_ms() - eof_at;
        cr_expect_eq(st, 0, "-q: the tool exits with status 0; stderr: %s", tool.errbuf);
        cr_expect(took >= 1200 && took <= 4500, "-q " QUIT_SECS ": exited %llu ms after stdin EOF",
                  (unsigned long long)took);
        cr_expect(nc_eof_within(tool.out, SOON_MS), "-q: stdout is closed");
        return;
    }

    shutdown(peer, SHUT_WR);
    if (x->stdout_closes)
        cr_expect(nc_eof_within(tool.out, SOON_MS), "socket EOF: stdout closes");
    else
        cr_expect(nc_quiet_for(tool.out, QUIET_MS), "socket EOF: -k keeps stdout open");
    if (x->exits_at_peer_eof)
        expect_exit_zero("socket EOF after stdin EOF");
    else
        stop_with_sigterm();
}

static void run_socket_first(bool listen, enum mode m)
{
    const struct after_socket_eof *x = &socket_first[m];
    setup_pair(listen, m);
    shutdown(peer, SHUT_WR);

    if (x->stdout_closes)
        cr_expect(nc_eof_within(tool.out, SOON_MS), "socket EOF: stdout closes");
    else
        cr_expect(nc_quiet_for(tool.out, QUIET_MS), "socket EOF: stdout stays open");
    if (x->exits) {
        expect_exit_zero("socket EOF");
        return;
    }
    if (x->client_closed)
        cr_expect(nc_eof_within(peer, SOON_MS), "socket EOF: -k closes that client");
    else
        cr_expect(nc_quiet_for(peer, QUIET_MS), "socket EOF: the tool does not close its side");
    cr_expect(running(QUIET_MS), "socket EOF: the tool keeps running; stderr: %s", tool.errbuf);

    /* The peer's EOF did not stop the other direction. */
    if (x->sends_on) {
        cr_expect(tn_write_all(tool.in, "more\n", 5));
        cr_expect(nc_read_is(peer, "more\n", SOON_MS), "stdin still reaches the peer");
    }
    proc_close_in(&tool);
    if (x->exits_at_stdin_eof)
        expect_exit_zero("stdin EOF after socket EOF");
    else
        stop_with_sigterm();
}

static void fini_case(void)
{
    if (peer >= 0)
        close(peer);
    peer = -1;
}

#define CASES(side, listen)                                                                        \
    Test(cli_eof, side##_stdin_eof_first_plain, .fini = fini_case)                                 \
    {                                                                                              \
        run_stdin_first(listen, PLAIN);                                                            \
    }                                                                                              \
    Test(cli_eof, side##_socket_eof_first_plain, .fini = fini_case)                                \
    {                                                                                              \
        run_socket_first(listen, PLAIN);                                                           \
    }                                                                                              \
    Test(cli_eof, side##_stdin_eof_first_send_only, .fini = fini_case)                             \
    {                                                                                              \
        run_stdin_first(listen, SEND_ONLY);                                                        \
    }                                                                                              \
    Test(cli_eof, side##_socket_eof_first_send_only, .fini = fini_case)                            \
    {                                                                                              \
        run_socket_first(listen, SEND_ONLY);                                                       \
    }                                                                                              \
    Test(cli_eof, side##_stdin_eof_first_recv_only, .fini = fini_case)                             \
    {                                                                                              \
        run_stdin_first(listen, RECV_ONLY);                                                        \
    }                                                                                              \
    Test(cli_eof, side##_socket_eof_first_recv_only, .fini = fini_case)                            \
    {                                                                                              \
        run_socket_first(listen, RECV_ONLY);                                                       \
    }                                                                                              \
    Test(cli_eof, side##_stdin_eof_first_no_shutdown, .fini = fini_case)                           \
    {                                                                                              \
        run_stdin_first(listen, NO_SHUTDOWN);                                                      \
    }                                                                                              \
    Test(cli_eof, side##_socket_eof_first_no_shutdown, .fini = fini_case)                          \
    {                                                                                              \
        run_socket_first(listen, NO_SHUTDOWN);                                                     \
    }                                                                                              \
    Test(cli_eof, side##_stdin_eof_first_quit_after, .fini = fini_case)                            \
    {                                                                                              \
        run_stdin_first(listen, QUIT);                                                             \
    }                                                                                              \
    Test(cli_eof, side##_socket_eof_first_quit_after, .fini = fini_case)                           \
    {                                                                                              \
        run_socket_first(listen, QUIT);                                                            \
    }

CASES(listen, true)
CASES(connect, false)

Test(cli_eof, listen_stdin_eof_first_keep_open, .fini = fini_case)
{
    run_stdin_first(true, KEEP);
}

Test(cli_eof, listen_socket_eof_first_keep_open, .fini = fini_case)
{
    run_socket_first(true, KEEP);
}

/*
 * The upload that "exit at socket EOF" would cut short: a receiver whose
 * stdin is empty (a background job's </dev/null) half-closes at once, and
 * the sender must still deliver everything it reads.
 */
Test(cli_eof, a_receiver_with_empty_stdin_does_not_cut_the_upload_short, .fini = fini_case)
{
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    struct proc rx, tx;
    const char *largs[] = {"listen", "127.0.0.1:0", NULL};
    cr_assert(nc_start(&rx, devnull, largs));
    close(devnull);
    uint16_t port = proc_listening(&rx, 10000);
    cr_assert_neq(port, 0);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    const char *cargs[] = {"connect", "127.0.0.1", portbuf, NULL};
    cr_assert(nc_start(&tx, -1, cargs));

    struct nc_flow f;
    nc_flow_init(&f, tx.in, rx.out, 8u << 20, 7);
    proc_forget_fd(&tx, tx.in); /* the pump closes it at the end of the stream */
    tx.in = -1;
    cr_expect(nc_pump(&f, 1, 30000), "8 MiB arrive byte-exact; stderr: %s / %s", tx.errbuf,
              rx.errbuf);
    cr_expect_eq(proc_wait(&tx, SOON_MS), 0, "sender: %s", tx.errbuf);
    cr_expect_eq(proc_wait(&rx, SOON_MS), 0, "receiver: %s", rx.errbuf);
}

/* A terminal on stdin: socket EOF ends the tool at once (nobody waits for
 * the rest of what a person may type). */
Test(cli_eof, with_a_terminal_on_stdin_socket_eof_ends_the_tool, .fini = fini_case)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_geq(master, 0);
    cr_assert_eq(grantpt(master), 0);
    cr_assert_eq(unlockpt(master), 0);
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY | O_CLOEXEC);
    cr_assert_geq(slave, 0);

    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    const char *args[] = {"connect", "127.0.0.1", portbuf, NULL};
    cr_assert(nc_start(&tool, slave, args));
    close(slave);
    peer = nc_accept(lfd, 10000);
    close(lfd);
    cr_assert_geq(peer, 0);
    cr_assert(tn_write_all(peer, "bye\n", 4));
    shutdown(peer, SHUT_WR);
    cr_expect(nc_read_is(tool.out, "bye\n", SOON_MS));
    cr_expect(nc_eof_within(tool.out, SOON_MS), "stdout closes");
    expect_exit_zero("socket EOF with a terminal on stdin");
    close(master);
}

/*
 * The epoll backend makes the descriptors it serves non-blocking, and
 * O_NONBLOCK belongs to the open file description, shared with whoever
 * gave the tool its stdin and stdout (a shell).  Here the test holds the
 * same descriptions as the tool's fds 0 and 1, and finds them as they were
 * once the tool has exited.
 */
Test(cli_eof, stdin_and_stdout_flags_are_restored_at_exit, .fini = fini_case)
{
    int in[2], out[2];
    cr_assert_eq(pipe2(in, O_CLOEXEC), 0);
    cr_assert_eq(pipe2(out, O_CLOEXEC), 0);
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        execl(IOCPTOOL_PATH, IOCPTOOL_PATH, "connect", "127.0.0.1", portbuf, (char *)NULL);
        _exit(127);
    }
    peer = nc_accept(lfd, 10000);
    close(lfd);
    cr_assert_geq(peer, 0);
    cr_assert(tn_write_all(in[1], "y", 1));
    cr_expect(nc_read_is(peer, "y", SOON_MS));
    const char *backend = getenv("IOCP_BACKEND");
    if (backend && !strcmp(backend, "epoll"))
        cr_expect(fcntl(in[0], F_GETFL) & O_NONBLOCK, "epoll serves stdin non-blocking");
    close(in[1]);
    cr_expect(nc_eof_within(peer, SOON_MS));
    cr_assert(tn_write_all(peer, "x", 1));
    shutdown(peer, SHUT_WR);
    cr_expect(nc_read_is(out[0], "x", SOON_MS));
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    cr_expect_eq(fcntl(in[0], F_GETFL) & O_NONBLOCK, 0, "stdin's description is blocking again");
    cr_expect_eq(fcntl(out[1], F_GETFL) & O_NONBLOCK, 0, "stdout's description is blocking again");
    close(in[0]);
    close(out[0]);
    close(out[1]);
}

/* ---- closed standard streams ---- */

/*
 * iocptool with descriptor `closed` (0 or 1) closed, as `<&-` or `>&-` in a
 * shell leave it; the other two standard streams are pipes of the test's
 * (recorded for the cleanup like every child).
 */
static void start_with_closed(struct proc *p, int closed, const char *const *args)
{
    int in[2], out[2], err[2];
    cr_assert(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0 &&
              pipe2(err, O_CLOEXEC) == 0);
    char *argv[16];
    int n = 0;
    argv[n++] = (char *)IOCPTOOL_PATH;
    for (int i = 0; args[i] && n < 15; i++)
        argv[n++] = (char *)args[i];
    argv[n] = NULL;
    memset(p, 0, sizeof *p);
    p->status = -1;
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(err[1], 2);
        close(closed);
        execv(IOCPTOOL_PATH, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    close(err[1]);
    p->in = in[1];
    p->out = out[0];
    p->err = err[0];
    if (closed == 0) {
        close(p->in);
        p->in = -1;
    } else {
        close(p->out);
        p->out = -1;
    }
    p->slot = -1;
    for (int i = 0; i < PROC_MAX; i++)
        if (!proc_table[i].pid) {
            proc_table[i] = (struct proc_record){p->pid, false, {p->in, p->out, p->err}};
            p->slot = i;
            break;
        }
}

/* How long the peer holds the connection before it answers: the tool
 * must wait idle meanwhile, not spin. */
#define HOLD_MS 1500

static struct timeval cpu_of_children(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    struct timeval t;
    timeradd(&ru.ru_utime, &ru.ru_stime, &t);
    return t;
}

/* Wait for the tool's exit; its status, and the CPU it used against the
 * time it lived (a spinning tool uses a whole core). */
static int wait_idle_exit(uint64_t started, uint64_t *cpu_ms, uint64_t *wall_ms)
{
    struct timeval before = cpu_of_children(), after, used;
    int status = proc_wait(&tool, 10000);
    after = cpu_of_children();
    timersub(&after, &before, &used);
    *cpu_ms = (uint64_t)used.tv_sec * 1000u + (uint64_t)used.tv_usec / 1000u;
    *wall_ms = tn_now_ms() - started;
    cr_log_info("the tool used %llu ms of CPU in %llu ms", (unsigned long long)*cpu_ms,
                (unsigned long long)*wall_ms);
    return status;
}

/* `echo hi | iocptool connect HOST PORT >&-`: what comes back is
 * discarded, the transfer ends normally, and nothing spins meanwhile. */
Test(cli_eof, connect_with_stdout_closed_discards_the_output_and_ends, .fini = fini_case)
{
    uint16_t port = 0;
    int lfd = tn_listen(&port);
    cr_assert_geq(lfd, 0);
    char portbuf[8];
    snprintf(portbuf, sizeof portbuf, "%u", port);
    const char *args[] = {"connect", "127.0.0.1", portbuf, NULL};
    uint64_t started = tn_now_ms();
    start_with_closed(&tool, 1, args);
    cr_assert(tn_write_all(tool.in, "hi\n", 3));
    proc_close_in(&tool);
    peer = nc_accept(lfd, 10000);
    close(lfd);
    cr_assert_geq(peer, 0, "no connection; stderr: %s", tool.errbuf);
    cr_expect(nc_read_is(peer, "hi\n", SOON_MS), "stderr: %s", tool.errbuf);
    cr_expect(nc_eof_within(peer, SOON_MS), "stdin's end reaches the peer");
    usleep(HOLD_MS * 1000);
    cr_assert(tn_write_all(peer, "back\n", 5));
    shutdown(peer, SHUT_WR);
    uint64_t cpu_ms, wall_ms;
    cr_expect_eq(wait_idle_exit(started, &cpu_ms, &wall_ms), 0, "stderr: %s", tool.errbuf);
    cr_expect_lt(cpu_ms * 2, wall_ms, "the tool spun: %llu ms of CPU in %llu ms",
                 (unsigned long long)cpu_ms, (unsigned long long)wall_ms);
    cr_expect_null(strstr(tool.errbuf, "iocptool:"), "no error; stderr: %s", tool.errbuf);
}

/* `iocptool listen PORT <&-`: stdin reads as empty, what the client sends
 * is written, and the tool exits 0 (as ncat does). */
Test(cli_eof, listen_with_stdin_closed_writes_what_it_received_and_exits_0, .fini = fini_case)
{
    const char *args[] = {"listen", "127.0.0.1:0", NULL};
    uint64_t started = tn_now_ms();
    start_with_closed(&tool, 0, args);
    uint16_t port = proc_listening(&tool, 10000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", tool.errbuf);
    peer = tn_connect(port);
    cr_assert_geq(peer, 0);
    cr_expect(nc_eof_within(peer, SOON_MS), "an empty stdin half-closes at once");
    usleep(HOLD_MS * 1000);
    cr_assert(tn_write_all(peer, "data\n", 5));
    shutdown(peer, SHUT_WR);
    cr_expect(nc_read_is(tool.out, "data\n", SOON_MS), "stderr: %s", tool.errbuf);
    cr_expect(nc_eof_within(tool.out, SOON_MS), "stdout closes");
    uint64_t cpu_ms, wall_ms;
    cr_expect_eq(wait_idle_exit(started, &cpu_ms, &wall_ms), 0, "stderr: %s", tool.errbuf);
    cr_expect_lt(cpu_ms * 2, wall_ms, "the tool spun: %llu ms of CPU in %llu ms",
                 (unsigned long long)cpu_ms, (unsigned long long)wall_ms);
}
