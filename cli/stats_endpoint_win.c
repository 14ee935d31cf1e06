/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h on Windows, for now: no endpoint.  The POSIX endpoint
 * (stats_endpoint.c) listens on a Unix-domain socket with 0600 permissions.
 * Windows 10 has AF_UNIX (afunix.h), but Wine 8, which runs the Windows
 * tests, has not: socket(AF_UNIX) fails there with WSAEAFNOSUPPORT (10047,
 * measured), and the per-user protection would need a security descriptor
 * on the socket's directory instead of a mode.  So a Windows endpoint would
 * be AF_UNIX with a TCP fallback on loopback (`--stats tcp:PORT` works the
 * same on both).  Until that is written, a server runs without an endpoint
 * (said at -v), and an explicit --stats is refused so that nobody relies on
 * one that is not there.
 */
#include "stats_endpoint.h"

#include "diag.h"

int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec)
{
    (void)e;
    (void)s;
    if (spec) {
        diag_error("--stats %s: the stats endpoint is not available on Windows yet", spec);
        return -1;
    }
    diag_info(1, "stats endpoint: not available on Windows yet");
    return 0;
}

void stats_endpoint_stop(void)
{
}
