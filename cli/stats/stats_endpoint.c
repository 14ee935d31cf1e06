/* SPDX-License-Identifier: MIT */
/*
 * stats_endpoint.h on POSIX: where the endpoint lives, the thread that
 * serves it, and how the `stats` subcommand reaches it.  The answers
 * themselves come from stats_report.c, which the Windows endpoint shares.
 *
 * The thread polls the listening socket, a wake-up pipe and at most
 * STATS_MAX_CLIENTS clients, all non-blocking; one more client takes the
 * slot of the oldest that is not being answered.  A client goes through
 * three states: reading its request line (bounded in length and time),
 * writing the answer (as fast as it reads; bounded in time), then draining
 * what it still sends for a moment after our shutdown, so that a client
 * which sent more than one line (or garbage) still reads our answer instead
 * of a reset.  Nothing a client does reaches the engine: the reports are
 * built from iocp_engine_stats() and iocp_engine_foreach_conn() snapshots.
 */
#include "stats_endpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "json.h"
#include "stats_report.h"

enum ep_state { EP_READING, EP_WRITING, EP_DRAINING };

struct ep_client {
    int fd; /* -1: free slot */
    enum ep_state state;
    uint64_t since, deadline;
    char in[STATS_REQ_MAX];
    size_t inlen;
    struct json_buf out;
    size_t outoff;
};

static struct {
    bool running;
    int lfd;
    int wake[2];
    pthread_t thread;
    bool is_unix;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
    struct ep_client clients[STATS_MAX_CLIENTS];
    struct stats_source src;
} ep = {.lfd = -1, .wake = {-1, -1}};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the per-user directory ---- */

int stats_endpoint_dir(char *buf, size_t len, bool create, const char **why)
{
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, len, "%s/iocptool", xdg);
    else
        n = snprintf(buf, len, "/tmp/iocptool-%lu", (unsigned long)geteuid());
    if (n < 0 || (size_t)n >= len) {
        *why = "path too long";
        errno = ENAMETOOLONG;
        return -1;
    }
    if (create && mkdir(buf, 0700) < 0 && errno != EEXIST) {
        *why = strerror(errno);
        return -1;
    }
    struct stat st;
    if (lstat(buf, &st) < 0) {
        *why = errno == ENOENT ? "no such directory" : strerror(errno);
        return -1;
    }
    /* /tmp is shared: someone else may have made the directory first, or
     * put a link there.  Use it only if it is ours and closed to others. */
    if (S_ISLNK(st.st_mode)) {
        *why = "is a symbolic link";
        errno = ELOOP;
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        *why = "not a directory";
        errno = ENOTDIR;
        return -1;
    }
    if (st.st_uid != geteuid()) {
        *why = "owned by another user";
        errno = EPERM;
        return -1;
    }
    if (st.st_mode & 077) {
        *why = "open to other users (mode must be 0700)";
        errno = EPERM;
        return -1;
    }
    return 0;
}

/* ---- addresses ---- */

static int resolve_tcp(const char *spec, struct addrinfo **res, bool passive, char *err,
                       size_t errlen)
{
    char host[256], port[8];
    if (!stats_parse_tcp(spec, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
        return -1;
    }
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    int gai = getaddrinfo(host, port, &hints, res);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", spec, gai_strerror(gai));
        return -1;
    }
    return 0;
}

static bool fill_unix(struct sockaddr_un *sa, const char *path, char *err, size_t errlen)
{
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof sa->sun_path) {
        snprintf(err, errlen, "%s: path too long for a Unix-domain socket (at most %zu bytes)",
                 path, sizeof sa->sun_path - 1);
        return false;
    }
    memcpy(sa->sun_path, path, strlen(path) + 1);
    return true;
}

/* A blocking stream socket connected to the endpoint named by spec (a path
 * or tcp:[HOST:]PORT), or -1 with the reason in err. */
