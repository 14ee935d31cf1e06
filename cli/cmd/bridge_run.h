/* SPDX-License-Identifier: MIT */
/*
 * listen and connect on run.h: the hooks that make, start, interrupt, end
 * and free the bridge of stdin/stdout (bridge.h) within the one sequence of
 * every engine subcommand.
 */
#ifndef IOCPTOOL_BRIDGE_RUN_H
#define IOCPTOOL_BRIDGE_RUN_H

#include "iocp.h"

#include "bridge.h"
#include "run.h"

struct bridge_run {
    const struct bridge_config *cfg;
    /* connect: where to (host, port, family, source, time-out; the handler,
     * worker and data are filled in), named `target` in messages.  listen:
     * all zero, and the run has a server. */
    struct iocp_connect_config connect;
    const char *target;
    struct bridge *b; /* made by the run */
};

/* Fill in spec's hooks (and arg) for br. */
void bridge_run_hooks(struct run_spec *spec, struct bridge_run *br);

#endif /* IOCPTOOL_BRIDGE_RUN_H */
