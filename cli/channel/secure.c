/* SPDX-License-Identifier: MIT */
/*
 * secure.h: the encrypted channel of docs/PROTOCOL.md, as a state machine
 * that the caller feeds with received bytes and asks for bytes to send.
 * The receive side reassembles one unit at a time (a Hello, a Confirm or a
 * frame) in a fixed buffer, checks it whole, and only then acts on it, so
 * nothing unauthenticated ever reaches the plaintext callback.  Every
 * primitive is libsodium's; the byte layouts and labels below are the ones
 * the document specifies, and a change to either is a new protocol
 * version.
 */
#include "secure.h"

#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "secure_gcm.h"

#define MAGIC         "iocp"
#define MAGIC_BYTES   4
#define VERSION       0x01
#define NONCE_BYTES   32
#define OFF_VERSION   4
#define OFF_ROLE      5
#define OFF_NONCE     6
#define OFF_EPK       38
#define SESSION_LABEL "iocptool-v1-session"
#define KDF_CONTEXT   "iocptool"

#define SS_HEADERBYTES crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES      crypto_secretstream_xchacha20poly1305_ABYTES
#define TAG_MESSAGE    crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_REKEY      crypto_secretstream_xchacha20poly1305_TAG_REKEY
#define TAG_FINAL      crypto_secretstream_xchacha20poly1305_TAG_FINAL

/* A Hello whose nonce field starts with these 8 bytes offers AES-256-GCM
 * (PROTOCOL.md, "Cipher"); an older side's 32 random bytes start with them
 * once in 2^64 Hellos. */
#define OFFER_AESGCM       "aes-gcm1"
#define OFFER_AESGCM_BYTES 8

/* The KDF identifiers of the four session subkeys. */
enum { KDF_CS = 1, KDF_SC = 2, KDF_MAC_C = 3, KDF_MAC_S = 4 };

/* Where the receive side is: what the next unit on the wire must be. */
enum rx_state {
    RX_HELLO,   /* the peer's Hello */
    RX_CONFIRM, /* the peer's Confirm */
    RX_FRAMES,  /* data frames */
    RX_ENDED,   /* the peer's FINAL frame arrived; only EOF may follow */
};

struct secure {
    enum secure_role role;
    enum rx_state rx;
    int error;     /* 0, or the SECURE_E* that failed the channel */
    bool open;     /* the peer's Confirm checked */
    bool finished; /* our FINAL frame is written */

    /* Handshake secrets, each erased as soon as it has served. */
    uint8_t key[SECURE_KEY_BYTES]; /* K, until the session keys exist */
    uint8_t esk[32];               /* our ephemeral X25519 secret, until Z */
    uint8_t th[32];                /* the transcript hash, until the Confirm */
    uint8_t k_in[32];              /* the peer's direction key, until its header */
    uint8_t mac_key_peer[32];      /* the peer's confirmation key, until its Confirm */

    bool offer_aes; /* our Hello offers AES-256-GCM */
    bool aes;       /* both offered it: the frames are secure_gcm.h's */
    crypto_secretstream_xchacha20poly1305_state push; /* our direction */
    crypto_secretstream_xchacha20poly1305_state pull; /* the peer's */
    struct secure_gcm gcm_push, gcm_pull;             /* the same, with AES-256-GCM */
    struct secure_stats stats;

    /* Handshake bytes to send: our Hello at [0, 70), which also stays there
     * for the transcript, then our Confirm.  [out_start, out_end) is what
     * the caller has not taken yet. */
    uint8_t out[SECURE_HELLO_BYTES + SECURE_CONFIRM_BYTES];
    size_t out_start, out_end;

    /* The unit being received, when it arrived in pieces. */
    size_t have;
    uint8_t inbuf[SECURE_WIRE_MAX];
    /* One frame's plaintext, decrypted only after its MAC checked. */
    uint8_t plain[SECURE_FRAME_MAX];
};

static int fail(struct secure *s, int err)
{
    if (!s->error)
        s->error = err;
    /* Nothing of a failed channel is of any further use: drop every secret
     * now rather than when the caller gets around to freeing it. */
    sodium_memzero(s->key, sizeof s->key);
    sodium_memzero(s->esk, sizeof s->esk);
    sodium_memzero(s->k_in, sizeof s->k_in);
    sodium_memzero(s->mac_key_peer, sizeof s->mac_key_peer);
    sodium_memzero(&s->push, sizeof s->push);
    sodium_memzero(&s->pull, sizeof s->pull);
    secure_gcm_wipe(&s->gcm_push);
    secure_gcm_wipe(&s->gcm_pull);
    sodium_memzero(s->plain, sizeof s->plain);
    return s->error;
}