static int endpoint_connect(const char *spec, char *err, size_t errlen)
{
    if (stats_is_tcp(spec)) {
        struct addrinfo *res;
        if (resolve_tcp(spec, &res, false, err, errlen) < 0)
            return -1;
        int fd = -1, saved = 0;
        for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
                break;
            saved = errno;
            if (fd >= 0)
                close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
            snprintf(err, errlen, "%s: %s", spec, strerror(saved));
        return fd;
    }
    struct sockaddr_un sa;
    if (!fill_unix(&sa, spec, err, errlen))
        return -1;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* ---- the `stats` side ---- */

bool stats_endpoint_file(const char *name, long *pid)
{
    char *end;
    long v = strtol(name, &end, 10);
    if (end == name || v <= 0 || strcmp(end, ".sock") != 0)
        return false;
    *pid = v;
    return true;
}

void stats_endpoint_of_pid(const char *dir, long pid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%ld.sock", dir, pid);
}

bool stats_endpoint_probe(const char *spec)
{
    char ignored[512];
    int fd = endpoint_connect(spec, ignored, sizeof ignored);
    if (fd < 0)
        return false;
    close(fd);
    return true;
}

int stats_endpoint_ask(const char *spec, const char *request, struct json_buf *out, size_t max,
                       unsigned timeout_ms, char *err, size_t errlen)
{
    int fd = endpoint_connect(spec, err, errlen);
    if (fd < 0)
        return -1;
    char line[64];
    int len = snprintf(line, sizeof line, "%s\n", request);
    uint64_t end = now_ms() + timeout_ms;
    int rc = -1;
    if (send(fd, line, (size_t)len, MSG_NOSIGNAL) != len) {
        snprintf(err, errlen, "%s: %s", spec, strerror(errno));
        goto out;
    }
    for (;;) {
        uint64_t now = now_ms();
        if (now >= end) {
            snprintf(err, errlen, "%s: no complete answer within %u seconds", spec,
                     timeout_ms / 1000);
            goto out;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r = poll(&pfd, 1, (int)(end - now));
        /* EINTR included: the only handlers `stats` installs are those
         * that end it. */
        if (r < 0) {
            snprintf(err, errlen, "%s: %s", spec, strerror(errno));
            goto out;
        }
        if (r == 0)
            continue;
        char buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "%s: %s", spec, strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        json_append(out, buf, (size_t)n);
        if (out->failed || out->len > max) {
            snprintf(err, errlen, "%s: answer too large", spec);
            goto out;
        }
    }
    rc = 0;
out:
    close(fd);
    return rc;
}

/* ---- opening the endpoint ---- */

/* Bind a Unix-domain socket at path with mode 0600.  A stale socket file
 * (nobody accepts on it) is replaced; anything else there is an error. */
static int open_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (!fill_unix(&sa, path, err, errlen))
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a socket", path);
            return -1;
        }
        char ignored[64];
        int probe = endpoint_connect(path, ignored, sizeof ignored);
        if (probe >= 0) {
            close(probe);
            snprintf(err, errlen, "%s: in use by another process", path);
            return -1;
        }
        unlink(path);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    /* The mode comes from the umask at bind time; 0177 leaves 0600.  The
     * umask is per process, but no other thread creates files meanwhile. */
    mode_t old = umask(0177);
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    int saved = errno;
    umask(old);
    if (rc == 0 && (chmod(path, 0600) < 0 || lstat(path, &st) < 0))
        rc = -1, saved = errno;
    if (rc == 0 && listen(fd, 64) < 0)
        rc = -1, saved = errno;
    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(saved));
        close(fd);
        return -1;
    }
    ep.is_unix = true;
    memcpy(ep.path, sa.sun_path, sizeof ep.path);
    ep.dev = st.st_dev;
    ep.ino = st.st_ino;
    diag_info(1, "stats endpoint unix %s", path);
    return fd;
}

