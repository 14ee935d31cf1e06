/* SPDX-License-Identifier: MIT */
/*
 * The channel's AES-256-GCM from libsodium, for builds without OpenSSL:
 * crypto_aead_aes256gcm_*_afternm on a key expanded once.
 */
#include "secure_gcm.h"

int gcm_key_set(struct secure_gcm_key *k, const uint8_t key[32], bool encrypt)
{
    (void)encrypt;
    return crypto_aead_aes256gcm_beforenm(&k->st, key);
}

int gcm_key_seal(struct secure_gcm_key *k, uint8_t *out, uint8_t mac[SECURE_GCM_TAGBYTES],
                 const uint8_t *in, size_t len, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES])
{
    return crypto_aead_aes256gcm_encrypt_detached_afternm(out, mac, NULL, in, len, ad, adlen,
                                                          NULL, nonce, &k->st);
}

int gcm_key_open(struct secure_gcm_key *k, uint8_t *out, const uint8_t *in, size_t len,
                 const uint8_t mac[SECURE_GCM_TAGBYTES], const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES])
{
    return crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, in, len, mac, ad, adlen,
                                                          nonce, &k->st);
}

void gcm_key_free(struct secure_gcm_key *k)
{
    sodium_memzero(k, sizeof *k);
}
