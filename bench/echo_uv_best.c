/* SPDX-License-Identifier: MIT */
/*
 * echo_uv_best: the libuv peer at its best, next to echo_uv (written the
 * way libuv's examples write it).  One read buffer for the whole loop,
 * reused by every read (a single-threaded loop delivers one read at a
 * time), and uv_try_write first: an echo that the socket takes at once
 * costs no allocation and no write request.  Only what the socket does not
 * take is copied into a write request, and uv_try_write refuses while one
 * is queued, so bytes never overtake each other.  One loop, one thread.
 *
 * usage: echo_uv_best PORT      (0 picks a free port; prints it on stderr)
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <uv.h>

#define READ_SIZE 65536

static char read_buffer[READ_SIZE];

/* The rest of a reply the socket did not take at once. */
struct pending_write {
    uv_write_t req;
    char data[];
};

static uv_tcp_t server;
static uv_signal_t sigint, sigterm;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    *buf = uv_buf_init(read_buffer, READ_SIZE);
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_write(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (nread == 0)
        return;
    uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
    int sent = uv_try_write(s, &out, 1);
    if (sent == nread)
        return;
    if (sent < 0 && sent != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    size_t done = sent > 0 ? (size_t)sent : 0;
    size_t rest = (size_t)nread - done;
    struct pending_write *w = malloc(sizeof *w + rest);
    if (!w) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    memcpy(w->data, buf->base + done, rest);
    uv_buf_t tail = uv_buf_init(w->data, (unsigned int)rest);
    if (uv_write(&w->req, s, &tail, 1, on_write) != 0) {
        free(w);
        uv_close((uv_handle_t *)s, on_close);
    }
}

static void on_connection(uv_stream_t *srv, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *c = malloc(sizeof *c);
    if (!c)
        return;
    uv_tcp_init(srv->loop, c);
    if (uv_accept(srv, (uv_stream_t *)c) != 0) {
        uv_close((uv_handle_t *)c, on_close);
        return;
    }
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    bool is_static =
        h == (uv_handle_t *)&server || h == (uv_handle_t *)&sigint || h == (uv_handle_t *)&sigterm;
    uv_close(h, is_static ? NULL : on_close);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_walk(sig->loop, close_any, NULL);
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: echo_uv_best PORT\n");
        return 2;
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    struct sockaddr_in sin;
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_ip4_addr("127.0.0.1", (int)port, &sin);
    uv_tcp_init(loop, &server);
    int rc = uv_tcp_bind(&server, (const struct sockaddr *)&sin, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&server, SOMAXCONN, on_connection);
    if (rc == 0)
        rc = uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
    if (rc != 0) {
        fprintf(stderr, "echo_uv_best: listen: %s\n", uv_strerror(rc));
        return 1;
    }
    fprintf(stderr, "listening on 127.0.0.1 %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));

    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);

    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
