/* SPDX-License-Identifier: MIT */
/*
 * Streams that are not sockets: pipes, terminals and files, such as a
 * program's standard input and output, served by the engine as completions
 * like any connection.  A stream is an iocp_conn: on_data delivers what is
 * read, iocp_conn_send() queues what is written (with the same watermarks
 * and back-pressure), and on_eof reports the end of input.  A stream has no
 * half-close: iocp_conn_shutdown() closes it once the queue has drained,
 * which is how the program reading it sees EOF.  Streams are not network
 * connections and never appear in the registry or its counts.
 */
#ifndef IOCP_PIPE_H
#define IOCP_PIPE_H

#include "conn.h"
#include "types.h"

#ifdef __cplusplus
extern "C" {
#endif

struct iocp_engine;

struct iocp_pipe_config {
    /* The descriptor (a HANDLE on Windows).  The stream owns it from a
     * successful call on, and closes it when the stream closes. */
    iocp_socket_t handle;
    /* Worker to run on; -1: the engine picks. */
    int worker;
    /* true: read from it (on_data, on_eof); false: only write to it. */
    bool readable;
    const struct iocp_conn_handler *handler;
    void *data;
    size_t send_low, send_high; /* 0: 64 KiB / 256 KiB */
};

/*
 * iocp_pipe_open(e, cfg):
 * Start serving a stream.  handler->on_open runs on the worker when it is
 * ready (or on_close with the error).  Returns 0, or an immediate error
 * (IOCP_EINVAL, IOCP_ESTATE) in which case no callback runs and the caller
 * still owns the descriptor.  Safe from any thread.
 */
#define iocp_pipe_open(e, cfg) iocp_pipe_open_sized((e), (cfg), sizeof(struct iocp_pipe_config))
IOCP_EXTERN int iocp_pipe_open_sized(struct iocp_engine *e, const struct iocp_pipe_config *cfg,
                                     size_t cfg_size);

#ifdef __cplusplus
}
#endif

#endif /* IOCP_PIPE_H */
