/* SPDX-License-Identifier: MIT */
/*
 * The engine a library suite runs its tests on: started with the suite's
 * configuration on the backend IOCP_BACKEND names (when it names one: a
 * suite registered per backend must not pass on another), and at the end
 * stopped with its server, audited and freed; a leak the audit finds fails
 * the test, after everything is freed.
 */
#ifndef IOCP_ENGINE_FIXTURE_H
#define IOCP_ENGINE_FIXTURE_H

#include <stdlib.h>

#include <criterion/criterion.h>

#include "core.h"

/* *engine is set before it starts, so the fixture's stop frees it even when
 * starting fails. */
static inline void ef_start(struct iocp_engine **engine, const struct iocp_engine_config *cfg)
{
    cr_assert_eq(iocp_engine_new(engine, cfg), 0);
    int rc = iocp_engine_start(*engine);
    cr_assert_eq(rc, 0, "start: %s", iocp_strerror(rc));
    const char *want = getenv("IOCP_BACKEND");
    if (want)
        cr_assert_str_eq(iocp_engine_backend(*engine), want, "the backend asked for must run");
}

/* Stops the server (when server is not NULL and one was made) and the
 * engine, frees both and fails if the engine's books do not balance. */
static inline void ef_stop_and_audit(struct iocp_engine **engine, struct iocp_server **server)
{
    if (!*engine)
        return;
    if (server && *server)
        iocp_server_stop(*server);
    iocp_engine_stop(*engine);
    char report[512];
    int bad = iocp_engine_audit(*engine, report, sizeof report);
    if (server) {
        iocp_server_free(*server);
        *server = NULL;
    }
    iocp_engine_free(*engine);
    *engine = NULL;
    cr_assert_eq(bad, 0, "audit: %s", report);
}

#endif
