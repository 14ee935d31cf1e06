/* SPDX-License-Identifier: MIT */
/*
 * keyfile.h in a build without libsodium: there is no encryption, so there
 * is no key to make or load, and saying so is a usage error (status 2), as
 * docs/PROTOCOL.md promises.
 */
#include "keyfile.h"

#include <string.h>

#include "diag.h"

#define NOT_BUILT "encryption is not built into this iocptool (it needs libsodium)"

const char *keyfile_crypto(void)
{
    return NULL;
}

void keyfile_wipe(void *p, size_t len)
{
    /* Nothing secret ever reaches this build; a plain clear will do. */
    memset(p, 0, len);
}

int keyfile_generate(const char *cmd, char line[KEYFILE_LINE_MAX])
{
    (void)line;
    diag_error("%s: %s", cmd, NOT_BUILT);
    return EXIT_USAGE;
}

const char *keyfile_parse(const char *text, size_t len, uint8_t key[KEYFILE_KEY_BYTES])
{
    (void)text;
    (void)len;
    (void)key;
    return NOT_BUILT;
}

int keyfile_load(const char *cmd, const char *path, uint8_t key[KEYFILE_KEY_BYTES])
{
    (void)path;
    (void)key;
    diag_error("%s: %s", cmd, NOT_BUILT);
    return EXIT_USAGE;
}
