/* SPDX-License-Identifier: MIT */
/*
 * The encrypted channel of docs/PROTOCOL.md as a pure state machine: no
 * sockets, no engine, no clock, no thread.  The caller moves the bytes: it
 * feeds what the connection received (from on_data) and gets the plaintext
 * back through a callback; it asks for the handshake bytes and the sealed
 * frames and sends them (iocp_conn_send).  Everything happens in the
 * caller's thread, inside the callback that brought the bytes, so one
 * connection needs no extra thread and the engine's worker stays the only
 * one touching it.
 *
 * Wiring it into a connection:
 *
 *   on_open:  secure_new(&s, role, key); send secure_handshake_out(s);
 *             arm a deadline timer (close if not open by then; the
 *             CLI's connection leg, leg.h, does all of this).
 *   on_data:  ev = secure_feed(s, data, len, deliver, arg);
 *             ev < 0: report secure_strerror(ev), send what
 *             secure_handshake_out(s) still holds, close;
 *             ev & SECURE_EV_SEND: send secure_handshake_out(s);
 *             ev & SECURE_EV_OPEN: start reading the input (stdin...);
 *             ev & SECURE_EV_END: the peer's direction ended (as on_eof).
 *   on_eof:   secure_eof(s) < 0: the stream was cut, an error.
 *   input:    n = secure_seal(s, buf, len, out, cap); send out[0..n).
 *   input EOF: n = secure_finish(s, out, cap); send; iocp_conn_shutdown().
 *   on_close: secure_free(s).
 *
 * Memory is bounded: one receive buffer of SECURE_WIRE_MAX bytes and one
 * plaintext buffer of SECURE_FRAME_MAX bytes (about 33 KB a connection in
 * all, allocated by secure_new), whatever the peer sends.
 */
#ifndef IOCPTOOL_SECURE_H
#define IOCPTOOL_SECURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECURE_KEY_BYTES      32
#define SECURE_HELLO_BYTES    70    /* magic 4, version 1, role 1, nonce 32, epk 32 */
#define SECURE_CONFIRM_BYTES  56    /* header 24, mac 32 */
#define SECURE_FRAME_MAX      16384 /* plaintext bytes per frame */
#define SECURE_FRAME_OVERHEAD 19    /* length 2, tag and MAC 17 (either cipher) */
#define SECURE_WIRE_MAX       (SECURE_FRAME_MAX + SECURE_FRAME_OVERHEAD)
#define SECURE_REKEY_FRAMES   1024 /* every 1024th frame of a direction rekeys */

/* The most plaintext one secure_seal() takes, so that its result fits an int. */
#define SECURE_SEAL_MAX (64u << 20)
/* The bytes secure_seal() may write for len bytes of plaintext. */
#define SECURE_SEAL_BOUND(len)                                                                     \
    ((len) + ((len) + SECURE_FRAME_MAX - 1) / SECURE_FRAME_MAX * SECURE_FRAME_OVERHEAD)

enum secure_role {
    SECURE_CLIENT, /* the side that connected */
    SECURE_SERVER, /* the side that accepted */
};

/* Events secure_feed() reports, or-ed together. */
enum {
    SECURE_EV_SEND = 1, /* handshake bytes wait: send secure_handshake_out() */
    SECURE_EV_OPEN = 2, /* the peer proved the key: data may flow */
    SECURE_EV_END = 4,  /* the peer's direction ended, authenticated */
};

/*
 * Errors: negative, and final (the channel stays failed; every later call
 * returns the same error).  secure_strerror() gives the message.
 */
enum secure_error {
    SECURE_ENOTPROTO = -1,  /* the peer's first bytes are not a Hello */
    SECURE_EVERSION = -2,   /* a Hello of another protocol version */
    SECURE_EROLE = -3,      /* a Hello from the same role (or reflected) */
    SECURE_EAUTH = -4,      /* wrong key or tampered handshake */
    SECURE_EFRAME = -5,     /* a frame failed authentication */
    SECURE_ELENGTH = -6,    /* a frame length over SECURE_FRAME_MAX */
    SECURE_ETAG = -7,       /* a frame with the wrong tag for its place */
    SECURE_ECUT = -8,       /* EOF before the peer's FINAL frame */
    SECURE_EHSCUT = -9,     /* EOF during the handshake */
    SECURE_EAFTEREND = -10, /* bytes after the peer's FINAL frame */
    SECURE_ENOTOPEN = -11,  /* seal or finish before the channel is open */
    SECURE_EENDED = -12,    /* seal or finish after finish */
    SECURE_ENOSPC = -13,    /* the output buffer is too small */
    SECURE_ENOMEM = -14,
    SECURE_EINIT = -15, /* libsodium failed to initialise */
};

struct secure;

