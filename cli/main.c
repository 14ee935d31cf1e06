/* SPDX-License-Identifier: MIT */
/*
 * iocptool: the entry point.  main() finds the subcommand in the registry
 * (cmdtable.c) and hands it the rest of argv.
 */
#include <stdio.h>
#include <string.h>

#include "iocp.h"

#include "cmds.h"
#include "cmdtable.h"
#include "diag.h"
#include "keyfile.h"
#include "tls.h"
#include "stdfd.h"

const char *cli_command;

static void usage(FILE *out)
{
    fprintf(out, "usage: iocptool <command> [options] [arguments]\n"
                 "       iocptool --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < cmd_table_len; i++)
        fprintf(out, "  %-8s  %s\n", cmd_table[i].name, cmd_table[i].summary);
    fprintf(out, "\nRun 'iocptool <command> --help' for the options of a command.\n");
}

/*
 * The backends compiled in, best first, and the one an engine starts with:
 * the one IOCP_BACKEND names, else the best (the engine falls back from it at
 * start if it does not open on this system).  The engine is only made and
 * freed, never started.
 */
static void print_backends(void)
{
    printf("backends:");
    for (const char *const *name = iocp_backends(); *name; name++)
        printf(" %s", *name);
    struct iocp_engine_config cfg = {.workers = 1, .max_conns = 1};
    struct iocp_engine *e;
    int rc = iocp_engine_new(&e, &cfg);
    if (rc < 0) {
        const char *why = iocp_error_detail();
        printf(" (default: none, %s)\n", *why ? why : iocp_strerror(rc));
        return;
    }
    printf(" (default: %s)\n", iocp_engine_backend(e));
    iocp_engine_free(e);
}

static void version(void)
{
    printf("iocptool %s\n", IOCP_VERSION_STRING);
    print_backends();
    const char *crypto = keyfile_crypto();
    printf("encryption: %s\n", crypto ? crypto : "not built");
    const char *tls = tls_library();
    printf("tls: %s\n", tls ? tls : "not built");
    printf("platform: %s\n", IOCPTOOL_PLATFORM);
}

int main(int argc, char **argv)
{
    /* Before anything opens a descriptor that could take a standard one. */
    stdfd_reserve();
    if (argc < 2) {
        char names[128] = "";
        size_t n = 0;
        for (size_t i = 0; i < cmd_table_len && n < sizeof names; i++)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", i ? ", " : "",
                                  cmd_table[i].name);
        diag_error("a command is missing (%s)", names);
        diag_try_help(NULL);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
        version();
        return 0;
    }
    /* Hidden: the completion scripts, written from the option tables. */
    if (!strcmp(argv[1], "--completions")) {
        if (argc != 3) {
            diag_error("usage: iocptool --completions bash|powershell|table");
            return EXIT_USAGE;
        }
        return completions_write(stdout, argv[2]);
    }
    const struct cmd_entry *cmd = cmd_find(argv[1]);
    if (cmd) {
        if (!cmd->run) {
            diag_error("%s: not available in this build", argv[1]);
            return EXIT_RUNTIME;
        }
        cli_command = cmd->name;
        return cmd->run(argc - 1, argv + 1);
    }
    diag_error("%s: unknown command", argv[1]);
    diag_try_help(NULL);
    return EXIT_USAGE;
}
