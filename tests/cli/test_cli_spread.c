/* SPDX-License-Identifier: MIT */
/*
 * "All cores" is what a user gets: connections to `echo -W 4` end up spread
 * over the four workers, whether they arrive together or one by one, as
 * the server's own stats report them; and a process confined to one CPU
 * starts one worker and says why.  Counts, not timings.
 */
#include <criterion/criterion.h>

#include <sched.h>
#include <signal.h>
#include <stdio.h>

#include "proc.h"
#include "statsclient.h"

#define WORKERS 4
#define CONNS 64
/* Each worker's share is CONNS / WORKERS = 16; half and one and a half
 * times it are the bounds a user would still call "spread". */
#define LEAST 8
#define MOST 24

static char stats_path[128];

static void spread_init(void)
{
    signal(SIGPIPE, SIG_IGN);
    snprintf(stats_path, sizeof stats_path, "/tmp/iocptool-spread-%d.sock", (int)getpid());
}

static void spread_fini(void)
{
    proc_cleanup_all();
    unlink(stats_path);
}

TestSuite(cli_spread, .init = spread_init, .fini = spread_fini, .timeout = 120);

static uint16_t start_echo(struct proc *p)
{
    cr_assert(proc_start(p, -1, "echo", "-W", "4", "--stats", stats_path, "127.0.0.1:0", NULL));
    uint16_t port = proc_listening(p, 20000);
    cr_assert_neq(port, 0, "no listening line; stderr: %s", p->errbuf);
    return port;
}

/* Every worker's connection count from a JSON report; how many workers. */
static int per_worker_connections(const char *json, long long *out, int max)
{
    const char *p = json ? strstr(json, "\"per_worker\":[") : NULL;
    int n = 0;
    while (p && n < max && (p = strstr(p, "{\"worker\":")) != NULL) {
        unsigned idx;
        long long conns;
        if (sscanf(p, "{\"worker\":%u,\"connections\":%lld", &idx, &conns) != 2)
            break;
        out[n++] = conns;
        p++;
    }
    return n;
}

/* Once the server holds all CONNS connections, each worker holds between
 * LEAST and MOST of them. */
static void expect_spread(void)
{
    cr_assert(stats_wait_for(stats_path, "server_connections", CONNS, 20000),
              "the server never held all %d connections", CONNS);
    char *json = stats_ask(stats_path, "json\n", 5000);
    long long held[WORKERS + 1];
    int n = per_worker_connections(json, held, WORKERS + 1);
    cr_assert_eq(n, WORKERS, "per_worker entries: %d in %s", n, json);
    for (int i = 0; i < n; i++)
        cr_expect(held[i] >= LEAST && held[i] <= MOST,
                  "worker %d holds %lld of %d connections (want %d..%d): %s", i, held[i], CONNS,
                  LEAST, MOST, json);
    free(json);
}

/* Each connection still echoes: the ones handed from worker to worker work. */
static void expect_all_echo(const int *fds)
{
    for (int i = 0; i < CONNS; i++) {
        char msg[8], got[8];
        snprintf(msg, sizeof msg, "c%05d", i);
        cr_assert(tn_write_all(fds[i], msg, 6));
        cr_assert_eq(tn_read_full(fds[i], got, 6, 10000), 6, "connection %d does not echo", i);
        cr_expect_eq(memcmp(msg, got, 6), 0);
    }
}

static void stop_clean(struct proc *p, int *fds)
{
    for (int i = 0; i < CONNS; i++)
        close(fds[i]);
    cr_expect_eq(proc_signal(p, SIGTERM, 20000), 0, "exit status; stderr: %s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "Sanitizer"), "%s", p->errbuf);
    cr_expect_null(strstr(p->errbuf, "runtime error"), "%s", p->errbuf);
}

Test(cli_spread, connections_arriving_together_spread_over_the_workers)
{
    struct proc echo;
    uint16_t port = start_echo(&echo);
    int fds[CONNS];
    /* All connects go out before the server gets to run its accepts. */
    for (int i = 0; i < CONNS; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0, "connect %d", i);
    }
    expect_spread();
    expect_all_echo(fds);
    stop_clean(&echo, fds);
}

Test(cli_spread, connections_arriving_one_by_one_spread_over_the_workers)
{
    struct proc echo;
    uint16_t port = start_echo(&echo);
    int fds[CONNS];
    /* Each connection is served before the next one is opened. */
    for (int i = 0; i < CONNS; i++) {
        fds[i] = tn_connect(port);
        cr_assert_geq(fds[i], 0, "connect %d", i);
        char got[2];
        cr_assert(tn_write_all(fds[i], "hi", 2));
        cr_assert_eq(tn_read_full(fds[i], got, 2, 10000), 2, "connection %d does not echo", i);
    }
    expect_spread();
    expect_all_echo(fds);
    stop_clean(&echo, fds);
}

Test(cli_spread, a_process_confined_to_one_cpu_starts_one_worker_and_says_why)
{
    /* As `taskset -c 0 iocptool echo -v` does: the child inherits the mask. */
    cpu_set_t saved, one;
    cr_assert_eq(sched_getaffinity(0, sizeof saved, &saved), 0);
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    cr_assert_eq(sched_setaffinity(0, sizeof one, &one), 0);
    unsetenv("IOCP_WORKERS");
    struct proc echo;
    bool started =
        proc_start(&echo, -1, "echo", "-v", "--stats", stats_path, "127.0.0.1:0", NULL);
    sched_setaffinity(0, sizeof saved, &saved);
    cr_assert(started);
    cr_assert_neq(proc_listening(&echo, 20000), 0, "no listening line; stderr: %s", echo.errbuf);
    cr_expect_not_null(strstr(echo.errbuf, "1 worker: the affinity mask allows 1 CPU"),
                       "-v does not say how many workers and why: %s", echo.errbuf);
    cr_expect_not_null(strstr(echo.errbuf, ", 1 worker\n"), "%s", echo.errbuf);
    char *json = stats_ask(stats_path, "json\n", 5000);
    cr_expect_eq(stats_json_number(json, "workers"), 1, "%s", json);
    free(json);
    cr_expect_eq(proc_signal(&echo, SIGTERM, 20000), 0, "exit status; stderr: %s", echo.errbuf);
}
