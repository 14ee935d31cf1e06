/* SPDX-License-Identifier: MIT */
/*
 * The engine's configuration on the backend named by IOCP_BACKEND: how many
 * workers "0" means (the CPUs of the affinity mask, the cgroup quota,
 * IOCP_WORKERS) and the log line that says why, more workers than the old
 * limit of 64, and config structs passed with the size a program was built
 * with (older, smaller structs; newer, larger ones).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

static void set_env(const char *name, const char *value)
{
#ifdef _WIN32
    _putenv_s(name, value ? value : "");
#else
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
#endif
}

/* The log hook keeps the last INFO line. */
static char last_info[256];

static void keep_info(void *arg, int level, const char *message)
{
    (void)arg;
    if (level == IOCP_LOG_INFO)
        snprintf(last_info, sizeof last_info, "%s", message);
}

/* workers 0 with the log hook: the count, and the line in last_info. */
static unsigned default_workers(void)
{
    struct iocp_engine_config cfg = {.log = keep_info};
    struct iocp_engine *e = NULL;
    last_info[0] = '\0';
    int rc = iocp_engine_new(&e, &cfg);
    if (rc != 0)
        return 0;
    unsigned n = iocp_engine_workers(e);
    iocp_engine_free(e);
    return n;
}

TestSuite(engine, .timeout = 120);

#ifndef _WIN32
/*
 * Re-executed with only CPU 0 in its affinity mask (as `taskset -c 0`
 * would), this binary checks the default worker count before the harness
 * starts and exits with the result.
 */
__attribute__((constructor)) static void affinity_child(void)
{
    if (!getenv("IOCP_TEST_AFFINITY_CHILD"))
        return;
    unsigned n = default_workers();
    printf("%u: %s\n", n, last_info);
    fflush(stdout);
    _exit(n == 1 && strcmp(last_info, "1 worker: the affinity mask allows 1 CPU") == 0 ? 0 : 1);
}

Test(engine, workers_0_means_the_cpus_of_the_affinity_mask)
{
    set_env("IOCP_WORKERS", NULL);
    set_env("IOCP_TEST_AFFINITY_CHILD", "1");
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(0, &one);
        if (sched_setaffinity(0, sizeof one, &one) != 0)
            _exit(3);
        char *argv[] = {"test_engine", NULL};
        execv("/proc/self/exe", argv);
        _exit(4);
    }
    set_env("IOCP_TEST_AFFINITY_CHILD", NULL);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status));
    cr_assert_eq(WEXITSTATUS(status), 0,
                 "under an affinity mask of CPU 0 the default is not 1 worker (exit %d)",
                 WEXITSTATUS(status));
}

Test(engine, a_cgroup_cpu_quota_is_read_as_cpus)
{
    uint64_t q = 0, p = 0;
    cr_assert_eq(iocp__parse_cpu_max("max 100000\n", &q, &p), 0, "no limit");
    cr_assert_eq(iocp__parse_cpu_max("150000 100000\n", &q, &p), 1);
    cr_assert_eq(q, 150000);
    cr_assert_eq(p, 100000);
    cr_assert_eq(iocp__parse_cpu_max("50000", &q, &p), 1, "the period defaults to 100 ms");
    cr_assert_eq(p, 100000);
    cr_assert_eq(iocp__parse_cpu_max("", &q, &p), IOCP_EINVAL);
    cr_assert_eq(iocp__parse_cpu_max("lots 100000", &q, &p), IOCP_EINVAL);
    cr_assert_eq(iocp__parse_cpu_max("0 100000", &q, &p), IOCP_EINVAL);
}
#else
Test(engine, workers_0_means_the_cpus_of_the_affinity_mask)
{
    set_env("IOCP_WORKERS", NULL);
    DWORD_PTR process_mask = 0, system_mask = 0;
    cr_assert(GetProcessAffinityMask(GetCurrentProcess(), &process_mask, &system_mask));
    cr_assert(SetProcessAffinityMask(GetCurrentProcess(), 1), "cannot set the affinity mask");
    unsigned n = default_workers();
    SetProcessAffinityMask(GetCurrentProcess(), process_mask);
    cr_assert_eq(n, 1, "under an affinity mask of CPU 0 the default is %u workers (%s)", n,
                 last_info);
    cr_assert_str_eq(last_info, "1 worker: the affinity mask allows 1 CPU");
}
#endif

Test(engine, iocp_workers_overrides_the_default_but_not_an_explicit_count)
{
    set_env("IOCP_WORKERS", "3");
    cr_assert_eq(default_workers(), 3);
    cr_assert_str_eq(last_info, "3 workers: IOCP_WORKERS=3");

    struct iocp_engine_config two = {.workers = 2};
    struct iocp_engine *e = NULL;
    cr_assert_eq(iocp_engine_new(&e, &two), 0);
    cr_assert_eq(iocp_engine_workers(e), 2, "an explicit count wins over the environment");
    iocp_engine_free(e);

    static const char *const bad[] = {"0", "many", "-1", "65537"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        set_env("IOCP_WORKERS", bad[i]);
        e = NULL;
        struct iocp_engine_config def = {0};
        cr_assert_eq(iocp_engine_new(&e, &def), IOCP_EINVAL, "IOCP_WORKERS=%s", bad[i]);
        cr_assert_null(e);
        cr_assert(strstr(iocp_error_detail(), "IOCP_WORKERS") != NULL, "%s", iocp_error_detail());
    }
    set_env("IOCP_WORKERS", NULL);
    struct iocp_engine_config too_many = {.workers = IOCP_MAX_WORKERS + 1};
    cr_assert_eq(iocp_engine_new(&e, &too_many), IOCP_EINVAL);
}

