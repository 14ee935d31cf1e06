/* SPDX-License-Identifier: MIT */
/*
 * The relay's choice of target and its passive health
 * (cli/cmd/relay_balance.c), driven directly: the orders the modes give,
 * a target taken out after --max-fails failures, the probe that brings it
 * back or keeps it out, and the answers of connects that were begun before
 * the target was taken out.  Those arrive late when a worker is slow: a
 * success of a connect begun while the target was still up says nothing of
 * it now and must not bring it back, and a late failure must not disturb
 * the probe.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "relay_balance.h"

TestSuite(relay_balance, .timeout = 30);

static struct balance_target targets[4];
static struct balance pool;

/* n targets 127.0.0.1:1..n with these weights, in mode; passive health
 * with max_fails (0: none) and an out time of out_ms. */
static void pool_of(unsigned n, const unsigned *weights, enum balance_mode mode,
                    unsigned max_fails, unsigned out_ms)
{
    memset(targets, 0, sizeof targets);
    for (unsigned i = 0; i < n; i++) {
        char spec[48];
        snprintf(spec, sizeof spec, "127.0.0.1:%u,weight=%u", i + 1, weights ? weights[i] : 1);
        cr_assert(balance_parse_target("relay", spec, &targets[i]), "%s", spec);
    }
    memset(&pool, 0, sizeof pool);
    balance_init(&pool, targets, n, mode);
    pool.max_fails = max_fails;
    pool.fail_window_ms = 10000;
    pool.fail_timeout_ms = out_ms;
}

static int state(unsigned i)
{
    return atomic_load(&targets[i].state);
}

/* A client's pick that is answered at once: the target it got. */
static int pick_once(const char *client)
{
    unsigned epoch;
    int i = balance_pick(&pool, client, 0, &epoch);
    if (i >= 0)
        balance_done(&pool, (unsigned)i, 0, 0);
    return i;
}

/* A client's pick whose connect fails at once: the target it got. */
static int fail_once(const char *client)
{
    unsigned epoch;
    int i = balance_pick(&pool, client, 0, &epoch);
    if (i >= 0) {
        balance_failed(&pool, (unsigned)i, epoch);
        balance_done(&pool, (unsigned)i, 0, 0);
    }
    return i;
}

Test(relay_balance, weighted_round_robin_is_smooth)
{
    pool_of(2, (const unsigned[]){3, 1}, BALANCE_RR, 0, 0);
    char got[9] = "";
    for (int k = 0; k < 8; k++)
        got[k] = (char)('a' + pick_once("10.0.0.1:5"));
    cr_expect_str_eq(got, "aabaaaba");
}

Test(relay_balance, first_takes_the_primary_and_moves_on_when_it_is_tried)
{
    pool_of(3, NULL, BALANCE_FIRST, 0, 0);
    unsigned epoch;
    cr_expect_eq(balance_pick(&pool, "10.0.0.1:5", 0, &epoch), 0);
    cr_expect_eq(balance_pick(&pool, "10.0.0.1:5", 1u, &epoch), 1, "the primary tried already");
    cr_expect_eq(balance_pick(&pool, "10.0.0.1:5", 7u, &epoch), -1, "every target tried");
}

Test(relay_balance, hash_keeps_a_host_on_its_target_whatever_its_port)
{
    pool_of(3, NULL, BALANCE_HASH, 0, 0);
    int home = pick_once("192.0.2.7:1000");
    for (unsigned port = 1001; port < 1100; port++) {
        char client[32];
        snprintf(client, sizeof client, "192.0.2.7:%u", port);
        cr_expect_eq(pick_once(client), home, "%s", client);
    }
}

Test(relay_balance, max_fails_failures_take_a_target_out_and_the_probe_brings_it_back)
{
    pool_of(2, NULL, BALANCE_FIRST, 2, 0);
    cr_assert_eq(fail_once("c:1"), 0);
    cr_expect_eq(state(0), TARGET_UP, "one failure of two allowed");
    cr_assert_eq(fail_once("c:1"), 0);
    cr_expect_eq(state(0), TARGET_DOWN, "the second takes it out");
    /* Its out time (0 here) is over: the next client is the probe, and
     * no other client goes there while the probe is out. */
    unsigned probe_epoch;
    cr_assert_eq(balance_pick(&pool, "c:2", 0, &probe_epoch), 0);
    cr_expect_eq(state(0), TARGET_PROBING);
    cr_expect_eq(pick_once("c:3"), 1, "the probe's target takes no one else");
    cr_expect(balance_connected(&pool, 0, probe_epoch), "the probe's success is news");
    cr_expect_eq(state(0), TARGET_UP, "the probe brings it back");
    balance_done(&pool, 0, 0, 0);
    cr_expect_eq(atomic_load(&targets[0].failures), 2u);
}