static int open_tcp(const char *spec, char *err, size_t errlen)
{
    struct addrinfo *res;
    if (resolve_tcp(spec, &res, true, err, errlen) < 0)
        return -1;
    int fd = -1, saved = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 64) == 0)
            break;
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", spec, strerror(saved));
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST] = "?", port[NI_MAXSERV] = "?";
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, port, sizeof port,
                    NI_NUMERICHOST | NI_NUMERICSERV);
    diag_info(1, "stats endpoint tcp %s %s", host, port);
    return fd;
}

/* ---- serving clients ---- */

static void client_close(struct ep_client *c)
{
    close(c->fd);
    c->fd = -1;
    json_buf_free(&c->out);
}

static void client_answer(struct ep_client *c, size_t linelen)
{
    stats_answer(&ep.src, c->in, linelen, &c->out);
    c->state = EP_WRITING;
    c->deadline = now_ms() + STATS_WRITE_MS;
}

static void client_error(struct ep_client *c, const char *why)
{
    json_buf_free(&c->out);
    json_printf(&c->out, "error: %s\n", why);
    c->state = EP_WRITING;
    c->deadline = now_ms() + STATS_WRITE_MS;
}

static void client_read(struct ep_client *c)
{
    if (c->state == EP_DRAINING) {
        char sink[4096];
        ssize_t n = recv(c->fd, sink, sizeof sink, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            client_close(c);
        return;
    }
    ssize_t n = recv(c->fd, c->in + c->inlen, sizeof c->in - c->inlen, 0);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            client_close(c);
        return;
    }
    if (n == 0) {
        /* A request without its newline still counts at EOF. */
        if (c->inlen)
            client_answer(c, c->inlen);
        else
            client_close(c);
        return;
    }
    size_t start = c->inlen;
    c->inlen += (size_t)n;
    char *nl = memchr(c->in + start, '\n', c->inlen - start);
    if (nl)
        client_answer(c, (size_t)(nl - c->in) + 1);
    else if (c->inlen == sizeof c->in)
        client_error(c, "request too long");
}

static void client_write(struct ep_client *c)
{
    while (c->outoff < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->outoff, c->out.len - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                client_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    /* All sent: our end of the stream, then a short drain so that unread
     * input does not turn the close into a reset that eats the answer. */
    json_buf_free(&c->out);
    shutdown(c->fd, SHUT_WR);
    c->state = EP_DRAINING;
    c->deadline = now_ms() + STATS_DRAIN_MS;
}

static bool peer_allowed(int fd)
{
    if (!ep.is_unix)
        return true;
#ifdef SO_PEERCRED
    struct ucred cred;
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return false;
    return cred.uid == geteuid() || cred.uid == 0;
#else
    uid_t uid;
    gid_t gid;
    if (getpeereid(fd, &uid, &gid) < 0)
        return false;
    return uid == geteuid() || uid == 0;
#endif
}

/* A slot for a new client: a free one, else the oldest client that is not
 * being answered, else the oldest of all.  So stalled clients (the same
 * user's: others never get in) cannot keep the next one out. */
static struct ep_client *free_slot(void)
{
    struct ep_client *idle = NULL, *any = NULL;
    for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
        struct ep_client *c = &ep.clients[i];
        if (c->fd < 0)
            return c;
        if (c->state != EP_WRITING && (!idle || c->since < idle->since))
            idle = c;
        if (!any || c->since < any->since)
            any = c;
    }
    struct ep_client *victim = idle ? idle : any;
    client_close(victim);
    return victim;
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept4(ep.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or an error that the next poll reports again */
        if (!peer_allowed(fd)) {
            close(fd);
            continue;
        }
        struct ep_client *slot = free_slot();
        memset(slot, 0, sizeof *slot);
        slot->fd = fd;
        slot->state = EP_READING;
        slot->since = now_ms();
        slot->deadline = slot->since + STATS_READ_MS;
    }
}

