/* SPDX-License-Identifier: MIT */
/*
 * A channel: a layer on a connection that turns the plaintext we send into
 * what goes on the wire, and what comes off the wire back into plaintext,
 * after a handshake of its own.  The pre-shared-key channel of
 * docs/PROTOCOL.md (secure.h) is one; TLS (channel_tls.c, tls.h) is
 * another, behind the same operations, so that the connection leg (leg.h) that drives a
 * channel never needs to know which one it has.
 *
 * Every operation runs in the thread of the connection's callbacks, like
 * secure.h: a channel has no clock, no thread and no socket.  Its state is
 * opaque; errors are negative and final, with messages from ->strerror.
 */
#ifndef IOCPTOOL_CHANNEL_H
#define IOCPTOOL_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* What ->feed reports, or-ed together (the values of secure.h's). */
enum {
    CHANNEL_EV_SEND = 1, /* handshake bytes wait: send ->handshake_out */
    CHANNEL_EV_OPEN = 2, /* the peer is authenticated: data may flow */
    CHANNEL_EV_END = 4,  /* the peer ended its direction, authenticated */
};

enum channel_role {
    CHANNEL_CLIENT, /* the side that connected */
    CHANNEL_SERVER, /* the side that accepted */
};

/* Plaintext from the peer, authenticated; valid during the call only. */
typedef void (*channel_plain_cb)(void *arg, const void *data, size_t len);

struct channel_ops {
    const char *name;
    /* The handshake bytes waiting to be sent (NULL, *len 0: none); they
     * count as taken.  Valid until the next call. */
    const void *(*handshake_out)(void *state, size_t *len);
    /* Take received bytes: CHANNEL_EV_* or a negative error. */
    int (*feed)(void *state, const void *in, size_t len, channel_plain_cb cb, void *arg);
    /* The connection's EOF: 0 if the peer had ended its direction, or an
     * error (a cut stream). */
    int (*eof)(void *state);
    /* Plaintext into wire bytes: how many were written, or an error.  The
     * caller seals at most 32 KiB at a time into 34 KiB of room (and has
     * 64 bytes for ->finish): framing must fit that. */
    int (*seal)(void *state, const void *plain, size_t len, void *out, size_t cap);
    /* End our direction: the bytes written to out, or an error. */
    int (*finish)(void *state, void *out, size_t cap);
    const char *(*strerror)(int err);
    /* Optional: the message for err with what state knows of it (which
     * certificate check failed, the peer's alert); NULL: ->strerror. */
    const char *(*error_text)(void *state, int err);
    /* Optional: the owner's handshake deadline passed (for counting). */
    void (*timed_out)(void *state);
    /* Optional: the cipher the open channel uses, for -vv; NULL: unknown. */
    const char *(*cipher)(void *state);
    void (*free)(void *state);
};

/* The message for a channel's error, with what its state knows. */
static inline const char *channel_error_text(const struct channel_ops *ops, void *state, int err)
{
    return ops->error_text ? ops->error_text(state, err) : ops->strerror(err);
}

/* One channel on one connection; ops NULL means plain. */
struct channel {
    const struct channel_ops *ops;
    void *state;
};

/* ", <cipher>" for an open channel that names its cipher, else "": the
 * tail of the "encrypted channel open" line of -vv. */
static inline const char *channel_cipher_note(const struct channel *ch, char *buf, size_t cap)
{
    const char *c = ch->ops && ch->ops->cipher ? ch->ops->cipher(ch->state) : NULL;
    if (!c || cap < 3 || strlen(c) > cap - 3)
        return "";
    buf[0] = ',';
    buf[1] = ' ';
    memcpy(buf + 2, c, strlen(c) + 1);
    return buf;
}

/*
 * channel_psk_new(ch, role, key):
 * The pre-shared-key channel (secure.h) for one connection, its Hello
 * ready in ->handshake_out.  0, or a negative error for ->strerror.
 */
int channel_psk_new(struct channel *ch, enum channel_role role, const uint8_t key[32]);

#endif /* IOCPTOOL_CHANNEL_H */