/* Counters, for tests and -vv. */
struct secure_stats {
    uint64_t frames_sent, frames_received;
    uint64_t rekeys_sent, rekeys_received;
    uint64_t plain_sent, plain_received; /* plaintext bytes */
};

/*
 * Called with each frame's plaintext, only after the whole frame has been
 * authenticated.  data is valid during the call only.  The callback may
 * call secure_seal() and secure_finish() on the same channel (an encrypted
 * echo or relay answers from it), not secure_feed() or secure_free().
 */
typedef void (*secure_plain_cb)(void *arg, const void *data, size_t len);

/*
 * secure_new(out, role, key):
 * A channel for one connection, its Hello ready to send (draws the nonce
 * and the ephemeral key pair).  key is copied, and that copy is erased once
 * the session keys are derived.  0, or SECURE_ENOMEM, SECURE_EINIT.
 */
int secure_new(struct secure **out, enum secure_role role, const uint8_t key[SECURE_KEY_BYTES]);

/* The ciphers a Hello may offer besides the one every side speaks
 * (xchacha20poly1305), or-ed together (PROTOCOL.md, "Cipher"). */
#define SECURE_OFFER_AES256GCM 1u

/*
 * secure_new() with the offer given: secure_new() offers AES-256-GCM (where
 * the CPU has AES-NI and PCLMUL, and unless the environment sets
 * IOCP_CIPHER=xchacha20poly1305); 0 makes a Hello as the first version of
 * the protocol made it.  AES-256-GCM is used when both Hellos offer it.
 */
int secure_new_offering(struct secure **out, enum secure_role role,
                        const uint8_t key[SECURE_KEY_BYTES], unsigned offer);

/* Erase and free; secure_free(NULL) does nothing. */
void secure_free(struct secure *s);

/*
 * secure_handshake_out(s, len):
 * The handshake bytes waiting to be sent (the Hello after secure_new, the
 * Confirm after the feed that reported SECURE_EV_SEND), and *len their
 * count; they count as taken.  The pointer is valid until the next call on
 * s.  Returns NULL with *len = 0 when nothing waits.  Send them before any
 * sealed frame.  After a failure it may still hold our Confirm: send it
 * before closing, so that a peer with another key reports the wrong key.
 */
const void *secure_handshake_out(struct secure *s, size_t *len);

/*
 * secure_feed(s, in, len, cb, arg):
 * Take len received bytes.  Each frame completed by them is authenticated,
 * then its plaintext goes to cb; a partial frame waits in s for the rest.
 * Returns the SECURE_EV_* events this call caused (0 if none), or a
 * negative SECURE_E* error, after which cb is never called again.  On an
 * error, no byte of the failing frame or of anything after it has been
 * given to cb.
 */
int secure_feed(struct secure *s, const void *in, size_t len, secure_plain_cb cb, void *arg);

/*
 * secure_eof(s):
 * The connection delivered EOF.  0 if the peer's direction had ended with
 * its FINAL frame; otherwise SECURE_ECUT (SECURE_EHSCUT during the
 * handshake) and the channel fails.
 */
int secure_eof(struct secure *s);

/*
 * secure_seal(s, plain, len, out, cap):
 * Encrypt len bytes (at most SECURE_SEAL_MAX) into frames of at most
 * SECURE_FRAME_MAX plaintext bytes each, written to out (cap bytes, at
 * least SECURE_SEAL_BOUND(len)).  Returns the bytes written (0 for len 0),
 * or SECURE_ENOTOPEN (not open yet, or handshake bytes not taken),
 * SECURE_EENDED (after secure_finish), SECURE_ENOSPC (cap or len too
 * large), or the channel's error.  Nothing is written on an error.
 */
int secure_seal(struct secure *s, const void *plain, size_t len, void *out, size_t cap);

/*
 * secure_finish(s, out, cap):
 * End the sending direction: write the FINAL frame (SECURE_FRAME_OVERHEAD
 * bytes) to out.  The peer keeps sending until it finishes its own.
 * Returns the bytes written or an error as secure_seal().
 */
int secure_finish(struct secure *s, void *out, size_t cap);

/* True once the peer proved the key (SECURE_EV_OPEN was reported). */
bool secure_is_open(const struct secure *s);
/* True once the peer's FINAL frame arrived. */
bool secure_peer_ended(const struct secure *s);
/* The channel's error (negative), or 0 while it has none. */
int secure_error(const struct secure *s);
/* The cipher of the frames, "aes256gcm" or "xchacha20poly1305", once the
 * channel is open (NULL before). */
const char *secure_cipher(const struct secure *s);

void secure_stats(const struct secure *s, struct secure_stats *st);

/* "authentication failed: wrong key or tampered handshake"... */
const char *secure_strerror(int err);

#endif /* IOCPTOOL_SECURE_H */
