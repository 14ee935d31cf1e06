/* SPDX-License-Identifier: MIT */
/*
 * run.h: the one start/run/stop sequence of the engine subcommands, the
 * listening line, and cli_run_server() for the plain servers (echo, relay).
 */
#include "run.h"

#include <stdio.h>
#include <string.h>

#include "cmds.h"
#include "diag.h"
#include "stats_endpoint.h"
#include "stop.h"

void cli_print_listening(struct iocp_server *s)
{
    char addr[128];
    iocp_server_address(s, addr, sizeof addr);
    if (strncmp(addr, "unix:", 5) == 0) {
        /* A Unix-domain socket has no port: "listening on unix:PATH". */
        fprintf(stderr, "listening on %s\n", addr);
        fflush(stderr);
        return;
    }
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

/*
 * Everything from the engine's start to the stop signal or the wake-up.
 * Returns the signal number, STOP_WOKEN, or -1 when the run could not get
 * going (the reason is printed).
 */
static int start_and_wait(const struct run_spec *spec, struct iocp_engine *e,
                          struct iocp_server **s)
{
    int rc = iocp_engine_start(e);
    if (rc < 0) {
        diag_error("%s: cannot start the engine: %s", spec->cmd, iocp_strerror(rc));
        return -1;
    }
    diag_info(1, "%s: backend %s, %u worker%s", spec->cmd, iocp_engine_backend(e),
              iocp_engine_workers(e), iocp_engine_workers(e) == 1 ? "" : "s");
    struct iocp_server_config scfg;
    if (spec->server)
        scfg = *spec->server;
    if (spec->prepare && spec->prepare(spec->arg, e, spec->server ? &scfg : NULL) < 0)
        return -1;
    if (spec->server && (rc = iocp_server_new(s, e, &scfg)) < 0) {
        diag_listen_error(spec->cmd, scfg.host, scfg.port, rc);
        return -1;
    }
    if (spec->begin && spec->begin(spec->arg, e, *s) < 0)
        return -1;
    if (*s) {
        if ((rc = iocp_server_start(*s)) < 0) {
            diag_listen_error(spec->cmd, scfg.host, scfg.port, rc);
            return -1;
        }
        /* Before the listening line, so that a script that reads it finds
         * the endpoint (and whatever ready() starts) in place. */
        if (spec->stats && stats_endpoint_start(e, *s, spec->stats_spec) < 0)
            return -1;
        if (spec->ready && spec->ready(e, *s) < 0)
            return -1;
        cli_print_listening(*s);
    }
    return stop_wait(-1);
}

/* A stop signal came: let the subcommand end in order, within bounds. */
static void end_in_order(const struct run_spec *spec, int sig)
{
    diag_info(1, "%s: signal %d received, stopping", spec->cmd, sig);
    if (!spec->interrupt || spec->interrupt(spec->arg, sig) < 0)
        return;
    int r = stop_wait(spec->drain_ms ? (int)spec->drain_ms : RUN_DRAIN_MS);
    if (r == STOP_TIMEOUT && spec->drain_ms)
        diag_error("%s: drain time-out (%.3g s): closing the connections left", spec->cmd,
                   spec->drain_ms / 1000.0);
    else if (r == STOP_TIMEOUT)
        diag_error("%s: stopping: what was received could not all be written within %d s",
                   spec->cmd, RUN_DRAIN_MS / 1000);
    else if (r != STOP_WOKEN)
        diag_error("%s: signal %d: stopping at once", spec->cmd, r);
}

int run_engine(const struct run_spec *spec)
{
    struct iocp_engine *e = NULL;
    struct iocp_server *s = NULL;
    int status = EXIT_RUNTIME;

    if (stop_prepare() < 0) {
        diag_error("%s: cannot set up the stop signals", spec->cmd);
        goto release;
    }
    int rc = iocp_engine_new(&e, spec->engine);
    if (rc < 0) {
        diag_error("%s: %s", spec->cmd,
                   *iocp_error_detail() ? iocp_error_detail() : iocp_strerror(rc));
        status = rc == IOCP_EINVAL || rc == IOCP_ENOSYS ? EXIT_USAGE : EXIT_RUNTIME;
        goto release;
    }
    int sig = start_and_wait(spec, e, &s);
    if (sig > 0)
        end_in_order(spec, sig);

    stats_endpoint_stop();
    if (s)
        iocp_server_stop(s);
    iocp_engine_stop(e);
    if (sig >= 0) {
        status = spec->end ? spec->end(spec->arg) : EXIT_OK;
        if (sig > 0)
            status = spec->signal_is_normal_end ? EXIT_OK : 128 + sig;
    }
    if (diag_verbosity >= 1) {
        char report[512];
        if (iocp_engine_audit(e, report, sizeof report) > 0)
            diag_error("%s: accounting mismatch at stop: %s", spec->cmd, report);
    }
release:
    if (spec->release)
        spec->release(spec->arg);
    iocp_server_free(s);
    iocp_engine_free(e);
    return status;
}

int cli_run_server(const char *cmd, const struct iocp_engine_config *ecfg,
                   const struct iocp_server_config *scfg,
                   int (*ready)(struct iocp_engine *e, struct iocp_server *s))
{
    struct run_spec spec = {
        .cmd = cmd,
        .engine = ecfg,
        .server = scfg,
        .signal_is_normal_end = true,
        .ready = ready,
    };
    return run_engine(&spec);
}
