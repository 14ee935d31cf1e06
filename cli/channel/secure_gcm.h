/* SPDX-License-Identifier: MIT */
/*
 * One direction of the encrypted channel's frames with AES-256-GCM, the
 * cipher both ends pick when both offer it (docs/PROTOCOL.md, "Cipher").
 * It keeps the frame layout of the secretstream frames (a 2-byte length,
 * then 17 bytes of overhead) and their tags, so secure.c parses both alike:
 *
 *   length (2) | tag (1) | AES-256-GCM(plaintext) (L) | GCM tag (16)
 *
 * with the length and the tag byte as additional data, and the nonce the
 * Confirm's first 12 header bytes XOR the frame's number.  A REKEY frame
 * replaces the direction's key by KDF(key, 5) after it, on both sides.
 *
 * The cipher itself is plain AES-256-GCM, so where the build has OpenSSL
 * its implementation seals and opens the frames (secure_gcm_openssl.c,
 * about twice libsodium's speed on AES-NI and VAES CPUs), and libsodium's
 * elsewhere (secure_gcm_sodium.c): the bytes on the wire are the same.
 */
#ifndef IOCPTOOL_SECURE_GCM_H
#define IOCPTOOL_SECURE_GCM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define SECURE_GCM_HEADERBYTES 24 /* the Confirm's header field */
#define SECURE_GCM_NONCEBYTES  12
#define SECURE_GCM_TAGBYTES    16

/* An expanded AES-256-GCM key, ready to seal or open frames: the key
 * schedule (and GHASH tables) are computed once per key, not per frame. */
#if IOCPTOOL_GCM_OPENSSL
struct secure_gcm_key {
    void *ctx; /* EVP_CIPHER_CTX, keyed for one direction */
};
#else
struct secure_gcm_key {
    crypto_aead_aes256gcm_state st;
};
#endif

struct secure_gcm {
    struct secure_gcm_key k;
    uint8_t key[32];                /* kept for the next rekey only */
    uint8_t base[SECURE_GCM_NONCEBYTES];
    uint64_t frames;                /* frames sealed or opened so far */
    bool encrypt;                   /* our direction, not the peer's */
};

/* Start our direction: draw the Confirm's header and expand key.  0, or
 * -1 if the cipher could not be set up (out of memory). */
int secure_gcm_init_push(struct secure_gcm *g, uint8_t header[SECURE_GCM_HEADERBYTES],
                         const uint8_t key[32]);
/* Start the peer's direction from the header of its Confirm: 0 or -1. */
int secure_gcm_init_pull(struct secure_gcm *g, const uint8_t header[SECURE_GCM_HEADERBYTES],
                         const uint8_t key[32]);
/* Seal len bytes into frame (its 2 length bytes already written): the tag
 * byte, the ciphertext and the GCM tag follow them.  0, or -1 if the
 * cipher failed (then the channel must fail: the frame is not whole). */
int secure_gcm_push(struct secure_gcm *g, uint8_t *frame, const uint8_t *plain, size_t len,
                    unsigned char tag);
/* Open a whole frame of len plaintext bytes into plain: 0 and its tag, or
 * -1 if it fails authentication (then nothing of it may be used). */
int secure_gcm_pull(struct secure_gcm *g, uint8_t *plain, unsigned char *tag,
                    const uint8_t *frame, size_t len);
/* Erase the direction's keys and free what the cipher holds; the struct
 * may be wiped more than once. */
void secure_gcm_wipe(struct secure_gcm *g);

/* The AEAD under the frames, one implementation per build
 * (secure_gcm_openssl.c or secure_gcm_sodium.c).  gcm_key_set may be
 * called again on a set key (a rekey).  Each returns 0, or -1: a key the
 * cipher could not take, a seal that failed, a frame that fails
 * authentication. */
int gcm_key_set(struct secure_gcm_key *k, const uint8_t key[32], bool encrypt);
int gcm_key_seal(struct secure_gcm_key *k, uint8_t *out, uint8_t mac[SECURE_GCM_TAGBYTES],
                 const uint8_t *in, size_t len, const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES]);
int gcm_key_open(struct secure_gcm_key *k, uint8_t *out, const uint8_t *in, size_t len,
                 const uint8_t mac[SECURE_GCM_TAGBYTES], const uint8_t *ad, size_t adlen,
                 const uint8_t nonce[SECURE_GCM_NONCEBYTES]);
void gcm_key_free(struct secure_gcm_key *k);

#endif /* IOCPTOOL_SECURE_GCM_H */
