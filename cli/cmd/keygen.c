/* SPDX-License-Identifier: MIT */
/*
 * iocptool keygen: make the pre-shared key that --key reads, or check a key
 * file.  It needs no engine and no network, so it is the same on every
 * platform; only the file handling differs (keyfile_{posix,win}.c).
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "opts.h"

const struct option keygen_options[] = {
    {"force", no_argument, NULL, 'f'},
    {"check", no_argument, NULL, 'c'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static void keygen_usage(FILE *out)
{
    fprintf(out, "usage: iocptool keygen [-f] [FILE]\n"
                 "       iocptool keygen --check FILE\n"
                 "\n"
                 "Make a new random 32-byte key for --key and write it to FILE, created\n"
                 "readable by its owner only (mode 0600), or to stdout without FILE.  The\n"
                 "key is one line: \"" KEYFILE_PREFIX "\" and 48 base64 characters that\n"
                 "carry the key and a checksum (docs/PROTOCOL.md).  Both ends of a\n"
                 "connection use the same key file; copy it over a secure channel.\n"
                 "\n"
                 "  -f, --force     replace FILE if it exists\n"
                 "  -c, --check     check that FILE holds a key --key accepts (format,\n"
                 "                  checksum, permissions) and exit 0, or say why not\n"
                 "  -v, --verbose   say what was done\n"
                 "  -h, --help      this help\n"
                 "\n"
                 "Exit status: 0 done, 1 the file could not be written, 2 usage error,\n"
                 "existing FILE, bad key file, or encryption not built in.\n");
}

int cmd_keygen(int argc, char **argv)
{
    bool force = false, check = false;
    int opt;
    struct opt_parser op;
    opt_init(&op, "keygen", argc, argv, "fcvh", keygen_options);
    while ((opt = opt_next(&op)) != -1) {
        switch (opt) {
        case 'f':
            force = true;
            break;
        case 'c':
            check = true;
            break;
        case 'v':
            diag_verbosity++;
            break;
        case 'h':
            keygen_usage(stdout);
            return EXIT_OK;
        default:
            return EXIT_USAGE;
        }
    }
    const char *path = optind < argc ? argv[optind] : NULL;
    int bad = 0;
    if (argc - optind > 1) {
        diag_error("keygen: one FILE at most");
        bad++;
    }
    if (check && !path) {
        diag_error("keygen: --check needs a FILE");
        bad++;
    }
    if (check && force) {
        diag_error("keygen: --check and --force contradict each other");
        bad++;
    }
    if (force && !path) {
        diag_error("keygen: --force needs a FILE");
        bad++;
    }
    if (bad) {
        diag_try_help("keygen");
        return EXIT_USAGE;
    }

    if (check) {
        uint8_t key[KEYFILE_KEY_BYTES];
        int r = keyfile_load("keygen", path, key);
        keyfile_wipe(key, sizeof key);
        if (r == 0)
            diag_info(1, "keygen: %s: a valid key", path);
        return r;
    }

    char line[KEYFILE_LINE_MAX];
    int r = keyfile_generate("keygen", line);
    if (r != 0)
        return r;
    if (path) {
        r = keyfile_write("keygen", path, line, strlen(line), force);
        if (r == 0)
            diag_info(1, "keygen: wrote a new key to %s", path);
    } else if (fputs(line, stdout) == EOF || fflush(stdout) == EOF) {
        diag_error("keygen: stdout: write failed");
        r = EXIT_RUNTIME;
    }
    keyfile_wipe(line, sizeof line);
    return r;
}