static uint8_t role_byte(enum secure_role role)
{
    return role == SECURE_CLIENT ? 'C' : 'S';
}

static size_t frame_plain_len(const uint8_t *head)
{
    return (size_t)head[0] << 8 | head[1];
}

/* What secure_new() offers: AES-256-GCM where this CPU runs it in hardware
 * (libsodium refuses it elsewhere), unless IOCP_CIPHER says otherwise. */
static unsigned default_offer(void)
{
    const char *env = getenv("IOCP_CIPHER");
    if (env && strcmp(env, "xchacha20poly1305") == 0)
        return 0;
    return SECURE_OFFER_AES256GCM;
}

int secure_new(struct secure **out, enum secure_role role, const uint8_t key[SECURE_KEY_BYTES])
{
    return secure_new_offering(out, role, key, default_offer());
}

int secure_new_offering(struct secure **out, enum secure_role role,
                        const uint8_t key[SECURE_KEY_BYTES], unsigned offer)
{
    *out = NULL;
    /* sodium_init() is idempotent and thread-safe; 1 means already done. */
    if (sodium_init() < 0)
        return SECURE_EINIT;
    struct secure *s = malloc(sizeof *s);
    if (!s)
        return SECURE_ENOMEM;
    memset(s, 0, sizeof *s);
    s->role = role;
    s->rx = RX_HELLO;
    memcpy(s->key, key, SECURE_KEY_BYTES);

    uint8_t *hello = s->out;
    memcpy(hello, MAGIC, MAGIC_BYTES);
    hello[OFF_VERSION] = VERSION;
    hello[OFF_ROLE] = role_byte(role);
    randombytes_buf(hello + OFF_NONCE, NONCE_BYTES);
    s->offer_aes = (offer & SECURE_OFFER_AES256GCM) && crypto_aead_aes256gcm_is_available();
    if (s->offer_aes)
        memcpy(hello + OFF_NONCE, OFFER_AESGCM, OFFER_AESGCM_BYTES);
    randombytes_buf(s->esk, sizeof s->esk);
    crypto_scalarmult_base(hello + OFF_EPK, s->esk);
    s->out_end = SECURE_HELLO_BYTES;
    *out = s;
    return 0;
}

void secure_free(struct secure *s)
{
    if (!s)
        return;
    secure_gcm_wipe(&s->gcm_push);
    secure_gcm_wipe(&s->gcm_pull);
    sodium_memzero(s, sizeof *s);
    free(s);
}

const void *secure_handshake_out(struct secure *s, size_t *len)
{
    /* Still given after a failure: when the peer's Hello and a Confirm made
     * with another key arrive together, the channel fails before our own
     * Confirm has left, and sending it lets the peer see the wrong key too
     * rather than just a closed connection. */
    *len = s->out_end - s->out_start;
    if (*len == 0)
        return NULL;
    const void *p = s->out + s->out_start;
    s->out_start = s->out_end;
    return p;
}

/*
 * Check what has arrived of the current unit (n bytes at head) as early as
 * possible: a Hello field by field, so that a peer speaking something else
 * is told so after its first bytes rather than after 70 of them; a frame's
 * length as soon as its two bytes are in, so that a bad one never makes us
 * wait for a body that cannot fit.
 */
static int check_head(const struct secure *s, const uint8_t *head, size_t n)
{
    if (s->rx == RX_HELLO) {
        size_t m = n < MAGIC_BYTES ? n : MAGIC_BYTES;
        if (memcmp(head, MAGIC, m) != 0)
            return SECURE_ENOTPROTO;
        if (n > OFF_VERSION && head[OFF_VERSION] != VERSION)
            return SECURE_EVERSION;
        enum secure_role peer = s->role == SECURE_CLIENT ? SECURE_SERVER : SECURE_CLIENT;
        if (n > OFF_ROLE && head[OFF_ROLE] != role_byte(peer))
            return head[OFF_ROLE] == role_byte(s->role) ? SECURE_EROLE : SECURE_ENOTPROTO;
    } else if (s->rx == RX_FRAMES && n >= 2 && frame_plain_len(head) > SECURE_FRAME_MAX) {
        return SECURE_ELENGTH;
    }
    return 0;
}

/* The size of the current unit, given its first n bytes (a frame's size
 * needs its two length bytes: until then, 2). */
