/* SPDX-License-Identifier: MIT */
/*
 * The subcommands, and what they share.
 */
#ifndef IOCPTOOL_CMDS_H
#define IOCPTOOL_CMDS_H

#include "iocp.h"

int cmd_echo(int argc, char **argv);
int cmd_listen(int argc, char **argv);
int cmd_connect(int argc, char **argv);
int cmd_relay(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_keygen(int argc, char **argv);

/* The name of the subcommand that runs ("echo", "relay"...), for reports. */
extern const char *cli_command;

/*
 * cli_run_server(cmd, ecfg, scfg, ready):
 * Start an engine and a server, print "listening on ADDR PORT" on stderr,
 * run until a stop signal or stop_wake(), then stop safely.  ready (may be
 * NULL) runs once the server listens, before the listening line is printed,
 * so that what it starts (the stats endpoint, stopped again before the
 * server) is up when scripts see that line; when it returns non-zero, the
 * server stops at once with status 1.  Returns the exit status.
 */
int cli_run_server(const char *cmd, const struct iocp_engine_config *ecfg,
                   const struct iocp_server_config *scfg,
                   int (*ready)(struct iocp_engine *e, struct iocp_server *s));

/* Print the listening line: "listening on ADDR PORT". */
void cli_print_listening(struct iocp_server *s);

#endif /* IOCPTOOL_CMDS_H */
