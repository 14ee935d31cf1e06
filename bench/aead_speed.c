/* SPDX-License-Identifier: MIT */
/*
 * aead_speed: how fast one CPU seals frames with each AEAD libsodium offers,
 * to tell whether the encrypted tunnel is bound by its cipher and what
 * AES-256-GCM would give instead of XChaCha20-Poly1305.
 *
 *   aead_speed [FRAME_BYTES] [SECONDS]      (16384 and 2 by default)
 *
 * Each line: the construction, the frame size, and the plaintext Gbit/s of
 * sealing (encrypt + tag) frames back to back on one thread, per second of
 * that thread's CPU time (so a loaded machine slows the run, not the
 * figure).  The tunnel
 * seals on one side and opens on the other; opening costs about the same.
 * "secretstream" is what the tunnel uses (crypto_secretstream_xchacha20poly1305
 * push, a rekey every 1024 frames as the tunnel does); aes256gcm is listed
 * only where the CPU has AES-NI and PCLMUL (crypto_aead_aes256gcm_is_available).
 * Built with OpenSSL (HAVE_OPENSSL), one more line: OpenSSL's AES-256-GCM
 * through EVP, keyed once and given a new nonce per frame, which is how the
 * tunnel seals its AES-256-GCM frames in a build with OpenSSL.
 */
#include <sodium.h>
#if HAVE_OPENSSL
#include <openssl/evp.h>
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *name, size_t frame, unsigned long long frames, double secs)
{
    printf("%-30s %6zu B  %7.2f Gbit/s\n", name, frame, (double)frames * (double)frame * 8 / secs / 1e9);
}

int main(int argc, char **argv)
{
    size_t frame = argc > 1 ? strtoul(argv[1], NULL, 10) : 16384;
    double secs = argc > 2 ? atof(argv[2]) : 2.0;
    if (sodium_init() < 0 || frame == 0 || frame > (1u << 24) || secs <= 0) {
        fprintf(stderr, "usage: aead_speed [FRAME_BYTES] [SECONDS]\n");
        return 2;
    }
    unsigned char *plain = malloc(frame), *sealed = malloc(frame + 64);
    if (!plain || !sealed)
        return 1;
    randombytes_buf(plain, frame);
    unsigned char key[32], nonce[32];
    randombytes_buf(key, sizeof key);
    randombytes_buf(nonce, sizeof nonce);
    /* The clock (a system call for CPU time) is read every 64 frames. */
    unsigned long long n, clen;
    double t0, t = 0;

    crypto_secretstream_xchacha20poly1305_state st;
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_init_push(&st, header, key);
    t0 = now_s();
    for (n = 0; (n % 64 || (t = now_s() - t0) < secs); n++) {
        unsigned char tag = (n + 1) % 1024 == 0 ? crypto_secretstream_xchacha20poly1305_TAG_REKEY
                                                : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
        crypto_secretstream_xchacha20poly1305_push(&st, sealed, &clen, plain, frame, NULL, 0, tag);
    }
    report("secretstream xchacha20poly1305", frame, n, t);

    t0 = now_s();
    for (n = 0; (n % 64 || (t = now_s() - t0) < secs); n++) {
        nonce[0] = (unsigned char)n;
        crypto_aead_chacha20poly1305_ietf_encrypt(sealed, &clen, plain, frame, NULL, 0, NULL, nonce,
                                                  key);
    }
    report("chacha20poly1305-ietf", frame, n, t);

    if (crypto_aead_aes256gcm_is_available()) {
        crypto_aead_aes256gcm_state gcm;
        crypto_aead_aes256gcm_beforenm(&gcm, key);
        t0 = now_s();
        for (n = 0; (n % 64 || (t = now_s() - t0) < secs); n++) {
            nonce[0] = (unsigned char)n;
            crypto_aead_aes256gcm_encrypt_afternm(sealed, &clen, plain, frame, NULL, 0, NULL, nonce,
                                                  &gcm);
        }
        report("aes256gcm", frame, n, t);
    } else {
        printf("%-30s %6zu B  not available on this CPU\n", "aes256gcm", frame);
    }

#if HAVE_OPENSSL
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx || EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, NULL) != 1 || frame > INT32_MAX)
        return 1;
    t0 = now_s();
    for (n = 0; (n % 64 || (t = now_s() - t0) < secs); n++) {
        int len;
        nonce[0] = (unsigned char)n;
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, NULL, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, sealed, &len, plain, (int)frame) != 1 ||
            EVP_EncryptFinal_ex(ctx, sealed + len, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, sealed + frame) != 1)
            return 1;
    }
    report("aes256gcm (OpenSSL EVP)", frame, n, t);
    EVP_CIPHER_CTX_free(ctx);
#endif
    free(plain);
    free(sealed);
    return 0;
}
