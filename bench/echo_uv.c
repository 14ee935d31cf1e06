/* SPDX-License-Identifier: MIT */
/*
 * echo_uv: the libuv peer for the echo benchmark, written the way libuv's
 * own examples write an echo server: uv_tcp per connection, uv_read_start
 * with an allocation callback that mallocs 64 KiB on demand, uv_write of
 * what was read, free once the write completes.  One loop, one thread.
 *
 * usage: echo_uv PORT      (0 picks a free port; prints it on stderr)
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include <uv.h>

#define READ_SIZE 65536

/*
 * The write request sits in front of the data it sends, so one malloc per
 * read covers both and on_write frees both.
 */
struct wbuf {
    uv_write_t req;
    char data[READ_SIZE];
};

static uv_tcp_t server;
static uv_signal_t sigint, sigterm;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    struct wbuf *w = malloc(sizeof *w);
    *buf = uv_buf_init(w ? w->data : NULL, w ? READ_SIZE : 0);
}

static void free_wbuf(char *base)
{
    if (base)
        free((char *)base - offsetof(struct wbuf, data));
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
    if (nread > 0) {
        struct wbuf *w = (struct wbuf *)(buf->base - offsetof(struct wbuf, data));
        uv_buf_t out = uv_buf_init(buf->base, (unsigned int)nread);
        if (uv_write(&w->req, s, &out, 1, on_write) == 0)
            return;
        free(w);
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    /* nread == 0 is EAGAIN and the buffer comes back unused; < 0 is EOF or
     * an error (UV_ENOBUFS when on_alloc failed, with a NULL base). */
    free_wbuf(buf->base);
    if (nread < 0)
        uv_close((uv_handle_t *)s, on_close);
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
    /* Replies are written in one piece; Nagle would only delay them. */
    uv_tcp_nodelay(c, 1);
    uv_read_start((uv_stream_t *)c, on_alloc, on_read);
}

/* Connections are heap handles; the listener and the signals are static. */
static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    bool is_static =
        h == (uv_handle_t *)&server || h == (uv_handle_t *)&sigint || h == (uv_handle_t *)&sigterm;
    uv_close(h, is_static ? NULL : on_close);
}

/* Closing every handle makes uv_run return; pending writes complete with
 * UV_ECANCELED and free their buffers on the way. */
static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_walk(sig->loop, close_any, NULL);
}

/* The benchmark holds 10,000 idle connections; the soft limit is often 1024. */
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
        fprintf(stderr, "usage: echo_uv PORT\n");
        return 2;
    }
    raise_nofile();
    /* A write to a connection the client reset must fail, not kill us. */
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
        fprintf(stderr, "echo_uv: listen: %s\n", uv_strerror(rc));
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