Test(relay_balance, a_failed_probe_keeps_the_target_out)
{
    pool_of(2, NULL, BALANCE_FIRST, 1, 60000);
    cr_assert_eq(fail_once("c:1"), 0);
    cr_expect_eq(state(0), TARGET_DOWN);
    cr_expect_eq(pick_once("c:2"), 1, "out for its 60 s");
    targets[0].down_until_ms = 0; /* the 60 s are over */
    cr_assert_eq(fail_once("c:3"), 0, "the probe");
    cr_expect_eq(state(0), TARGET_DOWN, "the probe failed: out again");
    cr_expect_eq(pick_once("c:4"), 1, "for another 60 s");
}

/* Client a's connect to the primary is picked and still in flight when
 * client b's fails and takes the primary out: a's epoch. */
static unsigned out_with_one_in_flight(void)
{
    unsigned early;
    cr_assert_eq(balance_pick(&pool, "a:1", 0, &early), 0);
    cr_assert_eq(fail_once("b:1"), 0);
    cr_assert_eq(state(0), TARGET_DOWN);
    return early;
}

/* The flaw a slow worker showed: client A's connect to the primary was
 * made while it was up and its success is handled late, after client B's
 * connect found the primary gone and took it out.  A's success must leave
 * the primary out. */
Test(relay_balance, a_late_success_from_before_the_target_went_out_leaves_it_out)
{
    pool_of(2, NULL, BALANCE_FIRST, 1, 60000);
    unsigned early = out_with_one_in_flight();
    cr_expect_not(balance_connected(&pool, 0, early), "old news");
    cr_expect_eq(state(0), TARGET_DOWN, "still out");
    cr_expect_eq(pick_once("c:1"), 1, "the next client goes to the second");
    cr_expect_eq(atomic_load(&targets[0].connects), 1u, "the connection is counted all the same");
}

Test(relay_balance, a_late_failure_from_before_the_target_went_out_leaves_the_probe_alone)
{
    pool_of(2, NULL, BALANCE_FIRST, 1, 0);
    unsigned early = out_with_one_in_flight();
    unsigned probe;
    cr_assert_eq(balance_pick(&pool, "c:1", 0, &probe), 0, "the probe");
    cr_assert_eq(state(0), TARGET_PROBING);
    balance_failed(&pool, 0, early); /* a's connect, answered only now */
    cr_expect_eq(state(0), TARGET_PROBING, "the probe decides, not a's old failure");
    cr_expect(balance_connected(&pool, 0, probe));
    cr_expect_eq(state(0), TARGET_UP);
    cr_expect_eq(atomic_load(&targets[0].failures), 2u, "both failures counted");
}

Test(relay_balance, with_no_max_fails_no_target_is_ever_out)
{
    pool_of(2, NULL, BALANCE_RR, 0, 0);
    for (int k = 0; k < 10; k++)
        cr_assert_geq(fail_once("c:1"), 0);
    cr_expect_eq(state(0), TARGET_UP);
    cr_expect_eq(state(1), TARGET_UP);
}

/* The active check follows the same rule: a check begun before the target
 * was taken out and answered after leaves it out; the next one decides. */
Test(relay_balance, a_check_begun_before_the_target_went_out_leaves_it_out)
{
    pool_of(2, NULL, BALANCE_FIRST, 1, 60000);
    unsigned before = balance_epoch(&pool, 0);
    cr_assert_eq(fail_once("c:1"), 0);
    cr_assert_eq(state(0), TARGET_DOWN);
    cr_expect_not(balance_checked(&pool, 0, true, before), "old news");
    cr_expect_eq(state(0), TARGET_DOWN, "still out");
    cr_expect(balance_checked(&pool, 0, true, balance_epoch(&pool, 0)));
    cr_expect_eq(state(0), TARGET_UP, "a check begun since brings it back");
    /* A failed check begun before that success does not take it out. */
    cr_expect_not(balance_checked(&pool, 0, false, before));
    cr_expect_eq(state(0), TARGET_UP);
    cr_expect(balance_checked(&pool, 0, false, balance_epoch(&pool, 0)));
    cr_expect_eq(state(0), TARGET_DOWN, "a current failed check takes it out");
}
