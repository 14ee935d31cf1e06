/* SPDX-License-Identifier: MIT */
/*
 * AES-256-GCM frames for the encrypted channel: see secure_gcm.h and
 * docs/PROTOCOL.md.  The nonces, the additional data and the rekeying are
 * here; the cipher is gcm_key_*(), from OpenSSL or libsodium.
 */
#include "secure_gcm.h"

#include <string.h>

#define TAG_REKEY crypto_secretstream_xchacha20poly1305_TAG_REKEY
/* The KDF identifier of a rekeyed direction key (the session's subkeys
 * use 1 to 4, from another master key). */
#define KDF_REKEY   5
#define KDF_CONTEXT "iocptool"
/* The additional data: the frame's length (2) and tag byte (1). */
#define AD_BYTES 3

static int expand(struct secure_gcm *g, const uint8_t key[32])
{
    memcpy(g->key, key, sizeof g->key);
    return gcm_key_set(&g->k, g->key, g->encrypt);
}

static int rekey(struct secure_gcm *g)
{
    uint8_t next[32];
    crypto_kdf_derive_from_key(next, sizeof next, KDF_REKEY, KDF_CONTEXT, g->key);
    int r = expand(g, next);
    sodium_memzero(next, sizeof next);
    return r;
}

/* The nonce of the next frame: the base XOR its number, big-endian, in the
 * last 8 bytes. */
static void next_nonce(struct secure_gcm *g, uint8_t nonce[SECURE_GCM_NONCEBYTES])
{
    uint64_t n = ++g->frames;
    memcpy(nonce, g->base, SECURE_GCM_NONCEBYTES);
    for (int i = 0; i < 8; i++)
        nonce[SECURE_GCM_NONCEBYTES - 1 - i] ^= (uint8_t)(n >> (8 * i));
}

static int init(struct secure_gcm *g, const uint8_t header[SECURE_GCM_HEADERBYTES],
                const uint8_t key[32], bool encrypt)
{
    memcpy(g->base, header, sizeof g->base);
    g->frames = 0;
    g->encrypt = encrypt;
    return expand(g, key);
}

int secure_gcm_init_push(struct secure_gcm *g, uint8_t header[SECURE_GCM_HEADERBYTES],
                         const uint8_t key[32])
{
    randombytes_buf(header, SECURE_GCM_HEADERBYTES);
    return init(g, header, key, true);
}

int secure_gcm_init_pull(struct secure_gcm *g, const uint8_t header[SECURE_GCM_HEADERBYTES],
                         const uint8_t key[32])
{
    return init(g, header, key, false);
}

int secure_gcm_push(struct secure_gcm *g, uint8_t *frame, const uint8_t *plain, size_t len,
                    unsigned char tag)
{
    uint8_t nonce[SECURE_GCM_NONCEBYTES];
    next_nonce(g, nonce);
    frame[2] = tag;
    if (gcm_key_seal(&g->k, frame + AD_BYTES, frame + AD_BYTES + len, plain, len, frame,
                     AD_BYTES, nonce) != 0)
        return -1;
    if (tag == TAG_REKEY)
        return rekey(g);
    return 0;
}

int secure_gcm_pull(struct secure_gcm *g, uint8_t *plain, unsigned char *tag,
                    const uint8_t *frame, size_t len)
{
    uint8_t nonce[SECURE_GCM_NONCEBYTES];
    next_nonce(g, nonce);
    if (gcm_key_open(&g->k, plain, frame + AD_BYTES, len, frame + AD_BYTES + len, frame,
                     AD_BYTES, nonce) != 0)
        return -1;
    *tag = frame[2];
    if (*tag == TAG_REKEY)
        return rekey(g);
    return 0;
}

void secure_gcm_wipe(struct secure_gcm *g)
{
    gcm_key_free(&g->k);
    sodium_memzero(g, sizeof *g);
}