static void *serve(void *arg)
{
    (void)arg;
    struct pollfd pfd[STATS_MAX_CLIENTS + 2];
    int idx[STATS_MAX_CLIENTS + 2];
    for (;;) {
        uint64_t now = now_ms();
        int n = 0, timeout = -1;
        pfd[n].fd = ep.wake[0];
        pfd[n].events = POLLIN;
        idx[n++] = -1;
        for (int i = 0; i < STATS_MAX_CLIENTS; i++) {
            struct ep_client *c = &ep.clients[i];
            if (c->fd < 0)
                continue;
            if (c->deadline <= now) {
                client_close(c);
                continue;
            }
            int left = (int)(c->deadline - now);
            if (timeout < 0 || left < timeout)
                timeout = left;
            pfd[n].fd = c->fd;
            pfd[n].events = c->state == EP_WRITING ? POLLOUT : POLLIN;
            idx[n++] = i;
        }
        /* Last, so that a slot reused for a new client is not looked at
         * again in this round. */
        pfd[n].fd = ep.lfd;
        pfd[n].events = POLLIN;
        idx[n++] = -2;
        int r = poll(pfd, (nfds_t)n, timeout);
        if (r < 0 && errno != EINTR)
            break;
        if (r <= 0)
            continue;
        if (pfd[0].revents)
            break;
        for (int k = 1; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            if (idx[k] == -2) {
                accept_clients();
                continue;
            }
            struct ep_client *c = &ep.clients[idx[k]];
            if (c->state == EP_WRITING) {
                client_write(c);
                continue;
            }
            client_read(c);
            /* An answer can often go out at once. */
            if (c->fd >= 0 && c->state == EP_WRITING)
                client_write(c);
        }
    }
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        if (ep.clients[i].fd >= 0)
            client_close(&ep.clients[i]);
    return NULL;
}

/* ---- start and stop ---- */

int stats_endpoint_start(struct iocp_engine *e, struct iocp_server *s, const char *spec)
{
    char err[512], path[256];
    if (ep.running) {
        diag_error("stats endpoint: already running");
        return -1;
    }
    if (!spec) {
        const char *why;
        char dir[200];
        if (stats_endpoint_dir(dir, sizeof dir, true, &why) < 0) {
            diag_error("stats endpoint: %s: %s", dir, why);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%ld.sock", dir, (long)getpid());
        spec = path;
    }
    ep.is_unix = false;
    ep.lfd =
        stats_is_tcp(spec) ? open_tcp(spec, err, sizeof err) : open_unix(spec, err, sizeof err);
    if (ep.lfd < 0) {
        diag_error("stats endpoint: %s", err);
        return -1;
    }
    if (pipe2(ep.wake, O_CLOEXEC) < 0) {
        diag_error("stats endpoint: %s", strerror(errno));
        goto err1;
    }
    stats_source_init(&ep.src, e, s, (long)getpid());
    for (int i = 0; i < STATS_MAX_CLIENTS; i++)
        ep.clients[i].fd = -1;
    /* The thread inherits the caller's signal mask: the stop signals stay
     * with the main thread. */
    int rc = pthread_create(&ep.thread, NULL, serve, NULL);
    if (rc != 0) {
        diag_error("stats endpoint: cannot start its thread: %s", strerror(rc));
        goto err2;
    }
    ep.running = true;
    return 0;

err2:
    close(ep.wake[0]);
    close(ep.wake[1]);
    ep.wake[0] = ep.wake[1] = -1;
err1:
    close(ep.lfd);
    ep.lfd = -1;
    if (ep.is_unix)
        unlink(ep.path);
    return -1;
}

void stats_endpoint_stop(void)
{
    if (!ep.running)
        return;
    ep.running = false;
    while (write(ep.wake[1], "x", 1) < 0 && errno == EINTR)
        ;
    pthread_join(ep.thread, NULL);
    close(ep.wake[0]);
    close(ep.wake[1]);
    ep.wake[0] = ep.wake[1] = -1;
    close(ep.lfd);
    ep.lfd = -1;
    /* Remove the file only if it is still the one we bound. */
    struct stat st;
    if (ep.is_unix && lstat(ep.path, &st) == 0 && st.st_dev == ep.dev && st.st_ino == ep.ino)
        unlink(ep.path);
    memset(&ep.src, 0, sizeof ep.src);
}
