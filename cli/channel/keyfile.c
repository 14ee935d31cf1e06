/* SPDX-License-Identifier: MIT */
/*
 * keyfile.h: the text format of a key file, with libsodium doing the
 * randomness, the base64 and the check (docs/PROTOCOL.md, "The key file").
 * Every buffer that held key material is erased before it is released.
 */
#include "keyfile.h"

#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "diag.h"

#define RAW_BYTES   (KEYFILE_KEY_BYTES + 4) /* the key, then its check */
#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL_NO_PADDING
#define B64_CHARS   48 /* 36 bytes, no padding needed */

const char *keyfile_crypto(void)
{
    static char text[40];
    if (!text[0])
        snprintf(text, sizeof text, "libsodium %s", sodium_version_string());
    return text;
}

void keyfile_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}

/* The first 4 bytes of BLAKE2b-256(prefix || key): catches damage, hides
 * nothing (anyone with the key can compute it). */
static void check_of(uint8_t check[4], const uint8_t key[KEYFILE_KEY_BYTES])
{
    crypto_generichash_state st;
    uint8_t h[32];
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)KEYFILE_PREFIX, strlen(KEYFILE_PREFIX));
    crypto_generichash_update(&st, key, KEYFILE_KEY_BYTES);
    crypto_generichash_final(&st, h, sizeof h);
    memcpy(check, h, 4);
    sodium_memzero(&st, sizeof st);
}

int keyfile_generate(const char *cmd, char line[KEYFILE_LINE_MAX])
{
    if (sodium_init() < 0) {
        diag_error("%s: libsodium failed to initialise", cmd);
        return EXIT_RUNTIME;
    }
    uint8_t raw[RAW_BYTES];
    randombytes_buf(raw, KEYFILE_KEY_BYTES);
    check_of(raw + KEYFILE_KEY_BYTES, raw);
    size_t plen = strlen(KEYFILE_PREFIX);
    memcpy(line, KEYFILE_PREFIX, plen);
    sodium_bin2base64(line + plen, KEYFILE_LINE_MAX - plen, raw, sizeof raw, B64_VARIANT);
    strcat(line, "\n");
    sodium_memzero(raw, sizeof raw);
    return 0;
}

const char *keyfile_parse(const char *text, size_t len, uint8_t key[KEYFILE_KEY_BYTES])
{
    size_t plen = strlen(KEYFILE_PREFIX);
    if (len < plen || memcmp(text, KEYFILE_PREFIX, plen) != 0)
        return "not an iocptool key file (it must start with " KEYFILE_PREFIX ")";
    const char *b64 = text + plen;
    size_t n = len - plen;
    /* One line end is allowed, LF or CR LF (a file edited on Windows). */
    if (n > 0 && b64[n - 1] == '\n') {
        n--;
        if (n > 0 && b64[n - 1] == '\r')
            n--;
    }
    if (n < B64_CHARS)
        return "truncated key file: the key is too short";
    if (n > B64_CHARS)
        return "damaged key file: extra characters after the key";
    uint8_t raw[RAW_BYTES], check[4];
    size_t rawlen = 0;
    const char *end = NULL;
    const char *why = NULL;
    if (sodium_base642bin(raw, sizeof raw, b64, n, NULL, &rawlen, &end, B64_VARIANT) != 0 ||
        end != b64 + n || rawlen != sizeof raw) {
        why = "damaged key file: a character outside the base64 alphabet";
        goto out;
    }
    check_of(check, raw);
    if (sodium_memcmp(check, raw + KEYFILE_KEY_BYTES, sizeof check) != 0) {
        why = "damaged key file: checksum mismatch";
        goto out;
    }
    memcpy(key, raw, KEYFILE_KEY_BYTES);
out:
    sodium_memzero(raw, sizeof raw);
    return why;
}

int keyfile_load(const char *cmd, const char *path, uint8_t key[KEYFILE_KEY_BYTES])
{
    char buf[KEYFILE_READ_MAX];
    size_t len = 0;
    int r = keyfile_read(cmd, path, buf, sizeof buf, &len);
    if (r != 0)
        goto out;
    const char *why = keyfile_parse(buf, len, key);
    if (why) {
        diag_error("%s: %s: %s", cmd, path, why);
        r = EXIT_USAGE;
    }
out:
    sodium_memzero(buf, sizeof buf);
    return r;
}
