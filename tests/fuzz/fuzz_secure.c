/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the parsers of the encrypted channel (cli/channel/secure.c)
 * and of the key file (cli/channel/keyfile.c).  The first input byte picks one of
 * three modes:
 *
 *   0  raw bytes fed to a fresh server and a fresh client, in chunks: the
 *      Hello parser.  Without the key nobody can forge a Confirm, so a
 *      channel that opens or delivers plaintext here is a bug.
 *   1  a genuine session (handshake, frames of several sizes, FINAL; either
 *      cipher, by the flags byte's top bit) whose
 *      bytes in one direction are damaged on the way by the input's edits
 *      (bit flips, a cut).  The receiver must deliver exactly the frames
 *      before the first damaged byte, nothing of it or after it, and end
 *      in an error; with no damage it must deliver everything and end.
 *      This reaches the frame parser, which random bytes never would.
 *   2  the text of a key file.
 *
 * randombytes is replaced by a generator reset for every input, so a
 * session, and so a crash, replays exactly.  A broken property aborts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "diag.h"
#include "keyfile.h"
#include "secure.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* keyfile.c's loader reads files and prints, which is not fuzzed here; it
 * needs these two to link, the parser under test needs neither. */
void diag_error(const char *fmt, ...)
{
    (void)fmt;
}

int keyfile_read(const char *cmd, const char *path, char *buf, size_t cap, size_t *len)
{
    (void)cmd;
    (void)path;
    (void)buf;
    (void)cap;
    *len = 0;
    return EXIT_USAGE;
}

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_secure: property broken: %s (line %d)\n", #cond, __LINE__);      \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* The deterministic generator: ChaCha20 of a fixed key, the nonce counting
 * calls since the last reset. */
static uint64_t rng_calls;

static void rng_buf(void *const buf, const size_t size)
{
    static const uint8_t seed[crypto_stream_chacha20_KEYBYTES] = {0x10, 0xc9};
    uint8_t nonce[crypto_stream_chacha20_NONCEBYTES] = {0};
    memcpy(nonce, &rng_calls, sizeof rng_calls < sizeof nonce ? sizeof rng_calls : sizeof nonce);
    rng_calls++;
    crypto_stream_chacha20(buf, size, nonce, seed);
}

static uint32_t rng_random(void)
{
    uint32_t x;
    rng_buf(&x, sizeof x);
    return x;
}

static const char *rng_name(void)
{
    return "fuzz";
}

static randombytes_implementation rng_impl = {
    .implementation_name = rng_name,
    .random = rng_random,
    .buf = rng_buf,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* libsodium takes another generator only before it initialises. */
    randombytes_set_implementation(&rng_impl);
    if (sodium_init() < 0)
        abort();
    return 0;
}

static const uint8_t fuzz_key[SECURE_KEY_BYTES] = {0x42, 0x17, 0x99};

/* What a receiver got. */
struct sink {
    size_t len;
    uint8_t *data; /* NULL: only count */
    size_t cap;
    bool overflow;
};

static void on_plain(void *arg, const void *data, size_t len)
{
    struct sink *k = arg;
    if (k->data) {
        if (k->len + len > k->cap) {
            k->overflow = true;
            return;
        }
        memcpy(k->data + k->len, data, len);
    }
    k->len += len;
}

/* Mode 0: raw bytes to both roles; neither may open or deliver. */
static void fuzz_raw(const uint8_t *data, size_t size)
{
    for (int role = 0; role < 2; role++) {
        struct secure *s;
        if (secure_new(&s, role ? SECURE_CLIENT : SECURE_SERVER, fuzz_key) != 0)
            abort();
        size_t hs;
        secure_handshake_out(s, &hs);
        struct sink k = {0};
        size_t off = 0;
        int r = 0;
        /* Chunks of 1, 2, 3... bytes: the progressive Hello checks run on
         * every split. */
        for (size_t chunk = 1; off < size && r >= 0; chunk++) {
            size_t n = size - off < chunk ? size - off : chunk;
            r = secure_feed(s, data + off, n, on_plain, &k);
            if (r >= 0 && (r & SECURE_EV_SEND))
                secure_handshake_out(s, &hs);
            off += n;
        }
        CHECK(!secure_is_open(s));
        CHECK(k.len == 0);
        CHECK(secure_eof(s) < 0);
        secure_free(s);
    }
}

/* Mode 1: a session damaged on the way. */
enum { NWRITES = 5, MAX_EDITS = 8 };
static const size_t write_len[NWRITES] = {1, 300, SECURE_FRAME_MAX, SECURE_FRAME_MAX + 2000, 77};

struct pipe_end {
    struct secure *s;
    uint8_t *wire; /* bytes sent and not delivered yet */
    size_t len, cap;
    size_t sent; /* stream offset of wire[0] */
};

static void put(struct pipe_end *e, const void *p, size_t n)
{
    if (e->len + n > e->cap) {
        e->cap = (e->len + n) * 2;
        e->wire = realloc(e->wire, e->cap);
        if (!e->wire)
            abort();
    }
    memcpy(e->wire + e->len, p, n);
    e->len += n;
}

static void take_hs(struct pipe_end *e)
{
    size_t n;
    const void *p = secure_handshake_out(e->s, &n);
    if (n)
        put(e, p, n);
}

struct edits {
    size_t n;
    size_t pos[MAX_EDITS];
    uint8_t xor [MAX_EDITS];
    size_t cut; /* SIZE_MAX: none */
};

/* Deliver from's wire to to, applying the edits when from is the damaged
 * side.  Returns to's first error (0 if none). */
static int pass(struct pipe_end *from, struct pipe_end *to, const struct edits *ed, bool damaged,
                size_t chunk, struct sink *k, int *events)
{
    int err = secure_error(to->s);
    for (size_t i = 0; damaged && i < ed->n; i++)
        if (ed->pos[i] >= from->sent && ed->pos[i] < from->sent + from->len)
            from->wire[ed->pos[i] - from->sent] ^= ed->xor [i];
    size_t len = from->len;
    if (damaged && ed->cut != SIZE_MAX && ed->cut < from->sent + len)
        len = ed->cut > from->sent ? ed->cut - from->sent : 0;
    for (size_t off = 0; off < len && !err;) {
        size_t n = len - off < chunk ? len - off : chunk;
        int r = secure_feed(to->s, from->wire + off, n, on_plain, k);
        if (r < 0)
            err = r;
        else
            *events |= r;
        take_hs(to);
        off += n;
    }
    from->sent += from->len;
    from->len = 0;
    return err;
}

static void fuzz_session(const uint8_t *data, size_t size)
{
    if (size < 1)
        return;
    uint8_t flags = data[0];
    bool damage_server = flags & 1; /* damage server -> client instead */
    bool cut = flags & 2;
    size_t chunk = (size_t)((flags >> 2) & 0x1f) * 97 + 1;
    /* Both ciphers' frames: AES-256-GCM when both offer it (and the CPU
     * has it), xchacha20poly1305 when the client is of the first version. */
    unsigned offer_c = flags & 0x80 ? 0 : SECURE_OFFER_AES256GCM;
    struct edits ed = {.cut = SIZE_MAX};
    for (size_t i = 1; i + 3 <= size && ed.n < MAX_EDITS; i += 3) {
        size_t pos = (size_t)data[i] << 8 | data[i + 1];
        if (cut && ed.cut == SIZE_MAX) {
            ed.cut = pos;
            continue;
        }
        if (data[i + 2] == 0)
            continue;
        ed.pos[ed.n] = pos;
        ed.xor [ed.n++] = data[i + 2];
    }

    struct pipe_end c = {0}, s = {0};
    if (secure_new_offering(&c.s, SECURE_CLIENT, fuzz_key, offer_c) != 0 ||
        secure_new(&s.s, SECURE_SERVER, fuzz_key) != 0)
        abort();
    take_hs(&c);
    take_hs(&s);
    struct pipe_end *x = damage_server ? &s : &c; /* the sender whose bytes are hit */
    struct pipe_end *y = damage_server ? &c : &s;
    struct sink kx = {0}, ky = {0};
    int ev_x = 0, ev_y = 0, err_y = 0;

    /* The plaintext x sends, and where each of its frames starts on the
     * wire: a write over SECURE_FRAME_MAX makes two frames. */
    size_t total_plain = 0;
    for (int i = 0; i < NWRITES; i++)
        total_plain += write_len[i];
    uint8_t *plain = malloc(total_plain);
    ky.data = malloc(total_plain);
    ky.cap = total_plain;
    if (!plain || !ky.data)
        abort();
    for (size_t i = 0; i < total_plain; i++)
        plain[i] = (uint8_t)(i * 131 + 7);
    size_t frame_wire[2 * NWRITES + 2], frame_plain[2 * NWRITES + 2], nframes = 0;
    size_t wire_pos = SECURE_HELLO_BYTES + SECURE_CONFIRM_BYTES, plain_pos = 0;
    for (int i = 0; i < NWRITES; i++)
        for (size_t left = write_len[i]; left > 0;) {
            size_t n = left < SECURE_FRAME_MAX ? left : SECURE_FRAME_MAX;
            frame_wire[nframes] = wire_pos;
            frame_plain[nframes++] = plain_pos;
            wire_pos += n + SECURE_FRAME_OVERHEAD;
            plain_pos += n;
            left -= n;
        }
    frame_wire[nframes] = wire_pos; /* FINAL */
    frame_plain[nframes++] = plain_pos;
    size_t wire_total = wire_pos + SECURE_FRAME_OVERHEAD;

    /* The handshake: bounded rounds, as each side sends two messages. */
    for (int round = 0; round < 3; round++) {
        int e = pass(x, y, &ed, true, chunk, &ky, &ev_y);
        if (e && !err_y)
            err_y = e;
        pass(y, x, &ed, false, chunk, &kx, &ev_x);
    }
    if (secure_is_open(x->s)) {
        uint8_t *sealed = malloc(SECURE_SEAL_BOUND(SECURE_FRAME_MAX + 2000));
        if (!sealed)
            abort();
        size_t off = 0;
        for (int i = 0; i < NWRITES; i++) {
            int n = secure_seal(x->s, plain + off, write_len[i], sealed,
                                SECURE_SEAL_BOUND(SECURE_FRAME_MAX + 2000));
            CHECK(n > 0);
            put(x, sealed, (size_t)n);
            off += write_len[i];
        }
        int n = secure_finish(x->s, sealed, SECURE_FRAME_OVERHEAD);
        CHECK(n == SECURE_FRAME_OVERHEAD);
        put(x, sealed, (size_t)n);
        free(sealed);
        int e = pass(x, y, &ed, true, chunk, &ky, &ev_y);
        if (e && !err_y)
            err_y = e;
    }
    if (!err_y)
        err_y = secure_eof(y->s);

    /* Where the stream first differs from the genuine one. */
    size_t first = SIZE_MAX;
    for (size_t i = 0; i < ed.n; i++) {
        uint8_t acc = 0;
        for (size_t j = 0; j < ed.n; j++)
            if (ed.pos[j] == ed.pos[i])
                acc ^= ed.xor [j];
        if (acc && ed.pos[i] < wire_total && ed.pos[i] < first)
            first = ed.pos[i];
    }
    if (ed.cut != SIZE_MAX && ed.cut < wire_total && ed.cut < first)
        first = ed.cut;

    CHECK(!ky.overflow);
    CHECK(memcmp(ky.data, plain, ky.len) == 0);
    if (first == SIZE_MAX) {
        CHECK(err_y == 0);
        CHECK(ev_y & SECURE_EV_END);
        CHECK(ky.len == total_plain);
    } else {
        CHECK(err_y < 0);
        CHECK(!(ev_y & SECURE_EV_END));
        size_t expect = 0;
        if (first >= SECURE_HELLO_BYTES + SECURE_CONFIRM_BYTES) {
            size_t f = 0;
            while (f + 1 < nframes && frame_wire[f + 1] <= first)
                f++;
            expect = frame_plain[f];
        } else {
            CHECK(!(ev_y & SECURE_EV_OPEN));
        }
        CHECK(ky.len == expect);
    }
    free(plain);
    free(ky.data);
    free(c.wire);
    free(s.wire);
    secure_free(c.s);
    secure_free(s.s);
}

/* Mode 2: a key file's text. */
static void fuzz_keyfile(const uint8_t *data, size_t size)
{
    uint8_t key[KEYFILE_KEY_BYTES];
    const char *why = keyfile_parse((const char *)data, size, key);
    if (!why) {
        CHECK(size >= 64 && size <= 66);
        CHECK(memcmp(data, KEYFILE_PREFIX, strlen(KEYFILE_PREFIX)) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    rng_calls = 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_raw(data + 1, size - 1);
        break;
    case 1:
        fuzz_session(data + 1, size - 1);
        break;
    default:
        fuzz_keyfile(data + 1, size - 1);
        break;
    }
    return 0;
}
