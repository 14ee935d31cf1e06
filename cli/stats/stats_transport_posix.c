/* SPDX-License-Identifier: MIT */
/*
 * stats_transport.h on POSIX: the per-user directory and its checks, the
 * Unix-domain socket (mode 0600, replaced when stale, removed only while it
 * is still ours), the peer's uid at accept, a pipe as the wake-up, and a
 * pthread.  stats_endpoint_dir() and stats_endpoint_of_pid() are here too:
 * where the endpoint lives is the platform's business.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "diag.h"
#include "stats_endpoint.h"
#include "stats_report.h"
#include "stats_transport.h"

static struct {
    bool is_unix;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    dev_t dev;
    ino_t ino;
    int wake[2];
    pthread_t thread;
    void (*fn)(void);
} tp = {.wake = {-1, -1}};

/* ---- sockets ---- */

iocp_socket_t stats_sock_open(int family, bool nonblocking)
{
    return socket(family, SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0), 0);
}

void stats_sock_close(iocp_socket_t fd)
{
    close(fd);
}

long stats_sock_recv(iocp_socket_t fd, void *buf, size_t len)
{
    ssize_t n = recv(fd, buf, len, 0);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? STATS_IO_AGAIN
                                                                     : STATS_IO_FAILED;
}

long stats_sock_send(iocp_socket_t fd, const void *buf, size_t len)
{
    ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
    if (n >= 0)
        return (long)n;
    return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? STATS_IO_AGAIN
                                                                     : STATS_IO_FAILED;
}

void stats_sock_shutdown_write(iocp_socket_t fd)
{
    shutdown(fd, SHUT_WR);
}

void stats_sock_listen_options(iocp_socket_t fd)
{
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
}

int stats_sock_poll(stats_pollfd *pfd, unsigned n, int timeout_ms)
{
    return poll(pfd, (nfds_t)n, timeout_ms);
}

int stats_sock_error(void)
{
    return errno;
}

const char *stats_error_text(int code, char *buf, size_t len)
{
    snprintf(buf, len, "%s", strerror(code));
    return buf;
}

const char *stats_gai_text(int code, char *buf, size_t len)
{
    snprintf(buf, len, "%s", gai_strerror(code));
    return buf;
}

/* A Unix-domain client whose uid is neither ours nor root's gets nothing,
 * even where the socket file has been opened up. */
static bool peer_allowed(int fd)
{
    if (!tp.is_unix)
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

enum stats_accept stats_transport_accept(iocp_socket_t lfd, iocp_socket_t *fd)
{
    *fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (*fd < 0) {
        switch (errno) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
            return STATS_ACCEPT_NONE;
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
            return STATS_ACCEPT_AGAIN;
        default: /* EMFILE, ENFILE, ENOBUFS, ENOMEM, ... */
            return STATS_ACCEPT_STUCK;
        }
    }
    if (!peer_allowed(*fd)) {
        close(*fd);
        return STATS_ACCEPT_AGAIN;
    }
    return STATS_ACCEPTED;
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

void stats_endpoint_of_pid(const char *dir, long pid, char *buf, size_t len)
{
    snprintf(buf, len, "%s/%ld.sock", dir, pid);
}

bool stats_transport_endpoint_suffix(const char *end)
{
    return strcmp(end, ".sock") == 0;
}

int stats_transport_locate(const char *spec, char *host, size_t hostlen, char *port, size_t portlen,
                           char *line, size_t linelen, char *err, size_t errlen)
{
    /* Every endpoint file on POSIX is the socket itself. */
    (void)spec, (void)host, (void)hostlen, (void)port, (void)portlen, (void)err, (void)errlen;
    if (linelen)
        line[0] = '\0';
    return 0;
}

/* ---- opening the endpoint ---- */

/* Bind a Unix-domain socket at path with mode 0600.  A stale socket file
 * (nobody accepts on it) is replaced; anything else there is an error. */
static int open_unix(const char *path, char *err, size_t errlen)
{
    struct sockaddr_un sa;
    if (!stats_unix_address(&sa, path, err, errlen))
        return -1;
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errlen, "%s: exists and is not a socket", path);
            return -1;
        }
        char ignored[512];
        int probe = stats_unix_connect(path, ignored, sizeof ignored);
        if (probe >= 0) {
            close(probe);
            snprintf(err, errlen, "%s: in use by another process", path);
            return -1;
        }
        unlink(path);
    }
    int fd = stats_sock_open(AF_UNIX, true);
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
    tp.is_unix = true;
    memcpy(tp.path, sa.sun_path, sizeof tp.path);
    tp.dev = st.st_dev;
    tp.ino = st.st_ino;
    diag_info(1, "stats endpoint unix %s", path);
    return fd;
}

iocp_socket_t stats_transport_open(const char *spec, const char **token, char *err, size_t errlen)
{
    char path[256];
    *token = NULL;
    tp.is_unix = false;
    if (!spec) {
        const char *why;
        char dir[200];
        if (stats_endpoint_dir(dir, sizeof dir, true, &why) < 0) {
            snprintf(err, errlen, "%s: %s", dir, why);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%ld.sock", dir, (long)getpid());
        spec = path;
    }
    if (!stats_is_tcp(spec))
        return open_unix(spec, err, errlen);
    char host[256], port[8], addr[NI_MAXHOST];
    unsigned portnum;
    if (!stats_parse_tcp(spec, host, sizeof host, port, sizeof port)) {
        snprintf(err, errlen, "%s: expected tcp:[HOST:]PORT", spec);
        return -1;
    }
    int fd = stats_tcp_listen(spec, host, port, addr, sizeof addr, &portnum, err, errlen);
    if (fd >= 0)
        diag_info(1, "stats endpoint tcp %s %u", addr, portnum);
    return fd;
}

void stats_transport_close(iocp_socket_t lfd)
{
    close(lfd);
    /* Remove the file only if it is still the one we bound. */
    struct stat st;
    if (tp.is_unix && lstat(tp.path, &st) == 0 && st.st_dev == tp.dev && st.st_ino == tp.ino)
        unlink(tp.path);
    tp.is_unix = false;
}

long stats_transport_pid(void)
{
    return (long)getpid();
}

/* ---- the wake-up and the thread ---- */

iocp_socket_t stats_wake_open(char *err, size_t errlen)
{
    if (pipe2(tp.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        snprintf(err, errlen, "%s", strerror(errno));
        return -1;
    }
    return tp.wake[0];
}

void stats_wake_fire(void)
{
    while (write(tp.wake[1], "x", 1) < 0 && errno == EINTR)
        ;
}

void stats_wake_drain(void)
{
    char sink[16];
    while (read(tp.wake[0], sink, sizeof sink) > 0)
        ;
}

void stats_wake_close(void)
{
    close(tp.wake[0]);
    close(tp.wake[1]);
    tp.wake[0] = tp.wake[1] = -1;
}

static void *thread_main(void *arg)
{
    (void)arg;
    tp.fn();
    return NULL;
}

int stats_thread_start(void (*fn)(void), char *err, size_t errlen)
{
    tp.fn = fn;
    /* The thread inherits the caller's signal mask: the stop signals stay
     * with the main thread. */
    int rc = pthread_create(&tp.thread, NULL, thread_main, NULL);
    if (rc != 0) {
        snprintf(err, errlen, "%s", strerror(rc));
        return -1;
    }
    return 0;
}

void stats_thread_join(void)
{
    pthread_join(tp.thread, NULL);
}

uint64_t stats_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void stats_pause_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}
