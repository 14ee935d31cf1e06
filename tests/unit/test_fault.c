/* SPDX-License-Identifier: MIT */
/*
 * Fault injection (fault.c): the IOCP_FAULT syntax and its errors, "every
 * Nth call" exactly, probability rules that are the same for the same seed
 * and call numbers, the error each point reports, the counts, exact counts
 * under threads, and the environment variable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <criterion/criterion.h>

#include "fault.h"
#include "internal.h"
#include "thread.h"

static void clear(void)
{
    iocp__fault_configure(NULL);
}

TestSuite(fault, .init = clear, .fini = clear, .timeout = 60);

Test(fault, nothing_configured_never_fails)
{
    for (int p = 0; p < IOCP_FAULT_COUNT; p++)
        for (int i = 0; i < 1000; i++)
            cr_assert_eq(iocp__fault_check((enum iocp_fault_point)p), 0);
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_POST), 0);
}

Test(fault, every_nth_call_fails_exactly)
{
    cr_assert_eq(iocp__fault_configure("post=3,accept=1"), 0);
    for (int call = 1; call <= 30; call++) {
        int rc = iocp__fault_check(IOCP_FAULT_POST);
        cr_assert_eq(rc, call % 3 == 0 ? IOCP_EAGAIN : 0, "call %d", call);
        cr_assert_eq(iocp__fault_check(IOCP_FAULT_ACCEPT), IOCP_ECONNABORTED);
        cr_assert_eq(iocp__fault_check(IOCP_FAULT_SEND), 0, "points not named never fail");
    }
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_POST), 10);
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_ACCEPT), 30);
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_SEND), 0);
}

Test(fault, each_point_fails_with_what_the_os_would_say)
{
    static const struct {
        enum iocp_fault_point point;
        const char *name;
        int error;
    } expect[] = {
        {IOCP_FAULT_POST, "post", IOCP_EAGAIN},          {IOCP_FAULT_SUBMIT, "submit", IOCP_ENOMEM},
        {IOCP_FAULT_ACCEPT, "accept", IOCP_ECONNABORTED}, {IOCP_FAULT_CONNECT, "connect", IOCP_ECONNREFUSED},
        {IOCP_FAULT_SEND, "send", IOCP_EPIPE},            {IOCP_FAULT_RECV, "recv", IOCP_ECONNRESET},
        {IOCP_FAULT_BIND, "bind", IOCP_EINVAL},           {IOCP_FAULT_SOCKET, "socket", IOCP_EMFILE},
        {IOCP_FAULT_OPEN, "open", IOCP_EPERM},
        {IOCP_FAULT_DGRAM_RECV, "dgram_recv", IOCP_ECONNREFUSED},
        {IOCP_FAULT_DGRAM_SEND, "dgram_send", IOCP_ENOBUFS},
        {IOCP_FAULT_SEND_SHORT, "send_short", 1}, /* a hit: the send is cut, nothing fails */
    };
    cr_assert_eq(sizeof expect / sizeof expect[0], IOCP_FAULT_COUNT);
    for (size_t i = 0; i < sizeof expect / sizeof expect[0]; i++) {
        char spec[32];
        snprintf(spec, sizeof spec, "%s=1", expect[i].name);
        cr_assert_eq(iocp__fault_configure(spec), 0, "%s", spec);
        cr_assert_str_eq(iocp__fault_name(expect[i].point), expect[i].name);
        cr_assert_eq(iocp__fault_check(expect[i].point), expect[i].error, "%s", spec);
    }
    cr_assert_str_eq(iocp__fault_name(IOCP_FAULT_COUNT), "?");
}

