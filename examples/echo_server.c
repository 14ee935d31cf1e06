/* SPDX-License-Identifier: MIT */
/* echo_server [--once] PORT [ADDRESS]: sends back what clients send; a client's
 * half-close flushes its echo and closes (the default without on_eof).  PORT 0:
 * a free port; no ADDRESS: all.  Ctrl-C stops it; with --once, the first close. */
#define _POSIX_C_SOURCE 200809L
#include <iocp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static bool once;

static void on_data(struct iocp_conn *c, const void *data, size_t len)
{
    if (iocp_conn_send(c, data, len) < 0) /* the bytes are copied */
        iocp_conn_close(c, IOCP_CLOSE_ABORT);
}

static void on_close(struct iocp_conn *c, int status)
{
    char peer[64];
    printf("echo_server: %s: echoed %llu bytes (%s)\n", iocp_conn_peer(c, peer, sizeof peer),
           (unsigned long long)iocp_conn_bytes_out(c), status ? iocp_strerror(status) : "done");
    if (once) /* wake main() the way Ctrl-C does */
        kill(getpid(), SIGTERM);
}

int main(int argc, char **argv)
{
    int arg = 1 + (once = argc > 1 && strcmp(argv[1], "--once") == 0), rc, sig;
    if (argc - arg < 1 || argc - arg > 2)
        return fprintf(stderr, "usage: echo_server [--once] PORT [ADDRESS]\n"), 2;
    sigset_t stop; /* blocked before the workers start: only sigwait() sees them */
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    static const struct iocp_conn_handler echo = {.on_data = on_data, .on_close = on_close};
    struct iocp_server_config cfg = {.host = argv[arg + 1], .port = (uint16_t)atoi(argv[arg]),
                                     .handler = &echo};
    struct iocp_engine *e = NULL; struct iocp_server *s = NULL;
    if ((rc = iocp_engine_new(&e, NULL)) == 0 && (rc = iocp_engine_start(e)) == 0 &&
        (rc = iocp_server_new(&s, e, &cfg)) == 0 && (rc = iocp_server_start(s)) == 0) {
        printf("echo_server: listening on port %u (%s, %u workers)\n", iocp_server_port(s),
               iocp_engine_backend(e), iocp_engine_workers(e));
        sigwait(&stop, &sig);
    } else {
        fprintf(stderr, "echo_server: %s\n", iocp_strerror(rc));
    }
    if (e) /* stop first: it closes the listener and every connection */
        iocp_engine_stop(e);
    iocp_server_free(s);
    iocp_engine_free(e);
    return rc < 0;
}
