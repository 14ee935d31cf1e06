/* SPDX-License-Identifier: MIT */
/*
 * bridge_run.h: the bridge's part in run.h's sequence.
 */
#include "bridge_run.h"

#include "capture.h"
#include "diag.h"

static int prepare(void *arg, struct iocp_engine *e, struct iocp_server_config *server)
{
    struct bridge_run *br = arg;
    if (capture_start(br->cfg->cmd) < 0)
        return -1;
    if (bridge_new(&br->b, e, br->cfg) < 0) {
        diag_error("%s: %s", br->cfg->cmd, iocp_strerror(IOCP_ENOMEM));
        return -1;
    }
    if (server)
        server->data = br->b;
    return 0;
}

static int begin(void *arg, struct iocp_engine *e, struct iocp_server *s)
{
    struct bridge_run *br = arg;
    if (s)
        bridge_set_server(br->b, s);
    else
        bridge_connecting(br->b, br->target);
    if (bridge_start(br->b) < 0)
        return -1;
    if (s)
        return 0;
    br->connect.worker = 0;
    br->connect.handler = &bridge_client_handler;
    br->connect.data = br->b;
    int rc = iocp_connect(e, &br->connect);
    if (rc < 0) {
        const char *detail = iocp_error_detail();
        diag_error("%s: %s: %s", br->cfg->cmd, br->target, *detail ? detail : iocp_strerror(rc));
        return -1;
    }
    return 0;
}

static int interrupt(void *arg, int sig)
{
    struct bridge_run *br = arg;
    return bridge_interrupt(br->b, sig);
}

static int end(void *arg)
{
    struct bridge_run *br = arg;
    return bridge_end(br->b);
}

static void release(void *arg)
{
    struct bridge_run *br = arg;
    bridge_free(br->b);
    capture_finish();
}

void bridge_run_hooks(struct run_spec *spec, struct bridge_run *br)
{
    spec->arg = br;
    spec->prepare = prepare;
    spec->begin = begin;
    spec->interrupt = interrupt;
    spec->end = end;
    spec->release = release;
}