static size_t unit_size(const struct secure *s, const uint8_t *head, size_t n)
{
    switch (s->rx) {
    case RX_HELLO:
        return SECURE_HELLO_BYTES;
    case RX_CONFIRM:
        return SECURE_CONFIRM_BYTES;
    default:
        return n < 2 ? 2 : 2 + frame_plain_len(head) + SS_ABYTES;
    }
}

static void kdf(uint8_t sub[32], uint64_t id, const uint8_t prk[32])
{
    crypto_kdf_derive_from_key(sub, 32, id, KDF_CONTEXT, prk);
}

/* H_k(a || b), the keyed BLAKE2b of PROTOCOL.md. */
static void mac2(uint8_t out[32], const uint8_t k[32], const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, k, 32, 32);
    crypto_generichash_update(&st, a, alen);
    crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, 32);
    sodium_memzero(&st, sizeof st);
}

/*
 * The peer's Hello is in: run the key schedule of PROTOCOL.md, start our
 * direction and queue our Confirm.  Every intermediate secret is erased
 * here, and K and our ephemeral secret with them: from now on only the
 * session keys exist (forward secrecy).
 */
static int on_hello(struct secure *s, const uint8_t *peer_hello)
{
    const uint8_t *own_hello = s->out;
    const uint8_t *hello_c = s->role == SECURE_CLIENT ? own_hello : peer_hello;
    const uint8_t *hello_s = s->role == SECURE_CLIENT ? peer_hello : own_hello;
    uint8_t z[32], prk[32], k_cs[32], k_sc[32], m_c[32], m_s[32];
    crypto_generichash_state st;
    bool client = s->role == SECURE_CLIENT;
    int err = 0;

    /* crypto_scalarmult() fails when Z is all zeros: the peer sent a point
     * of small order, which only a tampered or malicious Hello does. */
    if (crypto_scalarmult(z, s->esk, peer_hello + OFF_EPK) != 0) {
        err = SECURE_EAUTH;
        goto out;
    }
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, hello_c, SECURE_HELLO_BYTES);
    crypto_generichash_update(&st, hello_s, SECURE_HELLO_BYTES);
    crypto_generichash_final(&st, s->th, 32);

    crypto_generichash_init(&st, s->key, SECURE_KEY_BYTES, 32);
    crypto_generichash_update(&st, (const uint8_t *)SESSION_LABEL, strlen(SESSION_LABEL));
    crypto_generichash_update(&st, z, sizeof z);
    crypto_generichash_update(&st, s->th, sizeof s->th);
    crypto_generichash_final(&st, prk, 32);
    sodium_memzero(&st, sizeof st);

    kdf(k_cs, KDF_CS, prk);
    kdf(k_sc, KDF_SC, prk);
    kdf(m_c, KDF_MAC_C, prk);
    kdf(m_s, KDF_MAC_S, prk);
    memcpy(s->k_in, client ? k_sc : k_cs, 32);
    memcpy(s->mac_key_peer, client ? m_s : m_c, 32);

    /* Both Hellos are in TH, so an offer changed on the way fails the
     * Confirms: the choice cannot be downgraded unnoticed. */
    s->aes = s->offer_aes &&
             memcmp(peer_hello + OFF_NONCE, OFFER_AESGCM, OFFER_AESGCM_BYTES) == 0;
    uint8_t *confirm = s->out + SECURE_HELLO_BYTES;
    if (!s->aes)
        crypto_secretstream_xchacha20poly1305_init_push(&s->push, confirm, client ? k_cs : k_sc);
    else if (secure_gcm_init_push(&s->gcm_push, confirm, client ? k_cs : k_sc) != 0) {
        err = SECURE_ENOMEM;
        goto out;
    }
    mac2(confirm + SS_HEADERBYTES, client ? m_c : m_s, s->th, sizeof s->th, confirm,
         SS_HEADERBYTES);
    s->out_end = SECURE_HELLO_BYTES + SECURE_CONFIRM_BYTES;
    s->rx = RX_CONFIRM;

out:
    sodium_memzero(z, sizeof z);
    sodium_memzero(prk, sizeof prk);
    sodium_memzero(k_cs, sizeof k_cs);
    sodium_memzero(k_sc, sizeof k_sc);
    sodium_memzero(m_c, sizeof m_c);
    sodium_memzero(m_s, sizeof m_s);
    sodium_memzero(s->esk, sizeof s->esk);
    sodium_memzero(s->key, sizeof s->key);
    return err;
}

/* The peer's Confirm is in: check it in constant time, then start the
 * peer's direction with the header it carries. */
