/* SPDX-License-Identifier: MIT */
/*
 * AES-256-GCM frames for the encrypted channel: see secure_gcm.h and
 * docs/PROTOCOL.md.  libsodium's crypto_aead_aes256gcm_*_afternm on an
 * expanded key, so the key schedule runs once per key, not per frame.
 */
#include "secure_gcm.h"

#include <string.h>

#define TAG_REKEY crypto_secretstream_xchacha20poly1305_TAG_REKEY
/* The KDF identifier of a rekeyed direction key (the session's subkeys
 * use 1 to 4, from another master key). */
#define KDF_REKEY   5
#define KDF_CONTEXT "iocptool"

static void expand(struct secure_gcm *g, const uint8_t key[32])
{
    memcpy(g->key, key, sizeof g->key);
    crypto_aead_aes256gcm_beforenm(&g->st, g->key);
}

static void rekey(struct secure_gcm *g)
{
    uint8_t next[32];
    crypto_kdf_derive_from_key(next, sizeof next, KDF_REKEY, KDF_CONTEXT, g->key);
    expand(g, next);
    sodium_memzero(next, sizeof next);
}

/* The nonce of the next frame: the base XOR its number, big-endian, in the
 * last 8 bytes. */
static void next_nonce(struct secure_gcm *g, uint8_t nonce[crypto_aead_aes256gcm_NPUBBYTES])
{
    uint64_t n = ++g->frames;
    memcpy(nonce, g->base, crypto_aead_aes256gcm_NPUBBYTES);
    for (int i = 0; i < 8; i++)
        nonce[crypto_aead_aes256gcm_NPUBBYTES - 1 - i] ^= (uint8_t)(n >> (8 * i));
}

void secure_gcm_init_push(struct secure_gcm *g, uint8_t header[SECURE_GCM_HEADERBYTES],
                          const uint8_t key[32])
{
    randombytes_buf(header, SECURE_GCM_HEADERBYTES);
    secure_gcm_init_pull(g, header, key);
}

void secure_gcm_init_pull(struct secure_gcm *g, const uint8_t header[SECURE_GCM_HEADERBYTES],
                          const uint8_t key[32])
{
    memcpy(g->base, header, sizeof g->base);
    g->frames = 0;
    expand(g, key);
}

void secure_gcm_push(struct secure_gcm *g, uint8_t *frame, const uint8_t *plain, size_t len,
                     unsigned char tag)
{
    uint8_t nonce[crypto_aead_aes256gcm_NPUBBYTES];
    next_nonce(g, nonce);
    frame[2] = tag;
    crypto_aead_aes256gcm_encrypt_detached_afternm(frame + 3, frame + 3 + len, NULL, plain, len,
                                                   frame, 3, NULL, nonce, &g->st);
    if (tag == TAG_REKEY)
        rekey(g);
}

int secure_gcm_pull(struct secure_gcm *g, uint8_t *plain, unsigned char *tag,
                    const uint8_t *frame, size_t len)
{
    uint8_t nonce[crypto_aead_aes256gcm_NPUBBYTES];
    next_nonce(g, nonce);
    if (crypto_aead_aes256gcm_decrypt_detached_afternm(plain, NULL, frame + 3, len,
                                                       frame + 3 + len, frame, 3, nonce,
                                                       &g->st) != 0)
        return -1;
    *tag = frame[2];
    if (*tag == TAG_REKEY)
        rekey(g);
    return 0;
}
