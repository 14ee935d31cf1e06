/* SPDX-License-Identifier: MIT */
/*
 * iocptool: the entry point.  A table of subcommands, each with a one-line
 * summary; main() finds the subcommand and hands it the rest of argv.
 */
#include <stdio.h>
#include <string.h>

#include "iocp.h"

#include "cmds.h"
#include "diag.h"
#include "keyfile.h"

#ifdef IOCPTOOL_HAVE_ENGINE
#define ENGINE_CMD(fn) fn
#else
#define ENGINE_CMD(fn) NULL
#endif

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

const char *cli_command;

static const struct subcommand subcommands[] = {
    {"listen", ENGINE_CMD(cmd_listen), "accept connections and bridge them to stdin/stdout"},
    {"connect", ENGINE_CMD(cmd_connect), "connect and bridge stdin/stdout to the socket"},
    {"echo", ENGINE_CMD(cmd_echo), "run an echo server"},
    {"relay", ENGINE_CMD(cmd_relay), "forward every accepted connection to a target"},
    {"stats", ENGINE_CMD(cmd_stats), "show the live counters of a running iocptool"},
    {"keygen", cmd_keygen, "make a pre-shared key for --key"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: iocptool <command> [options] [arguments]\n"
                 "       iocptool --help | --version\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        fprintf(out, "  %-8s  %s\n", subcommands[i].name, subcommands[i].summary);
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
    printf("platform: %s\n", IOCPTOOL_PLATFORM);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
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
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(argv[1], subcommands[i].name) != 0)
            continue;
        if (!subcommands[i].run) {
            diag_error("%s: not available in this build", argv[1]);
            return EXIT_RUNTIME;
        }
        cli_command = subcommands[i].name;
        return subcommands[i].run(argc - 1, argv + 1);
    }
    diag_error("%s: unknown command", argv[1]);
    usage(stderr);
    return EXIT_USAGE;
}
