/* SPDX-License-Identifier: MIT */
/*
 * A user of the installed libiocp.  For each backend the library has: start
 * an engine, run an echo server on a free loopback port, echo a few bytes
 * through it with a plain blocking socket, stop, and check with the audit
 * that every request completed and every pooled object came back.  Only the
 * public API, through <iocp.h>.  Exit 0 when all of it worked.
 */
#define _POSIX_C_SOURCE 200809L

#include <iocp.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void on_data(struct iocp_conn *c, const void *data, size_t len)
{
    iocp_conn_send(c, data, len);
}

static void on_close(struct iocp_conn *c, int status)
{
    (void)c;
    (void)status;
}

static const struct iocp_conn_handler echo = {.on_data = on_data, .on_close = on_close};

/* Connect to 127.0.0.1:port, send msg, read it back.  0 when it came back. */
static int echo_through(uint16_t port, const char *msg)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    size_t len = strlen(msg), got = 0;
    char buf[256];
    int rc = -1;
    if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        send(fd, msg, len, 0) != (ssize_t)len)
        goto out;
    /* A blocking call may end early with EINTR (after an io_uring engine
     * on this thread was freed, the kernel may still notify the thread
     * once): that is a retry, not a failure.  The tries are bounded. */
    for (int tries = 0; got < len && tries < 100; tries++) {
        ssize_t n = recv(fd, buf + got, sizeof buf - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto out;
        got += (size_t)n;
    }
    rc = got == len && memcmp(buf, msg, len) == 0 ? 0 : -1;
out:
    close(fd);
    return rc;
}

static int run(const char *backend)
{
    struct iocp_engine_config ecfg = {.workers = 2, .backend = backend};
    struct iocp_engine *e;
    struct iocp_server *s;
    int rc = iocp_engine_new(&e, &ecfg);
    if (rc < 0) {
        fprintf(stderr, "consumer: %s: engine: %s\n", backend, iocp_strerror(rc));
        return 1;
    }
    if ((rc = iocp_engine_start(e)) < 0) {
        fprintf(stderr, "consumer: %s: start: %s\n", backend, iocp_strerror(rc));
        goto err0;
    }
    struct iocp_server_config scfg = {.host = "127.0.0.1", .port = 0, .handler = &echo};
    if ((rc = iocp_server_new(&s, e, &scfg)) < 0 || (rc = iocp_server_start(s)) < 0) {
        fprintf(stderr, "consumer: %s: server: %s\n", backend, iocp_strerror(rc));
        goto err0;
    }
    const char *msg = "hello, libiocp\n";
    uint16_t port = iocp_server_port(s);
    if (echo_through(port, msg) < 0) {
        fprintf(stderr, "consumer: %s: no echo from port %u\n", backend, port);
        rc = -1;
    }
    iocp_server_stop(s);
    iocp_engine_stop(e);
    iocp_server_free(s);
    char report[512];
    if (iocp_engine_audit(e, report, sizeof report) != 0) {
        fprintf(stderr, "consumer: %s: audit: %s\n", backend, report);
        rc = -1;
    }
    if (rc == 0)
        printf("consumer: %s: echoed %zu bytes on port %u, audit clean\n", backend, strlen(msg),
               port);
err0:
    iocp_engine_free(e);
    return rc < 0;
}

int main(void)
{
    if (strcmp(IOCP_VERSION_STRING, CONSUMER_EXPECT_VERSION) != 0) {
        fprintf(stderr, "consumer: headers say %s, the package says %s\n", IOCP_VERSION_STRING,
                CONSUMER_EXPECT_VERSION);
        return 1;
    }
    int failed = 0;
    for (const char *const *b = iocp_backends(); *b; b++)
        failed += run(*b);
    return failed != 0;
}