/* A timer on the last of 70 workers: it runs there, and the stats list
 * every worker. */
static iocp_atomic_int ran_on;

static void note_worker(struct iocp_timer *t, void *arg)
{
    (void)t;
    (void)arg;
    struct iocp_worker *w = iocp__worker_current();
    atomic_store(&ran_on, w ? (int)w->index : -2);
}

Test(engine, more_than_64_workers_run_and_are_all_reported)
{
    enum { N = 70 };
    struct iocp_engine_config cfg = {.workers = N, .recv_buffers = 8, .recv_buffer_size = 4096};
    struct iocp_engine *e;
    cr_assert_eq(iocp_engine_new(&e, &cfg), 0);
    int rc = iocp_engine_start(e);
    cr_assert_eq(rc, 0, "start: %s", iocp_strerror(rc));
    const char *want = getenv("IOCP_BACKEND");
    if (want)
        cr_assert_str_eq(iocp_engine_backend(e), want, "the backend asked for must run");
    cr_assert_eq(iocp_engine_workers(e), N);

    atomic_store(&ran_on, -1);
    struct iocp_timer *t;
    cr_assert_eq(iocp_timer_new(e, N - 1, note_worker, NULL, &t), 0);
    cr_assert_eq(iocp_timer_start(t, 0, 0), 0);
    uint64_t end = iocp__now_ms() + 30000;
    while (atomic_load(&ran_on) == -1 && iocp__now_ms() < end)
        iocp__sleep_ms(1);
    cr_expect_eq(atomic_load(&ran_on), N - 1, "the timer of worker %d ran on %d", N - 1,
                 atomic_load(&ran_on));

    struct iocp_stats st;
    iocp_engine_stats(e, &st, false);
    cr_expect_eq(st.workers, N);
    struct iocp_worker_stats ws[N + 1];
    memset(ws, 0xab, sizeof ws);
    cr_expect_eq(iocp_engine_worker_stats(e, NULL, 0), N);
    cr_expect_eq(iocp_engine_worker_stats(e, ws, N + 1), N);
    cr_expect_eq(ws[N - 1].conns, 0, "the last worker's counters were filled");
    cr_expect_eq(ws[N].conns, 0xababababababababull, "nothing is written past the workers");

    iocp_timer_free(t);
    iocp_engine_stop(e);
    char report[256];
    cr_expect_eq(iocp_engine_audit(e, report, sizeof report), 0, "%s", report);
    iocp_engine_free(e);
}

/* ---- config structs of another size ---- */

static void data_ignored(struct iocp_conn *c, const void *d, size_t n)
{
    (void)c;
    (void)d;
    (void)n;
}

static void close_ignored(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
}

static const struct iocp_conn_handler quiet = {.on_data = data_ignored, .on_close = close_ignored};

Test(engine, an_older_smaller_config_struct_reads_the_rest_as_defaults)
{
    /* A program built when the struct ended before max_conns: whatever
     * follows in its memory must not be read (0xff would be a log hook
     * pointer and absurd sizes). */
    union {
        struct iocp_engine_config cfg;
        unsigned char bytes[sizeof(struct iocp_engine_config) + 64];
    } old;
    memset(&old, 0xff, sizeof old);
    old.cfg.workers = 1;
    old.cfg.backend = getenv("IOCP_BACKEND");
    struct iocp_engine *e = NULL;
    cr_assert_eq(iocp_engine_new_sized(&e, &old.cfg, offsetof(struct iocp_engine_config, max_conns)),
                 0);
    cr_assert_eq(e->cfg.max_conns, 65536u, "a field the program did not have takes its default");
    cr_assert_null(e->cfg.log);
    int rc = iocp_engine_start(e);
    cr_assert_eq(rc, 0, "start: %s", iocp_strerror(rc));

    /* A server config that ended before `filter`. */
    union {
        struct iocp_server_config cfg;
        unsigned char bytes[sizeof(struct iocp_server_config) + 64];
    } sold;
    memset(&sold, 0xff, sizeof sold);
    sold.cfg.host = "127.0.0.1";
    sold.cfg.port = 0;
    sold.cfg.family = IOCP_FAMILY_ANY;
    sold.cfg.handler = &quiet;
    sold.cfg.data = NULL;
    struct iocp_server *s = NULL;
    rc = iocp_server_new_sized(&s, e, &sold.cfg, offsetof(struct iocp_server_config, filter));
    cr_assert_eq(rc, 0, "%s", iocp_error_detail());
    rc = iocp_server_start(s);
    cr_assert_eq(rc, 0, "server start: %s", iocp_strerror(rc));

    /* A newer program's larger struct: the bytes this library does not
     * know are not read. */
    union {
        struct iocp_connect_config cfg;
        unsigned char bytes[sizeof(struct iocp_connect_config) + 64];
    } newer;
    memset(&newer, 0, sizeof newer);
    memset(newer.bytes + sizeof(struct iocp_connect_config), 0xff, 64);
    newer.cfg.host = "127.0.0.1";
    newer.cfg.port = iocp_server_port(s);
    newer.cfg.worker = -1;
    newer.cfg.handler = &quiet;
    cr_assert_eq(iocp_connect_sized(e, &newer.cfg, sizeof newer), 0);
    uint64_t end = iocp__now_ms() + 30000;
    while (iocp_server_conns(s) == 0 && iocp__now_ms() < end)
        iocp__sleep_ms(1);
    cr_expect_eq(iocp_server_conns(s), 1, "the server built from an older struct accepts");

    iocp_server_stop(s);
    iocp_engine_stop(e);
    char report[256];
    cr_expect_eq(iocp_engine_audit(e, report, sizeof report), 0, "%s", report);
    iocp_server_free(s);
    iocp_engine_free(e);
}
