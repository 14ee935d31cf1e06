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
 */
#ifndef IOCPTOOL_SECURE_GCM_H
#define IOCPTOOL_SECURE_GCM_H

#include <stddef.h>
#include <stdint.h>

#include <sodium.h>

#define SECURE_GCM_HEADERBYTES 24 /* the Confirm's header field */

struct secure_gcm {
    crypto_aead_aes256gcm_state st; /* the expanded key */
    uint8_t key[32];                /* kept for the next rekey only */
    uint8_t base[crypto_aead_aes256gcm_NPUBBYTES];
    uint64_t frames;                /* frames sealed or opened so far */
};

/* Start our direction: draw the Confirm's header and expand key. */
void secure_gcm_init_push(struct secure_gcm *g, uint8_t header[SECURE_GCM_HEADERBYTES],
                          const uint8_t key[32]);
/* Start the peer's direction from the header of its Confirm. */
void secure_gcm_init_pull(struct secure_gcm *g, const uint8_t header[SECURE_GCM_HEADERBYTES],
                          const uint8_t key[32]);
/* Seal len bytes into frame (its 2 length bytes already written): the tag
 * byte, the ciphertext and the GCM tag follow them. */
void secure_gcm_push(struct secure_gcm *g, uint8_t *frame, const uint8_t *plain, size_t len,
                     unsigned char tag);
/* Open a whole frame of len plaintext bytes into plain: 0 and its tag, or
 * -1 if it fails authentication (then nothing of it may be used). */
int secure_gcm_pull(struct secure_gcm *g, uint8_t *plain, unsigned char *tag,
                    const uint8_t *frame, size_t len);

#endif /* IOCPTOOL_SECURE_GCM_H */
