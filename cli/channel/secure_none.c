/* SPDX-License-Identifier: MIT */
/*
 * secure.h in a build without libsodium: no channel can be made.  --key is
 * refused before any connection exists (keyfile_none.c says why, status
 * 2), so nothing here runs; it lets the code that drives a channel (the
 * bridge) be the same in both builds.
 */
#include "secure.h"

#include <string.h>

int secure_new(struct secure **out, enum secure_role role, const uint8_t key[SECURE_KEY_BYTES])
{
    (void)role;
    (void)key;
    *out = NULL;
    return SECURE_EINIT;
}

int secure_new_offering(struct secure **out, enum secure_role role,
                        const uint8_t key[SECURE_KEY_BYTES], unsigned offer)
{
    (void)offer;
    return secure_new(out, role, key);
}

void secure_free(struct secure *s)
{
    (void)s;
}

const void *secure_handshake_out(struct secure *s, size_t *len)
{
    (void)s;
    *len = 0;
    return NULL;
}

int secure_feed(struct secure *s, const void *in, size_t len, secure_plain_cb cb, void *arg)
{
    (void)s;
    (void)in;
    (void)len;
    (void)cb;
    (void)arg;
    return SECURE_EINIT;
}

int secure_eof(struct secure *s)
{
    (void)s;
    return SECURE_EINIT;
}

int secure_seal(struct secure *s, const void *plain, size_t len, void *out, size_t cap)
{
    (void)s;
    (void)plain;
    (void)len;
    (void)out;
    (void)cap;
    return SECURE_EINIT;
}

int secure_finish(struct secure *s, void *out, size_t cap)
{
    (void)s;
    (void)out;
    (void)cap;
    return SECURE_EINIT;
}

bool secure_is_open(const struct secure *s)
{
    (void)s;
    return false;
}

bool secure_peer_ended(const struct secure *s)
{
    (void)s;
    return false;
}

int secure_error(const struct secure *s)
{
    (void)s;
    return SECURE_EINIT;
}

const char *secure_cipher(const struct secure *s)
{
    (void)s;
    return NULL;
}

void secure_stats(const struct secure *s, struct secure_stats *st)
{
    (void)s;
    memset(st, 0, sizeof *st);
}

const char *secure_strerror(int err)
{
    (void)err;
    return "encryption is not built into this iocptool (it needs libsodium)";
}