Test(fault, a_malformed_spec_is_refused_and_clears_the_rules)
{
    static const char *const bad[] = {
        "post",      "post=",      "post=0",    "post=x",     "nosuch=3", "post=p0",
        "post=p1.5", "post=p-0.1", "post=pabc", "seed=12ab", "post=3,,", "=3",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(iocp__fault_configure("send=1"), 0);
        cr_assert_eq(iocp__fault_configure(bad[i]), IOCP_EINVAL, "'%s' was accepted", bad[i]);
        cr_assert_eq(iocp__fault_check(IOCP_FAULT_SEND), 0, "'%s' left the old rules on", bad[i]);
    }
    cr_assert_eq(iocp__fault_configure(""), 0, "an empty spec clears");
    cr_assert_eq(iocp__fault_configure("send=p1,seed=7"), 0);
    cr_assert_eq(iocp__fault_check(IOCP_FAULT_SEND), IOCP_EPIPE, "p1 always fails");
}

/* The failures of n calls of a probability rule, as a bit string. */
static void pattern(const char *spec, char *out, int n)
{
    cr_assert_eq(iocp__fault_configure(spec), 0, "%s", spec);
    for (int i = 0; i < n; i++)
        out[i] = iocp__fault_check(IOCP_FAULT_RECV) ? '1' : '0';
    out[n] = '\0';
}

Test(fault, a_probability_rule_is_the_same_for_the_same_seed)
{
    char a[513], b[513], c[513];
    pattern("recv=p0.3,seed=42", a, 512);
    pattern("recv=p0.3,seed=42", b, 512);
    pattern("recv=p0.3,seed=43", c, 512);
    cr_assert_str_eq(a, b, "the same seed gave different failures");
    cr_assert_str_neq(a, c, "another seed gave the same 512 outcomes");
    int fails = 0;
    for (int i = 0; i < 512; i++)
        fails += a[i] == '1';
    /* 512 draws at p = 0.3: 154 expected; the bounds are 7 standard
     * deviations wide, and the seed makes the outcome fixed anyway. */
    cr_assert(fails > 80 && fails < 230, "%d of 512 failed at p = 0.3", fails);
    int last = 0; /* the counts are those of the latest configuration */
    for (int i = 0; i < 512; i++)
        last += c[i] == '1';
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_RECV), (uint64_t)last);
}

struct hammer {
    struct iocp_thread thread;
    int failed;
};

static void hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (int i = 0; i < 10000; i++)
        if (iocp__fault_check(IOCP_FAULT_SUBMIT))
            h->failed++;
}

Test(fault, every_nth_holds_exactly_across_threads)
{
    cr_assert_eq(iocp__fault_configure("submit=10"), 0);
    struct hammer h[4];
    memset(h, 0, sizeof h);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(iocp__thread_start(&h[i].thread, hammer_main, &h[i]), 0);
    int total = 0;
    for (int i = 0; i < 4; i++) {
        iocp__thread_join(&h[i].thread);
        total += h[i].failed;
    }
    cr_assert_eq(total, 4000, "every 10th of 40,000 calls, whichever thread made it");
    cr_assert_eq(iocp__fault_injected(IOCP_FAULT_SUBMIT), 4000);
}

Test(fault, iocp_fault_in_the_environment_is_read_once)
{
#ifdef _WIN32
    _putenv_s("IOCP_FAULT", "connect=2");
#else
    setenv("IOCP_FAULT", "connect=2", 1);
#endif
    iocp__fault_from_env();
    cr_assert_eq(iocp__fault_check(IOCP_FAULT_CONNECT), 0);
    cr_assert_eq(iocp__fault_check(IOCP_FAULT_CONNECT), IOCP_ECONNREFUSED);
    /* Read once per process: a later configuration is not overridden. */
    cr_assert_eq(iocp__fault_configure("connect=1"), 0);
    iocp__fault_from_env();
    cr_assert_eq(iocp__fault_check(IOCP_FAULT_CONNECT), IOCP_ECONNREFUSED);
    cr_assert_eq(iocp__fault_check(IOCP_FAULT_CONNECT), IOCP_ECONNREFUSED);
#ifdef _WIN32
    _putenv_s("IOCP_FAULT", "");
#else
    unsetenv("IOCP_FAULT");
#endif
}
