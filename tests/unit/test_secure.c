/* SPDX-License-Identifier: MIT */
/*
 * The encrypted channel (cli/channel/secure.c) with no network: two channels, a
 * client and a server, in one process, each side's output fed to the other
 * in chunks of random sizes, so that every reassembly path runs.  A tap on
 * the way can flip a bit, cut the stream, or record it for a replay.
 */
#include <criterion/criterion.h>

#include <sodium.h>

#include "secure.h"

TestSuite(secure, .timeout = 120);

/* A growable byte buffer. */
struct buf {
    uint8_t *p;
    size_t len, cap;
};

static void buf_add(struct buf *b, const void *data, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        cr_assert_not_null(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void buf_free(struct buf *b)
{
    free(b->p);
    *b = (struct buf){0};
}

/* A deterministic generator for sizes and positions: a failure replays. */
static uint64_t rng_state;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rng_below(size_t n)
{
    return (size_t)(rng() % n);
}

/* One end of a connection: its channel, what it sent and has not been
 * delivered yet, what it received, and how it went. */
struct side {
    struct secure *s;
    struct buf wire;    /* bytes sent, waiting for delivery to the peer */
    struct buf sent;    /* everything ever sent, for recordings */
    struct buf got;     /* plaintext received */
    int events;         /* SECURE_EV_* seen */
    int err;            /* the first error its feed or eof returned */
    uint64_t delivered; /* stream offset of the next byte of wire */
};

static void on_plain(void *arg, const void *data, size_t len)
{
    struct side *x = arg;
    /* Nothing may be delivered after the channel failed. */
    cr_assert_eq(x->err, 0, "plaintext after an error");
    buf_add(&x->got, data, len);
}

static void out(struct side *x, const void *data, size_t n)
{
    buf_add(&x->wire, data, n);
    buf_add(&x->sent, data, n);
}

static void take_handshake(struct side *x)
{
    size_t n;
    const void *p = secure_handshake_out(x->s, &n);
    if (n)
        out(x, p, n);
}

/* What each role's Hello offers (secure_new_offering): AES-256-GCM by
 * default, as secure_new() does; 0 is a side of the protocol's first
 * version, whose Hello offers nothing. */
static unsigned offer_c = SECURE_OFFER_AES256GCM, offer_s = SECURE_OFFER_AES256GCM;

static void side_new(struct side *x, enum secure_role role, const uint8_t key[32])
{
    *x = (struct side){0};
    cr_assert_eq(
        secure_new_offering(&x->s, role, key, role == SECURE_CLIENT ? offer_c : offer_s), 0);
    take_handshake(x);
}

static void side_free(struct side *x)
{
    secure_free(x->s);
    buf_free(&x->wire);
    buf_free(&x->sent);
    buf_free(&x->got);
}

/* The tap: flip bit flip_bit of the byte at stream offset flip_at (if
 * flip_at >= 0) of the direction from tap_from. */
static struct side *tap_from;
static int64_t flip_at = -1;
static int flip_bit;

/*
 * deliver(from, to, maxchunk):
 * Feed everything from has sent so far to to, in chunks of 1..maxchunk
 * bytes (0: all at once), as on_data would.  Handshake bytes to produces on
 * the way are queued on its wire, even after an error, as a caller must.
 */
static void deliver(struct side *from, struct side *to, size_t maxchunk)
{
    size_t off = 0;
    while (off < from->wire.len) {
        size_t n = from->wire.len - off;
        if (maxchunk && n > maxchunk)
            n = 1 + rng_below(maxchunk);
        if (n > from->wire.len - off)
            n = from->wire.len - off;
        uint8_t *chunk = from->wire.p + off;
        uint64_t at = from->delivered + off;
        if (from == tap_from && flip_at >= 0 && (uint64_t)flip_at >= at &&
            (uint64_t)flip_at < at + n)
            chunk[flip_at - (int64_t)at] ^= (uint8_t)(1u << flip_bit);
        if (!to->err) {
            int r = secure_feed(to->s, chunk, n, on_plain, to);
            if (r < 0)
                to->err = r;
            else
                to->events |= r;
        }
        take_handshake(to);
        off += n;
    }
    from->delivered += from->wire.len;
    from->wire.len = 0;
}

/* Run the handshake between c and s, with chunks of 1..maxchunk bytes. */
static void handshake(struct side *c, struct side *s, size_t maxchunk)
{
    /* Both Hellos leave at once; each Confirm follows its peer's Hello; the
     * rounds are bounded because the handshake has two messages a side. */
    for (int round = 0; round < 3; round++) {
        deliver(c, s, maxchunk);
        deliver(s, c, maxchunk);
    }
}

static void open_pair(struct side *c, struct side *s, size_t maxchunk)
{
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    side_new(c, SECURE_CLIENT, key);
    side_new(s, SECURE_SERVER, key);
    handshake(c, s, maxchunk);
    cr_assert_eq(c->err, 0, "client: %s", secure_strerror(c->err));
    cr_assert_eq(s->err, 0, "server: %s", secure_strerror(s->err));
    cr_assert(secure_is_open(c->s) && secure_is_open(s->s));
    cr_assert(c->events & SECURE_EV_OPEN);
    cr_assert(s->events & SECURE_EV_OPEN);
}

/* Seal len bytes of data on x, in writes of 1..maxwrite bytes. */
static void send_plain(struct side *x, const uint8_t *data, size_t len, size_t maxwrite)
{
    size_t off = 0;
    static uint8_t sealed[SECURE_SEAL_BOUND(1u << 20)];
    while (off < len) {
        size_t n = len - off;
        if (n > maxwrite)
            n = 1 + rng_below(maxwrite);
        int r = secure_seal(x->s, data + off, n, sealed, sizeof sealed);
        cr_assert_geq(r, 0, "seal: %s", secure_strerror(r));
        cr_assert_leq((size_t)r, SECURE_SEAL_BOUND(n));
        out(x, sealed, (size_t)r);
        off += n;
    }
}

static void finish(struct side *x)
{
    uint8_t fin[SECURE_FRAME_OVERHEAD];
    int r = secure_finish(x->s, fin, sizeof fin);
    cr_assert_eq(r, SECURE_FRAME_OVERHEAD, "finish: %s", secure_strerror(r));
    out(x, fin, (size_t)r);
}

static uint8_t *random_data(size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    randombytes_buf(p, len);
    return p;
}

static void init_suite(uint64_t seed)
{
    cr_assert_geq(sodium_init(), 0);
    rng_state = seed;
    tap_from = NULL;
    flip_at = -1;
    offer_c = offer_s = SECURE_OFFER_AES256GCM;
}

/* The cipher a pair with these offers must agree on. */
static const char *expected_cipher(void)
{
    return offer_c && offer_s && crypto_aead_aes256gcm_is_available() ? "aes256gcm"
                                                                     : "xchacha20poly1305";
}

/* Send sizes[] one after another both ways in one session, then end both
 * directions; every byte must arrive, in order, and both ends be clean. */
static void round_trips(void)
{
    static const size_t sizes[] = {
        0, 1, SECURE_FRAME_MAX - 1, SECURE_FRAME_MAX, SECURE_FRAME_MAX + 1, 10u << 20};
    struct side c, s;
    open_pair(&c, &s, 100);
    size_t total = 0;
    struct buf want_c = {0}, want_s = {0};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint8_t *a = random_data(sizes[i]), *b = random_data(sizes[i]);
        /* Large writes, so that whole frames go through the fast path, and
         * small chunks for the small sizes, so that reassembly runs too. */
        size_t chunk = sizes[i] > 100000 ? 300000 : 7;
        send_plain(&c, a, sizes[i], 1u << 20);
        send_plain(&s, b, sizes[i], 5000);
        deliver(&c, &s, chunk);
        deliver(&s, &c, chunk);
        buf_add(&want_s, a, sizes[i]);
        buf_add(&want_c, b, sizes[i]);
        total += sizes[i];
        free(a);
        free(b);
        cr_assert_eq(s.got.len, total, "server got %zu of %zu", s.got.len, total);
        cr_assert_eq(c.got.len, total, "client got %zu of %zu", c.got.len, total);
    }
    cr_assert(memcmp(s.got.p, want_s.p, total) == 0, "client -> server bytes differ");
    cr_assert(memcmp(c.got.p, want_c.p, total) == 0, "server -> client bytes differ");
    finish(&c);
    finish(&s);
    deliver(&c, &s, 5);
    deliver(&s, &c, 5);
    cr_assert(s.events & SECURE_EV_END);
    cr_assert(c.events & SECURE_EV_END);
    cr_assert_eq(secure_eof(s.s), 0);
    cr_assert_eq(secure_eof(c.s), 0);
    struct secure_stats st;
    secure_stats(c.s, &st);
    cr_assert_eq(st.plain_sent, total);
    cr_assert_eq(st.plain_received, total);
    cr_assert_str_eq(secure_cipher(c.s), expected_cipher());
    cr_assert_str_eq(secure_cipher(s.s), expected_cipher());
    buf_free(&want_c);
    buf_free(&want_s);
    side_free(&c);
    side_free(&s);
}

Test(secure, round_trips_of_every_size_both_ways_in_one_session)
{
    init_suite(0x5eed0001);
    round_trips();
}

Test(secure, round_trips_with_xchacha20poly1305_when_neither_offers_aes256gcm)
{
    init_suite(0x5eed0101);
    offer_c = offer_s = 0;
    round_trips();
}

/* A side of the first version (its Hello offers nothing) and a new one
 * speak xchacha20poly1305 together, whichever connected. */
Test(secure, a_first_version_side_and_a_new_one_interoperate_both_ways)
{
    init_suite(0x5eed0102);
    offer_c = 0;
    round_trips();
    init_suite(0x5eed0103);
    offer_s = 0;
    round_trips();
}

/* Both offer: the Hellos say so, and both ends pick AES-256-GCM where the
 * CPU runs it (libsodium's check), xchacha20poly1305 elsewhere. */
Test(secure, both_sides_offering_aes256gcm_agree_on_it_where_the_cpu_has_it)
{
    init_suite(0x5eed0104);
    struct side c, s;
    open_pair(&c, &s, 0);
    bool hw = crypto_aead_aes256gcm_is_available();
    cr_assert_eq(memcmp(c.sent.p + 6, "aes-gcm1", 8) == 0, hw);
    cr_assert_eq(memcmp(s.sent.p + 6, "aes-gcm1", 8) == 0, hw);
    cr_assert_str_eq(secure_cipher(c.s), hw ? "aes256gcm" : "xchacha20poly1305");
    cr_assert_str_eq(secure_cipher(s.s), secure_cipher(c.s));
    side_free(&c);
    side_free(&s);
}

/* An offer removed (or added) on the way changes the transcript: both
 * Confirms fail, so nobody can push a pair down to the other cipher. */
Test(secure, an_offer_changed_on_the_way_fails_the_handshake_on_both_sides)
{
    for (int removed_from = 0; removed_from < 2; removed_from++) {
        init_suite(0x5eed0105 + (uint64_t)removed_from);
        struct side c, s;
        uint8_t key[32];
        randombytes_buf(key, sizeof key);
        side_new(&c, SECURE_CLIENT, key);
        side_new(&s, SECURE_SERVER, key);
        tap_from = removed_from ? &s : &c;
        flip_at = 6; /* the first byte of the offer */
        flip_bit = 0;
        handshake(&c, &s, 0);
        cr_assert_eq(c.err, SECURE_EAUTH, "client: %s", secure_strerror(c.err));
        cr_assert_eq(s.err, SECURE_EAUTH, "server: %s", secure_strerror(s.err));
        cr_assert_eq(c.got.len + s.got.len, 0);
        side_free(&c);
        side_free(&s);
    }
}

Test(secure, a_byte_at_a_time_still_round_trips)
{
    init_suite(0x5eed0002);
    struct side c, s;
    open_pair(&c, &s, 1);
    uint8_t *a = random_data(40000);
    send_plain(&c, a, 40000, 40000);
    finish(&c);
    deliver(&c, &s, 1);
    cr_assert_eq(s.err, 0, "%s", secure_strerror(s.err));
    cr_assert_eq(s.got.len, 40000);
    cr_assert(memcmp(s.got.p, a, 40000) == 0);
    cr_assert(secure_peer_ended(s.s));
    free(a);
    side_free(&c);
    side_free(&s);
}

/* Both delivery orders: the peer's Hello and Confirm apart (chunk 1) and
 * together (0), where a side fails before its own Confirm has left. */
static void wrong_key(size_t maxchunk)
{
    uint8_t k1[32], k2[32];
    randombytes_buf(k1, sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[31] ^= 1;
    struct side c, s;
    side_new(&c, SECURE_CLIENT, k1);
    side_new(&s, SECURE_SERVER, k2);
    handshake(&c, &s, maxchunk);
    cr_assert_eq(c.err, SECURE_EAUTH, "client: %s", secure_strerror(c.err));
    cr_assert_eq(s.err, SECURE_EAUTH, "server: %s", secure_strerror(s.err));
    cr_assert_not(secure_is_open(c.s));
    cr_assert_not(secure_is_open(s.s));
    cr_assert_eq(c.events & SECURE_EV_OPEN, 0);
    cr_assert_eq(s.events & SECURE_EV_OPEN, 0);
    uint8_t buf[64];
    cr_assert_eq(secure_seal(c.s, "x", 1, buf, sizeof buf), SECURE_EAUTH);
    cr_assert_eq(secure_finish(s.s, buf, sizeof buf), SECURE_EAUTH);
    cr_assert_eq(c.got.len + s.got.len, 0);
    cr_assert_str_eq(secure_strerror(SECURE_EAUTH),
                     "authentication failed: wrong key or tampered handshake");
    side_free(&c);
    side_free(&s);
}

Test(secure, a_wrong_key_fails_on_both_sides_and_delivers_nothing)
{
    init_suite(0x5eed0003);
    wrong_key(1);
    wrong_key(0);
}

/* Record side x of a full session (handshake, data, FINAL) and replay it to
 * a fresh peer that holds the same key. */
static void replay(enum secure_role recorded_role)
{
    uint8_t key[32];
    randombytes_buf(key, sizeof key);
    struct side c, s;
    side_new(&c, SECURE_CLIENT, key);
    side_new(&s, SECURE_SERVER, key);
    handshake(&c, &s, 0);
    cr_assert(secure_is_open(c.s) && secure_is_open(s.s));
    struct side *x = recorded_role == SECURE_CLIENT ? &c : &s;
    struct side *y = recorded_role == SECURE_CLIENT ? &s : &c;
    uint8_t *a = random_data(5000);
    send_plain(x, a, 5000, 5000);
    finish(x);
    deliver(x, y, 0);
    cr_assert_eq(y->got.len, 5000);

    struct side fresh, replayer = {0};
    side_new(&fresh, recorded_role == SECURE_CLIENT ? SECURE_SERVER : SECURE_CLIENT, key);
    buf_add(&replayer.wire, x->sent.p, x->sent.len);
    deliver(&replayer, &fresh, 0);
    cr_assert_eq(fresh.err, SECURE_EAUTH, "%s", secure_strerror(fresh.err));
    cr_assert_not(secure_is_open(fresh.s));
    cr_assert_eq(fresh.got.len, 0);

    /* Piece by piece, the same. */
    struct side fresh2;
    side_new(&fresh2, recorded_role == SECURE_CLIENT ? SECURE_SERVER : SECURE_CLIENT, key);
    buf_add(&replayer.wire, x->sent.p, x->sent.len);
    deliver(&replayer, &fresh2, 3);
    cr_assert_eq(fresh2.err, SECURE_EAUTH, "%s", secure_strerror(fresh2.err));
    cr_assert_eq(fresh2.got.len, 0);

    free(a);
    buf_free(&replayer.wire);
    side_free(&fresh);
    side_free(&fresh2);
    side_free(&c);
    side_free(&s);
}

Test(secure, a_replayed_handshake_never_completes)
{
    init_suite(0x5eed0004);
    replay(SECURE_CLIENT);
    replay(SECURE_SERVER);
}

/*
 * Flip one bit at a random position of one direction of a whole session
 * (the handshake for half of the runs, the data frames for the other half)
 * and check that the receiver fails, has delivered exactly the frames
 * before the damaged one, and nothing of it or after it.
 */
static void flipped_bits(void)
{
    static const size_t lens[] = {100, SECURE_FRAME_MAX, 1, 5000, 700};
    enum { NFRAMES = sizeof lens / sizeof lens[0] };
    size_t plain_before[NFRAMES + 2], wire_start[NFRAMES + 2];
    size_t hs = SECURE_HELLO_BYTES + SECURE_CONFIRM_BYTES, pos = hs, plain = 0;
    for (int k = 0; k < NFRAMES; k++) {
        wire_start[k] = pos;
        plain_before[k] = plain;
        pos += lens[k] + SECURE_FRAME_OVERHEAD;
        plain += lens[k];
    }
    wire_start[NFRAMES] = pos; /* the FINAL frame */
    plain_before[NFRAMES] = plain;
    size_t total = pos + SECURE_FRAME_OVERHEAD;
    uint8_t *data = random_data(plain);

    int by_error[16] = {0};
    for (int i = 0; i < 2000; i++) {
        struct side c, s;
        uint8_t key[32];
        randombytes_buf(key, sizeof key);
        side_new(&c, SECURE_CLIENT, key);
        side_new(&s, SECURE_SERVER, key);
        struct side *x = i % 2 ? &s : &c; /* the sender whose bytes get hit */
        struct side *y = i % 2 ? &c : &s;
        tap_from = x;
        if ((i / 2) % 2 == 0)
            flip_at = (int64_t)rng_below(hs);
        else if ((i / 4) % 4 == 0) /* a length field: misframing, not just a bad MAC */
            flip_at = (int64_t)(wire_start[rng_below(NFRAMES + 1)] + rng_below(2));
        else
            flip_at = (int64_t)(hs + rng_below(total - hs));
        flip_bit = (int)rng_below(8);
        size_t maxchunk = 1 + rng_below(3000);

        handshake(&c, &s, maxchunk);
        if (secure_is_open(x->s)) {
            size_t off = 0;
            for (int k = 0; k < NFRAMES; k++) {
                send_plain(x, data + off, lens[k], lens[k]);
                off += lens[k];
            }
            finish(x);
            deliver(x, y, maxchunk);
        }
        if (!y->err)
            y->err = secure_eof(y->s);

        cr_assert_lt(y->err, 0, "flip at %lld bit %d went unnoticed", (long long)flip_at, flip_bit);
        cr_assert_eq(y->events & SECURE_EV_END, 0);
        size_t expect = 0;
        if ((size_t)flip_at < hs) {
            cr_assert_not(y->events & SECURE_EV_OPEN, "open despite a flip at %lld",
                          (long long)flip_at);
        } else {
            int k = 0;
            while (k < NFRAMES && wire_start[k + 1] <= (size_t)flip_at)
                k++;
            expect = plain_before[k];
        }
        cr_assert_eq(y->got.len, expect, "flip at %lld: %zu bytes delivered, %zu expected",
                     (long long)flip_at, y->got.len, expect);
        cr_assert(expect == 0 || memcmp(y->got.p, data, expect) == 0);
        by_error[-y->err]++;
        side_free(&c);
        side_free(&s);
    }
    /* The damage shows up as the errors it should, each at least once. */
    cr_assert_gt(by_error[-SECURE_EAUTH], 0);
    cr_assert_gt(by_error[-SECURE_EFRAME], 0);
    cr_assert_gt(by_error[-SECURE_ENOTPROTO], 0);
    cr_assert_gt(by_error[-SECURE_ELENGTH], 0);
    cr_assert_gt(by_error[-SECURE_ECUT], 0);
    free(data);
}

Test(secure, a_flipped_bit_anywhere_is_an_error_and_nothing_after_it_is_delivered)
{
    init_suite(0x5eed0005);
    flipped_bits();
}

Test(secure, a_flipped_bit_with_xchacha20poly1305_is_an_error_too)
{
    init_suite(0x5eed0106);
    offer_c = offer_s = 0;
    flipped_bits();
}

Test(secure, a_stream_cut_before_final_is_an_error_not_eof)
{
    init_suite(0x5eed0006);
    struct side c, s;
    open_pair(&c, &s, 0);
    uint8_t *a = random_data(3000);
    send_plain(&c, a, 3000, 3000);
    deliver(&c, &s, 0);
    cr_assert_eq(s.got.len, 3000, "whole frames are delivered");
    cr_assert_eq(secure_eof(s.s), SECURE_ECUT);
    cr_assert_str_eq(secure_strerror(SECURE_ECUT), "stream cut before its authenticated end");
    cr_assert_not(secure_peer_ended(s.s));
    free(a);
    side_free(&c);
    side_free(&s);
}

Test(secure, a_truncated_frame_delivers_nothing_and_is_an_error)
{
    init_suite(0x5eed0007);
    for (size_t cut = 1; cut <= 1000 + SECURE_FRAME_OVERHEAD; cut += 37) {
        struct side c, s;
        open_pair(&c, &s, 0);
        uint8_t *a = random_data(1000);
        send_plain(&c, a, 1000, 1000);
        c.wire.len -= cut;
        deliver(&c, &s, 0);
        cr_assert_eq(s.got.len, 0);
        cr_assert_eq(secure_eof(s.s), SECURE_ECUT);
        free(a);
        side_free(&c);
        side_free(&s);
    }
}

Test(secure, eof_during_the_handshake_and_bytes_after_final_are_errors)
{
    init_suite(0x5eed0008);
    struct side c, s;
    uint8_t key[32] = {1};
    side_new(&c, SECURE_CLIENT, key);
    side_new(&s, SECURE_SERVER, key);
    c.wire.len = 30;
    deliver(&c, &s, 0);
    cr_assert_eq(secure_eof(s.s), SECURE_EHSCUT);
    side_free(&c);
    side_free(&s);

    open_pair(&c, &s, 0);
    finish(&c);
    out(&c, "x", 1);
    deliver(&c, &s, 0);
    cr_assert_eq(s.err, SECURE_EAFTEREND, "%s", secure_strerror(s.err));
    side_free(&c);
    side_free(&s);
}

Test(secure, half_close_ends_one_direction_while_the_other_flows)
{
    init_suite(0x5eed0009);
    struct side c, s;
    open_pair(&c, &s, 0);
    uint8_t *a = random_data(50000), *b = random_data(200000);
    send_plain(&c, a, 50000, 20000);
    finish(&c);
    deliver(&c, &s, 999);
    cr_assert(s.events & SECURE_EV_END);
    cr_assert(secure_peer_ended(s.s));
    cr_assert_eq(s.got.len, 50000);
    uint8_t tmp[64];
    cr_assert_eq(secure_seal(c.s, "late", 4, tmp, sizeof tmp), SECURE_EENDED);
    cr_assert_eq(secure_finish(c.s, tmp, sizeof tmp), SECURE_EENDED);

    /* The other direction goes on, in several rounds. */
    for (int round = 0; round < 4; round++) {
        send_plain(&s, b + round * 50000, 50000, 16000);
        deliver(&s, &c, 4000);
        cr_assert_eq(c.got.len, (size_t)(round + 1) * 50000);
        cr_assert_not(secure_peer_ended(c.s));
    }
    finish(&s);
    deliver(&s, &c, 0);
    cr_assert(secure_peer_ended(c.s));
    cr_assert(memcmp(c.got.p, b, 200000) == 0);
    cr_assert(memcmp(s.got.p, a, 50000) == 0);
    cr_assert_eq(secure_eof(c.s), 0);
    cr_assert_eq(secure_eof(s.s), 0);
    free(a);
    free(b);
    side_free(&c);
    side_free(&s);
}

static void rekeys(void)
{
    struct side c, s;
    open_pair(&c, &s, 0);
    enum { FRAMES = 2 * SECURE_REKEY_FRAMES + 500 };
    uint8_t *a = random_data(FRAMES * 3);
    uint8_t sealed[64];
    for (int i = 0; i < FRAMES; i++) {
        int r = secure_seal(c.s, a + i * 3, 3, sealed, sizeof sealed);
        cr_assert_eq(r, 3 + SECURE_FRAME_OVERHEAD);
        out(&c, sealed, (size_t)r);
    }
    finish(&c);
    deliver(&c, &s, 777);
    cr_assert_eq(s.err, 0, "%s", secure_strerror(s.err));
    cr_assert_eq(s.got.len, (size_t)FRAMES * 3);
    cr_assert(memcmp(s.got.p, a, FRAMES * 3) == 0);
    struct secure_stats cs, ss;
    secure_stats(c.s, &cs);
    secure_stats(s.s, &ss);
    cr_assert_eq(cs.frames_sent, FRAMES + 1);
    cr_assert_eq(ss.frames_received, FRAMES + 1);
    cr_assert_eq(cs.rekeys_sent, 2);
    cr_assert_eq(ss.rekeys_received, 2);
    cr_assert(secure_peer_ended(s.s));
    cr_assert_str_eq(secure_cipher(s.s), expected_cipher());
    free(a);
    side_free(&c);
    side_free(&s);
}

Test(secure, every_1024th_frame_rekeys_and_the_stream_still_round_trips)
{
    init_suite(0x5eed000a);
    rekeys();
}

Test(secure, every_1024th_frame_rekeys_with_xchacha20poly1305_too)
{
    init_suite(0x5eed0107);
    offer_c = offer_s = 0;
    rekeys();
}

Test(secure, a_peer_speaking_something_else_is_told_at_once)
{
    init_suite(0x5eed000b);
    uint8_t key[32] = {7};
    struct side s;
    side_new(&s, SECURE_SERVER, key);
    cr_assert_eq(secure_feed(s.s, "GET", 3, on_plain, &s), SECURE_ENOTPROTO);
    cr_assert_eq(secure_feed(s.s, "x", 1, on_plain, &s), SECURE_ENOTPROTO, "errors are final");
    side_free(&s);

    /* A Hello of another version, and one from the same role. */
    struct side a, b;
    side_new(&a, SECURE_CLIENT, key);
    side_new(&b, SECURE_SERVER, key);
    a.wire.p[4] = 2;
    cr_assert_eq(secure_feed(b.s, a.wire.p, 6, on_plain, &b), SECURE_EVERSION);
    side_free(&a);
    side_free(&b);
    side_new(&a, SECURE_CLIENT, key);
    side_new(&b, SECURE_CLIENT, key);
    cr_assert_eq(secure_feed(b.s, a.wire.p, a.wire.len, on_plain, &b), SECURE_EROLE);
    side_free(&a);
    side_free(&b);
    /* A Hello reflected to its sender. */
    side_new(&a, SECURE_SERVER, key);
    cr_assert_eq(secure_feed(a.s, a.wire.p, a.wire.len, on_plain, &a), SECURE_EROLE);
    side_free(&a);
}

Test(secure, nothing_is_sealed_before_the_channel_is_open)
{
    init_suite(0x5eed000c);
    uint8_t key[32] = {9};
    struct side c, s;
    side_new(&c, SECURE_CLIENT, key);
    side_new(&s, SECURE_SERVER, key);
    uint8_t buf[64];
    cr_assert_eq(secure_seal(c.s, "x", 1, buf, sizeof buf), SECURE_ENOTOPEN);
    cr_assert_eq(secure_finish(c.s, buf, sizeof buf), SECURE_ENOTOPEN);
    handshake(&c, &s, 0);
    cr_assert(secure_is_open(c.s));
    cr_assert_eq(secure_seal(c.s, "x", 1, buf, 5), SECURE_ENOSPC);
    cr_assert_eq(secure_seal(c.s, "", 0, buf, 0), 0, "an empty write makes no frame");
    side_free(&c);
    side_free(&s);
}

/* An echo over the channel: the server seals from inside its plaintext
 * callback, as an encrypted echo or relay does, and ends its direction
 * there when the client's ends. */
static void echo_plain(void *arg, const void *data, size_t len)
{
    struct side *x = arg;
    static uint8_t sealed[SECURE_SEAL_BOUND(SECURE_FRAME_MAX)];
    int r = secure_seal(x->s, data, len, sealed, sizeof sealed);
    cr_assert_geq(r, 0, "seal in the callback: %s", secure_strerror(r));
    out(x, sealed, (size_t)r);
}

Test(secure, the_plaintext_callback_may_seal_on_the_same_channel)
{
    init_suite(0x5eed000d);
    struct side c, s;
    open_pair(&c, &s, 0);
    uint8_t *a = random_data(100000);
    send_plain(&c, a, 100000, 30000);
    finish(&c);
    int r = secure_feed(s.s, c.wire.p, c.wire.len, echo_plain, &s);
    c.wire.len = 0;
    cr_assert_eq(r, SECURE_EV_END, "%d", r);
    finish(&s);
    deliver(&s, &c, 4096);
    cr_assert_eq(c.err, 0, "%s", secure_strerror(c.err));
    cr_assert_eq(c.got.len, 100000);
    cr_assert(memcmp(c.got.p, a, 100000) == 0);
    cr_assert(secure_peer_ended(c.s));
    free(a);
    side_free(&c);
    side_free(&s);
}

/* The AES-256-GCM frames are plain AES-256-GCM whichever library seals
 * them (OpenSSL's where the build has it): each frame secure_gcm.c seals
 * opens with libsodium's own crypto_aead_aes256gcm under the nonce and
 * additional data of docs/PROTOCOL.md, libsodium's frames open in
 * secure_gcm.c, a flipped bit fails it, and both sides rekey alike,
 * so an iocptool built either way talks to the other. */
#include "secure_gcm.h"

static void proto_nonce(uint8_t nonce[12], const uint8_t header[24], uint64_t n)
{
    memcpy(nonce, header, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(n >> (8 * i));
}

/* Frame n of the test streams: its length (0 first, then varied up to the
 * frame size), its tag (a rekey every 7th), and random plaintext. */
enum { GCM_FRAMES = 40 };
static size_t frame_len(uint64_t n)
{
    return n == 1 ? 0 : n * 397 % 16384;
}
static unsigned char frame_tag(uint64_t n)
{
    return n % 7 == 0 ? crypto_secretstream_xchacha20poly1305_TAG_REKEY : 0;
}
/* The protocol's rekey, done by hand: KDF(key, 5) after a REKEY frame. */
static void reference_rekey(uint8_t key[32])
{
    uint8_t next[32];
    crypto_kdf_derive_from_key(next, sizeof next, 5, "iocptool", key);
    memcpy(key, next, 32);
}

Test(secure, aes256gcm_frames_are_libsodiums_aes256gcm_both_ways_and_across_rekeys)
{
    cr_assert_geq(sodium_init(), 0);
    if (!crypto_aead_aes256gcm_is_available())
        cr_skip_test("libsodium has no AES-256-GCM on this CPU");
    static uint8_t plain[16384], frame[16384 + 19], back[16384];
    uint8_t key[32], k_ref[32], header[SECURE_GCM_HEADERBYTES], nonce[12];
    randombytes_buf(key, sizeof key);

    /* Sealed by secure_gcm.c, opened by libsodium. */
    struct secure_gcm push = {0};
    cr_assert_eq(secure_gcm_init_push(&push, header, key), 0);
    memcpy(k_ref, key, sizeof k_ref);
    for (uint64_t n = 1; n <= GCM_FRAMES; n++) {
        size_t len = frame_len(n);
        randombytes_buf(plain, len);
        frame[0] = (uint8_t)(len >> 8);
        frame[1] = (uint8_t)len;
        cr_assert_eq(secure_gcm_push(&push, frame, plain, len, frame_tag(n)), 0);
        cr_assert_eq(frame[2], frame_tag(n));
        proto_nonce(nonce, header, n);
        cr_assert_eq(crypto_aead_aes256gcm_decrypt_detached(back, NULL, frame + 3, len,
                                                            frame + 3 + len, frame, 3, nonce,
                                                            k_ref),
                     0, "frame %llu", (unsigned long long)n);
        cr_assert(len == 0 || memcmp(back, plain, len) == 0);
        if (frame_tag(n))
            reference_rekey(k_ref);
    }
    secure_gcm_wipe(&push);

    /* Sealed by libsodium, opened by secure_gcm.c; each frame first with
     * one bit flipped, through a second opener at the same place, which
     * must refuse it. */
    randombytes_buf(header, sizeof header);
    struct secure_gcm pull = {0};
    cr_assert_eq(secure_gcm_init_pull(&pull, header, key), 0);
    memcpy(k_ref, key, sizeof k_ref);
    for (uint64_t n = 1; n <= GCM_FRAMES; n++) {
        size_t len = frame_len(n);
        unsigned char got;
        randombytes_buf(plain, len);
        frame[0] = (uint8_t)(len >> 8);
        frame[1] = (uint8_t)len;
        frame[2] = frame_tag(n);
        proto_nonce(nonce, header, n);
        crypto_aead_aes256gcm_encrypt_detached(frame + 3, frame + 3 + len, NULL, plain, len, frame,
                                               3, NULL, nonce, k_ref);
        struct secure_gcm probe = {0};
        cr_assert_eq(secure_gcm_init_pull(&probe, header, pull.key), 0);
        probe.frames = pull.frames;
        frame[3 + len / 2] ^= 0x20;
        cr_assert_eq(secure_gcm_pull(&probe, back, &got, frame, len), -1);
        frame[3 + len / 2] ^= 0x20;
        secure_gcm_wipe(&probe);
        cr_assert_eq(secure_gcm_pull(&pull, back, &got, frame, len), 0, "frame %llu",
                     (unsigned long long)n);
        cr_assert_eq(got, frame_tag(n));
        cr_assert(len == 0 || memcmp(back, plain, len) == 0);
        if (frame_tag(n))
            reference_rekey(k_ref);
    }
    secure_gcm_wipe(&pull);
}
