/* SPDX-License-Identifier: MIT */
/*
 * The engine subcommands whose sources do not build on Windows yet: each
 * says so and exits 1, like a subcommand left out of a build.  A subcommand
 * joins the Windows build by adding its files to the WIN32 list in
 * cli/CMakeLists.txt together with IOCPTOOL_WIN_HAVE_<NAME>, which drops
 * its stand-in here.
 */
#include "cmds.h"
#include "diag.h"

int cmd_listen(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_relay(int argc, char **argv);

/* Unused while every subcommand builds on Windows; kept for the next one
 * that does not yet. */
__attribute__((unused)) static int unported(const char *name)
{
    diag_error("%s: not available on Windows yet", name);
    return EXIT_RUNTIME;
}

#ifndef IOCPTOOL_WIN_HAVE_LISTEN
int cmd_listen(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return unported("listen");
}
#endif

#ifndef IOCPTOOL_WIN_HAVE_CONNECT
int cmd_connect(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return unported("connect");
}
#endif

#ifndef IOCPTOOL_WIN_HAVE_RELAY
int cmd_relay(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    return unported("relay");
}
#endif
