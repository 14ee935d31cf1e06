/* SPDX-License-Identifier: MIT */
/*
 * The life of a server subcommand: engine up, server up, the listening line,
 * wait for the end, safe stop, and the accounting check at -v.
 */
#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "diag.h"
#include "stats_endpoint.h"
#include "stop.h"

void cli_print_listening(struct iocp_server *s)
{
    char addr[80];
    iocp_server_address(s, addr, sizeof addr);
    /* "ADDR PORT": split the formatted "host:port" at its last colon and
     * drop IPv6 brackets, so scripts read two plain fields. */
    char *colon = strrchr(addr, ':');
    if (colon)
        *colon = '\0';
    char *host = addr;
    if (host[0] == '[') {
        host++;
        char *close = strchr(host, ']');
        if (close)
            *close = '\0';
    }
    fprintf(stderr, "listening on %s %u\n", host, iocp_server_port(s));
    fflush(stderr);
}

int cli_run_server(const char *cmd, const struct iocp_engine_config *ecfg,
                   const struct iocp_server_config *scfg,
                   int (*ready)(struct iocp_engine *e, struct iocp_server *s))
{
    struct iocp_engine *e = NULL;
    struct iocp_server *s = NULL;
    int status = EXIT_RUNTIME;

    stop_prepare();
    int rc = iocp_engine_new(&e, ecfg);
    if (rc < 0) {
        diag_error("%s: %s", cmd, *iocp_error_detail() ? iocp_error_detail() : iocp_strerror(rc));
        return rc == IOCP_EINVAL || rc == IOCP_ENOSYS ? EXIT_USAGE : EXIT_RUNTIME;
    }
    rc = iocp_engine_start(e);
    if (rc < 0) {
        diag_error("%s: cannot start the engine: %s", cmd, iocp_strerror(rc));
        goto out;
    }
    diag_info(1, "%s: backend %s, %u workers", cmd, iocp_engine_backend(e),
              iocp_engine_workers(e));
    rc = iocp_server_new(&s, e, scfg);
    if (rc == 0)
        rc = iocp_server_start(s);
    if (rc < 0) {
        diag_listen_error(cmd, scfg->host, scfg->port, rc);
        goto out;
    }
    /* The ready hook first: what it starts (the stats endpoint) is up by
     * the time a script reads the listening line. */
    if (ready && ready(e, s) != 0)
        goto out;
    cli_print_listening(s);

    int sig = stop_wait();
    diag_info(1, "%s: %s, stopping", cmd, sig ? "signal received" : "done");
    status = EXIT_OK;

out:
    stats_endpoint_stop();
    if (s)
        iocp_server_stop(s);
    iocp_engine_stop(e);
    if (diag_verbosity >= 1) {
        char report[512];
        if (iocp_engine_audit(e, report, sizeof report) > 0)
            diag_error("%s: accounting mismatch at stop: %s", cmd, report);
    }
    iocp_server_free(s);
    iocp_engine_free(e);
    return status;
}
