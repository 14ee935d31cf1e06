/* SPDX-License-Identifier: MIT */
/*
 * The channel's AES-256-GCM from OpenSSL, where the build has it: the
 * same cipher as libsodium's crypto_aead_aes256gcm (12-byte nonce, 16-byte
 * tag), so either end may use either, but OpenSSL's stitched AES-NI/VAES
 * and PCLMUL code runs about twice as fast on 16 KiB frames here
 * (docs/PERFORMANCE.md).  One EVP context per direction, keyed once; a
 * frame only sets its nonce.
 */
#include "secure_gcm.h"

#include <limits.h>

#include <openssl/evp.h>

int gcm_key_set(struct secure_gcm_key *k, const uint8_t key[32], bool encrypt)
{
    if (!k->ctx) {
        k->ctx = EVP_CIPHER_CTX_new();
        if (!k->ctx)
            return -1;
        if (EVP_CipherInit_ex(k->ctx, EVP_aes_256_gcm(), NULL, NULL, NULL, encrypt) != 1)
            return -1;
    }
    return EVP_CipherInit_ex(k->ctx, NULL, NULL, key, NULL, encrypt) == 1 ? 0 : -1;
}

int gcm_key_seal(struct secure_gcm_key *k, uint8_t *out, uint8_t mac[SECURE_GCM_TAGBYTES],
                 const uint8_t *in, size_t len, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES])
{
    EVP_CIPHER_CTX *ctx = k->ctx;
    int n;
    if (len > INT_MAX || EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1 ||
        EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, out + n, &n) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, SECURE_GCM_TAGBYTES, mac) != 1)
        return -1;
    return 0;
}

int gcm_key_open(struct secure_gcm_key *k, uint8_t *out, const uint8_t *in, size_t len,
                 const uint8_t mac[SECURE_GCM_TAGBYTES], const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES])
{
    EVP_CIPHER_CTX *ctx = k->ctx;
    int n;
    /* The plaintext is written before the tag is checked; on a failure the
     * caller drops the channel and wipes it, so none of it is used. */
    if (len > INT_MAX || EVP_DecryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
        EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)adlen) != 1 ||
        EVP_DecryptUpdate(ctx, out, &n, in, (int)len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, SECURE_GCM_TAGBYTES, (void *)mac) != 1 ||
        EVP_DecryptFinal_ex(ctx, out + n, &n) != 1)
        return -1;
    return 0;
}

void gcm_key_free(struct secure_gcm_key *k)
{
    EVP_CIPHER_CTX_free(k->ctx); /* cleanses the key schedule */
    k->ctx = NULL;
}
