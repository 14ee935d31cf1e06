/* SPDX-License-Identifier: MIT */
/*
 * send_file HOST PORT FILE: connect, send FILE, half-close, and copy what
 * the peer sends back to stdout until it closes.  Against echo_server the
 * output is the file.  A summary goes to stderr.
 *
 * The file is read by the engine as well, as a stream (pipe.h) on the
 * socket's worker: its on_data queues the bytes on the socket, and the
 * socket's on_pressure pauses the file while the send queue is above its
 * high watermark, so memory stays bounded whatever the size of the file.
 * Both connections live on one worker, so they may hold plain pointers to
 * each other (cleared in on_close); another thread would keep their IDs.
 */
#define _POSIX_C_SOURCE 200809L
#include <iocp.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

struct transfer {
    struct iocp_engine *e;
    int fd;            /* the file, until the stream owns it */
    struct iocp_conn *sock, *file;
    int status;        /* how it ended: 0 or an IOCP_E* code */
    uint64_t sent, received;
};

/* ---- the file: a readable stream whose bytes go to the socket ---- */

static void file_open(struct iocp_conn *f)
{
    struct transfer *t = iocp_conn_data(f);
    t->file = f;
    if (!t->sock) /* the socket ended while the stream was being set up */
        iocp_conn_close(f, IOCP_CLOSE_ABORT);
}

static void file_data(struct iocp_conn *f, const void *data, size_t len)
{
    struct transfer *t = iocp_conn_data(f);
    int rc = t->sock ? iocp_conn_send(t->sock, data, len) : IOCP_ENOTCONN;
    if (rc < 0) {
        t->status = rc;
        iocp_conn_close(f, IOCP_CLOSE_ABORT);
        return;
    }
    t->sent += len;
}

static void file_eof(struct iocp_conn *f)
{
    struct transfer *t = iocp_conn_data(f);
    /* Half-close once the queue has drained: the peer reads EOF after the
     * last byte, and we go on reading its reply. */
    if (t->sock)
        iocp_conn_shutdown(t->sock);
    iocp_conn_close(f, IOCP_CLOSE_GRACEFUL);
}

static void file_close(struct iocp_conn *f, int status)
{
    struct transfer *t = iocp_conn_data(f);
    t->file = NULL;
    if (status < 0 && t->sock) { /* a read error: the reply would be short */
        t->status = status;
        iocp_conn_close(t->sock, IOCP_CLOSE_ABORT);
    }
}

static const struct iocp_conn_handler file_handler = {
    .on_open = file_open, .on_data = file_data, .on_eof = file_eof, .on_close = file_close};

/* ---- the socket ---- */

static void sock_open(struct iocp_conn *c)
{
    struct transfer *t = iocp_conn_data(c);
    t->sock = c;
    struct iocp_pipe_config pcfg = {.handle = t->fd, .worker = (int)iocp_conn_worker(c),
                                    .readable = true, .handler = &file_handler, .data = t};
    int rc = iocp_pipe_open(t->e, &pcfg);
    if (rc < 0) {
        t->status = rc;
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    t->fd = -1; /* the stream closes it */
}

static void sock_data(struct iocp_conn *c, const void *data, size_t len)
{
    struct transfer *t = iocp_conn_data(c);
    /* A blocking write is fine for one connection whose output is the
     * program's; a server would queue it on a stream instead. */
    if (fwrite(data, 1, len, stdout) != len) {
        t->status = IOCP_EIO;
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
        return;
    }
    t->received += len;
}

static void sock_pressure(struct iocp_conn *c, bool full)
{
    struct transfer *t = iocp_conn_data(c);
    if (t->file && full)
        iocp_conn_pause(t->file);
    else if (t->file)
        iocp_conn_resume(t->file);
}

static void sock_close(struct iocp_conn *c, int status)
{
    struct transfer *t = iocp_conn_data(c);
    t->sock = NULL;
    if (t->status == 0)
        t->status = status;
    if (t->file)
        iocp_conn_close(t->file, IOCP_CLOSE_ABORT);
    iocp_engine_stop(t->e); /* from a callback: asks, and main() waits */
}

/* No on_eof: at the peer's EOF the socket flushes what is queued and closes. */
static const struct iocp_conn_handler sock_handler = {.on_open = sock_open,
                                                      .on_data = sock_data,
                                                      .on_pressure = sock_pressure,
                                                      .on_close = sock_close};

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: send_file HOST PORT FILE\n");
        return 2;
    }
    struct transfer t = {.fd = open(argv[3], O_RDONLY)};
    if (t.fd < 0) {
        perror(argv[3]);
        return 1;
    }
    /* One worker is plenty for one connection. */
    struct iocp_engine_config ecfg = {.workers = 1};
    struct iocp_connect_config ccfg = {.host = argv[1], .port = (uint16_t)atoi(argv[2]),
                                       .timeout_ms = 10000, .worker = -1,
                                       .handler = &sock_handler, .data = &t};
    int rc = iocp_engine_new(&t.e, &ecfg);
    if (rc == 0 && (rc = iocp_engine_start(t.e)) == 0 && (rc = iocp_connect(t.e, &ccfg)) == 0)
        rc = iocp_engine_wait(t.e); /* until sock_close stops the engine */
    if (rc == 0)
        rc = t.status;
    if (fflush(stdout) != 0 && rc == 0)
        rc = IOCP_EIO;
    fprintf(stderr, "send_file: sent %llu bytes, received %llu bytes: %s\n",
            (unsigned long long)t.sent, (unsigned long long)t.received,
            rc == 0 ? "done" : iocp_strerror(rc));
    if (t.fd >= 0)
        close(t.fd);
    iocp_engine_free(t.e);
    return rc < 0;
}