static int on_confirm(struct secure *s, const uint8_t *confirm)
{
    uint8_t want[32];
    mac2(want, s->mac_key_peer, s->th, sizeof s->th, confirm, SS_HEADERBYTES);
    int bad = crypto_verify_32(want, confirm + SS_HEADERBYTES);
    sodium_memzero(want, sizeof want);
    sodium_memzero(s->mac_key_peer, sizeof s->mac_key_peer);
    sodium_memzero(s->th, sizeof s->th);
    if (bad)
        return SECURE_EAUTH;
    int err = 0;
    if (!s->aes)
        crypto_secretstream_xchacha20poly1305_init_pull(&s->pull, confirm, s->k_in);
    else if (secure_gcm_init_pull(&s->gcm_pull, confirm, s->k_in) != 0)
        err = SECURE_ENOMEM;
    sodium_memzero(s->k_in, sizeof s->k_in);
    if (err)
        return err;
    s->rx = RX_FRAMES;
    s->open = true;
    return 0;
}

/* The tag frame number n of a direction must carry, unless it is FINAL. */
static unsigned char tag_for(uint64_t n)
{
    return n % SECURE_REKEY_FRAMES == 0 ? TAG_REKEY : TAG_MESSAGE;
}

/* A whole frame is in: authenticate and decrypt it (pull does both, the
 * MAC first), check its tag against its place, then deliver it. */
static int on_frame(struct secure *s, const uint8_t *frame, secure_plain_cb cb, void *arg)
{
    size_t len = frame_plain_len(frame);
    unsigned long long mlen;
    unsigned char tag;
    int bad = s->aes ? secure_gcm_pull(&s->gcm_pull, s->plain, &tag, frame, len)
                     : crypto_secretstream_xchacha20poly1305_pull(&s->pull, s->plain, &mlen, &tag,
                                                                  frame + 2, len + SS_ABYTES,
                                                                  frame, 2);
    if (bad != 0)
        return SECURE_EFRAME;
    if (s->aes)
        mlen = len;
    uint64_t n = ++s->stats.frames_received;
    if (tag != TAG_FINAL && tag != tag_for(n))
        return SECURE_ETAG;
    if (tag == TAG_REKEY)
        s->stats.rekeys_received++;
    s->stats.plain_received += mlen;
    if (mlen > 0)
        cb(arg, s->plain, (size_t)mlen);
    if (tag == TAG_FINAL) {
        s->rx = RX_ENDED;
        return SECURE_EV_END;
    }
    return 0;
}

static int on_unit(struct secure *s, const uint8_t *unit, secure_plain_cb cb, void *arg)
{
    int r;
    switch (s->rx) {
    case RX_HELLO:
        r = on_hello(s, unit);
        return r < 0 ? r : SECURE_EV_SEND;
    case RX_CONFIRM:
        r = on_confirm(s, unit);
        return r < 0 ? r : SECURE_EV_OPEN;
    case RX_FRAMES:
        return on_frame(s, unit, cb, arg);
    default:
        return SECURE_EAFTEREND;
    }
}

int secure_feed(struct secure *s, const void *in, size_t len, secure_plain_cb cb, void *arg)
{
    const uint8_t *p = in;
    int events = 0;
    if (s->error)
        return s->error;
    /* Each turn consumes at least one byte or completes one unit. */
    while (len > 0) {
        if (s->rx == RX_ENDED)
            return fail(s, SECURE_EAFTEREND);
        const uint8_t *unit = NULL;
        int r;
        if (s->have == 0) {
            /* Fast path: a whole unit in the caller's buffer is used where
             * it lies, without a copy. */
            if ((r = check_head(s, p, len)) < 0)
                return fail(s, r);
            size_t size = unit_size(s, p, len);
            if (len >= size) {
                unit = p;
                p += size;
                len -= size;
            }
        }
        if (!unit) {
            size_t size = unit_size(s, s->inbuf, s->have);
            size_t take = size - s->have < len ? size - s->have : len;
            memcpy(s->inbuf + s->have, p, take);
            s->have += take;
            p += take;
            len -= take;
            if ((r = check_head(s, s->inbuf, s->have)) < 0)
                return fail(s, r);
            if (s->have < unit_size(s, s->inbuf, s->have))
                continue;
            unit = s->inbuf;
            s->have = 0;
        }
        if ((r = on_unit(s, unit, cb, arg)) < 0)
            return fail(s, r);
        events |= r;
    }
    return events;
}

int secure_eof(struct secure *s)
{
    if (s->error)
        return s->error;
    if (s->rx == RX_ENDED)
        return 0;
    return fail(s, s->open ? SECURE_ECUT : SECURE_EHSCUT);
}

