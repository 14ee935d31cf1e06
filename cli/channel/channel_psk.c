/* SPDX-License-Identifier: MIT */
/*
 * channel.h's operations for the pre-shared-key channel of secure.h.  In a
 * build without libsodium, secure_none.c answers every call with an error,
 * and --key is refused long before a channel is made.
 */
#include "channel.h"

#include "secure.h"

_Static_assert((int)CHANNEL_EV_SEND == (int)SECURE_EV_SEND &&
                   (int)CHANNEL_EV_OPEN == (int)SECURE_EV_OPEN &&
                   (int)CHANNEL_EV_END == (int)SECURE_EV_END,
               "the channel events are secure.h's");
/* The room channel.h promises a seal and a finish. */
_Static_assert(SECURE_SEAL_BOUND(32768) <= 32768 + 32768 / 16 && SECURE_FRAME_OVERHEAD <= 64,
               "the frames fit the room channel.h gives them");

static const void *psk_handshake_out(void *state, size_t *len)
{
    return secure_handshake_out(state, len);
}

static int psk_feed(void *state, const void *in, size_t len, channel_plain_cb cb, void *arg)
{
    return secure_feed(state, in, len, cb, arg);
}

static int psk_eof(void *state)
{
    return secure_eof(state);
}

static int psk_seal(void *state, const void *plain, size_t len, void *out, size_t cap)
{
    return secure_seal(state, plain, len, out, cap);
}

static int psk_finish(void *state, void *out, size_t cap)
{
    return secure_finish(state, out, cap);
}

static const char *psk_cipher(void *state)
{
    return secure_cipher(state);
}

static void psk_free(void *state)
{
    secure_free(state);
}

static const struct channel_ops psk_ops = {
    .name = "psk",
    .handshake_out = psk_handshake_out,
    .feed = psk_feed,
    .eof = psk_eof,
    .seal = psk_seal,
    .finish = psk_finish,
    .strerror = secure_strerror,
    .cipher = psk_cipher,
    .free = psk_free,
};

int channel_psk_new(struct channel *ch, enum channel_role role, const uint8_t key[32])
{
    struct secure *s = NULL;
    int rc = secure_new(&s, role == CHANNEL_SERVER ? SECURE_SERVER : SECURE_CLIENT, key);
    ch->ops = &psk_ops; /* its strerror explains a failure */
    ch->state = s;
    return rc;
}
