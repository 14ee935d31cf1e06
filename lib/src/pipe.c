/* SPDX-License-Identifier: MIT */
/*
 * Streams over pipes, terminals and files (pipe.h).  The connection code
 * does the work; this file only hops onto the chosen worker and sets the
 * connection up with its descriptor.
 */
#include "core.h"

#include <stdlib.h>

struct pipe_job {
    struct iocp_task task;
    struct iocp_worker *w;
    struct iocp_pipe_config cfg;
};

static void on_pipe_task(struct iocp_task *task)
{
    struct pipe_job *job = iocp_container_of(task, struct pipe_job, task);
    struct iocp_pipe_config cfg = job->cfg;
    struct iocp_worker *w = job->w;
    free(job);

    struct iocp_conn *c = iocp__conn_new(w, cfg.handler, cfg.data, cfg.send_low, cfg.send_high);
    if (!c) {
        iocp__handle_close(cfg.handle);
        return;
    }
    c->flags |= IOCP_CONN_STREAM | (cfg.readable ? 0 : IOCP_CONN_WRITE_ONLY);
    iocp__conn_enter(c);
    int rc = w->stopping ? IOCP_ECANCELED : iocp__conn_bind(c, cfg.handle);
    if (rc == 0)
        rc = iocp__conn_establish(c);
    if (rc < 0) {
        /* The user handed us the descriptor and expects to hear back. */
        if (c->h.sock == IOCP_INVALID_SOCKET)
            c->h.sock = cfg.handle;
        iocp__conn_fail(c, rc);
    }
    iocp__conn_leave(c);
}

int iocp_pipe_open_sized(struct iocp_engine *e, const struct iocp_pipe_config *user, size_t user_size)
{
    struct iocp_pipe_config copy;
    const struct iocp_pipe_config *cfg = iocp__config_copy(&copy, sizeof copy, user, user_size);
    if (!e || !cfg || cfg->handle == IOCP_INVALID_SOCKET)
        return IOCP_EINVAL;
    if (!cfg->handler || !cfg->handler->on_data || !cfg->handler->on_close) {
        iocp__set_error_detail("the %s callback is required",
                               !cfg->handler || !cfg->handler->on_data ? "on_data" : "on_close");
        return IOCP_EINVAL;
    }
    if (atomic_load(&e->state) != IOCP_ENGINE_RUNNING)
        return IOCP_ESTATE;
    struct pipe_job *job = calloc(1, sizeof *job);
    if (!job)
        return IOCP_ENOMEM;
    unsigned worker = cfg->worker >= 0 ? (unsigned)cfg->worker % e->nworkers
                                       : atomic_fetch_add(&e->round_robin, 1) % e->nworkers;
    job->w = &e->workers[worker];
    job->cfg = *cfg;
    job->task.fn = on_pipe_task;
    int rc = iocp__post(e, worker, IOCP_PKT_TASK, (uint64_t)(uintptr_t)&job->task);
    if (rc < 0)
        free(job);
    return rc;
}
