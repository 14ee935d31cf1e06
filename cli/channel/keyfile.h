/* SPDX-License-Identifier: MIT */
/*
 * The pre-shared key file of --key and `iocptool keygen` (its format is in
 * docs/PROTOCOL.md, "The key file"): one line, "iocptool-key-v1:" and the
 * base64 of the 32-byte key followed by a 4-byte check, so that a truncated
 * or mistyped file is refused here instead of failing as a wrong key at the
 * peer.  A key is only ever read from a file that is private to its owner,
 * never from the command line.
 *
 * keyfile.c has the format (it needs libsodium), keyfile_none.c stands in
 * for it in a build without libsodium, and keyfile_{posix,win}.c create and
 * read the files.  Every function that fails prints its reason as
 * "iocptool: CMD: PATH: why" and returns the exit status to use.
 */
#ifndef IOCPTOOL_KEYFILE_H
#define IOCPTOOL_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYFILE_KEY_BYTES 32
#define KEYFILE_PREFIX    "iocptool-key-v1:"
/* The line: the prefix (16), base64 of 36 bytes (48), "\n", NUL. */
#define KEYFILE_LINE_MAX  66
/* A key file is read up to this size; a bigger one is not a key file. */
#define KEYFILE_READ_MAX  256

/* "libsodium 1.0.18", or NULL when encryption is not built in. */
const char *keyfile_crypto(void);

/*
 * keyfile_generate(cmd, line):
 * A new random key, as its line of text (NUL-terminated, ending in "\n").
 * 0, or EXIT_USAGE when encryption is not built in, EXIT_RUNTIME when the
 * random generator cannot start.  The caller erases line after use.
 */
int keyfile_generate(const char *cmd, char line[KEYFILE_LINE_MAX]);

/*
 * keyfile_load(cmd, path, key):
 * Read the key in path: a private regular file (on POSIX: no permission for
 * group or others, owned by the caller or root) holding one valid key line.
 * 0, or EXIT_USAGE with the reason printed (missing, unprotected, truncated
 * or damaged file, or encryption not built in).  key is valid on 0 only;
 * the caller erases it after use.
 */
int keyfile_load(const char *cmd, const char *path, uint8_t key[KEYFILE_KEY_BYTES]);

/*
 * keyfile_parse(text, len, key):
 * Check and decode the text of a key file.  NULL, or the reason it is not a
 * key ("checksum mismatch"...).  Prints nothing.
 */
const char *keyfile_parse(const char *text, size_t len, uint8_t key[KEYFILE_KEY_BYTES]);

/* Erase a buffer in a way the compiler cannot drop. */
void keyfile_wipe(void *p, size_t len);

/*
 * keyfile_write(cmd, path, text, len, force):
 * Create path readable and writable by its owner only (mode 0600 on POSIX,
 * the inherited ACL on Windows) and write text into it.  An existing path
 * is refused (EXIT_USAGE) unless force, which removes it first; the file is
 * always created anew, never opened through a symbolic link.  0, EXIT_USAGE
 * or EXIT_RUNTIME (an I/O error; no partial file is left).
 */
int keyfile_write(const char *cmd, const char *path, const char *text, size_t len, bool force);

/*
 * keyfile_read(cmd, path, buf, cap, len):
 * Read a key file whole (at most cap - 1 bytes) after checking it is
 * private (see keyfile_load).  0, or EXIT_USAGE with the reason printed.
 */
int keyfile_read(const char *cmd, const char *path, char *buf, size_t cap, size_t *len);

#endif /* IOCPTOOL_KEYFILE_H */