/* Whether our direction may carry a frame now. */
static int can_send(const struct secure *s)
{
    if (s->error)
        return s->error;
    if (s->finished)
        return SECURE_EENDED;
    /* Frames must follow our Confirm on the wire, so it must be taken. */
    if (!s->open || s->out_start != s->out_end)
        return SECURE_ENOTOPEN;
    return 0;
}

static size_t put_frame(struct secure *s, const uint8_t *plain, size_t len, uint8_t *out,
                        unsigned char tag)
{
    out[0] = (uint8_t)(len >> 8);
    out[1] = (uint8_t)len;
    if (!s->aes)
        crypto_secretstream_xchacha20poly1305_push(&s->push, out + 2, NULL, plain, len, out, 2,
                                                   tag);
    else if (secure_gcm_push(&s->gcm_push, out, plain, len, tag) != 0) {
        fail(s, SECURE_ENOMEM); /* the caller sees s->error and sends nothing */
        return 0;
    }
    s->stats.frames_sent++;
    if (tag == TAG_REKEY)
        s->stats.rekeys_sent++;
    s->stats.plain_sent += len;
    return 2 + len + SS_ABYTES;
}

int secure_seal(struct secure *s, const void *plain, size_t len, void *out, size_t cap)
{
    int r = can_send(s);
    if (r < 0)
        return r;
    if (len > SECURE_SEAL_MAX || cap < SECURE_SEAL_BOUND(len))
        return SECURE_ENOSPC;
    const uint8_t *p = plain;
    uint8_t *o = out;
    size_t n = 0;
    while (len > 0) {
        size_t chunk = len < SECURE_FRAME_MAX ? len : SECURE_FRAME_MAX;
        n += put_frame(s, p, chunk, o + n, tag_for(s->stats.frames_sent + 1));
        if (s->error)
            return s->error;
        p += chunk;
        len -= chunk;
    }
    return (int)n;
}

int secure_finish(struct secure *s, void *out, size_t cap)
{
    int r = can_send(s);
    if (r < 0)
        return r;
    if (cap < SECURE_FRAME_OVERHEAD)
        return SECURE_ENOSPC;
    /* An empty message: libsodium reads no plaintext, but gets a valid
     * pointer anyway. */
    static const uint8_t none[1];
    size_t n = put_frame(s, none, 0, out, TAG_FINAL);
    if (s->error)
        return s->error;
    s->finished = true;
    /* The push state has no further use: the direction is over. */
    sodium_memzero(&s->push, sizeof s->push);
    secure_gcm_wipe(&s->gcm_push);
    return (int)n;
}

bool secure_is_open(const struct secure *s)
{
    return s->open && !s->error;
}

bool secure_peer_ended(const struct secure *s)
{
    return s->rx == RX_ENDED && !s->error;
}

int secure_error(const struct secure *s)
{
    return s->error;
}

const char *secure_cipher(const struct secure *s)
{
    if (!s->open)
        return NULL;
    return s->aes ? "aes256gcm" : "xchacha20poly1305";
}

void secure_stats(const struct secure *s, struct secure_stats *st)
{
    *st = s->stats;
}

const char *secure_strerror(int err)
{
    switch (err) {
    case 0:
        return "no error";
    case SECURE_ENOTPROTO:
        return "the peer does not speak iocptool's encrypted protocol (--key on one side only?)";
    case SECURE_EVERSION:
        return "the peer speaks another version of the encrypted protocol";
    case SECURE_EROLE:
        return "both ends took the same role (or the handshake was reflected)";
    case SECURE_EAUTH:
        return "authentication failed: wrong key or tampered handshake";
    case SECURE_EFRAME:
        return "data authentication failed: tampered or corrupted frame";
    case SECURE_ELENGTH:
        return "frame length out of range: tampered or corrupted stream";
    case SECURE_ETAG:
        return "frame out of sequence (unexpected tag)";
    case SECURE_ECUT:
        return "stream cut before its authenticated end";
    case SECURE_EHSCUT:
        return "connection closed during the handshake";
    case SECURE_EAFTEREND:
        return "data after the authenticated end of stream";
    case SECURE_ENOTOPEN:
        return "the encrypted channel is not open yet";
    case SECURE_EENDED:
        return "the sending direction has already ended";
    case SECURE_ENOSPC:
        return "output buffer too small";
    case SECURE_ENOMEM:
        return "out of memory";
    case SECURE_EINIT:
        return "libsodium failed to initialise";
    default:
        return "unknown error";
    }
}
