/* SPDX-License-Identifier: MIT */
/*
 * The engine: a completion port and the worker threads that serve it.
 *
 * On Linux each worker owns a port (an io_uring ring or an epoll set) and the
 * connections sharded to it; on Windows every worker waits on one port.  A
 * connection's callbacks always run on its worker, one at a time, so code in
 * a callback needs no lock for that connection.
 */
#ifndef IOCP_ENGINE_H
#define IOCP_ENGINE_H

#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_engine;

/* Log levels of the optional log hook. */
enum iocp_log_level { IOCP_LOG_ERROR = 0, IOCP_LOG_WARN = 1, IOCP_LOG_INFO = 2, IOCP_LOG_DEBUG = 3 };

typedef void (*iocp_log_cb)(void *arg, int level, const char *message);

/* The most workers an engine takes. */
#define IOCP_MAX_WORKERS 65536u

struct iocp_engine_config {
    /* Worker threads, 1 to IOCP_MAX_WORKERS; 0 reads IOCP_WORKERS from the
     * environment, and without it means one per CPU this process may run
     * on: the CPUs of its affinity mask, lowered to its cgroup v2 CPU quota
     * rounded up (Linux), or of its process affinity mask (Windows).  The
     * log hook hears how a default was reached, at INFO ("4 workers: the
     * affinity mask allows 4 CPUs"). */
    unsigned workers;
    /* "uring", "epoll" or "iocp"; NULL reads IOCP_BACKEND from the
     * environment, and without it picks the best backend that opens here.  A
     * backend that fails to open falls back to the next with one INFO line to
     * the log hook; a backend named explicitly that does not exist in this
     * build is IOCP_ENOSYS. */
    const char *backend;
    /* Most connections online at once (all servers and clients together);
     * 0 means 65,536. */
    uint32_t max_conns;
    /* Bytes per provided receive buffer and their number per worker; 0 for
     * the defaults (16 KiB, 256). */
    unsigned recv_buffer_size;
    unsigned recv_buffers;
    /* Where the library's few diagnostics go; NULL drops them. */
    iocp_log_cb log;
    void *log_arg;
};

/*
 * iocp_engine_new(out, cfg):
 * Allocate an engine (not started).  cfg may be NULL for the defaults.  0, or
 * IOCP_EINVAL / IOCP_ENOMEM; *out is set only on success.
 *
 * A macro: it passes the size of the struct the program was compiled with
 * to iocp_engine_new_sized(), so that a config struct can grow at its end
 * without an ABI break: a program built with the smaller struct runs with a
 * library that has the larger one, which reads the fields both know and
 * takes the defaults (zeros) for the others.  Such a release keeps the
 * soname; until 1.0 a minor release may still change the ABI otherwise and
 * then changes the soname (libiocp.so.0.MINOR, see README).  The server,
 * client and pipe functions that take a config struct do the same.
 */
#define iocp_engine_new(out, cfg) \
    iocp_engine_new_sized((out), (cfg), sizeof(struct iocp_engine_config))
IOCP_EXTERN int iocp_engine_new_sized(struct iocp_engine **out,
                                      const struct iocp_engine_config *cfg, size_t cfg_size);

/*
 * iocp_engine_start(e):
 * Open the ports and start the workers.  An engine may be started again
 * after it stopped.  0, IOCP_EALREADY if it runs, or the error that kept a
 * port or thread from starting (nothing is left running then).
 */
IOCP_EXTERN int iocp_engine_start(struct iocp_engine *e);

/*
 * iocp_engine_stop(e):
 * Stop safely: every server stops accepting, every connection is closed
 * (abortively: a stop is not a drain), every pending request completes, and
 * every worker leaves.  Called from outside the engine it returns once all
 * workers have left; called from a callback (on a worker) it only requests
 * the stop and returns at once: the thread that waits in iocp_engine_wait()
 * sees the end.  Stopping an engine that is not running returns 0.  Returns
 * what iocp_engine_wait() returns.
 */
IOCP_EXTERN int iocp_engine_stop(struct iocp_engine *e);

/*
 * iocp_engine_wait(e):
 * Block until the engine has stopped (by iocp_engine_stop from anywhere) and
 * every worker has left.  Returns 0, or IOCP_EBUSY when it is
 * called from one of the engine's own workers.  A worker whose port fails
 * for good (its descriptor closed or replaced behind the library's back)
 * leaves instead of retrying, says which and why through the log hook, and
 * stops the engine: the run's result is then that error (negative), from
 * here and from iocp_engine_stop, until the next start.  What that worker
 * owned (its connections, its share of the servers) is left behind, and
 * iocp_engine_audit() counts it.
 */
IOCP_EXTERN int iocp_engine_wait(struct iocp_engine *e);

/* True between a successful start and the end of the stop. */
IOCP_EXTERN bool iocp_engine_running(const struct iocp_engine *e);

/* Free a stopped engine (stopping it first if it runs).  NULL does nothing. */
IOCP_EXTERN void iocp_engine_free(struct iocp_engine *e);

/* The backend in use ("uring", "epoll", "iocp"), or the one that will be
 * tried first when the engine has not started. */
IOCP_EXTERN const char *iocp_engine_backend(const struct iocp_engine *e);

/* The number of workers. */
IOCP_EXTERN unsigned iocp_engine_workers(const struct iocp_engine *e);

/*
 * A task to run on a worker.  The caller owns the struct and keeps it alive
 * until fn has run; nothing is allocated to post it.
 */
struct iocp_task {
    void (*fn)(struct iocp_task *task);
    void *arg;
};

/*
 * iocp_engine_post(e, worker, task):
 * Run task->fn on the given worker (worker % workers).  Safe from any thread.
 * 0, or IOCP_EAGAIN when the worker's queue is full / IOCP_ESTATE when the
 * engine is not running: then fn will not run and the caller still owns task.
 */
IOCP_EXTERN int iocp_engine_post(struct iocp_engine *e, unsigned worker, struct iocp_task *task);

/* The names of the backends compiled into this build, best first, NULL-ended. */
IOCP_EXTERN const char *const *iocp_backends(void);

/* A detail for the last call on this thread that failed with IOCP_EINVAL or a
 * configuration error ("on_data callback is required"), or "". */
IOCP_EXTERN const char *iocp_error_detail(void);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_ENGINE_H */
